/* policy_dynamo.c: NVIDIA Dynamo's KV router, default worker selector, in its
 * approximate mode (no KV events), so that users can compare it with ours on
 * their own traces.
 *
 * Sources (read, not copied; facts carried over):
 *   ai-dynamo/dynamo @ 07a6c9ce3bb096cfaf353fe69ee578e105c6a512
 *     lib/kv-router/src/scheduling/selector/default.rs  worker_logit, softmax_sample_index,
 *                                                       minimum_cost_index
 *     lib/kv-router/src/scheduling/selector/mod.rs      raw_prefill_blocks, decode_cost_blocks,
 *                                                       min_active_prefill_tokens
 *     lib/kv-router/src/scheduling/config.rs            the defaults below
 *     lib/kv-router/src/scheduling/types.rs             request_blocks = ceil(isl / block)
 *   ai-dynamo/dynamo lib/kv-router/src/sequences/prompt_registry.rs @ 312d3427 (project_worker_loads),
 *     sequences/single.rs @ 04df1c42 (what is active, and until when), approx.rs @ 209c9e83 (PruneConfig)
 *   docs.nvidia.com/dynamo, Router: "Routing Concepts" and "Configuration and Tuning" (v1.2-v1.6).
 *
 * The rule, per eligible worker i (blocks of B = 16 tokens, the engine's):
 *   raw_i    = (A_i + isl) / B                A_i: active prefill tokens on i; isl: prompt tokens
 *   excess_i = max(0, A_i - A_min) / B / P    A_min over the eligible workers; P = ceil(isl / B)
 *   credit_i = c / (1 + d * excess_i)         (d = 0: credit_i = c)
 *   cost_i   = s * max(0, raw_i - credit_i * H_i) + D_i + w * R_i
 * H_i = leading blocks of the prompt cached on i, D_i = decode blocks, R_i = requests on i.
 * Defaults: c = overlap_score_credit 1, d = overlap_score_credit_decay 0, s = prefill_load_scale 1,
 * w = decode_active_request_weight 0, router_temperature 0. (overlap_score_weight is the deprecated
 * name of s; setting it to 0 also sets c to 0.) With c = 1, d = 0 the prefill term is A_i/B plus the
 * prompt's uncached blocks: the older documented "overlap weight x prefill blocks + decode blocks".
 * Note: the excess is normalised by the request's own block count P (mod.rs, default.rs), not by the
 * worker count that docs/seed.md section 7 writes as N.
 * Choice: temperature 0 takes the lowest cost, ties uniformly at random. Above 0, softmax sampling:
 * p_i ~ exp(-(cost_i - min) / ((max - min) * T)), uniform when all costs are equal, sampled with one
 * uniform u in [0,1) against the cumulative probabilities.
 *
 * How each term maps onto what prefixlb knows (lb.h):
 *   A_i  Dynamo counts, for each request it routed to i that has no first token yet, the prompt
 *        tokens not cached on i at routing time (single.rs: the prefill tracker gets isl - cached,
 *        and loses it at prefill completion = first token; no decay without the AIC load model,
 *        which is off by default). lb_endpoint.prefill_tokens is that very counter: lb.c adds each
 *        request's predicted uncached tokens at acquire and removes them at the first token, and
 *        this policy predicts uncached = prompt - cached blocks. Same meaning, taken as is.
 *   D_i  Dynamo's decode blocks are not only decoding requests: potential_decode_blocks = the
 *        distinct prompt blocks of every request live on i (acquired when routed, kept through
 *        prefill completion, freed when the request ends; output blocks only with
 *        router_track_output_blocks, off by default) + this prompt's full blocks not shared with a
 *        request live on i. So "in_flight - n_prefill" would leave out the requests still in
 *        prefill, which Dynamo counts. We use in_flight_tokens_i / B (every live request routed
 *        there, from acquire to release) + (full blocks of the prompt - H_i). Differences, all
 *        making D_i larger here: in_flight_tokens counts each request's prompt plus its expected
 *        output (max_tokens), and a prefix shared by k live requests k times, where Dynamo counts
 *        it once; and the new prompt's overlap is taken from the index of routed prompts (what
 *        was routed within the TTL) rather than from the prompts still live on i. prefixlb cannot
 *        keep the distinct live blocks: on_release does not say which request ended.
 *   H_i  Dynamo's device overlap: the leading full blocks of the prompt its radix tree puts on i.
 *        Without KV events (use_kv_events false) that tree is fed by routing decisions: a
 *        request's blocks are recorded on its worker when routed and expire router_ttl_secs
 *        (120 s) later, the tree pruned oldest first past max_tree_size 2^20 blocks (PruneConfig).
 *        Here: the prefix index (pindex.h) with ttl = dynamo-ttl-s and max_total =
 *        dynamo-max-blocks, filled in on_acquire, matched in pick. Host, disk and shared-cache
 *        tiers (credits 0.75, 0.25, 0) are not observable: device only.
 *   R_i  in_flight (only used when w > 0).
 *   isl  the request's token ids when given (cut after the chat template, as the engine's KV
 *        blocks); then the index holds 16-token blocks of those ids, as Dynamo hashes. Without
 *        ids (a router with no tokenizer), 4B-byte character blocks of the text stand for B-token
 *        blocks and isl = bytes / 4: an approximation Dynamo, which always tokenises, does not need.
 * Engine signals (lb_endpoint.sig) are not read: Dynamo's cost reads only the router's own
 * accounting of what it routed. Not modelled: the router queue and busy thresholds (prefixlb
 * places every request at once), session affinity, disaggregated P/D.
 *
 * Hashes once per request (pick), reused by on_acquire. Cost: O(prompt blocks + holders of the
 * matched blocks + eligible workers) per decision; memory: the index, capped. Pure: randomness
 * from lb__rand only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "pindex.h"
#include "policy.h"

#define MAX_BLOCKS 8192 /* 131,072 tokens of 16 */
#define BYTES_PER_TOKEN 4

