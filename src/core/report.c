/* report.c: result JSON, CSV and the extra result lines; see report.h. */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int report_py_float(struct buf *out, double v)
{
	if (isinf(v))
		return buf_puts(out, v > 0 ? "Infinity" : "-Infinity");
	if (isnan(v))
		return buf_puts(out, "NaN");
	if (v == 0)
		return buf_puts(out, signbit(v) ? "-0.0" : "0.0");
	/* the shortest digits that read back (Python's repr does the same) */
	char e[48];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	char digits[24];
	size_t nd = 0;
	const char *p = e;
	int neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	int x = atoi(p + 1); /* value = 0.d1d2... * 10^(x+1) */
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	int rc = neg ? buf_putc(out, '-') : 0;
	if (x >= -4 && x < 16) { /* positional, as repr prints these */
		if (x < 0) {
			rc |= buf_puts(out, "0.");
			for (int k = 0; k < -x - 1; k++)
				rc |= buf_putc(out, '0');
			rc |= buf_append(out, digits, nd);
		} else {
			for (int k = 0; k <= x; k++)
				rc |= buf_putc(out, (size_t)k < nd ? digits[k] : '0');
			rc |= buf_putc(out, '.');
			if ((size_t)x + 1 < nd)
				rc |= buf_append(out, digits + x + 1, nd - (size_t)x - 1);
			else
				rc |= buf_putc(out, '0');
		}
		return rc;
	}
	rc |= buf_putc(out, digits[0]);
	if (nd > 1) {
		rc |= buf_putc(out, '.');
		rc |= buf_append(out, digits + 1, nd - 1);
	}
	return rc | buf_printf(out, "e%c%02d", x < 0 ? '-' : '+', abs(x));
}

static int key_num(struct buf *j, const char *key, double v)
{
	int rc = buf_printf(j, ", \"%s\": ", key);
	return rc | report_py_float(j, v);
}

static int in_lists(const struct client_rec *r)
{
	return r->started && !r->aborted;
}

static const char *err_text(const struct client *c, const struct client_rec *r, char *tmp, size_t n)
{
	if (r->timed_out)
		return "timed out (--request-timeout-s)";
	if (r->reason == 0xffff)
		return "";
	long cnt;
	const char *detail;
	const char *why = client_reason(c, r->reason, &cnt, &detail);
	if (!detail)
		return why;
	snprintf(tmp, n, "%s: %s", why, detail);
	return tmp;
}

