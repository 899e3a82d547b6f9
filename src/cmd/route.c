/* route.c: `prefixlb route`, the prefix-cache-aware reverse proxy.
 *
 * Request path: the HTTP server (src/net/server.c) hands over a whole request;
 * the body is parsed once (src/proto/openai.c) for the model and the routing
 * key, forwarded byte-for-byte; the policy (src/core/lb.c) picks a backend and
 * a lease counts the request on it; libcurl (src/net/upstream.c) carries it;
 * the response is relayed chunk by chunk as it arrives.
 *
 * Every request ends in finish(), and finish() is the only place that releases
 * the lease (idempotently), whatever ended it: normal end, client gone,
 * upstream error, timeout, retry (the lease moves to the next backend), or
 * backend removed. Backpressure: when the client's socket queue passes
 * BACKPRESSURE_BYTES the upstream transfer is paused until it drains. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "../core/hist.h"
#include "../core/lb.h"
#include "../core/policy.h"
#include "../net/server.h"
#include "../net/upstream.h"
#include "../proto/openai.h"
#include "../proto/sse.h"
#include "cmd.h"
#include "opts.h"

#define BACKPRESSURE_BYTES (256 * 1024)
#define MAX_CODES 12

struct route_opts {
	const char *listen, *policy, *config, *access_log, *health_path, *ports_file;
	struct opt_list backends, dns;
	double load_factor;
	long replication, prefix_chars, max_body, max_head, max_msgs, retries;
	long connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms;
	long health_interval_ms, health_timeout_ms, unhealthy_threshold, healthy_threshold, passive_failures;
	long dns_interval_ms, drain_timeout_ms, models_refresh_ms, client_timeout_ms, keepalive_timeout_ms;
	int backend_header, no_backend_header;
	long seed;
};

struct code_count {
	int code;
	uint64_t n;
};

/* Per lb slot; valid while lb_endpoint(ep) is non-NULL. */
struct backend {
	char url[256];
	int active;       /* slot in use by this table */
	int fixed_models; /* models given in the config: don't discover */
	int dns_idx;      /* -1: static; else index into router.dns_names */
	int static_mark;  /* reload bookkeeping */
	int hc_fail, hc_ok, passive_fail;
	int hc_busy;
	uint64_t models_at; /* loop time of the last /v1/models fetch, 0 = never */
	uint64_t ejections;
	struct code_count codes[MAX_CODES];
};

struct router {
	uv_loop_t *loop;
	struct route_opts o;
	int argc;
	char **argv;
	struct lb *lb;
	struct upstream *up;
	struct http_server *srv;
	struct backend *be;
	size_t n_be;
	uv_timer_t health_timer, dns_timer, drain_timer;
	uv_signal_t sigterm, sigint, sighup;
	FILE *log;
	int draining;
	uint64_t in_flight;
	/* metrics */
	struct hist ttfb, decision, total;
	uint64_t retries, client_gone, no_backend, timeouts, upstream_errors, requests;
	uint64_t pauses;  /* times a stream's upstream was paused for a slow client */
	long paused;      /* streams paused now */
	struct code_count local_codes[MAX_CODES]; /* answered by the router itself */
	char listen[300];
};

struct rreq {
	struct router *rt;
	struct http_conn *conn;
	uv_timer_t timer; /* first byte, then idle */
	char *body;
	size_t body_len;
	char method[16];
	char *target;
	char *model;
	char client[64];
	char **hdrs; /* forwarded request headers, NULL-terminated */
	uint64_t key;
	int has_key;
	struct lb_lease lease;
	int ep;
	int tried[LB_MAX_TRIED];
	size_t n_tried;
	int retries;
	struct up_req *up;
	int head_sent, paused, retry_pending, finished;
	struct sse_reader sse; /* tracks the relayed stream for "data: [DONE]" (8 bytes of state) */
	int status;
	uint64_t bytes;
	uint64_t t0, t_head;
	const char *error;
	char backend_name[160];
};

/* ---- helpers ------------------------------------------------------------- */

static void count_code(struct code_count *cc, int code)
{
	for (int i = 0; i < MAX_CODES; i++) {
		if (cc[i].code == code || cc[i].code == 0) {
			cc[i].code = code;
			cc[i].n++;
			return;
		}
	}
}

static void respond_err(struct router *rt, struct http_conn *c, int status, const char *msg)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	const char *ctype;
	oai_error_body(status, msg, &b, &ctype);
	count_code(rt->local_codes, status);
	http_respond(c, status, ctype, NULL, b.data, b.len);
	buf_free(&b);
}

static struct backend *backend_of(struct router *rt, int ep)
{
	if (ep < 0)
		return NULL;
	if ((size_t)ep >= rt->n_be) {
		size_t n = (size_t)ep + 16;
		struct backend *b = realloc(rt->be, n * sizeof *b);
		if (!b)
			return NULL;
		memset(b + rt->n_be, 0, (n - rt->n_be) * sizeof *b);
		rt->be = b;
		rt->n_be = n;
	}
	return &rt->be[ep];
}

/* "http://host:port/..." -> "host:port" (the endpoint's ring name). */
static int url_hostport(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://");
	if (!p || strncmp(url, "http://", 7) != 0)
		return -1;
	p += 3;
	size_t l = strcspn(p, "/?#");
	if (l == 0 || l >= n)
		return -1;
	memcpy(out, p, l);
	out[l] = '\0';
	if (!strchr(out, ':')) {
		if (l + 3 >= n)
			return -1;
		strcat(out, ":80");
	}
	return 0;
}

static int add_backend(struct router *rt, const char *url, const char *const *models, size_t n_models, int dns_idx)
{
	char name[160];
	if (url_hostport(url, name, sizeof name)) {
		fprintf(stderr, "prefixlb route: backend '%s': expected http://HOST:PORT\n", url);
		return -1;
	}
	int existing = lb_find(rt->lb, name);
	int ep = lb_add(rt->lb, name, models, n_models);
	struct backend *b = backend_of(rt, ep);
	if (ep < 0 || !b)
		return -1;
	if (existing < 0) {
		memset(b, 0, sizeof *b);
		size_t ul = strlen(url);
		while (ul && url[ul - 1] == '/')
			ul--;
		snprintf(b->url, sizeof b->url, "%.*s", (int)ul, url);
		b->dns_idx = dns_idx;
		b->active = 1;
		fprintf(stderr, "prefixlb route: backend %s added\n", name);
	}
	b->fixed_models = n_models > 0;
	b->static_mark = 1;
	return ep;
}

