/* sim.c: discrete-event simulation of client + router + engine fleet; see sim.h.
 *
 * Event order at equal times: engine events (tokens) first, then the client's
 * (arrivals, lags, think times, timeouts). The next event is the minimum over
 * the client and each replica's engine_next_event(); O(replicas) per event,
 * which is cheap next to a step. Requests that end inside engine_advance (or
 * fail in a send) are queued and handed to the client after it returns, so
 * the client never re-enters an engine that is running. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define MS 1000000.0

struct sreq {
	struct client_req *r;
	struct lb_lease lease;
	int replica;
	uint64_t id; /* the engine's request id */
	uint32_t got;
	long cached;
	uint64_t t_end;
	int failed;
	struct sreq *next_free;
};

/* The replicas ordered by their next event: an indexed binary min-heap, so the
 * next event of 1,000 replicas costs O(log n), not a scan. A replica's key is
 * refreshed after anything that changes it (advance, add, abort). */
struct eheap {
	int *h;        /* heap of replica indices */
	size_t *pos;   /* replica -> its place in h */
	uint64_t *key; /* replica -> engine_next_event */
	size_t n;
};

struct simstate {
	const struct sim_cfg *cfg;
	struct client *client;
	struct engine **eng;
	struct eheap heap;
	struct lb *lb;
	uint64_t delay; /* ns */
	struct sreq **done;
	size_t n_done, cap_done;
	struct sreq *free_sreq;
	uint64_t *per_replica;
	int measuring;
};

static void heap_swap(struct eheap *q, size_t a, size_t b)
{
	int t = q->h[a];
	q->h[a] = q->h[b];
	q->h[b] = t;
	q->pos[q->h[a]] = a;
	q->pos[q->h[b]] = b;
}

/* Key order, ties to the lower replica: the same event order as a scan. */
static int before(const struct eheap *q, size_t a, size_t b)
{
	uint64_t ka = q->key[q->h[a]], kb = q->key[q->h[b]];
	return ka < kb || (ka == kb && q->h[a] < q->h[b]);
}

static void heap_fix(struct eheap *q, size_t i)
{
	while (i && before(q, i, (i - 1) / 2)) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->n && before(q, l, m))
			m = l;
		if (r < q->n && before(q, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(q, i, m);
		i = m;
	}
}

/* Replica r's next event may have moved. */
static void touch(struct simstate *st, int r)
{
	st->heap.key[r] = engine_next_event(st->eng[r]);
	heap_fix(&st->heap, st->heap.pos[r]);
}

static struct sreq *sreq_new(struct simstate *st)
{
	struct sreq *s = st->free_sreq;
	if (s)
		st->free_sreq = s->next_free;
	else
		s = plb_malloc(sizeof *s);
	memset(s, 0, sizeof *s);
	return s;
}

static void sreq_free(struct simstate *st, struct sreq *s)
{
	s->next_free = st->free_sreq;
	st->free_sreq = s;
}

static void push_done(struct simstate *st, struct sreq *s)
{
	if (st->n_done == st->cap_done) {
		st->cap_done = st->cap_done ? st->cap_done * 2 : 256;
		st->done = plb_realloc(st->done, st->cap_done * sizeof *st->done);
	}
	st->done[st->n_done++] = s;
}

static void on_event(void *ctx, const struct engine_event *ev)
{
	struct simstate *st = ctx;
	struct sreq *s = ev->user;
	uint64_t t = ev->time + st->delay; /* the client sees it one network hop later */
	client_on_chunk(st->client, s->r, t, NULL, 0, &ev->token, 1);
	if (!s->got)
		lb_first_token(&s->lease); /* the router sees the first byte of the answer */
	s->got++;
	s->cached = ev->cached_tokens;
	if (ev->finished) {
		s->t_end = t;
		push_done(st, s);
	}
}

/* The client puts a request on the wire: the router places it, the replica
 * gets it one hop later. */
