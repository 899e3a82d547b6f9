/* lb.c: endpoints, per-model pools and in-flight accounting; see lb.h. The
 * choice of an endpoint is the policy's (policy.h); this file calls its hooks.
 *
 * Pools are derived data: any change of endpoints or models marks them dirty
 * and the next lb_pick rebuilds them (and the policy's per-pool state, e.g. a
 * hash ring: O(total ring size log)); health changes and counters never rebuild
 * anything. Each endpoint knows its pools, so an acquire/release updates the
 * pools' in-flight totals in O(pools of ep). */
#include "lb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "kvindex.h"
#include "pindex.h"
#include "spec.h"
#include "policy.h"
#include "utf8.h"

struct lb_pool {
	char *model; /* NULL: the pool of every endpoint (requests without a model) */
	int *members;
	size_t n, cap;
	size_t cursor;
	uint64_t total;
	size_t n_healthy; /* live healthy members, kept current by lb_set_healthy */
	void *pst;        /* the policy's per-pool state */
};

struct epx {
	char **models;
	size_t n_models;
	int *pools;
	size_t n_pools, cap_pools;
};

struct lb {
	struct lb_opts o;
	const struct lb_policy *pol;
	void *st; /* the policy's state */
	struct lb_endpoint *eps;
	struct epx *x;
	size_t n_eps, cap_eps;
	struct lb_pool *pools;
	size_t n_pools;
	int dirty;
	uint64_t rng;
	size_t prefix_chars;
	long pred_cached;      /* the last pick's prediction (-1: none) */
	uint64_t pred_uncached;
	int pred_set;
	const struct lb_req *picked; /* the last pick's request, until an acquire */
	struct lb_req picked_was;    /* and what it held (an address may be reused) */
	int fresh;                   /* during on_acquire: rq is the one picked */
	struct kvindex *kv;          /* the precise index (KV events), borrowed; NULL: none */
	int (*skip)(void *ctx, int ep, uint64_t now); /* admission's saturated backends (lb_set_skip) */
	void *skip_ctx;
	int skip_on;                 /* during a pick: apply skip */
};

/* ---- options ------------------------------------------------------------- */

void lb_opts_default(struct lb_opts *o)
{
	memset(o, 0, sizeof *o);
	o->policy = policy_find("prefix-hash");
	o->seed = 0x5eed;
	for (size_t i = 0; policy_param_at(i) && i < LB_MAX_PARAMS; i++)
		o->v[i] = policy_param_at(i)->dflt;
}

int lb_opts_set(struct lb_opts *o, const char *name, double v)
{
	int i = policy_param_index(name);
	if (i < 0)
		return -1;
	const struct lb_param *p = policy_param_at((size_t)i);
	if (!(v >= p->min && v <= p->max))
		return -2;
	o->v[i] = v;
	return 0;
}

double lb_opts_get(const struct lb_opts *o, const char *name)
{
	int i = policy_param_index(name);
	return i < 0 ? 0 : o->v[i];
}

int lb_opts_policy(struct lb_opts *o, const char *spec, char *err, size_t errlen)
{
	size_t nl = strcspn(spec, ":");
	char name[64], known[512];
	policy_names(known, sizeof known);
	if (nl == 0 || nl >= sizeof name) {
		snprintf(err, errlen, "policy '%s': expected NAME[:PARAM=VALUE]... (%s)", spec, known);
		return -1;
	}
	memcpy(name, spec, nl);
	name[nl] = '\0';
	const struct lb_policy *p = policy_find(name);
	if (!p) {
		snprintf(err, errlen, "unknown policy '%s' (known: %s)", name, known);
		return -1;
	}
	struct lb_opts t = *o;
	t.policy = p;
	const char *s = spec + nl;
	char kv[128];
	double v;
	int more;
	while ((more = spec_next(&s, kv, sizeof kv, &v, "policy", spec, err, errlen)) > 0) {
		int r = lb_opts_set(&t, kv, v);
		if (r) {
			const struct lb_param *pp = r == -2 ? policy_param_at((size_t)policy_param_index(kv)) : NULL;
			if (pp)
				snprintf(err, errlen, "policy '%s': %s must be in %g..%g", spec, kv, pp->min, pp->max);
			else
				snprintf(err, errlen, "policy '%s': unknown parameter '%s'", spec, kv);
			return -1;
		}
	}
	if (more < 0)
		return -1;
	*o = t;
	return 0;
}

