/* test_proxy.c: the request lifecycle's decisions (src/core/proxy.c), every
 * path without a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/proxy.h"

/* Connect failures and 502/503 answers are retried on other backends, at most
 * max_retries times; then the client gets 502 (or 504 for a connect timeout). */
static void test_retry_then_fail(void **state)
{
	(void)state;
	struct proxy_req r = {0};
	struct proxy_decision d = proxy_on_end(&r, 2, PROXY_END_CONNECT, "connection refused");
	assert_int_equal(d.act, PROXY_RETRY);
	assert_int_equal(d.status, 502);
	proxy_retry(&r, 3);
	assert_int_equal(r.n_tried, 1);
	assert_int_equal(r.tried[0], 3);
	/* the second backend answers 503: held back, retried */
	d = proxy_on_head(&r, 2, 503);
	assert_int_equal(d.act, PROXY_RETRY);
	d = proxy_on_end(&r, 2, PROXY_END_OK, NULL);
	assert_int_equal(d.act, PROXY_RETRY);
	assert_int_equal(d.status, 503); /* counted as what the backend said */
	proxy_retry(&r, 5);
	/* the third backend is lost holding the request: no retries left */
	d = proxy_on_end(&r, 2, PROXY_END_LOST, "connection reset");
	assert_int_equal(d.act, PROXY_FAIL);
	assert_int_equal(d.status, 502);
	assert_string_equal(d.msg, "connection reset");
	/* with no retries at all, a 503 is relayed as it is */
	struct proxy_req s = {0};
	d = proxy_on_head(&s, 0, 503);
	assert_int_equal(d.act, PROXY_RELAY);
	assert_int_equal(d.status, 503);
	/* every backend refused: 502 with the reason */
	struct proxy_req t = {0};
	assert_int_equal(proxy_on_head(&t, 1, 502).act, PROXY_RETRY);
	proxy_retry(&t, 0);
	assert_int_equal(proxy_on_head(&t, 1, 502).act, PROXY_RELAY);
	struct proxy_req u = {0};
	d = proxy_on_end(&u, 0, PROXY_END_CTIMEOUT, NULL);
	assert_int_equal(d.act, PROXY_FAIL);
	assert_int_equal(d.status, 504);
}

/* Once the client has the head, nothing is retried: a failure cuts the stream. */
static void test_after_head(void **state)
{
	(void)state;
	struct proxy_req r = {0};
	assert_int_equal(proxy_on_head(&r, 2, 200).act, PROXY_RELAY);
	r.head_sent = 1;
	struct proxy_decision d = proxy_on_end(&r, 2, PROXY_END_LOST, "reset");
	assert_int_equal(d.act, PROXY_CUT);
	d = proxy_on_end(&r, 2, PROXY_END_PROTO, NULL);
	assert_int_equal(d.act, PROXY_CUT);
	d = proxy_on_end(&r, 2, PROXY_END_OK, NULL);
	assert_int_equal(d.act, PROXY_DONE);
	assert_int_equal(d.status, 200);
	/* a 503 head after the client has another head cannot happen; a 503 as the first head with
	 * retries exhausted is relayed */
	d = proxy_on_timeout(&r, 0);
	assert_int_equal(d.act, PROXY_CUT);
	struct proxy_req s = {0};
	d = proxy_on_timeout(&s, 1);
	assert_int_equal(d.act, PROXY_FAIL);
	assert_int_equal(d.status, 504);
}

/* The tried list bounds the retries, whatever max_retries says. */
static void test_tried_bound(void **state)
{
	(void)state;
	struct proxy_req r = {0};
	for (int i = 0; i < LB_MAX_TRIED; i++) {
		assert_int_equal(proxy_on_end(&r, 1000, PROXY_END_CONNECT, NULL).act, PROXY_RETRY);
		proxy_retry(&r, i);
	}
	assert_int_equal(proxy_on_end(&r, 1000, PROXY_END_CONNECT, NULL).act, PROXY_FAIL);
	assert_int_equal(r.n_tried, LB_MAX_TRIED);
}

/* A kept connection the backend had closed (nothing read): sent again to the
 * same backend, no retry counted, at most PROXY_MAX_RESENDS times; then, or
 * once the client has the head, or after a held-back 503, it is a lost
 * connection like any other. */
static void test_stale_resent(void **state)
{
	(void)state;
	struct proxy_req r = {0};
	struct proxy_decision d = proxy_on_end(&r, 0, PROXY_END_STALE, "kept connection closed");
	assert_int_equal(d.act, PROXY_RESEND); /* even with no retries allowed */
	for (int i = 0; i < PROXY_MAX_RESENDS; i++) {
		assert_int_equal(proxy_on_end(&r, 0, PROXY_END_STALE, NULL).act, PROXY_RESEND);
		proxy_resent(&r);
	}
	assert_int_equal(r.retries, 0);
	assert_int_equal(r.n_tried, 0);
	d = proxy_on_end(&r, 0, PROXY_END_STALE, "kept connection closed");
	assert_int_equal(d.act, PROXY_FAIL); /* the bound: judged as lost, and no retry is left */
	assert_int_equal(d.status, 502);
	assert_int_equal(proxy_on_end(&r, 1, PROXY_END_STALE, NULL).act, PROXY_RETRY); /* lost: retried elsewhere */
	proxy_retry(&r, 4);
	assert_int_equal(r.resends, 0); /* a new backend, a new count */
	assert_int_equal(proxy_on_end(&r, 1, PROXY_END_STALE, NULL).act, PROXY_RESEND);
	struct proxy_req h = {0};
	proxy_on_head(&h, 2, 200);
	h.head_sent = 1;
	assert_int_equal(proxy_on_end(&h, 2, PROXY_END_STALE, NULL).act, PROXY_CUT);
	struct proxy_req q = {0};
	assert_int_equal(proxy_on_head(&q, 2, 503).act, PROXY_RETRY);
	assert_int_equal(proxy_on_end(&q, 2, PROXY_END_STALE, NULL).act, PROXY_RETRY);
}

static void test_finish_once_and_passive(void **state)
{
	(void)state;
	struct proxy_req r = {0};
	assert_int_equal(proxy_finish(&r), 1);
	assert_int_equal(proxy_finish(&r), 0);
	assert_int_equal(proxy_finish(&r), 0);
	int n = 0;
	assert_int_equal(proxy_passive_failure(&n, 3), 0);
	assert_int_equal(proxy_passive_failure(&n, 3), 0);
	assert_int_equal(proxy_passive_failure(&n, 3), 1);
	assert_int_equal(proxy_passive_failure(&n, 3), 1); /* still over: ejected if it is back in */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_then_fail),
		cmocka_unit_test(test_after_head),
		cmocka_unit_test(test_tried_bound),
		cmocka_unit_test(test_stale_resent),
		cmocka_unit_test(test_finish_once_and_passive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
