/* signals.c: what each engine says of its load, from two sources:
 *   in-band (--orca, on by default): every proxied request carries
 *     `endpoint-load-metrics-format: text` and the backend's answer an
 *     `endpoint-load-metrics` header (ORCA; src/proto/orca.h), read as the
 *     response head arrives: no extra request, as fresh as the traffic;
 *   polled: vLLM's /metrics every --metrics-poll-ms (off by default: scraping
 *     /metrics has made real vLLM servers unresponsive under load, llm-d issue
 *     #1842). A read in flight is never doubled.
 * Either goes to the routing state (lb_set_signals) stamped with the time it
 * was read; policies ignore values past their age limit. A report that lacks
 * a field (vLLM's has no running count) keeps the endpoint's previous value. */
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "../proto/orca.h"
#include "router.h"

const char *router_orca_request_header(const struct router *rt)
{
	switch (rt->cfg.orca) {
	case ORCA_TEXT: return ORCA_REQUEST_HEADER ": text";
	case ORCA_JSON: return ORCA_REQUEST_HEADER ": json";
	default: return NULL;
	}
}

int router_orca_is_header(const char *name, size_t n)
{
	return http_token_eq(name, n, ORCA_RESPONSE_HEADER);
}

void router_orca_on_head(struct router *rt, int ep, const struct http_msg *m)
{
	const struct http_header *h = http_find(m, ORCA_RESPONSE_HEADER);
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!h || !e)
		return;
	struct orca_load l;
	char err[200];
	if (orca_parse(h->value, h->value_len, &l, err, sizeof err)) {
		rt->orca_errors++;
		if (rt->orca_errors <= 10) /* a broken backend must not flood the log */
			fprintf(stderr, "prefixlb route: %s: unreadable %s header: %s\n", e->name, ORCA_RESPONSE_HEADER, err);
		return;
	}
	rt->orca_reports++;
	if (!(l.have & (ORCA_HAVE_WAITING | ORCA_HAVE_RUNNING | ORCA_HAVE_KV)))
		return;
	struct lb_signals s = e->sig;
	s.valid = 1;
	s.at = uv_hrtime();
	if (l.have & ORCA_HAVE_WAITING)
		s.waiting = l.waiting;
	if (l.have & ORCA_HAVE_RUNNING)
		s.running = l.running;
	if (l.have & ORCA_HAVE_KV)
		s.kv_usage = l.kv_usage;
	lb_set_signals(rt->lb, ep, &s);
}

void router_signals_metrics(const struct router *rt, struct buf *b)
{
	buf_puts(b, "# HELP prefixlb_load_reports_total In-band load reports (endpoint-load-metrics headers) read from "
		    "backends, by result.\n# TYPE prefixlb_load_reports_total counter\n");
	buf_printf(b, "prefixlb_load_reports_total{result=\"ok\"} %llu\nprefixlb_load_reports_total{result=\"error\"} %llu\n",
		   (unsigned long long)rt->orca_reports, (unsigned long long)rt->orca_errors);
	static const char *const g[][2] = {
		{"prefixlb_backend_engine_waiting", "Requests waiting on the backend's engine, as it last reported."},
		{"prefixlb_backend_engine_running", "Requests running on the backend's engine, as it last reported."},
		{"prefixlb_backend_engine_kv_usage", "KV-cache usage (0..1) of the backend's engine, as it last reported."},
		{"prefixlb_backend_signals_age_seconds", "Time since the backend's engine last reported its load."},
	};
	uint64_t now = uv_hrtime();
	for (int k = 0; k < 4; k++) {
		buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", g[k][0], g[k][1], g[k][0]);
		for (size_t ep = 0; ep < rt->n_be; ep++) {
			const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
			if (!e || !e->sig.valid)
				continue;
			double v = k == 0 ? e->sig.waiting
				   : k == 1 ? e->sig.running
				   : k == 2 ? e->sig.kv_usage
					    : (double)(now > e->sig.at ? now - e->sig.at : 0) / 1e9;
			buf_printf(b, "%s{backend=\"%s\"} %.17g\n", g[k][0], e->name, v);
		}
	}
}

