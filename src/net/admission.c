/* admission.c: admission control on the router's request path (see router.h):
 * the shell around src/core/admit.c, which decides everything.
 *
 * One libuv timer drives it: it fires at the earliest queued deadline, at
 * once (0 ms) when something may have freed a backend (router_admit_poke:
 * a lease released, a first token, a new request queued), and every
 * RECHECK_MS while requests wait, because saturation can also end by itself
 * (engine signals growing stale, a backend re-admitted by its health check).
 * Its callback, the kick, refuses what is past its deadline or displaced,
 * then dispatches while admit_next finds a pool with room. Running the kick
 * from the loop, never from the caller's stack, means finish() -> poke can't
 * re-enter a dispatch in progress, and the cost of a poke is one timer start.
 *
 * Headers (parsed only while admission is on; a malformed value is a 400):
 *   x-prefixlb-priority: INT         -8..8 (clamped), higher first; default 0
 *   x-prefixlb-tenant: NAME          fair-share key; else the Authorization
 *                                    header's value (an API key), hashed; else
 *                                    one anonymous tenant
 *   x-prefixlb-ttft-target-ms: MS    refuse (429) once it could no longer
 *                                    start in time for this TTFT
 *   x-prefixlb-max-wait-ms: MS       its wait budget, at most --admission's wait-ms
 * (llm-d takes its fairness id from x-llm-d-inference-fairness-id, SMG its
 * priority class from x-smg-priority; ours follow the x-prefixlb- prefix of
 * the router's other headers.) */
#include <stdio.h>
#include <string.h>

#include "../core/mem.h"
#include "router.h"

#define RECHECK_MS 100

static void on_timer(uv_timer_t *t);

void router_admit_init(struct router *rt, const struct admit_cfg *c)
{
	static const double wait_b[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300};
	hist_init(&rt->adm_wait, wait_b, sizeof wait_b / sizeof *wait_b);
	rt->adm = admit_new(c, rt->lb);
	uv_timer_init(rt->loop, &rt->adm_timer);
	rt->adm_timer.data = rt;
}

void router_admit_set(struct router *rt, const struct admit_cfg *c)
{
	admit_set_cfg(rt->adm, c);
	router_admit_poke(rt); /* turned off, or looser: the queue may go now */
}

void router_admit_close(struct router *rt)
{
	if (!rt->adm)
		return;
	uv_timer_stop(&rt->adm_timer);
	uv_close((uv_handle_t *)&rt->adm_timer, NULL);
}

void router_admit_free(struct router *rt)
{
	admit_free(rt->adm);
	rt->adm = NULL;
}

/* ---- headers ------------------------------------------------------------------------ */

static int header_ms(const struct http_msg *m, const char *name, double *out, char *err, size_t errlen)
{
	const struct http_header *h = http_find(m, name);
	if (!h)
		return 0;
	if (admit_parse_ms(h->value, h->value_len, out)) {
		snprintf(err, errlen, "%s: expected a number of milliseconds, got '%.40s'", name,
			 h->value_len < 40 ? h->value : "(long)");
		return -1;
	}
	return 0;
}

int router_admit_headers(const struct router *rt, const struct http_msg *m, struct admit_entry *e, char *err,
			 size_t errlen)
{
	memset(e, 0, sizeof *e);
	e->wait_ms = -1;
	if (!rt->adm || !admit_get_cfg(rt->adm)->on)
		return 0;
	const struct http_header *h = http_find(m, "x-prefixlb-priority");
	if (h && admit_parse_priority(h->value, h->value_len, &e->priority)) {
		snprintf(err, errlen, "x-prefixlb-priority: expected an integer (-%d..%d, higher first)", ADMIT_PRIO_MAX,
			 ADMIT_PRIO_MAX);
		return -1;
	}
	if ((h = http_find(m, "x-prefixlb-tenant")) || (h = http_find(m, "authorization")))
		e->tenant = admit_tenant_hash(h->value, h->value_len);
	if (header_ms(m, "x-prefixlb-ttft-target-ms", &e->ttft_target_ms, err, errlen) ||
	    header_ms(m, "x-prefixlb-max-wait-ms", &e->wait_ms, err, errlen))
		return -1;
	return 0;
}

