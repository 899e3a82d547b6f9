/* fuzz_http_request.c: the server's request head parser and chunked decoder
 * (src/proto/http.c). Invariants: never crash, a complete head's length is
 * within the input, the decoder never consumes more than it was given and never
 * outputs more than the body limit. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_msg m;
	struct http_error e;
	long n = http_parse_request((const char *)data, size, 8192, &m, &e);
	assert(n <= (long)size);
	if (n > 0 && m.chunked) {
		struct http_chunked c = {0};
		struct buf out;
		buf_init(&out, 1 << 20);
		size_t used = 0;
		http_chunked_feed(&c, (const char *)data + n, size - (size_t)n, &used, &out, 4096, &e);
		assert(used <= size - (size_t)n);
		assert(out.len <= 4096);
		buf_free(&out);
	}
	return 0;
}