int report_vllm_json(struct buf *out, const struct report_meta *m, const struct client *c,
		     const struct bench_metrics *bm)
{
	struct buf *j = out;
	int rc = buf_printf(j, "{\"date\": \"%s\", \"backend\": \"", m->date);
	rc |= buf_json_escape(j, m->backend, strlen(m->backend));
	rc |= buf_puts(j, "\", \"model_id\": \"");
	rc |= buf_json_escape(j, m->model, strlen(m->model));
	rc |= buf_puts(j, "\", \"tokenizer_id\": \"");
	rc |= buf_json_escape(j, m->tokenizer_id, strlen(m->tokenizer_id));
	rc |= buf_printf(j, "\", \"best_of\": 1, \"num_prompts\": %ld, \"request_rate\": ", m->num_prompts);
	if (isfinite(m->request_rate))
		rc |= report_py_float(j, m->request_rate);
	else
		rc |= buf_puts(j, "\"inf\"");
	rc |= key_num(j, "burstiness", m->burstiness);
	if (m->max_concurrency > 0)
		rc |= buf_printf(j, ", \"max_concurrency\": %ld", m->max_concurrency);
	else
		rc |= buf_puts(j, ", \"max_concurrency\": null");
	rc |= key_num(j, "duration", bm->duration);
	rc |= buf_printf(j, ", \"completed\": %ld, \"total_input_tokens\": %ld, \"total_output_tokens\": %ld",
			 bm->completed, bm->total_input, bm->total_output);
	rc |= key_num(j, "request_throughput", bm->request_throughput);
	if (m->goodput)
		rc |= key_num(j, "request_goodput:", bm->request_goodput);
	else
		rc |= buf_puts(j, ", \"request_goodput:\": null");
	rc |= key_num(j, "output_throughput", bm->output_throughput);
	rc |= key_num(j, "total_token_throughput", bm->total_token_throughput);
	size_t n = client_n_recs(c);
	static const char *const lists[] = {"input_lens", "output_lens", "ttfts"};
	for (int l = 0; l < 3; l++) {
		rc |= buf_printf(j, ", \"%s\": [", lists[l]);
		int first = 1;
		for (size_t i = 0; i < n; i++) {
			const struct client_rec *r = client_rec(c, i);
			if (!in_lists(r))
				continue;
			if (!first)
				rc |= buf_puts(j, ", ");
			first = 0;
			if (l == 0)
				rc |= buf_printf(j, "%ld", r->r.prompt_len);
			else if (l == 1)
				rc |= buf_printf(j, "%ld", r->r.success ? r->r.output_len : 0);
			else
				rc |= report_py_float(j, r->r.ttft);
		}
		rc |= buf_puts(j, "]");
	}
	rc |= buf_puts(j, ", \"itls\": [");
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		const struct client_rec *r = client_rec(c, i);
		if (!in_lists(r))
			continue;
		rc |= buf_puts(j, first ? "[" : ", [");
		first = 0;
		for (size_t k = 0; k < r->r.n_itl; k++) {
			if (k)
				rc |= buf_puts(j, ", ");
			rc |= report_py_float(j, r->r.itl[k]);
		}
		rc |= buf_puts(j, "]");
	}
	rc |= buf_puts(j, "], \"generated_texts\": [");
	first = 1;
	for (size_t i = 0; i < n; i++) {
		const struct client_rec *r = client_rec(c, i);
		if (!in_lists(r))
			continue;
		rc |= buf_puts(j, first ? "\"" : ", \"");
		first = 0;
		if (r->text)
			rc |= buf_json_escape(j, r->text, strlen(r->text));
		rc |= buf_puts(j, "\"");
	}
	rc |= buf_puts(j, "], \"errors\": [");
	first = 1;
	for (size_t i = 0; i < n; i++) {
		const struct client_rec *r = client_rec(c, i);
		if (!in_lists(r))
			continue;
		char tmp[512];
		const char *e = err_text(c, r, tmp, sizeof tmp);
		rc |= buf_puts(j, first ? "\"" : ", \"");
		first = 0;
		rc |= buf_json_escape(j, e, strlen(e));
		rc |= buf_puts(j, "\"");
	}
	rc |= buf_puts(j, "]");
	static const char *const names[M_COUNT] = {"ttft", "tpot", "itl", "e2el"};
	for (int k = 0; k < M_COUNT; k++) {
		if (!(m->selected & (1u << k)))
			continue; /* vLLM saves only the --percentile-metrics */
		char key[64];
		snprintf(key, sizeof key, "mean_%s_ms", names[k]);
		rc |= key_num(j, key, bm->m[k].mean);
		snprintf(key, sizeof key, "median_%s_ms", names[k]);
		rc |= key_num(j, key, bm->m[k].median);
		snprintf(key, sizeof key, "std_%s_ms", names[k]);
		rc |= key_num(j, key, bm->m[k].std);
		for (size_t i = 0; i < bm->n_percentiles; i++) {
			double p = bm->percentiles[i];
			char pw[32];
			if (p == (double)(long)p)
				snprintf(pw, sizeof pw, "%ld", (long)p);
			else {
				struct buf t;
				buf_init(&t, 64);
				report_py_float(&t, p);
				snprintf(pw, sizeof pw, "%s", t.data ? t.data : "");
				buf_free(&t);
			}
			snprintf(key, sizeof key, "p%s_%s_ms", pw, names[k]);
			rc |= key_num(j, key, bm->m[k].pct[i]);
		}
	}
	struct client_stats st;
	client_get_stats(c, &st);
	rc |= buf_printf(j, ", \"failed\": %ld", bm->failed);
	if (st.rejected)
		rc |= buf_printf(j, ", \"rejected\": %ld", st.rejected);
	if (st.timed_out)
		rc |= buf_printf(j, ", \"timed_out\": %ld", st.timed_out);
	if (st.aborted)
		rc |= buf_printf(j, ", \"aborted\": %ld", st.aborted);
	if (bm->prompt_tokens_cached_known)
		rc |= key_num(j, "cache_hit_rate", (double)bm->cached_tokens / (double)bm->prompt_tokens_cached_known);
	for (size_t t = 0; t < client_n_tenants(c); t++) { /* per tenant (--tenants) */
		double p99 = 99;
		struct bench_metrics tm;
		struct goodput_slo slo = bm->slo;
		client_metrics_tenant(c, t, bm->duration, &p99, 1, bm->has_goodput ? &slo : NULL, &tm);
		long rejected = 0;
		for (size_t i = 0; i < client_n_recs(c); i++)
			rejected += client_rec(c, i)->tenant == t && client_rec(c, i)->rejected;
		rc |= buf_printf(j, "%s\"%s\": {\"completed\": %ld, \"failed\": %ld, \"rejected\": %ld", t ? ", " : ", \"tenants\": {",
				 client_tenant_name(c, t), tm.completed, tm.failed, rejected);
		rc |= key_num(j, "mean_ttft_ms", tm.m[M_TTFT].mean);
		rc |= key_num(j, "p99_ttft_ms", tm.m[M_TTFT].pct[0]);
		if (bm->has_goodput)
			rc |= key_num(j, "request_goodput", tm.request_goodput);
		rc |= buf_puts(j, t + 1 == client_n_tenants(c) ? "}}" : "}");
	}
	rc |= buf_puts(j, "}\n");
	return rc;
}

