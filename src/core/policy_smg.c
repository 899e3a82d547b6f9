/* policy_smg.c: SGLang Model Gateway's `cache_aware` policy (SMG, formerly
 * sglang-router), for comparison with our own on the same traces.
 *
 * Read from lightseekorg/smg at 73da68ca9472bbc0ff5f63d31a8a21fbb8696359
 * (2026-08-07): model_gateway/src/policies/cache_aware.rs (the rule),
 * model_gateway/src/policies/mod.rs (CacheAwareConfig), model_gateway/src/main.rs
 * (CLI defaults), crates/kv_index/src/string_tree.rs and token_tree.rs (the
 * radix trees). Facts carried over, code written here:
 *
 *   load_w     = requests the gateway has in flight on worker w (Worker::load,
 *                its own counter: our in_flight, exactly);
 *   imbalanced = (max - min) > balance_abs_threshold
 *                AND max > balance_rel_threshold x min   (over healthy workers);
 *   imbalanced -> the shortest queue: lowest (load, processed requests, index)
 *                 (the tie-break of SMG #1714, commit 823cbbf9);
 *   else rate  = matched / input, the deepest prefix of the request found in the
 *                per-model radix tree of routed requests (characters of the
 *                request text over HTTP, tokens in 16-token pages over gRPC);
 *     rate > cache_threshold -> the worker that holds that deepest prefix;
 *     else                   -> the shortest queue, as above. Before sglang PR
 *                 #14650 (commit 6fe82758a70402c87920d1defaf5087a975a32cd, Dec
 *                 2025) a miss went to the worker with the smallest tree; SMG's
 *                 header comment still says so, its code does not. The old rule
 *                 is smg-miss-smallest-tree=1.
 *   Whatever the branch, the request is then inserted into the chosen worker's
 *   tree; a sweep every eviction_interval s trims each worker's tree, least
 *   recently used leaves first, to max_tree_size characters (tokens).
 * Defaults are the CLI's (main.rs: --cache-threshold 0.3, --balance-abs-threshold
 * 64, --balance-rel-threshold 1.5, --eviction-interval 120, --max-tree-size 2^26;
 * the Python launcher's eviction interval is 60), which is what users run; the
 * Rust struct's Default (mod.rs: 0.5 / 32 / 1.1, 30 s, 10,000) only serves
 * library users and tests. The KV-usage triggers of #1621 are off by default
 * (thresholds 1.0) and are not emulated.
 *
 * Mapped onto prefixlb's block index (pindex.h), where it cannot be exact:
 * - Tree -> chained blocks. Token ids when the request has them (SMG's token
 *   tree: pages of 16 tokens, only whole pages match: the same as blocks of
 *   smg-block-tokens = 16, so this mode is exact), else bytes of the text in
 *   blocks of smg-block-chars (16). The character tree also counts the part of a
 *   node that matches; blocks lose up to block-1 bytes of each match, so a rate
 *   reads low by < block/len, and only ever turns a hit into a miss. Measured
 *   (test_policy_smg.c, test_granularity): a 100-byte request sharing k bytes
 *   with a worker is a hit for SMG from k = 31, for us from k = 32; over requests
 *   of 40..200 bytes (step 20) and every k, 67 of 1,089 cases decide otherwise,
 *   all within 16 bytes above the threshold. Bytes, not code points (the same
 *   for ASCII). A prompt shorter than one block never matches (SMG would match
 *   its characters). SMG's text is the chat messages' contents joined by
 *   spaces; ours is rq->text as the caller gives it (the lab's today: its
 *   routing text, the first user message). Past MAX_BLOCKS blocks a prompt
 *   matches only on its first MAX_BLOCKS.
 * - Which worker answers a match: SMG's tree returns one tenant of the deepest
 *   node reached, the one it cached for that node (its first holder, kept while
 *   it holds the node). We take, among the eligible backends with the longest
 *   match, the one that has held the prompt's first block the longest: the last
 *   that pindex_match visits (it visits the holders of the first block newest
 *   first: a property of pindex.c that pindex.h does not promise;
 *   test_first_holder pins it). This is
 *   what keeps a hot prefix on one worker until the imbalance rule moves load
 *   off it, as SMG does. SMG matches over every tenant, healthy or not, and
 *   sends a hit on an unhealthy tenant to the first healthy worker without
 *   recording it; we match over eligible backends only.
 * - Eviction: a per-backend LRU cap of smg-max-tree-size / min(block sizes)
 *   entries applied at each insert, instead of a sweep every 60-120 s down to
 *   max_tree_size. Both drop a worker's least recently used tails first; ours
 *   never overshoots between sweeps, SMG's may. No TTL, no global cap (SMG has
 *   neither): memory is bounded per backend, ~56 bytes per entry.
 * - Removal: SMG leaves a removed worker's entries until the sweep; an endpoint
 *   slot here is reused, so on_remove clears it.
 * Cost: O(prompt blocks + backends holding them) per decision. Pure. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "pindex.h"
#include "policy.h"

#define MAX_BLOCKS 32768 /* 512 KiB of text at 16-byte blocks */

