/* proxy.c: the request path of `prefixlb route` (see router.h).
 *
 * The HTTP server (server.c) hands over a whole request; the body is read once
 * (src/proto/openai.c) for the model and the routing key and forwarded
 * byte for byte; the policy (src/core/lb.c) picks a backend and a lease
 * counts the request on it; the HTTP client (httpc.c) carries it on the
 * backend's pool of kept-alive connections; the response is relayed as it
 * arrives, the client's socket corked while one upstream read is relayed
 * (one write per read: head, data and end together). The decisions (retry,
 * resend, fail, cut, done) are src/core/proxy.c's; this file carries them out.
 *
 * Every request ends in finish(), and finish() is the only place that
 * releases the lease (idempotently), whatever ended it: normal end, client
 * gone, upstream error, timeout, retry (the lease moves to the next backend),
 * or backend removed. Backpressure: when the client's socket queue passes
 * BACKPRESSURE_BYTES the upstream transfer is paused until it drains. Every
 * request, the router's own answers included, gets one access log line. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/mem.h"
#include "../core/policy.h"
#include "../core/proxy.h"
#include "../proto/openai.h"
#include "../proto/sse.h"
#include "router.h"
#include "kvsub.h"

#define BACKPRESSURE_BYTES (256 * 1024)

/* Finds usage's "prompt_tokens" and "cached_tokens" in the relayed bytes (SSE
 * or a JSON body), however they are cut into reads: each read is searched,
 * and so is the seam with the previous read's last bytes. */
struct usniff {
	char carry[48];
	size_t n;
	long cached, prompt;
};

static void sniff_scan(struct usniff *u, const char *p, size_t n)
{
	static const struct {
		const char *pat;
		size_t len;
		size_t off;
	} pats[] = {{"\"cached_tokens\":", 16, offsetof(struct usniff, cached)},
		    {"\"prompt_tokens\":", 16, offsetof(struct usniff, prompt)}};
	for (int k = 0; k < 2; k++) {
		const char *q = p, *end = p + n;
		while ((q = memmem(q, (size_t)(end - q), pats[k].pat, pats[k].len))) {
			const char *d = q + pats[k].len;
			while (d < end && *d == ' ')
				d++;
			long v = 0;
			const char *ds = d;
			while (d < end && *d >= '0' && *d <= '9' && d - ds < 15)
				v = v * 10 + (*d++ - '0');
			if (d > ds && d < end) /* a whole number: something follows it */
				*(long *)((char *)u + pats[k].off) = v;
			q += pats[k].len;
		}
	}
}

static void sniff_feed(struct usniff *u, const char *d, size_t n)
{
	char w[96];
	size_t head = n < 48 ? n : 48;
	memcpy(w, u->carry, u->n);
	memcpy(w + u->n, d, head);
	sniff_scan(u, w, u->n + head);
	sniff_scan(u, d, n);
	if (n >= sizeof u->carry) {
		memcpy(u->carry, d + n - sizeof u->carry, sizeof u->carry);
		u->n = sizeof u->carry;
	} else {
		size_t keep = u->n + n > sizeof u->carry ? sizeof u->carry - n : u->n;
		memmove(u->carry, u->carry + u->n - keep, keep);
		memcpy(u->carry + keep, d, n);
		u->n = keep + n;
	}
}

struct rreq {
	struct router *rt;
	struct http_conn *conn;
	uv_timer_t timer; /* first byte, then idle */
	char *body;
	size_t body_len;
	char *target;
	char *model;
	char client[64];
	struct buf hdrs; /* forwarded request headers, "name: value\r\n" lines (a header of ours: one more line) */
	int orca_ours; /* the router asked for the backend's load (signals.c): its header is not relayed */
	char *url;       /* the request's target behind a backend with a path prefix */
	uint64_t key;
	struct lb_lease lease;
	int ep;
	struct proxy_req pr;
	struct httpc_req *up;
	int paused;
	struct sse_reader sse; /* tracks the relayed stream for "data: [DONE]" (8 bytes of state) */
	struct usniff usage;   /* what the engine reported it reused */
	struct tok_ids ids;    /* the whole prompt, for policies that need it: its ids, */
	struct buf text;       /* or its text */
	long max_tokens;
	long predicted;        /* the policy's predicted cached tokens on the chosen backend, -1: none */
	int got_data;
	int status;
	uint64_t bytes;
	uint64_t t0, t_head;
	const char *error;
	char backend_name[160];
	struct admit_entry adm; /* admission control (admission.c) */
};

void router_count_code(struct code_count *cc, int code)
{
	for (int i = 0; i < ROUTER_MAX_CODES; i++) {
		if (cc[i].code == code || cc[i].code == 0) {
			cc[i].code = code;
			cc[i].n++;
			return;
		}
	}
}

