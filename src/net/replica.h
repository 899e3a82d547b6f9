/* replica.h: simulated vLLM replicas behind the OpenAI API, on one libuv
 * loop: `prefixlb engine`'s engine room (src/cmd/engine.c is its shell).
 *
 * Replica i owns one struct engine (src/core/engine.c) and one HTTP server.
 * Simulated time is real time times the fleet's time scale since its start; a
 * timer per replica fires at the model's next event, and every request first
 * advances the model to "now", so the model's own timeline is exact whatever
 * the timer lateness. A client that disconnects aborts its request in the
 * model at once (its KV blocks are freed), as vLLM does. A batched completion
 * (a list of prompts) is one HTTP request owning one model request per prompt,
 * answered when the last of them ends. Errors use OpenAI's body
 * (oai_error_body), as the router's. */
#ifndef PREFIXLB_REPLICA_H
#define PREFIXLB_REPLICA_H

#include <stdint.h>
#include <uv.h>

#include "../core/chat.h"
#include "../core/engine.h"
#include "../core/hist.h"
#include "../core/prompt.h"
#include "../core/tokenizer.h"
#include "server.h"

struct fleet;

struct replica {
	struct fleet *f;
	int idx;
	struct engine *e;
	struct http_server *srv;
	uv_timer_t timer;
	struct hist ttft, e2e;
	uint64_t ok, aborted, rejected;
	struct kvpub *kv; /* KV event publisher (--kv-events-config), or NULL */
};

struct fleet {
	uv_loop_t *loop;
	struct tok *tok;
	struct engine_profile prof;
	double time_scale;
	const char *model;
	uint64_t t0;
	struct replica *reps;
	int n;
	long max_body, max_msgs, max_prompts;
	uint64_t next_id;
	enum chat_template tpl;    /* how chat requests are rendered */
	struct prompt_cache *pc;   /* their pieces' ids */
	uv_signal_t sigint, sigterm;
	int stopping;
	int n_init; /* replicas whose timer is initialised */
	long created;
};

/* Sets up replica i of f (its model, histograms and timer; not its server). 0 or -1. */
int replica_init(struct fleet *f, int i, const uint32_t *filler, size_t n_filler);
/* The replica's server callbacks (http_server_cfg; ud = the struct replica). */
void replica_on_request(struct http_conn *c, const struct http_msg *m, const char *body, size_t len, void *ud);
void replica_on_abort(struct http_conn *c, void *req_ctx, void *ud);
/* The model's KV events (engine_set_kv_events; ctx = the struct replica) to
 * its publisher, stamped with the wall clock as vLLM does. */
void replica_on_kv(void *ctx, uint64_t now, const struct kv_event *ev, size_t n);

#endif