static void remove_backend(struct router *rt, int ep)
{
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!e || e->removed)
		return;
	fprintf(stderr, "prefixlb route: backend %s removed (%u in flight finish there)\n", e->name, e->in_flight);
	rt->be[ep].active = 0;
	lb_remove(rt->lb, ep);
}

/* ---- request life -------------------------------------------------------- */

static void free_rreq(uv_handle_t *h)
{
	struct rreq *r = h->data;
	free(r->body);
	free(r->target);
	free(r->model);
	for (size_t i = 0; r->hdrs && r->hdrs[i]; i++)
		free(r->hdrs[i]);
	free(r->hdrs);
	free(r);
}

static void maybe_finish_drain(struct router *rt);

static void access_log(struct router *rt, struct rreq *r)
{
	if (!rt->log)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	uint64_t now = uv_hrtime();
	struct buf b;
	buf_init(&b, 1 << 16);
	buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"", when,
		   ts.tv_nsec / 1000000, r->client, r->method);
	buf_json_escape(&b, r->target, strlen(r->target));
	buf_puts(&b, "\",\"model\":");
	if (r->model) {
		buf_putc(&b, '"');
		buf_json_escape(&b, r->model, strlen(r->model));
		buf_putc(&b, '"');
	} else {
		buf_puts(&b, "null");
	}
	buf_printf(&b, ",\"policy\":\"%s\",\"backend\":\"%s\",\"status\":%d,\"bytes\":%llu,\"ttfb_ms\":",
		   lb_policy_label(rt->lb), r->backend_name, r->status,
		   (unsigned long long)r->bytes);
	if (r->t_head)
		buf_printf(&b, "%.3f", (double)(r->t_head - r->t0) / 1e6);
	else
		buf_puts(&b, "null");
	buf_printf(&b, ",\"total_ms\":%.3f,\"retries\":%d,\"error\":", (double)(now - r->t0) / 1e6, r->retries);
	if (r->error) {
		buf_putc(&b, '"');
		buf_json_escape(&b, r->error, strlen(r->error));
		buf_putc(&b, '"');
	} else {
		buf_puts(&b, "null");
	}
	buf_puts(&b, "}\n");
	fwrite(b.data, 1, b.len, rt->log);
	buf_free(&b);
}

/* The one exit of every proxied request. */
static void finish(struct rreq *r)
{
	if (r->finished)
		return;
	r->finished = 1;
	struct router *rt = r->rt;
	if (r->paused) {
		r->paused = 0;
		rt->paused--;
	}
	if (r->up) {
		up_cancel(r->up);
		r->up = NULL;
	}
	if (r->lease.active) {
		struct backend *b = backend_of(rt, r->ep);
		if (b && r->status)
			count_code(b->codes, r->status);
		lb_release(&r->lease);
	} else if (r->status) {
		count_code(rt->local_codes, r->status);
	}
	hist_observe(&rt->total, (double)(uv_hrtime() - r->t0) / 1e9);
	access_log(rt, r);
	if (r->conn)
		http_conn_set_ctx(r->conn, NULL);
	r->conn = NULL;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, free_rreq);
	rt->in_flight--;
	maybe_finish_drain(rt);
}

/* Answers with an error (nothing was sent yet) and finishes. */
static void fail_request(struct rreq *r, int status, const char *msg)
{
	struct router *rt = r->rt;
	r->status = status;
	r->error = msg;
	struct http_conn *c = r->conn;
	if (c) {
		http_conn_set_ctx(c, NULL);
		struct buf b;
		buf_init(&b, 1 << 16);
		const char *ctype;
		oai_error_body(status, msg, &b, &ctype);
		http_respond(c, status, ctype, "x-prefixlb-error: 1\r\n", b.data, b.len);
		buf_free(&b);
		r->conn = NULL;
	}
	(void)rt;
	finish(r);
}

static void dispatch(struct rreq *r);

static void on_req_timer(uv_timer_t *t)
{
	struct rreq *r = t->data;
	struct router *rt = r->rt;
	rt->timeouts++;
	if (r->up) {
		up_cancel(r->up);
		r->up = NULL;
	}
	if (!r->head_sent) {
		fail_request(r, 504, "backend sent no response in time (first-byte timeout)");
		return;
	}
	/* mid-response silence: the client sees a truncated response */
	r->error = "backend went silent (idle timeout)";
	if (r->conn)
		http_conn_abort(r->conn);
	r->conn = NULL;
	finish(r);
}

static const char *const hop_by_hop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
					 "te", "trailer", "upgrade", "content-length", "date", "server", NULL};

static int is_hop(const char *name, size_t n)
{
	for (int i = 0; hop_by_hop[i]; i++)
		if (http_token_eq(name, n, hop_by_hop[i]))
			return 1;
	return 0;
}

static int up_head(void *ctx, int status, const char *headers, size_t len)
{
	struct rreq *r = ctx;
	struct router *rt = r->rt;
	if ((status == 502 || status == 503) && r->retries < rt->o.retries && r->n_tried < LB_MAX_TRIED) {
		r->retry_pending = 1;
		return 1; /* abort this transfer; on_done retries */
	}
	r->t_head = uv_hrtime();
	hist_observe(&rt->ttfb, (double)(r->t_head - r->t0) / 1e9);
	r->status = status;
	struct buf h;
	buf_init(&h, 1 << 20);
	long long clen = -1;
	const char *p = headers, *end = headers + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl + 1 : end;
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (colon && colon > p) {
			size_t nlen = (size_t)(colon - p);
			if (http_token_eq(p, nlen, "content-length"))
				clen = atoll(colon + 1);
			else if (!is_hop(p, nlen)) {
				buf_append(&h, p, (size_t)(le - p));
				if (le[-1] != '\n')
					buf_puts(&h, "\r\n");
			}
		}
		p = le;
	}
	if (!rt->o.no_backend_header)
		buf_printf(&h, "x-prefixlb-backend: %s\r\n", r->backend_name);
	int rc = clen >= 0 ? http_stream_begin_len(r->conn, status, NULL, h.data, (uint64_t)clen)
			   : http_stream_begin(r->conn, status, NULL, h.data);
	buf_free(&h);
	if (rc)
		return 1; /* the client is gone: on_abort finished r */
	r->head_sent = 1;
	struct backend *b = backend_of(rt, r->ep);
	if (b)
		b->passive_fail = 0;
	/* repeating, so that uv_timer_again() in up_data re-arms it: the idle
	 * timeout is the longest silence, not the longest response */
	uv_timer_start(&r->timer, on_req_timer, (uint64_t)rt->o.idle_timeout_ms, (uint64_t)rt->o.idle_timeout_ms);
	return 0;
}