struct state {
	struct pindex *ix;
	uint64_t h[MAX_BLOCKS]; /* the request's block hashes */
	size_t n_h;
	size_t block;              /* units (tokens or bytes) per block of that request */
	size_t *blocks;            /* per endpoint: leading blocks it holds (scratch) */
	uint32_t *rank;            /* per endpoint: visit order, 1 = first visited (scratch) */
	size_t cap;
	uint32_t n_rank;
	float threshold, rel;
	double abs;
	int miss_smallest;
	size_t block_tokens, block_chars;
};

static void *init(struct lb *lb)
{
	struct state *s = plb_calloc(1, sizeof *s);
	s->threshold = (float)lb__param(lb, "smg-cache-threshold");
	s->abs = lb__param(lb, "smg-balance-abs-threshold");
	s->rel = (float)lb__param(lb, "smg-balance-rel-threshold");
	s->miss_smallest = lb__param(lb, "smg-miss-smallest-tree") != 0;
	s->block_tokens = (size_t)lb__param(lb, "smg-block-tokens");
	s->block_chars = (size_t)lb__param(lb, "smg-block-chars");
	size_t unit = s->block_tokens < s->block_chars ? s->block_tokens : s->block_chars;
	struct pindex_cfg c = {.max_per_backend = (size_t)(lb__param(lb, "smg-max-tree-size") / (double)unit)};
	if (lb__param(lb, "smg-max-tree-size") > 0 && !c.max_per_backend)
		c.max_per_backend = 1;
	s->ix = pindex_new(&c);
	return s;
}

static void destroy(void *st)
{
	struct state *s = st;
	pindex_free(s->ix);
	free(s->blocks);
	free(s->rank);
	free(s);
}

/* The request's block hashes into s->h, once per request: token pages when the
 * ids are known (SMG's gRPC token tree), else bytes of the text (its HTTP
 * string tree). */
static void hash_request(struct state *s, const struct lb_req *rq)
{
	int tokens;
	s->n_h = lb__hash_blocks(rq, s->block_tokens, s->block_chars, s->h, MAX_BLOCKS, &tokens);
	s->block = tokens ? s->block_tokens : s->block_chars;
}

static void visit(void *ctx, int ep, size_t blocks)
{
	struct state *s = ctx;
	if ((size_t)ep < s->cap) {
		s->blocks[ep] = blocks;
		s->rank[ep] = ++s->n_rank;
	}
}

/* Units (tokens or bytes) of the request, the denominator of the match rate. */
static size_t input_units(const struct lb_req *rq)
{
	if (rq->ids && rq->n_ids)
		return rq->n_ids;
	return rq->text ? rq->text_len : 0;
}

/* a's queue is shorter than b's: (load, processed, order in the pool) */
static int shorter(const struct lb_endpoint *a, const struct lb_endpoint *b)
{
	return a->in_flight != b->in_flight ? a->in_flight < b->in_flight : a->requests < b->requests;
}

/* The eligible member with the fewest index entries (the old miss rule), ties
 * uniformly at random (SMG scanned a hash map: no order to copy). */
static int smallest_tree(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy,
			 struct state *s)
{
	int best = -1;
	size_t best_n = 0;
	uint32_t ties = 0;
	for (size_t m = 0; m < lb__pool_size(p); m++) {
		int ep = lb__pool_member(p, m);
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		size_t n = pindex_backend_entries(s->ix, ep);
		if (best < 0 || n < best_n) {
			best = ep;
			best_n = n;
			ties = 1;
		} else if (n == best_n && lb__rand(lb) % ++ties == 0) {
			best = ep;
		}
	}
	return best;
}

