/* lb.c: endpoints, per-model pools, hash rings and the four policies; see lb.h.
 *
 * Pools are derived data: any change of endpoints or models marks them dirty
 * and the next lb_pick rebuilds them (O(total ring size log)); health changes
 * and counters never rebuild anything. Each endpoint knows its pools, so an
 * acquire/release updates the pools' in-flight totals in O(pools of ep). */
#include "lb.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "utf8.h"

struct node {
	uint64_t h;
	int ep;
};

struct pool {
	char *model; /* NULL: the pool of every endpoint (requests without a model) */
	int *members;
	size_t n, cap;
	struct node *ring;
	size_t n_ring;
	size_t rr;
	uint64_t total;
	size_t n_healthy; /* live healthy members, kept current by lb_set_healthy */
};

struct epx {
	char **models;
	size_t n_models;
	int *pools;
	size_t n_pools, cap_pools;
};

struct lb {
	struct lb_opts o;
	struct lb_endpoint *eps;
	struct epx *x;
	size_t n_eps, cap_eps;
	struct pool *pools;
	size_t n_pools;
	int dirty;
	uint64_t rng;
};

static const char *const names[] = {"round-robin", "random", "least-load", "prefix-hash"};

int lb_policy_parse(const char *s, enum lb_policy *p)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*p = (enum lb_policy)i;
			return 0;
		}
	/* KubeAI's spellings */
	if (!strcmp(s, "LeastLoad") || !strcmp(s, "least-loaded")) {
		*p = LB_LEAST_LOAD;
		return 0;
	}
	if (!strcmp(s, "PrefixHash") || !strcmp(s, "chwbl")) {
		*p = LB_PREFIX_HASH;
		return 0;
	}
	return -1;
}

const char *lb_policy_name(enum lb_policy p)
{
	return (unsigned)p < 4 ? names[p] : "?";
}

void lb_opts_default(struct lb_opts *o)
{
	o->policy = LB_PREFIX_HASH;
	o->load_factor = 1.25;
	o->replication = 256;
	o->prefix_chars = 100;
	o->seed = 0x5eed;
}

