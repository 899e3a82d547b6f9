/* fuzz_http_request.c: the server's request head parser and chunked decoder
 * (src/proto/http.c). Invariants: never crash, a complete head's length is
 * within the input, the decoder never consumes more than it was given and never
 * outputs more than the body limit; the incremental search for the end of the
 * head (http_head_end, fed here in 7-byte reads as the server feeds it)
 * agrees with the parser: same end, or an error the parser also reports. */
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
	size_t scanned = 0, len = 0;
	long end = 0;
	while (end == 0 && len < size) {
		len = len + 7 < size ? len + 7 : size;
		end = http_head_end((const char *)data, len, &scanned);
		assert(scanned <= len);
	}
	if (end > 0)
		assert(http_parse_request((const char *)data, (size_t)end, 8192, &m, &e) == n);
	else
		assert(end < 0 ? n == -1 : n <= 0);
	if (n > 0) /* the parse of the whole input above was overwritten */
		http_parse_request((const char *)data, size, 8192, &m, &e);
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
