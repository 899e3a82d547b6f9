/* health.c: the router's backends: the table beside the routing state, active
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
		memset(b, 0, sizeof *b);
		size_t ul = strlen(url);
		while (ul && url[ul - 1] == '/')
			ul--;
		b->url = plb_strndup(url, ul);
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
	lb_remove(rt->lb, ep);
}

void router_backends_free(struct router *rt)
{
	for (size_t i = 0; i < rt->n_be; i++)
		free(rt->be[i].url);
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
	char *url;
	struct buf body;
};

static int hc_head(void *ctx, int status, const char *h, size_t n)
{
	(void)h;
	(void)n;
	((struct hc *)ctx)->status = status;
	return 0;
}

static int hc_data(void *ctx, const char *d, size_t n)
{
	struct hc *hc = ctx;
	if (hc->models)
		buf_append(&hc->body, d, n); /* past 4 MiB the list is cut, and fails to parse: kept as it was */
	return 0;
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

static void hc_done(void *ctx, enum up_error err, const char *msg)
{
	struct hc *hc = ctx;
	struct router *rt = hc->rt;
	const struct lb_endpoint *e = lb_endpoint(rt->lb, hc->ep);
	if (e && e->gen == hc->gen && !e->removed) {
		struct backend *b = &rt->be[hc->ep];
		int ok = err == UP_OK && hc->status == 200;
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
					if (err == UP_OK)
						snprintf(why, sizeof why, "%d failed health checks (last: HTTP %d)", b->hc_fail,
							 hc->status);
					else
						snprintf(why, sizeof why, "%d failed health checks (last: %s)", b->hc_fail,
							 msg && *msg ? msg : err == UP_ETIMEOUT ? "timeout" : "connection failed");
					router_eject(rt, hc->ep, why);
				}
			}
		}
	}
	buf_free(&hc->body);
	free(hc->url);
	free(hc);
}

static const struct up_callbacks hc_cb = {hc_head, hc_data, hc_done};

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
	const char *path = models ? "/v1/models" : rt->cfg.health_path;
	size_t ul = strlen(rt->be[ep].url), pl = strlen(path);
	hc->url = plb_malloc(ul + pl + 1);
	memcpy(hc->url, rt->be[ep].url, ul);
	memcpy(hc->url + ul, path, pl + 1);
	struct up_opts o = {
		.method = "GET",
		.url = hc->url,
		.connect_timeout_ms = rt->cfg.health_timeout_ms,
		.total_timeout_ms = rt->cfg.health_timeout_ms,
	};
	if (!up_start(rt->up, &o, &hc_cb, hc)) {
		buf_free(&hc->body);
		free(hc->url);
		free(hc);
		return;
	}
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
