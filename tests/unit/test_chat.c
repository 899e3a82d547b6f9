/* test_chat.c: the Llama 3 chat template, rendered and tokenized. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/chat.h"
#include "core/tokenizer.h"
#include "testutil.h"

static void test_render(void **state)
{
	(void)state;
	struct chat_msg m[2] = {
		{"system", 6, "  Be brief. \n", 13},
		{"user", 4, "Hi\xe3\x80\x80", 5},
	};
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(chat_render(m, 2, 1, &b), 0);
	assert_string_equal(b.data, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
				    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
				    "<|start_header_id|>assistant<|end_header_id|>\n\n");
	buf_reset(&b);
	assert_int_equal(chat_render(m + 1, 1, 0, &b), 0);
	assert_string_equal(b.data, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
	buf_free(&b);
}

/* The rendered text tokenizes to the ids vLLM feeds the model:
 * BOS, header tokens and eot as single special ids. */
static void test_tokenized(void **state)
{
	(void)state;
	struct tok *t = test_tokenizer();
	assert_non_null(t);
	struct chat_msg m = {"user", 4, "Hello world!", 12};
	struct buf b;
	buf_init(&b, 1 << 16);
	chat_render(&m, 1, 1, &b);
	struct tok_ids ids = {0};
	assert_int_equal(tok_encode(t, b.data, b.len, 0, &ids), 0);
	/* 128000 128006 user 128007 "\n\n" Hello world ! 128009 128006 assistant 128007 "\n\n" */
	static const uint32_t want[] = {128000, 128006, 882, 128007, 271,    9906,   1917,
					0,      128009, 128006, 78191, 128007, 271};
	assert_int_equal(ids.n, sizeof want / sizeof *want);
	assert_memory_equal(ids.v, want, sizeof want);
	tok_ids_free(&ids);
	buf_free(&b);
	tok_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_render), cmocka_unit_test(test_tokenized)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
