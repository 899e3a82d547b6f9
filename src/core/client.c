/* client.c: the benchmark client's state machine; see client.h.
 *
 * A request goes QUEUED (released, waiting for the semaphore) -> LAG (clock
 * started, not yet sent) -> SENT -> gone (its record stays). Four queues
 * drive time, each a FIFO whose due times only rise, so the next event is
 * the minimum of four heads: the arrival schedule, the lag queue (t0 + lag),
 * the think queue (end + think) and the timeout queue (t0 + timeout).
 * Queues hold record indices; an entry whose request has moved on is stale
 * and is dropped when it reaches the head (tidy()). */
#include "client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "prompt.h"
#include "rng.h"

enum { RQ_QUEUED, RQ_LAG, RQ_SENT, RQ_THINK };

const char CLIENT_ABORTED[] = "aborted by the client";
const char CLIENT_REJECTED[] = "HTTP 429";

struct fifo {
	size_t *v;
	size_t head, len, cap;
};

struct session {
	size_t conv;
	size_t next_msg; /* the next user message */
	struct chat_msg *msgs;
	size_t n_msgs;
	char **answers; /* owned assistant texts */
	size_t n_answers;
	struct tok_ids ids; /* the current turn's prompt ids */
	int tenant;         /* -1: none */
};

struct named {
	char *name;
	char *detail;
	long n;
};

#define MAX_REASONS 64
#define MAX_BACKENDS 1024

struct client {
	struct client_cfg cfg;
	struct client_ops ops;
	void *ctx;
	struct rng rng;
	int started, paced, interrupted;
	uint64_t t_start, next_at;
	uint64_t lag_ns, think_ns, timeout_ns, floor_ns;
	/* records */
	struct client_rec *recs;
	struct client_req **live; /* per record: its request while alive */
	size_t n_recs, cap_recs;
	/* releases */
	size_t released;          /* LIST: requests released */
	struct fifo semq, lagq, thinkq, toq;
	struct client_req *free_reqs;
	/* sessions */
	struct session *sess;
	size_t n_sess, next_sess, open_sess;
	size_t turns; /* SESSIONS: turns created */
	/* stats */
	struct client_stats st;
	struct named reasons[MAX_REASONS], backends[MAX_BACKENDS];
	size_t n_reasons, n_backends;
	/* tenants */
	char tname[CLIENT_MAX_TENANTS][64];
	double tcum[CLIENT_MAX_TENANTS]; /* cumulative weights */
	size_t n_tenants;
	struct rng trng;
};

/* ---- queues -------------------------------------------------------------- */

static void fifo_push(struct fifo *q, size_t v)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		size_t *nv = plb_malloc(cap * sizeof *nv);
		for (size_t i = 0; i < q->len; i++)
			nv[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = nv;
		q->cap = cap;
		q->head = 0;
	}
	q->v[(q->head + q->len++) % q->cap] = v;
}

static size_t fifo_head(const struct fifo *q)
{
	return q->v[q->head];
}

static void fifo_pop(struct fifo *q)
{
	q->head = (q->head + 1) % q->cap;
	q->len--;
}

/* A queue entry is current when its request is alive in state `want`. */
static int current(const struct client *c, size_t idx, int want)
{
	return c->live[idx] && c->live[idx]->state == want;
}

static void tidy(struct client *c)
{
	while (c->semq.len && !current(c, fifo_head(&c->semq), RQ_QUEUED))
		fifo_pop(&c->semq);
	while (c->lagq.len && !current(c, fifo_head(&c->lagq), RQ_LAG))
		fifo_pop(&c->lagq);
	while (c->thinkq.len && !current(c, fifo_head(&c->thinkq), RQ_THINK))
		fifo_pop(&c->thinkq);
	while (c->toq.len && !current(c, fifo_head(&c->toq), RQ_LAG) && !current(c, fifo_head(&c->toq), RQ_SENT))
		fifo_pop(&c->toq);
}

/* ---- records ------------------------------------------------------------- */

