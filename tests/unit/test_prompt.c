/* test_prompt.c: chat prompts to ids through the piece cache (src/core/prompt.c)
 * and the Llama 3.1 template (src/core/chat.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/chat.h"
#include "core/prompt.h"
#include "core/rng.h"
#include "core/tokenizer.h"
#include "testutil.h"

TEST_TOKENIZER_FIXTURE(T)

static void test_llama31_text(void **state)
{
	(void)state;
	struct chat_msg m[3] = {{"system", 6, " Be brief.\n", 11}, {"user", 4, "Hi", 2}, {"assistant", 9, "Hello!", 6}};
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(chat_render_t(CHAT_LLAMA31, m, 3, 1, &b), 0);
	assert_string_equal(b.data, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
				    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
				    "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
				    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
				    "<|start_header_id|>assistant<|end_header_id|>\n\n");
	/* without a system message the block is still there, empty */
	buf_reset(&b);
	assert_int_equal(chat_render_t(CHAT_LLAMA31, m + 1, 1, 0, &b), 0);
	assert_string_equal(b.data, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
				    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
				    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
	enum chat_template t;
	assert_int_equal(chat_template_find("llama-3.1", &t), 0);
	assert_int_equal(t, CHAT_LLAMA31);
	assert_int_equal(chat_template_find("llama-2", &t), -1);
	buf_free(&b);
}

/* Random conversations (words, unicode white space to trim, special-token text
 * inside content): ids through the cache == tokenizing the rendered text. */
static void test_ids_equal_whole_render(void **state)
{
	(void)state;
	static const char *const words[] = {"the", " quick", "\xe3\x80\x80", "<|eot_id|>", "\n", "caf\xc3\xa9", "  ",
					    "42", "!", "<|start_header_id|>", " fox", "\t"};
	struct rng r;
	rng_seed(&r, 7);
	struct prompt_cache *pc = prompt_cache_new(T, 1 << 20);
	char text[16][256];
	struct chat_msg m[16];
	static const char *const roles[] = {"system", "user", "assistant", "user"};
	for (int iter = 0; iter < 300; iter++) {
		size_t n = 1 + rng_below(&r, 12);
		for (size_t i = 0; i < n; i++) {
			size_t len = 0, k = rng_below(&r, 20);
			for (size_t j = 0; j < k; j++)
				len += (size_t)snprintf(text[i] + len, sizeof text[i] - len, "%s", words[rng_below(&r, 12)]);
			const char *role = roles[i ? 1 + (i - 1) % 3 : rng_below(&r, 2)];
			m[i] = (struct chat_msg){role, strlen(role), text[i], len};
		}
		for (int tpl = 0; tpl < 2; tpl++) {
			struct buf b;
			buf_init(&b, 1 << 20);
			chat_render_t((enum chat_template)tpl, m, n, iter & 1, &b);
			struct tok_ids want = {0}, got = {0};
			tok_encode(T, b.data, b.len, 0, &want);
			assert_int_equal(prompt_chat(pc, (enum chat_template)tpl, m, n, iter & 1, &got), 0);
			assert_int_equal(got.n, want.n);
			assert_memory_equal(got.v, want.v, want.n * sizeof *want.v);
			tok_ids_free(&want);
			tok_ids_free(&got);
			buf_free(&b);
		}
	}
	prompt_cache_free(pc);
}

/* A second turn repeats the history: only the new pieces are tokenized. A
 * small cache stays within its bound and still gives the right ids. */
static void test_cache_hits_and_bound(void **state)
{
	(void)state;
	struct prompt_cache *pc = prompt_cache_new(T, 1 << 20);
	struct chat_msg m[3] = {{"user", 4, "Tell me a long story about a fox.", 33},
				{"assistant", 9, "Once upon a time a quick brown fox lived near a river.", 54},
				{"user", 4, "And then?", 9}};
	struct tok_ids a = {0}, b = {0};
	prompt_chat(pc, CHAT_LLAMA31, m, 1, 1, &a);
	struct prompt_cache_stats s1, s2;
	prompt_cache_stats(pc, &s1);
	prompt_chat(pc, CHAT_LLAMA31, m, 3, 1, &b);
	prompt_cache_stats(pc, &s2);
	/* turn 2: system block, "user", the first message, "assistant" x2, "\n\n" hit; the answer and the new message miss */
	assert_int_equal(s2.misses - s1.misses, 2);
	assert_true(s2.hits - s1.hits >= 6);
	/* turn 2 extends turn 1 up to its generation prompt */
	assert_true(b.n > a.n);
	assert_memory_equal(a.v, b.v, a.n * sizeof *a.v);
	prompt_cache_free(pc);
	/* a cache of 20 ids */
	pc = prompt_cache_new(T, 20);
	struct tok_ids c = {0};
	for (int i = 0; i < 50; i++) {
		c.n = 0;
		assert_int_equal(prompt_chat(pc, CHAT_LLAMA3, m, 3, 1, &c), 0);
		struct prompt_cache_stats s;
		prompt_cache_stats(pc, &s);
		assert_true(s.tokens <= 20);
	}
	/* llama-3 is the same minus the 3.1 system block */
	struct buf e31, e3;
	buf_init(&e31, 4096);
	buf_init(&e3, 4096);
	chat_render_t(CHAT_LLAMA31, m, 0, 0, &e31);
	chat_render_t(CHAT_LLAMA3, m, 0, 0, &e3);
	long sys_block = tok_count(T, e31.data, e31.len, 0) - tok_count(T, e3.data, e3.len, 0);
	assert_true(sys_block > 20);
	assert_int_equal((long)c.n, (long)b.n - sys_block);
	buf_free(&e31);
	buf_free(&e3);
	tok_ids_free(&a);
	tok_ids_free(&b);
	tok_ids_free(&c);
	prompt_cache_free(pc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama31_text),
		cmocka_unit_test(test_ids_equal_whole_render),
		cmocka_unit_test(test_cache_hits_and_bound),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