struct state {
	struct pindex *ix;
	uint64_t h[MAX_BLOCKS]; /* the last request's block hashes */
	size_t n_h;
	size_t *cached;            /* per endpoint: leading blocks held (scratch) */
	size_t cap_cached;
	int *cand;                 /* eligible endpoints of this pick (scratch) */
	double *cost;
	size_t cap_cand;
	double credit, decay, scale, req_weight, temperature;
	size_t block; /* tokens per block */
};

static void *init(struct lb *lb)
{
	struct state *s = plb_calloc(1, sizeof *s);
	struct pindex_cfg c = {
		.max_per_backend = 0,
		.max_total = (size_t)lb__param(lb, "dynamo-max-blocks"),
		.ttl_ns = (uint64_t)(lb__param(lb, "dynamo-ttl-s") * 1e9),
	};
	s->ix = pindex_new(&c);
	s->credit = lb__param(lb, "dynamo-overlap-credit");
	s->decay = lb__param(lb, "dynamo-credit-decay");
	s->scale = lb__param(lb, "dynamo-prefill-scale");
	s->req_weight = lb__param(lb, "dynamo-request-weight");
	s->temperature = lb__param(lb, "dynamo-temperature");
	s->block = (size_t)lb__param(lb, "dynamo-block-tokens");
	return s;
}

static void destroy(void *st)
{
	struct state *s = st;
	pindex_free(s->ix);
	free(s->cached);
	free(s->cand);
	free(s->cost);
	free(s);
}

/* The request's block hashes into s->h (once per request). */
static void hash_request(struct state *s, const struct lb_req *rq)
{
	int tokens;
	s->n_h = lb__hash_blocks(rq, s->block, s->block * BYTES_PER_TOKEN, s->h, MAX_BLOCKS, &tokens);
}

static void visit(void *ctx, int ep, size_t blocks)
{
	struct state *s = ctx;
	if ((size_t)ep < s->cap_cached)
		s->cached[ep] = blocks;
}

/* isl: the prompt's tokens (ids, the caller's estimate, or bytes / 4). */
static double prompt_tokens(const struct lb_req *rq)
{
	if (rq->n_ids)
		return (double)rq->n_ids;
	if (rq->prompt_tokens)
		return rq->prompt_tokens;
	return (double)rq->text_len / BYTES_PER_TOKEN;
}

/* A double in [0, 1) from lb__rand. */
static double rand01(struct lb *lb)
{
	return (double)(lb__rand(lb) >> 11) * 0x1.0p-53;
}

/* Row of the lowest cost, ties uniformly at random (reservoir). */
static size_t argmin(struct lb *lb, const double *cost, size_t n)
{
	size_t best = 0;
	uint64_t ties = 1;
	for (size_t i = 1; i < n; i++) {
		if (cost[i] < cost[best]) {
			best = i;
			ties = 1;
		} else if (cost[i] == cost[best] && lb__rand(lb) % ++ties == 0) {
			best = i;
		}
	}
	return best;
}

