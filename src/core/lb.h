/* lb.h: routing state of the router, pure (no I/O, no clock, no global RNG),
 * shared by `prefixlb route` and the lab's simulator.
 *
 * This module owns what every policy needs: endpoints, per-model pools,
 * in-flight accounting and leases. The choice itself is a policy's (policy.h:
 * an ops table, one file per policy, a registry looked up by name, in the
 * spirit of HAProxy's struct lb_ops).
 *
 * Endpoints are slots with in-flight counters (requests and tokens). Counters
 * go up in lb_acquire and down in lb_release, and a struct lb_lease makes the
 * release idempotent, so every exit path of the proxy can release without
 * counting twice. A removed endpoint keeps its slot until its in-flight count
 * drains to zero, so a lease never points at a reused slot.
 *
 * Endpoints serve models; each model has a pool (derived data, rebuilt lazily
 * after a change of endpoints or models). A request is routed within the pool
 * of its model; endpoints without a model list serve every model. */
#ifndef PREFIXLB_LB_H
#define PREFIXLB_LB_H

#include <stddef.h>
#include <stdint.h>

struct lb_policy;

/* Every parameter any policy takes, by name (policy.h lists them); values
 * not set keep the registry's default. */
#define LB_MAX_PARAMS 48

struct lb_opts {
	const struct lb_policy *policy;
	uint64_t seed; /* RNG seed (random picks, tie-breaks) */
	double v[LB_MAX_PARAMS]; /* indexed like policy_param_at() */
};

/* What an endpoint's engine says of its load (vLLM's /metrics, or the
 * endpoint-load-metrics header of its answers), when someone reads it. */
struct lb_signals {
	int valid;
	uint64_t at;     /* when it was read (the caller's time line, ns) */
	double waiting;  /* vllm:num_requests_waiting */
	double running;  /* vllm:num_requests_running */
	double kv_usage; /* vllm:kv_cache_usage_perc, 0..1 */
	uint64_t prefilled0, ended0; /* the endpoint's counters when it was read (lb_set_signals) */
};

struct lb_endpoint {
	char name[160];
	uint32_t in_flight;        /* requests */
	uint64_t in_flight_tokens; /* prompt + expected output tokens of those requests */
	uint32_t n_prefill;        /* in flight, no token back yet (queued or in prefill) */
	uint64_t prefill_tokens;   /* their prompt tokens the policy predicted uncached */
	struct lb_signals sig;
	int healthy;
	int removed;
	uint64_t requests;
	uint64_t prefilled; /* requests that left prefill here (first token, or ended before it) */
	uint64_t ended;     /* requests that ended here */
	uint32_t gen;
};

/* The engine's reported counts brought up to now: less the requests this
 * router has seen leave the queue (or end) since the reading, which the
 * engine counted then. (Requests sent since are in the router's own counts.) */
double lb_signal_waiting(const struct lb_endpoint *e);
double lb_signal_running(const struct lb_endpoint *e);

/* What a policy may look at to place one request. Only model and key are
 * needed by the classic policies; the prefix-index policies read the text or
 * the token ids. */
struct lb_req {
	const char *model;         /* NULL: the pool of every endpoint */
	uint64_t key;              /* lb_key() of the routing text (KubeAI's CHWBL key) */
	const char *text;          /* the prompt as the engine sees it (or NULL) */
	size_t text_len;
	const uint32_t *ids;       /* its token ids, when the caller has them (or NULL) */
	size_t n_ids;
	uint32_t prompt_tokens;    /* estimate when ids are absent */
	uint32_t max_tokens;       /* expected output */
	uint64_t now;              /* ns on the caller's time line (real or virtual) */
	const int *tried;          /* endpoints not to use (retries) */
	size_t n_tried;
};

struct lb;

struct lb_lease {
	struct lb *lb;
	int ep;
	uint32_t gen;
	int active;
	uint64_t tokens;  /* counted in in_flight_tokens */
	uint64_t prefill; /* counted in prefill_tokens until the first token */
	int decoding;     /* the first token came back */
};

#define LB_MAX_TRIED 16

/* The default: prefix-hash with the registry's parameter defaults. */
void lb_opts_default(struct lb_opts *o);
/* Sets the policy from a spec "NAME[:PARAM=VALUE]..." (a name or an alias
 * from the registry). Returns 0, or -1 with a message in err naming the
 * problem (and the valid names). */
int lb_opts_policy(struct lb_opts *o, const char *spec, char *err, size_t errlen);
/* Sets one parameter by name; -1 unknown name, -2 out of range. */
int lb_opts_set(struct lb_opts *o, const char *name, double v);
double lb_opts_get(const struct lb_opts *o, const char *name);

struct lb *lb_new(const struct lb_opts *o);
void lb_free(struct lb *lb);
const struct lb_opts *lb_get_opts(const struct lb *lb);
const char *lb_policy_label(const struct lb *lb); /* the policy's name */
unsigned lb_policy_needs(const struct lb *lb);     /* LB_NEEDS_* (policy.h) */
/* Policy and parameters may change at run time (SIGHUP); policy state is
 * rebuilt. Returns 0 or -1 (bad options: nothing changed). */
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

