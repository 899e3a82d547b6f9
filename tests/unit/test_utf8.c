/* test_utf8.c: src/core/utf8.c (buf.c and jscan.c: test_buf.c, test_jscan.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/utf8.h"

static void test_decode(void **state)
{
	(void)state;
	uint32_t cp;
	assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20AC);
	assert_int_equal(utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1F600);
	assert_int_equal(utf8_decode((const unsigned char *)"\xc0\x80", 2, &cp), 0);     /* overlong */
	assert_int_equal(utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0); /* surrogate */
	assert_int_equal(utf8_decode((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0);
	assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp), 0); /* truncated */
	assert_int_equal(utf8_valid_prefix("abc\xff", 4), 3);
	assert_int_equal(utf8_valid_prefix("0123456789abcdef\xc3\xa9", 18), 18);
}

static void test_sanitize(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 100);
	/* maximal subparts: E2 82 is one, F0 alone is one, 80 is one */
	assert_int_equal(utf8_sanitize("a\xe2\x82z\xf0\x80", 6, &b), 0);
	assert_string_equal(b.data, "a\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd");
	buf_free(&b);
}

static void test_prefix_and_strip(void **state)
{
	(void)state;
	const char *s = "h\xc3\xa9llo \xf0\x9f\x98\x80!";
	assert_int_equal(utf8_prefix_bytes(s, strlen(s), 2), 3);
	assert_int_equal(utf8_prefix_bytes(s, strlen(s), 7), 11);
	assert_int_equal(utf8_prefix_bytes(s, strlen(s), 100), strlen(s));
	size_t a, l;
	const char *t = " \t\xe3\x80\x80hi there\n\xc2\xa0";
	utf8_strip(t, strlen(t), &a, &l);
	assert_int_equal(l, 8);
	assert_memory_equal(t + a, "hi there", 8);
	utf8_strip("   ", 3, &a, &l);
	assert_int_equal(l, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_prefix_and_strip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