/* Softmax over costs scaled to (max - min) with temperature t > 0. */
static size_t softmax(struct lb *lb, const double *cost, size_t n, double t)
{
	double lo = cost[0], hi = cost[0];
	for (size_t i = 1; i < n; i++) {
		lo = fmin(lo, cost[i]);
		hi = fmax(hi, cost[i]);
	}
	double u = rand01(lb);
	if (lo == hi)
		return (size_t)(u * (double)n) < n ? (size_t)(u * (double)n) : n - 1;
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += exp(-(cost[i] - lo) / ((hi - lo) * t));
	double cum = 0;
	for (size_t i = 0; i < n; i++) {
		cum += exp(-(cost[i] - lo) / ((hi - lo) * t)) / sum;
		if (u <= cum)
			return i;
	}
	return n - 1;
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
	if (s->cap_cached < max_ep) {
		s->cached = plb_realloc(s->cached, max_ep * sizeof *s->cached);
		s->cap_cached = max_ep;
	}
	if (s->cap_cand < n) {
		s->cand = plb_realloc(s->cand, n * sizeof *s->cand);
		s->cost = plb_realloc(s->cost, n * sizeof *s->cost);
		s->cap_cand = n;
	}
	memset(s->cached, 0, s->cap_cached * sizeof *s->cached);
	pindex_match(s->ix, s->h, s->n_h, rq->now, visit, s);

	size_t nc = 0;
	double a_min = INFINITY;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (!lb__eligible(lb, ep, rq, need_healthy))
			continue;
		s->cand[nc++] = ep;
		a_min = fmin(a_min, (double)lb__ep(lb, ep)->prefill_tokens);
	}
	if (!nc)
		return -1;

	double bs = (double)s->block;
	double isl = prompt_tokens(rq);
	double req_blocks = fmax(1, ceil(isl / bs));
	for (size_t i = 0; i < nc; i++) {
		const struct lb_endpoint *e = lb__ep(lb, s->cand[i]);
		double hit = (double)s->cached[s->cand[i]];
		double a = (double)e->prefill_tokens;
		double raw = (a + isl) / bs;
		double credit = s->credit;
		if (s->decay > 0)
			credit /= 1 + s->decay * ((a - a_min) / bs) / req_blocks;
		double prefill = fmax(0, raw - credit * hit);
		double decode = (double)e->in_flight_tokens / bs + ((double)s->n_h - hit);
		s->cost[i] = s->scale * prefill + decode + s->req_weight * (double)e->in_flight;
	}
	size_t row = s->temperature > 0 ? softmax(lb, s->cost, nc, s->temperature) : argmin(lb, s->cost, nc);
	int best = s->cand[row];
	double cached = fmin(isl, (double)s->cached[best] * bs);
	lb__predict(lb, (long)cached, (uint64_t)(isl - cached));
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
	{"dynamo-overlap-credit", 1, 0, 100,
	 "dynamo: prefill blocks forgiven per cached block (overlap_score_credit; 0 ignores caches)"},
	{"dynamo-credit-decay", 0, 0, 1000,
	 "dynamo: credit fades with prefill backlog above the least loaded (overlap_score_credit_decay; 0 off, 1 strong)"},
	{"dynamo-prefill-scale", 1, 0, 1000,
	 "dynamo: weight of prefill blocks against decode blocks (prefill_load_scale, ex overlap_score_weight)"},
	{"dynamo-request-weight", 0, 0, 1e6,
	 "dynamo: blocks charged per request in flight (decode_active_request_weight; 0 off)"},
	{"dynamo-temperature", 0, 0, 100,
	 "dynamo: softmax temperature over costs scaled to max-min (router_temperature; 0 lowest cost, 0.1-1 spreads)"},
	{"dynamo-block-tokens", 16, 1, 4096, "dynamo: KV block size in tokens: the engine's (vLLM 16)"},
	{"dynamo-ttl-s", 120, 0, 1e7, "dynamo: routed blocks are forgotten this long after routing (router_ttl_secs)"},
	{"dynamo-max-blocks", 1048576, 0, 1e10,
	 "dynamo: index cap in (block, worker) pairs, oldest first (max_tree_size 2^20; ~80 bytes each)"},
	{NULL, 0, 0, 0, NULL},
};

const struct lb_policy policy_dynamo = {
	.name = "dynamo",
	.needs = LB_NEEDS_PROMPT,
	.help = "NVIDIA Dynamo's KV router: lowest prefill + decode block cost, cached blocks credited",
	.params = params,
	.source = "ai-dynamo/dynamo lib/kv-router/src/scheduling/selector/default.rs @ 07a6c9ce",
	.init = init,
	.destroy = destroy,
	.pick = pick,
	.on_acquire = on_acquire,
	.on_remove = on_remove,
	.stats = stats,
};
