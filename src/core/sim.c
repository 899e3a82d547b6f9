/* sim.c: discrete-event simulation of client + router + engine fleet.
 *
 * Event order at equal times: engine events (tokens) first, then arrivals.
 * The next event is the minimum over the arrival process and each replica's
 * engine_next_event(); O(replicas) per event, which is cheap next to a step. */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define MS 1000000.0

struct sreq {
	uint64_t t0, t_last; /* ns, client side */
	uint32_t got;
	struct lb_lease lease;
	int replica;
	double *itl;
	size_t n_itl, cap_itl;
	uint32_t *gen; /* sessions: the answer's token ids */
	size_t n_gen, cap_gen;
};

struct pending {
	uint64_t t;
	size_t idx;
};

struct done {
	size_t idx;
	uint64_t t;
};

struct simstate {
	const struct sim_cfg *cfg;
	const struct sim_req *reqs;
	struct sreq *s;
	struct req_result *out;
	struct engine **eng;
	struct lb *lb, *warm_lb;
	uint64_t delay; /* ns */
	uint64_t lag;   /* ns, client clock start -> request on the wire */
	struct done *done;
	size_t n_done, cap_done;
	size_t *queue, q_head, q_len;
	long in_flight;
	uint64_t t_end;
	struct sim_result *res;
	/* sessions */
	const struct sim_req *first; /* each session's first turn */
	struct sim_req *treq;        /* every turn sent; reqs points here */
	size_t *sess_of;             /* request -> session */
	size_t n_issued, cap, n_sessions, next_session;
	struct pending *pend; /* turns waiting out the think time, due times rising */
	size_t pend_head, pend_len;
};

static void on_event(void *ctx, const struct engine_event *ev)
{
	struct simstate *st = ctx;
	size_t i = (size_t)(uintptr_t)ev->user;
	struct sreq *s = &st->s[i];
	uint64_t t = ev->time + st->delay; /* the client sees it one network hop later */
	if (s->got == 0) {
		st->out[i].ttft = (double)(t - s->t0) / 1e9;
	} else {
		if (s->n_itl == s->cap_itl) {
			s->cap_itl = s->cap_itl ? s->cap_itl * 2 : 32;
			s->itl = realloc(s->itl, s->cap_itl * sizeof *s->itl);
		}
		s->itl[s->n_itl++] = (double)(t - s->t_last) / 1e9;
	}
	s->t_last = t;
	s->got++;
	if (st->cfg->next_turn) {
		if (s->n_gen == s->cap_gen) {
			s->cap_gen = s->cap_gen ? s->cap_gen * 2 : 64;
			s->gen = realloc(s->gen, s->cap_gen * sizeof *s->gen);
		}
		s->gen[s->n_gen++] = ev->token;
	}
	st->out[i].cached_tokens = ev->cached_tokens;
	if (ev->finished) {
		if (st->n_done == st->cap_done) {
			st->cap_done = st->cap_done ? st->cap_done * 2 : 256;
			st->done = realloc(st->done, st->cap_done * sizeof *st->done);
		}
		st->done[st->n_done++] = (struct done){i, t};
	}
}

static void start(struct simstate *st, size_t i, uint64_t now)
{
	const struct sim_req *q = &st->reqs[i];
	struct sreq *s = &st->s[i];
	s->t0 = s->t_last = now;
	st->in_flight++;
	struct lb *lb = i < st->cfg->warm && st->warm_lb ? st->warm_lb : st->lb;
	struct lb_req rq = {.key = lb_key(lb, q->key, q->key_len), .n_ids = q->n_ids, .ids = q->ids,
			    .max_tokens = q->max_tokens, .now = now, .text = q->key, .text_len = q->key_len};
	int ep = lb_pick(lb, &rq);
	lb_acquire(lb, ep, &rq, &s->lease);
	s->replica = ep;
	if (ep < 256)
		st->res->per_replica[ep]++;
	uint64_t id;
	if (engine_add(st->eng[ep], now + st->delay + st->lag, q->ids, q->n_ids, q->max_tokens, (void *)(uintptr_t)i, &id)) {
		/* cannot fit: a failed request */
		lb_release(&s->lease);
		st->in_flight--;
		st->out[i].success = 0;
		return;
	}
}

/* A request past the client's arrival process: through the semaphore, or queued. */
static void issue(struct simstate *st, size_t idx, uint64_t now)
{
	if (st->cfg->max_concurrency > 0 && st->in_flight >= st->cfg->max_concurrency)
		st->queue[st->q_head + st->q_len++] = idx;
	else
		start(st, idx, now);
}

