/* route_opts.c: `prefixlb route`'s options table, defaults, configuration
 * file, and the settings they make (route_opts.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/policy.h"
#include "cmd.h"
#include "route_opts.h"

static void opts_defaults(struct route_opts *o)
{
	memset(o, 0, sizeof *o);
	o->listen = "0.0.0.0:8000";
	o->policy = "prefix-hash";
	o->access_log = "-";
	o->health_path = "/health";
	o->template = "llama-3.1";
	o->blocks = "auto";
	o->orca = "text";
	o->admission = "off";
	for (size_t i = 0; policy_param_at(i); i++)
		o->pv[i] = policy_param_at(i)->dflt;
	o->max_body = 8 << 20;
	o->max_head = 64 << 10;
	o->max_msgs = 10000;
	o->retries = 2;
	o->connect_timeout_ms = 3000;
	o->first_byte_timeout_ms = 600000;
	o->idle_timeout_ms = 120000;
	o->health_interval_ms = 5000;
	o->health_timeout_ms = 2000;
	o->unhealthy_threshold = 3;
	o->healthy_threshold = 2;
	o->passive_failures = 3;
	o->dns_interval_ms = 5000;
	o->drain_timeout_ms = 30000;
	o->models_refresh_ms = 30000;
	o->client_timeout_ms = 30000;
	o->keepalive_timeout_ms = 75000;
	o->up_keepalive = 32;
	o->up_keepalive_ms = 4000;
	o->seed = 1;
	route_kv_defaults(&o->kv);
}

static const char route_usage[] =
	"usage: prefixlb route [--listen 0.0.0.0:8000] [--policy prefix-hash] --backend http://HOST:PORT ...\n"
	"                      [--backend-dns NAME:PORT] [--config FILE] [options]\n"
	"  A prefix-cache-aware HTTP load balancer for OpenAI-compatible servers.\n"
	"  The config file takes the same options, one per line: 'name = value' (or 'name value'),\n"
	"  '#' comments; 'backend = URL models=a,b' pins a backend's models. SIGHUP reloads it.\n";

#define MAX_OPTS (48 + LB_MAX_PARAMS)

/* The options table, bound to o: fixed options, then every policy parameter. */
static void opt_table(struct route_opts *o, struct opt *t, char *policy_help, size_t ph)
{
	char names[512];
	snprintf(policy_help, ph, "the routing policy, NAME[:param=value]...: %s", policy_names(names, sizeof names));
	const struct opt fixed[] = {
		{"listen", OPT_STR, &o->listen, "HOST:PORT to accept clients on", 0, 0},
		{"policy", OPT_STR, &o->policy, policy_help, 0, 0},
		{"backend", OPT_LIST, &o->backends, "backend base URL http://HOST:PORT (repeatable)", 0, 0},
		{"backend-dns", OPT_LIST, &o->dns, "NAME:PORT re-resolved every --dns-interval-ms (repeatable)", 0, 0},
		{"config", OPT_STR, &o->config, "file of options (reloaded on SIGHUP)", 0, 0},
		{"retries", OPT_INT, &o->retries, "retries on another backend (connect error, 502/503)", 0, 10},
		{"connect-timeout-ms", OPT_INT, &o->connect_timeout_ms, "TCP connect timeout", 1, 3600000},
		{"first-byte-timeout-ms", OPT_INT, &o->first_byte_timeout_ms, "request -> response head", 1, 86400000},
		{"idle-timeout-ms", OPT_INT, &o->idle_timeout_ms, "longest silence inside a response", 1, 86400000},
		{"health-interval-ms", OPT_INT, &o->health_interval_ms, "active health check period", 100, 3600000},
		{"health-timeout-ms", OPT_INT, &o->health_timeout_ms, "health check timeout", 10, 600000},
		{"health-path", OPT_STR, &o->health_path, "health check path", 0, 0},
		{"unhealthy-threshold", OPT_INT, &o->unhealthy_threshold, "failed checks before ejection", 1, 100},
		{"healthy-threshold", OPT_INT, &o->healthy_threshold, "good checks before re-admission", 1, 100},
		{"passive-failures", OPT_INT, &o->passive_failures, "consecutive connect failures before ejection", 1, 1000},
		{"health-always-ok", OPT_BOOL, &o->health_always_ok,
		 "GET /health answers 200 even when no backend is healthy (default: 503 then)", 0, 0},
		{"dns-interval-ms", OPT_INT, &o->dns_interval_ms, "re-resolution period of --backend-dns", 100, 3600000},
		{"models-refresh-ms", OPT_INT, &o->models_refresh_ms, "how often GET /v1/models is asked", 1000, 86400000},
		{"drain-timeout-ms", OPT_INT, &o->drain_timeout_ms, "SIGTERM: wait this long for streams", 0, 86400000},
		{"client-timeout-ms", OPT_INT, &o->client_timeout_ms, "a client must send its whole request within this (408)", 100, 3600000},
		{"keepalive-timeout-ms", OPT_INT, &o->keepalive_timeout_ms, "idle client connections are closed after this", 100, 3600000},
		{"upstream-keepalive", OPT_INT, &o->up_keepalive,
		 "idle connections kept open to each backend for the next requests (0: a new one each time)", 0, 100000},
		{"upstream-keepalive-timeout-ms", OPT_INT, &o->up_keepalive_ms,
		 "an idle backend connection is closed after this (below the backend's own: uvicorn's is 5 s)", 1, 3600000},
		{"max-body", OPT_INT, &o->max_body, "largest request body (413 above)", 1024, 1L << 30},
		{"max-header", OPT_INT, &o->max_head, "largest request head (431 above)", 1024, 1 << 24},
		{"max-messages", OPT_INT, &o->max_msgs, "most chat messages in a request", 1, 10000000},
		{"access-log", OPT_STR, &o->access_log, "JSON lines to FILE, - (stdout) or off", 0, 0},
		{"no-backend-header", OPT_BOOL, &o->no_backend_header, "don't add x-prefixlb-backend", 0, 0},
		{"seed", OPT_INT, &o->seed, "RNG seed (random policy, tie-breaks)", 0, 0},
		{"ports-file", OPT_STR, &o->ports_file, "write the bound port here (tests)", 0, 0},
		{"prefix-blocks", OPT_STR, &o->blocks,
		 "prefix index blocks for the policies that match prompts: tokens (the engine's KV blocks; loads the "
		 "tokenizer), chars (no tokenizer), or auto (tokens when the tokenizer is found)", 0, 0},
		{"tokenizer", OPT_STR, &o->tokenizer, "tokenizer.json for token blocks (default data/tokenizer.json)", 0, 0},
		{"chat-template", OPT_STR, &o->template, "llama-3.1 | llama-3: how the backends render chat", 0, 0},
		{"admission", OPT_STR, &o->admission,
		 "admission control: off, on, or on:KEY=VALUE:... (queue, wait-ms, max-waiting, ...; docs/route.md)", 0, 0},
		{"metrics-poll-ms", OPT_INT, &o->poll_ms,
		 "read each backend's vLLM /metrics this often for the policies' load signals (0: never)", 0, 3600000},
		{"orca", OPT_STR, &o->orca,
		 "text | json | off: ask every backend for its load in each answer (endpoint-load-metrics-format; vLLM and "
		 "prefixlb engine answer with an endpoint-load-metrics header) for the policies' load signals", 0, 0},
	};
	size_t n = sizeof fixed / sizeof *fixed;
	memcpy(t, fixed, sizeof fixed);
	route_kv_opt_table(&o->kv, t + n);
	n += ROUTE_KV_N_OPTS;
	for (size_t i = 0; policy_param_at(i) && n + 1 < MAX_OPTS; i++) {
		const struct lb_param *p = policy_param_at(i);
		t[n++] = (struct opt){p->name, OPT_DBL, &o->pv[i], p->help, p->min, p->max};
	}
	t[n] = (struct opt){0};
}