/* The index of name s in v (added when new; the last slot takes the rest
 * once v is full), its count raised by inc. */
static size_t intern(struct named *v, size_t *n, size_t max, const char *s, size_t len, const char *detail, int inc)
{
	size_t i;
	for (i = 0; i < *n; i++)
		if (strlen(v[i].name) == len && !memcmp(v[i].name, s, len))
			break;
	if (i == *n && *n == max)
		i = max - 1;
	else if (i == *n) {
		v[i].name = plb_strndup(s, len);
		v[i].detail = detail ? plb_strdup(detail) : NULL;
		v[i].n = 0;
		(*n)++;
	}
	v[i].n += inc;
	return i;
}

static struct client_req *new_req(struct client *c, size_t conv, size_t turn, long prompt_tokens)
{
	if (c->n_recs == c->cap_recs) {
		c->cap_recs = c->cap_recs ? c->cap_recs * 2 : 1024;
		c->recs = plb_realloc(c->recs, c->cap_recs * sizeof *c->recs);
		c->live = plb_realloc(c->live, c->cap_recs * sizeof *c->live);
	}
	size_t idx = c->n_recs++;
	struct client_rec *rec = &c->recs[idx];
	memset(rec, 0, sizeof *rec);
	rec->r.prompt_len = prompt_tokens;
	rec->r.cached_tokens = -1;
	rec->r.predicted_cached = -1;
	rec->conv = conv;
	rec->turn = turn;
	rec->backend = rec->reason = 0xffff;
	rec->tenant = 0xff;
	struct client_req *r = c->free_reqs;
	if (r) {
		c->free_reqs = r->next_free;
	} else {
		r = plb_calloc(1, sizeof *r);
		buf_init(&r->text, (size_t)1 << 30);
	}
	buf_reset(&r->text);
	r->out.n = 0;
	struct buf keep_text = r->text;
	struct tok_ids keep_ids = r->out;
	memset(r, 0, sizeof *r);
	r->text = keep_text;
	r->out = keep_ids;
	r->idx = idx;
	r->session = SIZE_MAX;
	r->usage_out = r->cached = r->predicted = -1;
	c->live[idx] = r;
	return r;
}

static void free_req(struct client *c, struct client_req *r)
{
	c->live[r->idx] = NULL;
	r->next_free = c->free_reqs;
	c->free_reqs = r;
}

/* ---- tenants ------------------------------------------------------------------ */

