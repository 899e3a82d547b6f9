/* route.c: `prefixlb route`, the prefix-cache-aware reverse proxy: a shell.
 *
 * Options (one table; the routing policies' parameters come from the policy
 * registry, src/core/policy.c), the configuration file (the same options, one
 * per line, errors naming file:line), SIGHUP reload (everything is checked
 * before anything changes: a bad file changes nothing), SIGTERM drain, and the
 * wiring of the parts in src/net: the request path (proxy.c), health checks
 * (health.c) and DNS (resolve.c) around one struct router (router.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../core/mem.h"
#include "../core/policy.h"
#include "../core/tokenizer.h"
#include "../net/router.h"
#include "cmd.h"
#include "opts.h"

struct route_opts {
	const char *listen, *policy, *config, *access_log, *health_path, *ports_file, *template, *tokenizer, *blocks;
	struct opt_list backends, dns;
	double pv[LB_MAX_PARAMS]; /* the policies' parameters, indexed like policy_param_at() */
	long max_body, max_head, max_msgs, retries;
	long connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms;
	long health_interval_ms, health_timeout_ms, unhealthy_threshold, healthy_threshold, passive_failures;
	long dns_interval_ms, drain_timeout_ms, models_refresh_ms, client_timeout_ms, keepalive_timeout_ms, poll_ms;
	long up_keepalive, up_keepalive_ms;
	int no_backend_header, health_always_ok;
	long seed;
};

struct route {
	struct router rt;
	struct route_opts o;
	int argc;
	char **argv;
	char **cfg_strings; /* the configuration file's strings (o points into them) */
	uv_timer_t drain_timer;
	uv_signal_t sigterm, sigint, sighup;
	char listen[300];
};

static void opts_defaults(struct route_opts *o)
{
	memset(o, 0, sizeof *o);
	o->listen = "0.0.0.0:8000";
	o->policy = "prefix-hash";
	o->access_log = "-";
	o->health_path = "/health";
	o->template = "llama-3.1";
	o->blocks = "auto";
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
		{"metrics-poll-ms", OPT_INT, &o->poll_ms,
		 "read each backend's vLLM /metrics this often for the policies' load signals (0: never)", 0, 3600000},
	};
	size_t n = sizeof fixed / sizeof *fixed;
	memcpy(t, fixed, sizeof fixed);
	for (size_t i = 0; policy_param_at(i) && n + 1 < MAX_OPTS; i++) {
		const struct lb_param *p = policy_param_at(i);
		t[n++] = (struct opt){p->name, OPT_DBL, &o->pv[i], p->help, p->min, p->max};
	}
	t[n] = (struct opt){0};
}

static void free_opts(struct route_opts *o)
{
	opt_list_free(&o->backends);
	opt_list_free(&o->dns);
}

/* CLI first (to learn --config), then the file, then the CLI again so the
 * command line wins. *cfg_argv keeps the file's strings alive. */
static int parse_all(struct route *r, struct route_opts *o, char ***cfg_argv)
{
	char ph[640];
	struct opt tab[MAX_OPTS], ptab[MAX_OPTS];
	struct route_opts probe;
	opts_defaults(o);
	opts_defaults(&probe);
	opt_table(o, tab, ph, sizeof ph);
	opt_table(&probe, ptab, ph, sizeof ph);
	*cfg_argv = NULL;
	int rc = opts_parse("route", route_usage, ptab, r->argc, r->argv, NULL, NULL);
	free_opts(&probe);
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
	return opts_parse("route", route_usage, tab, r->argc, r->argv, NULL, NULL);
}

static int make_lb_opts(const struct route_opts *o, struct lb_opts *lo)
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

static void router_cfg_of(const struct route_opts *o, struct router_cfg *c)
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
	};
}

/* The whole-prompt machinery for policies that match prompts: the chat
 * template and, for token blocks, the tokenizer (loaded once). -1 on error. */
static int prompt_setup(struct router *rt, const struct route_opts *o, const struct lb_opts *lo)
{
	if (chat_template_find(o->template, &rt->tpl)) {
		fprintf(stderr, "prefixlb route: --chat-template %s: llama-3.1 or llama-3\n", o->template);
		return -1;
	}
	if (strcmp(o->blocks, "auto") && strcmp(o->blocks, "tokens") && strcmp(o->blocks, "chars")) {
		fprintf(stderr, "prefixlb route: --prefix-blocks %s: tokens, chars or auto\n", o->blocks);
		return -1;
	}
	if (rt->tok || !(lo->policy->needs & LB_NEEDS_PROMPT) || !strcmp(o->blocks, "chars"))
		return 0;
	struct tok *t = cmd_load_tokenizer(o->tokenizer);
	if (!t) {
		if (!strcmp(o->blocks, "tokens"))
			return -1;
		fprintf(stderr, "prefixlb route: no tokenizer: the prefix index uses character blocks\n");
		return 0;
	}
	rt->tok = t;
	rt->pc = prompt_cache_new(t, (size_t)1 << 22);
	return 0;
}

