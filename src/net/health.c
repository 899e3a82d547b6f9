/* health.c: the router's backends: the table beside the routing state (each
 * with its connection pool in the HTTP client), active
 * health checks (GET --health-path every --health-interval-ms), model
 * discovery (GET /v1/models), ejection and re-admission, each logged with its
 * reason. A backend is ejected after --unhealthy-threshold failed checks in a
 * row (or --passive-failures connect failures of real requests, proxy.c) and
 * re-admitted after --healthy-threshold good ones. A check in flight is never
 * doubled; a check's answer for a slot reused since (generation) is dropped. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "router.h"

struct backend *router_backend(struct router *rt, int ep)
{
	if (ep < 0)
		return NULL;
	if ((size_t)ep >= rt->n_be) {
		size_t n = (size_t)ep + 16;
		rt->be = plb_realloc(rt->be, n * sizeof *rt->be);
		memset(rt->be + rt->n_be, 0, (n - rt->n_be) * sizeof *rt->be);
		rt->n_be = n;
	}
	return &rt->be[ep];
}

int router_url_hostport(const char *url, char *out, size_t n)
{
	if (strncmp(url, "http://", 7) != 0)
		return -1;
	const char *p = url + 7;
	size_t l = strcspn(p, "/?#");
	if (l == 0 || l >= n)
		return -1;
	memcpy(out, p, l);
	out[l] = '\0';
	const char *after = out[0] == '[' ? strchr(out, ']') : out; /* [v6]:port */
	if (!after)
		return -1;
	if (!strchr(after, ':')) {
		if (l + 3 >= n)
			return -1;
		strcat(out, ":80");
	}
	return 0;
}

int router_add_backend(struct router *rt, const char *url, const char *const *models, size_t n_models, int dns_idx)
{
	char name[160];
	if (router_url_hostport(url, name, sizeof name)) {
		fprintf(stderr, "prefixlb route: backend '%s': expected http://HOST:PORT\n", url);
		return -1;
	}
	int existing = lb_find(rt->lb, name);
	int ep = lb_add(rt->lb, name, models, n_models);
	struct backend *b = router_backend(rt, ep);
	if (ep < 0 || !b)
		return -1;
	if (existing < 0) {
		free(b->url);
		free(b->prefix);
		httpc_pool_free(b->pool);
		memset(b, 0, sizeof *b);
		size_t ul = strlen(url);
		while (ul && url[ul - 1] == '/')
			ul--;
		b->url = plb_strndup(url, ul);
		const char *hp = b->url + 7, *path = hp + strcspn(hp, "/?#");
		b->prefix = plb_strdup(path);
		char *colon = strrchr(name, ':'); /* name is HOST:PORT, [v6]:PORT */
		*colon = '\0';
		b->pool = httpc_pool_new(rt->up, name, atoi(colon + 1));
		*colon = ':';
		b->dns_idx = dns_idx;
		b->active = 1;
		fprintf(stderr, "prefixlb route: backend %s added\n", name);
	}
	b->fixed_models = n_models > 0;
	b->mark = 1;
	return ep;
}

void router_remove_backend(struct router *rt, int ep)
{
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!e || e->removed)
		return;
	fprintf(stderr, "prefixlb route: backend %s removed (%u in flight finish there)\n", e->name, e->in_flight);
	rt->be[ep].active = 0;
	httpc_pool_free(rt->be[ep].pool); /* its idle connections close; requests in flight finish */
	rt->be[ep].pool = NULL;
	lb_remove(rt->lb, ep);
}

void router_backends_free(struct router *rt)
{
	for (size_t i = 0; i < rt->n_be; i++) {
		free(rt->be[i].url);
		free(rt->be[i].prefix);
		httpc_pool_free(rt->be[i].pool);
	}
	free(rt->be);
	rt->be = NULL;
	rt->n_be = 0;
}

void router_eject(struct router *rt, int ep, const char *reason)
{
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!e || !e->healthy)
		return;
	struct backend *b = &rt->be[ep];
	lb_set_healthy(rt->lb, ep, 0);
	b->ejections++;
	b->hc_ok = 0;
	snprintf(b->last_error, sizeof b->last_error, "%s", reason);
	fprintf(stderr, "prefixlb route: backend %s ejected: %s\n", e->name, reason);
}

