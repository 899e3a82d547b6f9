/* test_http.c: the strict HTTP/1.1 parser (src/proto/http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/http.h"

static long req(const char *s, struct http_msg *m, struct http_error *e)
{
	return http_parse_request(s, strlen(s), 8192, m, e);
}

static void test_request_ok(void **state)
{
	(void)state;
	struct http_msg m;
	struct http_error e;
	const char *s = "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
			"X-Empty:\r\nAccept:  */*  \r\n\r\nbody...";
	long n = req(s, &m, &e);
	assert_int_equal(n, (long)(strstr(s, "body") - s));
	assert_int_equal(m.method_len, 4);
	assert_memory_equal(m.target, "/v1/completions?x=1", m.target_len);
	assert_int_equal(m.minor, 1);
	assert_int_equal(m.content_length, 12);
	assert_true(m.keep_alive);
	const struct http_header *h = http_find(&m, "accept");
	assert_non_null(h);
	assert_int_equal(h->value_len, 3);
	assert_int_equal(http_find(&m, "x-empty")->value_len, 0);
	/* incomplete heads need more bytes */
	assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\n", &m, &e), 0);
	assert_int_equal(req("GET / HTT", &m, &e), 0);
	/* HTTP/1.0: no Host needed, not keep-alive unless asked */
	assert_true(req("GET / HTTP/1.0\r\n\r\n", &m, &e) > 0);
	assert_false(m.keep_alive);
	assert_true(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &m, &e) > 0);
	assert_true(m.keep_alive);
	assert_true(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", &m, &e) > 0);
	assert_false(m.keep_alive);
	assert_true(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &m, &e) > 0);
	assert_true(m.chunked);
	assert_int_equal(m.content_length, -1);
}

static void bad(const char *s, int status)
{
	struct http_msg m;
	struct http_error e = {0};
	long n = http_parse_request(s, strlen(s), 8192, &m, &e);
	if (n != -1 || e.status != status)
		fprintf(stderr, "request %s -> %ld status %d (%s)\n", s, n, e.status, e.what ? e.what : "");
	assert_int_equal(n, -1);
	assert_int_equal(e.status, status);
}