static int parse_tenants(const char *spec, char names[][64], double *cum, size_t *n, char *err, size_t errlen)
{
	*n = 0;
	double tot = 0;
	for (const char *p = spec; *p;) {
		size_t l = strcspn(p, ",+");
		const char *colon = memchr(p, ':', l);
		size_t nl = colon ? (size_t)(colon - p) : l;
		char *end = NULL;
		double w = colon ? strtod(colon + 1, &end) : 1;
		int bad = !nl || nl >= 64 || (colon && (end == colon + 1 || end != p + l)) || !(w > 0 && w < 1e9);
		for (size_t i = 0; i < nl && !bad; i++)
			bad = !((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
				p[i] == '.' || p[i] == '_' || p[i] == '-');
		if (bad || *n == CLIENT_MAX_TENANTS) {
			snprintf(err, errlen, "tenants '%s': expected NAME:WEIGHT,... (at most %d; names of letters, digits, "
					      "._-; weights > 0)", spec, CLIENT_MAX_TENANTS);
			return -1;
		}
		memcpy(names[*n], p, nl);
		names[*n][nl] = '\0';
		tot += w;
		cum[(*n)++] = tot;
		p += l + (p[l] != '\0');
	}
	return 0;
}

int client_tenants_check(const char *spec, char *err, size_t errlen)
{
	char names[CLIENT_MAX_TENANTS][64];
	double cum[CLIENT_MAX_TENANTS];
	size_t n;
	return parse_tenants(spec, names, cum, &n, err, errlen);
}

/* A tenant drawn by weight, -1 when there are none. */
static int draw_tenant(struct client *c)
{
	if (!c->n_tenants)
		return -1;
	double u = rng_uniform(&c->trng) * c->tcum[c->n_tenants - 1];
	size_t i = 0;
	while (i + 1 < c->n_tenants && u >= c->tcum[i])
		i++;
	return (int)i;
}

static void set_tenant(struct client *c, struct client_req *r, int t)
{
	r->tenant = t >= 0 ? c->tname[t] : NULL;
	c->recs[r->idx].tenant = t >= 0 ? (uint8_t)t : 0xff;
}

/* ---- starting requests ------------------------------------------------------ */

static void send_req(struct client *c, struct client_req *r, uint64_t now)
{
	r->state = RQ_SENT;
	c->recs[r->idx].sent = 1;
	c->ops.send(c->ctx, r, now);
}

/* Through the semaphore: the clock starts. */
static void start(struct client *c, struct client_req *r, uint64_t now)
{
	r->t0 = r->t_last = now;
	struct client_rec *rec = &c->recs[r->idx];
	rec->t0 = now;
	rec->started = 1;
	double wait = (double)(now - r->t_queued) / 1e9;
	c->st.sem_wait_s += wait;
	if (wait > c->st.sem_wait_max_s)
		c->st.sem_wait_max_s = wait;
	if (!c->st.dispatched)
		c->st.t_first = now;
	c->st.t_last_release = now;
	c->st.dispatched++;
	c->st.in_flight++;
	if (c->timeout_ns)
		fifo_push(&c->toq, r->idx);
	if (c->lag_ns) {
		r->state = RQ_LAG;
		fifo_push(&c->lagq, r->idx);
	} else {
		send_req(c, r, now);
	}
}

static int sem_open(const struct client *c)
{
	return c->cfg.max_concurrency <= 0 || c->st.in_flight < c->cfg.max_concurrency;
}

static void dispatch_ready(struct client *c, uint64_t now)
{
	while (!c->interrupted && c->semq.len && sem_open(c)) {
		size_t idx = fifo_head(&c->semq);
		fifo_pop(&c->semq);
		if (current(c, idx, RQ_QUEUED))
			start(c, c->live[idx], now);
	}
}

static void enqueue(struct client *c, struct client_req *r, uint64_t now)
{
	r->state = RQ_QUEUED;
	r->t_queued = now;
	fifo_push(&c->semq, r->idx);
	dispatch_ready(c, now);
}

/* ---- workloads --------------------------------------------------------------- */

static uint32_t cap_tokens(const struct client *c, long mt)
{
	if (c->cfg.max_output_tokens > 0 && mt > c->cfg.max_output_tokens)
		mt = c->cfg.max_output_tokens;
	return (uint32_t)(mt < 1 ? 1 : mt);
}

/* LIST: the next request of the plan; 0 when none is left. */
static int release_list(struct client *c, uint64_t now)
{
	const struct wl_plan *p = c->cfg.plan;
	if (c->released >= p->num)
		return 0;
	size_t k = c->released++;
	size_t item = p->order[k % p->n_order];
	const struct wl_request *w = &p->items[item];
	struct client_req *r = new_req(c, w->conv, w->turn, w->prompt_tokens);
	r->item = item;
	r->max_tokens = cap_tokens(c, w->max_tokens);
	r->chat = c->cfg.chat;
	r->prompt = w->prompt;
	r->prompt_len = w->prompt_len;
	if (r->chat) {
		r->one = (struct chat_msg){"user", 4, w->prompt, w->prompt_len};
		r->msgs = &r->one;
		r->n_msgs = 1;
	}
	set_tenant(c, r, draw_tenant(c));
	enqueue(c, r, now);
	return 1;
}

/* SESSIONS: the session's next turn as a request (state not yet set), or
 * NULL when the session is over. */
static struct client_req *next_turn(struct client *c, size_t si)
{
	struct session *s = &c->sess[si];
	const struct wl_conv *cv = &c->cfg.ds->convs[s->conv];
	if (s->next_msg + 1 >= cv->n || (c->cfg.max_requests && c->turns >= c->cfg.max_requests))
		return NULL;
	const struct wl_msg *um = &cv->msgs[s->next_msg], *ref = &cv->msgs[s->next_msg + 1];
	s->msgs = plb_realloc(s->msgs, (s->n_msgs + 1) * sizeof *s->msgs);
	s->msgs[s->n_msgs++] = (struct chat_msg){"user", 4, um->text, um->len};
	s->ids.n = 0;
	if (c->cfg.pc)
		prompt_chat(c->cfg.pc, c->cfg.tpl, s->msgs, s->n_msgs, 1, &s->ids);
	struct client_req *r = new_req(c, s->conv, s->next_msg, c->cfg.pc ? (long)s->ids.n : -1);
	c->turns++;
	r->session = si;
	r->chat = 1;
	r->msgs = s->msgs;
	r->n_msgs = s->n_msgs;
	r->ids = c->cfg.pc ? &s->ids : NULL;
	set_tenant(c, r, s->tenant);
	r->max_tokens = cap_tokens(c, c->cfg.tok ? tok_count(c->cfg.tok, ref->text, ref->len, 0) : 16);
	s->next_msg += 2;
	return r;
}

/* SESSIONS: opens the next session and sends its first turn; 0 when none is left. */
static int open_session(struct client *c, uint64_t now)
{
	while (c->next_sess < c->n_sess && !(c->cfg.max_requests && c->turns >= c->cfg.max_requests)) {
		size_t si = c->next_sess++;
		c->sess[si].tenant = draw_tenant(c);
		struct client_req *r = next_turn(c, si);
		if (!r)
			continue;
		c->open_sess++;
		enqueue(c, r, now);
		return 1;
	}
	return 0;
}

static void close_session(struct client *c, size_t si)
{
	struct session *s = &c->sess[si];
	for (size_t i = 0; i < s->n_answers; i++)
		free(s->answers[i]);
	free(s->answers);
	free(s->msgs);
	tok_ids_free(&s->ids);
	s->answers = NULL;
	s->msgs = NULL;
	s->n_answers = s->n_msgs = 0;
	c->open_sess--;
	c->st.sessions_done++;
}

/* A session's turn ended (ok: with an answer). */
static void turn_ended(struct client *c, struct client_req *r, uint64_t now, int ok)
{
	size_t si = r->session;
	struct session *s = &c->sess[si];
	struct client_req *nx = NULL;
	if (ok && !c->interrupted) {
		if (r->out.n && !r->text.len && c->cfg.tok) /* the simulator gives ids */
			tok_decode(c->cfg.tok, r->out.v, r->out.n, &r->text);
		s->answers = plb_realloc(s->answers, (s->n_answers + 1) * sizeof *s->answers);
		char *a = plb_strndup(r->text.data ? r->text.data : "", r->text.len);
		s->answers[s->n_answers++] = a;
		s->msgs = plb_realloc(s->msgs, (s->n_msgs + 1) * sizeof *s->msgs);
		s->msgs[s->n_msgs++] = (struct chat_msg){"assistant", 9, a, r->text.len};
		nx = next_turn(c, si);
	}
	if (nx) {
		if (c->think_ns) {
			nx->state = RQ_THINK;
			nx->t_queued = now + c->think_ns;
			fifo_push(&c->thinkq, nx->idx);
		} else {
			enqueue(c, nx, now);
		}
		return;
	}
	close_session(c, si);
	if (!c->paced && !c->interrupted)
		open_session(c, now); /* closed loop: this thread takes the next conversation */
}

/* ---- life ---------------------------------------------------------------- */

struct client *client_new(const struct client_cfg *cfg, const struct client_ops *ops, void *ctx)
{
	if ((cfg->mode == CLIENT_LIST && (!cfg->plan || (cfg->plan->num && !cfg->plan->n_order))) ||
	    (cfg->mode == CLIENT_SESSIONS && !cfg->ds))
		return NULL;
	struct client *c = plb_calloc(1, sizeof *c);
	char err[256];
	if (cfg->tenants && parse_tenants(cfg->tenants, c->tname, c->tcum, &c->n_tenants, err, sizeof err)) {
		free(c);
		return NULL;
	}
	rng_seed(&c->trng, cfg->seed ^ 0x7e4a47515eed0001ULL);
	c->cfg = *cfg;
	if (ops)
		c->ops = *ops;
	c->ctx = ctx;
	rng_seed(&c->rng, cfg->seed);
	c->paced = (isfinite(cfg->request_rate) && cfg->request_rate > 0) || cfg->dispatch_floor_ms > 0;
	c->lag_ns = (uint64_t)(cfg->lag_ms * 1e6);
	c->think_ns = (uint64_t)(cfg->think_s * 1e9);
	c->timeout_ns = (uint64_t)(cfg->timeout_s * 1e9);
	c->floor_ns = (uint64_t)(cfg->dispatch_floor_ms * 1e6);
	if (cfg->mode == CLIENT_SESSIONS) {
		size_t n = cfg->max_sessions && cfg->max_sessions < cfg->ds->n ? cfg->max_sessions : cfg->ds->n;
		c->sess = plb_calloc(n + 1, sizeof *c->sess);
		for (size_t i = 0; i < n; i++)
			if (cfg->ds->convs[i].n >= 2)
				c->sess[c->n_sess++].conv = i;
	}
	return c;
}

void client_set_ops(struct client *c, const struct client_ops *ops, void *ctx)
{
	c->ops = *ops;
	c->ctx = ctx;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_recs; i++) {
		free(c->recs[i].r.itl);
		free(c->recs[i].text);
		if (c->live[i])
			free_req(c, c->live[i]);
	}
	while (c->free_reqs) {
		struct client_req *r = c->free_reqs;
		c->free_reqs = r->next_free;
		free(r->itl);
		buf_free(&r->text);
		tok_ids_free(&r->out);
		free(r);
	}
	for (size_t i = 0; i < c->n_sess; i++)
		if (c->sess[i].msgs || c->sess[i].answers) {
			c->open_sess++; /* close_session counts down */
			close_session(c, i);
		}
	for (size_t i = 0; i < c->n_reasons; i++) {
		free(c->reasons[i].name);
		free(c->reasons[i].detail);
	}
	for (size_t i = 0; i < c->n_backends; i++) {
		free(c->backends[i].name);
		free(c->backends[i].detail);
	}
	free(c->sess);
	free(c->recs);
	free(c->live);
	free(c->semq.v);
	free(c->lagq.v);
	free(c->thinkq.v);
	free(c->toq.v);
	free(c);
}

