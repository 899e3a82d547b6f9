/* test_buf.c: the growable buffer with a hard maximum (src/core/buf.c). */
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

/* The buffer is exactly want[0..n) and NUL-terminated after it. */
static void expect_bytes(const struct buf *b, const char *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_non_null(b->data);
	assert_memory_equal(b->data, want, n);
	assert_int_equal(b->data[n], '\0');
	assert_true(b->cap >= n + 1);
}

static void test_init_append_reset(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 100);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 100);
	assert_int_equal(buf_append(&b, "", 0), 0); /* an empty append still gives a C string */
	expect_bytes(&b, "", 0);
	assert_int_equal(buf_append(&b, "ab\0c", 4), 0); /* bytes, not C strings */
	assert_int_equal(buf_putc(&b, 'd'), 0);
	assert_int_equal(buf_puts(&b, "ef"), 0);
	expect_bytes(&b, "ab\0cdef", 7);
	size_t cap = b.cap;
	char *data = b.data;
	buf_reset(&b); /* keeps the memory */
	expect_bytes(&b, "", 0);
	assert_int_equal(b.cap, cap);
	assert_ptr_equal(b.data, data);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	buf_free(&b); /* twice is harmless */
}

/* Every way of appending past the maximum fails with BUF_ETOOBIG and leaves
 * the buffer exactly as it was; the maximum itself is reachable. */
static void test_too_big_leaves_buffer_unchanged(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "12345"), 0);
	size_t cap = b.cap;
	assert_int_equal(buf_append(&b, "6789", 4), BUF_ETOOBIG);
	expect_bytes(&b, "12345", 5);
	assert_int_equal(buf_printf(&b, "%d", 6789), BUF_ETOOBIG);
	expect_bytes(&b, "12345", 5);
	char big[600];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_int_equal(buf_printf(&b, "%s", big), BUF_ETOOBIG); /* the long path (>= 256 bytes) */
	expect_bytes(&b, "12345", 5);
	/* json_escape: 3 plain bytes fit, then "\n" as \\n would pass the maximum */
	assert_int_equal(buf_json_escape(&b, "ab\n", 3), BUF_ETOOBIG);
	expect_bytes(&b, "12345", 5);
	assert_int_equal(buf_json_escape(&b, "a\x01", 2), BUF_ETOOBIG);
	expect_bytes(&b, "12345", 5);
	assert_int_equal(buf_reserve(&b, (size_t)-1), BUF_ETOOBIG); /* no overflow in len + extra */
	assert_int_equal(buf_reserve(&b, 4), BUF_ETOOBIG);
	expect_bytes(&b, "12345", 5);
	assert_int_equal(b.cap, cap);
	/* up to the maximum exactly */
	assert_int_equal(buf_json_escape(&b, "\"", 1), 0);
	assert_int_equal(buf_putc(&b, '8'), 0);
	expect_bytes(&b, "12345\\\"8", 8);
	assert_int_equal(buf_putc(&b, '9'), BUF_ETOOBIG);
	assert_int_equal(buf_append(&b, "", 0), 0); /* nothing more is still fine */
	expect_bytes(&b, "12345\\\"8", 8);
	buf_free(&b);
	/* a maximum of 0: only the empty string */
	buf_init(&b, 0);
	assert_int_equal(buf_putc(&b, 'x'), BUF_ETOOBIG);
	assert_int_equal(buf_puts(&b, ""), 0);
	expect_bytes(&b, "", 0);
	buf_free(&b);
}

