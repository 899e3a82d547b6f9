/* route.c: `prefixlb route`, the prefix-cache-aware reverse proxy: a shell.
 *
 * Options and the configuration file are route_opts.c's (the same options,
 * one per line, errors naming file:line); here: SIGHUP reload (everything is checked
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
#include "route_opts.h"
#include "../net/kvsub.h"

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

/* The whole-prompt machinery for policies that match prompts: the chat
 * template and, for token blocks, the tokenizer (loaded once). -1 on error. */
static int prompt_setup(struct router *rt, const struct route_opts *o, const struct lb_opts *lo)
{
	if (chat_template_find(o->template, &rt->tpl)) {
		fprintf(stderr, "prefixlb route: --chat-template %s: llama-3.1 or llama-3\n", o->template);
		return -1;
	}
	if (strcmp(o->orca, "text") && strcmp(o->orca, "json") && strcmp(o->orca, "off")) {
		fprintf(stderr, "prefixlb route: --orca %s: text, json or off\n", o->orca);
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
	struct admit_cfg ac;
	/* all checked before anything changes: a bad file changes nothing */
	if (route_opts_parse(r->argc, r->argv, &o, &cargv) || route_lb_opts(&o, &lo) || route_admit_cfg(&o, &ac) ||
	    router_check_static((const char *const *)o.backends.v, o.backends.n) || route_kv_check(&o.kv) ||
	    prompt_setup(rt, &o, &lo) ||
	    lb_set_opts(rt->lb, &lo)) {
		fprintf(stderr, "prefixlb route: reload failed; keeping the running configuration\n");
		route_opts_free(&o);
		cmd_free_argv(cargv);
		return;
	}
	if (strcmp(o.listen, r->listen) != 0)
		fprintf(stderr, "prefixlb route: reload: --listen changes need a restart (ignored)\n");
	o.listen = r->listen;
	route_opts_free(&r->o);
	r->o = o;
	cmd_free_argv(r->cfg_strings);
	r->cfg_strings = cargv;
	route_router_cfg(&r->o, &rt->cfg);
	struct httpc_cfg hcfg = router_httpc_cfg(&rt->cfg);
	httpc_set_cfg(rt->up, &hcfg);
	router_admit_set(rt, &ac);
	rt->dns = (const char *const *)r->o.dns.v;
	rt->n_dns = r->o.dns.n;
	router_apply_static(rt, (const char *const *)r->o.backends.v, r->o.backends.n);
	route_kv_reload(rt->kv, &r->o.kv);
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
	router_admit_close(rt);
	if (rt->srv) {
		http_server_close(rt->srv); /* in-flight requests get on_abort -> finish */
		rt->srv = NULL;
	}
	struct httpc *up = rt->up;
	rt->up = NULL; /* the checks it ends now see it gone */
	httpc_free(up); /* its pools go with the backends' table */
	kvsub_close(rt->kv);
	rt->kv = NULL;
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
	int rc = 0, pr = route_opts_parse(r.argc, r.argv, &r.o, &r.cfg_strings);
	struct lb_opts lo;
	struct admit_cfg ac;
	char host[256];
	if (pr) {
		rc = pr == 1 ? 0 : 2;
		goto out_opts;
	}
	if (route_lb_opts(&r.o, &lo) || route_admit_cfg(&r.o, &ac) ||
	    router_check_static((const char *const *)r.o.backends.v, r.o.backends.n) || route_kv_check(&r.o.kv) ||
	    prompt_setup(rt, &r.o, &lo)) {
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
	route_router_cfg(&r.o, &rt->cfg);
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
	router_admit_init(rt, &ac);
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
	int kv_failed;
	rt->kv = route_kv_start(rt->loop, rt->lb, &r.o.kv, lb_opts_get(&lo, "block-tokens"), &kv_failed);
	if (kv_failed) {
		rc = 2;
		close_all(&r);
	}
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
	kvsub_close(rt->kv);
	if (rt->up) {
		httpc_free(rt->up);
		uv_run(rt->loop, UV_RUN_DEFAULT);
	}
	router_admit_free(rt);
	lb_free(rt->lb);
	router_backends_free(rt);
	prompt_cache_free(rt->pc);
	tok_free((struct tok *)rt->tok);
	if (rt->log && rt->log != stdout)
		fclose(rt->log);
out_opts:
	route_opts_free(&r.o);
	cmd_free_argv(r.cfg_strings);
	uv_loop_close(rt->loop);
	return rc;
}
