/* policy_lowest_ttft.c: prefixlb's own policy: each request goes to the
 * backend with the lowest predicted time to first token.
 *
 * The model, per backend b (times in ms):
 *   cached_b   = the prompt's leading blocks b holds (prefix index, pindex.h),
 *                in tokens: token blocks of block-tokens ids when the request's
 *                ids are known (cut after the chat template, as the engine's
 *                KV blocks), else character blocks of block-chars bytes
 *                counted as block-chars / 4 tokens;
 *   uncached_b = prompt tokens - cached_b: what b would have to prefill;
 *   queue_b    = the prefill work ahead of it on b: the uncached tokens of the
 *                requests this router sent there that have no token back yet;
 *                with fresh engine signals (vLLM's waiting/running, read within
 *                signals-max-age-ms), at least waiting x the mean prompt seen;
 *   decode_b   = requests decoding on b (ours, or the engine's running count);
 *   waiting_b  = requests on b with no token back yet (ours, or the engine's
 *                waiting count);
 *   TTFT_b     = prefill-ms-per-token x (queue_b + uncached_b)
 *              + decode-ms-per-request x decode_b
 *              + wait-ms-per-request x waiting_b.
 * A prefill of N tokens costs ~N x per-token time whatever else runs (vLLM
 * chunks prefills through a fixed token budget per step), each running decode
 * lengthens every step, and each request waiting ahead holds a scheduler slot
 * and KV space for at least a step: the three terms. Defaults: the L4
 * profile's per-token and per-decode times (docs/engine.md); the per-waiting
 * time was fitted on the arena (docs/route.md: in-sample there).
 * The choice minimises
 *   cost_b = TTFT_b + A_b x prefill-ms-per-token x uncached_b,
 *   A_b    = affinity + affinity-per-waiting x waiting_b:
 * a miss costs more than this request's own prefill: the work lands on b and
 * delays the requests queued there (each waiting request, and the ones that
 * will arrive behind them), and a conversation moved to b leaves its cache
 * behind. On an idle backend the extra prefill delays nobody (A_b =
 * affinity); on a backlogged one it delays everyone queued, so under overload
 * conversations stay where their cache is, and a hot prefix spreads to the
 * backends that have room. (Equivalently, since uncached_b = prompt - cached_b,
 * the hit a backend offers is worth A_b x its tokens.)
 *
 * Guard: like CHWBL's bound, only backends with in_flight <= guard-factor x
 * (total + 1) / n take part (all of them when none passes), so no cached copy
 * attracts more than its share however cheap it looks. A hot prefix spreads on
 * its own: once its holder's queue makes TTFT_b exceed a cold backend's full
 * prefill, the next request goes there, is recorded there, and the prefix has
 * two holders. Requests are recorded in the index when routed (speculative:
 * the engine will hold their blocks once computed); entries age out LRU per
 * backend and over all, and after index-ttl-s. Where the router has the
 * engines' KV events (lb__kv_match, fresh backends only), cached_b comes from
 * them instead: evictions are seen, and a block counts only once stored (or
 * routed there in the last moments, before its events could arrive).
 * Several routers (home-slack > 0): each router's index knows only the
 * requests it routed itself, so a prompt another router placed looks cold, and
 * each router would give it a home of its own (up to one copy per router). A
 * cold prompt (under half of it in this router's index: the chat template's
 * head is everywhere) therefore goes to its rendezvous-hash home (the highest
 * XXH64(backend name, CHWBL key)) among the backends whose predicted TTFT is
 * within home-slack x its full prefill of the best: every router computes the same
 * home, and load (its own counts and the engines' in-band reports) still
 * moves it off a busy one.
 * Cost: O(prompt blocks + backends holding them) per decision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "pindex.h"
#include "policy.h"

#define MAX_BLOCKS 4096

struct state {
	struct pindex *ix;
	uint64_t h[MAX_BLOCKS]; /* the last request's block hashes */
	size_t n_h;
	size_t unit;               /* tokens per block for the last request */
	int by_tokens;             /* the last request was hashed from token ids */
	size_t *cached;            /* per endpoint: blocks matched (scratch) */
	size_t cap_cached;
	double mean_prompt;        /* EMA of prompt tokens (for engine-reported queues) */
	double t_tok, t_dec, t_wait, guard, chars_per_token, affinity, affinity_wait, home_slack;
	uint64_t max_age;
	size_t block_tokens, block_chars;
};

static void *init(struct lb *lb)
{
	struct state *s = plb_calloc(1, sizeof *s);
	struct pindex_cfg c = {
		.max_per_backend = (size_t)lb__param(lb, "index-max-per-backend"),
		.max_total = (size_t)lb__param(lb, "index-max-total"),
		.ttl_ns = (uint64_t)(lb__param(lb, "index-ttl-s") * 1e9),
	};
	s->ix = pindex_new(&c);
	s->t_tok = lb__param(lb, "prefill-ms-per-token");
	s->t_dec = lb__param(lb, "decode-ms-per-request");
	s->guard = lb__param(lb, "guard-factor");
	s->affinity = lb__param(lb, "affinity");
	s->t_wait = lb__param(lb, "wait-ms-per-request");
	s->affinity_wait = lb__param(lb, "affinity-per-waiting");
	s->home_slack = lb__param(lb, "home-slack");
	s->max_age = (uint64_t)(lb__param(lb, "signals-max-age-ms") * 1e6);
	s->block_tokens = (size_t)lb__param(lb, "block-tokens");
	s->block_chars = (size_t)lb__param(lb, "block-chars");
	s->chars_per_token = 4;
	return s;
}