static int more_to_release(const struct client *c)
{
	if (c->interrupted)
		return 0;
	if (c->cfg.mode == CLIENT_LIST)
		return c->released < c->cfg.plan->num;
	return c->next_sess < c->n_sess && !(c->cfg.max_requests && c->turns >= c->cfg.max_requests);
}

uint64_t client_next_event(const struct client *c)
{
	if (!c->started)
		return 0;
	uint64_t t = UINT64_MAX;
	if (c->paced && more_to_release(c))
		t = c->next_at;
	if (c->lagq.len) {
		uint64_t d = c->live[fifo_head(&c->lagq)]->t0 + c->lag_ns;
		t = d < t ? d : t;
	}
	if (c->thinkq.len) {
		uint64_t d = c->live[fifo_head(&c->thinkq)]->t_queued;
		t = d < t ? d : t;
	}
	if (c->toq.len) {
		uint64_t d = c->live[fifo_head(&c->toq)]->t0 + c->timeout_ns;
		t = d < t ? d : t;
	}
	return t;
}

static int release_one(struct client *c, uint64_t now)
{
	return c->cfg.mode == CLIENT_LIST ? release_list(c, now) : open_session(c, now);
}

/* Finishes r (already out of the driver's hands). */
static void end_req(struct client *c, struct client_req *r, uint64_t now, const char *error, const char *detail,
		    int timed_out)
{
	struct client_rec *rec = &c->recs[r->idx];
	int was_started = r->state == RQ_LAG || r->state == RQ_SENT;
	if (was_started)
		c->st.in_flight--;
	c->st.done++;
	if (now > c->st.t_end)
		c->st.t_end = now;
	rec->r.latency = (double)(r->t_last - r->t0) / 1e9;
	rec->r.ttft = r->ttft;
	rec->r.itl = r->itl; /* the record owns them now */
	rec->r.n_itl = r->n_itl;
	r->itl = NULL;
	r->n_itl = r->cap_itl = 0;
	rec->r.cached_tokens = r->cached;
	rec->r.predicted_cached = r->predicted;
	if (r->usage_out >= 0)
		rec->r.output_len = r->usage_out;
	else if (c->cfg.tok && r->text.len)
		rec->r.output_len = tok_count(c->cfg.tok, r->text.data, r->text.len, 0);
	else
		rec->r.output_len = r->out.n ? (long)r->out.n : r->chunks;
	int ok = 0;
	if (error == CLIENT_ABORTED) {
		rec->aborted = 1;
		c->st.aborted++;
	} else if (timed_out) {
		rec->timed_out = 1;
		c->st.timed_out++;
	} else {
		if (!error && !r->chunks)
			error = "no token in the response";
		if (error) {
			rec->reason = (uint16_t)intern(c->reasons, &c->n_reasons, MAX_REASONS, error, strlen(error), detail, 1);
			c->st.failed++;
			if (!strcmp(error, CLIENT_REJECTED)) {
				rec->rejected = 1;
				c->st.rejected++;
			}
		} else {
			ok = 1;
		}
	}
	rec->r.success = ok;
	if (c->cfg.keep_text && (r->text.len || r->out.n)) {
		if (r->out.n && !r->text.len && c->cfg.tok)
			tok_decode(c->cfg.tok, r->out.v, r->out.n, &r->text);
		rec->text = plb_strndup(r->text.data ? r->text.data : "", r->text.len);
	}
	size_t si = r->session;
	int state = r->state;
	if (si != SIZE_MAX && state != RQ_QUEUED && state != RQ_THINK)
		turn_ended(c, r, now, ok);
	else if (si != SIZE_MAX)
		close_session(c, si);
	free_req(c, r);
	dispatch_ready(c, now);
	tidy(c);
}