void router_error_body(int status, const char *msg, struct buf *out, const char **ctype)
{
	oai_error_body(status, msg, out, ctype);
}

void router_init_metrics(struct router *rt)
{
	static const double ttfb_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
	static const double dec_b[] = {1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3};
	static const double tot_b[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
	hist_init(&rt->ttfb, ttfb_b, sizeof ttfb_b / sizeof *ttfb_b);
	hist_init(&rt->decision, dec_b, sizeof dec_b / sizeof *dec_b);
	hist_init(&rt->total, tot_b, sizeof tot_b / sizeof *tot_b);
}

/* ---- access log ----------------------------------------------------------- */

static void str_or_null(struct buf *b, const char *s)
{
	if (!s) {
		buf_puts(b, "null");
		return;
	}
	buf_putc(b, '"');
	buf_json_escape(b, s, strlen(s));
	buf_putc(b, '"');
}

static void log_line(struct router *rt, const char *client, const char *path, size_t path_len, const char *model,
		     const char *backend, int status, uint64_t bytes, uint64_t t0, uint64_t t_head, int retries,
		     const char *error, long predicted, long cached, const struct admit_entry *adm)
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
	buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"client\":\"%s\",\"method\":\"POST\",\"path\":\"", when,
		   ts.tv_nsec / 1000000, client);
	buf_json_escape(&b, path, path_len);
	buf_puts(&b, "\",\"model\":");
	str_or_null(&b, model);
	buf_printf(&b, ",\"policy\":\"%s\",\"backend\":", lb_policy_label(rt->lb));
	str_or_null(&b, backend && *backend ? backend : NULL);
	buf_printf(&b, ",\"status\":%d,\"bytes\":%llu,\"ttfb_ms\":", status, (unsigned long long)bytes);
	if (t_head)
		buf_printf(&b, "%.3f", (double)(t_head - t0) / 1e6);
	else
		buf_puts(&b, "null");
	buf_printf(&b, ",\"total_ms\":%.3f,\"retries\":%d", (double)(now - t0) / 1e6, retries);
	if (predicted >= 0)
		buf_printf(&b, ",\"predicted_cached\":%ld", predicted);
	if (cached >= 0)
		buf_printf(&b, ",\"cached\":%ld", cached);
	if (adm && adm->outcome != ADMIT_NONE)
		buf_printf(&b, ",\"admission\":\"%s\",\"queue_ms\":%.3f", admit_outcome_name(adm->outcome),
			   adm->t_out > adm->t_enq ? (double)(adm->t_out - adm->t_enq) / 1e6 : 0.0);
	buf_puts(&b, ",\"error\":");
	str_or_null(&b, error);
	buf_puts(&b, "}\n");
	fwrite(b.data, 1, b.len, rt->log);
	buf_free(&b);
}

/* The router answers a request itself (before any backend): counted and logged. */
static void respond_local(struct router *rt, struct http_conn *c, const struct http_msg *m, int status,
			  const char *msg, uint64_t t0)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	const char *ctype;
	router_error_body(status, msg, &b, &ctype);
	router_count_code(rt->local_codes, status);
	http_respond(c, status, ctype, NULL, b.data, b.len);
	log_line(rt, http_conn_peer(c), m->target, m->target_len, NULL, NULL, status, b.len, t0, 0, 0, msg, -1, -1, NULL);
	buf_free(&b);
}

/* ---- request life ---------------------------------------------------------- */

static void free_rreq(uv_handle_t *h)
{
	struct rreq *r = h->data;
	free(r->body);
	free(r->target);
	free(r->model);
	free(r->url);
	tok_ids_free(&r->ids);
	buf_free(&r->text);
	buf_free(&r->hdrs);
	sse_reader_free(&r->sse);
	free(r);
}

/* The one exit of every proxied request. */
static void finish(struct rreq *r)
{
	if (!proxy_finish(&r->pr))
		return;
	struct router *rt = r->rt;
	if (r->paused) {
		r->paused = 0;
		rt->paused--;
	}
	if (r->up) {
		httpc_cancel(r->up);
		r->up = NULL;
	}
	router_admit_cancel(rt, &r->adm); /* gone while it waited */
	if (r->lease.active) {
		struct backend *b = router_backend(rt, r->ep);
		if (b && r->status)
			router_count_code(b->codes, r->status);
		if (b && r->status == 200 && r->usage.prompt > 0) {
			b->usage_requests++;
			b->usage_prompt_tokens += (uint64_t)r->usage.prompt;
			if (r->predicted >= 0 && r->usage.cached >= 0) {
				b->predicted_requests++;
				b->predicted_tokens += (uint64_t)r->predicted;
				b->realized_tokens += (uint64_t)r->usage.cached;
				b->abs_error_tokens += fabs((double)r->predicted - (double)r->usage.cached);
			}
		}
		lb_release(&r->lease);
		router_admit_poke(rt); /* a backend freed: the queue may go */
	} else if (r->status) {
		router_count_code(rt->local_codes, r->status);
	}
	hist_observe(&rt->total, (double)(uv_hrtime() - r->t0) / 1e9);
	log_line(rt, r->client, r->target, strlen(r->target), r->model, r->backend_name, r->status, r->bytes, r->t0,
		 r->t_head, r->pr.retries, r->error, r->predicted, r->usage.cached, &r->adm);
	if (r->conn)
		http_conn_set_ctx(r->conn, NULL);
	r->conn = NULL;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, free_rreq);
	rt->in_flight--;
	if (rt->draining && rt->in_flight == 0 && rt->on_idle)
		rt->on_idle(rt);
}

