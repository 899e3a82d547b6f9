/* fuzz_http_response.c: the response head parser and chunked decoder the HTTP
 * client (the router's upstream side, the bench) reads backends with, fed one
 * byte at a time and whole, and sliced without copies (http_chunked_next):
 * the results must agree, incremental parsing is how bytes arrive. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_msg m;
	struct http_error e;
	long n = http_parse_response((const char *)data, size, 8192, &m, &e);
	if (n > 0 && m.chunked) {
		struct http_chunked whole = {0}, step = {0};
		struct buf a, b;
		buf_init(&a, 1 << 20);
		buf_init(&b, 1 << 20);
		size_t used;
		const char *body = (const char *)data + n;
		size_t bl = size - (size_t)n;
		int ra = http_chunked_feed(&whole, body, bl, &used, &a, 1 << 16, &e);
		int rb = 0;
		for (size_t i = 0; i < bl && rb == 0; i++) {
			size_t u;
			rb = http_chunked_feed(&step, body + i, 1, &u, &b, 1 << 16, &e);
		}
		assert(ra == rb);
		if (ra >= 0)
			assert(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
		struct http_chunked sl = {0};
		size_t off = 0, got = 0;
		int rs = 0;
		while (rs == 0 && off < bl) {
			size_t u, dl;
			const char *d;
			rs = http_chunked_next(&sl, body + off, bl - off, &u, &d, &dl, 1 << 16, &e);
			assert(u <= bl - off && (!dl || (d >= body + off && d + dl <= body + off + u)));
			if (rs >= 0 && dl) {
				assert(ra < 0 || (got + dl <= a.len && memcmp(a.data + got, d, dl) == 0));
				got += dl;
			}
			off += u;
			if (!u && rs == 0)
				break;
		}
		assert(rs == ra);
		if (ra >= 0)
			assert(got == a.len);
		buf_free(&a);
		buf_free(&b);
	}
	return 0;
}
