/* pindex.c: the prefix index; see pindex.h.
 *
 * Nodes (one per distinct block hash) sit in an open-addressing table
 * (linear probing, backward-shift deletion). Each node has a doubly linked
 * list of holders, one per backend that holds the block. A holder is also in
 * its backend's LRU list and in the global LRU list (head = most recent), so
 * eviction by either cap and expiry by age are O(1) each. Holders and nodes
 * are pool slots reused through free lists: no allocation per request once
 * warm. */
#include "pindex.h"

#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "mem.h"

#define NIL UINT32_MAX

struct holder {
	uint32_t node;
	int32_t ep;
	uint32_t nprev, nnext; /* the node's holders */
	uint32_t bprev, bnext; /* the backend's LRU */
	uint32_t gprev, gnext; /* the global LRU */
	uint64_t t;
};

struct node {
	uint64_t h;
	uint32_t first; /* holders */
	uint32_t n;
};

struct backend {
	uint32_t head, tail; /* LRU */
	size_t n;
};

struct pindex {
	struct pindex_cfg cfg;
	struct node *nodes;
	size_t n_nodes, cap_nodes;
	uint32_t free_node;
	uint32_t *slots; /* node index + 1; 0 = empty */
	size_t mask, used;
	struct holder *hs;
	size_t n_hs, cap_hs;
	uint32_t free_h;
	uint32_t ghead, gtail;
	size_t entries;
	struct backend *be;
	size_t n_be;
	uint32_t *match; /* scratch, per backend */
	int32_t *touched;
	size_t n_touched, cap_match;
	struct pindex_stats st;
};

/* ---- hashing -------------------------------------------------------------- */

#define CHAIN_SEED 0x9E3779B97F4A7C15ULL

size_t pindex_hash_tokens(const uint32_t *ids, size_t n, size_t block, uint64_t seed, uint64_t *out, size_t max)
{
	size_t k = 0;
	uint64_t parent = CHAIN_SEED ^ seed;
	for (size_t i = 0; block && (i + 1) * block <= n && k < max; i++) {
		parent = XXH3_64bits_withSeed(ids + i * block, block * sizeof *ids, parent);
		out[k++] = parent;
	}
	return k;
}

uint64_t pindex_chain_root(uint64_t seed)
{
	return CHAIN_SEED ^ seed;
}

uint64_t pindex_chain_next(uint64_t parent, const uint32_t *ids, size_t block)
{
	return XXH3_64bits_withSeed(ids, block * sizeof *ids, parent);
}

size_t pindex_hash_chars(const char *s, size_t len, size_t block, uint64_t seed, uint64_t *out, size_t max)
{
	size_t k = 0;
	uint64_t parent = CHAIN_SEED ^ seed ^ 0xC4A2;
	for (size_t i = 0; block && (i + 1) * block <= len && k < max; i++) {
		parent = XXH3_64bits_withSeed(s + i * block, block, parent);
		out[k++] = parent;
	}
	return k;
}

/* ---- the node table -------------------------------------------------------- */

static size_t home(const struct pindex *x, uint64_t h)
{
	return (size_t)(h ^ (h >> 29)) & x->mask;
}

static uint32_t find(const struct pindex *x, uint64_t h)
{
	for (size_t s = home(x, h);; s = (s + 1) & x->mask) {
		uint32_t v = x->slots[s];
		if (!v)
			return NIL;
		if (x->nodes[v - 1].h == h)
			return v - 1;
	}
}

static void slot_put(struct pindex *x, uint32_t node)
{
	size_t s = home(x, x->nodes[node].h);
	while (x->slots[s])
		s = (s + 1) & x->mask;
	x->slots[s] = node + 1;
}

