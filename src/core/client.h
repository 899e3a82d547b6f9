/* client.h: the benchmark client as a pure state machine, driven by time
 * (the pattern of engine.h): `prefixlb bench` drives it with libuv timers and
 * real HTTP, the lab's simulator drives it in virtual time. What they measure
 * agrees because it is the same code, not two copies kept in step.
 *
 * It does what vLLM's benchmark_serving.py does (docs/seed.md section 2),
 * plus the seed client's emulation and the closed-loop chat mode:
 *   arrivals   after each release, wait Gamma(burstiness, 1/(rate*burstiness))
 *              (at least dispatch_floor_ms), on an absolute schedule; rate inf
 *              (or <= 0) without a floor releases everything at once;
 *   semaphore  max_concurrency requests in flight; a request's clock starts
 *              when it gets through (client-side queueing is not in TTFT);
 *   lag        a request is sent lag_ms after its clock starts (the seed's
 *              saturated Python client: it counts in TTFT and latency);
 *   timeout    a request still running timeout_s after its clock started is
 *              abandoned (the driver cancels it; counted apart, not a failure);
 *   recording  TTFT at the first choices chunk, one ITL sample per later
 *              chunk, latency at the last chunk, usage's completion and cached
 *              tokens.
 * Workloads:
 *   LIST       a wl_plan (fork: the seed's, or single), completions text, or
 *              one user message as chat;
 *   SESSIONS   one chat session per conversation: each turn sends the whole
 *              history, the model's own earlier answers included, as chat
 *              messages; the next turn goes think_s after the answer ended.
 *              Rate inf without a floor is a closed loop: max_concurrency
 *              client threads, each taking the next conversation when its
 *              current one ends. Paced, sessions open at the arrival times
 *              and max_concurrency is the request semaphore.
 * Output control: max_output_tokens caps every max_tokens (answers stop at
 * min(cap, reference length)); ignore_eos is sent as the request field.
 *
 * Time is nanoseconds on the driver's time line. Driver protocol: call
 * client_advance(now) whenever now >= client_next_event(); it calls
 * ops.send for each request to put on the wire and ops.cancel for each to
 * abandon. Report what comes back with client_on_chunk / client_on_usage /
 * client_on_end. Calls may re-enter: client_on_end can start the next request
 * (send) at once. Memory: O(requests) for the results (one record each, ITL
 * samples), O(in flight) for requests, O(sessions open) for histories. */
#ifndef PREFIXLB_CLIENT_H
#define PREFIXLB_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "chat.h"
#include "stats.h"
#include "tokenizer.h"
#include "workload.h"

struct prompt_cache;

enum client_mode { CLIENT_LIST, CLIENT_SESSIONS };

struct client_cfg {
	enum client_mode mode;
	const struct wl_plan *plan;     /* LIST */
	const struct wl_dataset *ds;    /* SESSIONS */
	size_t max_sessions;            /* SESSIONS: the first N conversations with a (user, answer) pair */
	size_t max_requests;            /* SESSIONS: most turns in all (0: no limit); LIST: plan->num */
	int chat;                       /* LIST: send one user message as chat (SESSIONS: always chat) */
	const struct tok *tok;          /* counts tokens (answers' reference length, sessions' prompts) */
	struct prompt_cache *pc;        /* chat prompts' ids (borrowed; one per thread) */
	enum chat_template tpl;         /* the served model's template, to count chat prompts */
	double request_rate;            /* req/s (SESSIONS: sessions/s); <= 0 or inf: no pacing */
	double burstiness;              /* Gamma shape; 1 = Poisson */
	double dispatch_floor_ms;
	double lag_ms;
	long max_concurrency;           /* <= 0: unlimited */
	double think_s;
	double timeout_s;               /* 0: none */
	long max_output_tokens;         /* 0: no cap */
	int ignore_eos;
	int keep_text;                  /* keep every answer's text (bench --save-result) */
	uint64_t seed;
	const char *model;              /* "model" of the bodies */
	const char *tenants;            /* "NAME:WEIGHT,..." (or +) (NULL: none): each request (SESSIONS: each
					   session) belongs to one tenant, drawn in proportion to the weights
					   from a stream of its own (the arrivals do not change) */
};

#define CLIENT_MAX_TENANTS 16

/* A request while it is alive (from release to its end). */
struct client_req {
	size_t idx;          /* its record: client_rec(c, idx) */
	size_t item;         /* LIST: index into plan->items */
	size_t session;      /* SESSIONS: which; else SIZE_MAX */
	/* what to send: completions text, or chat messages (valid while alive) */
	const char *prompt;
	size_t prompt_len;
	const struct chat_msg *msgs;
	size_t n_msgs;
	int chat;
	uint32_t max_tokens;
	const struct tok_ids *ids; /* chat: the prompt's ids as the engine renders them (SESSIONS), or NULL */
	/* timing, ns */
	uint64_t t_queued, t0, t_last;
	uint32_t chunks;
	double ttft;         /* s, set at the first chunk */
	float *itl;          /* the gaps so far (handed to the record at the end) */
	size_t n_itl, cap_itl;
	long usage_out, cached;
	long predicted;      /* the router's predicted cached tokens, -1: none */
	struct buf text;     /* the answer so far (SESSIONS, keep_text) */
	struct tok_ids out;  /* the answer's ids when the driver has them (the simulator) */
	struct chat_msg one; /* LIST as chat: the single user message */
	int state;
	const char *tenant;  /* its tenant's name (cfg.tenants), or NULL: the driver says it (a header) */
	void *drv;           /* the driver's own per-request data */
	struct client_req *next_free;
};

