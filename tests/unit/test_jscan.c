/* test_jscan.c: the allocation-free JSON scanner (src/core/jscan.c). Every
 * scan is checked for exactly where it stops: a scanner that stops early
 * without failing would let a caller read half a value as a whole one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/jscan.h"

/* Where jscan_skip stops in s: its offset, or -1 for NULL. */
static long skip_at(const char *s, size_t n)
{
	const char *r = jscan_skip(s, s + n);
	return r ? (long)(r - s) : -1;
}

static void test_ws(void **state)
{
	(void)state;
	const char *s = " \t\r\n x";
	assert_ptr_equal(jscan_ws(s, s + strlen(s)), s + 5);
	assert_ptr_equal(jscan_ws(s, s + 3), s + 3); /* never past end */
	/* only the four JSON white-space bytes: not \f, \v, NBSP */
	const char *o[] = {"\f", "\v", "\xc2\xa0"};
	for (size_t i = 0; i < sizeof o / sizeof *o; i++)
		assert_ptr_equal(jscan_ws(o[i], o[i] + strlen(o[i])), o[i]);
}

static void test_skip_stops_exactly(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		long at; /* offset after the value, -1: refused */
	} cases[] = {
		/* whole values: the offset just after them (leading white space skipped,
		 * trailing white space and what follows left to the caller) */
		{"\"x\"", 3}, {"  \"x\" ,", 5}, {"0", 1}, {"-0", 2}, {"-1.5e+10,", 8}, {"1E5", 3}, {"2.0e-3}", 6},
		{"true", 4}, {"false]", 5}, {"null", 4}, {"[]", 2}, {"[ ]", 3}, {"{}", 2}, {"{ }", 3},
		{"{ \"a\" : [ 1 , { } , \"\\\"\" ] , \"b\" : null } x", 41}, {"[1,2] [3]", 5}, {"\"a\\\"b\"", 6},
		{"[\"\\u00e9\\ud83d\\ude00\"]", 22}, {"\"\x7f\xff\"", 4},
		/* a number stops where the grammar does: the caller sees what follows */
		{"01", 1}, {"-0.5.5", 4}, {"1e5e5", 3}, {"123abc", 3},
		/* refused */
		{"", -1}, {"   ", -1}, {"{\"a\" 1}", -1}, {"[1,]", -1}, {"[,1]", -1}, {"{\"a\":1,}", -1}, {"{1:2}", -1},
		{"{\"a\"}", -1}, {"{\"a\":}", -1}, {"[1 2]", -1}, {"[\"a\"", -1}, {"{\"a\":1", -1}, {"\"abc", -1},
		{"\"\\ud800\"", -1}, {"\"\\udc00\"", -1}, {"\"\\ud83d\\u0041\"", -1}, {"\"\\ud83d\"", -1},
		{"\"\\u12g4\"", -1}, {"\"\\u12\"", -1}, {"\"\\x\"", -1}, {"\"\\", -1}, {"\"a\nb\"", -1},
		{"\"a\tb\"", -1}, {"\"\x1f\"", -1}, {"tru", -1}, {"nul", -1}, {"True", -1}, {"-", -1}, {"1.", -1},
		{".5", -1}, {"1e", -1}, {"1e+", -1}, {"+1", -1}, {"{\"a\":01x}", -1}, {"[[[[", -1}, {"]", -1},
		{"'a'", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		long at = skip_at(cases[i].s, strlen(cases[i].s));
		if (at != cases[i].at)
			fprintf(stderr, "jscan_skip(%s): %ld, expected %ld\n", cases[i].s, at, cases[i].at);
		assert_int_equal(at, cases[i].at);
	}
	/* never reads past end: a value cut anywhere is refused, or stops inside */
	const char *v = "{\"k\":[true,false,null,-1.25e3,\"s\\u00e9\"]}";
	size_t n = strlen(v);
	for (size_t cut = 0; cut < n; cut++) {
		char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
		memcpy(copy, v, cut);
		long at = skip_at(copy, cut);
		assert_int_equal(at, -1);
		free(copy);
	}
	assert_int_equal(skip_at(v, n), (long)n);
}

