/* stats.c: vLLM benchmark metrics; see stats.h. */
#include "mem.h"
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Quickselect: after it, v[k] is the k-th smallest, nothing smaller lies
 * after it and nothing larger before it. O(n) on average (median of three;
 * a run of equal values cannot make it quadratic: elements equal to the
 * pivot go to both sides, as in Hoare's scheme). */
#define DEFINE_SELECT(NAME, T)                                                  \
	static void NAME(T *v, size_t n, size_t k)                              \
	{                                                                       \
		size_t lo = 0, hi = n - 1;                                      \
		while (lo < hi) {                                               \
			size_t mid = lo + (hi - lo) / 2;                        \
			T a = v[lo], b = v[mid], c = v[hi];                     \
			T p = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b); \
			size_t i = lo, j = hi;                                  \
			while (i <= j) {                                        \
				while (v[i] < p)                                \
					i++;                                    \
				while (v[j] > p)                                \
					j--;                                    \
				if (i <= j) {                                   \
					T t = v[i];                             \
					v[i] = v[j];                            \
					v[j] = t;                               \
					i++;                                    \
					if (j == 0)                             \
						break;                          \
					j--;                                    \
				}                                               \
			}                                                       \
			if (k <= j)                                             \
				hi = j;                                         \
			else if (k >= i)                                        \
				lo = i;                                         \
			else                                                    \
				return;                                         \
		}                                                               \
	}

DEFINE_SELECT(select_d, double)
DEFINE_SELECT(select_f, float)

/* numpy's linear-interpolation percentile of v[0..n) (unsorted; reordered). */
#define DEFINE_PCT(NAME, T, SELECT)                                             \
	static double NAME(T *v, size_t n, double p)                            \
	{                                                                       \
		if (!n)                                                         \
			return 0;                                               \
		double rank = p / 100.0 * (double)(n - 1);                      \
		size_t lo = (size_t)floor(rank);                                \
		if (lo >= n)                                                    \
			lo = n - 1;                                             \
		SELECT(v, n, lo);                                               \
		double a = (double)v[lo], b = a;                                \
		if (lo + 1 < n && rank > (double)lo) {                          \
			T m = v[lo + 1];                                        \
			for (size_t i = lo + 2; i < n; i++)                     \
				if (v[i] < m)                                   \
					m = v[i];                               \
			b = (double)m;                                          \
		}                                                               \
		return a + (b - a) * (rank - (double)lo);                       \
	}

DEFINE_PCT(pct_d, double, select_d)
DEFINE_PCT(pct_f, float, select_f)


double stats_percentile(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	double rank = p / 100.0 * (double)(n - 1);
	size_t lo = (size_t)floor(rank), hi = (size_t)ceil(rank);
	if (hi >= n)
		hi = n - 1;
	return v[lo] + (v[hi] - v[lo]) * (rank - (double)lo);
}

/* Fills s from v[0..n) in seconds; results in ms. Reorders v (selection, not a sort: O(n)). */
static void summarize(double *v, size_t n, const double *pcts, size_t np, struct metric_stats *s)
{
	memset(s, 0, sizeof *s);
	if (!n)
		return; /* numpy would give nan for empty input; vLLM prints 0 via `or 0` */
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	double mean = sum / (double)n, var = 0;
	for (size_t i = 0; i < n; i++)
		var += (v[i] - mean) * (v[i] - mean);
	s->mean = mean * 1000;
	s->std = sqrt(var / (double)n) * 1000;
	s->median = pct_d(v, n, 50) * 1000;
	for (size_t i = 0; i < np && i < 16; i++)
		s->pct[i] = pct_d(v, n, pcts[i]) * 1000;
}

/* summarize() for the pooled inter-token gaps, kept as floats (the largest array). */
static void summarize_f(float *v, size_t n, const double *pcts, size_t np, struct metric_stats *s)
{
	memset(s, 0, sizeof *s);
	if (!n)
		return;
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	double mean = sum / (double)n, var = 0;
	for (size_t i = 0; i < n; i++)
		var += ((double)v[i] - mean) * ((double)v[i] - mean);
	s->mean = mean * 1000;
	s->std = sqrt(var / (double)n) * 1000;
	s->median = pct_f(v, n, 50) * 1000;
	for (size_t i = 0; i < np && i < 16; i++)
		s->pct[i] = pct_f(v, n, pcts[i]) * 1000;
}