static void test_printf_growth(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 20);
	/* around the 256-byte stack buffer of buf_vprintf: 255, 256, 257 bytes */
	char want[4000];
	size_t n = 0;
	for (int len = 254; len <= 258; len++) {
		assert_int_equal(buf_printf(&b, "%0*d", len, 7), 0);
		memset(want + n, '0', (size_t)len - 1);
		want[n + (size_t)len - 1] = '7';
		n += (size_t)len;
		expect_bytes(&b, want, n);
	}
	/* many small appends grow it; the contents stay exact */
	buf_reset(&b);
	struct buf ref;
	buf_init(&ref, 1 << 20);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(buf_printf(&b, "%d:%s,", i, i % 2 ? "odd" : "even"), 0);
		char item[32];
		int l = snprintf(item, sizeof item, "%d:%s,", i, i % 2 ? "odd" : "even");
		assert_int_equal(buf_append(&ref, item, (size_t)l), 0);
	}
	expect_bytes(&b, ref.data, ref.len);
	assert_true(b.len > 10000);
	buf_free(&ref);
	buf_free(&b);
}

static void test_json_escape(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 16);
	/* every control byte, then the two characters JSON requires escaped */
	char in[34];
	for (int c = 0; c < 32; c++)
		in[c] = (char)c;
	in[32] = '"';
	in[33] = '\\';
	assert_int_equal(buf_json_escape(&b, in, sizeof in), 0);
	const char *want = "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
			   "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c"
			   "\\u001d\\u001e\\u001f\\\"\\\\";
	expect_bytes(&b, want, strlen(want));
	/* everything else passes as it is: '/', DEL, UTF-8 bytes */
	buf_reset(&b);
	assert_int_equal(buf_json_escape(&b, "a/b\x7f\xc3\xa9 z", 8), 0);
	expect_bytes(&b, "a/b\x7f\xc3\xa9 z", 8);
	/* appends after what is there; runs between escapes are kept whole */
	buf_reset(&b);
	buf_puts(&b, "\"");
	assert_int_equal(buf_json_escape(&b, "say \"hi\"\n", 9), 0);
	buf_puts(&b, "\"");
	expect_bytes(&b, "\"say \\\"hi\\\"\\n\"", 14);
	/* round trip through the scanner: all 256 byte values come back */
	char all[256];
	for (int c = 0; c < 256; c++)
		all[c] = (char)c;
	buf_reset(&b);
	buf_putc(&b, '"');
	assert_int_equal(buf_json_escape(&b, all, sizeof all), 0);
	buf_putc(&b, '"');
	struct buf back;
	buf_init(&back, 1024);
	assert_ptr_equal(jscan_string(b.data, b.data + b.len, &back), b.data + b.len);
	expect_bytes(&back, all, sizeof all);
	buf_free(&back);
	buf_free(&b);
}

static void test_consume(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 64);
	buf_puts(&b, "12345678");
	buf_consume(&b, 0);
	expect_bytes(&b, "12345678", 8);
	buf_consume(&b, 3);
	expect_bytes(&b, "45678", 5);
	buf_puts(&b, "9");
	expect_bytes(&b, "456789", 6);
	buf_consume(&b, 5);
	expect_bytes(&b, "9", 1);
	buf_consume(&b, 1); /* all of it */
	expect_bytes(&b, "", 0);
	buf_puts(&b, "ab");
	buf_consume(&b, 10); /* more than there is: empty, not an underflow */
	expect_bytes(&b, "", 0);
	buf_free(&b);
}

static void test_steal(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 64);
	buf_puts(&b, "hello");
	size_t len = 0;
	char *p = buf_steal(&b, &len);
	assert_int_equal(len, 5);
	assert_string_equal(p, "hello");
	/* the buffer is empty, owns nothing, and keeps its maximum */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 64);
	assert_int_equal(buf_puts(&b, "again"), 0);
	expect_bytes(&b, "again", 5);
	assert_string_equal(p, "hello"); /* untouched by the buffer's new life */
	free(p);
	buf_free(&b);
	/* an empty buffer gives an empty C string the caller frees, never NULL */
	buf_init(&b, 64);
	p = buf_steal(&b, NULL);
	assert_non_null(p);
	assert_string_equal(p, "");
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_append_reset), cmocka_unit_test(test_too_big_leaves_buffer_unchanged),
		cmocka_unit_test(test_printf_growth),     cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_consume),           cmocka_unit_test(test_steal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