/* One finished (or never sent) request, for the reports. */
struct client_rec {
	struct req_result r; /* r.itl is owned by the client */
	uint64_t t0;         /* clock start */
	size_t conv, turn;
	uint16_t backend;    /* index into client_backend_name(), 0xffff: none */
	uint16_t reason;     /* index into client_reason() when failed, 0xffff: none */
	uint8_t started, sent, aborted, timed_out;
	uint8_t rejected;    /* answered 429 (a router shedding load): failed, and counted apart */
	uint8_t tenant;      /* index into client_tenant_name(), 0xff: none */
	char *text;          /* keep_text: the answer (owned) */
};

struct client_ops {
	/* Put r on the wire now (r->drv is the driver's). */
	void (*send)(void *ctx, struct client_req *r, uint64_t now);
	/* Abandon r (timeout, interrupt): stop its I/O and free r->drv; no more
	 * client_on_* calls for it. The client finishes r after this returns. */
	void (*cancel)(void *ctx, struct client_req *r, uint64_t now);
};

struct client;

/* Checks a tenants spec "NAME:WEIGHT,..." (names of [A-Za-z0-9._-], at most
 * CLIENT_MAX_TENANTS, weights > 0). 0, or -1 with a message. */
int client_tenants_check(const char *spec, char *err, size_t errlen);
/* NULL on a bad configuration (no plan, no data set, bad tenants). */
struct client *client_new(const struct client_cfg *cfg, const struct client_ops *ops, void *ctx);
void client_free(struct client *c);
/* Sets the driver (ops may also be given later than client_new). */
void client_set_ops(struct client *c, const struct client_ops *ops, void *ctx);

/* When client_advance has something to do next (UINT64_MAX: nothing timed). */
uint64_t client_next_event(const struct client *c);
/* Starts the clock at now on the first call; runs everything due. */
void client_advance(struct client *c, uint64_t now);

/* One choices chunk of r (text: its content; ids: its token ids, or NULL). */
void client_on_chunk(struct client *c, struct client_req *r, uint64_t now, const char *text, size_t len,
		     const uint32_t *ids, size_t n_ids);
/* usage: completion tokens and cached tokens (-1: not given). */
void client_on_usage(struct client *c, struct client_req *r, long completion_tokens, long cached_tokens);
/* The router's prediction of the prompt tokens its chosen backend holds
 * (x-prefixlb-predicted-cached; the lab's router says it directly). */
void client_on_predicted(struct client *c, struct client_req *r, long tokens);
/* Which backend served r (x-prefixlb-backend). */
void client_on_backend(struct client *c, struct client_req *r, const char *name, size_t len);
/* r ended at now: error NULL = success, CLIENT_ABORTED = the client left on
 * purpose (bench --abort-fraction; counted apart), else a short reason
 * ("HTTP 404", "connection refused") counted by kind; detail, when given, is
 * kept for the first of each reason (a server's error message). r is freed. */
void client_on_end(struct client *c, struct client_req *r, uint64_t now, const char *error, const char *detail);
extern const char CLIENT_ABORTED[];
/* The error of a request the server refused with 429 (load shedding): a
 * failed request, as in vLLM's report, also counted as rejected. A driver
 * may pass this or any "HTTP 429" reason. */
extern const char CLIENT_REJECTED[];

/* Stop: no more releases; every request alive is cancelled and counted as
 * failed with reason (e.g. "interrupted"). */
void client_interrupt(struct client *c, uint64_t now, const char *reason);
/* 1 when everything was released and nothing is alive. */
int client_done(const struct client *c);

/* The body of r: the JSON an OpenAI-compatible server is sent. */
int client_body(const struct client *c, const struct client_req *r, struct buf *out);
/* The routing text of r as KubeAI takes it (first user message, or prompt). */
const char *client_routing_text(const struct client_req *r, size_t *len);

/* ---- results --------------------------------------------------------------- */

size_t client_n_recs(const struct client *c);
const struct client_rec *client_rec(const struct client *c, size_t i);
/* vLLM's metrics over the requests sent and not abandoned on purpose or timed
 * out; duration from the first clock start to the last end unless given (> 0). */
int client_metrics(const struct client *c, double duration, const double *percentiles, size_t n_percentiles,
		   const struct goodput_slo *slo, struct bench_metrics *out);
struct client_stats {
	uint64_t t_first, t_last_release, t_end; /* first clock start, last clock start, last end */
	long dispatched, in_flight, done, failed, aborted, timed_out, sessions_done;
	long rejected;                           /* failed with 429 (among failed) */
	double sem_wait_s, sem_wait_max_s;       /* time spent waiting for max_concurrency */
};
void client_get_stats(const struct client *c, struct client_stats *st);
size_t client_n_reasons(const struct client *c);
const char *client_reason(const struct client *c, size_t i, long *count, const char **first_detail);
size_t client_n_backends(const struct client *c);
/* Tenants (cfg.tenants): how many, each one's name, and vLLM's metrics over
 * the requests of one (duration as client_metrics's). */
size_t client_n_tenants(const struct client *c);
const char *client_tenant_name(const struct client *c, size_t i);
int client_metrics_tenant(const struct client *c, size_t tenant, double duration, const double *percentiles,
			  size_t n_percentiles, const struct goodput_slo *slo, struct bench_metrics *out);
const char *client_backend_name(const struct client *c, size_t i, long *count);

#endif