static uint64_t rnd(struct lb *lb)
{
	/* splitmix64 */
	uint64_t z = (lb->rng += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

struct lb *lb_new(const struct lb_opts *o)
{
	struct lb *lb = calloc(1, sizeof *lb);
	if (!lb)
		return NULL;
	lb->o = *o;
	if (lb->o.load_factor <= 1)
		lb->o.load_factor = 1.25;
	if (lb->o.replication < 1)
		lb->o.replication = 256;
	lb->rng = o->seed;
	return lb;
}

static void free_pools(struct lb *lb)
{
	for (size_t i = 0; i < lb->n_pools; i++) {
		free(lb->pools[i].model);
		free(lb->pools[i].members);
		free(lb->pools[i].ring);
	}
	free(lb->pools);
	lb->pools = NULL;
	lb->n_pools = 0;
	for (size_t i = 0; i < lb->n_eps; i++)
		lb->x[i].n_pools = 0;
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
	free_pools(lb);
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

int lb_set_opts(struct lb *lb, const struct lb_opts *o)
{
	if (o->load_factor <= 1 || o->replication < 1)
		return -1;
	lb->o = *o;
	lb->dirty = 1;
	return 0;
}

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
				struct lb_endpoint *e = realloc(lb->eps, cap * sizeof *e);
				if (!e)
					return -1;
				lb->eps = e;
				struct epx *x = realloc(lb->x, cap * sizeof *x);
				if (!x)
					return -1;
				lb->x = x;
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
		x->models = calloc(n_models, sizeof *x->models);
		if (!x->models)
			return -1;
		for (size_t k = 0; k < n_models; k++) {
			x->models[k] = strdup(models[k]);
			if (!x->models[k])
				return -1;
			x->n_models++;
		}
	}
	lb->dirty = 1;
	return ep;
}

static void maybe_free_slot(struct lb *lb, int ep)
{
	struct lb_endpoint *e = &lb->eps[ep];
	if (e->removed && e->in_flight == 0) {
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
		struct pool *p = &lb->pools[x->pools[k]];
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

static int node_cmp(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->ep - y->ep;
}

static int add_member(struct lb *lb, struct pool *p, int ep)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		int *m = realloc(p->members, cap * sizeof *m);
		if (!m)
			return -1;
		p->members = m;
		p->cap = cap;
	}
	p->members[p->n++] = ep;
	p->total += lb->eps[ep].in_flight;
	p->n_healthy += lb->eps[ep].healthy != 0;
	struct epx *x = &lb->x[ep];
	if (x->n_pools == x->cap_pools) {
		size_t cap = x->cap_pools ? x->cap_pools * 2 : 4;
		int *v = realloc(x->pools, cap * sizeof *v);
		if (!v)
			return -1;
		x->pools = v;
		x->cap_pools = cap;
	}
	x->pools[x->n_pools++] = (int)(p - lb->pools);
	return 0;
}

static int build_ring(struct lb *lb, struct pool *p)
{
	size_t r = (size_t)lb->o.replication;
	p->ring = malloc(p->n * r * sizeof *p->ring + 1);
	if (!p->ring)
		return -1;
	char buf[200];
	for (size_t m = 0; m < p->n; m++) {
		int ep = p->members[m];
		size_t nl = strlen(lb->eps[ep].name);
		memcpy(buf, lb->eps[ep].name, nl);
		for (size_t i = 0; i < r; i++) {
			/* name + decimal i */
			char dec[24];
			int dl = 0;
			size_t v = i;
			do {
				dec[dl++] = (char)('0' + v % 10);
				v /= 10;
			} while (v);
			for (int k = 0; k < dl; k++)
				buf[nl + (size_t)k] = dec[dl - 1 - k];
			p->ring[p->n_ring++] = (struct node){XXH64(buf, nl + (size_t)dl, 0), ep};
		}
	}
	qsort(p->ring, p->n_ring, sizeof *p->ring, node_cmp);
	return 0;
}

/* Rebuilds every pool from the endpoints: the any-pool first, then one per
 * model named by some endpoint (endpoints without a model list join all). */
static int rebuild(struct lb *lb)
{
	free_pools(lb);
	size_t cap = 2;
	for (size_t i = 0; i < lb->n_eps; i++)
		cap += live(lb, i) ? lb->x[i].n_models : 0;
	lb->pools = calloc(cap, sizeof *lb->pools);
	if (!lb->pools)
		return -1;
	/* pool 0: requests without a model (every endpoint); pool 1: models no
	 * endpoint names (the endpoints without a model list) */
	lb->n_pools = 2;
	lb->pools[1].model = strdup("");
	if (!lb->pools[1].model)
		return -1;
	for (size_t i = 0; i < lb->n_eps; i++) {
		if (!live(lb, i))
			continue;
		for (size_t k = 0; k < lb->x[i].n_models; k++) {
			const char *m = lb->x[i].models[k];
			size_t j;
			for (j = 2; j < lb->n_pools && strcmp(lb->pools[j].model, m) != 0; j++)
				;
			if (j == lb->n_pools) {
				lb->pools[j].model = strdup(m);
				if (!lb->pools[j].model)
					return -1;
				lb->n_pools++;
			}
		}
	}
	for (size_t j = 0; j < lb->n_pools; j++) {
		struct pool *p = &lb->pools[j];
		for (size_t i = 0; i < lb->n_eps; i++) {
			int in = j == 1 ? lb->x[i].n_models == 0 : serves(lb, i, p->model);
			if (live(lb, i) && in && add_member(lb, p, (int)i))
				return -1;
		}
		if (lb->o.policy == LB_PREFIX_HASH && build_ring(lb, p))
			return -1;
	}
	lb->dirty = 0;
	return 0;
}

uint64_t lb_key(const struct lb *lb, const char *text, size_t len)
{
	if (!text)
		return 0;
	size_t n = utf8_prefix_bytes(text, len, lb->o.prefix_chars);
	return XXH64(text, n, 0);
}

static int tried_has(const int *tried, size_t n, int ep)
{
	for (size_t i = 0; i < n; i++)
		if (tried[i] == ep)
			return 1;
	return 0;
}

static struct pool *find_pool(struct lb *lb, const char *model)
{
	if (!model)
		return &lb->pools[0];
	for (size_t j = 2; j < lb->n_pools; j++)
		if (strcmp(lb->pools[j].model, model) == 0)
			return &lb->pools[j];
	/* no endpoint names this model: those that serve every model */
	return lb->pools[1].n ? &lb->pools[1] : NULL;
}

static int eligible(const struct lb *lb, int ep, int need_healthy, const int *tried, size_t n_tried)
{
	const struct lb_endpoint *e = &lb->eps[ep];
	return !e->removed && e->name[0] && (!need_healthy || e->healthy) && !tried_has(tried, n_tried, ep);
}

static int pick_least(struct lb *lb, struct pool *p, int nh, const int *tried, size_t n_tried)
{
	int best = -1;
	uint32_t best_load = 0, ties = 0;
	for (size_t m = 0; m < p->n; m++) {
		int ep = p->members[m];
		if (!eligible(lb, ep, nh, tried, n_tried))
			continue;
		uint32_t l = lb->eps[ep].in_flight;
		if (best < 0 || l < best_load) {
			best = ep;
			best_load = l;
			ties = 1;
		} else if (l == best_load && rnd(lb) % ++ties == 0) {
			best = ep; /* reservoir: uniform among the ties */
		}
	}
	return best;
}

static int pick(struct lb *lb, struct pool *p, uint64_t key, int nh, const int *tried, size_t n_tried)
{
	size_t n_ok = nh ? p->n_healthy : p->n;
	if (!n_ok)
		return -1;
	switch (lb->o.policy) {
	case LB_ROUND_ROBIN:
		for (size_t k = 0; k < p->n; k++) {
			int ep = p->members[p->rr++ % p->n];
			if (eligible(lb, ep, nh, tried, n_tried))
				return ep;
		}
		return -1;
	case LB_RANDOM: {
		for (int k = 0; k < 8; k++) { /* O(1) while most endpoints are eligible */
			int ep = p->members[rnd(lb) % p->n];
			if (eligible(lb, ep, nh, tried, n_tried))
				return ep;
		}
		int chosen = -1;
		uint64_t seen = 0;
		for (size_t m = 0; m < p->n; m++) {
			int ep = p->members[m];
			if (eligible(lb, ep, nh, tried, n_tried) && rnd(lb) % ++seen == 0)
				chosen = ep; /* reservoir: uniform */
		}
		return chosen;
	}
	case LB_LEAST_LOAD: return pick_least(lb, p, nh, tried, n_tried);
	case LB_PREFIX_HASH: {
		if (!p->n_ring)
			return -1;
		size_t lo = 0, hi = p->n_ring;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (p->ring[mid].h < key)
				lo = mid + 1;
			else
				hi = mid;
		}
		double bound = lb->o.load_factor * (double)(p->total + 1) / (double)n_ok;
		for (size_t k = 0; k < p->n_ring; k++) {
			int ep = p->ring[(lo + k) % p->n_ring].ep;
			if (!eligible(lb, ep, nh, tried, n_tried))
				continue;
			if (p->total == 0 || (double)lb->eps[ep].in_flight <= bound)
				return ep;
		}
		return pick_least(lb, p, nh, tried, n_tried);
	}
	}
	return -1;
}

