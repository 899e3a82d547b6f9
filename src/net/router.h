/* router.h: the state of `prefixlb route` shared by its parts:
 *   proxy.c    the request path: the router's own endpoints, dispatch, relay,
 *              retries, timeouts, the one exit finish(), access log, metrics
 *   health.c   active health checks, model discovery, ejection and re-admission
 *   resolve.c  backends from DNS names, re-resolved on a timer
 * Every request to a backend (proxied, health check, /metrics read) goes
 * through the one HTTP client (httpc.c), on the backend's connection pool.
 *   src/cmd/route.c  options, configuration file, reload, signals, drain
 * Backends live in the routing state (src/core/lb.h) as endpoints; struct
 * backend keeps the router's per-endpoint data, indexed like them. */
#ifndef PREFIXLB_ROUTER_H
#define PREFIXLB_ROUTER_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "../core/admit.h"
#include "../core/hist.h"
#include "../core/chat.h"
#include "../core/lb.h"
#include "../core/prompt.h"
#include "httpc.h"
#include "server.h"

#define ROUTER_MAX_CODES 16

struct code_count {
	int code;
	uint64_t n;
};

/* The knobs of the request path and the health checks (route's options). */
struct router_cfg {
	long retries;
	long connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms;
	long health_interval_ms, health_timeout_ms, unhealthy_threshold, healthy_threshold, passive_failures;
	long models_refresh_ms, max_msgs;
	const char *health_path;
	int no_backend_header;
	int health_always_ok; /* GET /health answers 200 even with no healthy backend (the old meaning) */
	long metrics_poll_ms;  /* read each backend's /metrics this often (0: never) */
	long keepalive, keepalive_timeout_ms; /* idle connections kept per backend, and how long */
	int orca;              /* ask for in-band load in every request: enum orca_format (0: off) */
};

/* Per lb slot; valid while lb_endpoint(ep) is non-NULL. */
struct backend {
	char *url;        /* base URL, no trailing slash (owned) */
	char *prefix;     /* its path ("" usually; owned), put before every target */
	struct httpc_pool *pool; /* its connections (owned) */
	int active;       /* slot in use by this table */
	int fixed_models; /* models given in the config: don't discover */
	int dns_idx;      /* -1: static; else index of its --backend-dns name */
	int mark;         /* reload and resolution bookkeeping */
	int hc_fail, hc_ok, passive_fail;
	int hc_busy;
	uint64_t models_at; /* loop time of the last /v1/models fetch, 0 = never */
	uint64_t ejections;
	char last_error[160]; /* why it was last ejected */
	int poll_busy;        /* a /metrics read in flight */
	/* the prefix index's prediction against what the engine reported (usage) */
	uint64_t predicted_tokens, realized_tokens, usage_prompt_tokens, usage_requests, predicted_requests;
	double abs_error_tokens;
	struct code_count codes[ROUTER_MAX_CODES];
};

struct router {
	uv_loop_t *loop;
	struct router_cfg cfg;
	struct lb *lb;
	struct httpc *up; /* the HTTP client: every backend's pool */
	struct http_server *srv;
	struct backend *be;
	size_t n_be;
	const char *const *dns; /* the --backend-dns names */
	size_t n_dns;
	uv_timer_t health_timer, dns_timer, poll_timer;
	/* the whole prompt for the policies that need it (LB_NEEDS_PROMPT) */
	const struct tok *tok;     /* NULL: character blocks */
	struct prompt_cache *pc;
	enum chat_template tpl;
	FILE *log;
	int draining;
	uint64_t in_flight;
	void (*on_idle)(struct router *rt); /* in_flight dropped to 0 while draining */
	struct kvsub *kv;                   /* KV event subscriber (kvsub.h), or NULL */
	/* metrics */
	struct hist ttfb, decision, total;
	uint64_t retries, client_gone, no_backend, timeouts, upstream_errors, requests;
	uint64_t pauses; /* times a stream's upstream was paused for a slow client */
	uint64_t resends; /* requests sent again after a kept connection turned out closed */
	long paused;     /* streams paused now */
	uint64_t orca_reports, orca_errors; /* in-band load headers read / unreadable */
	struct code_count local_codes[ROUTER_MAX_CODES]; /* answered by the router itself */
	/* admission control (admission.c; src/core/admit.c): NULL until router_admit_init */
	struct admit *adm;
	uv_timer_t adm_timer; /* the next deadline, a release to act on, or a periodic re-check */
	struct hist adm_wait; /* time spent in the queue, whatever the outcome */
	int adm_kicking;
};

void router_count_code(struct code_count *cc, int code);

