/* admit.h: admission control in front of dispatch, pure (no I/O, no clock:
 * time comes in as arguments). The live router (src/net/admission.c) and the
 * lab's simulator (sim.c) call the same code.
 *
 * A request that arrives when every eligible backend of its model's pool is
 * saturated waits in a bounded queue of that model; it is dispatched the
 * moment a backend frees (the caller asks admit_next after a lease release or
 * a first token), or rejected (the caller answers 429 with Retry-After) when
 * the queue is full, when it has waited past its budget, or when it can no
 * longer start in time to meet its TTFT target. Under a load that saturates
 * nothing, every request goes straight through (ADMIT_GO): nothing changes.
 *
 * Saturation, per backend, any configured signal over its threshold (Dynamo's
 * "every eligible worker exceeds at least one configured busy threshold"):
 *   max-in-flight  requests in flight (HAProxy's maxconn; llm-d's concurrency
 *                  detector, maxConcurrency);
 *   max-waiting    requests with no token back yet, or the engine's own
 *                  waiting count when fresh (llm-d's utilization detector,
 *                  queueDepthThreshold 5);
 *   max-tokens     prompt + expected output tokens in flight (llm-d's token
 *                  mode; Dynamo's busy threshold on active prefill tokens);
 *   max-ttft-ms    the predicted wait before a new request's prefill starts,
 *                  from the lowest-ttft policy's cost model (lb.h,
 *                  lb_ttft_ms; issue 15: "saturation = every eligible
 *                  backend's predicted TTFT above the target").
 * With the filter on (default), a pick passes over saturated backends while
 * another can take the request (llm-d's detector is also a scheduling filter
 * with the same fail-open rule), so a threshold is a real bound per backend.
 *
 * Order: strict priority bands (-8..8, higher first: llm-d's priority bands,
 * Dynamo's strict_priority tiers, SMG's classes); within a band, fair share
 * between tenants by start-time fair queueing (Goyal, Vin, Cheng, SIGCOMM
 * 1996) over a fixed table of tenant buckets (Linux sfq's stochastic
 * fairness: two tenants may share a bucket); within a tenant, arrival order
 * (FCFS, the default of llm-d and Dynamo) or earliest deadline first (edf).
 * A tenant's turn costs one (a request; llm-d's optional round robin between flows),
 * or with fair-tokens its prompt + expected output tokens (Dynamo's deficit
 * round robin counts uncached tokens). Turns are the default, measured
 * (bench/overload.sh, two tenants at 10:1, ttft-target-ms=1500): prompt
 * tokens count the cached part too, and a target-deadline queue refuses the
 * flood's long prompts first, so the flood's admitted requests were ~3x
 * shorter than the quiet tenant's and by tokens the quiet one got ~1 turn in
 * 4 and backlogged (quiet p99 x1.79 of alone by tokens, x1.59 by turns). SFQ, lazily: each
 * tenant bucket has a virtual finish F; when it becomes backlogged its start
 * S = max(F, V); the band serves the backlogged bucket of least S (ties: the
 * older head), sets V = S and F = S + cost, and the bucket's next head starts
 * at F. A tenant that floods gets starts far ahead of V; a quiet one starts at
 * V and is served next. Cost: O(backlogged tenants of the band) per dispatch.
 *
 * Deadlines: arrival + the request's wait budget (wait-ms, or lower per
 * request), and for a request with a TTFT target, arrival + target - its own
 * predicted prefill (it could not make the target if it started later). All
 * queued requests are in one heap by deadline: admit_next_deadline says when
 * to call admit_expire. Durations are in the engines' time (the cost model's
 * milliseconds); `scale` converts them to the caller's clock for
 * time-compressed fleets (prefixlb engine --time-scale).
 *
 * Peers (read for their facts; none of their code is here):
 *   llm-d/llm-d-router@ebab687 pkg/epp/flowcontrol: flow control off by default
 *   (a feature gate); per-band queues with maxRequests 5000 and a TTL of 60 s
 *   (controller/config.go); a TTL eviction answers 429, no endpoints 503
 *   (requestcontrol/admission.go); ordering fcfs, edf, SLO deadline; fairness
 *   global-strict (default) or round robin between flows; the fairness id from
 *   the header x-llm-d-inference-fairness-id (metadata/consts.go).
 *   ai-dynamo/dynamo@00067c3 lib/kv-router/src/scheduling/queue.rs: "when all
 *   workers exceed threshold_frac utilisation the request is parked in pending;
 *   when capacity frees up (update()), pending requests are scheduled in
 *   priority order"; policy.rs@01690d4: fcfs (priority_jump - arrival), lcfs,
 *   wspt ((1 + priority_jump) / uncached tokens), a strict priority tier first.
 *   lightseekorg/smg@73da68c model_gateway/src/middleware/scheduler: header
 *   x-smg-priority, classes bulk/default/interactive/system with queue sizes
 *   1024/512/256/64 and queue timeouts 300/60/30/30 s; queue full -> 429,
 *   preemption -> 503 with Retry-After: 1.
 *
 * Memory: entries are the caller's (struct admit_entry inside its request);
 * admit holds one queue per model, a bucket table per used priority band of it
 * (tenant-buckets x 48 bytes, made on first use) and the deadline heap. */
