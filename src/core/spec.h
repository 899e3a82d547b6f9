/* spec.h: option specs of the form NAME:KEY=NUMBER:KEY=NUMBER... (a routing
 * policy with its parameters, admission control with its knobs): the items
 * after the name, one at a time. Pure. */
#ifndef PREFIXLB_SPEC_H
#define PREFIXLB_SPEC_H

#include <stddef.h>

/* *s points at the rest of spec (a ':' before each item, or the end). Reads
 * the next item: 1 with key (NUL-terminated, cut at nothing: an item longer
 * than keycap is an error) and *v, advancing *s; 0 at the end; -1 with err
 * ("WHAT 'SPEC': ...") for an item that is not KEY=NUMBER. */
int spec_next(const char **s, char *key, size_t keycap, double *v, const char *what, const char *spec, char *err,
	      size_t errlen);

#endif
