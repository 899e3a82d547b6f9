/* err.c: the error table; see err.h. */
#include "err.h"

const char *plb_strerror(int err)
{
	switch (err) {
	case 0: return "success";
#define PLB_ERR_CASE(name, code, text) \
	case code: return text;
		PLB_ERRNO_MAP(PLB_ERR_CASE)
#undef PLB_ERR_CASE
	default: return "unknown error";
	}
}