/* Answers with an error (nothing was sent yet) and finishes. */
static void fail_request_h(struct rreq *r, int status, const char *msg, const char *extra)
{
	r->status = status;
	r->error = msg;
	struct http_conn *c = r->conn;
	if (c) {
		http_conn_set_ctx(c, NULL);
		struct buf b;
		buf_init(&b, 1 << 16);
		const char *ctype;
		router_error_body(status, msg, &b, &ctype);
		http_respond(c, status, ctype, extra, b.data, b.len);
		buf_free(&b);
		r->conn = NULL;
	}
	finish(r);
}

static void fail_request(struct rreq *r, int status, const char *msg)
{
	fail_request_h(r, status, msg, "x-prefixlb-error: 1\r\n");
}

/* Drops the client's connection: it has a partial response. */
static void cut(struct rreq *r, const char *why)
{
	r->error = why;
	if (r->conn)
		http_conn_abort(r->conn);
	r->conn = NULL;
	finish(r);
}

static void dispatch(struct rreq *r);

static void retry(struct rreq *r)
{
	struct router *rt = r->rt;
	rt->retries++;
	lb_release(&r->lease);
	proxy_retry(&r->pr, r->ep);
	r->got_data = 0;
	memset(&r->usage, 0, sizeof r->usage);
	r->usage.cached = r->usage.prompt = -1;
	uv_timer_stop(&r->timer);
	dispatch(r);
}

static void on_req_timer(uv_timer_t *t)
{
	struct rreq *r = t->data;
	r->rt->timeouts++;
	if (r->up) {
		httpc_cancel(r->up);
		r->up = NULL;
	}
	struct proxy_decision d = proxy_on_timeout(&r->pr, !r->pr.head_sent);
	if (d.act == PROXY_FAIL)
		fail_request(r, d.status, d.msg);
	else
		cut(r, d.msg);
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

static void upstream_end(struct rreq *r, enum proxy_end how, const char *msg);

/* A write to the client failed while relaying: r was finished by on_abort
 * (the client went away), unless the failure was the router's own. */
static int relay_failed(struct rreq *r, const char *why)
{
	if (!r->pr.finished) {
		r->rt->upstream_errors++;
		cut(r, why); /* finish() cancels the upstream request */
	}
	return HTTPC_STOP;
}

static int up_head(void *ctx, const struct http_msg *m)
{
	struct rreq *r = ctx;
	struct router *rt = r->rt;
	int status = m->status;
	struct proxy_decision d = proxy_on_head(&r->pr, (int)rt->cfg.retries, status);
	if (d.act == PROXY_RETRY) {
		upstream_end(r, PROXY_END_OK, NULL); /* held back: retried elsewhere */
		return HTTPC_STOP;
	}
	/* the head was read by the server's strict parser (httpc.c): no smuggling through us */
	r->t_head = uv_hrtime();
	hist_observe(&rt->ttfb, (double)(r->t_head - r->t0) / 1e9);
	router_orca_on_head(rt, r->ep, m);
	r->status = status;
	struct buf h;
	buf_init(&h, 1 << 20);
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct http_header *x = &m->headers[i];
		if (!is_hop(x->name, x->name_len) && !(r->orca_ours && router_orca_is_header(x->name, x->name_len))) {
			buf_append(&h, x->name, x->name_len);
			buf_append(&h, ": ", 2);
			buf_append(&h, x->value, x->value_len);
			buf_append(&h, "\r\n", 2);
		}
	}
	if (!rt->cfg.no_backend_header) {
		buf_printf(&h, "x-prefixlb-backend: %s\r\n", r->backend_name);
		if (r->predicted >= 0)
			buf_printf(&h, "x-prefixlb-predicted-cached: %ld\r\n", r->predicted);
	}
	http_conn_cork(r->conn); /* sent with what follows in this read (up_flush) */
	int rc = m->content_length >= 0 ? http_stream_begin_len(r->conn, status, NULL, h.data, (uint64_t)m->content_length)
					: http_stream_begin(r->conn, status, NULL, h.data);
	buf_free(&h);
	if (rc)
		return relay_failed(r, "could not relay the response head");
	r->pr.head_sent = 1;
	struct backend *b = router_backend(rt, r->ep);
	if (b)
		b->passive_fail = 0;
	/* repeating, so that uv_timer_again() in up_data re-arms it: the idle
	 * timeout is the longest silence, not the longest response */
	uv_timer_start(&r->timer, on_req_timer, (uint64_t)rt->cfg.idle_timeout_ms, (uint64_t)rt->cfg.idle_timeout_ms);
	return HTTPC_CONTINUE;
}