/* The 64-bit routing key of a prompt text (XXH64 of its first prefix-chars
 * code points, seed 0): KubeAI's CHWBL key. */
uint64_t lb_key(const struct lb *lb, const char *text, size_t len);
/* Chooses an endpoint for the request among healthy live endpoints of its
 * model's pool that are not in rq->tried (falling back to unhealthy ones only
 * if none is healthy). Returns the index or -1. Changes no counter. */
int lb_pick(struct lb *lb, const struct lb_req *rq);
/* Counts a request on ep (the policy sees it: a prefix index records it). */
void lb_acquire(struct lb *lb, int ep, const struct lb_req *rq, struct lb_lease *l);
/* The request's first token came back: it left the prefill queue. Once. */
void lb_first_token(struct lb_lease *l);
/* Ends it; safe to call more than once (later calls do nothing). */
void lb_release(struct lb_lease *l);
/* What the last lb_pick predicted of the chosen endpoint's cache: prompt
 * tokens (or bytes, for character-block policies) it holds, -1 when the
 * policy has no index. Read it right after lb_pick. */
long lb_predicted_cached(const struct lb *lb);
void lb_set_signals(struct lb *lb, int ep, const struct lb_signals *s);
/* A policy's own figures (index size, evictions...) for /metrics and the lab:
 * calls f for each (name, endpoint or -1 for the whole policy, value). */
void lb_policy_stats(const struct lb *lb, void (*f)(void *ctx, const char *name, int ep, double v), void *ctx);
/* The precise prefix index (core/kvindex.h, fed by the engines' KV events),
 * borrowed for the lb's life; NULL: none. Policies that match prompts use it
 * for the backends it calls fresh (policy.h, lb__kv_match); lb counts
 * requests into it (staleness) and forgets a backend whose slot is freed. */
struct kvindex;
void lb_set_kvindex(struct lb *lb, struct kvindex *kx);
struct kvindex *lb_get_kvindex(const struct lb *lb);
/* The i-th model an endpoint serves (NULL past the end, or none pinned). */
const char *lb_endpoint_model(const struct lb *lb, int ep, size_t i);
/* Sum of in-flight over all endpoints (the leak check of the tests). */
uint64_t lb_total_in_flight(const struct lb *lb);

/* ---- for admission control (admit.h) ---------------------------------------- */

/* Calls f for each live member of the pool a request for model would be
 * routed in (lb_pick's pool); returns how many there are. */
size_t lb_pool_each(struct lb *lb, const char *model, void (*f)(void *ctx, int ep, const struct lb_endpoint *e),
		    void *ctx);
/* Backends a pick passes over while another can take the request (admission
 * control's saturated ones): skip(ctx, ep, now) != 0. When it leaves nobody,
 * lb_pick tries again without it (fail open). NULL: none. */
void lb_set_skip(struct lb *lb, int (*skip)(void *ctx, int ep, uint64_t now), void *ctx);

/* ---- predicted time to first token: the lowest-ttft policy's cost model ------
 * (policy_lowest_ttft.c), for the policy's pick and for admission control's
 * saturation signal, so that both read one model. */
struct lb_ttft_model {
	double t_tok;        /* prefill-ms-per-token */
	double t_dec;        /* decode-ms-per-request */
	double t_wait;       /* wait-ms-per-request (lowest-ttft's cost; not in lb_ttft_ms) */
	uint64_t max_age;    /* signals-max-age-ms, in ns: older engine signals are ignored */
	double mean_prompt;  /* tokens per request the engine reports waiting */
};
/* The model with lb's parameter values (whatever its policy); mean_prompt 0. */
void lb_ttft_model(const struct lb *lb, struct lb_ttft_model *m);
/* Predicted TTFT (ms) on e of a request with `uncached` prompt tokens to
 * prefill, at now: t_tok x (queue + uncached) + t_dec x decoding, where queue
 * = the uncached tokens of e's requests with no token back yet (at least the
 * engine's waiting x mean_prompt when its signals are fresh) and decoding =
 * e's requests past their first token (at least the engine's running count);
 * the engine's counts brought up to now (lb_signal_waiting,
 * lb_signal_running). The prefill and decode times only: lowest-ttft adds its
 * per-waiting-request term (t_wait, a balance weight fitted on the arena) to
 * this in its cost. uncached 0: the wait before a new request's own prefill. */
double lb_ttft_ms(const struct lb_ttft_model *m, const struct lb_endpoint *e, double uncached, uint64_t now);
/* e's requests with no token back yet: the router's count, or the engine's
 * (brought up to now, lb_signal_waiting) when fresh and larger. */
double lb_waiting_now(const struct lb_ttft_model *m, const struct lb_endpoint *e, uint64_t now);

#endif
