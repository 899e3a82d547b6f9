/* lb.h: routing state and policies of the router, pure (no I/O, no clock, no
 * global RNG), shared by `prefixlb route` and the lab's simulator.
 *
 * Endpoints are slots with an in-flight counter. The counter goes up in
 * lb_acquire and down in lb_release, and a struct lb_lease makes the release
 * idempotent, so every exit path of the proxy can release without counting
 * twice. A removed endpoint keeps its slot until its in-flight count drains to
 * zero, so a lease never points at a reused slot.
 *
 * Endpoints serve models; each model has a pool with its own hash ring.
 * Policies (lb_policy): round-robin, random (what a Kubernetes Service does),
 * least-load (fewest in flight, random tie-break), prefix-hash (KubeAI's
 * CHWBL: consistent hashing with bounded loads, Mirrokni et al. 2016):
 *   key  = XXH64(first prefix_chars code points of the prompt / first user message)
 *   ring = `replication` virtual nodes per endpoint, node i = XXH64(name + decimal i)
 *   walk clockwise from the key; take the first endpoint with
 *   load <= load_factor * (total + 1) / n   (total 0: always). O(log(n R)) to find
 *   the start; the walk is short because the bound admits most endpoints. */
#ifndef PREFIXLB_LB_H
#define PREFIXLB_LB_H

#include <stddef.h>
#include <stdint.h>

enum lb_policy { LB_ROUND_ROBIN, LB_RANDOM, LB_LEAST_LOAD, LB_PREFIX_HASH };

struct lb_opts {
	enum lb_policy policy;
	double load_factor;  /* c, > 1; KubeAI 1.25 */
	int replication;     /* virtual nodes per endpoint; KubeAI 256 */
	size_t prefix_chars; /* code points hashed; KubeAI 100 */
	uint64_t seed;       /* RNG seed (random, tie-breaks) */
};

struct lb_endpoint {
	char name[160];
	uint32_t in_flight;
	int healthy;
	int removed;
	uint64_t requests;
	uint32_t gen;
};

struct lb;

struct lb_lease {
	struct lb *lb;
	int ep;
	uint32_t gen;
	int active;
};

#define LB_MAX_TRIED 16

int lb_policy_parse(const char *s, enum lb_policy *p);
const char *lb_policy_name(enum lb_policy p);
void lb_opts_default(struct lb_opts *o);

struct lb *lb_new(const struct lb_opts *o);
void lb_free(struct lb *lb);
const struct lb_opts *lb_get_opts(const struct lb *lb);
/* Policy and parameters may change at run time (SIGHUP); rings are rebuilt. */
int lb_set_opts(struct lb *lb, const struct lb_opts *o);

/* Adds an endpoint serving the given models (n_models 0: serves every model
 * and the router's default pool). Returns its index, or the existing index if
 * the name is already present (its models are then replaced). -1 on error. */
int lb_add(struct lb *lb, const char *name, const char *const *models, size_t n_models);
/* Marks an endpoint removed: no new requests; the slot is freed when its last
 * lease is released. */
void lb_remove(struct lb *lb, int ep);
int lb_find(const struct lb *lb, const char *name);
void lb_set_healthy(struct lb *lb, int ep, int healthy);
size_t lb_count(const struct lb *lb); /* slots, including removed ones still draining */
const struct lb_endpoint *lb_endpoint(const struct lb *lb, int ep); /* NULL for a free slot */
/* Models served by some live endpoint: calls f for each distinct name. */
void lb_models(const struct lb *lb, void (*f)(void *ctx, const char *model), void *ctx);
/* 1 if some live endpoint serves model (NULL: any). */
int lb_has_model(const struct lb *lb, const char *model);

/* The 64-bit routing key of a prompt text (XXH64 of its first prefix_chars
 * code points, seed 0). */
uint64_t lb_key(const struct lb *lb, const char *text, size_t len);
/* Chooses an endpoint for model (NULL: any) not in tried[0..n_tried), among
 * healthy live endpoints (falling back to unhealthy ones only if none is
 * healthy). Returns the index or -1. Does not change any counter. */
int lb_pick(struct lb *lb, const char *model, uint64_t key, const int *tried, size_t n_tried);
/* Counts a request on ep. */
void lb_acquire(struct lb *lb, int ep, struct lb_lease *l);
/* Ends it; safe to call more than once (later calls do nothing). */
void lb_release(struct lb_lease *l);
/* Sum of in-flight over all endpoints (the leak check of the tests). */
uint64_t lb_total_in_flight(const struct lb *lb);

#endif