static void sim_send(void *ctx, struct client_req *r, uint64_t now)
{
	struct simstate *st = ctx;
	const struct sim_cfg *cfg = st->cfg;
	struct sreq *s = sreq_new(st);
	s->r = r;
	r->drv = s;
	const uint32_t *ids;
	size_t n_ids;
	if (r->session != SIZE_MAX) {
		ids = r->ids ? r->ids->v : NULL;
		n_ids = r->ids ? r->ids->n : 0;
	} else {
		ids = cfg->item_ids[r->item].v;
		n_ids = cfg->item_ids[r->item].n;
	}
	size_t kl;
	const char *kt = client_routing_text(r, &kl);
	struct lb_req rq = {.key = lb_key(st->lb, kt, kl),
			    .text = kt,
			    .text_len = kl,
			    .ids = ids,
			    .n_ids = n_ids,
			    .max_tokens = r->max_tokens,
			    .now = now};
	int ep = lb_pick(st->lb, &rq);
	s->replica = ep;
	if (ep < 0 || !ids) {
		s->failed = 1;
		s->t_end = now;
		push_done(st, s);
		return;
	}
	lb_acquire(st->lb, ep, &rq, &s->lease);
	if (st->measuring)
		st->per_replica[ep]++;
	if (engine_add_ref(st->eng[ep], now + st->delay, ids, n_ids, r->max_tokens, s, &s->id)) {
		lb_release(&s->lease); /* cannot fit: a failed request */
		s->failed = 1;
		s->t_end = now;
		push_done(st, s);
		return;
	}
	touch(st, ep);
}

/* A timeout: the client leaves, the replica aborts the request. */
static void sim_cancel(void *ctx, struct client_req *r, uint64_t now)
{
	(void)now;
	struct simstate *st = ctx;
	struct sreq *s = r->drv;
	if (s->lease.active) {
		engine_abort(st->eng[s->replica], s->id);
		touch(st, s->replica);
		lb_release(&s->lease);
	}
	for (size_t i = 0; i < st->n_done; i++) /* ended in the same instant: forget it */
		if (st->done[i] == s)
			st->done[i] = NULL;
	sreq_free(st, s);
	r->drv = NULL;
}

static void drain_done(struct simstate *st)
{
	for (size_t k = 0; k < st->n_done; k++) {
		struct sreq *s = st->done[k];
		if (!s)
			continue;
		st->done[k] = NULL;
		lb_release(&s->lease);
		struct client_req *r = s->r;
		r->drv = NULL;
		client_on_usage(st->client, r, s->got, s->failed ? -1 : s->cached);
		const char *err = s->failed		 ? "the request does not fit on the replica"
				  : s->got < r->max_tokens ? "short answer"
							   : NULL;
		uint64_t t = s->t_end;
		sreq_free(st, s);
		client_on_end(st->client, r, t, err, NULL);
	}
	st->n_done = 0;
}

static const struct client_ops sim_ops = {sim_send, sim_cancel};

/* Runs one client over the fleet until it is done; the fleet keeps its state. */
static void run_pass(struct simstate *st, uint64_t *now)
{
	const struct sim_cfg *cfg = st->cfg;
	client_advance(st->client, *now);
	drain_done(st);
	(void)cfg;
	for (;;) {
		int which = st->heap.h[0];
		uint64_t te = st->heap.key[which];
		uint64_t tc = client_next_event(st->client);
		if (te == UINT64_MAX && tc == UINT64_MAX)
			break;
		if (te <= tc) {
			*now = te;
			engine_advance(st->eng[which], te, on_event, st);
			touch(st, which);
		} else {
			*now = tc;
			client_advance(st->client, tc);
		}
		drain_done(st);
	}
}

static void fleet_stats(const struct simstate *st, uint64_t *hits, uint64_t *queries, uint64_t *preempt)
{
	*hits = *queries = *preempt = 0;
	for (int r = 0; r < st->cfg->replicas; r++) {
		struct engine_stats es;
		engine_get_stats(st->eng[r], &es);
		*hits += es.prefix_hits;
		*queries += es.prefix_queries;
		*preempt += es.preemptions;
	}
}

