/* test_http.c: the strict HTTP/1.1 parser (src/proto/http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_ok),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
