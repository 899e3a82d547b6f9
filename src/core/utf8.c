/* utf8.c: strict UTF-8 decoding, sanitising and Unicode-aware trimming. */
#include "utf8.h"

#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t len;
	uint32_t v, min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2; v = c & 0x1F; min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3; v = c & 0x0F; min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4; v = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		/* ASCII fast path, 8 bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, u + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t l = utf8_decode(u + i, n - i, &cp);
		if (!l)
			return i;
		i += l;
	}
	return n;
}

/* Length of the maximal subpart of an ill-formed sequence at s (>= 1), as the
 * Unicode standard defines it for U+FFFD substitution. */
static size_t maximal_subpart(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) len = 2;
	else if (c >= 0xE0 && c <= 0xEF) len = 3;
	else if (c >= 0xF0 && c <= 0xF4) len = 4;
	else return 1;
	if (c == 0xE0) lo = 0xA0;
	if (c == 0xED) hi = 0x9F;
	if (c == 0xF0) lo = 0x90;
	if (c == 0xF4) hi = 0x8F;
	size_t i = 1;
	if (i < n && i < len && s[i] >= lo && s[i] <= hi) {
		i++;
		while (i < n && i < len && (s[i] & 0xC0) == 0x80)
			i++;
	}
	return i;
}

int utf8_sanitize(const char *s, size_t n, struct buf *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t ok = utf8_valid_prefix(s + i, n - i);
		int rc = buf_append(out, s + i, ok);
		if (rc)
			return rc;
		i += ok;
		if (i >= n)
			break;
		rc = buf_append(out, "\xEF\xBF\xBD", 3);
		if (rc)
			return rc;
		i += maximal_subpart(u + i, n - i);
	}
	return 0;
}

size_t utf8_prefix_bytes(const char *s, size_t n, size_t max_cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k = 0;
	while (i < n && k < max_cp) {
		uint32_t cp;
		size_t l = u[i] < 0x80 ? 1 : utf8_decode(u + i, n - i, &cp);
		i += l ? l : 1;
		k++;
	}
	return i;
}

size_t utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Python's str.isspace() for the code points it covers. */
static int is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202F || c == 0x205F || c == 0x3000;
}

void utf8_strip(const char *s, size_t n, size_t *start, size_t *len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t a = 0;
	while (a < n) {
		uint32_t cp;
		size_t l = utf8_decode(u + a, n - a, &cp);
		if (!l || !is_space(cp))
			break;
		a += l;
	}
	size_t b = n; /* walk back over whole code points */
	while (b > a) {
		size_t p = b - 1;
		while (p > a && (u[p] & 0xC0) == 0x80 && b - p < 4)
			p--;
		uint32_t cp;
		size_t l = utf8_decode(u + p, b - p, &cp);
		if (l != b - p || !is_space(cp))
			break;
		b = p;
	}
	*start = a;
	*len = b - a;
}