int sim_run(const struct sim_cfg *cfg, struct sim_result *res)
{
	memset(res, 0, sizeof *res);
	if (cfg->replicas < 1 || (cfg->client.mode == CLIENT_LIST && !cfg->item_ids) ||
	    (cfg->warm_requests && cfg->client.mode != CLIENT_LIST))
		return -1;
	struct simstate st = {.cfg = cfg, .delay = (uint64_t)(cfg->net_delay_ms * MS)};
	st.eng = plb_calloc((size_t)cfg->replicas, sizeof *st.eng);
	st.per_replica = plb_calloc((size_t)cfg->replicas, sizeof *st.per_replica);
	int rc = 0;
	st.heap.h = plb_calloc((size_t)cfg->replicas, sizeof *st.heap.h);
	st.heap.pos = plb_calloc((size_t)cfg->replicas, sizeof *st.heap.pos);
	st.heap.key = plb_calloc((size_t)cfg->replicas, sizeof *st.heap.key);
	st.heap.n = (size_t)cfg->replicas;
	for (int r = 0; r < cfg->replicas; r++) {
		st.heap.h[r] = r; /* every key UINT64_MAX: idle replicas, a valid heap */
		st.heap.pos[r] = (size_t)r;
		st.heap.key[r] = UINT64_MAX;
		if (!(st.eng[r] = engine_new(&cfg->profile, cfg->filler, cfg->n_filler)))
			rc = -1;
	}
	uint64_t now = 0;
	char name[32];
	if (!rc && cfg->warm_requests) {
		struct wl_plan wp = *cfg->client.plan;
		wp.num = cfg->warm_requests < wp.num ? cfg->warm_requests : wp.num;
		struct client_cfg wc = cfg->client;
		wc.plan = &wp;
		wc.keep_text = 0;
		wc.timeout_s = 0;
		st.lb = lb_new(&cfg->warm_lb);
		st.client = client_new(&wc, &sim_ops, &st);
		if (st.lb && st.client) {
			for (int r = 0; r < cfg->replicas; r++) {
				snprintf(name, sizeof name, "replica-%d:8000", r);
				lb_add(st.lb, name, NULL, 0);
			}
			run_pass(&st, &now);
		} else {
			rc = -1;
		}
		client_free(st.client);
		lb_free(st.lb);
		st.client = NULL;
		st.lb = NULL;
	}
	uint64_t hits0 = 0, queries0 = 0, preempt0 = 0;
	if (!rc)
		fleet_stats(&st, &hits0, &queries0, &preempt0);
	if (!rc) {
		st.lb = lb_new(&cfg->lb);
		st.client = client_new(&cfg->client, &sim_ops, &st);
		if (!st.lb || !st.client)
			rc = -1;
	}
	if (!rc) {
		for (int r = 0; r < cfg->replicas; r++) {
			snprintf(name, sizeof name, "replica-%d:8000", r);
			lb_add(st.lb, name, NULL, 0);
		}
		st.measuring = 1;
		uint64_t t_measure = now;
		run_pass(&st, &now);
		struct client_stats cs;
		client_get_stats(st.client, &cs);
		res->duration = cs.t_end > t_measure ? (double)(cs.t_end - t_measure) / 1e9 : 0;
		fleet_stats(&st, &res->prefix_hits, &res->prompt_tokens, &res->preemptions);
		res->prefix_hits -= hits0; /* the warm-up's share */
		res->prompt_tokens -= queries0;
		res->preemptions -= preempt0;
		uint64_t mx = 0, tot = 0;
		for (int r = 0; r < cfg->replicas; r++) {
			tot += st.per_replica[r];
			mx = st.per_replica[r] > mx ? st.per_replica[r] : mx;
		}
		res->load_spread = tot ? (double)mx / ((double)tot / cfg->replicas) : 0;
		res->n_requests = client_n_recs(st.client);
		res->client = st.client;
		res->per_replica = st.per_replica;
		st.per_replica = NULL;
		st.client = NULL;
	}
	client_free(st.client);
	lb_free(st.lb);
	for (int r = 0; r < cfg->replicas; r++)
		engine_free(st.eng[r]);
	free(st.eng);
	free(st.heap.h);
	free(st.heap.pos);
	free(st.heap.key);
	free(st.per_replica);
	free(st.done);
	while (st.free_sreq) {
		struct sreq *s = st.free_sreq;
		st.free_sreq = s->next_free;
		free(s);
	}
	return rc;
}

void sim_result_free(struct sim_result *res)
{
	client_free(res->client);
	free(res->per_replica);
	memset(res, 0, sizeof *res);
}