/* ---- life ---------------------------------------------------------------- */

static void free_pools(struct lb *lb)
{
	for (size_t i = 0; i < lb->n_pools; i++) {
		if (lb->pools[i].pst && lb->pol->pool_destroy)
			lb->pol->pool_destroy(lb->pools[i].pst);
		free(lb->pools[i].model);
		free(lb->pools[i].members);
	}
	free(lb->pools);
	lb->pools = NULL;
	lb->n_pools = 0;
	for (size_t i = 0; i < lb->n_eps; i++)
		lb->x[i].n_pools = 0;
}

static int start_policy(struct lb *lb, const struct lb_opts *o)
{
	lb->o = *o;
	lb->pol = o->policy ? o->policy : policy_find("prefix-hash");
	lb->prefix_chars = (size_t)lb_opts_get(o, "prefix-chars");
	lb->st = lb->pol->init ? lb->pol->init(lb) : NULL;
	lb->dirty = 1;
	return lb->pol->init && !lb->st ? -1 : 0;
}

static void stop_policy(struct lb *lb)
{
	free_pools(lb);
	if (lb->st && lb->pol->destroy)
		lb->pol->destroy(lb->st);
	lb->st = NULL;
}

struct lb *lb_new(const struct lb_opts *o)
{
	struct lb *lb = plb_calloc(1, sizeof *lb);
	lb->rng = o->seed;
	if (start_policy(lb, o)) {
		free(lb);
		return NULL;
	}
	return lb;
}

static void clear_models(struct epx *x)
{
	for (size_t k = 0; k < x->n_models; k++)
		free(x->models[k]);
	free(x->models);
	x->models = NULL;
	x->n_models = 0;
}

void lb_free(struct lb *lb)
{
	if (!lb)
		return;
	stop_policy(lb);
	for (size_t i = 0; i < lb->n_eps; i++) {
		clear_models(&lb->x[i]);
		free(lb->x[i].pools);
	}
	free(lb->eps);
	free(lb->x);
	free(lb);
}

const struct lb_opts *lb_get_opts(const struct lb *lb)
{
	return &lb->o;
}

const char *lb_policy_label(const struct lb *lb)
{
	return lb->pol->name;
}

unsigned lb_policy_needs(const struct lb *lb)
{
	return lb->pol->needs;
}

int lb_set_opts(struct lb *lb, const struct lb_opts *o)
{
	if (!o->policy)
		return -1;
	struct lb_opts old = lb->o;
	stop_policy(lb);
	if (start_policy(lb, o)) {
		stop_policy(lb);
		start_policy(lb, &old);
		return -1;
	}
	return 0;
}

/* ---- endpoints ----------------------------------------------------------- */

static int live(const struct lb *lb, size_t i)
{
	return lb->eps[i].name[0] && !lb->eps[i].removed;
}

int lb_find(const struct lb *lb, const char *name)
{
	for (size_t i = 0; i < lb->n_eps; i++)
		if (live(lb, i) && strcmp(lb->eps[i].name, name) == 0)
			return (int)i;
	return -1;
}

int lb_add(struct lb *lb, const char *name, const char *const *models, size_t n_models)
{
	if (!name || !*name || strlen(name) >= sizeof lb->eps[0].name)
		return -1;
	int ep = lb_find(lb, name);
	if (ep < 0) {
		size_t slot = lb->n_eps;
		for (size_t i = 0; i < lb->n_eps; i++)
			if (!lb->eps[i].name[0]) {
				slot = i;
				break;
			}
		if (slot == lb->n_eps) {
			if (lb->n_eps == lb->cap_eps) {
				size_t cap = lb->cap_eps ? lb->cap_eps * 2 : 16;
				lb->eps = plb_realloc(lb->eps, cap * sizeof *lb->eps);
				lb->x = plb_realloc(lb->x, cap * sizeof *lb->x);
				lb->cap_eps = cap;
			}
			memset(&lb->x[slot], 0, sizeof lb->x[slot]);
			lb->eps[slot].gen = 0;
			lb->n_eps++;
		}
		uint32_t gen = lb->eps[slot].gen + 1;
		memset(&lb->eps[slot], 0, sizeof lb->eps[slot]);
		lb->eps[slot].gen = gen;
		strcpy(lb->eps[slot].name, name);
		lb->eps[slot].healthy = 1;
		ep = (int)slot;
	}
	struct epx *x = &lb->x[ep];
	clear_models(x);
	if (n_models) {
		x->models = plb_calloc(n_models, sizeof *x->models);
		for (size_t k = 0; k < n_models; k++)
			x->models[x->n_models++] = plb_strdup(models[k]);
	}
	lb->dirty = 1;
	return ep;
}