static void on_hup(uv_signal_t *s, int sig)
{
	(void)sig;
	struct route *r = s->data;
	struct router *rt = &r->rt;
	struct route_opts o;
	char **cargv = NULL;
	struct lb_opts lo;
	/* all checked before anything changes: a bad file changes nothing */
	if (parse_all(r, &o, &cargv) || make_lb_opts(&o, &lo) || router_check_static((const char *const *)o.backends.v, o.backends.n) || prompt_setup(rt, &o, &lo) ||
	    lb_set_opts(rt->lb, &lo)) {
		fprintf(stderr, "prefixlb route: reload failed; keeping the running configuration\n");
		free_opts(&o);
		cmd_free_argv(cargv);
		return;
	}
	if (strcmp(o.listen, r->listen) != 0)
		fprintf(stderr, "prefixlb route: reload: --listen changes need a restart (ignored)\n");
	o.listen = r->listen;
	free_opts(&r->o);
	r->o = o;
	cmd_free_argv(r->cfg_strings);
	r->cfg_strings = cargv;
	router_cfg_of(&r->o, &rt->cfg);
	struct httpc_cfg hcfg = router_httpc_cfg(&rt->cfg);
	httpc_set_cfg(rt->up, &hcfg);
	rt->dns = (const char *const *)r->o.dns.v;
	rt->n_dns = r->o.dns.n;
	router_apply_static(rt, (const char *const *)r->o.backends.v, r->o.backends.n);
	router_dns_round(rt);
	router_health_round(rt);
	fprintf(stderr, "prefixlb route: configuration reloaded (policy %s, %zu static backends)\n", r->o.policy,
		r->o.backends.n);
}

/* ---- shutdown ------------------------------------------------------------ */

static void close_all(struct route *r)
{
	struct router *rt = &r->rt;
	uv_timer_stop(&rt->health_timer);
	uv_timer_stop(&rt->dns_timer);
	uv_timer_stop(&rt->poll_timer);
	uv_timer_stop(&r->drain_timer);
	uv_handle_t *h[] = {(uv_handle_t *)&rt->health_timer, (uv_handle_t *)&rt->dns_timer, (uv_handle_t *)&rt->poll_timer,
			    (uv_handle_t *)&r->drain_timer,   (uv_handle_t *)&r->sigterm,
			    (uv_handle_t *)&r->sigint,        (uv_handle_t *)&r->sighup};
	for (size_t i = 0; i < sizeof h / sizeof *h; i++)
		uv_close(h[i], NULL);
	if (rt->srv) {
		http_server_close(rt->srv); /* in-flight requests get on_abort -> finish */
		rt->srv = NULL;
	}
	struct httpc *up = rt->up;
	rt->up = NULL; /* the checks it ends now see it gone */
	httpc_free(up); /* its pools go with the backends' table */
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct route *r = t->data;
	if (r->rt.draining == 1) {
		if (r->rt.in_flight)
			fprintf(stderr, "prefixlb route: drain timeout, %llu requests cut\n",
				(unsigned long long)r->rt.in_flight);
		r->rt.draining = 2;
		close_all(r);
	}
}

/* Called from the request path's finish(), possibly inside an upstream
 * callback: the actual close happens from the loop, on a zero timer. */
static void on_idle(struct router *rt)
{
	struct route *r = (struct route *)rt; /* rt is r's first member */
	if (rt->draining == 1)
		uv_timer_start(&r->drain_timer, on_drain_timeout, 0, 0);
}

static void on_term(uv_signal_t *s, int sig)
{
	struct route *r = s->data;
	struct router *rt = &r->rt;
	if (rt->draining)
		return;
	rt->draining = 1;
	http_server_stop_listening(rt->srv); /* before saying so: once said, connections are refused */
	fprintf(stderr, "prefixlb route: %s, draining %llu requests (up to %ld ms)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
		(unsigned long long)rt->in_flight, r->o.drain_timeout_ms);
	uv_timer_start(&r->drain_timer, on_drain_timeout, (uint64_t)r->o.drain_timeout_ms, 0);
	if (rt->in_flight == 0)
		on_idle(rt);
}

/* ---- main ---------------------------------------------------------------- */

static void oom(size_t n)
{
	fprintf(stderr, "prefixlb: out of memory (%zu bytes)\n", n);
}

static int open_log(struct router *rt, const char *spec)
{
	if (!strcmp(spec, "off"))
		rt->log = NULL;
	else if (!strcmp(spec, "-"))
		rt->log = stdout;
	else if (!(rt->log = fopen(spec, "a"))) {
		fprintf(stderr, "prefixlb route: %s: %s\n", spec, strerror(errno));
		return -1;
	}
	if (rt->log)
		setvbuf(rt->log, NULL, _IOLBF, 0);
	return 0;
}