static int up_data(void *ctx, const char *data, size_t len)
{
	struct rreq *r = ctx;
	if (!r->conn || !r->head_sent)
		return 0;
	if (http_conn_write_queue(r->conn) > BACKPRESSURE_BYTES) {
		if (!r->paused) {
			r->paused = 1;
			r->rt->paused++;
			r->rt->pauses++;
		}
		return UP_PAUSE; /* curl keeps these bytes; on_drain resumes */
	}
	r->bytes += len;
	sse_feed(&r->sse, data, len, NULL, NULL);
	if (http_stream_write(r->conn, data, len))
		return 0; /* client gone: on_abort finished r */
	uv_timer_again(&r->timer);
	return 0;
}

static void up_done(void *ctx, enum up_error err, const char *msg)
{
	struct rreq *r = ctx;
	struct router *rt = r->rt;
	r->up = NULL;
	struct backend *b = backend_of(rt, r->ep);
	if (err == UP_ECONNECT && b) {
		if (++b->passive_fail >= rt->o.passive_failures) {
			const struct lb_endpoint *e = lb_endpoint(rt->lb, r->ep);
			if (e && e->healthy) {
				lb_set_healthy(rt->lb, r->ep, 0);
				b->ejections++;
				b->hc_ok = 0;
				fprintf(stderr, "prefixlb route: backend %s ejected after %d connection failures\n", e->name,
					b->passive_fail);
			}
		}
	}
	/* Retried elsewhere: 502/503 answers, and requests no backend answered -
	 * it could not connect, timed out connecting, or went away holding the
	 * request before any response byte (killed, restarted). Once the client
	 * has the head, a failure ends its request. */
	int retryable = r->retry_pending ||
			(!r->head_sent && (err == UP_ECONNECT || err == UP_ETIMEOUT || err == UP_ELOST));
	if (retryable && r->retries < rt->o.retries && r->n_tried < LB_MAX_TRIED) {
		rt->retries++;
		r->retries++;
		r->retry_pending = 0;
		if (b)
			count_code(b->codes, err == UP_OK ? 503 : 502);
		lb_release(&r->lease);
		r->tried[r->n_tried++] = r->ep;
		uv_timer_stop(&r->timer);
		dispatch(r);
		return;
	}
	if (!r->head_sent) {
		rt->upstream_errors++;
		if (r->retry_pending)
			fail_request(r, 502, "every backend tried answered 502/503");
		else if (err == UP_ETIMEOUT)
			fail_request(r, 504, "timed out connecting to the backend");
		else
			fail_request(r, 502, msg && *msg ? msg : "bad response from the backend");
		return;
	}
	if (err != UP_OK) {
		rt->upstream_errors++;
		r->error = "backend response truncated";
		if (r->conn)
			http_conn_abort(r->conn);
		r->conn = NULL;
		finish(r);
		return;
	}
	if (r->conn) {
		struct http_conn *c = r->conn;
		http_conn_set_ctx(c, NULL);
		r->conn = NULL;
		http_stream_end(c);
	}
	finish(r);
}

static const struct up_callbacks proxy_cb = {up_head, up_data, up_done};

static void dispatch(struct rreq *r)
{
	struct router *rt = r->rt;
	uint64_t t0 = uv_hrtime();
	struct lb_req rq = {.model = r->model, .key = r->key, .tried = r->tried, .n_tried = r->n_tried};
	int ep = lb_pick(rt->lb, &rq);
	hist_observe(&rt->decision, (double)(uv_hrtime() - t0) / 1e9);
	if (ep < 0) {
		rt->no_backend++;
		fail_request(r, 503, r->n_tried ? "no backend left to retry on" : "no backend available for this model");
		return;
	}
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	lb_acquire(rt->lb, ep, &rq, &r->lease);
	r->ep = ep;
	snprintf(r->backend_name, sizeof r->backend_name, "%s", e->name);
	char url[2048];
	snprintf(url, sizeof url, "%s%s", rt->be[ep].url, r->target);
	struct up_opts o = {
		.method = r->method,
		.url = url,
		.headers = (const char *const *)r->hdrs,
		.body = r->body,
		.body_len = r->body_len,
		.connect_timeout_ms = rt->o.connect_timeout_ms,
	};
	r->up = up_start(rt->up, &o, &proxy_cb, r);
	if (!r->up) {
		fail_request(r, 500, "could not start the upstream request");
		return;
	}
	uv_timer_start(&r->timer, on_req_timer, (uint64_t)rt->o.first_byte_timeout_ms, 0);
}

static void on_abort(struct http_conn *c, void *req_ctx, void *ud)
{
	(void)c;
	struct router *rt = ud;
	struct rreq *r = req_ctx;
	if (!r)
		return;
	r->conn = NULL;
	if (r->sse.done) { /* a client that closes after [DONE] (as benchmark clients do) had the whole answer */
		finish(r);
		return;
	}
	rt->client_gone++;
	if (!r->status)
		r->status = 499; /* nginx's "client closed request" */
	r->error = "client went away";
	finish(r);
}

static void on_drain(struct http_conn *c, void *req_ctx, void *ud)
{
	(void)c;
	(void)ud;
	struct rreq *r = req_ctx;
	if (r && r->paused && r->up) {
		r->paused = 0;
		r->rt->paused--;
		up_resume(r->up);
	}
}

/* ---- local endpoints ----------------------------------------------------- */

static void model_cb(void *ctx, const char *model)
{
	struct buf *b = ctx;
	buf_puts(b, b->data[b->len - 1] == '[' ? "{\"id\":\"" : ",{\"id\":\"");
	buf_json_escape(b, model, strlen(model));
	buf_puts(b, "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"prefixlb\"}");
}