static void slot_del(struct pindex *x, uint32_t node)
{
	size_t i = home(x, x->nodes[node].h);
	while (x->slots[i] != node + 1)
		i = (i + 1) & x->mask;
	for (size_t j = i;;) {
		x->slots[i] = 0;
		for (;;) {
			j = (j + 1) & x->mask;
			if (!x->slots[j])
				return;
			size_t k = home(x, x->nodes[x->slots[j] - 1].h);
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		x->slots[i] = x->slots[j];
		i = j;
	}
}

static void grow_table(struct pindex *x)
{
	size_t cap = (x->mask + 1) * 2;
	uint32_t *old = x->slots;
	size_t old_cap = x->mask + 1;
	x->slots = plb_calloc(cap, sizeof *x->slots);
	x->mask = cap - 1;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			slot_put(x, old[i] - 1);
	free(old);
}

static uint32_t node_get(struct pindex *x, uint64_t h)
{
	uint32_t n = find(x, h);
	if (n != NIL)
		return n;
	if (x->free_node != NIL) {
		n = x->free_node;
		x->free_node = x->nodes[n].first;
	} else {
		if (x->n_nodes == x->cap_nodes) {
			x->cap_nodes = x->cap_nodes ? x->cap_nodes * 2 : 1024;
			x->nodes = plb_realloc(x->nodes, x->cap_nodes * sizeof *x->nodes);
		}
		n = (uint32_t)x->n_nodes++;
	}
	x->nodes[n] = (struct node){h, NIL, 0};
	if ((x->used + 1) * 2 > x->mask + 1)
		grow_table(x);
	slot_put(x, n);
	x->used++;
	x->st.blocks++;
	return n;
}

static void node_put(struct pindex *x, uint32_t n)
{
	slot_del(x, n);
	x->used--;
	x->st.blocks--;
	x->nodes[n].first = x->free_node;
	x->free_node = n;
}

/* ---- holders --------------------------------------------------------------- */

static struct backend *backend(struct pindex *x, int ep)
{
	if ((size_t)ep >= x->n_be) {
		size_t n = (size_t)ep + 16;
		x->be = plb_realloc(x->be, n * sizeof *x->be);
		for (size_t i = x->n_be; i < n; i++)
			x->be[i] = (struct backend){NIL, NIL, 0};
		x->n_be = n;
	}
	return &x->be[ep];
}

/* The three lists are intrusive: (prev, next) fields chosen by offset. */
#define LINK(x, i, P, N, head, tail)                                    \
	do {                                                            \
		x->hs[i].P = NIL;                                       \
		x->hs[i].N = head;                                      \
		if (head != NIL)                                        \
			x->hs[head].P = i;                              \
		else                                                    \
			tail = i;                                       \
		head = i;                                               \
	} while (0)
#define UNLINK(x, i, P, N, head, tail)                                  \
	do {                                                            \
		uint32_t p_ = x->hs[i].P, n_ = x->hs[i].N;              \
		if (p_ != NIL)                                          \
			x->hs[p_].N = n_;                               \
		else                                                    \
			head = n_;                                      \
		if (n_ != NIL)                                          \
			x->hs[n_].P = p_;                               \
		else                                                    \
			tail = p_;                                      \
	} while (0)

static void holder_free(struct pindex *x, uint32_t i)
{
	struct holder *h = &x->hs[i];
	struct node *nd = &x->nodes[h->node];
	uint32_t dummy_tail = NIL;
	UNLINK(x, i, nprev, nnext, nd->first, dummy_tail);
	(void)dummy_tail;
	if (--nd->n == 0)
		node_put(x, h->node);
	struct backend *b = &x->be[h->ep];
	UNLINK(x, i, bprev, bnext, b->head, b->tail);
	b->n--;
	UNLINK(x, i, gprev, gnext, x->ghead, x->gtail);
	x->entries--;
	x->hs[i].nnext = x->free_h;
	x->free_h = i;
}

/* The holder of (node, ep), or NIL. */
static uint32_t holder_find(const struct pindex *x, uint32_t node, int ep)
{
	for (uint32_t i = x->nodes[node].first; i != NIL; i = x->hs[i].nnext)
		if (x->hs[i].ep == ep)
			return i;
	return NIL;
}

static void expire(struct pindex *x, uint64_t now)
{
	if (!x->cfg.ttl_ns)
		return;
	while (x->gtail != NIL && x->hs[x->gtail].t + x->cfg.ttl_ns < now) {
		holder_free(x, x->gtail);
		x->st.expirations++;
	}
}

void pindex_insert(struct pindex *x, int ep, const uint64_t *h, size_t n, uint64_t now)
{
	if (ep < 0)
		return;
	expire(x, now);
	struct backend *b = backend(x, ep);
	for (size_t k = n; k-- > 0;) { /* last block first: the earlier ones end up the most recent */
		uint32_t nd = node_get(x, h[k]);
		uint32_t i = holder_find(x, nd, ep);
		if (i != NIL) { /* touch */
			UNLINK(x, i, bprev, bnext, b->head, b->tail);
			UNLINK(x, i, gprev, gnext, x->ghead, x->gtail);
		} else {
			if (x->free_h != NIL) {
				i = x->free_h;
				x->free_h = x->hs[i].nnext;
			} else {
				if (x->n_hs == x->cap_hs) {
					x->cap_hs = x->cap_hs ? x->cap_hs * 2 : 1024;
					x->hs = plb_realloc(x->hs, x->cap_hs * sizeof *x->hs);
				}
				i = (uint32_t)x->n_hs++;
			}
			x->hs[i].node = nd;
			x->hs[i].ep = ep;
			uint32_t dummy_tail = NIL;
			LINK(x, i, nprev, nnext, x->nodes[nd].first, dummy_tail);
			(void)dummy_tail;
			x->nodes[nd].n++;
			b->n++;
			x->entries++;
			x->st.inserts++;
		}
		x->hs[i].t = now;
		LINK(x, i, bprev, bnext, b->head, b->tail);
		LINK(x, i, gprev, gnext, x->ghead, x->gtail);
	}
	while (x->cfg.max_per_backend && b->n > x->cfg.max_per_backend) {
		holder_free(x, b->tail);
		x->st.evictions++;
	}
	while (x->cfg.max_total && x->entries > x->cfg.max_total) {
		holder_free(x, x->gtail);
		x->st.evictions++;
	}
}

void pindex_remove(struct pindex *x, int ep, const uint64_t *h, size_t n)
{
	if (ep < 0 || (size_t)ep >= x->n_be)
		return;
	for (size_t k = 0; k < n; k++) {
		uint32_t nd = find(x, h[k]);
		uint32_t i = nd == NIL ? NIL : holder_find(x, nd, ep);
		if (i != NIL) {
			holder_free(x, i);
			x->st.removals++;
		}
	}
}

void pindex_clear_backend(struct pindex *x, int ep)
{
	if (ep < 0 || (size_t)ep >= x->n_be)
		return;
	while (x->be[ep].head != NIL) {
		holder_free(x, x->be[ep].head);
		x->st.removals++;
	}
}

size_t pindex_match(struct pindex *x, const uint64_t *h, size_t n, uint64_t now,
		    void (*visit)(void *ctx, int ep, size_t blocks), void *ctx)
{
	expire(x, now);
	if (x->cap_match < x->n_be) {
		size_t old = x->cap_match;
		x->cap_match = x->n_be;
		x->match = plb_realloc(x->match, x->cap_match * sizeof *x->match);
		x->touched = plb_realloc(x->touched, x->cap_match * sizeof *x->touched);
		memset(x->match + old, 0, (x->cap_match - old) * sizeof *x->match);
	}
	size_t best = 0;
	x->n_touched = 0;
	for (size_t k = 0; k < n; k++) {
		uint32_t nd = find(x, h[k]);
		if (nd == NIL)
			break;
		int advanced = 0;
		for (uint32_t i = x->nodes[nd].first; i != NIL; i = x->hs[i].nnext) {
			int ep = x->hs[i].ep;
			if (x->match[ep] != k)
				continue; /* a gap before this block on ep */
			if (k == 0)
				x->touched[x->n_touched++] = ep;
			x->match[ep] = (uint32_t)k + 1;
			advanced = 1;
		}
		if (!advanced)
			break;
		best = k + 1;
	}
	for (size_t t = 0; t < x->n_touched; t++) {
		int ep = x->touched[t];
		if (visit)
			visit(ctx, ep, x->match[ep]);
		x->match[ep] = 0;
	}
	return best;
}

/* ---- life ------------------------------------------------------------------ */

struct pindex *pindex_new(const struct pindex_cfg *cfg)
{
	struct pindex *x = plb_calloc(1, sizeof *x);
	x->cfg = *cfg;
	x->mask = 1023;
	x->slots = plb_calloc(x->mask + 1, sizeof *x->slots);
	x->free_node = x->free_h = x->ghead = x->gtail = NIL;
	return x;
}

void pindex_free(struct pindex *x)
{
	if (!x)
		return;
	free(x->nodes);
	free(x->slots);
	free(x->hs);
	free(x->be);
	free(x->match);
	free(x->touched);
	free(x);
}

size_t pindex_backend_entries(const struct pindex *x, int ep)
{
	return ep >= 0 && (size_t)ep < x->n_be ? x->be[ep].n : 0;
}

void pindex_get_stats(const struct pindex *x, struct pindex_stats *st)
{
	*st = x->st;
	st->entries = x->entries;
	st->bytes = x->cap_nodes * sizeof *x->nodes + (x->mask + 1) * sizeof *x->slots + x->cap_hs * sizeof *x->hs +
		    x->n_be * sizeof *x->be + x->cap_match * (sizeof *x->match + sizeof *x->touched);
}