void router_readmit(struct router *rt, int ep, const char *why)
{
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!e || e->healthy)
		return;
	lb_set_healthy(rt->lb, ep, 1);
	rt->be[ep].passive_fail = 0;
	fprintf(stderr, "prefixlb route: backend %s healthy again (%s)\n", e->name, why);
}

int router_any_healthy(const struct router *rt)
{
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (e && !e->removed && e->healthy)
			return 1;
	}
	return 0;
}

/* ---- checks ----------------------------------------------------------------- */

struct hc {
	struct router *rt;
	int ep;
	uint32_t gen;
	int status;
	int models; /* a /v1/models fetch, not a health check */
	struct buf body;
};

static int hc_head(void *ctx, const struct http_msg *m)
{
	((struct hc *)ctx)->status = m->status;
	return HTTPC_CONTINUE;
}

static int hc_data(void *ctx, const char *d, size_t n)
{
	struct hc *hc = ctx;
	if (hc->models)
		buf_append(&hc->body, d, n); /* past 4 MiB the list is cut, and fails to parse: kept as it was */
	return HTTPC_CONTINUE;
}

static void apply_models(struct router *rt, int ep, struct buf *body)
{
	json_error_t je;
	json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, &je);
	json_t *data = json_object_get(j, "data");
	size_t n = json_array_size(data), i, k = 0;
	const char **models = plb_calloc(n + 1, sizeof *models);
	json_t *m;
	json_array_foreach(data, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		if (id)
			models[k++] = id;
	}
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (k && e && !e->removed)
		lb_add(rt->lb, e->name, models, k);
	free(models);
	json_decref(j);
}

static void start(struct router *rt, int ep, int models);

static void hc_done(void *ctx, enum httpc_err err, const char *msg)
{
	struct hc *hc = ctx;
	struct router *rt = hc->rt;
	const struct lb_endpoint *e = lb_endpoint(rt->lb, hc->ep);
	if (rt->up && e && e->gen == hc->gen && !e->removed) { /* rt->up NULL: shutting down */
		struct backend *b = &rt->be[hc->ep];
		int ok = err == HTTPC_OK && hc->status == 200;
		if (hc->models) {
			if (ok)
				apply_models(rt, hc->ep, &hc->body);
		} else {
			b->hc_busy = 0;
			if (ok) {
				b->hc_fail = 0;
				b->hc_ok++;
				if (!e->healthy && b->hc_ok >= rt->cfg.healthy_threshold) {
					char why[64];
					snprintf(why, sizeof why, "%d good health checks", b->hc_ok);
					router_readmit(rt, hc->ep, why);
				}
				uint64_t now = uv_now(rt->loop);
				if (!b->fixed_models &&
				    (!b->models_at || now - b->models_at >= (uint64_t)rt->cfg.models_refresh_ms)) {
					b->models_at = now;
					start(rt, hc->ep, 1);
				}
			} else {
				b->hc_ok = 0;
				if (++b->hc_fail >= rt->cfg.unhealthy_threshold && e->healthy) {
					char why[256];
					if (err == HTTPC_OK)
						snprintf(why, sizeof why, "%d failed health checks (last: HTTP %d)", b->hc_fail,
							 hc->status);
					else
						snprintf(why, sizeof why, "%d failed health checks (last: %s)", b->hc_fail,
							 msg && *msg ? msg : err == HTTPC_ETIMEOUT ? "timeout" : "connection failed");
					router_eject(rt, hc->ep, why);
				}
			}
		}
	}
	buf_free(&hc->body);
	free(hc);
}

static const struct httpc_cb hc_cb = {hc_head, hc_data, hc_done, NULL};

static void start(struct router *rt, int ep, int models)
{
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!e || e->removed)
		return;
	struct hc *hc = plb_calloc(1, sizeof *hc);
	hc->rt = rt;
	hc->ep = ep;
	hc->gen = e->gen;
	hc->models = models;
	buf_init(&hc->body, 4 << 20);
	char target[1024];
	snprintf(target, sizeof target, "%s%s", rt->be[ep].prefix, models ? "/v1/models" : rt->cfg.health_path);
	/* a new connection each time, closed after: a check tests connecting too */
	struct httpc_opts o = {
		.method = "GET",
		.target = target,
		.fresh = 1,
		.close = 1,
		.connect_timeout_ms = (uint64_t)rt->cfg.health_timeout_ms,
		.timeout_ms = (uint64_t)rt->cfg.health_timeout_ms,
	};
	httpc_start(rt->be[ep].pool, &o, &hc_cb, hc);
	if (!models)
		rt->be[ep].hc_busy = 1;
}

