/* policy_llmd.c: the llm-d router's (ex llm-d inference scheduler, with the
 * Gateway API Inference Extension's endpoint picker merged in) default
 * scheduling profile with its approximate prefix index, so that users can
 * compare it with ours on their own traces.
 *
 * Sources (read, not copied; facts carried over), llm-d/llm-d-router @
 * ebab687927f5331c1b39defcb579a07951bce56c (2026-08-22), under pkg/epp/:
 *   config/loader/defaults.go                 default profile: queue-scorer weight 2,
 *                                             kv-cache-utilization-scorer 2, prefix-cache-scorer 3;
 *                                             max-score-picker added when none is configured
 *   scheduling/scheduler_profile.go           score = sum of weight x clamp(score, 0, 1)
 *   framework/plugins/scheduling/scorer/queuedepth/queue.go, kvcacheutilization/kvcache_utilization.go,
 *     prefix/plugin.go (matchLengthWeight 0: the ratio only), picker/maxscore/picker.go (shuffle, then
 *     a stable sort by score: ties uniformly at random)
 *   framework/plugins/requestcontrol/dataproducer/approximateprefix/{plugin,indexer,types}.go,
 *     prefixhash/hashing.go, tokenizer/estimate.go    the approximate index
 *   framework/plugins/flowcontrol/saturationdetector/utilization/config.go   200 ms staleness
 *   (config/charts/routerlib/templates/_config.yaml ships the same default profile.)
 *
 * The rule, over the eligible endpoints i:
 *   queue_i  = (max q - q_i) / (max q - min q), 1 for all when max = min; q = waiting requests
 *   kv_i     = 1 - kv cache usage (0..1)
 *   prefix_i = matched blocks / total blocks of the prompt
 *   score_i  = 2 queue_i + 2 kv_i + 3 prefix_i, each term clamped to [0, 1]; the highest wins, ties
 *              uniformly at random.
 * The approximate index: without a tokenizer llm-d packs the prompt's bytes into 4-byte
 * pseudo-tokens (the last one zero-padded) and cuts them into blocks of max(blockSizeTokens, 64)
 * = 64 pseudo-tokens, 256 bytes (the 16-token default, or the engine's block size, is raised to 64
 * to bound memory). The last, partial block is hashed too and counts in the total. Hashes chain:
 * prev = xxhash64(model name [+ cache_salt, which prefixlb does not see]); then each block's
 * hash = xxhash64(LE64(xxhash64(block bytes)) || LE64(prev)).
 * At most 131072 / 64 = 2048 blocks (maxPrefixTokensToMatch). A match walks the blocks from the
 * first and stops at the first block no pod holds. The chosen pod records all the prompt's blocks
 * after scheduling, in an LRU of lruCapacityPerServer = 31,250 entries per pod (or the engine's
 * num_gpu_blocks when autoTune reads it from the metrics); no TTL.
 *
 * How it maps onto prefixlb:
 *   text    rq->text, the prompt as the engine sees it (llm-d's estimator flattens role + content
 *           of chat messages; the bytes differ, the locality is the same: hashes are only compared
 *           with each other). A request with token ids but no text is cut into blocks of 64 ids,
 *           as llm-d passes pre-tokenized prompts through as tokens.
 *   q_i     vLLM's num_requests_waiting from the endpoint's signals (lb_endpoint.sig) when fresh,
 *           else this router's n_prefill (its requests there without a first token: queued or in
 *           prefill; vLLM's waiting excludes those in prefill, so ours counts a little more).
 *   kv use  vLLM's kv_cache_usage_perc from the signals when fresh, else in_flight_tokens /
 *           llmd-kv-capacity-tokens (prompt + expected output of our requests there, a shared prefix
 *           counted once per request, where vLLM counts its blocks once: set the parameter to the
 *           engine's KV capacity, num_gpu_blocks x block_size; the default is `prefixlb engine`'s
 *           default profile, 75,000).
 *   fresh   read within llmd-signals-max-age-ms (200): llm-d's scorers take the latest scrape
 *           (refreshed every 50 ms) and its saturation detector counts metrics older than 200 ms as
 *           stale; our own counts are always current, so past that age we prefer them. The choice
 *           is per endpoint.
 *   index   the prefix index (pindex.h) with max_per_backend = llmd-lru-per-pod (31,250; prefixlb
 *           cannot read num_gpu_blocks), no TTL, recorded in on_acquire for the chosen endpoint.
 *           Two differences of pindex: its match counts a backend's leading blocks without a gap,
 *           llm-d's counts the pod's blocks anywhere in the leading run of held blocks (they differ
 *           only once an eviction has removed a middle block); and within one insert pindex evicts
 *           the tail blocks first, llm-d's LRU the head first (insertion order).
 *   predict cached tokens = matched blocks x 64 (a pseudo-token is ~1 token), at most the prompt.
 * Not modelled: flow control (queueing in the router, priority bands, saturation shedding), the
 * prefix-cache-affinity filter and latency scorer (only in the latency-predictor profile), P/D.
 *
 * Hashes once per request (pick), reused by on_acquire. Cost: O(prompt blocks + holders of the
 * matched blocks + eligible endpoints) per decision. Pure: randomness from lb__rand only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "pindex.h"
#include "policy.h"

#define BYTES_PER_TOKEN 4
#define MAX_PREFIX_TOKENS 131072

struct state {
	struct pindex *ix;
	uint64_t *h; /* the last request's block hashes */
	size_t n_h, max_h;
	unsigned char *pad;        /* a partial block, zero-padded to whole pseudo-tokens */
	size_t *matched;           /* per endpoint: blocks matched (scratch) */
	size_t cap_matched;
	double w_queue, w_kv, w_prefix, kv_capacity;
	uint64_t max_age;
	size_t block; /* pseudo-tokens (or token ids) per block */
};

