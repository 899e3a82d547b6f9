/* route_kv.h: `prefixlb route`'s KV event options (docs/route.md, "KV
 * events") and their wiring to net/kvsub.c: a piece of the route shell kept
 * apart so route.c stays a table and a main. */
#ifndef PREFIXLB_ROUTE_KV_H
#define PREFIXLB_ROUTE_KV_H

#include <uv.h>

#include "../core/lb.h"
#include "opts.h"

struct route_kv_opts {
	struct opt_list specs; /* --kv-events BACKEND=tcp://..[,tcp://..] */
	const char *port, *topic;
	long max_age_ms, replay_timeout_ms, pending_ms, stale_requests;
};

#define ROUTE_KV_N_OPTS 7

void route_kv_defaults(struct route_kv_opts *o);
/* Writes its ROUTE_KV_N_OPTS entries at t. */
void route_kv_opt_table(struct route_kv_opts *o, struct opt *t);
void route_kv_free(struct route_kv_opts *o);
/* 0, or -1 after printing what is wrong. */
int route_kv_check(const struct route_kv_opts *o);
/* Starts the subscriber when some publisher is named (NULL otherwise, or on
 * error after a message: *failed = 1). block_tokens: the policies' block-tokens. */
struct kvsub *route_kv_start(uv_loop_t *loop, struct lb *lb, const struct route_kv_opts *o, double block_tokens,
			     int *failed);
void route_kv_reload(struct kvsub *k, const struct route_kv_opts *o);

#endif