int lb_pick(struct lb *lb, const char *model, uint64_t key, const int *tried, size_t n_tried)
{
	if (lb->dirty && rebuild(lb))
		return -1;
	struct pool *p = find_pool(lb, model);
	if (!p)
		return -1;
	int ep = pick(lb, p, key, 1, tried, n_tried);
	if (ep < 0) /* nobody healthy: trying a suspect endpoint beats failing for sure */
		ep = pick(lb, p, key, 0, tried, n_tried);
	return ep;
}

void lb_acquire(struct lb *lb, int ep, struct lb_lease *l)
{
	struct lb_endpoint *e = &lb->eps[ep];
	e->in_flight++;
	e->requests++;
	struct epx *x = &lb->x[ep];
	for (size_t k = 0; k < x->n_pools; k++)
		lb->pools[x->pools[k]].total++;
	l->lb = lb;
	l->ep = ep;
	l->gen = e->gen;
	l->active = 1;
}

void lb_release(struct lb_lease *l)
{
	if (!l->active)
		return;
	l->active = 0;
	struct lb *lb = l->lb;
	struct lb_endpoint *e = &lb->eps[l->ep];
	if (e->gen != l->gen || e->in_flight == 0)
		abort(); /* a lease outlived its slot: the accounting is broken */
	e->in_flight--;
	struct epx *x = &lb->x[l->ep];
	for (size_t k = 0; k < x->n_pools; k++)
		if (lb->pools[x->pools[k]].total)
			lb->pools[x->pools[k]].total--;
	maybe_free_slot(lb, l->ep);
}

uint64_t lb_total_in_flight(const struct lb *lb)
{
	uint64_t t = 0;
	for (size_t i = 0; i < lb->n_eps; i++)
		t += lb->eps[i].in_flight;
	return t;
}