/* ---- the queue ---------------------------------------------------------------------- */

static void arm(struct router *rt, uint64_t delay_ms)
{
	if (!uv_is_closing((uv_handle_t *)&rt->adm_timer)) /* shutting down: finish() still pokes */
		uv_timer_start(&rt->adm_timer, on_timer, delay_ms, 0);
}

/* The timer for the next thing to do: the earliest deadline, or a re-check. */
static void rearm(struct router *rt)
{
	if (!admit_queued(rt->adm, NULL, 1) && admit_next_deadline(rt->adm) == UINT64_MAX) {
		uv_timer_stop(&rt->adm_timer);
		return;
	}
	uint64_t now = uv_hrtime(), d = admit_next_deadline(rt->adm);
	uint64_t ms = d <= now ? 0 : (d - now + 999999) / 1000000;
	arm(rt, ms < RECHECK_MS ? ms : RECHECK_MS);
}

int router_admit_offer(struct router *rt, struct admit_entry *e, void *ctx)
{
	e->ctx = ctx;
	int v = admit_offer(rt->adm, e, uv_hrtime());
	if (v == ADMIT_QUEUED)
		router_admit_poke(rt); /* it may displace one, or find room at once */
	return v;
}

void router_admit_poke(struct router *rt)
{
	if (rt->adm && (admit_queued(rt->adm, NULL, 1) || admit_next_deadline(rt->adm) != UINT64_MAX))
		arm(rt, 0);
}

static void left_queue(struct router *rt, const struct admit_entry *e)
{
	if (e->t_out >= e->t_enq && e->outcome != ADMIT_DIRECT)
		hist_observe(&rt->adm_wait, (double)(e->t_out - e->t_enq) / 1e9);
}

void router_admit_cancel(struct router *rt, struct admit_entry *e)
{
	if (!rt->adm || !(e->queued || e->refused))
		return;
	int was_queued = e->queued;
	admit_cancel(rt->adm, e, uv_hrtime());
	if (was_queued)
		left_queue(rt, e);
}

static void on_timer(uv_timer_t *t)
{
	struct router *rt = t->data;
	struct admit_entry *e;
	uint64_t now = uv_hrtime();
	while ((e = admit_expire(rt->adm, now))) {
		left_queue(rt, e);
		router_refused(e->ctx); /* finishes it: e is gone */
	}
	while ((e = admit_next(rt->adm, now))) {
		left_queue(rt, e);
		router_admitted(e->ctx);
	}
	rearm(rt);
}

/* ---- metrics -------------------------------------------------------------------------- */

struct qctx {
	struct buf *b;
};

static void queue_line(void *ctx, const char *model, size_t n)
{
	struct qctx *q = ctx;
	buf_puts(q->b, "prefixlb_admission_queue_length{model=\"");
	buf_json_escape(q->b, model, strlen(model));
	buf_printf(q->b, "\"} %zu\n", n);
}

void router_admit_metrics(struct router *rt, struct buf *b)
{
	if (!rt->adm)
		return;
	struct admit_stats st;
	admit_get_stats(rt->adm, &st);
	buf_puts(b, "# HELP prefixlb_admission_queue_length Requests waiting for a backend, by model.\n"
		    "# TYPE prefixlb_admission_queue_length gauge\n");
	struct qctx q = {b};
	admit_each_queue(rt->adm, queue_line, &q);
	buf_puts(b, "# HELP prefixlb_admission_total Requests through admission control, by outcome.\n"
		    "# TYPE prefixlb_admission_total counter\n");
	for (int o = ADMIT_DIRECT; o < ADMIT_N_OUTCOMES; o++)
		buf_printf(b, "prefixlb_admission_total{outcome=\"%s\"} %llu\n", admit_outcome_name(o),
			   (unsigned long long)st.outcomes[o]);
	metric_format(b, "prefixlb_admission_queued", "gauge", "Requests waiting for a backend, all models.", "",
		      (double)st.queued);
	hist_format(&rt->adm_wait, "prefixlb_admission_wait_seconds",
		    "Time requests spent in the admission queue (dispatched, refused or gone).", "", b);
}