/* Counts the distinct models of the pool, keeping the first one's name. */
struct one_model {
	const char *name;
	size_t n;
};

static void one_model_cb(void *ctx, const char *model)
{
	struct one_model *om = ctx;
	if (om->n++ == 0)
		om->name = model;
}

static void handle_models(struct router *rt, struct http_conn *c)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_puts(&b, "{\"object\":\"list\",\"data\":[");
	lb_models(rt->lb, model_cb, &b);
	buf_puts(&b, "]}");
	count_code(rt->local_codes, 200);
	http_respond(c, 200, "application/json", NULL, b.data, b.len);
	buf_free(&b);
}

static void metric_line(struct buf *b, const char *name, const char *labels, double v)
{
	buf_printf(b, "%s{%s} %.17g\n", name, labels, v);
}

static void handle_metrics(struct router *rt, struct http_conn *c)
{
	struct buf b;
	buf_init(&b, 1 << 24);
	const char *pol = lb_policy_label(rt->lb);
	char lab[512];
	buf_puts(&b, "# HELP prefixlb_requests_total Requests answered, by backend (empty: by the router) and status.\n"
		     "# TYPE prefixlb_requests_total counter\n");
	for (int i = 0; i < MAX_CODES && rt->local_codes[i].code; i++) {
		snprintf(lab, sizeof lab, "backend=\"\",policy=\"%s\",code=\"%d\"", pol, rt->local_codes[i].code);
		metric_line(&b, "prefixlb_requests_total", lab, (double)rt->local_codes[i].n);
	}
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (!e)
			continue;
		for (int i = 0; i < MAX_CODES && rt->be[ep].codes[i].code; i++) {
			snprintf(lab, sizeof lab, "backend=\"%s\",policy=\"%s\",code=\"%d\"", e->name, pol,
				 rt->be[ep].codes[i].code);
			metric_line(&b, "prefixlb_requests_total", lab, (double)rt->be[ep].codes[i].n);
		}
	}
	const char *series[][3] = {
		{"prefixlb_backend_in_flight", "gauge", "Requests in flight on each backend (the routing load)."},
		{"prefixlb_backend_healthy", "gauge", "1 if the backend receives new requests."},
		{"prefixlb_backend_requests_total", "counter", "Requests sent to each backend, retries included."},
		{"prefixlb_ejections_total", "counter", "Times a backend was ejected (health check or passive)."},
	};
	for (int s = 0; s < 4; s++) {
		buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", series[s][0], series[s][2], series[s][0], series[s][1]);
		for (size_t ep = 0; ep < rt->n_be; ep++) {
			const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
			if (!e)
				continue;
			snprintf(lab, sizeof lab, "backend=\"%s\"", e->name);
			double v = s == 0 ? e->in_flight
				   : s == 1 ? (e->healthy && !e->removed)
				   : s == 2 ? (double)e->requests
					    : (double)rt->be[ep].ejections;
			metric_line(&b, series[s][0], lab, v);
		}
	}
	metric_format(&b, "prefixlb_in_flight", "gauge", "Client requests being served.", "", (double)rt->in_flight);
	metric_format(&b, "prefixlb_retries_total", "counter", "Requests retried on another backend.", "",
		      (double)rt->retries);
	metric_format(&b, "prefixlb_client_disconnects_total", "counter", "Clients that left before the end.", "",
		      (double)rt->client_gone);
	metric_format(&b, "prefixlb_timeouts_total", "counter", "First-byte and idle timeouts.", "", (double)rt->timeouts);
	metric_format(&b, "prefixlb_upstream_errors_total", "counter", "Requests failed by backend errors.", "",
		      (double)rt->upstream_errors);
	metric_format(&b, "prefixlb_paused_streams", "gauge",
		      "Streams whose backend transfer is paused because the client is not reading.", "",
		      (double)rt->paused);
	metric_format(&b, "prefixlb_backpressure_pauses_total", "counter",
		      "Times a backend transfer was paused for a client that was not reading.", "", (double)rt->pauses);
	metric_format(&b, "prefixlb_no_backend_total", "counter", "Requests with no backend to go to.", "",
		      (double)rt->no_backend);
	hist_format(&rt->ttfb, "prefixlb_ttfb_seconds", "Time from request to the backend's response head.", "", &b);
	hist_format(&rt->total, "prefixlb_request_duration_seconds", "Time from request to its end.", "", &b);
	hist_format(&rt->decision, "prefixlb_decision_seconds", "Time to choose a backend.", "", &b);
	http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
	buf_free(&b);
}

/* ---- request entry ------------------------------------------------------- */

static char **forward_headers(const struct http_msg *m, const char *client)
{
	char **v = calloc(m->n_headers + 2, sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct http_header *h = &m->headers[i];
		if (is_hop(h->name, h->name_len) || http_token_eq(h->name, h->name_len, "host") ||
		    http_token_eq(h->name, h->name_len, "expect") ||
		    http_token_eq(h->name, h->name_len, "x-forwarded-for"))
			continue;
		size_t n = h->name_len + h->value_len + 3;
		v[k] = malloc(n);
		if (!v[k])
			break;
		snprintf(v[k], n, "%.*s: %.*s", (int)h->name_len, h->name, (int)h->value_len, h->value);
		k++;
	}
	const struct http_header *xff = http_find(m, "x-forwarded-for");
	char ip[64];
	snprintf(ip, sizeof ip, "%s", client);
	char *colon = strrchr(ip, ':');
	if (colon)
		*colon = '\0';
	size_t n = 96 + (xff ? xff->value_len : 0);
	v[k] = malloc(n);
	if (v[k]) {
		if (xff)
			snprintf(v[k], n, "x-forwarded-for: %.*s, %s", (int)xff->value_len, xff->value, ip);
		else
			snprintf(v[k], n, "x-forwarded-for: %s", ip);
	}
	return v;
}