/* The smuggling and hygiene cases: each rejected with the right status. */
static void test_request_rejects(void **state)
{
	(void)state;
	bad("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);                  /* bare LF */
	bad("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);                  /* bare LF in header */
	bad("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);             /* bare CR */
	bad("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);     /* obs-fold */
	bad("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);               /* space before colon */
	bad("GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", 400);
	bad("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400);            /* control in value */
	bad("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);               /* double space */
	bad("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
	bad("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	bad("GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	bad("GET / HTTP/3\r\nHost: a\r\n\r\n", 505);
	bad("GET / FTP/1.1\r\nHost: a\r\n\r\n", 400);
	bad("GET / HTTP/1.1\r\n\r\n", 400);                           /* no Host */
	bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
	bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501);
	bad("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400);
	bad("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	bad("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417);
	char big[9000];
	memset(big, 'a', sizeof big);
	memcpy(big, "GET /", 5);
	big[sizeof big - 1] = '\0';
	bad(big, 431);
}

static int dechunk(const char *in, size_t split, struct buf *out, struct http_error *e)
{
	struct http_chunked c = {0};
	size_t used = 0, n = strlen(in);
	int r = http_chunked_feed(&c, in, split, &used, out, 1 << 20, e);
	if (r != 0)
		return r;
	size_t used2 = 0;
	r = http_chunked_feed(&c, in + used, n - used, &used2, out, 1 << 20, e);
	return r;
}

static void test_chunked(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 20);
	struct http_error e;
	const char *ok = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
	for (size_t split = 0; split <= strlen(ok); split++) {
		buf_reset(&out);
		assert_int_equal(dechunk(ok, split, &out, &e), 1);
		assert_string_equal(out.data, "hello 0123456789");
	}
	const char *bads[] = {"5\r\nhelloX\r\n0\r\n\r\n", "5\nhello\r\n0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n",
			      "fffffffffffffffff\r\n", "5 \r\nhello\r\n0\r\n\r\n", "\r\n", "0x5\r\nhello\r\n"};
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
		buf_reset(&out);
		assert_int_equal(dechunk(bads[i], 0, &out, &e), -1);
	}
	/* the decoded size is bounded */
	struct http_chunked c = {0};
	size_t used;
	buf_reset(&out);
	assert_int_equal(http_chunked_feed(&c, "10\r\n", 4, &used, &out, 8, &e), -1);
	assert_int_equal(e.status, 413);
	buf_free(&out);
}

/* http_chunked_next hands the data over as slices of its input, one per
 * call, never copied; fed in two pieces cut anywhere, the slices make the
 * same body as http_chunked_feed, and the bytes after the body are left. */
static void test_chunked_slices(void **state)
{
	(void)state;
	const char *in = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
	size_t n = strlen(in);
	struct buf body;
	buf_init(&body, 1 << 20);
	for (size_t split = 0; split <= n - 4; split++) {
		struct http_chunked c = {0};
		struct http_error e;
		buf_reset(&body);
		size_t off = 0;
		int rc = 0, slices = 0;
		for (size_t end = split; rc == 0 && off < n;) {
			size_t used, dl;
			const char *d;
			rc = http_chunked_next(&c, in + off, end - off, &used, &d, &dl, 1 << 20, &e);
			assert_true(rc >= 0);
			if (dl) {
				assert_true(d >= in + off && d + dl <= in + end); /* a slice of the input */
				buf_append(&body, d, dl);
				slices++;
			}
			off += used;
			if (off == end)
				end = n; /* the second piece */
		}
		assert_int_equal(rc, 1);
		assert_string_equal(body.data, "hello 0123456789");
		assert_true(slices >= 3);
		assert_string_equal(in + off, "NEXT");
	}
	buf_free(&body);
}

static void test_response(void **state)
{
	(void)state;
	struct http_msg m;
	struct http_error e;
	const char *s = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
	assert_int_equal(http_parse_response(s, strlen(s), 8192, &m, &e), (long)strlen(s));
	assert_int_equal(m.status, 200);
	assert_true(m.chunked);
	s = "HTTP/1.1 404 \r\ncontent-length: 2\r\n\r\n";
	assert_true(http_parse_response(s, strlen(s), 8192, &m, &e) > 0);
	assert_int_equal(m.status, 404);
	assert_int_equal(m.content_length, 2);
	s = "HTTP/1.1 2000 OK\r\n\r\n";
	assert_int_equal(http_parse_response(s, strlen(s), 8192, &m, &e), -1);
	assert_int_equal(e.status, 502);
}

/* A head of exactly n bytes (n > 2100): request line, Host, X-Pad headers of
 * 1000 bytes, the last one taking what is left. */
static void make_head(struct buf *h, size_t n)
{
	buf_reset(h);
	buf_puts(h, "GET /health HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0;; i++) {
		size_t left = n - 2 - h->len; /* room before the blank line */
		size_t line = left >= 2000 ? 1000 : left, start = h->len;
		buf_printf(h, "X-Pad-%03d: ", i);
		while (h->len < start + line - 2)
			buf_putc(h, 'v');
		buf_puts(h, "\r\n");
		if (line == left)
			break;
	}
	buf_puts(h, "\r\n");
}

/* The end of a head found incrementally: fed one byte at a time, the search
 * never goes back over bytes it has passed (they are overwritten with LFs,
 * which a re-scan would report as bare LFs), so a maximal head costs O(n)
 * however it is split. The old reader re-parsed from the start on each read. */
static void test_head_end_incremental(void **state)
{
	(void)state;
	const size_t max_head = 64 * 1024;
	struct buf h;
	buf_init(&h, 1 << 20);
	make_head(&h, max_head);
	assert_int_equal(h.len, max_head);
	struct http_msg m;
	struct http_error e;
	assert_int_equal(http_parse_request(h.data, h.len, max_head, &m, &e), (long)max_head);
	assert_true(m.n_headers > 50);

	char *work = malloc(h.len);
	assert_non_null(work);
	size_t scanned = 0, poisoned = 0, examined = 0;
	long r = 0;
	for (size_t len = 1; len <= h.len; len++) {
		work[len - 1] = h.data[len - 1];
		size_t before = scanned;
		r = http_head_end(work, len, &scanned);
		/* the contract: reads buf[before - 3 .. len) only */
		examined += len - (before > 3 ? before - 3 : 0);
		if (len < h.len) {
			assert_int_equal(r, 0);
			assert_true(scanned >= before && scanned + 1 >= len); /* at most a final CR is pending */
			/* bytes behind the look-back window must never be read again */
			for (; poisoned + 3 < scanned; poisoned++)
				work[poisoned] = '\n';
		}
	}
	assert_int_equal(r, (long)h.len);
	assert_int_equal(scanned, h.len);
	assert_true(examined <= 5 * h.len); /* linear: the old way was ~n*n/2 */
	fprintf(stderr, "    %zu-byte head fed byte by byte: %zu bytes examined\n", h.len, examined);

	/* a CRLF CRLF split at any point across two reads */
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
	size_t hl = strlen(s) - 4;
	for (size_t split = 0; split <= strlen(s); split++) {
		scanned = 0;
		r = http_head_end(s, split, &scanned);
		if (r == 0)
			r = http_head_end(s, strlen(s), &scanned);
		assert_int_equal(r, (long)hl);
	}
	/* bare CR / LF: reported as soon as seen; a final CR waits for its successor */
	scanned = 0;
	assert_int_equal(http_head_end("GET / HTTP/1.1\r", 15, &scanned), 0);
	assert_int_equal(scanned, 14);
	assert_int_equal(http_head_end("GET / HTTP/1.1\rX", 16, &scanned), -1);
	scanned = 0;
	assert_int_equal(http_head_end("GET / HTTP/1.1\nHost", 19, &scanned), -1);
	scanned = 0;
	assert_int_equal(http_head_end("\n", 1, &scanned), -1);
	scanned = 0;
	const char *lf = "GET / HTTP/1.1\r\nHost: a\n\r\n";
	assert_int_equal(http_head_end(lf, strlen(lf), &scanned), -1);
	assert_int_equal(http_parse_request(lf, strlen(lf), 8192, &m, &e), -1);
	assert_int_equal(e.status, 400);
	free(work);
	buf_free(&h);
}

/* The chunked decoder fed one byte per call: every call consumes its byte
 * (nothing is left for the caller to feed again), so the cost is linear. */
static void test_chunked_bytewise(void **state)
{
	(void)state;
	struct buf body, expect, out;
	buf_init(&body, 1 << 24);
	buf_init(&expect, 1 << 24);
	buf_init(&out, 1 << 24);
	for (int i = 0; expect.len < (1 << 20); i++) {
		size_t n = 1 + (size_t)(i * 7919) % 8000;
		buf_printf(&body, "%zx%s\r\n", n, i % 3 ? "" : ";ext=\"x\"");
		for (size_t k = 0; k < n; k++) {
			char ch = (char)('a' + (i + k) % 26);
			buf_putc(&body, ch);
			buf_putc(&expect, ch);
		}
		buf_puts(&body, "\r\n");
	}
	buf_puts(&body, "0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n");
	struct http_chunked c = {0};
	struct http_error e;
	size_t total = 0;
	int r = 0;
	for (size_t i = 0; i < body.len; i++) {
		size_t used = 0;
		r = http_chunked_feed(&c, body.data + i, 1, &used, &out, 1 << 24, &e);
		assert_int_equal(used, 1);
		total += used;
		if (i + 1 < body.len)
			assert_int_equal(r, 0);
	}
	assert_int_equal(r, 1);
	assert_int_equal(total, body.len);
	assert_int_equal(out.len, expect.len);
	assert_memory_equal(out.data, expect.data, expect.len);
	buf_free(&body);
	buf_free(&expect);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_ok),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_slices),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_head_end_incremental),
		cmocka_unit_test(test_chunked_bytewise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
