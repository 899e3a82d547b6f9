/* signals.c: what each engine says of its load, read from vLLM's /metrics
 * every --metrics-poll-ms (off by default: scraping /metrics has made real
 * vLLM servers unresponsive under load, llm-d issue #1842; the in-band header
 * of issue "engine signals" is the better source). The values go to the
 * routing state (lb_set_signals) stamped with the read time; policies ignore
 * them past their age limit. A read in flight is never doubled. */
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "router.h"

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