static int up_data(void *ctx, const char *data, size_t len)
{
	struct rreq *r = ctx;
	if (!r->conn || !r->pr.head_sent)
		return HTTPC_CONTINUE;
	r->bytes += len;
	if (!r->got_data && len) { /* the answer's first bytes: it left the prefill queue */
		r->got_data = 1;
		lb_first_token(&r->lease);
		router_admit_poke(r->rt);
	}
	sse_feed(&r->sse, data, len, NULL, NULL);
	sniff_feed(&r->usage, data, len);
	http_conn_cork(r->conn);
	if (http_stream_write(r->conn, data, len))
		return relay_failed(r, "could not relay the response");
	uv_timer_again(&r->timer);
	if (http_conn_write_queue(r->conn) > BACKPRESSURE_BYTES) {
		if (!r->paused) {
			r->paused = 1;
			r->rt->paused++;
			r->rt->pauses++;
		}
		return HTTPC_PAUSE; /* no more reads until on_drain resumes */
	}
	return HTTPC_CONTINUE;
}

/* One upstream read relayed: out to the client in one write. */
static void up_flush(void *ctx)
{
	struct rreq *r = ctx;
	if (r->conn)
		http_conn_uncork(r->conn); /* a failed write: on_abort finished r */
}

static enum proxy_end end_of(enum httpc_err e)
{
	switch (e) {
	case HTTPC_OK: return PROXY_END_OK;
	case HTTPC_ECONNECT: return PROXY_END_CONNECT;
	case HTTPC_ETIMEOUT: return PROXY_END_CTIMEOUT; /* no whole-request deadline here: a connect timeout */
	case HTTPC_EWRITE:
	case HTTPC_ECLOSED: return PROXY_END_LOST;
	case HTTPC_ESTALE: return PROXY_END_STALE;
	case HTTPC_EPROTO:
	case HTTPC_ETRUNC: return PROXY_END_PROTO;
	default: return PROXY_END_OTHER;
	}
}

static void send_upstream(struct rreq *r, int fresh);

/* The upstream request ended (or was held back): what core/proxy.c decides. */
static void upstream_end(struct rreq *r, enum proxy_end how, const char *msg)
{
	struct router *rt = r->rt;
	r->up = NULL;
	struct backend *b = router_backend(rt, r->ep);
	if ((how == PROXY_END_CONNECT || how == PROXY_END_CTIMEOUT) && b &&
	    proxy_passive_failure(&b->passive_fail, (int)rt->cfg.passive_failures)) {
		char why[200];
		snprintf(why, sizeof why, "%d connection failures in a row (last: %s)", b->passive_fail,
			 msg && *msg ? msg : how == PROXY_END_CTIMEOUT ? "connect timeout" : "connect error");
		router_eject(rt, r->ep, why);
	}
	struct proxy_decision d = proxy_on_end(&r->pr, (int)rt->cfg.retries, how, msg);
	switch (d.act) {
	case PROXY_RESEND:
		proxy_resent(&r->pr);
		rt->resends++;
		uv_timer_stop(&r->timer);
		send_upstream(r, 1);
		return;
	case PROXY_RETRY:
		if (b)
			router_count_code(b->codes, d.status);
		retry(r);
		return;
	case PROXY_FAIL:
		rt->upstream_errors++;
		fail_request(r, d.status, d.msg);
		return;
	case PROXY_CUT:
		rt->upstream_errors++;
		cut(r, d.msg);
		return;
	default:
		if (r->conn) {
			struct http_conn *c = r->conn;
			http_conn_set_ctx(c, NULL);
			r->conn = NULL;
			http_stream_end(c);
		}
		finish(r);
	}
}

static void up_done(void *ctx, enum httpc_err err, const char *msg)
{
	upstream_end(ctx, end_of(err), msg);
}

static const struct httpc_cb proxy_cb = {up_head, up_data, up_done, up_flush};