/* Nesting up to 512 deep (jscan.h): 512 nested arrays or objects are a
 * value, 513 are refused (the C stack is the limit being protected), whatever
 * the innermost value: empty, or a scalar (which adds no nesting). */
static void test_depth(void **state)
{
	(void)state;
	static char s[8 * 600];
	for (int depth = 510; depth <= 514; depth++) {
		for (int shape = 0; shape < 3; shape++) {
			size_t n = 0;
			for (int i = 0; i < depth; i++)
				n += (size_t)sprintf(s + n, "%s", shape == 2 ? "{\"a\":" : "[");
			if (shape > 0)
				s[n++] = '1';
			for (int i = 0; i < depth; i++)
				s[n++] = shape == 2 ? '}' : ']';
			long at = skip_at(s, n), want = depth <= 512 ? (long)n : -1;
			if (at != want)
				fprintf(stderr, "depth %d, shape %d: %ld, expected %ld\n", depth, shape, at, want);
			assert_int_equal(at, want);
		}
	}
}

static void test_string(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 16);
	const char *s = "\"q\\\"b\\\\s\\/b\\bf\\fn\\nr\\rt\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000.\" tail";
	const char *end = s + strlen(s);
	const char *r = jscan_string(s, end, &b);
	assert_ptr_equal(r, strchr(s + 1, ' ')); /* just after the closing quote */
	const char want[] = "q\"b\\s/b\bf\fn\nr\rt\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0.";
	assert_int_equal(b.len, sizeof want - 1);
	assert_memory_equal(b.data, want, sizeof want - 1);
	/* upper-case hex too */
	buf_reset(&b);
	const char *up = "\"\\u00C9\"";
	assert_ptr_equal(jscan_string(up, up + 8, &b), up + 8);
	assert_string_equal(b.data, "\xc3\x89");
	/* appends to what is there; out NULL only validates */
	buf_reset(&b);
	buf_puts(&b, ">");
	const char *ab = "\"ab\"";
	assert_ptr_equal(jscan_string(ab, ab + 4, &b), ab + 4);
	assert_string_equal(b.data, ">ab");
	const char *t = "\"abc\\n\"";
	assert_ptr_equal(jscan_string(t, t + 7, NULL), t + 7);
	assert_null(jscan_string(t + 1, t + 7, &b)); /* must start at a quote */
	/* the 8-byte fast path finds a quote, a backslash or a control byte at
	 * every position */
	for (size_t pos = 0; pos < 24; pos++) {
		char in[64];
		memset(in, 'a', sizeof in);
		in[0] = '"';
		in[1 + pos] = '\x01';
		in[40] = '"';
		assert_null(jscan_string(in, in + 41, NULL));
		in[1 + pos] = '"';
		assert_ptr_equal(jscan_string(in, in + 41, NULL), in + 2 + pos);
		in[1 + pos] = '\\';
		in[2 + pos] = 'n';
		buf_reset(&b);
		assert_ptr_equal(jscan_string(in, in + 41, &b), in + 41);
		assert_int_equal(b.len, 38);
		assert_int_equal(b.data[pos], '\n');
	}
	buf_free(&b);
}

static void test_string_lim(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 16);
	const char *s = "\"abcdef\",";
	assert_ptr_equal(jscan_string_lim(s, s + 9, &b, 3), s + 8);
	assert_string_equal(b.data, "abc");
	/* the limit is on the buffer's length, what was there included */
	buf_reset(&b);
	buf_puts(&b, "xy");
	assert_ptr_equal(jscan_string_lim(s, s + 9, &b, 4), s + 8);
	assert_string_equal(b.data, "xyab");
	/* at or over the limit already: nothing appended, still scanned */
	assert_ptr_equal(jscan_string_lim(s, s + 9, &b, 2), s + 8);
	assert_string_equal(b.data, "xyab");
	/* decoded bytes count, not source bytes: the cut may fall inside a character */
	buf_reset(&b);
	const char *e = "\"\\u00e9\\u00e9\"";
	assert_ptr_equal(jscan_string_lim(e, e + strlen(e), &b, 3), e + strlen(e));
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "\xc3\xa9\xc3", 3);
	/* past the limit the rest is still validated */
	buf_reset(&b);
	const char *bad = "\"abcd\\q\"";
	assert_null(jscan_string_lim(bad, bad + strlen(bad), &b, 2));
	buf_free(&b);
}