int stats_compute(const struct req_result *r, size_t n, double duration, const double *percentiles,
		  size_t n_percentiles, const struct goodput_slo *slo, struct bench_metrics *out)
{
	memset(out, 0, sizeof *out);
	size_t n_itl = 0;
	for (size_t i = 0; i < n; i++)
		if (r[i].success)
			n_itl += r[i].n_itl;
	double *ttft = plb_malloc((n + 1) * sizeof *ttft), *tpot = plb_malloc((n + 1) * sizeof *tpot);
	double *e2el = plb_malloc((n + 1) * sizeof *e2el);
	float *itl = plb_malloc((n_itl + 1) * sizeof *itl);
	if (!ttft || !tpot || !e2el || !itl) {
		free(ttft);
		free(tpot);
		free(e2el);
		free(itl);
		return -1;
	}
	size_t nt = 0, np = 0, ni = 0;
	long good = 0;
	for (size_t i = 0; i < n; i++) {
		const struct req_result *q = &r[i];
		if (!q->success) {
			out->failed++;
			continue;
		}
		out->completed++;
		out->total_input += q->prompt_len;
		out->total_output += q->output_len;
		double tp = 0;
		if (q->output_len > 1) {
			tp = (q->latency - q->ttft) / (double)(q->output_len - 1);
			tpot[np++] = tp;
		}
		ttft[nt] = q->ttft;
		e2el[nt] = q->latency;
		nt++;
		for (size_t k = 0; k < q->n_itl; k++)
			itl[ni++] = q->itl[k];
		if (q->cached_tokens >= 0) {
			out->cached_tokens += q->cached_tokens;
			out->prompt_tokens_cached_known += q->prompt_len;
			if (q->predicted_cached >= 0) {
				double e = fabs((double)q->predicted_cached - (double)q->cached_tokens);
				out->pred_n++;
				out->pred_tokens += (double)q->predicted_cached;
				out->pred_reported += (double)q->cached_tokens;
				out->pred_abs_err += e;
				out->pred_within_block += e < 16;
			}
		}
		if (slo) {
			int ok = (slo->ttft_ms < 0 || q->ttft * 1000 <= slo->ttft_ms) &&
				 (slo->tpot_ms < 0 || tp * 1000 <= slo->tpot_ms) &&
				 (slo->e2el_ms < 0 || q->latency * 1000 <= slo->e2el_ms);
			good += ok;
		}
	}
	out->duration = duration;
	out->n_percentiles = n_percentiles > 16 ? 16 : n_percentiles;
	memcpy(out->percentiles, percentiles, out->n_percentiles * sizeof *percentiles);
	if (duration > 0) {
		out->request_throughput = (double)out->completed / duration;
		out->output_throughput = (double)out->total_output / duration;
		out->total_token_throughput = (double)(out->total_input + out->total_output) / duration;
		if (slo) {
			out->has_goodput = 1;
			out->slo = *slo;
			out->request_goodput = (double)good / duration;
		}
	}
	summarize(ttft, nt, percentiles, out->n_percentiles, &out->m[M_TTFT]);
	summarize(tpot, np, percentiles, out->n_percentiles, &out->m[M_TPOT]);
	summarize_f(itl, ni, percentiles, out->n_percentiles, &out->m[M_ITL]);
	summarize(e2el, nt, percentiles, out->n_percentiles, &out->m[M_E2EL]);
	free(ttft);
	free(tpot);
	free(e2el);
	free(itl);
	return 0;
}

/* Python's "{s:{c}^{n}}": centred, the odd pad character on the right. */
static int centre(struct buf *out, const char *s, char fill)
{
	size_t len = strlen(s), pad = len < 50 ? 50 - len : 0, left = pad / 2;
	int rc = 0;
	for (size_t i = 0; i < left && !rc; i++)
		rc = buf_putc(out, fill);
	if (!rc)
		rc = buf_puts(out, s);
	for (size_t i = 0; i < pad - left && !rc; i++)
		rc = buf_putc(out, fill);
	return rc ? rc : buf_putc(out, '\n');
}

/* "{:<40} {:<10}" for an int, "{:<40} {:<10.2f}" for a float. */
static int row_i(struct buf *out, const char *label, long v)
{
	return buf_printf(out, "%-40s %-10ld\n", label, v);
}

static int row_f(struct buf *out, const char *label, double v)
{
	return buf_printf(out, "%-40s %-10.2f\n", label, v);
}

/* Python's str() of a percentile as vLLM prints it: "99", "99.9". */
static void pct_word(double p, char *out, size_t n)
{
	if (p == (double)(long)p)
		snprintf(out, n, "%ld", (long)p);
	else
		snprintf(out, n, "%g", p);
}

int stats_format(const struct bench_metrics *m, unsigned selected, struct buf *out)
{
	static const char *const header[M_COUNT] = {"Time to First Token", "Time per Output Token (excl. 1st token)",
						    "Inter-token Latency", "End-to-end Latency"};
	static const char *const abbr[M_COUNT] = {"TTFT", "TPOT", "ITL", "E2EL"};
	int rc = centre(out, " Serving Benchmark Result ", '=');
	rc |= row_i(out, "Successful requests:", m->completed);
	rc |= row_f(out, "Benchmark duration (s):", m->duration);
	rc |= row_i(out, "Total input tokens:", m->total_input);
	rc |= row_i(out, "Total generated tokens:", m->total_output);
	rc |= row_f(out, "Request throughput (req/s):", m->request_throughput);
	if (m->has_goodput)
		rc |= row_f(out, "Request goodput (req/s):", m->request_goodput);
	rc |= row_f(out, "Output token throughput (tok/s):", m->output_throughput);
	rc |= row_f(out, "Total Token throughput (tok/s):", m->total_token_throughput);
	for (int k = 0; k < M_COUNT; k++) {
		if (!(selected & (1u << k)))
			continue;
		rc |= centre(out, header[k], '-');
		char label[64], pw[32];
		snprintf(label, sizeof label, "Mean %s (ms):", abbr[k]);
		rc |= row_f(out, label, m->m[k].mean);
		snprintf(label, sizeof label, "Median %s (ms):", abbr[k]);
		rc |= row_f(out, label, m->m[k].median);
		for (size_t i = 0; i < m->n_percentiles; i++) {
			pct_word(m->percentiles[i], pw, sizeof pw);
			snprintf(label, sizeof label, "P%s %s (ms):", pw, abbr[k]);
			rc |= row_f(out, label, m->m[k].pct[i]);
		}
	}
	for (int i = 0; i < 50; i++)
		rc |= buf_putc(out, '=');
	rc |= buf_putc(out, '\n');
	return rc ? -1 : 0;
}