void router_start_check(struct router *rt, int ep)
{
	if ((size_t)ep < rt->n_be && !rt->be[ep].hc_busy)
		start(rt, ep, 0);
}

void router_health_round(struct router *rt)
{
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (e && !e->removed && rt->be[ep].active && !rt->be[ep].hc_busy)
			start(rt, (int)ep, 0);
	}
}

static void on_health_timer(uv_timer_t *t)
{
	router_health_round(t->data);
}

void router_health_start(struct router *rt, uint64_t interval_ms)
{
	rt->health_timer.data = rt;
	uv_timer_start(&rt->health_timer, on_health_timer, 0, interval_ms);
}

/* "URL models=a,b" -> url (in place) and models. */
static size_t split_backend(char *spec, const char **models, size_t max)
{
	char *sp = strpbrk(spec, " \t");
	size_t n = 0;
	if (!sp)
		return 0;
	*sp = '\0';
	char *m = strstr(sp + 1, "models=");
	if (!m)
		return 0;
	char *save = NULL;
	for (char *t = strtok_r(m + 7, ", \t", &save); t && n < max; t = strtok_r(NULL, ", \t", &save))
		models[n++] = t;
	return n;
}

int router_check_static(const char *const *specs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char spec[1024], name[160];
		const char *models[64];
		snprintf(spec, sizeof spec, "%s", specs[i]);
		split_backend(spec, models, 64);
		if (router_url_hostport(spec, name, sizeof name)) {
			fprintf(stderr, "prefixlb route: backend '%s': expected http://HOST:PORT\n", spec);
			return -1;
		}
	}
	return 0;
}

int router_apply_static(struct router *rt, const char *const *specs, size_t n)
{
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx < 0)
			rt->be[ep].mark = 0;
	for (size_t i = 0; i < n; i++) {
		char spec[1024];
		snprintf(spec, sizeof spec, "%s", specs[i]);
		const char *models[64];
		size_t nm = split_backend(spec, models, 64);
		if (router_add_backend(rt, spec, models, nm, -1) < 0)
			return -1;
	}
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx < 0 && !rt->be[ep].mark)
			router_remove_backend(rt, (int)ep);
	return 0;
}

/* ---- connection pools ------------------------------------------------------------ */

struct httpc_cfg router_httpc_cfg(const struct router_cfg *cfg)
{
	return (struct httpc_cfg){.max_idle = (size_t)cfg->keepalive, .idle_timeout_ms = (uint64_t)cfg->keepalive_timeout_ms};
}

void router_pool_metrics(struct router *rt, struct buf *out)
{
	static const char *const series[][3] = {
		{"prefixlb_upstream_idle_connections", "gauge",
		 "Kept-alive connections to each backend waiting for a request (at most --upstream-keepalive)."},
		{"prefixlb_upstream_busy_connections", "gauge", "Connections to each backend carrying a request or connecting."},
		{"prefixlb_upstream_connects_total", "counter", "Connections opened to each backend."},
		{"prefixlb_upstream_reuses_total", "counter", "Requests sent to each backend on a kept-alive connection."},
		{"prefixlb_upstream_idle_closed_total", "counter",
		 "Idle connections closed: idle timeout, over the bound, or closed by the backend."},
	};
	for (size_t s = 0; s < sizeof series / sizeof *series; s++) {
		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", series[s][0], series[s][2], series[s][0], series[s][1]);
		for (size_t ep = 0; ep < rt->n_be; ep++) {
			const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
			if (!e || !rt->be[ep].pool)
				continue;
			struct httpc_pool_stats st;
			httpc_pool_stats(rt->be[ep].pool, &st);
			double v = s == 0 ? (double)st.idle
				   : s == 1 ? (double)(st.busy + st.connecting)
				   : s == 2 ? (double)st.connects
				   : s == 3 ? (double)st.reuses
					    : (double)st.idle_closed;
			buf_printf(out, "%s{backend=\"%s\"} %.17g\n", series[s][0], e->name, v);
		}
	}
}