#ifndef PREFIXLB_ADMIT_H
#define PREFIXLB_ADMIT_H

#include <stddef.h>
#include <stdint.h>

struct lb;

#define ADMIT_PRIO_MAX 8
#define ADMIT_BANDS (2 * ADMIT_PRIO_MAX + 1)

/* The knobs; a spec "off" or "on[:KEY=VALUE]..." sets them (admit_cfg_parse),
 * the same for `prefixlb route --admission` and `prefixlb lab --admission`. */
struct admit_cfg {
	int on;
	double queue;         /* most requests waiting per model (0: none, reject at once) */
	double wait_ms;       /* a request's longest wait (its budget); a header may lower it */
	double ttft_target_ms; /* a request's TTFT target when it names none (0: none) */
	double max_in_flight; /* saturation thresholds per backend, 0: not used */
	double max_waiting;
	double max_tokens;
	double max_ttft_ms;
	double filter;        /* picks pass over backends at filter x a threshold while another can serve (0: never) */
	double fair;          /* 1: fair share between tenants in a band; 0: one FCFS line */
	double fair_tokens;   /* 1: fair share by prompt + expected output tokens; 0: by requests */
	double edf;           /* 1: within a tenant, earliest deadline first; 0: FCFS */
	double buckets;       /* tenant buckets per band */
	double retry_after_s; /* Retry-After of a 429 */
	double scale;         /* engine seconds per clock second (time-compressed fleets) */
};

/* A knob of the spec: name, default, range, help (docs/route.md lists them). */
struct admit_param {
	const char *name;
	double dflt, min, max;
	const char *help;
};
const struct admit_param *admit_param_at(size_t i); /* NULL past the end */

void admit_cfg_default(struct admit_cfg *c); /* off, every knob at its default */
/* "off", "on", or "on:KEY=VALUE:..." (KEY from admit_param_at). Naming a
 * saturation threshold turns the others off unless also named; "on" alone
 * uses max-ttft-ms. Returns 0, or -1 with a message in err. */
int admit_cfg_parse(struct admit_cfg *c, const char *spec, char *err, size_t errlen);
/* The spec back as text (for logs and lab labels). */
void admit_cfg_str(const struct admit_cfg *c, char *out, size_t cap);

enum admit_verdict { ADMIT_GO, ADMIT_QUEUED, ADMIT_REJECT };

/* How a request left admission (metrics, access log). */
enum admit_outcome {
	ADMIT_NONE,      /* not through admission (off, retries) */
	ADMIT_DIRECT,    /* dispatched at once */
	ADMIT_WAITED,    /* dispatched after waiting */
	ADMIT_FULL,      /* rejected: the queue was full */
	ADMIT_EXPIRED,   /* rejected: waited past its budget */
	ADMIT_LATE,      /* rejected: could no longer meet its TTFT target */
	ADMIT_CANCELLED, /* the client left while it waited */
	ADMIT_N_OUTCOMES
};
/* "none", "direct", "queued", "rejected_full", "rejected_wait",
 * "rejected_ttft", "cancelled". */
const char *admit_outcome_name(int outcome);

struct aflow;

/* One request in admission: part of the caller's request. Fill the first
 * group, then admit_offer; admit owns the rest. */
