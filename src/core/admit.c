/* admit.c: admission control; see admit.h for the design and the peers.
 *
 * Structures: one queue per model; per queue, up to ADMIT_BANDS priority
 * bands made on first use; per band a table of tenant buckets (struct aflow,
 * a FIFO or deadline-ordered list of entries each) and a list of the
 * backlogged ones; over everything one binary heap of entries by deadline.
 * An entry is in exactly one bucket list and in the heap while queued;
 * remove_entry() takes it out of both, whatever the reason (dispatch, expiry,
 * cancel), so the counts can't drift. */
#include "admit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lb.h"
#include "mem.h"
#include "spec.h"

struct aband;

struct aflow {
	struct admit_entry *head, *tail;
	double vstart, vfinish;     /* start-time fair queueing tags */
	struct aband *band;
	struct aflow *anext, *aprev; /* the band's backlogged buckets */
	int active;
	size_t n;
};

struct aband {
	double V;           /* virtual time: the start of the last served */
	struct aflow *flows; /* n_flows buckets */
	size_t n_flows;
	struct aflow *active;
	size_t n;
	size_t qi;          /* its queue */
};

struct aqueue {
	char *model; /* "" for the default pool */
	size_t n;
	struct aband *bands[ADMIT_BANDS];
};

struct admit {
	struct admit_cfg cfg;
	struct lb *lb;
	struct lb_ttft_model model;
	struct aqueue *qs;
	size_t n_qs, cap_qs, cursor;
	struct admit_entry **heap;
	size_t n_heap, cap_heap;
	size_t buckets;
	uint64_t seq;
	struct admit_stats st;
	struct admit_entry *evicted, *evicted_tail; /* refused to make room, for admit_expire */
};

/* ---- knobs ---------------------------------------------------------------------- */

#define SIGNALS 4 /* the saturation thresholds come first in the table */

static const struct admit_param params[] = {
	{"max-ttft-ms", 0, 0, 3.6e6,
	 "saturated when the predicted wait before a new request's prefill is over this (lowest-ttft's model; 0: unused)"},
	{"max-waiting", 2, 0, 1e6, "saturated at this many requests with no token back (or the engine's waiting; 0: unused)"},
	{"max-in-flight", 0, 0, 1e6, "saturated at this many requests in flight (HAProxy's maxconn; 0: unused)"},
	{"max-tokens", 0, 0, 1e12, "saturated at this many prompt + expected output tokens in flight (0: unused)"},
	{"queue", 1024, 0, 1e6, "most requests waiting per model; more get 429 (0: no queue)"},
	{"wait-ms", 30000, 0, 3.6e6, "longest wait in the queue, then 429 (x-prefixlb-max-wait-ms may lower it)"},
	{"ttft-target-ms", 0, 0, 3.6e6,
	 "a request that could no longer start in time for this TTFT gets 429 (x-prefixlb-ttft-target-ms; 0: none)"},
	{"filter", 4, 0, 1000,
	 "picks pass over backends at this many times a threshold while another can take the request (0: never; 1: saturated ones)"},
	{"fair", 1, 0, 1, "1: fair share between tenants within a priority band; 0: one FCFS line"},
	{"fair-tokens", 0, 0, 1,
	 "1: fair share counts a request's prompt + expected output tokens; 0: a request is one turn (llm-d's optional round robin)"},
	{"edf", 0, 0, 1, "1: a tenant's requests by earliest deadline; 0: by arrival"},
	{"tenant-buckets", 1024, 1, 1 << 20, "tenant buckets per priority band (tenants hashed into them)"},
	{"retry-after-s", 1, 1, 3600, "Retry-After of a 429 (OpenAI clients back off on 429)"},
	{"scale", 1, 1e-3, 1e6, "engine seconds per clock second (prefixlb engine --time-scale); 1 for real engines"},
	{NULL, 0, 0, 0, NULL},
};

const struct admit_param *admit_param_at(size_t i)
{
	return i < sizeof params / sizeof *params - 1 ? &params[i] : NULL;
}

static double *slot(struct admit_cfg *c, size_t i)
{
	double *v[] = {&c->max_ttft_ms, &c->max_waiting, &c->max_in_flight,  &c->max_tokens,
		       &c->queue,       &c->wait_ms,     &c->ttft_target_ms, &c->filter,
		       &c->fair,        &c->fair_tokens, &c->edf,            &c->buckets,
		       &c->retry_after_s, &c->scale};
	PLB_ASSERT(i < sizeof v / sizeof *v);
	return v[i];
}

