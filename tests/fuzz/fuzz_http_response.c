/* fuzz_http_response.c: the response head parser and chunked decoder the bench
 * client reads backends with, fed one byte at a time and whole (the results
 * must agree: incremental parsing is how bytes arrive). */
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
		buf_free(&a);
		buf_free(&b);
	}
	return 0;
}