void route_opts_free(struct route_opts *o)
{
	opt_list_free(&o->backends);
	opt_list_free(&o->dns);
	route_kv_free(&o->kv);
}

int route_opts_parse(int argc, char **argv, struct route_opts *o, char ***cfg_argv)
{
	char ph[640];
	struct opt tab[MAX_OPTS], ptab[MAX_OPTS];
	struct route_opts probe;
	opts_defaults(o);
	opts_defaults(&probe);
	opt_table(o, tab, ph, sizeof ph);
	opt_table(&probe, ptab, ph, sizeof ph);
	*cfg_argv = NULL;
	int rc = opts_parse("route", route_usage, ptab, argc, argv, NULL, NULL);
	route_opts_free(&probe);
	if (rc)
		return rc;
	if (probe.config) {
		int cargc, *lines = NULL;
		char **cargv = cmd_config_argv_lines(probe.config, "route", &cargc, &lines);
		if (!cargv)
			return -1;
		rc = opts_parse_file("route", route_usage, tab, cargc, cargv, NULL, NULL, probe.config, lines);
		free(lines);
		*cfg_argv = cargv; /* o's strings point into it */
		if (rc)
			return -1;
	}
	return opts_parse("route", route_usage, tab, argc, argv, NULL, NULL);
}

int route_lb_opts(const struct route_opts *o, struct lb_opts *lo)
{
	char err[600];
	lb_opts_default(lo);
	for (size_t i = 0; policy_param_at(i); i++)
		lo->v[i] = o->pv[i];
	if (lb_opts_policy(lo, o->policy, err, sizeof err)) {
		fprintf(stderr, "prefixlb route: %s\n", err);
		return -1;
	}
	lo->seed = (uint64_t)o->seed;
	return 0;
}

int route_admit_cfg(const struct route_opts *o, struct admit_cfg *c)
{
	char err[1024];
	if (admit_cfg_parse(c, o->admission, err, sizeof err)) {
		fprintf(stderr, "prefixlb route: --%s\n", err);
		return -1;
	}
	return 0;
}

void route_router_cfg(const struct route_opts *o, struct router_cfg *c)
{
	*c = (struct router_cfg){
		.retries = o->retries,
		.connect_timeout_ms = o->connect_timeout_ms,
		.first_byte_timeout_ms = o->first_byte_timeout_ms,
		.idle_timeout_ms = o->idle_timeout_ms,
		.health_interval_ms = o->health_interval_ms,
		.health_timeout_ms = o->health_timeout_ms,
		.unhealthy_threshold = o->unhealthy_threshold,
		.healthy_threshold = o->healthy_threshold,
		.passive_failures = o->passive_failures,
		.models_refresh_ms = o->models_refresh_ms,
		.max_msgs = o->max_msgs,
		.health_path = o->health_path,
		.no_backend_header = o->no_backend_header,
		.health_always_ok = o->health_always_ok,
		.metrics_poll_ms = o->poll_ms,
		.keepalive = o->up_keepalive,
		.keepalive_timeout_ms = o->up_keepalive_ms,
		.orca = !strcmp(o->orca, "text") ? 1 : !strcmp(o->orca, "json") ? 2 : 0, /* enum orca_format */
	};
}
