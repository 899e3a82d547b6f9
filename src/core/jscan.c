/* jscan.c: strict JSON scanning per RFC 8259 without building a tree. */
#include "jscan.h"

#include <stdint.h>
#include <string.h>

#include "utf8.h"

const char *jscan_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

static int hex4(const char *p, const char *end, unsigned *v)
{
	if (end - p < 4)
		return -1;
	unsigned x = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		x <<= 4;
		if (c >= '0' && c <= '9') x |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') x |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') x |= (unsigned)(c - 'A' + 10);
		else return -1;
	}
	*v = x;
	return 0;
}

/* 1 for bytes that end a run of plain string content: '"', '\\', controls. */
static const unsigned char stop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
};

static int put(struct buf *out, size_t limit, const char *p, size_t n)
{
	if (!out)
		return 0;
	if (out->len >= limit)
		return 0;
	if (n > limit - out->len)
		n = limit - out->len;
	return buf_append(out, p, n);
}

const char *jscan_string(const char *p, const char *end, struct buf *out)
{
	return jscan_string_lim(p, end, out, (size_t)-1);
}

const char *jscan_string_lim(const char *p, const char *end, struct buf *out, size_t limit)
{
	if (p >= end || *p != '"')
		return NULL;
	p++;
	for (;;) {
		const char *run = p;
		/* 8 bytes at a time while none is '"', '\\' or a control byte */
		while (end - p >= 8) {
			uint64_t w;
			memcpy(&w, p, 8);
			const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
			uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
			uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w);
			if (hit & highs)
				break;
			p += 8;
		}
		while (p < end && !stop[(unsigned char)*p])
			p++;
		if (put(out, limit, run, (size_t)(p - run)))
			return NULL;
		if (p >= end || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '"')
			return p + 1;
		/* escape */
		if (end - p < 2)
			return NULL;
		char c = p[1], ch;
		p += 2;
		switch (c) {
		case '"': ch = '"'; break;
		case '\\': ch = '\\'; break;
		case '/': ch = '/'; break;
		case 'b': ch = '\b'; break;
		case 'f': ch = '\f'; break;
		case 'n': ch = '\n'; break;
		case 'r': ch = '\r'; break;
		case 't': ch = '\t'; break;
		case 'u': {
			unsigned u;
			if (hex4(p, end, &u))
				return NULL;
			p += 4;
			if (u >= 0xD800 && u <= 0xDBFF) {
				unsigned lo;
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) || lo < 0xDC00 ||
				    lo > 0xDFFF)
					return NULL;
				p += 6;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			} else if (u >= 0xDC00 && u <= 0xDFFF) {
				return NULL;
			}
			char enc[4];
			size_t l = utf8_encode(u, enc);
			if (put(out, limit, enc, l))
				return NULL;
			continue;
		}
		default: return NULL;
		}
		if (put(out, limit, &ch, 1))
			return NULL;
	}
}

const char *jscan_int(const char *p, const char *end, long long *v)
{
	int neg = 0;
	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	long long x = 0;
	int digits = 0;
	while (p < end && *p >= '0' && *p <= '9') {
		if (++digits > 18)
			return NULL;
		x = x * 10 + (*p++ - '0');
	}
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
		return NULL;
	*v = neg ? -x : x;
	return p;
}

static const char *skip_number(const char *p, const char *end)
{
	const char *s = p;
	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p > s ? p : NULL;
}

/* depth: containers around p. Only entering a container nests, so 512 nested
 * arrays or objects pass and the 513th is refused, whatever they hold. */
static const char *skip_depth(const char *p, const char *end, int depth)
{
	p = jscan_ws(p, end);
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"': return jscan_string(p, end, NULL);
	case '{':
	case '[': {
		if (depth >= 512)
			return NULL;
		char close = *p == '{' ? '}' : ']';
		int obj = *p == '{';
		p = jscan_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = jscan_string(jscan_ws(p, end), end, NULL);
				if (!p)
					return NULL;
				p = jscan_ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p++;
			}
			p = skip_depth(p, end, depth + 1);
			if (!p)
				return NULL;
			p = jscan_ws(p, end);
			if (p >= end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p++;
		}
	}
	case 't': return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f': return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n': return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default: return skip_number(p, end);
	}
}

const char *jscan_skip(const char *p, const char *end)
{
	return skip_depth(p, end, 0);
}

/* Whether the JSON string [ks, ke) (quotes included, already validated) is
 * key. A key written with escapes ("typ\u0065") is the same key to a JSON
 * parser, so it is decoded (rare: only then does this allocate). Escapes
 * only shorten: a name written shorter than key never matches. */
static int key_equal(const char *ks, const char *ke, const char *key, size_t klen)
{
	size_t raw = (size_t)(ke - ks) - 2;
	if (raw < klen)
		return 0;
	if (!memchr(ks + 1, '\\', raw))
		return raw == klen && memcmp(ks + 1, key, klen) == 0;
	struct buf b;
	buf_init(&b, klen + 1);
	int eq = jscan_string_lim(ks, ke, &b, klen + 1) && b.len == klen && memcmp(b.data, key, klen) == 0;
	buf_free(&b);
	return eq;
}

int jscan_member(const char *p, const char *end, const char *key, const char **vs, const char **ve)
{
	size_t klen = strlen(key);
	p = jscan_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = jscan_ws(p + 1, end);
	if (p < end && *p == '}')
		return -1;
	for (;;) {
		p = jscan_ws(p, end);
		const char *ks = p;
		p = jscan_string(p, end, NULL);
		if (!p)
			return -1;
		int match = key_equal(ks, p, key, klen);
		p = jscan_ws(p, end);
		if (p >= end || *p != ':')
			return -1;
		const char *v = jscan_ws(p + 1, end);
		if (match && !ve) {
			*vs = v;
			return 0;
		}
		p = jscan_skip(v, end);
		if (!p)
			return -1;
		if (match) {
			*vs = v;
			if (ve)
				*ve = p;
			return 0;
		}
		p = jscan_ws(p, end);
		if (p >= end || *p != ',')
			return -1;
		p++;
	}
}