static void *init(struct lb *lb)
{
	struct state *s = plb_calloc(1, sizeof *s);
	struct pindex_cfg c = {
		.max_per_backend = (size_t)lb__param(lb, "llmd-lru-per-pod"),
		.max_total = 0,
		.ttl_ns = 0,
	};
	s->ix = pindex_new(&c);
	s->w_queue = lb__param(lb, "llmd-queue-weight");
	s->w_kv = lb__param(lb, "llmd-kv-weight");
	s->w_prefix = lb__param(lb, "llmd-prefix-weight");
	s->kv_capacity = lb__param(lb, "llmd-kv-capacity-tokens");
	s->max_age = (uint64_t)(lb__param(lb, "llmd-signals-max-age-ms") * 1e6);
	s->block = (size_t)lb__param(lb, "llmd-block-tokens");
	s->max_h = MAX_PREFIX_TOKENS / s->block ? MAX_PREFIX_TOKENS / s->block : 1;
	s->h = plb_malloc(s->max_h * sizeof *s->h);
	s->pad = plb_malloc(s->block * BYTES_PER_TOKEN);
	return s;
}

static void destroy(void *st)
{
	struct state *s = st;
	pindex_free(s->ix);
	free(s->h);
	free(s->pad);
	free(s->matched);
	free(s);
}

/* The chain step: xxhash64 of the block's hash and the previous one, 8 bytes
 * each, little-endian. */
static uint64_t chain(uint64_t block, uint64_t prev)
{
	unsigned char b[16];
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(block >> (8 * i));
		b[8 + i] = (unsigned char)(prev >> (8 * i));
	}
	return XXH64(b, sizeof b, 0);
}

/* Blocks of `bytes` bytes over s (the last one partial, zero-padded to a whole
 * number of pseudo-tokens), chained from prev, into out (at most max). */
static size_t hash_bytes(struct state *s, const unsigned char *p, size_t len, size_t bytes, uint64_t prev,
			 uint64_t *out, size_t max)
{
	size_t k = 0;
	for (size_t off = 0; off < len && k < max; off += bytes) {
		size_t m = len - off < bytes ? len - off : bytes;
		const unsigned char *b = p + off;
		size_t hm = m;
		if (m % BYTES_PER_TOKEN) {
			hm = m + BYTES_PER_TOKEN - m % BYTES_PER_TOKEN;
			memset(s->pad, 0, hm);
			memcpy(s->pad, b, m);
			b = s->pad;
		}
		prev = chain(XXH64(b, hm, 0), prev);
		out[k++] = prev;
	}
	return k;
}

/* The request's block hashes into s->h (once per request). */
static void hash_request(struct state *s, const struct lb_req *rq)
{
	uint64_t prev = rq->model ? XXH64(rq->model, strlen(rq->model), 0) : XXH64("", 0, 0);
	if (rq->text && rq->text_len)
		s->n_h = hash_bytes(s, (const unsigned char *)rq->text, rq->text_len, s->block * BYTES_PER_TOKEN, prev,
				    s->h, s->max_h);
	else if (rq->ids && rq->n_ids) /* token ids are 4-byte tokens already */
		s->n_h = hash_bytes(s, (const unsigned char *)rq->ids, rq->n_ids * sizeof *rq->ids,
				    s->block * sizeof *rq->ids, prev, s->h, s->max_h);
	else
		s->n_h = 0;
}

