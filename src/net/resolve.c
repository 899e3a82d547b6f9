/* resolve.c: backends from DNS names (--backend-dns NAME:PORT, a Kubernetes
 * headless Service), re-resolved every --dns-interval-ms: addresses that
 * appear are added (and checked at once), addresses that go are removed (their
 * requests in flight finish there). A failed lookup keeps the last answer. At
 * start-up, static backends given by a host name are looked up once so that a
 * typo is said, not silently tried forever. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "router.h"

struct dnsq {
	uv_getaddrinfo_t req;
	struct router *rt;
	int idx;      /* --backend-dns index, or -1: a start-up check of backend `name` */
	char port[8];
	char name[256];
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct dnsq *q = req->data;
	struct router *rt = q->rt;
	if (q->idx < 0) {
		if (status < 0)
			fprintf(stderr,
				"prefixlb route: warning: backend %s: cannot resolve its host (%s); it stays listed and is "
				"ejected by the health checks until it resolves\n",
				q->name, uv_strerror(status));
		if (res)
			uv_freeaddrinfo(res);
		free(q);
		return;
	}
	if (status < 0) {
		fprintf(stderr, "prefixlb route: resolving %s: %s (keeping the last answer)\n", rt->dns[q->idx],
			uv_strerror(status));
		free(q);
		return;
	}
	/* mark this name's backends, add every address, remove the unmarked */
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx == q->idx)
			rt->be[ep].mark = 0;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		char ip[64], url[128];
		if (a->ai_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)a->ai_addr, ip, sizeof ip);
		else if (a->ai_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, ip, sizeof ip);
		else
			continue;
		snprintf(url, sizeof url, a->ai_family == AF_INET6 ? "http://[%s]:%s" : "http://%s:%s", ip, q->port);
		int ep = router_add_backend(rt, url, NULL, 0, q->idx);
		if (ep >= 0 && rt->be[ep].hc_ok == 0)
			router_start_check(rt, ep);
	}
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx == q->idx && !rt->be[ep].mark)
			router_remove_backend(rt, (int)ep);
	uv_freeaddrinfo(res);
	free(q);
}

static void lookup(struct router *rt, int idx, const char *host, const char *port, const char *name)
{
	struct dnsq *q = plb_calloc(1, sizeof *q);
	q->rt = rt;
	q->idx = idx;
	snprintf(q->port, sizeof q->port, "%s", port);
	snprintf(q->name, sizeof q->name, "%s", name);
	q->req.data = q;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	if (uv_getaddrinfo(rt->loop, &q->req, on_resolved, host, q->port, &hints))
		free(q);
}

void router_dns_round(struct router *rt)
{
	for (size_t i = 0; i < rt->n_dns; i++) {
		const char *spec = rt->dns[i];
		const char *colon = strrchr(spec, ':');
		if (!colon)
			continue;
		char host[256];
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
		lookup(rt, (int)i, host, colon + 1, spec);
	}
}

static void on_dns_timer(uv_timer_t *t)
{
	router_dns_round(t->data);
}

void router_dns_start(struct router *rt, uint64_t interval_ms)
{
	rt->dns_timer.data = rt;
	if (rt->n_dns)
		uv_timer_start(&rt->dns_timer, on_dns_timer, 0, interval_ms);
}

void router_check_names(struct router *rt)
{
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (!e || !rt->be[ep].active || rt->be[ep].dns_idx >= 0)
			continue;
		char host[160];
		snprintf(host, sizeof host, "%s", e->name);
		char *colon = strrchr(host, ':');
		if (!colon || host[0] == '[')
			continue;
		*colon = '\0';
		struct sockaddr_in6 a6;
		struct sockaddr_in a4;
		if (uv_ip4_addr(host, 0, &a4) == 0 || uv_ip6_addr(host, 0, &a6) == 0)
			continue; /* an address: nothing to resolve */
		lookup(rt, -1, host, colon + 1, e->name);
	}
}