static void on_request(struct http_conn *c, const struct http_msg *m, const char *body, size_t len, void *ud)
{
	struct router *rt = ud;
	rt->requests++;
	int is_chat = http_path_is(m, "/v1/chat/completions"), is_cmpl = http_path_is(m, "/v1/completions");
	int is_v1 = m->target_len >= 4 && memcmp(m->target, "/v1/", 4) == 0;
	if (http_path_is(m, "/health")) {
		if (rt->draining)
			respond_err(rt, c, 503, "draining");
		else
			http_respond(c, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15);
		return;
	}
	if (http_path_is(m, "/metrics") && (http_method_is(m, "GET") || http_method_is(m, "HEAD"))) {
		handle_metrics(rt, c);
		return;
	}
	if (http_path_is(m, "/v1/models") && (http_method_is(m, "GET") || http_method_is(m, "HEAD"))) {
		handle_models(rt, c);
		return;
	}
	if (!is_v1) {
		respond_err(rt, c, 404, "not found");
		return;
	}
	if (!http_method_is(m, "POST")) {
		respond_err(rt, c, 405, "only POST is routed under /v1/ (and GET /v1/models)");
		return;
	}
	if (rt->draining) {
		respond_err(rt, c, 503, "the router is shutting down");
		return;
	}
	struct rreq *r = calloc(1, sizeof *r);
	if (!r) {
		respond_err(rt, c, 500, "out of memory");
		return;
	}
	r->rt = rt;
	sse_reader_init(&r->sse, 0); /* tracking only: never allocates */
	r->t0 = uv_hrtime();
	r->ep = -1;
	snprintf(r->method, sizeof r->method, "POST");
	snprintf(r->client, sizeof r->client, "%s", http_conn_peer(c));
	r->target = strndup(m->target, m->target_len);
	r->body = malloc(len + 1);
	if (!r->target || !r->body) {
		free(r->target);
		free(r->body);
		free(r);
		respond_err(rt, c, 500, "out of memory");
		return;
	}
	memcpy(r->body, body, len);
	r->body[len] = '\0';
	r->body_len = len;
	/* read once: model and routing key; the body is forwarded unchanged */
	char err[512];
	struct oai_route info;
	int kind = is_chat ? OAI_CHAT : is_cmpl ? OAI_COMPLETIONS : OAI_OTHER;
	if (oai_route_info(body, len, kind, (size_t)rt->o.prefix_chars * 4, &info, err, sizeof err)) {
		free(r->target);
		free(r->body);
		free(r);
		respond_err(rt, c, 400, err);
		return;
	}
	const char *refuse = NULL;
	int refuse_status = 400;
	if (kind != OAI_OTHER && !info.model) { /* as vLLM: no model means the only one, if one */
		struct one_model om = {NULL, 0};
		lb_models(rt->lb, one_model_cb, &om);
		if (om.n != 1)
			refuse = "you must provide a model parameter";
		else if (!(info.model = strdup(om.name)))
			refuse = "out of memory", refuse_status = 500;
	}
	if (info.n_messages > (size_t)rt->o.max_msgs) {
		snprintf(err, sizeof err, "too many messages: %zu (at most %ld, --max-messages)", info.n_messages,
			 rt->o.max_msgs);
		refuse = err;
	}
	if (refuse) {
		respond_err(rt, c, refuse_status, refuse);
		oai_route_free(&info);
		free(r->target);
		free(r->body);
		free(r);
		return;
	}
	r->model = info.model;
	info.model = NULL;
	r->key = lb_key(rt->lb, info.key.data ? info.key.data : "", info.key.len);
	oai_route_free(&info);
	if (r->model && !lb_has_model(rt->lb, r->model)) {
		snprintf(err, sizeof err, "The model `%s` does not exist.", r->model);
		free(r->model);
		free(r->target);
		free(r->body);
		free(r);
		respond_err(rt, c, 404, err);
		return;
	}
	r->hdrs = forward_headers(m, r->client);
	r->conn = c;
	uv_timer_init(rt->loop, &r->timer);
	r->timer.data = r;
	rt->in_flight++;
	http_conn_set_ctx(c, r);
	dispatch(r);
}

/* ---- health checks and model discovery ------------------------------------ */

struct hc {
	struct router *rt;
	int ep;
	uint32_t gen;
	int status;
	int models; /* a /v1/models fetch, not a health check */
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
	if (hc->models && buf_append(&hc->body, d, n))
		return 0;
	return 0;
}

static void start_models_fetch(struct router *rt, int ep);

static void apply_models(struct router *rt, int ep, struct buf *body)
{
	json_error_t je;
	json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, &je);
	json_t *data = json_object_get(j, "data");
	size_t n = json_array_size(data), i;
	const char **models = calloc(n + 1, sizeof *models);
	size_t k = 0;
	json_t *m;
	json_array_foreach(data, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		if (id && models)
			models[k++] = id;
	}
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (k && e && !e->removed && models)
		lb_add(rt->lb, e->name, models, k);
	free(models);
	json_decref(j);
}

static void hc_done(void *ctx, enum up_error err, const char *msg)
{
	(void)msg;
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
				if (!e->healthy && b->hc_ok >= rt->o.healthy_threshold) {
					lb_set_healthy(rt->lb, hc->ep, 1);
					b->passive_fail = 0;
					fprintf(stderr, "prefixlb route: backend %s healthy again\n", e->name);
				}
				uint64_t now = uv_now(rt->loop);
				if (!b->fixed_models &&
				    (!b->models_at || now - b->models_at >= (uint64_t)rt->o.models_refresh_ms)) {
					b->models_at = now;
					start_models_fetch(rt, hc->ep);
				}
			} else {
				b->hc_ok = 0;
				if (++b->hc_fail >= rt->o.unhealthy_threshold && e->healthy) {
					lb_set_healthy(rt->lb, hc->ep, 0);
					b->ejections++;
					fprintf(stderr, "prefixlb route: backend %s ejected after %d failed health checks\n",
						e->name, b->hc_fail);
				}
			}
		}
	}
	buf_free(&hc->body);
	free(hc);
}

static const struct up_callbacks hc_cb = {hc_head, hc_data, hc_done};

static void start_check(struct router *rt, int ep, int models)
{
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	if (!e || e->removed)
		return;
	struct hc *hc = calloc(1, sizeof *hc);
	if (!hc)
		return;
	hc->rt = rt;
	hc->ep = ep;
	hc->gen = e->gen;
	hc->models = models;
	buf_init(&hc->body, 4 << 20);
	char url[512];
	snprintf(url, sizeof url, "%s%s", rt->be[ep].url, models ? "/v1/models" : rt->o.health_path);
	struct up_opts o = {
		.method = "GET",
		.url = url,
		.connect_timeout_ms = rt->o.health_timeout_ms,
		.total_timeout_ms = rt->o.health_timeout_ms,
	};
	if (!up_start(rt->up, &o, &hc_cb, hc)) {
		buf_free(&hc->body);
		free(hc);
		return;
	}
	if (!models)
		rt->be[ep].hc_busy = 1;
}