struct admit_entry {
	const char *model;      /* its pool (NULL: the default); borrowed while queued */
	uint64_t tenant;        /* admit_tenant_hash() of its tenant (0: anonymous) */
	int priority;           /* -ADMIT_PRIO_MAX..ADMIT_PRIO_MAX (clamped), higher first */
	uint32_t prompt_tokens; /* known or estimated */
	uint32_t max_tokens;    /* expected output */
	double wait_ms;         /* its own budget, <= the configured one (< 0: the configured one) */
	double ttft_target_ms;  /* 0: the configured one (ttft-target-ms), if any */
	uint64_t t0;            /* arrival, on the caller's clock (ns) */
	void *ctx;              /* the caller's (its request), untouched */
	/* admit's */
	int outcome;            /* enum admit_outcome */
	int queued;
	int by_target;          /* its deadline is the TTFT target's, not the budget's */
	int refused;            /* displaced by a newcomer, waiting for admit_expire */
	uint64_t t_enq, t_out, deadline, seq;
	double cost;
	size_t heap_pos;
	struct aflow *flow;
	struct admit_entry *prev, *next;
};

struct admit_stats {
	uint64_t outcomes[ADMIT_N_OUTCOMES];
	uint64_t queued;        /* waiting now, all models */
	double wait_s_total;    /* seconds waited by those that left the queue */
};

struct admit;

/* A new admission state for the routing state lb (kept, not owned). With the
 * filter on it installs itself as lb's skip rule (lb_set_skip). */
struct admit *admit_new(const struct admit_cfg *c, struct lb *lb);
void admit_free(struct admit *a);
/* New knobs (SIGHUP): queued requests stay (a smaller queue does not evict);
 * the tenant bucket count of queues already made is kept. Turned off, the
 * queue drains through admit_next regardless of saturation. */
void admit_set_cfg(struct admit *a, const struct admit_cfg *c);
const struct admit_cfg *admit_get_cfg(const struct admit *a);

/* A new request. GO: dispatch it now (outcome DIRECT, or NONE when admission
 * is off); QUEUED: it waits (the caller calls admit_expire, since it may
 * have displaced another, then admit_next, since the pool may have room for
 * a request at the head of a non-empty queue); REJECT: answer 429 (outcome
 * FULL, or LATE when its target is out of reach already). A full queue
 * refuses the newcomer unless a lower priority band has requests, or another
 * tenant of its band has at least two more waiting: then that band's (that
 * tenant's) newest request is refused instead. */
int admit_offer(struct admit *a, struct admit_entry *e, uint64_t now);
/* The next queued request to dispatch now, taken out of its queue (outcome
 * WAITED), or NULL when every non-empty queue's pool is saturated. Call it in
 * a loop (dispatching each) whenever a backend may have freed: a lease
 * released, a first token, engine signals or health changed. */
struct admit_entry *admit_next(struct admit *a, uint64_t now);
/* A queued request whose deadline has passed (outcome EXPIRED or LATE), or
 * one refused to make room for a newcomer (outcome FULL), taken out, or NULL.
 * Call it in a loop at admit_next_deadline() and after admit_offer. */
struct admit_entry *admit_expire(struct admit *a, uint64_t now);
/* The earliest deadline of a queued request (UINT64_MAX: none). */
uint64_t admit_next_deadline(const struct admit *a);
/* The client left: e leaves its queue (outcome CANCELLED); nothing if it was
 * not queued. */
void admit_cancel(struct admit *a, struct admit_entry *e, uint64_t now);

/* 1 when the pool that serves model has members and every eligible one (the
 * healthy ones, or all when none is) is saturated. */
int admit_saturated(struct admit *a, const char *model, uint64_t now);
/* 1 when backend ep is over a configured threshold. */
int admit_ep_saturated(struct admit *a, int ep, uint64_t now);
/* Requests waiting for model (NULL: the default pool's), or in all when all. */
size_t admit_queued(const struct admit *a, const char *model, int all);
/* Calls f for each model that has a queue (model "" is the default pool). */
void admit_each_queue(const struct admit *a, void (*f)(void *ctx, const char *model, size_t waiting), void *ctx);
void admit_get_stats(const struct admit *a, struct admit_stats *s);
/* Seconds for a rejection's Retry-After (at least 1). */
unsigned admit_retry_after_s(const struct admit *a);

/* ---- request headers (parsing only; the caller reads the headers) ---------- */
/* x-prefixlb-priority: an integer; clamped to +-ADMIT_PRIO_MAX. -1 if not one. */
int admit_parse_priority(const char *s, size_t n, int *out);
/* x-prefixlb-ttft-target-ms, x-prefixlb-max-wait-ms: a number of ms >= 0. -1 if not. */
int admit_parse_ms(const char *s, size_t n, double *out);
/* A tenant key (x-prefixlb-tenant, or the Authorization header's value) as
 * the 64-bit hash admission keys tenants by; never 0 for a non-empty key. */
uint64_t admit_tenant_hash(const char *s, size_t n);

#endif
