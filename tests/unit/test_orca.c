/* test_orca.c: in-band load reports (src/proto/orca.c): vLLM's two forms, the
 * engine's writer read back, and what the strict parser refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "proto/orca.h"

static int parse(const char *s, struct orca_load *l)
{
	char err[200];
	return orca_parse(s, strlen(s), l, err, sizeof err);
}

static void test_format_header(void **state)
{
	(void)state;
	assert_int_equal(orca_format_parse("text", 4), ORCA_TEXT);
	assert_int_equal(orca_format_parse(" TEXT ", 6), ORCA_TEXT);
	assert_int_equal(orca_format_parse("Json", 4), ORCA_JSON);
	assert_int_equal(orca_format_parse("bin", 3), ORCA_NONE);
	assert_int_equal(orca_format_parse("", 0), ORCA_NONE);
	assert_int_equal(orca_format_parse("texts", 5), ORCA_NONE);
	assert_int_equal(orca_format_parse(NULL, 0), ORCA_NONE);
}

/* What vLLM writes (orca_metrics.py), in both forms, and with two engines (data parallelism). */
static void test_vllm_forms(void **state)
{
	(void)state;
	struct orca_load l;
	assert_int_equal(parse("TEXT named_metrics.kv_cache_usage_perc=0.4, named_metrics.num_requests_waiting=3.0", &l), 0);
	assert_int_equal(l.have, ORCA_HAVE_KV | ORCA_HAVE_WAITING);
	assert_true(l.kv_usage == 0.4 && l.waiting == 3.0);
	assert_int_equal(parse("JSON {\"named_metrics\": {\"kv_cache_usage_perc\": 0.25, \"num_requests_waiting\": 7.0}}", &l),
			 0);
	assert_true(l.kv_usage == 0.25 && l.waiting == 7.0 && l.have == (ORCA_HAVE_KV | ORCA_HAVE_WAITING));
	assert_int_equal(parse("TEXT named_metrics.kv_cache_usage_perc=0.2, named_metrics.num_requests_waiting=1.0, "
			       "named_metrics.kv_cache_usage_perc=0.6, named_metrics.num_requests_waiting=2.0",
			       &l),
			 0);
	assert_true(l.waiting == 3.0 && l.kv_usage > 0.399 && l.kv_usage < 0.401);
	/* no metric at all: an empty report, not an error */
	assert_int_equal(parse("TEXT ", &l), 0);
	assert_int_equal(l.have, 0);
	assert_int_equal(parse("JSON {\"named_metrics\": {}}", &l), 0);
	/* without the prefix; ORCA's top-level fields; unknown keys skipped */
	assert_int_equal(parse("named_metrics.kv_cache_usage_perc=0,named_metrics.num_requests_waiting=0", &l), 0);
	assert_int_equal(l.have, ORCA_HAVE_KV | ORCA_HAVE_WAITING);
	assert_int_equal(parse("TEXT cpu_utilization=0.3, mem_utilization=0.8, rps_fractional=10.0, eps=1, "
			       "named_metrics.custom_metric_util=0.4, utilization.gpu=1e-05",
			       &l),
			 0);
	assert_int_equal(l.have, ORCA_HAVE_CPU | ORCA_HAVE_MEM);
	assert_int_equal(l.n_items, 6);
	assert_int_equal(parse("{\"cpu_utilization\": 0.5, \"named_metrics\": {\"num_requests_running\": 4}}", &l), 0);
	assert_true(l.running == 4 && l.cpu_utilization == 0.5);
}

static void test_write_read_back(void **state)
{
	(void)state;
	struct orca_load in = {.have = ORCA_HAVE_KV | ORCA_HAVE_WAITING | ORCA_HAVE_RUNNING,
			       .kv_usage = 0.1234567,
			       .waiting = 3,
			       .running = 17};
	for (int f = ORCA_TEXT; f <= ORCA_JSON; f++) {
		struct buf b;
		buf_init(&b, 4096);
		orca_write(&b, (enum orca_format)f, &in);
		buf_putc(&b, '\0');
		struct orca_load out;
		assert_int_equal(parse(b.data, &out), 0);
		assert_int_equal(out.have, in.have);
		assert_true(out.kv_usage == in.kv_usage && out.waiting == 3 && out.running == 17);
		if (f == ORCA_TEXT)
			assert_string_equal(b.data, "TEXT named_metrics.kv_cache_usage_perc=0.1234567, "
						    "named_metrics.num_requests_waiting=3.0, named_metrics.num_requests_running=17.0");
		else
			assert_string_equal(b.data, "JSON {\"named_metrics\": {\"kv_cache_usage_perc\": 0.1234567, "
						    "\"num_requests_waiting\": 3.0, \"num_requests_running\": 17.0}}");
		buf_free(&b);
	}
}

static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"TEXT named_metrics.num_requests_waiting=",         /* no value */
		"TEXT named_metrics.num_requests_waiting=3.0,",     /* trailing comma */
		"TEXT ,named_metrics.num_requests_waiting=3",       /* empty item */
		"TEXT named_metrics.num_requests_waiting = 3",      /* spaces around = */
		"TEXT named_metrics.num_requests_waiting=nan",      /* Python's repr of NaN */
		"TEXT named_metrics.num_requests_waiting=inf",
		"TEXT named_metrics.num_requests_waiting=0x10",
		"TEXT named_metrics.num_requests_waiting=1e999",    /* not finite once read */
		"TEXT named_metrics.num_requests_waiting=-1",       /* a negative count */
		"TEXT named_metrics.kv_cache_usage_perc=1.5",       /* usage past 1 */
		"TEXT named metrics.x=1",                           /* space in the key */
		"TEXT =1",
		"TEXT named_metrics.num_requests_waiting=.5",
		"TEXT named_metrics.num_requests_waiting=1.",
		"JSON {\"named_metrics\": {\"kv_cache_usage_perc\": NaN}}",
		"JSON {\"named_metrics\": {\"num_requests_waiting\": \"3\"}}",
		"JSON {\"named_metrics\": {\"a\": 1, \"a\": 2}}",   /* duplicate key */
		"JSON [1, 2]",
		"JSON {\"named_metrics\": {\"x\": {\"y\": 1}}}",
		"JSON {\"named_metrics\": {\"x\": 1}",
		"JSON {\"a\": true}",
		"BIN CgQIARAC",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct orca_load l;
		char err[200];
		int rc = orca_parse(bad[i], strlen(bad[i]), &l, err, sizeof err);
		if (rc == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
		assert_int_equal(l.have, 0);
	}
	/* limits: items and length */
	char big[ORCA_MAX_VALUE + 2];
	memset(big, ' ', sizeof big);
	struct orca_load l;
	char err[200];
	assert_int_equal(orca_parse(big, sizeof big, &l, err, sizeof err), PLB_ETOOBIG);
	char many[4096] = "TEXT ";
	for (int i = 0; i < 65; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%sa%d=1", i ? "," : "", i);
	assert_int_equal(orca_parse(many, strlen(many), &l, err, sizeof err), PLB_ETOOBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_header),
		cmocka_unit_test(test_vllm_forms),
		cmocka_unit_test(test_write_read_back),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