void admit_cfg_default(struct admit_cfg *c)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; params[i].name; i++)
		*slot(c, i) = params[i].dflt;
}

int admit_cfg_parse(struct admit_cfg *c, const char *spec, char *err, size_t errlen)
{
	struct admit_cfg t;
	admit_cfg_default(&t);
	size_t nl = strcspn(spec, ":");
	if (nl == 3 && !strncmp(spec, "off", 3))
		t.on = 0;
	else if (nl == 2 && !strncmp(spec, "on", 2))
		t.on = 1;
	else {
		snprintf(err, errlen, "admission '%s': expected off, on or on:KEY=VALUE:...", spec);
		return -1;
	}
	int named[SIGNALS] = {0}, any = 0;
	const char *s = spec + nl;
	char kv[128];
	double v;
	int more;
	while ((more = spec_next(&s, kv, sizeof kv, &v, "admission", spec, err, errlen)) > 0) {
		size_t i;
		for (i = 0; params[i].name && strcmp(params[i].name, kv); i++)
			;
		if (!params[i].name) {
			snprintf(err, errlen, "admission '%s': unknown key '%s' (", spec, kv);
			for (size_t k = 0; params[k].name; k++) {
				size_t l = strlen(err);
				snprintf(err + l, errlen > l ? errlen - l : 0, "%s%s", k ? ", " : "", params[k].name);
			}
			size_t l = strlen(err);
			snprintf(err + l, errlen > l ? errlen - l : 0, ")");
			return -1;
		}
		if (!(v >= params[i].min && v <= params[i].max)) {
			snprintf(err, errlen, "admission '%s': %s must be in %g..%g", spec, kv, params[i].min, params[i].max);
			return -1;
		}
		*slot(&t, i) = v;
		if (i < SIGNALS)
			named[i] = any = 1;
	}
	if (more < 0)
		return -1;
	for (size_t i = 0; any && i < SIGNALS; i++)
		if (!named[i])
			*slot(&t, i) = 0;
	*c = t;
	return 0;
}

void admit_cfg_str(const struct admit_cfg *c, char *out, size_t cap)
{
	int k = snprintf(out, cap, "%s", c->on ? "on" : "off");
	struct admit_cfg d;
	admit_cfg_default(&d);
	for (size_t i = 0; c->on && params[i].name && k > 0 && (size_t)k < cap; i++) {
		double v = *slot((struct admit_cfg *)c, i);
		if (v != *slot(&d, i))
			k += snprintf(out + k, cap - (size_t)k, ":%s=%g", params[i].name, v);
	}
}

const char *admit_outcome_name(int o)
{
	static const char *const names[ADMIT_N_OUTCOMES] = {"none", "direct", "queued", "rejected_full",
							     "rejected_wait", "rejected_ttft", "cancelled"};
	return o >= 0 && o < ADMIT_N_OUTCOMES ? names[o] : "none";
}

/* ---- the deadline heap ------------------------------------------------------------ */