int cmd_route(int argc, char **argv)
{
	static struct route r; /* the signal handlers and timers point here */
	memset(&r, 0, sizeof r);
	struct router *rt = &r.rt;
	r.argc = argc;
	r.argv = argv;
	rt->loop = uv_default_loop();
	plb_set_oom_handler(oom);
	int rc = 0, pr = parse_all(&r, &r.o, &r.cfg_strings);
	struct lb_opts lo;
	char host[256];
	if (pr) {
		rc = pr == 1 ? 0 : 2;
		goto out_opts;
	}
	if (make_lb_opts(&r.o, &lo) || router_check_static((const char *const *)r.o.backends.v, r.o.backends.n) || prompt_setup(rt, &r.o, &lo)) {
		rc = 2;
		goto out_opts;
	}
	if (!r.o.backends.n && !r.o.dns.n) {
		fprintf(stderr, "prefixlb route: no backend (--backend URL or --backend-dns NAME:PORT)\n");
		rc = 2;
		goto out_opts;
	}
	const char *colon = strrchr(r.o.listen, ':');
	long port = colon ? strtol(colon + 1, NULL, 10) : -1;
	if (!colon || port < 0 || port > 65535 || (size_t)(colon - r.o.listen) >= sizeof host) {
		fprintf(stderr, "prefixlb route: --listen %s: expected HOST:PORT\n", r.o.listen);
		rc = 2;
		goto out_opts;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - r.o.listen), r.o.listen);
	snprintf(r.listen, sizeof r.listen, "%s", r.o.listen);
	r.o.listen = r.listen;
	if (host[0] == '[') { /* [::1] */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (open_log(rt, r.o.access_log)) {
		rc = 2;
		goto out_opts;
	}
	cmd_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	router_cfg_of(&r.o, &rt->cfg);
	router_init_metrics(rt);
	rt->dns = (const char *const *)r.o.dns.v;
	rt->n_dns = r.o.dns.n;
	rt->on_idle = on_idle;
	rt->lb = lb_new(&lo);
	struct httpc_cfg hcfg = router_httpc_cfg(&rt->cfg);
	rt->up = httpc_new(rt->loop, &hcfg);
	if (!rt->lb || !rt->up || router_apply_static(rt, (const char *const *)r.o.backends.v, r.o.backends.n)) {
		rc = 2;
		goto out;
	}
	struct http_server_cfg cfg = {
		.host = host,
		.port = (int)port,
		.max_head = (size_t)r.o.max_head,
		.request_timeout_ms = (uint64_t)r.o.client_timeout_ms,
		.idle_timeout_ms = (uint64_t)r.o.keepalive_timeout_ms,
		.max_body = (size_t)r.o.max_body,
		.on_request = router_on_request,
		.on_abort = router_on_abort,
		.on_drain = router_on_drain,
		.error_body = router_error_body,
		.ud = rt,
	};
	char err[256];
	if (!(rt->srv = http_server_new(rt->loop, &cfg, err, sizeof err))) {
		fprintf(stderr, "prefixlb route: %s\n", err);
		rc = 1;
		goto out;
	}
	if (r.o.ports_file) { /* atomically: tests and the lab read it as soon as it exists */
		char line[32];
		int n = snprintf(line, sizeof line, "%d\n", http_server_port(rt->srv));
		if (cmd_write_file_atomic(r.o.ports_file, line, (size_t)n)) {
			fprintf(stderr, "prefixlb route: %s: cannot write\n", r.o.ports_file);
			rc = 1;
			goto out;
		}
	}
	uv_timer_init(rt->loop, &rt->health_timer);
	uv_timer_init(rt->loop, &rt->dns_timer);
	uv_timer_init(rt->loop, &rt->poll_timer);
	uv_timer_init(rt->loop, &r.drain_timer);
	r.drain_timer.data = &r;
	router_health_start(rt, (uint64_t)r.o.health_interval_ms);
	router_dns_start(rt, (uint64_t)r.o.dns_interval_ms);
	router_poll_start(rt);
	router_check_names(rt);
	uv_signal_init(rt->loop, &r.sigterm);
	uv_signal_init(rt->loop, &r.sigint);
	uv_signal_init(rt->loop, &r.sighup);
	r.sigterm.data = r.sigint.data = r.sighup.data = &r;
	uv_signal_start(&r.sigterm, on_term, SIGTERM);
	uv_signal_start(&r.sigint, on_term, SIGINT);
	uv_signal_start(&r.sighup, on_hup, SIGHUP);
	fprintf(stderr, "prefixlb route: listening on %s:%d, policy %s, %zu backend%s%s\n", host,
		http_server_port(rt->srv), lo.policy->name, r.o.backends.n, r.o.backends.n == 1 ? "" : "s",
		r.o.dns.n ? " + DNS" : "");
	uv_run(rt->loop, UV_RUN_DEFAULT);
	if (lb_total_in_flight(rt->lb))
		fprintf(stderr, "prefixlb route: BUG: %llu in-flight counts left at exit\n",
			(unsigned long long)lb_total_in_flight(rt->lb));
	rt->up = NULL;
out:
	if (rt->up) {
		httpc_free(rt->up);
		uv_run(rt->loop, UV_RUN_DEFAULT);
	}
	lb_free(rt->lb);
	router_backends_free(rt);
	prompt_cache_free(rt->pc);
	tok_free((struct tok *)rt->tok);
	if (rt->log && rt->log != stdout)
		fclose(rt->log);
out_opts:
	free_opts(&r.o);
	cmd_free_argv(r.cfg_strings);
	uv_loop_close(rt->loop);
	return rc;
}