void client_advance(struct client *c, uint64_t now)
{
	if (!c->started) {
		c->started = 1;
		c->t_start = c->next_at = now;
		if (!c->paced) { /* everything at once; SESSIONS: max_concurrency threads */
			if (c->cfg.mode == CLIENT_LIST) {
				while (release_list(c, now))
					;
			} else {
				long open = c->cfg.max_concurrency > 0 ? c->cfg.max_concurrency : (long)c->n_sess;
				for (long k = 0; k < open && open_session(c, now); k++)
					;
			}
		}
	}
	for (;;) {
		tidy(c);
		uint64_t t = client_next_event(c);
		if (t > now)
			break;
		if (c->lagq.len && c->live[fifo_head(&c->lagq)]->t0 + c->lag_ns == t) {
			struct client_req *r = c->live[fifo_head(&c->lagq)];
			fifo_pop(&c->lagq);
			send_req(c, r, now);
		} else if (c->thinkq.len && c->live[fifo_head(&c->thinkq)]->t_queued == t) {
			struct client_req *r = c->live[fifo_head(&c->thinkq)];
			fifo_pop(&c->thinkq);
			enqueue(c, r, t);
		} else if (c->toq.len && c->live[fifo_head(&c->toq)]->t0 + c->timeout_ns == t) {
			struct client_req *r = c->live[fifo_head(&c->toq)];
			fifo_pop(&c->toq);
			if (r->state == RQ_SENT)
				c->ops.cancel(c->ctx, r, now);
			end_req(c, r, now, NULL, NULL, 1);
		} else {
			/* an arrival: release, then schedule the next */
			release_one(c, now);
			double gap = isfinite(c->cfg.request_rate) && c->cfg.request_rate > 0
					     ? rng_gamma(&c->rng, c->cfg.burstiness,
							 1.0 / (c->cfg.request_rate * c->cfg.burstiness))
					     : 0;
			uint64_t g = (uint64_t)(gap * 1e9);
			c->next_at += g < c->floor_ns ? c->floor_ns : g;
		}
	}
}