static void test_member(void **state)
{
	(void)state;
	const char *o = "{\"x\": {\"a\": 1}, \"ab\": 2, \"a\" : [1, 2] , \"c\":\"v\"}";
	const char *end = o + strlen(o), *vs, *ve;
	/* the member of this object, not one nested inside, not one whose name starts the same */
	assert_int_equal(jscan_member(o, end, "a", &vs, &ve), 0);
	assert_ptr_equal(vs, strstr(o, "[1, 2]"));
	assert_ptr_equal(ve, strstr(o, "[1, 2]") + 6);
	assert_int_equal(jscan_member(o, end, "c", &vs, &ve), 0);
	assert_int_equal(ve - vs, 3);
	assert_memory_equal(vs, "\"v\"", 3);
	assert_int_equal(jscan_member(o, end, "b", &vs, &ve), -1);
	assert_int_equal(jscan_member(o, end, "", &vs, &ve), -1);
	/* a name written with escapes is the same name */
	const char *esc = "{\"\\u0061b\\u0063\": 5, \"t\\\"q\": 6}";
	assert_int_equal(jscan_member(esc, esc + strlen(esc), "abc", &vs, &ve), 0);
	assert_memory_equal(vs, "5", 1);
	assert_int_equal(jscan_member(esc, esc + strlen(esc), "t\"q", &vs, &ve), 0);
	assert_memory_equal(vs, "6", 1);
	assert_int_equal(jscan_member(esc, esc + strlen(esc), "ab", &vs, &ve), -1);
	/* ... and a name is its decoded text, even when its bytes spell the key:
	 * the JSON name "a\b" is "a" and a backspace */
	const char *bs = "{\"a\\b\": 7}";
	assert_int_equal(jscan_member(bs, bs + strlen(bs), "a\\b", &vs, &ve), -1);
	assert_int_equal(jscan_member(bs, bs + strlen(bs), "a\b", &vs, &ve), 0);
	/* ve NULL: located, the value not scanned */
	const char *half = "{\"a\": tru";
	assert_int_equal(jscan_member(half, half + strlen(half), "a", &vs, NULL), 0);
	assert_ptr_equal(vs, half + 6);
	assert_int_equal(jscan_member(half, half + strlen(half), "a", &vs, &ve), -1);
	/* not an object, empty, malformed before the member */
	const char *nots[] = {"[1]", "{}", "{\"b\" 1, \"a\": 2}", "{\"b\": x, \"a\": 2}", "{\"b\": 1 \"a\": 2}", ""};
	for (size_t i = 0; i < sizeof nots / sizeof *nots; i++)
		assert_int_equal(jscan_member(nots[i], nots[i] + strlen(nots[i]), "a", &vs, &ve), -1);
}

static void test_int(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		long at;
		long long v;
	} cases[] = {
		{"0", 1, 0}, {"-12,", 3, -12}, {"42}", 2, 42}, {"999999999999999999", 18, 999999999999999999LL},
		{"-999999999999999999", 19, -999999999999999999LL},
		/* refused: a 19th digit (could overflow), fractions, exponents, no digits */
		{"1000000000000000000", -1, 0}, {"1.5", -1, 0}, {"1e3", -1, 0}, {"2E3", -1, 0}, {"-", -1, 0},
		{"x", -1, 0}, {"", -1, 0}, {"+1", -1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		long long v = 12345;
		const char *s = cases[i].s, *r = jscan_int(s, s + strlen(s), &v);
		assert_int_equal(r ? (long)(r - s) : -1, cases[i].at);
		if (r)
			assert_true(v == cases[i].v);
	}
	/* never past end */
	long long v;
	const char *d = "123";
	assert_ptr_equal(jscan_int(d, d + 2, &v), d + 2);
	assert_int_equal(v, 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ws),     cmocka_unit_test(test_skip_stops_exactly), cmocka_unit_test(test_depth),
		cmocka_unit_test(test_string), cmocka_unit_test(test_string_lim),        cmocka_unit_test(test_member),
		cmocka_unit_test(test_int),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