int report_csv(struct buf *out, const struct client *c, uint64_t t_start)
{
	int rc = buf_puts(out, "index,conversation,turn,backend,success,prompt_tokens,output_tokens,cached_tokens,start_ms,"
			       "ttft_ms,latency_ms,error\n");
	for (size_t i = 0; i < client_n_recs(c); i++) {
		const struct client_rec *r = client_rec(c, i);
		long cnt;
		const char *be = r->backend != 0xffff ? client_backend_name(c, r->backend, &cnt) : "-";
		char tmp[512];
		const char *e = err_text(c, r, tmp, sizeof tmp);
		double start = r->started ? (double)(r->t0 - t_start) / 1e6 : -1;
		rc |= buf_printf(out, "%zu,%zu,%zu,%s,%d,%ld,%ld,%ld,%.3f,%.3f,%.3f,", i, r->conv, r->turn, be, r->r.success,
				 r->r.prompt_len, r->r.output_len, r->r.cached_tokens, start, r->r.ttft * 1e3,
				 r->r.latency * 1e3);
		/* the error as a CSV field: quoted when it holds a comma or a quote */
		if (strpbrk(e, ",\"\n")) {
			rc |= buf_putc(out, '"');
			for (const char *p = e; *p; p++)
				rc |= *p == '"' ? buf_puts(out, "\"\"") : buf_putc(out, *p == '\n' ? ' ' : *p);
			rc |= buf_putc(out, '"');
		} else {
			rc |= buf_puts(out, e);
		}
		rc |= buf_putc(out, '\n');
	}
	return rc;
}

int report_extras(struct buf *out, const struct client *c, const struct bench_metrics *bm, long max_concurrency)
{
	struct client_stats st;
	client_get_stats(c, &st);
	int rc = buf_printf(out, "%-40s %-10ld\n", "Failed requests:", bm->failed);
	for (size_t i = 0; i < client_n_reasons(c); i++) {
		long n;
		const char *detail;
		const char *why = client_reason(c, i, &n, &detail);
		rc |= buf_printf(out, "  %-38s %-10ld\n", why, n);
		if (detail)
			rc |= buf_printf(out, "    first: %.200s\n", detail);
	}
	if (st.rejected)
		rc |= buf_printf(out, "%-40s %-10ld\n", "Rejected by the server (429, failed):", st.rejected);
	if (st.timed_out)
		rc |= buf_printf(out, "%-40s %-10ld\n", "Timed out (not counted):", st.timed_out);
	if (bm->prompt_tokens_cached_known)
		rc |= buf_printf(out, "%-40s %-10.4f\n", "Prefix cache hit rate:",
				 (double)bm->cached_tokens / (double)bm->prompt_tokens_cached_known);
	if (bm->pred_n) /* the router said what it expected (x-prefixlb-predicted-cached) */
		rc |= buf_printf(out,
				 "%-40s %-10.0f\n%-40s %-10.0f\n%-40s %-10.1f\n%-40s %-10.4f\n",
				 "Router-predicted cached tokens:", bm->pred_tokens, "Engine-reported cached tokens:",
				 bm->pred_reported, "Prediction mean |error| (tokens):", bm->pred_abs_err / (double)bm->pred_n,
				 "Predictions within a block (16 tok):", (double)bm->pred_within_block / (double)bm->pred_n);
	double disp = st.t_last_release > st.t_first && st.dispatched > 1
			      ? (double)(st.dispatched - 1) / ((double)(st.t_last_release - st.t_first) / 1e9)
			      : 0;
	rc |= buf_printf(out, "%-40s %-10.2f\n", "Achieved dispatch rate (req/s):", disp);
	if (max_concurrency > 0)
		rc |= buf_printf(out, "%-40s %-10.2f\n%-40s %-10.2f\n", "Mean wait for max-concurrency (ms):",
				 st.dispatched ? st.sem_wait_s / (double)st.dispatched * 1e3 : 0,
				 "Max wait for max-concurrency (ms):", st.sem_wait_max_s * 1e3);
	for (size_t i = 0; i < client_n_backends(c); i++) {
		long n;
		const char *name = client_backend_name(c, i, &n);
		char label[160];
		snprintf(label, sizeof label, "Requests on %s:", name);
		rc |= buf_printf(out, "%-40s %-10ld\n", label, n);
	}
	for (size_t t = 0; t < client_n_tenants(c); t++) {
		double p99 = 99;
		struct bench_metrics tm;
		client_metrics_tenant(c, t, bm->duration, &p99, 1, NULL, &tm);
		long rejected = 0;
		for (size_t i = 0; i < client_n_recs(c); i++)
			rejected += client_rec(c, i)->tenant == t && client_rec(c, i)->rejected;
		char label[160];
		snprintf(label, sizeof label, "Tenant %s (ok/failed/429):", client_tenant_name(c, t));
		rc |= buf_printf(out, "%-40s %ld/%ld/%ld, TTFT mean %.2f, p99 %.2f ms\n", label, tm.completed, tm.failed,
				 rejected, tm.m[M_TTFT].mean, tm.m[M_TTFT].pct[0]);
	}
	return rc;
}
