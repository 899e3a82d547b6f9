/* utf8.h: the few UTF-8 operations prefixlb needs, strict per RFC 3629
 * (no overlongs, no surrogates, nothing above U+10FFFF). */
#ifndef PREFIXLB_UTF8_H
#define PREFIXLB_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid or
 * truncated. Sets *cp to the code point when valid. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Number of leading bytes of s[0..n) that are valid UTF-8. == n when all are. */
size_t utf8_valid_prefix(const char *s, size_t n);
/* Appends s to out with each maximal invalid subpart replaced by U+FFFD, the
 * substitution Python's bytes.decode(errors="replace") and WHATWG make. */
int utf8_sanitize(const char *s, size_t n, struct buf *out);
/* Byte length of the first max_cp code points of s (invalid bytes count as one
 * code point each, so the result is always a prefix of s). */
size_t utf8_prefix_bytes(const char *s, size_t n, size_t max_cp);
/* Encodes cp (<= 0x10FFFF) into out[0..4); returns its length. */
size_t utf8_encode(uint32_t cp, char out[4]);
/* Trims leading and trailing white space as Python's str.strip() does (the
 * Unicode White_Space set), which is what Jinja's `trim` filter uses. Returns
 * the trimmed slice as *start, *len of s. */
void utf8_strip(const char *s, size_t n, size_t *start, size_t *len);

#endif
