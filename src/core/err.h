/* err.h: prefixlb's error codes, one table for every module (the idea of
 * libuv's UV_ERRNO_MAP and curl's CURLcode).
 *
 * Functions that can fail return int: 0, or a negative PLB_E* code, and the
 * caller writes `rc = f(...); if (rc) goto fail;`. Where a caller needs to
 * say more than the code (a parser's "line 3: expected ':'"), the function
 * also takes an err/errlen buffer; config and data file errors name the file
 * and line ("route.conf:12: unknown option 'polcy'"), as HAProxy does.
 *
 * Out of memory is not among the codes a caller handles: see mem.h. */
#ifndef PREFIXLB_ERR_H
#define PREFIXLB_ERR_H

#define PLB_ERRNO_MAP(X)                                                   \
	X(NOMEM, -1, "out of memory")                                       \
	X(TOOBIG, -2, "larger than its limit")                              \
	X(INVAL, -3, "invalid argument")                                    \
	X(PARSE, -4, "malformed input")                                     \
	X(NOENT, -5, "not found")                                           \
	X(RANGE, -6, "value out of range")                                  \
	X(IO, -7, "input/output error")                                     \
	X(BUSY, -8, "resource busy")                                        \
	X(EXIST, -9, "already exists")                                      \
	X(STATE, -10, "not allowed in this state")

enum plb_err {
	PLB_OK = 0,
#define PLB_ERR_ENUM(name, code, text) PLB_E##name = code,
	PLB_ERRNO_MAP(PLB_ERR_ENUM)
#undef PLB_ERR_ENUM
};

/* A short English description of a PLB_E* code (or "unknown error"). */
const char *plb_strerror(int err);

#endif
