/* test_hist.c: Prometheus histograms and the text exposition (src/core/hist.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/hist.h"

static const double bounds[] = {0.1, 0.5, 1, 5};

/* Bucket counts as stored (not cumulative): counts[i] for le=bounds[i], counts[n] for +Inf only. */
static void expect_counts(const struct hist *h, const uint64_t *want)
{
	for (size_t i = 0; i <= h->n; i++)
		assert_int_equal(h->counts[i], want[i]);
}

/* A bucket's bound is an inclusive upper bound, as Prometheus's `le`
 * (less than or equal): a value on an edge counts in that bucket. */
static void test_edges_inclusive(void **state)
{
	(void)state;
	struct hist h;
	hist_init(&h, bounds, 4);
	assert_int_equal(h.n, 4);
	hist_observe(&h, 0.1); /* on the edge: le="0.1" */
	expect_counts(&h, (const uint64_t[]){1, 0, 0, 0, 0});
	hist_observe(&h, 0.1000000001); /* just above: le="0.5" */
	expect_counts(&h, (const uint64_t[]){1, 1, 0, 0, 0});
	hist_observe(&h, 0.5);
	hist_observe(&h, 1);
	hist_observe(&h, 5);
	expect_counts(&h, (const uint64_t[]){1, 2, 1, 1, 0});
	hist_observe(&h, 5.000001); /* past the last bound: +Inf only */
	hist_observe(&h, 1e300);
	expect_counts(&h, (const uint64_t[]){1, 2, 1, 1, 2});
	hist_observe(&h, -3); /* below everything: the first bucket */
	hist_observe(&h, 0);
	expect_counts(&h, (const uint64_t[]){3, 2, 1, 1, 2});
	assert_int_equal(h.count, 9);
}

static void test_sum_count(void **state)
{
	(void)state;
	struct hist h;
	hist_init(&h, bounds, 4);
	assert_int_equal(h.count, 0);
	assert_true(h.sum == 0);
	double vals[] = {0.25, 0.75, 2.5, 10, 0.125};
	double sum = 0;
	for (size_t i = 0; i < 5; i++) {
		hist_observe(&h, vals[i]);
		sum += vals[i];
	}
	assert_int_equal(h.count, 5);
	assert_true(h.sum == sum); /* exact: these are binary fractions */
	assert_true(h.sum == 13.625);
	/* at most HIST_MAX_BUCKETS bounds are kept */
	double many[40];
	for (int i = 0; i < 40; i++)
		many[i] = i + 1;
	hist_init(&h, many, 40);
	assert_int_equal(h.n, HIST_MAX_BUCKETS);
	hist_observe(&h, 32);
	hist_observe(&h, 33);
	assert_int_equal(h.counts[31], 1);
	assert_int_equal(h.counts[32], 1); /* +Inf */
}

/* The text exposition, byte for byte: HELP and TYPE, cumulative buckets in
 * order, +Inf equal to the count, then _sum and _count. */
static void test_exposition_exact(void **state)
{
	(void)state;
	struct hist h;
	hist_init(&h, bounds, 4);
	double vals[] = {0.1, 0.3, 0.5, 0.7, 2, 7, 9};
	for (size_t i = 0; i < 7; i++)
		hist_observe(&h, vals[i]);
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(hist_format(&h, "prefixlb_ttft_seconds", "Time to first byte.", "backend=\"a:1\"", &b), 0);
	assert_string_equal(b.data, "# HELP prefixlb_ttft_seconds Time to first byte.\n"
				    "# TYPE prefixlb_ttft_seconds histogram\n"
				    "prefixlb_ttft_seconds_bucket{backend=\"a:1\",le=\"0.1\"} 1\n"
				    "prefixlb_ttft_seconds_bucket{backend=\"a:1\",le=\"0.5\"} 3\n"
				    "prefixlb_ttft_seconds_bucket{backend=\"a:1\",le=\"1\"} 4\n"
				    "prefixlb_ttft_seconds_bucket{backend=\"a:1\",le=\"5\"} 5\n"
				    "prefixlb_ttft_seconds_bucket{backend=\"a:1\",le=\"+Inf\"} 7\n"
				    "prefixlb_ttft_seconds_sum{backend=\"a:1\"} 19.600000\n"
				    "prefixlb_ttft_seconds_count{backend=\"a:1\"} 7\n");
	/* no labels (NULL or ""): le alone; appended after what the buffer holds */
	struct hist e;
	double one = 0.25;
	hist_init(&e, &one, 1);
	buf_reset(&b);
	buf_puts(&b, "x 1\n");
	assert_int_equal(hist_format(&e, "h", "H.", NULL, &b), 0);
	assert_int_equal(hist_format(&e, "h", "H.", "", &b), 0);
	const char *empty = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.25\"} 0\nh_bucket{le=\"+Inf\"} 0\n"
			    "h_sum{} 0.000000\nh_count{} 0\n";
	struct buf want;
	buf_init(&want, 1 << 16);
	buf_printf(&want, "x 1\n%s%s", empty, empty);
	assert_string_equal(b.data, want.data);
	buf_free(&want);
	/* a buffer too small fails as buf does */
	struct buf small;
	buf_init(&small, 40);
	assert_int_equal(hist_format(&h, "prefixlb_ttft_seconds", "Time.", "", &small), BUF_ETOOBIG);
	buf_free(&small);
	buf_free(&b);
}

static void test_metric_format(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 16);
	assert_int_equal(metric_format(&b, "prefixlb_in_flight", "gauge", "Requests in flight.", "", 3), 0);
	assert_int_equal(metric_format(&b, "prefixlb_requests_total", "counter", "Requests.", "code=\"200\"", 1.5), 0);
	assert_int_equal(metric_format(&b, "big", "counter", "B.", NULL, 12345678901234.0), 0);
	assert_string_equal(b.data, "# HELP prefixlb_in_flight Requests in flight.\n# TYPE prefixlb_in_flight gauge\n"
				    "prefixlb_in_flight{} 3\n"
				    "# HELP prefixlb_requests_total Requests.\n# TYPE prefixlb_requests_total counter\n"
				    "prefixlb_requests_total{code=\"200\"} 1.5\n"
				    "# HELP big B.\n# TYPE big counter\nbig{} 12345678901234\n");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edges_inclusive),
		cmocka_unit_test(test_sum_count),
		cmocka_unit_test(test_exposition_exact),
		cmocka_unit_test(test_metric_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
