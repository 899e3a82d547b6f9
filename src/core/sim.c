/* sim.c: discrete-event simulation of client + router + engine fleet; see sim.h.
 *
 * Event order at equal times: engine events (tokens) first, then the client's
 * (arrivals, lags, think times, timeouts), then fleet changes, then the
 * router's reading of engine signals. Replicas wait in an indexed heap keyed by
 * their next event. Requests that end inside engine_advance (or fail in a
 * send) are queued and handed to the client after it returns, so the client
 * never re-enters an engine that is running. A replica going down fails its
 * requests through the router's lifecycle decisions (core/proxy.c): retried
 * elsewhere before their first token, cut after. */
#include "sim.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "chat.h"
#include "mem.h"
#include "policy.h"
#include "proxy.h"
#include "rng.h"
#include "simkv.h"

#define MS 1000000.0

struct sreq {
	struct client_req *r;
	struct lb_lease lease;
	struct proxy_req pr;
	int router; /* the router that took it (-1: not yet) */
	int replica;
	uint64_t id; /* the engine's request id */
	uint32_t got;
	long cached;
	uint64_t t_end;
	const char *error;
	struct sreq *next_free;
	struct sreq *prev, *next; /* the replica's live requests */
	struct admit_entry adm;   /* admission control (cfg->admit) */
	int admitted;             /* past admission (retries are not offered again) */
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

/* One router: its own routing state (in-flight counts, prefix index), as a
 * `prefixlb route` process has. Endpoint slots may differ between routers (a
 * removed endpoint's slot is freed when that router's last lease on it ends),
 * hence the maps per router. */
struct simrouter {
	struct lb *lb;
	int *ep_of;  /* replica -> lb endpoint (-1: not in the pool) */
	int *rep_of; /* lb endpoint -> replica */
	size_t cap_rep_of;
	struct admit *adm; /* its admission control (measured pass, cfg->admit), or NULL */
};

/* In-band load reports on their way (ORCA): a response head leaves replica
 * `replica` at `t` with the engine's load of that instant (taken when t is
 * reached: phase 0) and reaches the router one hop later (phase 1). Due
 * times only rise (requests arrive in time order, every hop is the same
 * delay), so each phase is a FIFO. */
struct sig_item {
	uint64_t t;
	int replica, router;
	struct lb_signals sg;
};

struct sigq {
	struct sig_item *v;
	size_t head, n, cap;
};

struct simstate {
	const struct sim_cfg *cfg;
	struct client *client;
	struct engine **eng; /* NULL while a replica is down */
	struct sreq **live;  /* per replica: its requests */
	struct simrouter *rt; /* the routers of the pass */
	struct simkv *kv;     /* KV events, when cfg->kv_events: one event-fed index all routers read */
	int n_rt;
	int admitting; /* the routers have admission control (measured pass) */
	uint64_t rr;          /* the next router (round robin) */
	struct rng assign;    /* the next router (random) */
	struct sigq orca[2];  /* in-band load reports: heads leaving replicas, heads reaching routers */
	struct eheap heap;
	size_t next_fleet;   /* the next fleet event */
	uint64_t t_measure;
	uint64_t next_signals;
	struct buf text;     /* a chat request's rendered text (char-block policies) */
	uint64_t retries, cut;
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

static void live_add(struct simstate *st, struct sreq *s)
{
	struct sreq **h = &st->live[s->replica];
	s->prev = NULL;
	s->next = *h;
	if (*h)
		(*h)->prev = s;
	*h = s;
}

static void live_del(struct simstate *st, struct sreq *s)
{
	if (s->replica < 0)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else if (st->live[s->replica] == s)
		st->live[s->replica] = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static const struct engine_profile *profile_of(const struct simstate *st, int r)
{
	return st->cfg->profiles ? &st->cfg->profiles[r] : &st->cfg->profile;
}

/* Replica r joins every router's pool (with an empty cache when new). */
static void join(struct simstate *st, int r)
{
	char name[32];
	snprintf(name, sizeof name, "replica-%d:8000", r);
	for (int k = 0; k < st->n_rt; k++) {
		struct simrouter *rt = &st->rt[k];
		int ep = lb_add(rt->lb, name, NULL, 0);
		rt->ep_of[r] = ep;
		if ((size_t)ep >= rt->cap_rep_of) {
			size_t n = (size_t)ep + 16;
			rt->rep_of = plb_realloc(rt->rep_of, n * sizeof *rt->rep_of);
			rt->cap_rep_of = n;
		}
		rt->rep_of[ep] = r;
	}
	if (st->kv && st->n_rt) /* the routers add replicas in the same order: one endpoint number for all */
		simkv_join(st->kv, st->eng[r], r, st->rt[0].ep_of[r], 0);
}

/* n routers with the options o (fresh state each, no replica yet). */
static int routers_new(struct simstate *st, const struct lb_opts *o, int n)
{
	st->rt = plb_calloc((size_t)n, sizeof *st->rt);
	st->n_rt = n;
	st->rr = 0;
	int rc = 0;
	for (int k = 0; k < n; k++) {
		struct lb_opts ok = *o;
		ok.seed = o->seed + (uint64_t)k; /* each process its own tie-breaks */
		st->rt[k].lb = lb_new(&ok);
		if (st->rt[k].lb && st->kv)
			lb_set_kvindex(st->rt[k].lb, simkv_index(st->kv));
		st->rt[k].ep_of = plb_malloc((size_t)st->cfg->replicas * sizeof *st->rt[k].ep_of);
		for (int r = 0; r < st->cfg->replicas; r++)
			st->rt[k].ep_of[r] = -1;
		rc |= !st->rt[k].lb;
	}
	return rc ? -1 : 0;
}

static void routers_free(struct simstate *st)
{
	for (int k = 0; k < st->n_rt; k++) {
		admit_free(st->rt[k].adm);
		lb_free(st->rt[k].lb);
		free(st->rt[k].ep_of);
		free(st->rt[k].rep_of);
	}
	free(st->rt);
	st->rt = NULL;
	st->n_rt = 0;
}

/* The router a new request goes to (the Service in front of the routers). */
static int assign_router(struct simstate *st)
{
	if (st->n_rt == 1)
		return 0;
	if (st->cfg->router_assign == SIM_ASSIGN_ROUND_ROBIN)
		return (int)(st->rr++ % (uint64_t)st->n_rt);
	return (int)rng_below(&st->assign, (uint64_t)st->n_rt);
}

static void sigq_push(struct sigq *q, const struct sig_item *it)
{
	if (q->head + q->n == q->cap) {
		if (q->head) { /* slide down before growing */
			memmove(q->v, q->v + q->head, q->n * sizeof *q->v);
			q->head = 0;
		}
		if (q->n == q->cap) {
			q->cap = q->cap ? q->cap * 2 : 256;
			q->v = plb_realloc(q->v, q->cap * sizeof *q->v);
		}
	}
	q->v[q->head + q->n++] = *it;
}

static uint64_t sigq_next(const struct sigq *q)
{
	return q->n ? q->v[q->head].t : UINT64_MAX;
}

static struct sig_item sigq_pop(struct sigq *q)
{
	struct sig_item it = q->v[q->head++];
	if (--q->n == 0)
		q->head = 0;
	return it;
}

/* The engine's load now, as vLLM reports it (/metrics or the in-band header). */
static struct lb_signals engine_load(const struct engine *e, uint64_t now)
{
	struct engine_stats es;
	engine_get_stats(e, &es);
	return (struct lb_signals){.valid = 1, .at = now, .waiting = es.waiting, .running = es.running,
				   .kv_usage = es.blocks_total ? (double)es.blocks_used / es.blocks_total : 0};
}

/* The next in-band report event: a head leaves its replica (the load is read
 * then) or reaches its router (the router records it). */
static void orca_step(struct simstate *st)
{
	uint64_t t0 = sigq_next(&st->orca[0]), t1 = sigq_next(&st->orca[1]);
	if (t0 <= t1) {
		struct sig_item it = sigq_pop(&st->orca[0]);
		if (!st->eng[it.replica])
			return; /* went down meanwhile */
		it.sg = engine_load(st->eng[it.replica], it.t);
		it.t += st->delay;
		sigq_push(&st->orca[1], &it);
	} else {
		struct sig_item it = sigq_pop(&st->orca[1]);
		int ep = it.router < st->n_rt ? st->rt[it.router].ep_of[it.replica] : -1;
		if (ep >= 0)
			lb_set_signals(st->rt[it.router].lb, ep, &it.sg);
	}
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
		live_del(st, s);
		push_done(st, s);
	}
}

static void dispatch(struct simstate *st, struct sreq *s, uint64_t now);

/* ---- admission control (core/admit.c, as the router runs it): offered
 * before the first pick; queued requests go when admit_next says (admit_kick,
 * after the events of an instant: leases released, first tokens); refused ones
 * end with 429 at once (the router is where the client is: no delay). Returns
 * 1 when s is not to be placed now. */
static int admission(struct simstate *st, struct sreq *s, const struct client_req *r, size_t n_ids, uint64_t now)
{
	struct admit_entry *e = &s->adm;
	memset(e, 0, sizeof *e);
	e->tenant = r->tenant ? admit_tenant_hash(r->tenant, strlen(r->tenant)) : 0;
	e->prompt_tokens = (uint32_t)n_ids;
	e->max_tokens = r->max_tokens;
	e->wait_ms = -1;
	e->t0 = now;
	int v = admit_offer(st->rt[s->router].adm, e, now);
	if (v == ADMIT_GO) {
		s->admitted = 1;
		return 0;
	}
	if (v == ADMIT_REJECT) {
		s->error = CLIENT_REJECTED;
		s->t_end = now;
		s->replica = -1;
		push_done(st, s);
	}
	return 1;
}

static void admit_kick(struct simstate *st, uint64_t now)
{
	for (int k = 0; k < st->n_rt; k++) {
		struct admit *adm = st->rt[k].adm;
		struct admit_entry *e;
		while (adm && (e = admit_expire(adm, now))) {
			struct sreq *s = (struct sreq *)((char *)e - offsetof(struct sreq, adm));
			s->error = CLIENT_REJECTED;
			s->t_end = now;
			push_done(st, s);
		}
		while (adm && (e = admit_next(adm, now))) {
			struct sreq *s = (struct sreq *)((char *)e - offsetof(struct sreq, adm));
			s->admitted = 1;
			dispatch(st, s, now);
		}
	}
}

/* The router places s (a first try or a retry) and sends it: the replica
 * gets it one hop later. */
static void dispatch(struct simstate *st, struct sreq *s, uint64_t now)
{
	const struct sim_cfg *cfg = st->cfg;
	struct client_req *r = s->r;
	const uint32_t *ids;
	size_t n_ids;
	if (r->session != SIZE_MAX) {
		ids = r->ids ? r->ids->v : NULL;
		n_ids = r->ids ? r->ids->n : 0;
	} else {
		ids = cfg->item_ids[r->item].v;
		n_ids = cfg->item_ids[r->item].n;
	}
	if (s->router < 0)
		s->router = assign_router(st); /* a retry stays with the router that retries it */
	struct simrouter *rt = &st->rt[s->router];
	size_t kl;
	const char *kt = client_routing_text(r, &kl); /* KubeAI's key: the first user message or the prompt */
	const char *text = kt;
	size_t tl = kl;
	if (r->chat && (lb_policy_needs(rt->lb) & LB_NEEDS_PROMPT)) { /* the whole prompt as the engine renders it */
		buf_reset(&st->text);
		chat_render_t(cfg->tpl, r->msgs, r->n_msgs, 1, &st->text);
		text = st->text.data;
		tl = st->text.len;
	}
	if (rt->adm && !s->admitted && admission(st, s, r, ids ? n_ids : 0, now))
		return; /* queued or rejected */
	struct lb_req rq = {.key = lb_key(rt->lb, kt, kl),
			    .text = text,
			    .text_len = tl,
			    .ids = ids,
			    .n_ids = n_ids,
			    .max_tokens = r->max_tokens,
			    .now = now,
			    .tried = s->pr.tried,
			    .n_tried = s->pr.n_tried};
	int ep = lb_pick(rt->lb, &rq);
	s->replica = ep >= 0 ? rt->rep_of[ep] : -1;
	if (ep < 0 || !ids) {
		s->error = ep < 0 ? "no replica left" : "no prompt";
		s->t_end = now;
		s->replica = -1;
		push_done(st, s);
		return;
	}
	long pred = lb_predicted_cached(rt->lb);
	if (pred >= 0)
		client_on_predicted(st->client, r, pred);
	lb_acquire(rt->lb, ep, &rq, &s->lease);
	if (st->measuring)
		st->per_replica[s->replica]++;
	if (engine_add_ref(st->eng[s->replica], now + st->delay, ids, n_ids, r->max_tokens, s, &s->id)) {
		lb_release(&s->lease); /* cannot fit: a failed request */
		s->error = "the request does not fit on the replica";
		s->t_end = now;
		s->replica = -1;
		push_done(st, s);
		return;
	}
	live_add(st, s);
	touch(st, s->replica);
	if (st->cfg->orca && st->measuring) { /* its response head will carry the replica's load */
		struct sig_item it = {.t = now + st->delay, .replica = s->replica, .router = s->router};
		sigq_push(&st->orca[0], &it);
	}
}

static void sim_send(void *ctx, struct client_req *r, uint64_t now)
{
	struct simstate *st = ctx;
	struct sreq *s = sreq_new(st);
	s->r = r;
	s->replica = -1;
	s->router = -1;
	r->drv = s;
	dispatch(st, s, now);
}

/* A timeout: the client leaves, the replica aborts the request. */
static void sim_cancel(void *ctx, struct client_req *r, uint64_t now)
{
	struct simstate *st = ctx;
	struct sreq *s = r->drv;
	if (s->router >= 0 && st->rt[s->router].adm)
		admit_cancel(st->rt[s->router].adm, &s->adm, now);
	if (s->lease.active) {
		engine_abort(st->eng[s->replica], s->id);
		touch(st, s->replica);
		live_del(st, s);
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
		client_on_usage(st->client, r, s->got, s->error ? -1 : s->cached);
		const char *err = s->error ? s->error : s->got < r->max_tokens ? "short answer" : NULL;
		uint64_t t = s->t_end;
		sreq_free(st, s);
		client_on_end(st->client, r, t, err, NULL);
	}
	st->n_done = 0;
}

static const struct client_ops sim_ops = {sim_send, sim_cancel};

/* Replica r goes down: its requests fail as the router sees them fail. */
static void crash(struct simstate *st, int r, uint64_t now)
{
	if (!st->eng[r])
		return;
	struct sreq *s = st->live[r];
	st->live[r] = NULL;
	while (s) {
		struct sreq *next = s->next;
		s->prev = s->next = NULL;
		lb_release(&s->lease);
		s->pr.head_sent = s->got > 0;
		struct proxy_decision d = proxy_on_end(&s->pr, st->cfg->retries, s->got ? PROXY_END_PROTO : PROXY_END_LOST,
						       "the replica went away");
		if (d.act == PROXY_RETRY) {
			st->retries++;
			proxy_retry(&s->pr, st->rt[s->router].ep_of[r]);
			s->replica = -1;
			dispatch(st, s, now);
		} else {
			st->cut += s->got > 0;
			s->error = s->got ? "cut: the replica went away mid-answer" : "the replica went away";
			s->t_end = now + st->delay;
			s->replica = -1;
			push_done(st, s);
		}
		s = next;
	}
	for (int k = 0; k < st->n_rt; k++) {
		lb_remove(st->rt[k].lb, st->rt[k].ep_of[r]);
		st->rt[k].ep_of[r] = -1;
	}
	if (st->kv)
		simkv_leave(st->kv, r);
	engine_free(st->eng[r]);
	st->eng[r] = NULL;
	st->heap.key[r] = UINT64_MAX;
	heap_fix(&st->heap, st->heap.pos[r]);
}

static void fleet_event(struct simstate *st, const struct sim_fleet_event *ev, uint64_t now)
{
	int r = ev->replica;
	if (r < 0 || r >= st->cfg->replicas)
		return;
	if (!ev->up) {
		crash(st, r, now);
	} else if (!st->eng[r]) {
		st->eng[r] = engine_new(profile_of(st, r), st->cfg->filler, st->cfg->n_filler);
		if (st->eng[r])
			join(st, r);
	}
}

/* Every router reads each engine's load (vLLM's /metrics); the routers poll
 * in step. */
static void read_signals(struct simstate *st, uint64_t now)
{
	for (int r = 0; r < st->cfg->replicas; r++) {
		if (!st->eng[r])
			continue;
		struct lb_signals sg = engine_load(st->eng[r], now);
		for (int k = 0; k < st->n_rt; k++)
			if (st->rt[k].ep_of[r] >= 0)
				lb_set_signals(st->rt[k].lb, st->rt[k].ep_of[r], &sg);
	}
}

/* Runs one client over the fleet until it is done; the fleet keeps its state.
 * Fleet events and signal reads belong to the measured pass (events). */
static void run_pass(struct simstate *st, uint64_t *now, int events)
{
	const struct sim_cfg *cfg = st->cfg;
	uint64_t sig_ns = events && cfg->signals_ms > 0 ? (uint64_t)(cfg->signals_ms * MS) : 0;
	if (sig_ns) {
		read_signals(st, *now);
		st->next_signals = *now + sig_ns;
	}
	client_advance(st->client, *now);
	drain_done(st);
	for (;;) {
		int which = st->heap.h[0];
		uint64_t te = st->heap.key[which];
		uint64_t tc = client_next_event(st->client);
		uint64_t tf = events && st->next_fleet < cfg->n_events
				      ? st->t_measure + (uint64_t)(cfg->events[st->next_fleet].t_s * 1e9)
				      : UINT64_MAX;
		uint64_t ta = UINT64_MAX; /* a queued request's deadline */
		for (int k = 0; k < st->n_rt; k++)
			if (st->rt[k].adm && admit_next_deadline(st->rt[k].adm) < ta)
				ta = admit_next_deadline(st->rt[k].adm);
		ta = ta < *now ? *now : ta; /* one displaced by a newcomer is due now */
		int busy = te != UINT64_MAX || tc != UINT64_MAX;
		uint64_t ts = sig_ns && busy ? st->next_signals : UINT64_MAX;
		uint64_t to = busy ? sigq_next(&st->orca[0]) : UINT64_MAX;
		uint64_t to1 = busy ? sigq_next(&st->orca[1]) : UINT64_MAX;
		to = to1 < to ? to1 : to;
		if (!busy && tf != UINT64_MAX && client_done(st->client))
			tf = UINT64_MAX; /* the run is over: later fleet changes cannot matter */
		if (te == UINT64_MAX && tc == UINT64_MAX && tf == UINT64_MAX && ta == UINT64_MAX)
			break;
		uint64_t tk = st->kv && busy ? simkv_next(st->kv) : UINT64_MAX;
		if (tk < te && tk < tc && tk < tf && tk < ts && tk < to && tk < ta) {
			*now = tk;
			simkv_deliver(st->kv, tk); /* changes only the routers' index */
			continue;
		}
		if (ta < te && ta < tc && ta < tf && ta < ts && ta < to) {
			*now = ta;
		} else if (te <= tc && te <= tf && te <= ts && te <= to) {
			*now = te;
			engine_advance(st->eng[which], te, on_event, st);
			touch(st, which);
		} else if (tc <= tf && tc <= ts && tc <= to) {
			*now = tc;
			client_advance(st->client, tc);
		} else if (tf <= ts && tf <= to) {
			*now = tf;
			fleet_event(st, &cfg->events[st->next_fleet++], tf);
		} else if (ts <= to) {
			*now = ts;
			read_signals(st, ts);
			st->next_signals = ts + sig_ns;
		} else {
			*now = to;
			orca_step(st);
		}
		drain_done(st);
		if (st->admitting) {
			admit_kick(st, *now);
			drain_done(st);
		}
	}
}

static void fleet_stats(const struct simstate *st, uint64_t *hits, uint64_t *queries, uint64_t *preempt)
{
	*hits = *queries = *preempt = 0;
	for (int r = 0; r < st->cfg->replicas; r++) {
		struct engine_stats es;
		if (!st->eng[r])
			continue;
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
	rng_seed(&st.assign, cfg->lb.seed ^ 0x726f75746572ULL); /* "router" */
	st.eng = plb_calloc((size_t)cfg->replicas, sizeof *st.eng);
	st.live = plb_calloc((size_t)cfg->replicas, sizeof *st.live);
	buf_init(&st.text, (size_t)1 << 30);
	int up0 = cfg->start_replicas > 0 && cfg->start_replicas < cfg->replicas ? cfg->start_replicas : cfg->replicas;
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
		if (r < up0 && !(st.eng[r] = engine_new(profile_of(&st, r), cfg->filler, cfg->n_filler)))
			rc = -1;
	}
	if (!rc && cfg->kv_events) {
		struct kvindex_cfg kc;
		kvindex_cfg_default(&kc);
		kc.block_tokens = (size_t)lb_opts_get(&cfg->lb, "block-tokens");
		if (cfg->routers > 1) /* one index for all: no router may see another's fresh placements */
			kc.pending_ns = 0;
		st.kv = simkv_new((uint64_t)(cfg->kv_events_delay_ms * MS), &kc, cfg->replicas);
	}
	uint64_t now = 0;
	if (!rc && cfg->warm_requests) {
		struct wl_plan wp = *cfg->client.plan;
		wp.num = cfg->warm_requests < wp.num ? cfg->warm_requests : wp.num;
		struct client_cfg wc = cfg->client;
		wc.plan = &wp;
		wc.keep_text = 0;
		wc.timeout_s = 0;
		/* one router of the warm-up's policy warms the fleet, or the measured
		 * pass's own routers do (they keep running: their state carries over) */
		int rrc = cfg->warm_same_router ? routers_new(&st, &cfg->lb, cfg->routers > 1 ? cfg->routers : 1)
						: routers_new(&st, &cfg->warm_lb, 1);
		st.client = client_new(&wc, &sim_ops, &st);
		if (!rrc && st.client) {
			for (int r = 0; r < up0; r++)
				join(&st, r);
			run_pass(&st, &now, 0);
		} else {
			rc = -1;
		}
		client_free(st.client);
		st.client = NULL;
		if (!cfg->warm_same_router || rc)
			routers_free(&st);
	}
	uint64_t hits0 = 0, queries0 = 0, preempt0 = 0;
	if (!rc)
		fleet_stats(&st, &hits0, &queries0, &preempt0);
	int joined = st.n_rt > 0; /* the warm-up's routers, kept: their endpoints are there */
	if (!rc) {
		int rrc = joined ? 0 : routers_new(&st, &cfg->lb, cfg->routers > 1 ? cfg->routers : 1);
		st.client = client_new(&cfg->client, &sim_ops, &st);
		if (rrc || !st.client)
			rc = -1;
		else if (cfg->admit.on) {
			for (int k = 0; k < st.n_rt; k++)
				st.rt[k].adm = admit_new(&cfg->admit, st.rt[k].lb);
			st.admitting = 1;
		}
	}
	if (!rc) {
		for (int r = 0; r < up0 && !joined; r++)
			join(&st, r);
		st.measuring = 1;
		uint64_t t_measure = now;
		st.t_measure = now;
		run_pass(&st, &now, 1);
		res->retries = st.retries;
		res->cut = st.cut;
		for (int k = 0; k < st.n_rt && st.admitting; k++) {
			struct admit_stats as;
			admit_get_stats(st.rt[k].adm, &as);
			for (int o = 0; o < ADMIT_N_OUTCOMES; o++)
				res->admit.outcomes[o] += as.outcomes[o];
			res->admit.queued += as.queued;
			res->admit.wait_s_total += as.wait_s_total;
		}
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
	routers_free(&st);
	simkv_free(st.kv);
	free(st.orca[0].v);
	free(st.orca[1].v);
	for (int r = 0; r < cfg->replicas; r++)
		engine_free(st.eng[r]);
	free(st.eng);
	free(st.live);
	buf_free(&st.text);
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