static int earlier(const struct admit_entry *x, const struct admit_entry *y)
{
	return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

static void heap_set(struct admit *a, size_t i, struct admit_entry *e)
{
	a->heap[i] = e;
	e->heap_pos = i;
}

static void heap_fix(struct admit *a, size_t i)
{
	struct admit_entry *e = a->heap[i];
	while (i && earlier(e, a->heap[(i - 1) / 2])) {
		heap_set(a, i, a->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = l;
		if (l >= a->n_heap)
			break;
		if (r < a->n_heap && earlier(a->heap[r], a->heap[l]))
			m = r;
		if (!earlier(a->heap[m], e))
			break;
		heap_set(a, i, a->heap[m]);
		i = m;
	}
	heap_set(a, i, e);
}

static void heap_push(struct admit *a, struct admit_entry *e)
{
	if (a->n_heap == a->cap_heap) {
		a->cap_heap = a->cap_heap ? a->cap_heap * 2 : 64;
		a->heap = plb_realloc(a->heap, a->cap_heap * sizeof *a->heap);
	}
	heap_set(a, a->n_heap++, e);
	heap_fix(a, e->heap_pos);
}

static void heap_del(struct admit *a, struct admit_entry *e)
{
	size_t i = e->heap_pos;
	PLB_ASSERT(i < a->n_heap && a->heap[i] == e);
	struct admit_entry *last = a->heap[--a->n_heap];
	if (last != e) {
		heap_set(a, i, last);
		heap_fix(a, i);
	}
}

/* ---- queues, bands, buckets ------------------------------------------------------- */

struct admit *admit_new(const struct admit_cfg *c, struct lb *lb)
{
	struct admit *a = plb_calloc(1, sizeof *a);
	a->lb = lb;
	a->buckets = (size_t)c->buckets;
	admit_set_cfg(a, c);
	return a;
}

static int skip_saturated(void *ctx, int ep, uint64_t now);

void admit_set_cfg(struct admit *a, const struct admit_cfg *c)
{
	a->cfg = *c;
	if (a->buckets < 1)
		a->buckets = 1;
	double mean = a->model.mean_prompt;
	lb_ttft_model(a->lb, &a->model);
	a->model.mean_prompt = mean;
	lb_set_skip(a->lb, c->on && c->filter > 0 ? skip_saturated : NULL, a);
}

const struct admit_cfg *admit_get_cfg(const struct admit *a)
{
	return &a->cfg;
}

void admit_free(struct admit *a)
{
	if (!a)
		return;
	lb_set_skip(a->lb, NULL, NULL);
	for (size_t i = 0; i < a->n_qs; i++) {
		for (int b = 0; b < ADMIT_BANDS; b++) {
			if (a->qs[i].bands[b])
				free(a->qs[i].bands[b]->flows);
			free(a->qs[i].bands[b]);
		}
		free(a->qs[i].model);
	}
	free(a->qs);
	free(a->heap);
	free(a);
}

static struct aqueue *find_queue(const struct admit *a, const char *model)
{
	const char *m = model ? model : "";
	for (size_t i = 0; i < a->n_qs; i++)
		if (!strcmp(a->qs[i].model, m))
			return &a->qs[i];
	return NULL;
}

static struct aqueue *get_queue(struct admit *a, const char *model)
{
	struct aqueue *q = find_queue(a, model);
	if (q)
		return q;
	if (a->n_qs == a->cap_qs) {
		a->cap_qs = a->cap_qs ? a->cap_qs * 2 : 4;
		a->qs = plb_realloc(a->qs, a->cap_qs * sizeof *a->qs);
	}
	q = &a->qs[a->n_qs++];
	memset(q, 0, sizeof *q);
	q->model = plb_strdup(model ? model : "");
	return q;
}

static struct aband *get_band(struct admit *a, struct aqueue *q, int prio)
{
	int b = prio + ADMIT_PRIO_MAX;
	if (!q->bands[b]) {
		struct aband *band = plb_calloc(1, sizeof *band);
		band->n_flows = a->buckets;
		band->flows = plb_calloc(band->n_flows, sizeof *band->flows);
		for (size_t i = 0; i < band->n_flows; i++)
			band->flows[i].band = band;
		band->qi = (size_t)(q - a->qs);
		q->bands[b] = band;
	}
	return q->bands[b];
}

static void activate(struct aband *b, struct aflow *f)
{
	f->vstart = fmax(f->vfinish, b->V);
	f->active = 1;
	f->aprev = NULL;
	f->anext = b->active;
	if (b->active)
		b->active->aprev = f;
	b->active = f;
}

static void deactivate(struct aband *b, struct aflow *f)
{
	if (f->aprev)
		f->aprev->anext = f->anext;
	else
		b->active = f->anext;
	if (f->anext)
		f->anext->aprev = f->aprev;
	f->anext = f->aprev = NULL;
	f->active = 0;
}

/* Into its bucket: at the tail (FCFS), or before the first with a later deadline (EDF). */
static void flow_insert(struct aflow *f, struct admit_entry *e, int edf)
{
	struct admit_entry *after = f->tail;
	while (edf && after && after->deadline > e->deadline)
		after = after->prev;
	e->prev = after;
	e->next = after ? after->next : f->head;
	if (e->next)
		e->next->prev = e;
	else
		f->tail = e;
	if (after)
		after->next = e;
	else
		f->head = e;
	f->n++;
}

/* Takes e out of its bucket, band, queue and the heap. */
static void remove_entry(struct admit *a, struct admit_entry *e, int outcome, uint64_t now)
{
	PLB_ASSERT(e->queued && e->flow);
	struct aflow *f = e->flow;
	struct aband *b = f->band;
	struct aqueue *q = &a->qs[b->qi];
	if (e->prev)
		e->prev->next = e->next;
	else
		f->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		f->tail = e->prev;
	e->prev = e->next = NULL;
	f->n--;
	if (!f->head)
		deactivate(b, f);
	PLB_ASSERT(b->n > 0 && q->n > 0 && a->st.queued > 0);
	b->n--;
	q->n--;
	a->st.queued--;
	heap_del(a, e);
	e->flow = NULL;
	e->queued = 0;
	e->t_out = now;
	e->outcome = outcome;
	a->st.outcomes[outcome]++;
	a->st.wait_s_total += now > e->t_enq ? (double)(now - e->t_enq) / 1e9 : 0;
}

/* ---- saturation ------------------------------------------------------------------ */

/* 1 when e is at k x some threshold (k = 1: saturated). */
static int over(const struct admit *a, const struct lb_endpoint *e, uint64_t now, double k)
{
	const struct admit_cfg *c = &a->cfg;
	if (c->max_in_flight > 0 && (double)e->in_flight >= k * c->max_in_flight)
		return 1;
	if (c->max_waiting > 0) {
		if (lb_waiting_now(&a->model, e, now) >= k * c->max_waiting)
			return 1;
	}
	if (c->max_tokens > 0 && (double)e->in_flight_tokens >= k * c->max_tokens)
		return 1;
	if (c->max_ttft_ms > 0 && lb_ttft_ms(&a->model, e, 0, now) >= k * c->max_ttft_ms)
		return 1;
	return 0;
}

static int sat(const struct admit *a, const struct lb_endpoint *e, uint64_t now)
{
	return over(a, e, now, 1);
}

int admit_ep_saturated(struct admit *a, int ep, uint64_t now)
{
	const struct lb_endpoint *e = lb_endpoint(a->lb, ep);
	return e && a->cfg.on && sat(a, e, now);
}

struct satctx {
	const struct admit *a;
	uint64_t now;
	size_t healthy, healthy_free, all_free;
};

static void sat_each(void *ctx, int ep, const struct lb_endpoint *e)
{
	(void)ep;
	struct satctx *s = ctx;
	int free_ = !sat(s->a, e, s->now);
	s->healthy += e->healthy != 0;
	s->healthy_free += e->healthy && free_;
	s->all_free += free_;
}

int admit_saturated(struct admit *a, const char *model, uint64_t now)
{
	if (!a->cfg.on)
		return 0;
	struct satctx s = {a, now, 0, 0, 0};
	size_t n = lb_pool_each(a->lb, model, sat_each, &s);
	if (!n)
		return 0; /* no backend: let the dispatch say so (503) */
	return s.healthy ? s.healthy_free == 0 : s.all_free == 0;
}

/* ---- the request's path -------------------------------------------------------------- */

static uint64_t after_ms(const struct admit *a, uint64_t t, double ms)
{
	double ns = ms * 1e6 / a->cfg.scale;
	if (ns <= 0)
		return t;
	return ns >= 1.8e19 - (double)t ? UINT64_MAX : t + (uint64_t)ns;
}

/* The queue is full: whom to refuse instead of a newcomer of priority prio
 * and tenant: the newest request of the biggest tenant of the lowest band
 * below prio (llm-d's displacement), or in prio's own band the newest of a
 * tenant with at least two more waiting than the newcomer's (longest queue
 * drop: a flood cannot fill the queue against a quiet tenant). NULL: refuse
 * the newcomer. */
static struct admit_entry *victim(const struct admit *a, const struct aqueue *q, int prio, uint64_t tenant)
{
	int top = prio + ADMIT_PRIO_MAX;
	for (int bi = 0; bi <= top; bi++) {
		const struct aband *b = q->bands[bi];
		if (!b || !b->n)
			continue;
		const struct aflow *big = NULL;
		for (const struct aflow *f = b->active; f; f = f->anext)
			if (!big || f->n > big->n)
				big = f;
		if (bi < top)
			return big->tail;
		const struct aflow *mine = &b->flows[a->cfg.fair > 0 ? tenant % b->n_flows : 0];
		return big != mine && big->n > mine->n + 1 ? big->tail : NULL;
	}
	return NULL;
}

int admit_offer(struct admit *a, struct admit_entry *e, uint64_t now)
{
	e->outcome = ADMIT_NONE;
	e->queued = e->by_target = e->refused = 0;
	e->flow = NULL;
	e->prev = e->next = NULL;
	if (!a->cfg.on)
		return ADMIT_GO;
	if (!e->t0)
		e->t0 = now;
	double prompt = e->prompt_tokens;
	a->model.mean_prompt = a->model.mean_prompt ? 0.99 * a->model.mean_prompt + 0.01 * prompt : prompt;
	struct aqueue *q = get_queue(a, e->model);
	if (q->n == 0 && !admit_saturated(a, e->model, now)) {
		e->outcome = ADMIT_DIRECT;
		a->st.outcomes[ADMIT_DIRECT]++;
		return ADMIT_GO;
	}
	e->t_enq = e->t_out = now;
	int prio = e->priority > ADMIT_PRIO_MAX ? ADMIT_PRIO_MAX : e->priority < -ADMIT_PRIO_MAX ? -ADMIT_PRIO_MAX
											 : e->priority;
	e->priority = prio;
	if ((double)q->n >= a->cfg.queue) {
		struct admit_entry *v = q->n ? victim(a, q, prio, e->tenant) : NULL;
		if (!v) {
			e->outcome = ADMIT_FULL;
			a->st.outcomes[ADMIT_FULL]++;
			return ADMIT_REJECT;
		}
		remove_entry(a, v, ADMIT_FULL, now);
		v->refused = 1;
		v->next = NULL;
		if (a->evicted_tail)
			a->evicted_tail->next = v;
		else
			a->evicted = v;
		a->evicted_tail = v;
	}
	double wait = a->cfg.wait_ms;
	if (e->wait_ms >= 0 && e->wait_ms < wait)
		wait = e->wait_ms;
	uint64_t d = after_ms(a, e->t0, wait);
	double target = e->ttft_target_ms > 0 ? e->ttft_target_ms : a->cfg.ttft_target_ms;
	if (target > 0) {
		double prefill = a->model.t_tok * prompt;
		uint64_t late = target > prefill ? after_ms(a, e->t0, target - prefill) : 0;
		if (late < d) {
			d = late;
			e->by_target = 1;
			if (d <= now) {
				e->outcome = ADMIT_LATE;
				a->st.outcomes[ADMIT_LATE]++;
				return ADMIT_REJECT;
			}
		}
	}
	e->deadline = d;
	e->seq = ++a->seq;
	e->cost = a->cfg.fair_tokens > 0 && prompt + e->max_tokens >= 1 ? prompt + e->max_tokens : 1;
	struct aband *b = get_band(a, q, prio);
	struct aflow *f = &b->flows[a->cfg.fair > 0 ? e->tenant % b->n_flows : 0];
	flow_insert(f, e, a->cfg.edf > 0);
	if (!f->active)
		activate(b, f);
	e->flow = f;
	e->queued = 1;
	b->n++;
	q->n++;
	a->st.queued++;
	heap_push(a, e);
	return ADMIT_QUEUED;
}

/* The band's next entry: the backlogged bucket of least start tag (ties:
 * the older head). */
static struct admit_entry *band_pick(struct aband *b)
{
	struct aflow *best = NULL;
	for (struct aflow *f = b->active; f; f = f->anext)
		if (!best || f->vstart < best->vstart || (f->vstart == best->vstart && f->head->seq < best->head->seq))
			best = f;
	return best ? best->head : NULL;
}

struct admit_entry *admit_next(struct admit *a, uint64_t now)
{
	for (size_t k = 0; k < a->n_qs; k++) {
		struct aqueue *q = &a->qs[(a->cursor + k) % a->n_qs];
		if (!q->n || (a->cfg.on && admit_saturated(a, *q->model ? q->model : NULL, now)))
			continue;
		for (int bi = ADMIT_BANDS - 1; bi >= 0; bi--) {
			struct aband *b = q->bands[bi];
			if (!b || !b->n)
				continue;
			struct admit_entry *e = band_pick(b);
			struct aflow *f = e->flow;
			b->V = f->vstart;
			f->vfinish = f->vstart + e->cost;
			remove_entry(a, e, ADMIT_WAITED, now);
			if (f->active)
				f->vstart = f->vfinish;
			a->cursor = (a->cursor + k + 1) % a->n_qs;
			return e;
		}
	}
	return NULL;
}

struct admit_entry *admit_expire(struct admit *a, uint64_t now)
{
	if (a->evicted) {
		struct admit_entry *v = a->evicted;
		a->evicted = v->next;
		if (!a->evicted)
			a->evicted_tail = NULL;
		v->next = NULL;
		v->refused = 0;
		return v;
	}
	if (!a->n_heap || a->heap[0]->deadline > now)
		return NULL;
	struct admit_entry *e = a->heap[0];
	remove_entry(a, e, e->by_target ? ADMIT_LATE : ADMIT_EXPIRED, now);
	return e;
}

uint64_t admit_next_deadline(const struct admit *a)
{
	if (a->evicted)
		return 0;
	return a->n_heap ? a->heap[0]->deadline : UINT64_MAX;
}

void admit_cancel(struct admit *a, struct admit_entry *e, uint64_t now)
{
	if (e->queued)
		remove_entry(a, e, ADMIT_CANCELLED, now);
	if (e->refused) { /* displaced, not yet handed back: forget it */
		struct admit_entry **pp = &a->evicted, *prev = NULL;
		while (*pp && *pp != e) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		PLB_ASSERT(*pp == e);
		*pp = e->next;
		if (a->evicted_tail == e)
			a->evicted_tail = prev;
		e->next = NULL;
		e->refused = 0;
	}
}

/* ---- figures ---------------------------------------------------------------------- */

size_t admit_queued(const struct admit *a, const char *model, int all)
{
	if (all)
		return (size_t)a->st.queued;
	const struct aqueue *q = find_queue(a, model);
	return q ? q->n : 0;
}

void admit_each_queue(const struct admit *a, void (*f)(void *ctx, const char *model, size_t waiting), void *ctx)
{
	for (size_t i = 0; i < a->n_qs; i++)
		f(ctx, a->qs[i].model, a->qs[i].n);
}

void admit_get_stats(const struct admit *a, struct admit_stats *s)
{
	*s = a->st;
}

unsigned admit_retry_after_s(const struct admit *a)
{
	double s = ceil(a->cfg.retry_after_s);
	return s < 1 ? 1 : (unsigned)s;
}

/* ---- headers ------------------------------------------------------------------------- */

/* A header value without its surrounding blanks, NUL-terminated into b
 * (-1: empty or too long). */
static int header_trimmed(const char *s, size_t n, char *b, size_t cap)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (!n || n >= cap)
		return -1;
	memcpy(b, s, n);
	b[n] = '\0';
	return 0;
}

int admit_parse_priority(const char *s, size_t n, int *out)
{
	char b[32];
	if (header_trimmed(s, n, b, sizeof b))
		return -1;
	char *end;
	long v = strtol(b, &end, 10);
	if (*end || end == b)
		return -1;
	*out = v > ADMIT_PRIO_MAX ? ADMIT_PRIO_MAX : v < -ADMIT_PRIO_MAX ? -ADMIT_PRIO_MAX : (int)v;
	return 0;
}

int admit_parse_ms(const char *s, size_t n, double *out)
{
	char b[32];
	if (header_trimmed(s, n, b, sizeof b))
		return -1;
	char *end;
	double v = strtod(b, &end);
	if (*end || end == b || !(v >= 0 && v <= 3.6e9))
		return -1;
	*out = v;
	return 0;
}

uint64_t admit_tenant_hash(const char *s, size_t n)
{
	if (!n)
		return 0;
	uint64_t h = XXH3_64bits(s, n);
	return h ? h : 1;
}

/* The pick's skip rule: backends at filter x a threshold. */
static int skip_saturated(void *ctx, int ep, uint64_t now)
{
	struct admit *a = ctx;
	const struct lb_endpoint *e = lb_endpoint(a->lb, ep);
	return e && a->cfg.on && over(a, e, now, a->cfg.filter);
}