static void start_models_fetch(struct router *rt, int ep)
{
	start_check(rt, ep, 1);
}

static void on_health_timer(uv_timer_t *t)
{
	struct router *rt = t->data;
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (e && !e->removed && rt->be[ep].active && !rt->be[ep].hc_busy)
			start_check(rt, (int)ep, 0);
	}
}

/* ---- DNS ----------------------------------------------------------------- */

struct dnsq {
	uv_getaddrinfo_t req;
	struct router *rt;
	int idx;
	char port[8];
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct dnsq *q = req->data;
	struct router *rt = q->rt;
	if (status < 0) {
		fprintf(stderr, "prefixlb route: resolving %s: %s (keeping the last answer)\n", rt->o.dns.v[q->idx],
			uv_strerror(status));
		free(q);
		return;
	}
	/* mark this name's backends, add every address, remove the unmarked */
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx == q->idx)
			rt->be[ep].static_mark = 0;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		char ip[64], url[128];
		if (a->ai_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)a->ai_addr, ip, sizeof ip);
		else if (a->ai_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, ip, sizeof ip);
		else
			continue;
		snprintf(url, sizeof url, a->ai_family == AF_INET6 ? "http://[%s]:%s" : "http://%s:%s", ip, q->port);
		int ep = add_backend(rt, url, NULL, 0, q->idx);
		if (ep >= 0 && rt->be[ep].hc_ok == 0 && !rt->be[ep].hc_busy)
			start_check(rt, ep, 0);
	}
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx == q->idx && !rt->be[ep].static_mark)
			remove_backend(rt, (int)ep);
	uv_freeaddrinfo(res);
	free(q);
}

static void on_dns_timer(uv_timer_t *t)
{
	struct router *rt = t->data;
	for (size_t i = 0; i < rt->o.dns.n; i++) {
		const char *spec = rt->o.dns.v[i];
		const char *colon = strrchr(spec, ':');
		if (!colon)
			continue;
		struct dnsq *q = calloc(1, sizeof *q);
		if (!q)
			continue;
		q->rt = rt;
		q->idx = (int)i;
		snprintf(q->port, sizeof q->port, "%s", colon + 1);
		char host[256];
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
		q->req.data = q;
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
		if (uv_getaddrinfo(rt->loop, &q->req, on_resolved, host, q->port, &hints))
			free(q);
	}
}

/* ---- options, config, reload ---------------------------------------------- */

static void opts_defaults(struct route_opts *o)
{
	memset(o, 0, sizeof *o);
	o->listen = "0.0.0.0:8000";
	o->policy = "prefix-hash";
	o->access_log = "-";
	o->health_path = "/health";
	o->load_factor = 1.25;
	o->replication = 256;
	o->prefix_chars = 100;
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
	o->seed = 1;
}

static const char route_usage[] =
	"usage: prefixlb route [--listen 0.0.0.0:8000] [--policy prefix-hash] --backend http://HOST:PORT ...\n"
	"                      [--backend-dns NAME:PORT] [--config FILE] [options]\n"
	"  A prefix-cache-aware HTTP load balancer for OpenAI-compatible servers.\n"
	"  Policies: prefix-hash (KubeAI's CHWBL), least-load, round-robin, random.\n"
	"  The config file takes the same options, one per line: 'name = value' (or 'name value'),\n"
	"  '#' comments; 'backend = URL models=a,b' pins a backend's models. SIGHUP reloads it.\n";

/* The options table, bound to o. */
static void opt_table(struct route_opts *o, struct opt *t)
{
	struct opt tab[] = {
		{"listen", OPT_STR, &o->listen, "HOST:PORT to accept clients on", 0, 0},
		{"policy", OPT_STR, &o->policy, "prefix-hash | least-load | round-robin | random", 0, 0},
		{"backend", OPT_LIST, &o->backends, "backend base URL http://HOST:PORT (repeatable)", 0, 0},
		{"backend-dns", OPT_LIST, &o->dns, "NAME:PORT re-resolved every --dns-interval-ms (repeatable)", 0, 0},
		{"config", OPT_STR, &o->config, "file of options (reloaded on SIGHUP)", 0, 0},
		{"load-factor", OPT_DBL, &o->load_factor, "prefix-hash bound c: load <= c*(total+1)/n (>1)", 1.0001, 100},
		{"replication", OPT_INT, &o->replication, "virtual nodes per backend on the ring", 1, 100000},
		{"prefix-chars", OPT_INT, &o->prefix_chars, "code points of the prompt hashed", 1, 1 << 20},
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
		{"dns-interval-ms", OPT_INT, &o->dns_interval_ms, "re-resolution period of --backend-dns", 100, 3600000},
		{"models-refresh-ms", OPT_INT, &o->models_refresh_ms, "how often GET /v1/models is asked", 1000, 86400000},
		{"drain-timeout-ms", OPT_INT, &o->drain_timeout_ms, "SIGTERM: wait this long for streams", 0, 86400000},
		{"client-timeout-ms", OPT_INT, &o->client_timeout_ms, "a client must send its whole request within this (408)", 100, 3600000},
		{"keepalive-timeout-ms", OPT_INT, &o->keepalive_timeout_ms, "idle client connections are closed after this", 100, 3600000},
		{"max-body", OPT_INT, &o->max_body, "largest request body (413 above)", 1024, 1L << 30},
		{"max-header", OPT_INT, &o->max_head, "largest request head (431 above)", 1024, 1 << 24},
		{"max-messages", OPT_INT, &o->max_msgs, "most chat messages in a request", 1, 10000000},
		{"access-log", OPT_STR, &o->access_log, "JSON lines to FILE, - (stdout) or off", 0, 0},
		{"no-backend-header", OPT_BOOL, &o->no_backend_header, "don't add x-prefixlb-backend", 0, 0},
		{"seed", OPT_INT, &o->seed, "RNG seed (random policy, tie-breaks)", 0, 0},
		{"ports-file", OPT_STR, &o->ports_file, "write the bound port here (tests)", 0, 0},
		{0},
	};
	memcpy(t, tab, sizeof tab);
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

static int parse_all(struct router *rt, struct route_opts *o, char ***cfg_argv)
{
	opts_defaults(o);
	struct opt tab[40];
	opt_table(o, tab);
	/* CLI first (to learn --config), then the file, then the CLI again so the
	 * command line wins */
	struct route_opts probe;
	opts_defaults(&probe);
	struct opt ptab[40];
	opt_table(&probe, ptab);
	int r = opts_parse("route", route_usage, ptab, rt->argc, rt->argv, NULL, NULL);
	opt_list_free(&probe.backends);
	opt_list_free(&probe.dns);
	if (r)
		return r;
	*cfg_argv = NULL;
	if (probe.config) {
		int cargc;
		char **cargv = cmd_config_argv(probe.config, "route", &cargc);
		if (!cargv)
			return -1;
		if (opts_parse("route", route_usage, tab, cargc, cargv, NULL, NULL)) {
			fprintf(stderr, "prefixlb route: in %s\n", probe.config);
			cmd_free_argv(cargv);
			return -1;
		}
		*cfg_argv = cargv; /* o's strings point into it */
	}
	return opts_parse("route", route_usage, tab, rt->argc, rt->argv, NULL, NULL);
}

static int make_lb_opts(const struct route_opts *o, struct lb_opts *lo)
{
	char err[600];
	lb_opts_default(lo);
	if (lb_opts_policy(lo, o->policy, err, sizeof err)) {
		fprintf(stderr, "prefixlb route: %s\n", err);
		return -1;
	}
	lb_opts_set(lo, "load-factor", o->load_factor);
	lb_opts_set(lo, "replication", (double)o->replication);
	lb_opts_set(lo, "prefix-chars", (double)o->prefix_chars);
	lo->seed = (uint64_t)o->seed;
	return 0;
}

/* Adds the static backends of o; removes static ones no longer listed. */
static int apply_backends(struct router *rt, struct route_opts *o)
{
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx < 0)
			rt->be[ep].static_mark = 0;
	for (size_t i = 0; i < o->backends.n; i++) {
		char spec[1024];
		snprintf(spec, sizeof spec, "%s", o->backends.v[i]);
		const char *models[64];
		size_t nm = split_backend(spec, models, 64);
		int ep = add_backend(rt, spec, models, nm, -1);
		if (ep < 0)
			return -1;
	}
	for (size_t ep = 0; ep < rt->n_be; ep++)
		if (rt->be[ep].active && rt->be[ep].dns_idx < 0 && !rt->be[ep].static_mark)
			remove_backend(rt, (int)ep);
	return 0;
}

