/* policy_aibrix.c: AIBrix's prefix-cache routing ("prefix-cache" routing
 * strategy of its gateway plugin), for comparison with our own on the same
 * traces.
 *
 * Read from vllm-project/aibrix at e3e10f9e4aebe9aac5e7d992fb87d2648e01628b
 * (2026-08-22): pkg/plugins/gateway/algorithms/prefix_cache.go (routeOriginal,
 * getTargetPodFromMatchedPods, getTargetPodListOnLoadImbalance),
 * least_request.go (selectTargetPodWithLeastRequestCount, getRequestCounts),
 * util.go (mean, standardDeviation), prefix_cache_readme.md,
 * pkg/utils/prefixcacheindexer/hash.go (the index), pkg/utils/lrustore,
 * pkg/utils/tokenizer, pkg/cache/cache_trace.go (the running counter) and
 * config/gateway/gateway-plugin/gateway-plugin.yaml,
 * config/overlays/release/gateway_plugins_patch.yaml (deployed settings).
 * Facts carried over, code written here:
 *
 *   running_p  = realtime_num_requests_running: the gateway's own count of the
 *                requests it routed to p that have not finished (cache_trace.go
 *                addPodStats/donePodStats), not vLLM's num_requests_running. That
 *                is our in_flight, exactly, so engine signals are not used;
 *   imbalanced = max running - min running > IMBALANCE_ABS_COUNT (strict), over
 *                the ready pods; then only the pods at the minimum are candidates;
 *   match      = the prompt's chained block hashes looked up in order; a pod's
 *                percent = (its leading blocks held) x 100 / (the prompt's full
 *                blocks), in integer arithmetic; a pod holding >= 1 block is
 *                "matched" even when that rounds to 0 %;
 *   choice     = the matched candidates sorted by percent descending, then
 *                running ascending, ties in random order (shuffle + stable sort);
 *                the first with running <= mean + STANDARD_DEVIATION_FACTOR x sd
 *                wins, mean and the SAMPLE standard deviation (n - 1; 0 for one
 *                pod) taken over all ready pods;
 *   fallback   = no matched candidate, or none within that bound: the ready pod
 *                with the fewest running requests, ties at random;
 *   then the prompt's blocks are recorded for the chosen pod (PostRouteUpdate).
 * So an imbalanced pool sends a request to a least loaded pod, the best
 * matching one among them. Defaults: the deployed manifests' (what users run):
 * imbalance 16, factor 2, character tokenizer, block size 128, 200,000 blocks;
 * the same as the readme. The Go fallbacks differ: imbalance 8 and factor 1
 * (prefix_cache.go), block size 4 (hash.go). Index entries expire 20 minutes
 * after their last insert (AIBRIX_PREFIX_CACHE_EVICTION_DURATION_MINS). The
 * factor is an integer there (LoadEnvInt); any real is accepted here.
 *
 * Mapped onto prefixlb's block index (pindex.h):
 * - Blocks: the character tokenizer turns the text into its bytes, so blocks of
 *   aibrix-block-chars = 128 bytes of rq->text are exact. When the request has
 *   token ids we hash those instead (as AIBrix with its tiktoken or remote vLLM
 *   tokenizer): AIBrix serialises each id in 4 bytes and cuts blocks of
 *   AIBRIX_PREFIX_CACHE_BLOCK_SIZE bytes, so the readme's 16 for tiktoken is 4
 *   tokens: aibrix-block-tokens = 4. AIBrix's text is the chat messages'
 *   contents joined by spaces; ours is rq->text as the caller gives it (the
 *   lab's today: its routing text, the first user message).
 *   Past MAX_BLOCKS blocks a prompt counts only its first MAX_BLOCKS.
 * - Capacity: AIBrix keeps at most 200,000 distinct blocks in one LRU over all
 *   pods, each block listing its pods; ours caps (block, pod) entries at
 *   aibrix-block-number over all backends (max_total). The two agree when each
 *   block has one holder (most blocks: the distinct tails of prompts) and ours
 *   keeps fewer blocks when many pods hold the same prefix. AIBrix refreshes a
 *   block for all its pods when any pod re-inserts it and never drops one pod
 *   from a block; ours ages each (block, pod) pair on its own.
 * - Removal: AIBrix keeps a deleted pod's entries until they age out; an
 *   endpoint slot here is reused, so on_remove clears it.
 * - Random tie-breaks use lb__rand: uniform among the tied pods, as a shuffle
 *   followed by a stable sort is.
 * Cost: O(prompt blocks + backends holding them) per decision. Pure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "pindex.h"
#include "policy.h"

#define MAX_BLOCKS 16384 /* 2 MiB of text at 128-byte blocks */

struct state {
	struct pindex *ix;
	uint64_t h[MAX_BLOCKS]; /* the request's block hashes */
	size_t n_h;
	int by_tokens;             /* that request was hashed by token ids */
	size_t *blocks;            /* per endpoint: leading blocks it holds (scratch) */
	size_t cap;
	double imbalance, factor;
	size_t block_tokens, block_chars;
};

