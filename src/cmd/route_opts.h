/* route_opts.h: `prefixlb route`'s options (one table; the policies'
 * parameters come from the policy registry), the configuration file, and what
 * they make: lb options, admission settings, the router's settings. Kept apart
 * so route.c stays the wiring and the signals. */
#ifndef PREFIXLB_ROUTE_OPTS_H
#define PREFIXLB_ROUTE_OPTS_H

#include "../core/admit.h"
#include "../core/lb.h"
#include "../net/router.h"
#include "opts.h"
#include "route_kv.h"

struct route_opts {
	const char *listen, *policy, *config, *access_log, *health_path, *ports_file, *template, *tokenizer, *blocks, *orca,
		*admission;
	struct opt_list backends, dns;
	double pv[LB_MAX_PARAMS]; /* the policies' parameters, indexed like policy_param_at() */
	long max_body, max_head, max_msgs, retries;
	long connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms;
	long health_interval_ms, health_timeout_ms, unhealthy_threshold, healthy_threshold, passive_failures;
	long dns_interval_ms, drain_timeout_ms, models_refresh_ms, client_timeout_ms, keepalive_timeout_ms, poll_ms;
	long up_keepalive, up_keepalive_ms;
	int no_backend_header, health_always_ok;
	long seed;
	struct route_kv_opts kv;
};
/* CLI first (to learn --config), then the file, then the CLI again so the
 * command line wins. *cfg_argv keeps the file's strings alive (o points into
 * them). As opts_parse: 0, 1 (--help), or an error. */
int route_opts_parse(int argc, char **argv, struct route_opts *o, char ***cfg_argv);
void route_opts_free(struct route_opts *o);
/* 0, or -1 after printing what is wrong. */
int route_lb_opts(const struct route_opts *o, struct lb_opts *lo);
int route_admit_cfg(const struct route_opts *o, struct admit_cfg *c);
void route_router_cfg(const struct route_opts *o, struct router_cfg *c);

#endif
