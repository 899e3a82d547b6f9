/* policy_prefix_hash.c: KubeAI's PrefixHash, consistent hashing with bounded
 * loads (CHWBL; Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
 * Bounded Loads", SODA 2018), as KubeAI implements it (docs/seed.md section 3):
 *   key  = XXH64(first prefix-chars code points of the prompt / first user
 *          message), computed by the caller with lb_key();
 *   ring = `replication` virtual nodes per endpoint, node i = XXH64(name +
 *          decimal i), one ring per pool;
 *   walk clockwise from the first node >= key; take the first eligible
 *   endpoint with load <= load-factor * (total + 1) / n (total 0: always),
 *   n = the pool's eligible size, total = its requests in flight.
 * Cost: O(log(n R)) to find the start; the walk is short because the bound
 * admits most endpoints. If nobody is within the bound (every member was
 * tried), the least loaded eligible member. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "policy.h"

struct node {
	uint64_t h;
	int ep;
};

struct ring {
	struct node *v;
	size_t n;
};

static int node_cmp(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->ep - y->ep;
}

static void *pool_init(struct lb *lb, struct lb_pool *p, void *st)
{
	(void)st;
	size_t r = (size_t)lb__param(lb, "replication"), n = lb__pool_size(p);
	struct ring *g = plb_calloc(1, sizeof *g);
	g->v = plb_malloc(n * r * sizeof *g->v + 1);
	char buf[200];
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		const char *name = lb__ep(lb, ep)->name;
		size_t nl = strlen(name);
		memcpy(buf, name, nl);
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
			g->v[g->n++] = (struct node){XXH64(buf, nl + (size_t)dl, 0), ep};
		}
	}
	qsort(g->v, g->n, sizeof *g->v, node_cmp);
	return g;
}

static void pool_destroy(void *pst)
{
	struct ring *g = pst;
	free(g->v);
	free(g);
}

static int pick(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st)
{
	(void)st;
	const struct ring *g = lb__pool_state(p);
	size_t n_ok = need_healthy ? lb__pool_healthy(p) : lb__pool_size(p);
	if (!g->n || !n_ok)
		return -1;
	size_t lo = 0, hi = g->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->v[mid].h < rq->key)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t total = lb__pool_total(p);
	double bound = lb__param(lb, "load-factor") * (double)(total + 1) / (double)n_ok;
	for (size_t k = 0; k < g->n; k++) {
		int ep = g->v[(lo + k) % g->n].ep;
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		if (total == 0 || (double)lb__ep(lb, ep)->in_flight <= bound)
			return ep;
	}
	return lb__least_loaded(lb, p, rq, need_healthy);
}

static const char *const aliases[] = {"PrefixHash", "chwbl", NULL};

static const struct lb_param params[] = {
	{"load-factor", 1.25, 1.0001, 100,
	 "prefix-hash bound c: a backend takes a key while load <= c*(total+1)/n (KubeAI 1.25; 1.1-2 are reasonable)"},
	{"replication", 256, 1, 100000, "virtual nodes per backend on the ring (KubeAI 256)"},
	{"prefix-chars", 100, 1, 1 << 20, "code points of the prompt hashed into the key (KubeAI 100)"},
	{NULL, 0, 0, 0, NULL},
};

const struct lb_policy policy_prefix_hash = {
	.name = "prefix-hash",
	.help = "KubeAI's CHWBL: consistent hash of the prompt's first characters, bounded load",
	.aliases = aliases,
	.params = params,
	.source = "KubeAI internal/loadbalancer (CHWBL); Mirrokni et al., SODA 2018",
	.pool_init = pool_init,
	.pool_destroy = pool_destroy,
	.pick = pick,
};