static void maybe_free_slot(struct lb *lb, int ep)
{
	struct lb_endpoint *e = &lb->eps[ep];
	if (e->removed && e->in_flight == 0) {
		if (lb->pol->on_remove)
			lb->pol->on_remove(lb, ep, lb->st);
		if (lb->kv) /* the slot will name another backend */
			kvindex_detach(lb->kv, ep);
		e->name[0] = '\0';
		e->removed = 0;
		clear_models(&lb->x[ep]);
		lb->dirty = 1;
	}
}

void lb_remove(struct lb *lb, int ep)
{
	if (ep < 0 || (size_t)ep >= lb->n_eps || !live(lb, (size_t)ep))
		return;
	lb->eps[ep].removed = 1;
	lb->dirty = 1;
	maybe_free_slot(lb, ep);
}

void lb_set_healthy(struct lb *lb, int ep, int healthy)
{
	if (ep < 0 || (size_t)ep >= lb->n_eps || lb->eps[ep].healthy == (healthy != 0))
		return;
	lb->eps[ep].healthy = healthy != 0;
	struct epx *x = &lb->x[ep];
	for (size_t k = 0; k < x->n_pools; k++) {
		struct lb_pool *p = &lb->pools[x->pools[k]];
		if (healthy)
			p->n_healthy++;
		else if (p->n_healthy)
			p->n_healthy--;
	}
}

size_t lb_count(const struct lb *lb)
{
	return lb->n_eps;
}

const struct lb_endpoint *lb_endpoint(const struct lb *lb, int ep)
{
	if (ep < 0 || (size_t)ep >= lb->n_eps || !lb->eps[ep].name[0])
		return NULL;
	return &lb->eps[ep];
}

static int serves(const struct lb *lb, size_t ep, const char *model)
{
	const struct epx *x = &lb->x[ep];
	if (!model || x->n_models == 0)
		return 1;
	for (size_t k = 0; k < x->n_models; k++)
		if (strcmp(x->models[k], model) == 0)
			return 1;
	return 0;
}

int lb_has_model(const struct lb *lb, const char *model)
{
	for (size_t i = 0; i < lb->n_eps; i++)
		if (live(lb, i) && serves(lb, i, model))
			return 1;
	return 0;
}

void lb_models(const struct lb *lb, void (*f)(void *ctx, const char *model), void *ctx)
{
	for (size_t i = 0; i < lb->n_eps; i++) {
		if (!live(lb, i))
			continue;
		for (size_t k = 0; k < lb->x[i].n_models; k++) {
			const char *m = lb->x[i].models[k];
			int seen = 0;
			for (size_t j = 0; j < i && !seen; j++)
				seen = live(lb, j) && serves(lb, j, m) && lb->x[j].n_models;
			for (size_t kk = 0; kk < k && !seen; kk++)
				seen = strcmp(lb->x[i].models[kk], m) == 0;
			if (!seen)
				f(ctx, m);
		}
	}
}

/* ---- pools --------------------------------------------------------------- */

static void add_member(struct lb *lb, struct lb_pool *p, int ep)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->members = plb_realloc(p->members, p->cap * sizeof *p->members);
	}
	p->members[p->n++] = ep;
	p->total += lb->eps[ep].in_flight;
	p->n_healthy += lb->eps[ep].healthy != 0;
	struct epx *x = &lb->x[ep];
	if (x->n_pools == x->cap_pools) {
		x->cap_pools = x->cap_pools ? x->cap_pools * 2 : 4;
		x->pools = plb_realloc(x->pools, x->cap_pools * sizeof *x->pools);
	}
	x->pools[x->n_pools++] = (int)(p - lb->pools);
}

/* Rebuilds every pool from the endpoints: the any-pool first, then one per
 * model named by some endpoint (endpoints without a model list join all). */