void client_on_chunk(struct client *c, struct client_req *r, uint64_t now, const char *text, size_t len,
		     const uint32_t *ids, size_t n_ids)
{
	/* only r is touched here (the hot path: once per token); the record gets it all at the end */
	if (r->chunks == 0) {
		r->ttft = (double)(now - r->t0) / 1e9;
	} else {
		if (r->n_itl == r->cap_itl) { /* usually once: room for the whole answer */
			r->cap_itl = r->cap_itl ? r->cap_itl * 2 : r->max_tokens > 1 ? r->max_tokens - 1 : 32;
			r->itl = plb_realloc(r->itl, r->cap_itl * sizeof *r->itl);
		}
		r->itl[r->n_itl++] = (float)((double)(now - r->t_last) / 1e9);
	}
	r->t_last = now;
	r->chunks++;
	int want_answer = r->session != SIZE_MAX || c->cfg.keep_text;
	if (want_answer && len)
		buf_append(&r->text, text, len);
	if (want_answer)
		for (size_t i = 0; i < n_ids; i++)
			tok_ids_push(&r->out, ids[i]);
}

void client_on_usage(struct client *c, struct client_req *r, long completion_tokens, long cached_tokens)
{
	(void)c;
	if (completion_tokens >= 0)
		r->usage_out = completion_tokens;
	if (cached_tokens >= 0)
		r->cached = cached_tokens;
}

