/* test_stats.c: benchmark metrics and vLLM's printed block (src/core/stats.c).
 * tests/data/bench_block.golden was printed by Python's own str.format with the
 * format strings of benchmark_serving.py, from the metrics computed by hand
 * below (see the comment at each number). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/stats.h"

static float itl1[] = {0.1f, 0.1f, 0.1f, 0.1f}, itl2[] = {0.1f, 0.1f};

static void example(struct bench_metrics *m, int with_slo)
{
	struct req_result r[4] = {
		{1, 0.1, 0.5, itl1, 4, 10, 5, 4, 16},  /* TPOT (0.5-0.1)/4 = 100 ms; predicted 16, off by 12 */
		{1, 0.2, 0.4, itl2, 2, 20, 3, 10, 40}, /* TPOT (0.4-0.2)/2 = 100 ms; predicted 40, off by 30 */
		{1, 0.3, 0.3, NULL, 0, 30, 1, -1, 7},  /* one token: no TPOT sample; nothing reported */
		{0, 0, 0, NULL, 0, 40, 0, -1, 5},      /* failed: counted apart */
	};
	double pcts[] = {99, 99.9};
	struct goodput_slo slo = {250, -1, -1}; /* TTFT <= 250 ms: 2 good of 3 */
	assert_int_equal(stats_compute(r, 4, 2.0, pcts, 2, with_slo ? &slo : NULL, m), 0);
}

static void test_metrics(void **state)
{
	(void)state;
	struct bench_metrics m;
	example(&m, 1);
	assert_int_equal(m.completed, 3);
	assert_int_equal(m.failed, 1);
	assert_int_equal(m.total_input, 60);
	assert_int_equal(m.total_output, 9);
	assert_float_equal(m.request_throughput, 1.5, 1e-12);
	assert_float_equal(m.output_throughput, 4.5, 1e-12);
	assert_float_equal(m.total_token_throughput, 34.5, 1e-12);
	assert_float_equal(m.request_goodput, 1.0, 1e-12);
	/* TTFT 100, 200, 300 ms: population std = sqrt(20000/3) */
	assert_float_equal(m.m[M_TTFT].mean, 200, 1e-9);
	assert_float_equal(m.m[M_TTFT].median, 200, 1e-9);
	assert_float_equal(m.m[M_TTFT].std, sqrt(20000.0 / 3), 1e-9);
	assert_float_equal(m.m[M_TTFT].pct[0], 298, 1e-9); /* rank 1.98: 200 + 0.98 * 100 */
	assert_float_equal(m.m[M_TTFT].pct[1], 299.8, 1e-9);
	assert_float_equal(m.m[M_TPOT].mean, 100, 1e-9);
	assert_float_equal(m.m[M_ITL].mean, 100, 1e-9); /* 6 pooled gaps */
	assert_float_equal(m.m[M_E2EL].median, 400, 1e-9);
	assert_float_equal(m.m[M_E2EL].pct[0], 498, 1e-9);
	/* cache hit rate counts only requests whose server reported it */
	assert_int_equal(m.cached_tokens, 14);
	assert_int_equal(m.prompt_tokens_cached_known, 30);
	/* predictions count where the server reported too: 2 of them */
	assert_int_equal(m.pred_n, 2);
	assert_float_equal(m.pred_tokens, 56, 0);
	assert_float_equal(m.pred_reported, 14, 0);
	assert_float_equal(m.pred_abs_err, 42, 0);
	assert_int_equal(m.pred_within_block, 1);
	double v[] = {1, 2, 3, 4};
	assert_float_equal(stats_percentile(v, 4, 50), 2.5, 1e-12);
	assert_float_equal(stats_percentile(v, 4, 100), 4, 1e-12);
	assert_float_equal(stats_percentile(v, 1, 99), 1, 1e-12);
}

static void test_block_golden(void **state)
{
	(void)state;
	struct bench_metrics m;
	example(&m, 1);
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(stats_format(&m, 0xF, &b), 0);
	FILE *f = fopen("tests/data/bench_block.golden", "r");
	assert_non_null(f);
	char want[8192];
	size_t n = fread(want, 1, sizeof want - 1, f);
	fclose(f);
	want[n] = 0;
	if (strcmp(b.data, want) != 0)
		fprintf(stderr, "got:\n%s\nwant:\n%s\n", b.data, want);
	assert_string_equal(b.data, want);
	/* the seed's block: no goodput line, TTFT/TPOT/ITL only */
	example(&m, 0);
	buf_reset(&b);
	stats_format(&m, (1u << M_TTFT) | (1u << M_TPOT) | (1u << M_ITL), &b);
	assert_null(strstr(b.data, "goodput"));
	assert_null(strstr(b.data, "End-to-end"));
	assert_non_null(strstr(b.data, "---------------Time to First Token----------------\n"));
	assert_non_null(strstr(b.data, "-----Time per Output Token (excl. 1st token)------\n"));
	assert_non_null(strstr(b.data, "Successful requests:                     3         \n"));
	buf_free(&b);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The percentiles by selection equal numpy's by a full sort, on random
 * samples with many ties, sorted, reversed and constant inputs. */
static void test_percentiles_by_selection(void **state)
{
	(void)state;
	uint64_t x = 42;
	for (int round = 0; round < 400; round++) {
		size_t n = 1 + (size_t)(round * 37 % 1000);
		struct req_result *r = calloc(n, sizeof *r);
		double *ttft = calloc(n, sizeof *ttft);
		for (size_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			double v = round % 4 == 0 ? (double)(x >> 60) / 8.0	   /* many ties */
				   : round % 4 == 1 ? (double)i / 1000.0	   /* sorted */
				   : round % 4 == 2 ? (double)(n - i) / 1000.0 /* reversed */
						    : (double)(x >> 11) / 9e15; /* spread */
			r[i] = (struct req_result){.success = 1, .ttft = v, .latency = v + 1, .prompt_len = 1, .output_len = 1,
						   .cached_tokens = -1};
			ttft[i] = v;
		}
		double pcts[] = {0, 25, 50, 90, 99, 99.9, 100};
		struct bench_metrics m;
		assert_int_equal(stats_compute(r, n, 1, pcts, 7, NULL, &m), 0);
		qsort(ttft, n, sizeof *ttft, cmp_dbl);
		for (int k = 0; k < 7; k++)
			assert_float_equal(m.m[M_TTFT].pct[k], stats_percentile(ttft, n, pcts[k]) * 1000, 1e-9);
		assert_float_equal(m.m[M_TTFT].median, stats_percentile(ttft, n, 50) * 1000, 1e-9);
		free(r);
		free(ttft);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_metrics), cmocka_unit_test(test_block_golden), cmocka_unit_test(test_percentiles_by_selection)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