static void destroy(void *st)
{
	struct state *s = st;
	pindex_free(s->ix);
	free(s->cached);
	free(s);
}

/* The request's block hashes into s->h (once per request). */
static void hash_request(struct state *s, const struct lb_req *rq)
{
	int tokens;
	s->n_h = lb__hash_blocks(rq, s->block_tokens, s->block_chars, s->h, MAX_BLOCKS, &tokens);
	s->unit = tokens ? s->block_tokens : (size_t)((double)s->block_chars / s->chars_per_token);
	s->by_tokens = tokens;
}

static void visit(void *ctx, int ep, size_t blocks)
{
	struct state *s = ctx;
	if ((size_t)ep < s->cap_cached)
		s->cached[ep] = blocks;
}

static double prompt_tokens(const struct state *s, const struct lb_req *rq)
{
	if (rq->n_ids)
		return (double)rq->n_ids;
	if (rq->prompt_tokens)
		return rq->prompt_tokens;
	return (double)rq->text_len / s->chars_per_token;
}

/* cost_b (see the top of the file): the predicted TTFT on e (into *ttft;
 * lb_ttft_ms, the model admission control reads too) plus the extra prefill a
 * miss adds there, weighed by the requests it delays. */
static double cost_of(const struct state *s, const struct lb_endpoint *e, double prompt, double cached, uint64_t now,
		      double *ttft)
{
	const struct lb_ttft_model tm = {s->t_tok, s->t_dec, s->t_wait, s->max_age, s->mean_prompt};
	double uncached = prompt > cached ? prompt - cached : 0;
	double waiting = lb_waiting_now(&tm, e, now);
	double a = s->affinity + s->affinity_wait * waiting;
	*ttft = lb_ttft_ms(&tm, e, uncached, now) + s->t_wait * waiting;
	return *ttft + a * s->t_tok * uncached;
}

static int pick(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st)
{
	struct state *s = st;
	size_t n = lb__pool_size(p);
	hash_request(s, rq);
	size_t max_ep = 0;
	for (size_t m = 0; m < n; m++)
		max_ep = (size_t)lb__pool_member(p, m) + 1 > max_ep ? (size_t)lb__pool_member(p, m) + 1 : max_ep;
	if (s->cap_cached < max_ep) {
		s->cached = plb_realloc(s->cached, max_ep * sizeof *s->cached);
		s->cap_cached = max_ep;
	}
	memset(s->cached, 0, s->cap_cached * sizeof *s->cached);
	pindex_match(s->ix, s->h, s->n_h, rq->now, visit, s);
	/* the engines' own word where it is fresh (KV events): it replaces what
	 * was recorded at routing time for those backends */
	if (s->by_tokens && lb__kv_block_tokens(lb) == s->block_tokens)
		lb__kv_match(lb, s->h, s->n_h, rq->now, visit, s);
	double prompt = prompt_tokens(s, rq);
	s->mean_prompt = s->mean_prompt ? 0.99 * s->mean_prompt + 0.01 * prompt : prompt;
	size_t n_ok = need_healthy ? lb__pool_healthy(p) : n;
	double bound = s->guard * (double)(lb__pool_total(p) + 1) / (double)(n_ok ? n_ok : 1);
	int best = -1, pass;
	double best_cost = 0, best_cached = 0, max_cached = 0, min_ttft = INFINITY;
	uint32_t ties = 0;
	for (pass = 0; pass < 2 && best < 0; pass++) { /* pass 1: nobody within the guard */
		for (size_t m = 0; m < n; m++) {
			int ep = lb__pool_member(p, m);
			if (!lb__eligible(lb, ep, rq, need_healthy))
				continue;
			const struct lb_endpoint *e = lb__ep(lb, ep);
			if (!pass && (double)e->in_flight > bound)
				continue;
			double cached = (double)(s->cached[ep] * s->unit);
			double ttft;
			double cost = cost_of(s, e, prompt, cached, rq->now, &ttft);
			max_cached = fmax(max_cached, cached);
			min_ttft = fmin(min_ttft, ttft);
			if (best < 0 || cost < best_cost) {
				best = ep;
				best_cost = cost;
				best_cached = cached;
				ties = 1;
			} else if (cost == best_cost && lb__rand(lb) % ++ties == 0) {
				best = ep;
				best_cached = cached;
			}
		}
	}
	if (best >= 0 && max_cached < prompt / 2 && s->home_slack > 0) { /* cold: its home, if not too busy */
		double limit = min_ttft + s->home_slack * s->t_tok * prompt, ttft;
		uint64_t top = 0;
		for (size_t m = 0; m < n; m++) {
			int ep = lb__pool_member(p, m);
			const struct lb_endpoint *e = lb__ep(lb, ep);
			if (!lb__eligible(lb, ep, rq, need_healthy) || (pass == 1 && (double)e->in_flight > bound))
				continue;
			cost_of(s, e, prompt, (double)(s->cached[ep] * s->unit), rq->now, &ttft);
			if (ttft > limit)
				continue;
			uint64_t h = XXH64(e->name, strlen(e->name), rq->key);
			if (h >= top) {
				top = h;
				best = ep;
				best_cached = (double)(s->cached[ep] * s->unit);
			}
		}
	}
	if (best >= 0)
		lb__predict(lb, (long)best_cached, (uint64_t)(prompt > best_cached ? prompt - best_cached : 0));
	return best;
}