static void *init(struct lb *lb)
{
	struct state *s = plb_calloc(1, sizeof *s);
	s->imbalance = lb__param(lb, "aibrix-imbalance");
	s->factor = lb__param(lb, "aibrix-sd-factor");
	s->block_tokens = (size_t)lb__param(lb, "aibrix-block-tokens");
	s->block_chars = (size_t)lb__param(lb, "aibrix-block-chars");
	struct pindex_cfg c = {
		.max_total = (size_t)lb__param(lb, "aibrix-block-number"),
		.ttl_ns = (uint64_t)(lb__param(lb, "aibrix-ttl-s") * 1e9),
	};
	s->ix = pindex_new(&c);
	return s;
}

static void destroy(void *st)
{
	struct state *s = st;
	pindex_free(s->ix);
	free(s->blocks);
	free(s);
}

/* The request's block hashes into s->h, once per request. */
static void hash_request(struct state *s, const struct lb_req *rq)
{
	s->n_h = lb__hash_blocks(rq, s->block_tokens, s->block_chars, s->h, MAX_BLOCKS, &s->by_tokens);
}

static void visit(void *ctx, int ep, size_t blocks)
{
	struct state *s = ctx;
	if ((size_t)ep < s->cap)
		s->blocks[ep] = blocks;
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
		s->cap = max_ep;
	}
	memset(s->blocks, 0, s->cap * sizeof *s->blocks);
	pindex_match(s->ix, s->h, s->n_h, rq->now, visit, s);

	/* the running counts of the ready pods: bounds, mean, sample deviation */
	size_t n_ok = 0;
	uint32_t lo = 0, hi = 0;
	double sum = 0;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		uint32_t r = lb__ep(lb, ep)->in_flight;
		lo = n_ok && lo < r ? lo : r;
		hi = n_ok && hi > r ? hi : r;
		sum += r;
		n_ok++;
	}
	if (!n_ok)
		return -1;
	double mean = sum / (double)n_ok, ss = 0;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (lb__eligible(lb, ep, rq, need_healthy))
			ss += ((double)lb__ep(lb, ep)->in_flight - mean) * ((double)lb__ep(lb, ep)->in_flight - mean);
	}
	double bound = mean + s->factor * (n_ok > 1 ? sqrt(ss / (double)(n_ok - 1)) : 0);
	int imbalanced = (double)(hi - lo) > s->imbalance;

	/* the first of the sorted matched candidates within the bound = the best
	 * (percent desc, running asc) among those within it, ties at random */
	int best = -1;
	size_t best_pct = 0;
	uint32_t best_run = 0, ties = 0;
	for (size_t m = 0; m < n && s->n_h; m++) {
		int ep = lb__pool_member(p, m);
		if (!s->blocks[ep] || !lb__eligible(lb, ep, rq, need_healthy))
			continue;
		uint32_t r = lb__ep(lb, ep)->in_flight;
		if ((imbalanced && r != lo) || (double)r > bound)
			continue;
		size_t pct = s->blocks[ep] * 100 / s->n_h;
		if (best < 0 || pct > best_pct || (pct == best_pct && r < best_run)) {
			best = ep;
			best_pct = pct;
			best_run = r;
			ties = 1;
		} else if (pct == best_pct && r == best_run && lb__rand(lb) % ++ties == 0) {
			best = ep;
		}
	}
	if (best < 0)
		best = lb__least_loaded(lb, p, rq, need_healthy);
	if (best >= 0) {
		/* what it holds, in tokens (character blocks at ~4 bytes a token) */
		double tok_per_block = s->by_tokens ? (double)s->block_tokens : (double)s->block_chars / 4;
		double prompt = rq->n_ids ? (double)rq->n_ids
					  : rq->prompt_tokens ? (double)rq->prompt_tokens : (double)rq->text_len / 4;
		double cached = (double)s->blocks[best] * tok_per_block;
		if (cached > prompt)
			cached = prompt;
		lb__predict(lb, (long)cached, (uint64_t)(prompt - cached));
	}
	return best;
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
	{"aibrix-imbalance", 16, 0, 1e9,
	 "aibrix: max - min in flight above this sends to a least loaded pod (AIBrix manifests 16)"},
	{"aibrix-sd-factor", 2, 0, 100, "aibrix: a matched pod must have in flight <= mean + this x sd (AIBrix 2)"},
	{"aibrix-block-chars", 128, 1, 65536, "aibrix: bytes per block of the text (AIBrix character tokenizer: 128)"},
	{"aibrix-block-tokens", 4, 1, 4096, "aibrix: tokens per block when ids are known (AIBrix 16 bytes = 4 ids)"},
	{"aibrix-block-number", 200000, 0, 1e10, "aibrix: index entries in all, LRU past it (AIBrix 200,000 blocks)"},
	{"aibrix-ttl-s", 1200, 0, 1e7, "aibrix: index entries not re-inserted for this long go (AIBrix 20 min)"},
	{NULL, 0, 0, 0, NULL},
};

const struct lb_policy policy_aibrix = {
	.name = "aibrix",
	.needs = LB_NEEDS_PROMPT,
	.help = "AIBrix prefix-cache: best prefix match within mean + 2 sd of load, least loaded when skewed by > 16",
	.params = params,
	.source = "vllm-project/aibrix pkg/plugins/gateway/algorithms/prefix_cache.go @e3e10f9e",
	.init = init,
	.destroy = destroy,
	.pick = pick,
	.on_acquire = on_acquire,
	.on_remove = on_remove,
	.stats = stats,
};