static void init_out(struct simstate *st, size_t i)
{
	st->out[i].success = 1;
	st->out[i].prompt_len = (long)st->reqs[i].n_ids;
	st->out[i].output_len = st->reqs[i].max_tokens;
	st->out[i].cached_tokens = -1;
}

/* Sessions: sends the next session's first turn; 0 when none is left. */
static int open_session(struct simstate *st, uint64_t now)
{
	if (st->next_session >= st->n_sessions || st->n_issued >= st->cap)
		return 0;
	size_t idx = st->n_issued++;
	st->treq[idx] = st->first[st->next_session];
	st->sess_of[idx] = st->next_session++;
	init_out(st, idx);
	issue(st, idx, now);
	return 1;
}

/* Sessions: request idx got its whole answer at t; the session's next turn
 * goes out after the think time, or the session ends. */
static void turn_done(struct simstate *st, size_t idx, uint64_t t, int paced)
{
	const struct sim_cfg *cfg = st->cfg;
	struct sim_req nx;
	size_t sess = st->sess_of[idx];
	if (st->n_issued < st->cap && cfg->next_turn(cfg->turn_ctx, sess, st->s[idx].gen, st->s[idx].n_gen, &nx) == 0) {
		size_t j = st->n_issued++;
		st->treq[j] = nx;
		st->sess_of[j] = sess;
		init_out(st, j);
		uint64_t think = (uint64_t)(cfg->think_s * 1e9);
		if (think)
			st->pend[st->pend_head + st->pend_len++] = (struct pending){t + think, j};
		else
			issue(st, j, t);
	} else if (!paced) {
		open_session(st, t); /* rate inf: concurrency counts sessions */
	}
}

