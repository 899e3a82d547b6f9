/* jscan.h: a strict, allocation-free JSON scanner for the few places where a
 * DOM is too slow: tokenizer.json's 128k-entry vocab and 280k-entry merges
 * (jansson takes 190-280 ms on this machine to build the tree, against a
 * 300 ms budget for the whole load; see docs/DESIGN.md). Everything else is
 * parsed with jansson. Pointers are into the caller's buffer; every function
 * returns NULL on malformed input. */
#ifndef PREFIXLB_JSCAN_H
#define PREFIXLB_JSCAN_H

#include <stddef.h>

#include "buf.h"

const char *jscan_ws(const char *p, const char *end);
/* Skips one value (any type, nesting up to 512 deep); returns the byte after it. */
const char *jscan_skip(const char *p, const char *end);
/* Parses the string at p into out (appended, escapes decoded, \u surrogate
 * pairs joined into UTF-8). Returns the byte after the closing quote. */
const char *jscan_string(const char *p, const char *end, struct buf *out);
/* Like jscan_string, but appends only while out->len < limit (the rest of
 * the string is still scanned and validated). */
const char *jscan_string_lim(const char *p, const char *end, struct buf *out, size_t limit);
/* In the object at p, finds member key (a member name written with escapes,
 * "typ\u0065", is decoded first); sets *vs,*ve to its value's span
 * (ve may be NULL: then the value is not scanned, only located).
 * Returns 0 if found, -1 if absent or malformed. */
int jscan_member(const char *p, const char *end, const char *key, const char **vs, const char **ve);
/* Parses a JSON integer at p into *v; returns the byte after it. */
const char *jscan_int(const char *p, const char *end, long long *v);

#endif