static int rebuild(struct lb *lb)
{
	free_pools(lb);
	size_t cap = 2;
	for (size_t i = 0; i < lb->n_eps; i++)
		cap += live(lb, i) ? lb->x[i].n_models : 0;
	lb->pools = plb_calloc(cap, sizeof *lb->pools);
	/* pool 0: requests without a model (every endpoint); pool 1: models no
	 * endpoint names (the endpoints without a model list) */
	lb->n_pools = 2;
	lb->pools[1].model = plb_strdup("");
	for (size_t i = 0; i < lb->n_eps; i++) {
		if (!live(lb, i))
			continue;
		for (size_t k = 0; k < lb->x[i].n_models; k++) {
			const char *m = lb->x[i].models[k];
			size_t j;
			for (j = 2; j < lb->n_pools && strcmp(lb->pools[j].model, m) != 0; j++)
				;
			if (j == lb->n_pools)
				lb->pools[lb->n_pools++].model = plb_strdup(m);
		}
	}
	for (size_t j = 0; j < lb->n_pools; j++) {
		struct lb_pool *p = &lb->pools[j];
		for (size_t i = 0; i < lb->n_eps; i++) {
			int in = j == 1 ? lb->x[i].n_models == 0 : serves(lb, i, p->model);
			if (live(lb, i) && in)
				add_member(lb, p, (int)i);
		}
		if (lb->pol->pool_init && !(p->pst = lb->pol->pool_init(lb, p, lb->st)))
			return -1;
	}
	lb->dirty = 0;
	return 0;
}

static struct lb_pool *find_pool(struct lb *lb, const char *model)
{
	if (!model)
		return &lb->pools[0];
	for (size_t j = 2; j < lb->n_pools; j++)
		if (strcmp(lb->pools[j].model, model) == 0)
			return &lb->pools[j];
	/* no endpoint names this model: those that serve every model */
	return lb->pools[1].n ? &lb->pools[1] : NULL;
}

/* ---- for the policies ------------------------------------------------------ */

size_t lb__pool_size(const struct lb_pool *p)
{
	return p->n;
}

int lb__pool_member(const struct lb_pool *p, size_t i)
{
	return p->members[i];
}

uint64_t lb__pool_total(const struct lb_pool *p)
{
	return p->total;
}

size_t lb__pool_healthy(const struct lb_pool *p)
{
	return p->n_healthy;
}

void *lb__pool_state(const struct lb_pool *p)
{
	return p->pst;
}

size_t *lb__pool_cursor(struct lb_pool *p)
{
	return &p->cursor;
}

const struct lb_endpoint *lb__ep(const struct lb *lb, int ep)
{
	return &lb->eps[ep];
}

int lb__eligible(const struct lb *lb, int ep, const struct lb_req *rq, int need_healthy)
{
	const struct lb_endpoint *e = &lb->eps[ep];
	if (e->removed || !e->name[0] || (need_healthy && !e->healthy))
		return 0;
	for (size_t i = 0; i < rq->n_tried; i++)
		if (rq->tried[i] == ep)
			return 0;
	if (lb->skip_on && lb->skip(lb->skip_ctx, ep, rq->now))
		return 0;
	return 1;
}