/* Sends the request to its backend (r->ep), on a kept connection unless fresh. */
static void send_upstream(struct rreq *r, int fresh)
{
	struct router *rt = r->rt;
	struct backend *b = router_backend(rt, r->ep);
	if (!b || !b->pool) { /* removed since: as a connect failure, retried elsewhere */
		upstream_end(r, PROXY_END_CONNECT, "the backend was removed");
		return;
	}
	const char *target = r->target;
	if (b->prefix[0]) {
		free(r->url);
		size_t pl = strlen(b->prefix), tl = strlen(r->target);
		r->url = plb_malloc(pl + tl + 1);
		memcpy(r->url, b->prefix, pl);
		memcpy(r->url + pl, r->target, tl + 1);
		target = r->url;
	}
	struct httpc_opts o = {
		.method = "POST",
		.target = target,
		.headers = r->hdrs.data,
		.headers_len = r->hdrs.len,
		.body = r->body,
		.body_len = r->body_len,
		.fresh = fresh,
		.connect_timeout_ms = (uint64_t)rt->cfg.connect_timeout_ms,
	};
	r->up = httpc_start(b->pool, &o, &proxy_cb, r);
	uv_timer_start(&r->timer, on_req_timer, (uint64_t)rt->cfg.first_byte_timeout_ms, 0);
}

static void dispatch(struct rreq *r)
{
	struct router *rt = r->rt;
	uint64_t t0 = uv_hrtime();
	struct lb_req rq = {.model = r->model,
			    .key = r->key,
			    .text = r->text.data,
			    .text_len = r->text.len,
			    .ids = r->ids.v,
			    .n_ids = r->ids.n,
			    .max_tokens = r->max_tokens > 0 ? (uint32_t)r->max_tokens : 0,
			    .prompt_tokens = r->ids.n || r->text.len ? 0 : r->adm.prompt_tokens,
			    .tried = r->pr.tried,
			    .n_tried = r->pr.n_tried,
			    .now = t0};
	int ep = lb_pick(rt->lb, &rq);
	r->predicted = lb_predicted_cached(rt->lb);
	hist_observe(&rt->decision, (double)(uv_hrtime() - t0) / 1e9);
	if (ep < 0) {
		rt->no_backend++;
		fail_request(r, 503, r->pr.n_tried ? "no backend left to retry on" : "no backend available for this model");
		return;
	}
	const struct lb_endpoint *e = lb_endpoint(rt->lb, ep);
	lb_acquire(rt->lb, ep, &rq, &r->lease);
	r->ep = ep;
	snprintf(r->backend_name, sizeof r->backend_name, "%s", e->name);
	send_upstream(r, 0);
}

void router_on_abort(struct http_conn *c, void *req_ctx, void *ud)
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

void router_on_drain(struct http_conn *c, void *req_ctx, void *ud)
{
	(void)c;
	(void)ud;
	struct rreq *r = req_ctx;
	if (r && r->paused && r->up) {
		r->paused = 0;
		r->rt->paused--;
		httpc_resume(r->up);
	}
}

/* ---- the router's own endpoints ---------------------------------------------- */

static void model_cb(void *ctx, const char *model)
{
	struct buf *b = ctx;
	buf_puts(b, b->data[b->len - 1] == '[' ? "{\"id\":\"" : ",{\"id\":\"");
	buf_json_escape(b, model, strlen(model));
	buf_puts(b, "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"prefixlb\"}");
}

static void handle_models(struct router *rt, struct http_conn *c)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_puts(&b, "{\"object\":\"list\",\"data\":[");
	lb_models(rt->lb, model_cb, &b);
	buf_puts(&b, "]}");
	router_count_code(rt->local_codes, 200);
	http_respond(c, 200, "application/json", NULL, b.data, b.len);
	buf_free(&b);
}

static void metric_line(struct buf *b, const char *name, const char *labels, double v)
{
	buf_printf(b, "%s{%s} %.17g\n", name, labels, v);
}

struct pstat_ctx {
	struct buf *b;
	struct router *rt;
	const char *pol;
	const char *last; /* the last series written, for its HELP/TYPE lines */
};

/* A policy's own figure: prefixlb_policy_NAME{policy,backend}. */
static void policy_stat(void *ctx, const char *name, int ep, double v)
{
	struct pstat_ctx *pc = ctx;
	char lab[256];
	if (!pc->last || strcmp(pc->last, name)) {
		int counter = strstr(name, "_total") != NULL;
		buf_printf(pc->b, "# HELP prefixlb_policy_%s The routing policy's %s (its prefix index).\n# TYPE prefixlb_policy_%s %s\n",
			   name, name, name, counter ? "counter" : "gauge");
		pc->last = name;
	}
	const struct lb_endpoint *e = ep >= 0 ? lb_endpoint(pc->rt->lb, ep) : NULL;
	snprintf(lab, sizeof lab, "policy=\"%s\",backend=\"%s\"", pc->pol, e ? e->name : "");
	buf_printf(pc->b, "prefixlb_policy_%s{%s} %.17g\n", name, lab, v);
}