/* Sums the samples of one metric name (any labels) in the exposition text. */
static int metric_sum(const char *t, size_t len, const char *name, double *sum, int *count)
{
	size_t nl = strlen(name);
	int found = 0;
	for (const char *p = t, *end = t + len; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && !memcmp(p, name, nl) && (p[nl] == '{' || p[nl] == ' ')) {
			const char *v = p[nl] == '{' ? memchr(p, '}', (size_t)(eol - p)) : p + nl;
			if (v && v < eol) {
				char num[64];
				size_t k = (size_t)(eol - v - 1) < sizeof num - 1 ? (size_t)(eol - v - 1) : sizeof num - 1;
				memcpy(num, v + 1, k);
				num[k] = '\0';
				char *e;
				double x = strtod(num, &e);
				if (e != num) {
					*sum += x;
					(*count)++;
					found = 1;
				}
			}
		}
		p = eol + 1;
	}
	return found;
}

int router_parse_vllm_metrics(const char *text, size_t len, struct lb_signals *out)
{
	double w = 0, r = 0, k = 0;
	int nw = 0, nr = 0, nk = 0;
	int any = metric_sum(text, len, "vllm:num_requests_waiting", &w, &nw);
	any |= metric_sum(text, len, "vllm:num_requests_running", &r, &nr);
	if (!metric_sum(text, len, "vllm:kv_cache_usage_perc", &k, &nk))
		metric_sum(text, len, "vllm:gpu_cache_usage_perc", &k, &nk);
	any |= nk > 0;
	*out = (struct lb_signals){.valid = any, .waiting = w, .running = r, .kv_usage = nk ? k / nk : 0};
	return any ? 0 : -1;
}

struct poll {
	struct router *rt;
	int ep;
	uint32_t gen;
	int status;
	struct buf body;
};

static int p_head(void *ctx, const struct http_msg *m)
{
	((struct poll *)ctx)->status = m->status;
	return HTTPC_CONTINUE;
}

static int p_data(void *ctx, const char *d, size_t n)
{
	buf_append(&((struct poll *)ctx)->body, d, n); /* past 4 MiB: cut, still parsed */
	return HTTPC_CONTINUE;
}

static void p_done(void *ctx, enum httpc_err err, const char *msg)
{
	(void)msg;
	struct poll *q = ctx;
	const struct lb_endpoint *e = lb_endpoint(q->rt->lb, q->ep);
	if (e && e->gen == q->gen) {
		q->rt->be[q->ep].poll_busy = 0;
		struct lb_signals s;
		if (err == HTTPC_OK && q->status == 200 &&
		    !router_parse_vllm_metrics(q->body.data ? q->body.data : "", q->body.len, &s)) {
			s.at = uv_hrtime();
			lb_set_signals(q->rt->lb, q->ep, &s);
		}
	}
	buf_free(&q->body);
	free(q);
}

static const struct httpc_cb poll_cb = {p_head, p_data, p_done, NULL};

static void on_poll(uv_timer_t *t)
{
	struct router *rt = t->data;
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (!e || e->removed || !rt->be[ep].active || rt->be[ep].poll_busy)
			continue;
		struct poll *q = plb_calloc(1, sizeof *q);
		q->rt = rt;
		q->ep = (int)ep;
		q->gen = e->gen;
		buf_init(&q->body, 4 << 20);
		char target[1024];
		snprintf(target, sizeof target, "%s/metrics", rt->be[ep].prefix);
		/* a new connection each time, as the health checks: never a stale one */
		struct httpc_opts o = {.method = "GET", .target = target, .fresh = 1, .close = 1,
				       .connect_timeout_ms = (uint64_t)rt->cfg.health_timeout_ms,
				       .timeout_ms = (uint64_t)rt->cfg.health_timeout_ms};
		httpc_start(rt->be[ep].pool, &o, &poll_cb, q);
		rt->be[ep].poll_busy = 1;
	}
}

void router_poll_start(struct router *rt)
{
	rt->poll_timer.data = rt;
	if (rt->cfg.metrics_poll_ms > 0)
		uv_timer_start(&rt->poll_timer, on_poll, 0, (uint64_t)rt->cfg.metrics_poll_ms);
}