uint64_t lb__rand(struct lb *lb)
{
	/* splitmix64 */
	uint64_t z = (lb->rng += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

void lb__predict(struct lb *lb, long cached, uint64_t uncached)
{
	lb->pred_cached = cached;
	lb->pred_uncached = uncached;
	lb->pred_set = 1;
}

void *lb__state(const struct lb *lb)
{
	return lb->st;
}

long lb_predicted_cached(const struct lb *lb)
{
	return lb->pred_cached;
}

void lb_set_signals(struct lb *lb, int ep, const struct lb_signals *s)
{
	if (ep >= 0 && (size_t)ep < lb->n_eps) {
		struct lb_endpoint *e = &lb->eps[ep];
		e->sig = *s;
		e->sig.prefilled0 = e->prefilled;
		e->sig.ended0 = e->ended;
	}
}

double lb_signal_waiting(const struct lb_endpoint *e)
{
	double w = e->sig.waiting - (double)(e->prefilled - e->sig.prefilled0);
	return w > 0 ? w : 0;
}

double lb_signal_running(const struct lb_endpoint *e)
{
	double r = e->sig.running + (double)(e->prefilled - e->sig.prefilled0) - (double)(e->ended - e->sig.ended0);
	return r > 0 ? r : 0;
}

void lb_policy_stats(const struct lb *lb, void (*f)(void *ctx, const char *name, int ep, double v), void *ctx)
{
	if (lb->pol->stats)
		lb->pol->stats(lb, lb->st, f, ctx);
}

double lb__param(const struct lb *lb, const char *name)
{
	return lb_opts_get(&lb->o, name);
}

int lb__least_loaded(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy)
{
	int best = -1;
	uint32_t best_load = 0, ties = 0;
	for (size_t m = 0; m < p->n; m++) {
		int ep = p->members[m];
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		uint32_t l = lb->eps[ep].in_flight;
		if (best < 0 || l < best_load) {
			best = ep;
			best_load = l;
			ties = 1;
		} else if (l == best_load && lb__rand(lb) % ++ties == 0) {
			best = ep; /* reservoir: uniform among the ties */
		}
	}
	return best;
}

/* ---- decisions ----------------------------------------------------------- */

uint64_t lb_key(const struct lb *lb, const char *text, size_t len)
{
	if (!text)
		return 0;
	size_t n = utf8_prefix_bytes(text, len, lb->prefix_chars);
	return XXH64(text, n, 0);
}

int lb_pick(struct lb *lb, const struct lb_req *rq)
{
	if (lb->dirty && rebuild(lb))
		return -1;
	struct lb_pool *p = find_pool(lb, rq->model);
	lb->pred_cached = -1;
	lb->pred_set = 0;
	lb->picked = NULL;
	if (!p)
		return -1;
	lb->skip_on = lb->skip != NULL;
	int ep = p->n_healthy ? lb->pol->pick(lb, p, rq, 1, lb->st) : -1;
	if (ep < 0 && lb->skip_on) { /* every healthy one is saturated: fail open */
		lb->skip_on = 0;
		ep = p->n_healthy ? lb->pol->pick(lb, p, rq, 1, lb->st) : -1;
	}
	lb->skip_on = 0;
	if (ep < 0 && p->n) /* nobody healthy left: trying a suspect endpoint beats failing for sure */
		ep = lb->pol->pick(lb, p, rq, 0, lb->st);
	lb->picked = ep >= 0 ? rq : NULL;
	if (ep >= 0)
		lb->picked_was = *rq;
	return ep;
}

static int same_req(const struct lb_req *a, const struct lb_req *b)
{
	return a->model == b->model && a->key == b->key && a->text == b->text && a->text_len == b->text_len &&
	       a->ids == b->ids && a->n_ids == b->n_ids && a->now == b->now;
}

void lb_acquire(struct lb *lb, int ep, const struct lb_req *rq, struct lb_lease *l)
{
	struct lb_endpoint *e = &lb->eps[ep];
	uint64_t prompt = rq ? (uint64_t)(rq->n_ids ? rq->n_ids : rq->prompt_tokens) : 0;
	uint64_t tokens = prompt + (rq ? rq->max_tokens : 0);
	uint64_t prefill = lb->pred_set ? lb->pred_uncached : prompt;
	lb->pred_set = 0;
	e->in_flight++;
	e->in_flight_tokens += tokens;
	e->n_prefill++;
	e->prefill_tokens += prefill;
	e->requests++;
	struct epx *x = &lb->x[ep];
	for (size_t k = 0; k < x->n_pools; k++)
		lb->pools[x->pools[k]].total++;
	*l = (struct lb_lease){lb, ep, e->gen, 1, tokens, prefill, 0};
	lb->fresh = rq && rq == lb->picked && same_req(rq, &lb->picked_was);
	lb->picked = NULL;
	if (lb->kv && rq)
		kvindex_note_request(lb->kv, ep, (uint32_t)prompt, rq->now);
	if (lb->pol->on_acquire && rq)
		lb->pol->on_acquire(lb, ep, rq, lb->st);
	lb->fresh = 0;
}

void lb_set_kvindex(struct lb *lb, struct kvindex *kx)
{
	lb->kv = kx;
}

struct kvindex *lb_get_kvindex(const struct lb *lb)
{
	return lb->kv;
}

const char *lb_endpoint_model(const struct lb *lb, int ep, size_t i)
{
	if (ep < 0 || (size_t)ep >= lb->n_eps || !live(lb, (size_t)ep) || i >= lb->x[ep].n_models)
		return NULL;
	return lb->x[ep].models[i];
}

size_t lb__kv_match(struct lb *lb, const uint64_t *h, size_t n, uint64_t now,
		    void (*visit)(void *ctx, int ep, size_t blocks), void *ctx)
{
	return lb->kv ? kvindex_match(lb->kv, h, n, now, visit, ctx) : 0;
}

void lb__kv_routed(struct lb *lb, int ep, const uint64_t *h, size_t n, uint64_t now)
{
	if (lb->kv)
		kvindex_note_routed(lb->kv, ep, h, n, now);
}

size_t lb__kv_block_tokens(const struct lb *lb)
{
	return lb->kv ? kvindex_get_cfg(lb->kv)->block_tokens : 0;
}

void lb__index_stats(const struct lb *lb, const struct pindex *ix,
		     void (*f)(void *ctx, const char *name, int ep, double v), void *ctx)
{
	struct pindex_stats ps;
	pindex_get_stats(ix, &ps);
	f(ctx, "index_entries", -1, (double)ps.entries);
	f(ctx, "index_blocks", -1, (double)ps.blocks);
	f(ctx, "index_bytes", -1, (double)ps.bytes);
	f(ctx, "index_evictions_total", -1, (double)ps.evictions);
	f(ctx, "index_expirations_total", -1, (double)ps.expirations);
	for (size_t ep = 0; ep < lb->n_eps; ep++)
		if (lb_endpoint(lb, (int)ep))
			f(ctx, "index_backend_entries", (int)ep, (double)pindex_backend_entries(ix, (int)ep));
}

int lb__just_picked(const struct lb *lb, const struct lb_req *rq)
{
	return lb->fresh && rq;
}

size_t lb__hash_blocks(const struct lb_req *rq, size_t block_tokens, size_t block_chars, uint64_t *h, size_t max,
		       int *tokens)
{
	uint64_t seed = rq->model ? XXH3_64bits(rq->model, strlen(rq->model)) : 0;
	*tokens = rq->ids && rq->n_ids;
	if (*tokens)
		return pindex_hash_tokens(rq->ids, rq->n_ids, block_tokens, seed, h, max);
	return rq->text ? pindex_hash_chars(rq->text, rq->text_len, block_chars, seed, h, max) : 0;
}

void lb_first_token(struct lb_lease *l)
{
	if (!l->active || l->decoding)
		return;
	l->decoding = 1;
	struct lb_endpoint *e = &l->lb->eps[l->ep];
	PLB_ASSERT(e->gen == l->gen && e->n_prefill > 0 && e->prefill_tokens >= l->prefill);
	e->n_prefill--;
	e->prefill_tokens -= l->prefill;
	e->prefilled++;
}

void lb_release(struct lb_lease *l)
{
	if (!l->active)
		return;
	lb_first_token(l);
	l->active = 0;
	struct lb *lb = l->lb;
	struct lb_endpoint *e = &lb->eps[l->ep];
	PLB_ASSERT(e->gen == l->gen && e->in_flight > 0 && e->in_flight_tokens >= l->tokens);
	e->in_flight--;
	e->in_flight_tokens -= l->tokens;
	e->ended++;
	struct epx *x = &lb->x[l->ep];
	for (size_t k = 0; k < x->n_pools; k++)
		if (lb->pools[x->pools[k]].total)
			lb->pools[x->pools[k]].total--;
	if (lb->pol->on_release)
		lb->pol->on_release(lb, l->ep, lb->st);
	maybe_free_slot(lb, l->ep);
}

uint64_t lb_total_in_flight(const struct lb *lb)
{
	uint64_t t = 0;
	for (size_t i = 0; i < lb->n_eps; i++)
		t += lb->eps[i].in_flight;
	return t;
}

/* ---- for admission control ------------------------------------------------------ */

size_t lb_pool_each(struct lb *lb, const char *model, void (*f)(void *ctx, int ep, const struct lb_endpoint *e),
		    void *ctx)
{
	if (lb->dirty && rebuild(lb))
		return 0;
	struct lb_pool *p = find_pool(lb, model);
	if (!p)
		return 0;
	for (size_t m = 0; m < p->n; m++)
		f(ctx, p->members[m], &lb->eps[p->members[m]]);
	return p->n;
}

void lb_set_skip(struct lb *lb, int (*skip)(void *ctx, int ep, uint64_t now), void *ctx)
{
	lb->skip = skip;
	lb->skip_ctx = ctx;
}