static int pick(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st)
{
	struct state *s = st;
	size_t n = lb__pool_size(p);
	hash_request(s, rq);
	size_t max_ep = 0;
	for (size_t m = 0; m < n; m++)
		if ((size_t)lb__pool_member(p, m) + 1 > max_ep)
			max_ep = (size_t)lb__pool_member(p, m) + 1;
	if (s->cap < max_ep) {
		s->blocks = plb_realloc(s->blocks, max_ep * sizeof *s->blocks);
		s->rank = plb_realloc(s->rank, max_ep * sizeof *s->rank);
		s->cap = max_ep;
	}
	memset(s->blocks, 0, s->cap * sizeof *s->blocks);
	memset(s->rank, 0, s->cap * sizeof *s->rank);
	s->n_rank = 0;
	pindex_match(s->ix, s->h, s->n_h, rq->now, visit, s);

	/* one pass: the load bounds, the shortest queue, the longest match */
	int shortest = -1, matched = -1;
	uint32_t lo = 0, hi = 0;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		const struct lb_endpoint *e = lb__ep(lb, ep);
		if (shortest < 0) {
			lo = hi = e->in_flight;
			shortest = ep;
		} else {
			lo = e->in_flight < lo ? e->in_flight : lo;
			hi = e->in_flight > hi ? e->in_flight : hi;
			if (shorter(e, lb__ep(lb, shortest)))
				shortest = ep;
		}
		if (s->blocks[ep] && (matched < 0 || s->blocks[ep] > s->blocks[matched] ||
				      (s->blocks[ep] == s->blocks[matched] && s->rank[ep] > s->rank[matched])))
			matched = ep; /* ties: the longest holder of the first block (visited last) */
	}
	if (shortest < 0)
		return -1;
	int ep = shortest;
	if (!((double)(hi - lo) > s->abs && (float)hi > (float)lo * s->rel)) { /* balanced: look at the cache */
		size_t in = input_units(rq);
		float rate = matched >= 0 && in ? (float)(s->blocks[matched] * s->block) / (float)in : 0.0f;
		if (rate > s->threshold)
			ep = matched;
		else if (s->miss_smallest)
			ep = smallest_tree(lb, p, rq, need_healthy, s);
	}
	/* what it holds, in tokens (character blocks at ~4 bytes a token) */
	double tok_per_block = rq->ids && rq->n_ids ? (double)s->block : (double)s->block / 4;
	double prompt = rq->n_ids ? (double)rq->n_ids
				  : rq->prompt_tokens ? (double)rq->prompt_tokens : (double)rq->text_len / 4;
	double cached = (double)s->blocks[ep] * tok_per_block;
	if (cached > prompt)
		cached = prompt;
	lb__predict(lb, (long)cached, (uint64_t)(prompt - cached));
	return ep;
}

static void on_acquire(struct lb *lb, int ep, const struct lb_req *rq, void *st)
{
	struct state *s = st;
	if (!lb__just_picked(lb, rq))
		hash_request(s, rq);
	pindex_insert(s->ix, ep, s->h, s->n_h, rq->now);
}

static void on_remove(struct lb *lb, int ep, void *st)
{
	(void)lb;
	pindex_clear_backend(((struct state *)st)->ix, ep);
}

static void stats(const struct lb *lb, void *st, void (*f)(void *ctx, const char *name, int ep, double v), void *ctx)
{
	lb__index_stats(lb, ((struct state *)st)->ix, f, ctx);
}

static const struct lb_param params[] = {
	{"smg-cache-threshold", 0.3, 0, 1, "smg: a match rate above this goes to the matching worker (SMG CLI 0.3)"},
	{"smg-balance-abs-threshold", 64, 0, 1e9,
	 "smg: imbalanced when max - min in flight exceeds this (and the relative test) (SMG CLI 64)"},
	{"smg-balance-rel-threshold", 1.5, 0, 1e6, "smg: ... and when max > this x min (SMG CLI 1.5)"},
	{"smg-block-chars", 16, 1, 65536, "smg: bytes per block emulating SMG's character tree (1-64; 16)"},
	{"smg-block-tokens", 16, 1, 4096, "smg: tokens per block, SMG's token tree page (16)"},
	{"smg-max-tree-size", 67108864, 0, 1e12,
	 "smg: characters (tokens) kept per worker, LRU past it (SMG CLI 2^26; 0: no limit)"},
	{"smg-miss-smallest-tree", 0, 0, 1, "smg: 1 = on a miss the smallest tree (sglang-router until Dec 2025)"},
	{NULL, 0, 0, 0, NULL},
};

const struct lb_policy policy_smg = {
	.name = "smg",
	.needs = LB_NEEDS_PROMPT,
	.help = "SGLang model gateway cache_aware: radix-tree match rate > 0.3 wins unless the pool is imbalanced",
	.params = params,
	.source = "lightseekorg/smg model_gateway/src/policies/cache_aware.rs @73da68ca",
	.init = init,
	.destroy = destroy,
	.pick = pick,
	.on_acquire = on_acquire,
	.on_remove = on_remove,
	.stats = stats,
};
