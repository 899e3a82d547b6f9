/* test_sse.c: the SSE writer and incremental reader (src/proto/sse.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/sse.h"

struct got {
	char ev[64][64];
	size_t n;
};

static int collect(void *ctx, const char *p, size_t n)
{
	struct got *g = ctx;
	assert_true(n < sizeof g->ev[0] && g->n < 64);
	memcpy(g->ev[g->n], p, n);
	g->ev[g->n++][n] = '\0';
	return 0;
}

/* Feeds s cut into pieces of `step` bytes (0: whole). Returns sse_feed's last result. */
static int feed(struct sse_reader *r, const char *s, size_t len, size_t step, struct got *g)
{
	int rc = 0;
	if (!step)
		step = len ? len : 1;
	for (size_t off = 0; off < len && rc == 0; off += step)
		rc = sse_feed(r, s + off, len - off < step ? len - off : step, g ? collect : NULL, g);
	return rc;
}

static const char STREAM[] = "data: {\"a\":1}\n\n"
			     ": a comment line\n"
			     "event: message\n"
			     "data:{\"b\":2}\r\n\r\n"
			     "id: 7\n"
			     "data: \n\n"
			     "data: [DONE]\n\n"
			     "data: {\"after\":1}\n\n";

static void test_read_any_cut(void **state)
{
	(void)state;
	size_t len = strlen(STREAM);
	for (size_t step = 0; step <= len; step++) {
		struct sse_reader r;
		struct got g = {0};
		sse_reader_init(&r, 1 << 16);
		assert_int_equal(feed(&r, STREAM, len, step, &g), 1);
		assert_int_equal(g.n, 3);
		assert_string_equal(g.ev[0], "{\"a\":1}");
		assert_string_equal(g.ev[1], "{\"b\":2}"); /* no space, CRLF stripped */
		assert_string_equal(g.ev[2], "");
		assert_true(r.done);
		/* nothing is read after [DONE] */
		assert_int_equal(sse_feed(&r, "data: x\n", 8, collect, &g), 1);
		assert_int_equal(g.n, 3);
		sse_reader_free(&r);
	}
}

/* The router only tracks [DONE], with 8 bytes of state, however it is cut. */
static void test_track_done_split(void **state)
{
	(void)state;
	const char *ends[] = {"data: [DONE]\n\n", "data:[DONE]\r\n\r\n", "data: [DONE]\n"};
	for (size_t e = 0; e < 3; e++) {
		char s[256];
		int n = snprintf(s, sizeof s, "data: {\"choices\":[{\"text\":\"[DONE]\"}]}\n\n%s", ends[e]);
		for (size_t cut = 1; cut < (size_t)n; cut++) {
			struct sse_reader r;
			sse_reader_init(&r, 0);
			int first = sse_feed(&r, s, cut, NULL, NULL);
			if (first == 1) { /* the cut fell after the [DONE] line: done already */
				assert_true(r.done);
				sse_reader_free(&r);
				continue;
			}
			assert_int_equal(first, 0);
			int rc = sse_feed(&r, s + cut, (size_t)n - cut, NULL, NULL);
			assert_int_equal(rc, 1);
			assert_true(r.done);
			assert_int_equal(r.line.len, 0); /* tracking keeps nothing */
			sse_reader_free(&r);
		}
	}
	/* not [DONE]: a longer payload that starts like it, or [DONE] in a comment */
	struct sse_reader r;
	sse_reader_init(&r, 0);
	assert_int_equal(feed(&r, "data: [DONE]x\n\n: data: [DONE]\n\ndata: [DON\n\n", 44, 1, NULL), 0);
	assert_false(r.done);
	sse_reader_free(&r);
}

/* Work is linear: a huge stream fed one byte at a time examines each byte once. */
static void test_linear_trickle(void **state)
{
	(void)state;
	size_t n_ev = 2000, len = 0;
	char *s = malloc(n_ev * 64 + 32);
	for (size_t i = 0; i < n_ev; i++)
		len += (size_t)sprintf(s + len, "data: {\"choices\":[{\"text\":\"w%zu\"}]}\n\n", i);
	len += (size_t)sprintf(s + len, "data: [DONE]\n\n");
	struct sse_reader r;
	sse_reader_init(&r, 1 << 16);
	size_t count = 0;
	int rc = 0;
	for (size_t i = 0; i < len && rc == 0; i++) {
		struct got g = {0};
		rc = sse_feed(&r, s + i, 1, collect, &g);
		count += g.n;
	}
	assert_int_equal(rc, 1);
	assert_int_equal(count, n_ev);
	assert_int_equal(r.scanned, len - 1); /* each byte once; the blank line after [DONE] is never read */
	sse_reader_free(&r);
	/* a 4 MB data line fed in 1-byte pieces in tracking mode: constant memory, linear work */
	size_t big = 4u << 20;
	char *l = malloc(big + 16);
	memcpy(l, "data: ", 6);
	memset(l + 6, 'x', big);
	memcpy(l + 6 + big, "\n\n", 2);
	sse_reader_init(&r, 0);
	for (size_t i = 0; i < big + 8; i += 7)
		assert_int_equal(sse_feed(&r, l + i, big + 8 - i < 7 ? big + 8 - i : 7, NULL, NULL), 0);
	assert_int_equal(r.scanned, big + 8);
	assert_int_equal(r.line.cap, 0);
	sse_reader_free(&r);
	free(l);
	free(s);
}

static void test_limit_and_write(void **state)
{
	(void)state;
	struct sse_reader r;
	sse_reader_init(&r, 16);
	struct got g = {0};
	assert_int_equal(feed(&r, "data: 0123456789abcdef0\n\n", 25, 0, &g), -1);
	sse_reader_free(&r);
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(sse_write(&b, "{\"x\":1}", 7), 0);
	assert_int_equal(sse_write_done(&b), 0);
	assert_string_equal(b.data, "data: {\"x\":1}\n\ndata: [DONE]\n\n");
	sse_reader_init(&r, 1024);
	memset(&g, 0, sizeof g);
	assert_int_equal(feed(&r, b.data, b.len, 3, &g), 1);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.ev[0], "{\"x\":1}");
	sse_reader_free(&r);
	buf_free(&b);
}

static int stop_at_second(void *ctx, const char *p, size_t n)
{
	(void)p;
	(void)n;
	return ++*(int *)ctx == 2 ? 7 : 0;
}

static void test_callback_stops(void **state)
{
	(void)state;
	struct sse_reader r;
	sse_reader_init(&r, 1024);
	int k = 0;
	const char *s = "data: a\n\ndata: b\n\ndata: c\n\n";
	assert_int_equal(sse_feed(&r, s, strlen(s), stop_at_second, &k), 7);
	assert_int_equal(k, 2);
	sse_reader_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_any_cut), cmocka_unit_test(test_track_done_split),
		cmocka_unit_test(test_linear_trickle), cmocka_unit_test(test_limit_and_write),
		cmocka_unit_test(test_callback_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
