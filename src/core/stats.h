/* stats.h: benchmark metrics exactly as vLLM's benchmark_serving.py (and the
 * seed's fork of it) define and print them (docs/seed.md section 2).
 *
 * Per request: TTFT = first choices chunk - start; latency (E2EL) = last
 * choices chunk - start; TPOT = (latency - TTFT) / (output_len - 1) when
 * output_len > 1; ITL = every gap between choices chunks, pooled over all
 * requests. Throughputs divide by the benchmark duration. Aggregates: mean,
 * median, population std, percentiles by linear interpolation (numpy's
 * default), reported in milliseconds. */
#ifndef PREFIXLB_STATS_H
#define PREFIXLB_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct req_result {
	int success;
	double ttft;    /* seconds */
	double latency; /* seconds */
	float *itl;     /* seconds, n_itl gaps (owned by the caller; float: 4 bytes a token at 1M requests) */
	size_t n_itl;
	long prompt_len;
	long output_len;
	long cached_tokens; /* -1: the server did not say */
	long predicted_cached; /* what the router predicted cached (x-prefixlb-predicted-cached), -1: nothing */
};

enum { M_TTFT, M_TPOT, M_ITL, M_E2EL, M_COUNT };

struct metric_stats {
	double mean, median, std;
	double pct[16]; /* the requested percentiles, in order */
};

/* Goodput SLOs: a request is "good" when each given metric is <= its bound (ms);
 * a negative bound means unset. */
struct goodput_slo {
	double ttft_ms, tpot_ms, e2el_ms;
};

struct bench_metrics {
	long completed, failed;
	long total_input, total_output;
	double duration;
	double request_throughput, request_goodput, output_throughput, total_token_throughput;
	int has_goodput;
	struct goodput_slo slo; /* when has_goodput */
	struct metric_stats m[M_COUNT]; /* milliseconds */
	double percentiles[16];
	size_t n_percentiles;
	long cached_tokens, prompt_tokens_cached_known; /* hit-rate numerator/denominator */
	/* the router's predictions, over the requests with both a prediction and a
	 * reported cached count: how many, the sums, |predicted - reported|, and
	 * how many came within a KV block (16 tokens) */
	long pred_n, pred_within_block;
	double pred_tokens, pred_reported, pred_abs_err;
};


/* Linear-interpolation percentile of sorted v[0..n) (p in [0, 100]). */
double stats_percentile(const double *sorted, size_t n, double p);

/* Computes every metric. percentiles: e.g. {99}; slo may be NULL. */
int stats_compute(const struct req_result *r, size_t n, double duration, const double *percentiles,
		  size_t n_percentiles, const struct goodput_slo *slo, struct bench_metrics *out);

/* The block benchmark_serving.py prints, byte for byte. selected: bit mask of
 * (1 << M_TTFT) ... which sections to print (vLLM's --percentile-metrics). */
int stats_format(const struct bench_metrics *m, unsigned selected, struct buf *out);

#endif
