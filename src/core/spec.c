/* spec.c: see spec.h. */
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int spec_next(const char **s, char *key, size_t keycap, double *v, const char *what, const char *spec, char *err,
	      size_t errlen)
{
	if (**s != ':')
		return 0;
	const char *item = *s + 1;
	size_t kl = strcspn(item, ":");
	*s = item + kl;
	if (kl >= keycap) {
		snprintf(err, errlen, "%s '%s': item too long", what, spec);
		return -1;
	}
	memcpy(key, item, kl);
	key[kl] = '\0';
	char *eq = strchr(key, '='), *end = NULL;
	*v = eq ? strtod(eq + 1, &end) : 0;
	if (!eq || end == eq + 1 || *end) {
		snprintf(err, errlen, "%s '%s': '%s' is not KEY=NUMBER", what, spec, key);
		return -1;
	}
	*eq = '\0';
	return 1;
}