static char **cfg_strings; /* keeps the config file's strings alive */

/* Whether every static backend of o is a URL add_backend takes. */
static int check_backends(const struct route_opts *o)
{
	for (size_t i = 0; i < o->backends.n; i++) {
		char spec[1024], name[160];
		const char *models[64];
		snprintf(spec, sizeof spec, "%s", o->backends.v[i]);
		split_backend(spec, models, 64);
		if (url_hostport(spec, name, sizeof name)) {
			fprintf(stderr, "prefixlb route: backend '%s': expected http://HOST:PORT\n", spec);
			return -1;
		}
	}
	return 0;
}

static void on_hup(uv_signal_t *s, int sig)
{
	(void)sig;
	struct router *rt = s->data;
	struct route_opts o;
	char **cargv = NULL;
	struct lb_opts lo;
	/* all checked before anything changes: a bad file changes nothing */
	if (parse_all(rt, &o, &cargv) || make_lb_opts(&o, &lo) || check_backends(&o) || lb_set_opts(rt->lb, &lo)) {
		fprintf(stderr, "prefixlb route: reload failed; keeping the running configuration\n");
		opt_list_free(&o.backends);
		opt_list_free(&o.dns);
		cmd_free_argv(cargv);
		return;
	}
	if (strcmp(o.listen, rt->listen) != 0)
		fprintf(stderr, "prefixlb route: reload: --listen changes need a restart (ignored)\n");
	o.listen = rt->listen;
	opt_list_free(&rt->o.backends);
	opt_list_free(&rt->o.dns);
	rt->o = o;
	cmd_free_argv(cfg_strings);
	cfg_strings = cargv;
	apply_backends(rt, &rt->o);
	on_dns_timer(&rt->dns_timer);
	on_health_timer(&rt->health_timer);
	fprintf(stderr, "prefixlb route: configuration reloaded (policy %s, %zu static backends)\n", rt->o.policy,
		rt->o.backends.n);
}

/* ---- shutdown ------------------------------------------------------------ */

static void close_all(struct router *rt)
{
	uv_timer_stop(&rt->health_timer);
	uv_timer_stop(&rt->dns_timer);
	uv_timer_stop(&rt->drain_timer);
	uv_close((uv_handle_t *)&rt->health_timer, NULL);
	uv_close((uv_handle_t *)&rt->dns_timer, NULL);
	uv_close((uv_handle_t *)&rt->drain_timer, NULL);
	uv_close((uv_handle_t *)&rt->sigterm, NULL);
	uv_close((uv_handle_t *)&rt->sigint, NULL);
	uv_close((uv_handle_t *)&rt->sighup, NULL);
	if (rt->srv) {
		http_server_close(rt->srv); /* in-flight requests get on_abort -> finish */
		rt->srv = NULL;
	}
	upstream_free(rt->up);
	rt->up = NULL;
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct router *rt = t->data;
	if (rt->draining == 1) {
		if (rt->in_flight)
			fprintf(stderr, "prefixlb route: drain timeout, %llu requests cut\n",
				(unsigned long long)rt->in_flight);
		rt->draining = 2;
		close_all(rt);
	}
}

/* Called from finish(), possibly inside a libcurl callback: the actual close
 * happens from the loop, on a zero timer. */
static void maybe_finish_drain(struct router *rt)
{
	if (rt->draining == 1 && rt->in_flight == 0)
		uv_timer_start(&rt->drain_timer, on_drain_timeout, 0, 0);
}