static void handle_metrics(struct router *rt, struct http_conn *c)
{
	struct buf b;
	buf_init(&b, 1 << 24);
	const char *pol = lb_policy_label(rt->lb);
	char lab[512];
	buf_puts(&b, "# HELP prefixlb_requests_total Requests answered, by backend (empty: by the router) and status.\n"
		     "# TYPE prefixlb_requests_total counter\n");
	for (int i = 0; i < ROUTER_MAX_CODES && rt->local_codes[i].code; i++) {
		snprintf(lab, sizeof lab, "backend=\"\",policy=\"%s\",code=\"%d\"", pol, rt->local_codes[i].code);
		metric_line(&b, "prefixlb_requests_total", lab, (double)rt->local_codes[i].n);
	}
	for (size_t ep = 0; ep < rt->n_be; ep++) {
		const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
		if (!e)
			continue;
		for (int i = 0; i < ROUTER_MAX_CODES && rt->be[ep].codes[i].code; i++) {
			snprintf(lab, sizeof lab, "backend=\"%s\",policy=\"%s\",code=\"%d\"", e->name, pol,
				 rt->be[ep].codes[i].code);
			metric_line(&b, "prefixlb_requests_total", lab, (double)rt->be[ep].codes[i].n);
		}
	}
	const char *series[][3] = {
		{"prefixlb_backend_in_flight", "gauge", "Requests in flight on each backend (the routing load)."},
		{"prefixlb_backend_in_flight_tokens", "gauge",
		 "Prompt and expected output tokens of the requests in flight on each backend."},
		{"prefixlb_backend_healthy", "gauge", "1 if the backend receives new requests."},
		{"prefixlb_backend_requests_total", "counter", "Requests sent to each backend, retries included."},
		{"prefixlb_ejections_total", "counter", "Times a backend was ejected (health check or passive)."},
	};
	for (int s = 0; s < 5; s++) {
		buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", series[s][0], series[s][2], series[s][0], series[s][1]);
		for (size_t ep = 0; ep < rt->n_be; ep++) {
			const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
			if (!e)
				continue;
			snprintf(lab, sizeof lab, "backend=\"%s\"", e->name);
			double v = s == 0 ? e->in_flight
				   : s == 1 ? (double)e->in_flight_tokens
				   : s == 2 ? (e->healthy && !e->removed)
				   : s == 3 ? (double)e->requests
					    : (double)rt->be[ep].ejections;
			metric_line(&b, series[s][0], lab, v);
		}
	}
	const char *pred[][3] = {
		{"prefixlb_predicted_cached_tokens_total", "counter",
		 "Prompt tokens the policy predicted cached on the backend it chose (requests with usage)."},
		{"prefixlb_realized_cached_tokens_total", "counter",
		 "Prompt tokens the backend reported reused (usage.prompt_tokens_details.cached_tokens), same requests."},
		{"prefixlb_prediction_abs_error_tokens_total", "counter", "Sum of |predicted - reported| cached tokens."},
		{"prefixlb_predicted_requests_total", "counter", "Requests with both a prediction and a report."},
		{"prefixlb_usage_prompt_tokens_total", "counter", "Prompt tokens reported by the backends (usage)."},
	};
	for (int s = 0; s < 5; s++) {
		buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", pred[s][0], pred[s][2], pred[s][0], pred[s][1]);
		for (size_t ep = 0; ep < rt->n_be; ep++) {
			const struct lb_endpoint *e = lb_endpoint(rt->lb, (int)ep);
			if (!e)
				continue;
			const struct backend *be = &rt->be[ep];
			snprintf(lab, sizeof lab, "backend=\"%s\"", e->name);
			double v = s == 0 ? (double)be->predicted_tokens
				   : s == 1 ? (double)be->realized_tokens
				   : s == 2 ? be->abs_error_tokens
				   : s == 3 ? (double)be->predicted_requests
					    : (double)be->usage_prompt_tokens;
			metric_line(&b, pred[s][0], lab, v);
		}
	}
	router_signals_metrics(rt, &b);
	struct pstat_ctx pc = {&b, rt, pol, NULL};
	lb_policy_stats(rt->lb, policy_stat, &pc);
	kvsub_metrics(rt->kv, &b);
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
	metric_format(&b, "prefixlb_upstream_resends_total", "counter",
		      "Requests sent again on a new connection: the kept one had been closed by the backend.", "",
		      (double)rt->resends);
	router_pool_metrics(rt, &b);
	hist_format(&rt->ttfb, "prefixlb_ttfb_seconds", "Time from request to the backend's response head.", "", &b);
	hist_format(&rt->total, "prefixlb_request_duration_seconds", "Time from request to its end.", "", &b);
	hist_format(&rt->decision, "prefixlb_decision_seconds", "Time to choose a backend.", "", &b);
	router_admit_metrics(rt, &b);
	http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
	buf_free(&b);
}

