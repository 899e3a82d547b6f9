/* route_kv.c: route's KV event options; see route_kv.h. */
#include "route_kv.h"

#include <stdio.h>
#include <string.h>

#include "../net/kvsub.h"

void route_kv_defaults(struct route_kv_opts *o)
{
	memset(o, 0, sizeof *o);
	o->topic = "";
	o->max_age_ms = 5000;
	o->replay_timeout_ms = 2000;
	o->pending_ms = 2000;
	o->stale_requests = 8;
}

void route_kv_opt_table(struct route_kv_opts *o, struct opt *t)
{
	const struct opt kv[ROUTE_KV_N_OPTS] = {
		{"kv-events", OPT_LIST, &o->specs,
		 "BACKEND=tcp://HOST:PORT[,tcp://HOST:REPLAY_PORT]: the vLLM KV event publisher of a backend (host:port "
		 "of its URL; repeatable)", 0, 0},
		{"kv-events-port", OPT_STR, &o->port,
		 "PUB[:REPLAY] on every backend's host, or +N[:+M] = its HTTP port + N (a prefixlb engine fleet)", 0, 0},
		{"kv-events-topic", OPT_STR, &o->topic, "subscribe to topics starting with this (default: all)", 0, 0},
		{"kv-events-max-age-ms", OPT_INT, &o->max_age_ms,
		 "a backend's events are stale (the approximate index is used) after this long disconnected, or silent "
		 "with requests routed to it (1000-10000)", 100, 3600000},
		{"kv-events-replay-timeout-ms", OPT_INT, &o->replay_timeout_ms, "a replay not done by then has failed", 10, 600000},
		{"kv-events-pending-ms", OPT_INT, &o->pending_ms,
		 "blocks routed to a backend count as cached this long before its events confirm them (0: off; 500-5000)",
		 0, 600000},
		{"kv-events-stale-requests", OPT_INT, &o->stale_requests,
		 "requests routed to a backend with no event since, before its silence makes it stale", 1, 1000000},
	};
	memcpy(t, kv, sizeof kv);
}

void route_kv_free(struct route_kv_opts *o)
{
	opt_list_free(&o->specs);
}

static void cfg_of(const struct route_kv_opts *o, struct kvsub_cfg *c, double block_tokens)
{
	*c = (struct kvsub_cfg){(const char *const *)o->specs.v, o->specs.n, o->port, o->topic, o->max_age_ms,
				o->replay_timeout_ms, o->pending_ms, o->stale_requests, (long)block_tokens};
}

int route_kv_check(const struct route_kv_opts *o)
{
	struct kvsub_cfg c;
	char err[400];
	cfg_of(o, &c, 16);
	if (kvsub_check(&c, err, sizeof err)) {
		fprintf(stderr, "prefixlb route: %s\n", err);
		return -1;
	}
	return 0;
}

struct kvsub *route_kv_start(uv_loop_t *loop, struct lb *lb, const struct route_kv_opts *o, double block_tokens,
			     int *failed)
{
	struct kvsub_cfg c;
	char err[400];
	cfg_of(o, &c, block_tokens);
	struct kvsub *k = kvsub_new(loop, lb, &c, err, sizeof err);
	*failed = !k && err[0];
	if (*failed)
		fprintf(stderr, "prefixlb route: %s\n", err);
	return k;
}

void route_kv_reload(struct kvsub *k, const struct route_kv_opts *o)
{
	struct kvsub_cfg c;
	cfg_of(o, &c, 16);
	kvsub_reconfigure(k, &c);
}