void client_on_predicted(struct client *c, struct client_req *r, long tokens)
{
	(void)c;
	r->predicted = tokens;
}

void client_on_backend(struct client *c, struct client_req *r, const char *name, size_t len)
{
	if (len) /* counted when the request succeeds */
		c->recs[r->idx].backend = (uint16_t)intern(c->backends, &c->n_backends, MAX_BACKENDS, name, len, NULL, 0);
}

void client_on_end(struct client *c, struct client_req *r, uint64_t now, const char *error, const char *detail)
{
	struct client_rec *rec = &c->recs[r->idx];
	end_req(c, r, now, error, detail, 0);
	if (rec->r.success && rec->backend != 0xffff)
		c->backends[rec->backend].n++;
}

void client_interrupt(struct client *c, uint64_t now, const char *reason)
{
	if (c->interrupted)
		return;
	c->interrupted = 1;
	for (size_t i = 0; i < c->n_recs; i++) {
		struct client_req *r = c->live[i];
		if (!r)
			continue;
		if (r->state == RQ_SENT)
			c->ops.cancel(c->ctx, r, now);
		if (r->state == RQ_QUEUED || r->state == RQ_THINK) {
			/* never started: not in the results */
			if (r->session != SIZE_MAX)
				close_session(c, r->session);
			free_req(c, r);
			continue;
		}
		end_req(c, r, now, reason, NULL, 0);
	}
	tidy(c);
}

int client_done(const struct client *c)
{
	if (!c->started)
		return 0;
	if (more_to_release(c))
		return 0;
	return c->st.in_flight == 0 && !c->semq.len && !c->thinkq.len && !c->lagq.len && (c->cfg.mode == CLIENT_LIST ||
											  c->open_sess == 0);
}

/* ---- bodies ------------------------------------------------------------------ */