/* GET /health: 200 while some backend can take requests; 503 with the reason
 * when none can (Kubernetes readiness) or while draining. */
static void handle_health(struct router *rt, struct http_conn *c, const struct http_msg *m, uint64_t t0)
{
	if (rt->draining) {
		respond_local(rt, c, m, 503, "draining", t0);
		return;
	}
	if (!rt->cfg.health_always_ok && !router_any_healthy(rt)) {
		respond_local(rt, c, m, 503, "no healthy backend: every backend is ejected or none is known", t0);
		return;
	}
	router_count_code(rt->local_codes, 200);
	http_respond(c, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15);
}

/* The whole prompt as the engine will see it: its ids (chat template, then the
 * tokenizer, through the prompt cache) when the router has the tokenizer,
 * else its text (the rendered template, or the prompt). */
static void whole_prompt(struct router *rt, struct rreq *r, const struct oai_route *info, int kind)
{
	struct oai_fullprompt fp;
	if (oai_route_prompt(info, kind, (size_t)rt->cfg.max_msgs, &fp) == 0) {
		r->max_tokens = fp.max_tokens;
		if (rt->tok) {
			if (fp.text)
				tok_encode(rt->tok, fp.text, fp.text_len, TOK_BOS, &r->ids);
			else
				prompt_chat(rt->pc, rt->tpl, fp.msgs, fp.n_msgs, 1, &r->ids);
		} else if (fp.text) {
			buf_append(&r->text, fp.text, fp.text_len);
		} else {
			chat_render_t(rt->tpl, fp.msgs, fp.n_msgs, 1, &r->text);
		}
	}
	oai_fullprompt_free(&fp);
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

/* ---- request entry ------------------------------------------------------- */

static void forward_headers(const struct http_msg *m, const char *client, const char *ask_load, struct buf *v)
{
	buf_init(v, (size_t)1 << 24);
	buf_reserve(v, m->head_len + 64);
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct http_header *h = &m->headers[i];
		if (is_hop(h->name, h->name_len) || http_token_eq(h->name, h->name_len, "host") ||
		    http_token_eq(h->name, h->name_len, "expect") ||
		    http_token_eq(h->name, h->name_len, "x-forwarded-for"))
			continue;
		buf_append(v, h->name, h->name_len);
		buf_append(v, ": ", 2);
		buf_append(v, h->value, h->value_len);
		buf_append(v, "\r\n", 2);
	}
	const struct http_header *xff = http_find(m, "x-forwarded-for");
	char ip[64];
	snprintf(ip, sizeof ip, "%s", client);
	char *colon = strrchr(ip, ':');
	if (colon)
		*colon = '\0';
	if (xff)
		buf_printf(v, "x-forwarded-for: %.*s, %s\r\n", (int)xff->value_len, xff->value, ip);
	else
		buf_printf(v, "x-forwarded-for: %s\r\n", ip);
	if (ask_load)
		buf_printf(v, "%s\r\n", ask_load);
}