/* proxy.c */
void router_init_metrics(struct router *rt);
/* The server's callbacks (struct http_server_cfg). */
void router_on_request(struct http_conn *c, const struct http_msg *m, const char *body, size_t len, void *ud);
void router_on_abort(struct http_conn *c, void *req_ctx, void *ud);
void router_on_drain(struct http_conn *c, void *req_ctx, void *ud);
void router_error_body(int status, const char *msg, struct buf *out, const char **ctype);

/* admission.c: the queue in front of dispatch. proxy.c calls offer once per
 * request (GO: dispatch now), poke whenever a backend may have freed (a lease
 * released, a first token), cancel in its one exit; the kick (on a zero timer,
 * never inside the caller's stack) hands requests back through
 * router_admitted / router_refused, which proxy.c defines. */
void router_admit_init(struct router *rt, const struct admit_cfg *c);
void router_admit_set(struct router *rt, const struct admit_cfg *c); /* SIGHUP */
void router_admit_close(struct router *rt); /* stops its timer (shutdown) */
void router_admit_free(struct router *rt);  /* after the loop ended */
/* The request's admission headers into e (x-prefixlb-priority, -tenant or the
 * Authorization header, -ttft-target-ms, -max-wait-ms): 0, or -1 with a
 * message for a 400. Nothing is read while admission is off. */
int router_admit_headers(const struct router *rt, const struct http_msg *m, struct admit_entry *e, char *err,
			 size_t errlen);
/* e filled (model, prompt and output estimates, t0); ctx is the request. */
int router_admit_offer(struct router *rt, struct admit_entry *e, void *ctx);
void router_admit_poke(struct router *rt);
void router_admit_cancel(struct router *rt, struct admit_entry *e);
void router_admit_metrics(struct router *rt, struct buf *b);
/* proxy.c: a queued request may go now / was refused (answer 429 and finish). */
void router_admitted(void *req);
void router_refused(void *req);

/* health.c */
/* Adds (or refreshes) a backend from its URL. models: pinned models (n 0:
 * discover them). Returns its index or -1 (with a message) on a bad URL. */
int router_add_backend(struct router *rt, const char *url, const char *const *models, size_t n_models, int dns_idx);
void router_remove_backend(struct router *rt, int ep);
/* The static backends, "URL[ models=a,b]" each: checked (-1 with a message on
 * a bad URL), or applied (added; static ones no longer listed removed). */
int router_check_static(const char *const *specs, size_t n);
int router_apply_static(struct router *rt, const char *const *specs, size_t n);
struct backend *router_backend(struct router *rt, int ep);
/* "http://host:port/..." -> "host:port" (the endpoint's name). -1 if not http://. */
int router_url_hostport(const char *url, char *out, size_t n);
void router_start_check(struct router *rt, int ep);
void router_health_start(struct router *rt, uint64_t interval_ms);
void router_health_round(struct router *rt);
/* Takes a backend out (reason says why, for the log), or puts it back. */
void router_eject(struct router *rt, int ep, const char *reason);
void router_readmit(struct router *rt, int ep, const char *why);
/* 1 when some live backend (of any model) is healthy. */
int router_any_healthy(const struct router *rt);
/* The pools' connection gauges and counters, per backend (Prometheus text). */
void router_pool_metrics(struct router *rt, struct buf *out);
/* The HTTP client's settings from cfg (start and reload). */
struct httpc_cfg router_httpc_cfg(const struct router_cfg *cfg);
void router_backends_free(struct router *rt);

/* signals.c: engine signals (in-band headers, vLLM /metrics) into the routing state */
void router_poll_start(struct router *rt);
/* The request header line that asks a backend for its load ("name: value"),
 * or NULL when --orca is off. */
const char *router_orca_request_header(const struct router *rt);
/* 1 for the endpoint-load-metrics response header (the router's own business
 * when it asked: not relayed). */
int router_orca_is_header(const char *name, size_t n);
/* Reads the backend's in-band load report, if its response head has one. */
void router_orca_on_head(struct router *rt, int ep, const struct http_msg *m);
/* prefixlb_load_reports_total for /metrics. */
void router_signals_metrics(const struct router *rt, struct buf *b);
/* Parses vLLM's /metrics text: waiting, running, KV usage (summed over label
 * sets; kv as the mean). 0, or -1 when none of them is there. */
int router_parse_vllm_metrics(const char *text, size_t len, struct lb_signals *out);

/* resolve.c */
void router_dns_start(struct router *rt, uint64_t interval_ms);
void router_dns_round(struct router *rt);
/* Warns about static backends whose host name does not resolve now. */
void router_check_names(struct router *rt);

#endif
