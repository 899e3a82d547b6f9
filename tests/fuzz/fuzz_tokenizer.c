/* fuzz_tokenizer.c: any bytes encode without crashing, every id is in the
 * vocabulary, and decoding gives back the input (after U+FFFD sanitising). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tokenizer.h"
#include "core/utf8.h"
#include "../unit/testutil.h"

static struct tok *T;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	T = test_tokenizer(); /* data/tokenizer.json or $PREFIXLB_TOKENIZER */
	if (!T)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tok_ids ids = {0};
	assert(tok_encode(T, (const char *)data, size, 0, &ids) == 0);
	for (size_t i = 0; i < ids.n; i++)
		assert(ids.v[i] < tok_vocab_size(T));
	struct buf out, clean;
	buf_init(&out, 1u << 28);
	buf_init(&clean, 1u << 28);
	tok_decode(T, ids.v, ids.n, &out);
	utf8_sanitize((const char *)data, size, &clean);
	assert(out.len == clean.len && (out.len == 0 || memcmp(out.data, clean.data, out.len) == 0));
	buf_free(&out);
	buf_free(&clean);
	tok_ids_free(&ids);
	return 0;
}