static void on_term(uv_signal_t *s, int sig)
{
	struct router *rt = s->data;
	if (rt->draining)
		return;
	rt->draining = 1;
	http_server_stop_listening(rt->srv); /* before saying so: once said, connections are refused */
	fprintf(stderr, "prefixlb route: %s, draining %llu requests (up to %ld ms)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
		(unsigned long long)rt->in_flight, rt->o.drain_timeout_ms);
	uv_timer_start(&rt->drain_timer, on_drain_timeout, (uint64_t)rt->o.drain_timeout_ms, 0);
	maybe_finish_drain(rt);
}

/* ---- main ---------------------------------------------------------------- */

int cmd_route(int argc, char **argv)
{
	struct router rt = {0};
	rt.argc = argc;
	rt.argv = argv;
	rt.loop = uv_default_loop();
	int pr = parse_all(&rt, &rt.o, &cfg_strings);
	if (pr) {
		opt_list_free(&rt.o.backends);
		opt_list_free(&rt.o.dns);
		cmd_free_argv(cfg_strings);
		return pr == 1 ? 0 : 2;
	}
	int rc = 0;
	struct lb_opts lo;
	if (make_lb_opts(&rt.o, &lo)) {
		rc = 2;
		goto out_opts;
	}
	if (!rt.o.backends.n && !rt.o.dns.n) {
		fprintf(stderr, "prefixlb route: no backend (--backend URL or --backend-dns NAME:PORT)\n");
		rc = 2;
		goto out_opts;
	}
	char host[256];
	const char *colon = strrchr(rt.o.listen, ':');
	long port = colon ? strtol(colon + 1, NULL, 10) : -1;
	if (!colon || port < 0 || port > 65535 || (size_t)(colon - rt.o.listen) >= sizeof host) {
		fprintf(stderr, "prefixlb route: --listen %s: expected HOST:PORT\n", rt.o.listen);
		rc = 2;
		goto out_opts;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - rt.o.listen), rt.o.listen);
	snprintf(rt.listen, sizeof rt.listen, "%s", rt.o.listen);
	rt.o.listen = rt.listen;
	if (host[0] == '[') { /* [::1] */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (!strcmp(rt.o.access_log, "off"))
		rt.log = NULL;
	else if (!strcmp(rt.o.access_log, "-"))
		rt.log = stdout;
	else if (!(rt.log = fopen(rt.o.access_log, "a"))) {
		fprintf(stderr, "prefixlb route: %s: %s\n", rt.o.access_log, strerror(errno));
		rc = 2;
		goto out_opts;
	}
	if (rt.log)
		setvbuf(rt.log, NULL, _IOLBF, 0);
	cmd_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	static const double ttfb_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
	static const double dec_b[] = {1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3};
	static const double tot_b[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
	hist_init(&rt.ttfb, ttfb_b, sizeof ttfb_b / sizeof *ttfb_b);
	hist_init(&rt.decision, dec_b, sizeof dec_b / sizeof *dec_b);
	hist_init(&rt.total, tot_b, sizeof tot_b / sizeof *tot_b);
	rt.lb = lb_new(&lo);
	rt.up = upstream_new(rt.loop, 20000);
	if (!rt.lb || !rt.up || apply_backends(&rt, &rt.o)) {
		rc = 2;
		goto out;
	}
	struct http_server_cfg cfg = {
		.host = host,
		.port = (int)port,
		.max_head = (size_t)rt.o.max_head,
		.request_timeout_ms = (uint64_t)rt.o.client_timeout_ms,
		.idle_timeout_ms = (uint64_t)rt.o.keepalive_timeout_ms,
		.max_body = (size_t)rt.o.max_body,
		.on_request = on_request,
		.on_abort = on_abort,
		.on_drain = on_drain,
		.error_body = oai_error_body,
		.ud = &rt,
	};
	char err[256];
	rt.srv = http_server_new(rt.loop, &cfg, err, sizeof err);
	if (!rt.srv) {
		fprintf(stderr, "prefixlb route: %s\n", err);
		rc = 1;
		goto out;
	}
	if (rt.o.ports_file) { /* atomically: tests and the lab read it as soon as it exists */
		char line[32];
		int n = snprintf(line, sizeof line, "%d\n", http_server_port(rt.srv));
		if (cmd_write_file_atomic(rt.o.ports_file, line, (size_t)n)) {
			fprintf(stderr, "prefixlb route: %s: cannot write\n", rt.o.ports_file);
			rc = 1;
			goto out;
		}
	}
	uv_timer_init(rt.loop, &rt.health_timer);
	uv_timer_init(rt.loop, &rt.dns_timer);
	uv_timer_init(rt.loop, &rt.drain_timer);
	rt.health_timer.data = rt.dns_timer.data = rt.drain_timer.data = &rt;
	uv_timer_start(&rt.health_timer, on_health_timer, 0, (uint64_t)rt.o.health_interval_ms);
	if (rt.o.dns.n)
		uv_timer_start(&rt.dns_timer, on_dns_timer, 0, (uint64_t)rt.o.dns_interval_ms);
	uv_signal_init(rt.loop, &rt.sigterm);
	uv_signal_init(rt.loop, &rt.sigint);
	uv_signal_init(rt.loop, &rt.sighup);
	rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
	uv_signal_start(&rt.sigterm, on_term, SIGTERM);
	uv_signal_start(&rt.sigint, on_term, SIGINT);
	uv_signal_start(&rt.sighup, on_hup, SIGHUP);
	fprintf(stderr, "prefixlb route: listening on %s:%d, policy %s, %zu backend%s%s\n", host,
		http_server_port(rt.srv), lo.policy->name, rt.o.backends.n, rt.o.backends.n == 1 ? "" : "s",
		rt.o.dns.n ? " + DNS" : "");
	uv_run(rt.loop, UV_RUN_DEFAULT);
	if (lb_total_in_flight(rt.lb))
		fprintf(stderr, "prefixlb route: BUG: %llu in-flight counts left at exit\n",
			(unsigned long long)lb_total_in_flight(rt.lb));
	rt.up = NULL;
out:
	if (rt.up) {
		upstream_free(rt.up);
		uv_run(rt.loop, UV_RUN_DEFAULT);
	}
	lb_free(rt.lb);
	free(rt.be);
	if (rt.log && rt.log != stdout)
		fclose(rt.log);
out_opts:
	opt_list_free(&rt.o.backends);
	opt_list_free(&rt.o.dns);
	cmd_free_argv(cfg_strings);
	cfg_strings = NULL;
	uv_loop_close(rt.loop);
	return rc;
}
