/* policy.h: routing policies as plug-ins (HAProxy's struct lb_ops, h2o's
 * balancer callbacks): one const ops table per policy, one file per policy,
 * a registry (policy.c) looked up by name.
 *
 * Adding a policy = one new file policy_NAME.c defining a `const struct
 * lb_policy` plus one line in the registry of policy.c. Option parsing
 * (route's flags and config, the lab's --policies and NAME:param=value
 * specs), help text, the lab's arena and the metrics labels all come from
 * the registry. docs/DESIGN.md, "Adding a policy", walks through one.
 *
 * Hooks run inside lb.c, which owns endpoints, pools and leases:
 *   init/destroy          policy-wide state (index, RNG-free caches)
 *   pool_init/destroy     per-pool state, rebuilt after endpoints or models change
 *   pick                  the decision; must not change counters
 *   on_acquire/release    a request placed on / leaving an endpoint (leases call
 *                         these exactly once each, so a counter kept here can't
 *                         leak on any exit path of the proxy)
 *   on_remove             an endpoint's slot is about to be reused
 * Every hook but pick is optional. Policies are pure like the rest of the
 * core: time comes in rq->now, randomness from lb__rand(). */
#ifndef PREFIXLB_POLICY_H
#define PREFIXLB_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "lb.h"

/* A tunable of a policy. The same name in two policies means the same knob
 * (same default and range: a unit test checks it). */
struct lb_param {
	const char *name; /* flag name: --load-factor */
	double dflt, min, max;
	const char *help; /* one line; says what a reasonable value is */
};

struct lb_pool;

/* What a policy needs of a request beyond its model and CHWBL key. */
enum {
	LB_NEEDS_PROMPT = 1, /* the whole prompt: rq->text (rendered chat / prompt) or rq->ids */
};

struct lb_policy {
	const char *name;
	unsigned needs;              /* LB_NEEDS_* */
	const char *help;            /* one line */
	const char *const *aliases;  /* other accepted names, NULL-terminated, or NULL */
	const struct lb_param *params; /* terminated by a NULL name, or NULL */
	const char *source;          /* where its rules come from (paper, peer's source), for --help */
	void *(*init)(struct lb *lb);
	void (*destroy)(void *st);
	void *(*pool_init)(struct lb *lb, struct lb_pool *p, void *st); /* NULL return = no memory */
	void (*pool_destroy)(void *pst);
	int (*pick)(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st);
	void (*on_acquire)(struct lb *lb, int ep, const struct lb_req *rq, void *st);
	void (*on_release)(struct lb *lb, int ep, void *st);
	void (*on_remove)(struct lb *lb, int ep, void *st);
	void (*stats)(const struct lb *lb, void *st, void (*f)(void *ctx, const char *name, int ep, double v), void *ctx);
};

/* ---- registry (policy.c) --------------------------------------------------- */

const struct lb_policy *policy_find(const char *name); /* by name or alias; NULL if unknown */
const struct lb_policy *policy_at(size_t i);           /* NULL past the end */
/* Writes "round-robin, random, least-load, prefix-hash, ..." to out (for
 * error messages and help); returns out. */
char *policy_names(char *out, size_t cap);
/* The union of every policy's parameters, deduplicated by name; index i is
 * the slot of lb_opts.v. NULL past the end. */
const struct lb_param *policy_param_at(size_t i);
int policy_param_index(const char *name); /* -1 if unknown */

/* ---- what policies may use of lb.c (internal: lb__ prefix) ----------------- */

struct pindex;

size_t lb__pool_size(const struct lb_pool *p);
int lb__pool_member(const struct lb_pool *p, size_t i);
uint64_t lb__pool_total(const struct lb_pool *p);      /* requests in flight on the pool */
size_t lb__pool_healthy(const struct lb_pool *p);      /* live healthy members */
void *lb__pool_state(const struct lb_pool *p);         /* what pool_init returned */
size_t *lb__pool_cursor(struct lb_pool *p);            /* a per-pool counter (round robin) */
const struct lb_endpoint *lb__ep(const struct lb *lb, int ep);
/* 1 if ep may take rq: live, healthy when need_healthy, not already tried. */
int lb__eligible(const struct lb *lb, int ep, const struct lb_req *rq, int need_healthy);
uint64_t lb__rand(struct lb *lb);
double lb__param(const struct lb *lb, const char *name);
/* The chosen endpoint's predicted cache hit (a pick says it before returning):
 * cached = tokens (or bytes) of the prompt it holds, uncached = tokens still to
 * prefill there (counted in its prefill queue until the first token). */
void lb__predict(struct lb *lb, long cached, uint64_t uncached);
void *lb__state(const struct lb *lb);
/* In on_acquire: 1 if rq is the request the last lb_pick chose for, with no
 * other pick or acquire in between (a policy may reuse what that pick
 * computed, e.g. the block hashes); 0 for an acquire without a pick. */
int lb__just_picked(const struct lb *lb, const struct lb_req *rq);
/* The prefix-index policies' figures (their .stats): ix's entries, distinct
 * blocks, bytes, evictions, expirations, and each endpoint's entries. */
void lb__index_stats(const struct lb *lb, const struct pindex *ix,
		     void (*f)(void *ctx, const char *name, int ep, double v), void *ctx);
/* The request's chained block hashes (pindex_hash_*, seeded with the model):
 * blocks of block_tokens ids when it carries ids, else of block_chars bytes of
 * its text. At most max; *tokens = 1 when hashed from ids. */
size_t lb__hash_blocks(const struct lb_req *rq, size_t block_tokens, size_t block_chars, uint64_t *h, size_t max,
		       int *tokens);
/* The precise index (KV events; lb_set_kvindex), the same for every policy:
 * for each backend whose events are fresh, visit(ctx, ep, blocks) with the
 * leading blocks of h (our chain hashes, lb__hash_blocks over token ids) it
 * holds, 0 included; the others are not visited: use your own view for them.
 * Returns the number visited (0 without an index). Only for token blocks of
 * lb__kv_block_tokens() ids (0 without an index). */
size_t lb__kv_match(struct lb *lb, const uint64_t *h, size_t n, uint64_t now,
		    void (*visit)(void *ctx, int ep, size_t blocks), void *ctx);
/* A request's blocks were placed on ep (counted as pending until the events
 * confirm them): call it from on_acquire. */
void lb__kv_routed(struct lb *lb, int ep, const uint64_t *h, size_t n, uint64_t now);
size_t lb__kv_block_tokens(const struct lb *lb);
/* The eligible member with the fewest requests in flight, ties broken
 * uniformly at random; -1 if none (shared by several policies). */
int lb__least_loaded(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy);

#endif