int sim_run(const struct sim_cfg *cfg, const struct sim_req *reqs, size_t n, const uint32_t *filler, size_t n_filler,
	    struct req_result *out, struct sim_result *res)
{
	int sessions = cfg->next_turn != NULL;
	size_t cap = sessions ? cfg->max_requests : n;
	memset(res, 0, sizeof *res);
	if (sessions && cfg->warm)
		return -1;
	memset(out, 0, cap * sizeof *out);
	struct simstate st = {.cfg = cfg, .reqs = reqs, .out = out, .res = res, .cap = cap};
	st.delay = (uint64_t)(cfg->net_delay_ms * MS);
	st.lag = (uint64_t)(cfg->client_lag_ms * MS);
	st.s = calloc(cap ? cap : 1, sizeof *st.s);
	st.queue = calloc(cap ? cap : 1, sizeof *st.queue);
	if (sessions) {
		st.first = reqs;
		st.n_sessions = n;
		st.treq = calloc(cap ? cap : 1, sizeof *st.treq);
		st.sess_of = calloc(cap ? cap : 1, sizeof *st.sess_of);
		st.pend = calloc(cap ? cap : 1, sizeof *st.pend);
		st.reqs = st.treq;
		if (!st.treq || !st.sess_of || !st.pend)
			return -1;
	}
	st.eng = calloc((size_t)cfg->replicas, sizeof *st.eng);
	st.lb = lb_new(&cfg->lb);
	if (cfg->warm && cfg->warm_lb_set)
		st.warm_lb = lb_new(&cfg->warm_lb);
	if (!st.s || !st.queue || !st.eng || !st.lb || (cfg->warm && cfg->warm_lb_set && !st.warm_lb))
		return -1;
	for (int r = 0; r < cfg->replicas; r++) {
		char name[32];
		snprintf(name, sizeof name, "replica-%d:8000", r);
		lb_add(st.lb, name, NULL, 0);
		if (st.warm_lb)
			lb_add(st.warm_lb, name, NULL, 0);
		st.eng[r] = engine_new(&cfg->profile, filler, n_filler);
		if (!st.eng[r])
			return -1;
	}
	if (!sessions) {
		st.n_issued = n;
		for (size_t i = 0; i < n; i++)
			init_out(&st, i);
	}
	struct rng rng;
	rng_seed(&rng, cfg->seed);
	int paced = isfinite(cfg->request_rate) && cfg->request_rate > 0;
	uint64_t next_arrival = 0, floor_ns = (uint64_t)(cfg->dispatch_floor_ms * MS);
	size_t released = 0, warm = cfg->warm < n ? cfg->warm : 0;
	int measuring = warm == 0;
	uint64_t t_measure = 0, hits0 = 0, queries0 = 0, preempt0 = 0;
	uint64_t now = 0;
	if (sessions && !paced && floor_ns == 0) { /* rate inf: max_concurrency sessions at once */
		long open = cfg->max_concurrency > 0 ? cfg->max_concurrency : (long)n;
		for (long k = 0; k < open && open_session(&st, 0); k++)
			;
		released = n;
	}
	for (;;) {
		/* next engine event */
		uint64_t te = UINT64_MAX;
		int which = -1;
		for (int r = 0; r < cfg->replicas; r++) {
			uint64_t t = engine_next_event(st.eng[r]);
			if (t < te) {
				te = t;
				which = r;
			}
		}
		uint64_t ta = released < n && (!sessions || st.n_issued < cap) ? next_arrival : UINT64_MAX;
		uint64_t tp = st.pend_len ? st.pend[st.pend_head].t : UINT64_MAX;
		if (tp < te && tp <= ta) { /* a session's next turn, its think time over */
			now = tp;
			issue(&st, st.pend[st.pend_head++].idx, now);
			st.pend_len--;
			continue;
		}
		if (released == warm && !measuring) {
			if (st.in_flight > 0) {
				ta = UINT64_MAX; /* the warm-up drains first */
			} else {
				measuring = 1;
				t_measure = now;
				rng_seed(&rng, cfg->seed); /* arrivals as a fresh client's: live runs start a new bench */
				if (next_arrival < now)
					next_arrival = now;
				ta = next_arrival;
				for (int r = 0; r < cfg->replicas; r++) {
					struct engine_stats es;
					engine_get_stats(st.eng[r], &es);
					hits0 += es.prefix_hits;
					queries0 += es.prefix_queries;
					preempt0 += es.preemptions;
				}
				memset(res->per_replica, 0, sizeof res->per_replica);
			}
		}
		if (te == UINT64_MAX && ta == UINT64_MAX)
			break;
		if (te <= ta) {
			now = te;
			engine_advance(st.eng[which], now, on_event, &st);
			for (size_t k = 0; k < st.n_done; k++) {
				struct done d = st.done[k];
				lb_release(&st.s[d.idx].lease);
				st.out[d.idx].latency = (double)(d.t - st.s[d.idx].t0) / 1e9;
				st.in_flight--;
				if (d.t > st.t_end)
					st.t_end = d.t;
				if (st.q_len) { /* the semaphore lets the next one through */
					start(&st, st.queue[st.q_head++], d.t);
					st.q_len--;
				}
				if (sessions)
					turn_done(&st, d.idx, d.t, paced || floor_ns);
			}
			st.n_done = 0;
			continue;
		}
		now = ta;
		do {
			size_t i = released++;
			if (sessions)
				open_session(&st, now);
			else
				issue(&st, i, now);
		} while (!paced && floor_ns == 0 && released < n && released != warm);
		double gap = paced ? rng_gamma(&rng, cfg->burstiness, 1.0 / (cfg->request_rate * cfg->burstiness)) : 0;
		uint64_t g = (uint64_t)(gap * 1e9);
		next_arrival = now + (g < floor_ns ? floor_ns : g);
	}
	res->duration = (double)(st.t_end - t_measure) / 1e9;
	uint64_t mx = 0, tot = 0;
	for (int r = 0; r < cfg->replicas; r++) {
		struct engine_stats es;
		engine_get_stats(st.eng[r], &es);
		res->prefix_hits += es.prefix_hits;
		res->prompt_tokens += es.prefix_queries;
		res->preemptions += es.preemptions;
		engine_free(st.eng[r]);
		if (r < 256) {
			tot += res->per_replica[r];
			if (res->per_replica[r] > mx)
				mx = res->per_replica[r];
		}
	}
	res->prefix_hits -= hits0; /* the warm-up's share */
	res->prompt_tokens -= queries0;
	res->preemptions -= preempt0;
	res->load_spread = tot ? (double)mx / ((double)tot / cfg->replicas) : 0;
	res->n_requests = st.n_issued;
	for (size_t i = 0; i < st.n_issued; i++) {
		out[i].itl = st.s[i].itl;
		out[i].n_itl = st.s[i].n_itl;
		if (st.s[i].got < st.reqs[i].max_tokens)
			out[i].success = 0;
		free(st.s[i].gen);
	}
	lb_free(st.lb);
	if (st.warm_lb)
		lb_free(st.warm_lb);
	free(st.eng);
	free(st.s);
	free(st.queue);
	free(st.done);
	free(st.treq);
	free(st.sess_of);
	free(st.pend);
	return 0;
}

void sim_results_free(struct req_result *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(out[i].itl);
}