void router_on_request(struct http_conn *c, const struct http_msg *m, const char *body, size_t len, void *ud)
{
	struct router *rt = ud;
	uint64_t t0 = uv_hrtime();
	rt->requests++;
	int is_chat = http_path_is(m, "/v1/chat/completions"), is_cmpl = http_path_is(m, "/v1/completions");
	int is_v1 = m->target_len >= 4 && memcmp(m->target, "/v1/", 4) == 0;
	int get = http_method_is(m, "GET") || http_method_is(m, "HEAD");
	if (http_path_is(m, "/health")) {
		handle_health(rt, c, m, t0);
		return;
	}
	if (http_path_is(m, "/metrics") && get) {
		handle_metrics(rt, c);
		return;
	}
	if (http_path_is(m, "/v1/models") && get) {
		handle_models(rt, c);
		return;
	}
	if (!is_v1) {
		respond_local(rt, c, m, 404, "not found", t0);
		return;
	}
	if (!http_method_is(m, "POST")) {
		respond_local(rt, c, m, 405, "only POST is routed under /v1/ (and GET /v1/models)", t0);
		return;
	}
	if (rt->draining) {
		respond_local(rt, c, m, 503, "the router is shutting down", t0);
		return;
	}
	/* read once: model and routing key; the body is forwarded unchanged */
	char err[512];
	struct oai_route info;
	int kind = is_chat ? OAI_CHAT : is_cmpl ? OAI_COMPLETIONS : OAI_OTHER;
	size_t key_bytes = (size_t)lb_opts_get(lb_get_opts(rt->lb), "prefix-chars") * 4;
	if (oai_route_info(body, len, kind, key_bytes, &info, err, sizeof err)) {
		respond_local(rt, c, m, 400, err, t0);
		return;
	}
	const char *refuse = NULL;
	if (kind != OAI_OTHER && !info.model) { /* as vLLM: no model means the only one, if there is one */
		struct one_model om = {NULL, 0};
		lb_models(rt->lb, one_model_cb, &om);
		if (om.n != 1)
			refuse = "you must provide a model parameter (the backends serve several models, or none is known yet)";
		else
			info.model = plb_strdup(om.name);
	}
	if (info.n_messages > (size_t)rt->cfg.max_msgs) {
		snprintf(err, sizeof err, "too many messages: %zu (at most %ld, --max-messages)", info.n_messages,
			 rt->cfg.max_msgs);
		refuse = err;
	}
	if (!refuse && info.model && !lb_has_model(rt->lb, info.model)) {
		snprintf(err, sizeof err, "The model `%.400s` does not exist.", info.model);
		oai_route_free(&info);
		respond_local(rt, c, m, 404, err, t0);
		return;
	}
	struct admit_entry adm;
	if (!refuse && router_admit_headers(rt, m, &adm, err, sizeof err))
		refuse = err;
	if (refuse) {
		respond_local(rt, c, m, 400, refuse, t0);
		oai_route_free(&info);
		return;
	}
	struct rreq *r = plb_calloc(1, sizeof *r);
	r->rt = rt;
	sse_reader_init(&r->sse, 0); /* tracking only: never allocates */
	r->t0 = t0;
	r->ep = -1;
	snprintf(r->client, sizeof r->client, "%s", http_conn_peer(c));
	r->target = plb_strndup(m->target, m->target_len);
	r->body = plb_malloc(len + 1);
	memcpy(r->body, body, len);
	r->body[len] = '\0';
	r->body_len = len;
	r->model = info.model;
	info.model = NULL;
	r->key = lb_key(rt->lb, info.key.data ? info.key.data : "", info.key.len);
	r->usage.cached = r->usage.prompt = -1;
	r->predicted = -1;
	buf_init(&r->text, (size_t)rt->cfg.max_msgs * 64 + len * 2 + 1024);
	if (lb_policy_needs(rt->lb) & LB_NEEDS_PROMPT)
		whole_prompt(rt, r, &info, kind);
	oai_route_free(&info);
	/* in-band load: asked on every request, unless the client asks itself (then it gets the answer) */
	const char *ask = http_find(m, "endpoint-load-metrics-format") ? NULL : router_orca_request_header(rt);
	r->orca_ours = ask != NULL;
	forward_headers(m, r->client, ask, &r->hdrs);
	r->conn = c;
	uv_timer_init(rt->loop, &r->timer);
	r->timer.data = r;
	rt->in_flight++;
	http_conn_set_ctx(c, r);
	/* admission: the prompt's tokens (or an estimate, 4 bytes each) and the output expected */
	r->adm = adm;
	r->adm.model = r->model;
	r->adm.prompt_tokens = (uint32_t)(r->ids.n ? r->ids.n : r->text.len ? r->text.len / 4 : len / 4);
	r->adm.max_tokens = r->max_tokens > 0 ? (uint32_t)r->max_tokens : 0;
	r->adm.t0 = t0;
	int v = router_admit_offer(rt, &r->adm, r);
	if (v == ADMIT_GO)
		dispatch(r);
	else if (v == ADMIT_REJECT)
		router_refused(r);
}

/* ---- admission's callbacks (admission.c) ------------------------------------------ */

void router_admitted(void *req)
{
	struct rreq *r = req;
	if (r->conn) /* a client gone while queued was finished (and taken out) already */
		dispatch(r);
}

void router_refused(void *req)
{
	struct rreq *r = req;
	static const char *const why[ADMIT_N_OUTCOMES] = {
		[ADMIT_FULL] = "the router is at capacity: every backend is saturated and the queue is full; retry later",
		[ADMIT_EXPIRED] = "the router is at capacity: the request waited its whole budget for a backend; retry later",
		[ADMIT_LATE] = "the router is at capacity: the request could no longer meet its TTFT target; retry later",
	};
	int o = r->adm.outcome;
	const char *msg = o >= 0 && o < ADMIT_N_OUTCOMES && why[o] ? why[o] : "the router is at capacity; retry later";
	char extra[96];
	snprintf(extra, sizeof extra, "x-prefixlb-error: 1\r\nretry-after: %u\r\n", admit_retry_after_s(r->rt->adm));
	fail_request_h(r, 429, msg, extra);
}