/* ---- the model, for every caller (lb.h) ------------------------------------ */

void lb_ttft_model(const struct lb *lb, struct lb_ttft_model *m)
{
	const struct lb_opts *o = lb_get_opts(lb);
	*m = (struct lb_ttft_model){
		.t_tok = lb_opts_get(o, "prefill-ms-per-token"),
		.t_dec = lb_opts_get(o, "decode-ms-per-request"),
		.t_wait = lb_opts_get(o, "wait-ms-per-request"),
		.max_age = (uint64_t)(lb_opts_get(o, "signals-max-age-ms") * 1e6),
	};
}

static int fresh(const struct lb_ttft_model *m, const struct lb_endpoint *e, uint64_t now)
{
	return e->sig.valid && now <= e->sig.at + m->max_age;
}

double lb_waiting_now(const struct lb_ttft_model *m, const struct lb_endpoint *e, uint64_t now)
{
	double w = (double)e->n_prefill;
	return fresh(m, e, now) ? fmax(w, lb_signal_waiting(e)) : w;
}

double lb_ttft_ms(const struct lb_ttft_model *m, const struct lb_endpoint *e, double uncached, uint64_t now)
{
	double queue = (double)e->prefill_tokens;
	double decode = (double)(e->in_flight - e->n_prefill);
	if (fresh(m, e, now)) {
		queue = fmax(queue, lb_signal_waiting(e) * m->mean_prompt);
		decode = fmax(decode, lb_signal_running(e));
	}
	return m->t_tok * (queue + uncached) + m->t_dec * decode;
}

static void on_acquire(struct lb *lb, int ep, const struct lb_req *rq, void *st)
{
	struct state *s = st;
	if (!lb__just_picked(lb, rq))
		hash_request(s, rq);
	pindex_insert(s->ix, ep, s->h, s->n_h, rq->now);
	if (s->by_tokens)
		lb__kv_routed(lb, ep, s->h, s->n_h, rq->now);
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
	{"prefill-ms-per-token", 0.26, 0, 1000, "lowest-ttft: prefill time per uncached prompt token (L4, 8B: 0.26)"},
	{"home-slack", 0, 0, 100,
	 "lowest-ttft: a prompt cold in this router's index goes to its hash home among backends whose cost is within "
	 "this x its full prefill of the best: several routers agree (0: off; 0.5-2 with several routers)"},
	{"decode-ms-per-request", 0.5, 0, 1000, "lowest-ttft: time each decoding request adds to a TTFT (L4: ~0.5)"},
	{"guard-factor", 2, 1.0001, 100, "lowest-ttft: only backends with load <= factor*(total+1)/n compete (1.5-3)"},
	{"wait-ms-per-request", 200, 0, 1e5, "lowest-ttft: time each request waiting ahead adds (a balance weight, fitted on the arena)"},
	{"affinity", 8, 0, 1000,
	 "lowest-ttft: a miss's extra prefill weighs this many times its own time on an idle backend (what a hit saves "
	 "the turns after it; 4-16)"},
	{"affinity-per-waiting", 8, 0, 1000,
	 "lowest-ttft: added to affinity per request waiting for its first token on that backend"},
	{"signals-max-age-ms", 1000, 0, 3.6e6, "engine signals older than this are ignored"},
	{"block-tokens", 16, 1, 4096, "token block size of the prefix index (vLLM's block size: 16)"},
	{"block-chars", 256, 1, 65536, "character block size when a request's tokens are not known (256: ~64 tokens, as llm-d)"},
	{"index-max-per-backend", 200000, 0, 1e9, "prefix index entries per backend (LRU past it; 0: no limit)"},
	{"index-max-total", 4000000, 0, 1e10, "prefix index entries in all (~80 bytes each; 0: no limit)"},
	{"index-ttl-s", 600, 0, 1e7, "prefix index entries unused this long are dropped (0: never)"},
	{NULL, 0, 0, 0, NULL},
};

const struct lb_policy policy_lowest_ttft = {
	.name = "lowest-ttft",
	.needs = LB_NEEDS_PROMPT,
	.help = "lowest predicted time to first token: queue + uncached prefill, from a prefix index and load",
	.params = params,
	.source = "prefixlb (docs/route.md, 'lowest-ttft')",
	.init = init,
	.destroy = destroy,
	.pick = pick,
	.on_acquire = on_acquire,
	.on_remove = on_remove,
	.stats = stats,
};