int client_body(const struct client *c, const struct client_req *r, struct buf *out)
{
	int rc = buf_puts(out, "{\"model\":\"");
	rc |= buf_json_escape(out, c->cfg.model ? c->cfg.model : "", c->cfg.model ? strlen(c->cfg.model) : 0);
	if (r->chat) {
		rc |= buf_puts(out, "\",\"messages\":[");
		for (size_t i = 0; i < r->n_msgs; i++) {
			rc |= buf_printf(out, "%s{\"role\":\"%.*s\",\"content\":\"", i ? "," : "", (int)r->msgs[i].role_len,
					 r->msgs[i].role);
			rc |= buf_json_escape(out, r->msgs[i].content, r->msgs[i].content_len);
			rc |= buf_puts(out, "\"}");
		}
		rc |= buf_printf(out, "],\"temperature\":0.0,\"max_completion_tokens\":%u", r->max_tokens);
	} else {
		rc |= buf_puts(out, "\",\"prompt\":\"");
		rc |= buf_json_escape(out, r->prompt, r->prompt_len);
		rc |= buf_printf(out, "\",\"temperature\":0.0,\"best_of\":1,\"max_tokens\":%u", r->max_tokens);
	}
	if (c->cfg.ignore_eos)
		rc |= buf_puts(out, ",\"ignore_eos\":true");
	rc |= buf_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
	return rc ? PLB_ETOOBIG : 0;
}

const char *client_routing_text(const struct client_req *r, size_t *len)
{
	if (!r->chat) {
		*len = r->prompt_len;
		return r->prompt;
	}
	for (size_t i = 0; i < r->n_msgs; i++)
		if (r->msgs[i].role_len == 4 && !memcmp(r->msgs[i].role, "user", 4)) {
			*len = r->msgs[i].content_len;
			return r->msgs[i].content;
		}
	*len = 0;
	return NULL;
}

/* ---- results ------------------------------------------------------------------- */

size_t client_n_recs(const struct client *c)
{
	return c->n_recs;
}

const struct client_rec *client_rec(const struct client *c, size_t i)
{
	return &c->recs[i];
}

/* tenant SIZE_MAX: every request */
static int metrics_of(const struct client *c, size_t tenant, double duration, const double *percentiles,
		      size_t n_percentiles, const struct goodput_slo *slo, struct bench_metrics *out)
{
	struct req_result *v = plb_malloc((c->n_recs + 1) * sizeof *v);
	size_t n = 0;
	for (size_t i = 0; i < c->n_recs; i++) {
		const struct client_rec *rec = &c->recs[i];
		if (rec->started && !rec->aborted && !rec->timed_out && !c->live[i] &&
		    (tenant == SIZE_MAX || rec->tenant == tenant))
			v[n++] = rec->r;
	}
	if (duration <= 0)
		duration = c->st.t_end > c->t_start ? (double)(c->st.t_end - c->t_start) / 1e9 : 0;
	int rc = stats_compute(v, n, duration, percentiles, n_percentiles, slo, out);
	free(v);
	return rc;
}

int client_metrics(const struct client *c, double duration, const double *percentiles, size_t n_percentiles,
		   const struct goodput_slo *slo, struct bench_metrics *out)
{
	return metrics_of(c, SIZE_MAX, duration, percentiles, n_percentiles, slo, out);
}

int client_metrics_tenant(const struct client *c, size_t tenant, double duration, const double *percentiles,
			  size_t n_percentiles, const struct goodput_slo *slo, struct bench_metrics *out)
{
	return metrics_of(c, tenant, duration, percentiles, n_percentiles, slo, out);
}

size_t client_n_tenants(const struct client *c)
{
	return c->n_tenants;
}

const char *client_tenant_name(const struct client *c, size_t i)
{
	return i < c->n_tenants ? c->tname[i] : "";
}

void client_get_stats(const struct client *c, struct client_stats *st)
{
	*st = c->st;
}

size_t client_n_reasons(const struct client *c)
{
	return c->n_reasons;
}

const char *client_reason(const struct client *c, size_t i, long *count, const char **first_detail)
{
	*count = c->reasons[i].n;
	if (first_detail)
		*first_detail = c->reasons[i].detail;
	return c->reasons[i].name;
}

size_t client_n_backends(const struct client *c)
{
	return c->n_backends;
}

const char *client_backend_name(const struct client *c, size_t i, long *count)
{
	*count = c->backends[i].n;
	return c->backends[i].name;
}