static void visit(void *ctx, int ep, size_t blocks)
{
	struct state *s = ctx;
	if ((size_t)ep < s->cap_matched)
		s->matched[ep] = blocks;
}

static double clamp01(double v)
{
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* The engine's signals of e, if read within max_age of now. */
static int fresh(const struct state *s, const struct lb_endpoint *e, uint64_t now)
{
	return e->sig.valid && (now <= e->sig.at || now - e->sig.at <= s->max_age);
}

static double queue_of(const struct state *s, const struct lb_endpoint *e, uint64_t now)
{
	return fresh(s, e, now) ? lb_signal_waiting(e) : (double)e->n_prefill;
}

static double kv_usage_of(const struct state *s, const struct lb_endpoint *e, uint64_t now)
{
	if (fresh(s, e, now))
		return e->sig.kv_usage;
	return s->kv_capacity > 0 ? (double)e->in_flight_tokens / s->kv_capacity : 0;
}

static double prompt_tokens(const struct lb_req *rq)
{
	if (rq->n_ids)
		return (double)rq->n_ids;
	if (rq->prompt_tokens)
		return rq->prompt_tokens;
	return (double)rq->text_len / BYTES_PER_TOKEN;
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
	if (s->cap_matched < max_ep) {
		s->matched = plb_realloc(s->matched, max_ep * sizeof *s->matched);
		s->cap_matched = max_ep;
	}
	memset(s->matched, 0, s->cap_matched * sizeof *s->matched);
	pindex_match(s->ix, s->h, s->n_h, rq->now, visit, s);

	double q_min = INFINITY, q_max = -INFINITY;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		double q = queue_of(s, lb__ep(lb, ep), rq->now);
		q_min = fmin(q_min, q);
		q_max = fmax(q_max, q);
	}
	int best = -1;
	double best_score = 0;
	uint64_t ties = 0;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		const struct lb_endpoint *e = lb__ep(lb, ep);
		double q = queue_of(s, e, rq->now);
		double queue = q_max == q_min ? 1 : (q_max - q) / (q_max - q_min);
		double kv = 1 - kv_usage_of(s, e, rq->now);
		double prefix = s->n_h ? (double)s->matched[ep] / (double)s->n_h : 0;
		double score = s->w_queue * clamp01(queue) + s->w_kv * clamp01(kv) + s->w_prefix * clamp01(prefix);
		if (best < 0 || score > best_score) {
			best = ep;
			best_score = score;
			ties = 1;
		} else if (score == best_score && lb__rand(lb) % ++ties == 0) {
			best = ep;
		}
	}
	if (best >= 0) {
		double isl = prompt_tokens(rq);
		double cached = fmin(isl, (double)(s->matched[best] * s->block));
		lb__predict(lb, (long)cached, (uint64_t)(isl - cached));
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
	{"llmd-queue-weight", 2, 0, 1000, "llm-d: weight of the queue scorer, (max-q)/(max-min) of waiting requests"},
	{"llmd-kv-weight", 2, 0, 1000, "llm-d: weight of the KV cache utilisation scorer, 1 - usage"},
	{"llmd-prefix-weight", 3, 0, 1000, "llm-d: weight of the prefix cache scorer, matched / total blocks"},
	{"llmd-block-tokens", 64, 1, 65536,
	 "llm-d: index block in 4-byte pseudo-tokens of text, or in token ids (64 = 256 bytes, llm-d's floor)"},
	{"llmd-lru-per-pod", 31250, 1, 1e9,
	 "llm-d: prefix index entries per endpoint, LRU (lruCapacityPerServer; ~ the engine's KV blocks)"},
	{"llmd-signals-max-age-ms", 200, 0, 3.6e6,
	 "llm-d: engine waiting/KV signals older than this give way to the router's own counts"},
	{"llmd-kv-capacity-tokens", 75000, 1, 1e10,
	 "llm-d: KV tokens per endpoint for the usage fallback without signals: the engine's (L4 75000, H100 430000)"},
	{NULL, 0, 0, 0, NULL},
};

static const char *const aliases[] = {"llmd", NULL};

const struct lb_policy policy_llmd = {
	.name = "llm-d",
	.needs = LB_NEEDS_PROMPT,
	.help = "llm-d router's default profile: 2 x queue + 2 x free KV + 3 x prefix match ratio, highest wins",
	.aliases = aliases,
	.params = params,
	.source = "llm-d/llm-d-router pkg/epp/config/loader/defaults.go @ ebab6879",
	.init = init,
	.destroy = destroy,
	.pick = pick,
	.on_acquire = on_acquire,
	.on_remove = on_remove,
	.stats = stats,
};
