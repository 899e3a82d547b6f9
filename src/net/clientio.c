/* clientio.c: the benchmark client (src/core/client.c) driven over real HTTP;
 * see clientio.h. The client decides what to send and when; this file turns
 * its sends into requests of the one HTTP client (src/net/httpc.c, a new
 * connection per request, "connection: close", as the seed's client), reads the streams (src/proto/sse.c, src/proto/openai.c) and turns
 * them back into client_on_* calls. Chunks are timestamped in the socket's
 * read callback. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../core/jscan.h"
#include "../core/mem.h"
#include "../core/rng.h"
#include "../proto/openai.h"
#include "../proto/sse.h"
#include "httpc.h"
#include "clientio.h"

enum abort_at { AB_NONE, AB_HEADERS, AB_BODY, AB_HEAD, AB_TOKENS };

struct bench;

/* The shell's side of one request (client_req.drv). */
struct breq {
	struct bench *b;
	struct client_req *r;
	struct httpc_req *h;
	struct buf out;     /* the request's bytes */
	struct sse_reader sse;
	struct buf errbody; /* a non-200 answer's body (its first 4 KiB) */
	struct buf text;    /* one event's text */
	int status;
	enum abort_at abort_at;
	long abort_after;
};

struct bench {
	uv_loop_t *loop;
	struct client *c;
	struct httpc *hc;
	struct httpc_pool *pool;
	const char *host, *path;
	int port;
	uv_timer_t tick, progress, lagprobe;
	uv_signal_t sigint;
	struct rng abort_rng;
	double abort_fraction;
	long abort_kinds[5];
	uint64_t lag_due;
	double *lags;
	size_t n_lags, cap_lags;
	long total; /* expected requests (progress) */
	int progress_on, progress_lines, stopped, interrupted;
};

/* ---- one request ------------------------------------------------------------ */

static void breq_free(struct breq *q)
{
	buf_free(&q->out);
	buf_free(&q->errbody);
	buf_free(&q->text);
	sse_reader_free(&q->sse);
	free(q);
}

static void after(struct bench *b);

/* The request is over for the shell: tell the client. */
static void end(struct breq *q, const char *error, const char *detail)
{
	struct bench *b = q->b;
	struct client_req *r = q->r;
	r->drv = NULL;
	if (error == CLIENT_ABORTED)
		b->abort_kinds[q->abort_at]++;
	breq_free(q);
	client_on_end(b->c, r, uv_hrtime(), error, detail);
	after(b);
}

static int on_event(void *ctx, const char *p, size_t n)
{
	struct breq *q = ctx;
	struct oai_event ev;
	buf_reset(&q->text);
	if (oai_stream_event(p, n, &q->text, &ev))
		return 0; /* not JSON: vLLM's client would fail to parse it too; skip */
	if (ev.has_choices)
		client_on_chunk(q->b->c, q->r, uv_hrtime(), q->text.data ? q->text.data : "", q->text.len, NULL, 0);
	if (ev.completion_tokens >= 0 || ev.cached_tokens >= 0)
		client_on_usage(q->b->c, q->r, ev.completion_tokens, ev.cached_tokens);
	return 0;
}

static int on_head(void *ctx, const struct http_msg *m)
{
	struct breq *q = ctx;
	q->status = m->status;
	const struct http_header *bh = http_find(m, "x-prefixlb-backend");
	if (bh)
		client_on_backend(q->b->c, q->r, bh->value, bh->value_len);
	const struct http_header *ph = http_find(m, "x-prefixlb-predicted-cached");
	long long pv;
	if (ph && jscan_int(ph->value, ph->value + ph->value_len, &pv) == ph->value + ph->value_len && pv >= 0)
		client_on_predicted(q->b->c, q->r, (long)pv);
	if (m->status == 200 && q->abort_at == AB_HEAD) {
		end(q, CLIENT_ABORTED, NULL);
		return 1;
	}
	return 0;
}

static int on_data(void *ctx, const char *p, size_t n)
{
	struct breq *q = ctx;
	if (q->status != 200) { /* read the error to its end; keep its start */
		size_t room = q->errbody.len < 4096 ? 4096 - q->errbody.len : 0;
		buf_append(&q->errbody, p, n < room ? n : room);
		return 0;
	}
	int rc = sse_feed(&q->sse, p, n, on_event, q);
	if (rc == 1) {
		end(q, NULL, NULL);
		return 1;
	}
	if (rc < 0) {
		end(q, "event line too long", NULL);
		return 1;
	}
	if (q->abort_at == AB_TOKENS && q->r->chunks >= (uint32_t)q->abort_after) {
		end(q, CLIENT_ABORTED, NULL);
		return 1;
	}
	return 0;
}

static void on_done(void *ctx, enum httpc_err err, const char *msg)
{
	struct breq *q = ctx;
	if (err == HTTPC_ESTOPPED) {
		end(q, CLIENT_ABORTED, NULL);
		return;
	}
	if (q->status && q->status != 200) {
		char why[32], detail[512];
		snprintf(why, sizeof why, "HTTP %d", q->status);
		int have = oai_error_message(q->errbody.data ? q->errbody.data : "", q->errbody.len, detail, sizeof detail);
		end(q, why, have ? detail : NULL);
		return;
	}
	end(q, err == HTTPC_OK || err == HTTPC_ETRUNC ? "stream ended without [DONE]" : msg, NULL);
}

static const struct httpc_cb http_cb = {on_head, on_data, on_done, NULL};

static void bench_send(void *ctx, struct client_req *r, uint64_t now)
{
	(void)now;
	struct bench *b = ctx;
	struct breq *q = plb_calloc(1, sizeof *q);
	q->b = b;
	q->r = r;
	r->drv = q;
	buf_init(&q->out, (size_t)1 << 31);
	buf_init(&q->errbody, 8192);
	buf_init(&q->text, (size_t)1 << 24);
	sse_reader_init(&q->sse, (size_t)1 << 24);
	struct buf body;
	buf_init(&body, (size_t)1 << 31);
	client_body(b->c, r, &body);
	buf_printf(&q->out,
		   "POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\nconnection: close\r\n"
		   "content-length: %zu\r\n",
		   b->path, b->host, b->port, body.len);
	if (r->tenant) /* admission control's fair-share key (docs/route.md) */
		buf_printf(&q->out, "x-prefixlb-tenant: %s\r\n", r->tenant);
	buf_puts(&q->out, "\r\n");
	size_t head = q->out.len;
	buf_append(&q->out, body.data, body.len);
	buf_free(&body);
	struct httpc_opts o = {.raw = q->out.data, .raw_len = q->out.len};
	if (b->abort_fraction > 0 && rng_uniform(&b->abort_rng) < b->abort_fraction) {
		/* the four places a client can leave: in the head, in the body, before the first token, mid-stream */
		q->abort_at = AB_HEADERS + (enum abort_at)rng_below(&b->abort_rng, 4);
		long expect = r->max_tokens;
		q->abort_after = 1 + (long)rng_below(&b->abort_rng, (uint64_t)(expect > 1 ? expect - 1 : 1));
		if (q->abort_at == AB_HEADERS)
			o.write_limit = 1 + rng_below(&b->abort_rng, head > 1 ? head - 1 : 1);
		else if (q->abort_at == AB_BODY)
			o.write_limit = head + rng_below(&b->abort_rng, q->out.len - head);
	}
	q->h = httpc_start(b->pool, &o, &http_cb, q); /* a failure comes from the loop, never from here */
}

static void bench_cancel(void *ctx, struct client_req *r, uint64_t now)
{
	(void)ctx;
	(void)now;
	struct breq *q = r->drv;
	if (!q)
		return;
	httpc_cancel(q->h);
	r->drv = NULL;
	breq_free(q);
}

static const struct client_ops bench_ops = {bench_send, bench_cancel};

/* ---- the loop ----------------------------------------------------------------- */

static void on_tick(uv_timer_t *t);

static void stop_all(struct bench *b)
{
	if (b->stopped)
		return;
	b->stopped = 1;
	uv_handle_t *h[] = {(uv_handle_t *)&b->tick, (uv_handle_t *)&b->progress, (uv_handle_t *)&b->lagprobe,
			    (uv_handle_t *)&b->sigint};
	for (size_t i = 0; i < sizeof h / sizeof *h; i++)
		uv_close(h[i], NULL);
}

/* After anything the client did: re-arm its timer, or stop when it is done. */
static void after(struct bench *b)
{
	if (b->stopped)
		return;
	if (client_done(b->c)) {
		stop_all(b);
		return;
	}
	uint64_t t = client_next_event(b->c), now = uv_hrtime();
	if (t == UINT64_MAX)
		uv_timer_stop(&b->tick);
	else
		uv_timer_start(&b->tick, on_tick, t > now ? (t - now + 999999) / 1000000 : 0, 0);
}

/* Arrivals are kept on the client's absolute nanosecond schedule; the timer
 * only wakes the loop (libuv timers have 1 ms resolution) and everything due
 * by then is released. */
static void on_tick(uv_timer_t *t)
{
	struct bench *b = t->data;
	client_advance(b->c, uv_hrtime());
	after(b);
}

/* A chunk is timestamped in the read callback; how late that can be is how
 * long the loop is busy elsewhere when the bytes arrive. A 1 ms timer measures
 * exactly that lag (fire time - due time), all through the run. */
static void on_lagprobe(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = uv_hrtime();
	if (b->lag_due) {
		if (b->n_lags == b->cap_lags) {
			b->cap_lags = b->cap_lags ? b->cap_lags * 2 : 4096;
			b->lags = plb_realloc(b->lags, b->cap_lags * sizeof *b->lags);
		}
		b->lags[b->n_lags++] = now > b->lag_due ? (double)(now - b->lag_due) / 1e3 : 0;
	}
	uv_update_time(b->loop);
	b->lag_due = now + 1000000;
	uv_timer_start(&b->lagprobe, on_lagprobe, 1, 0);
}

static void on_progress(uv_timer_t *t)
{
	struct bench *b = t->data;
	struct client_stats st;
	client_get_stats(b->c, &st);
	double el = st.t_first ? (double)(uv_hrtime() - st.t_first) / 1e9 : 0;
	long total = b->total, done = st.done;
	int w = 30, fill = total > 0 ? (int)(w * done / total) : 0;
	char bar[64];
	for (int i = 0; i < w; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[w] = 0;
	double rate = el > 0 ? done / el : 0;
	if (b->progress_lines) { /* one whole line each time: a pipe's reader parses it */
		char tot[32] = "?";
		if (total > 0)
			snprintf(tot, sizeof tot, "%ld", total);
		fprintf(stderr, "progress: %ld/%s requests done, %ld failed, %.1f s elapsed\n", done, tot, st.failed, el);
		fflush(stderr);
	} else if (total > 0)
		fprintf(stderr, "\r[%s] %ld/%ld requests, %.1f req/s, %ld failed, %.0fs elapsed, ETA %.0fs ", bar, done,
			total, rate, st.failed, el, rate > 0 ? (total - done) / rate : 0);
	else
		fprintf(stderr, "\r%ld requests, %.1f req/s, %ld failed, %.0fs elapsed ", done, rate, st.failed, el);
}

static void on_sigint(uv_signal_t *s, int sig)
{
	(void)sig;
	struct bench *b = s->data;
	if (b->interrupted)
		return;
	b->interrupted = 1;
	fprintf(stderr, "\ninterrupted: stopping, results so far follow\n");
	client_interrupt(b->c, uv_hrtime(), "interrupted");
	after(b);
}

int clientio_run(uv_loop_t *loop, struct client *c, const struct clientio_opts *o, struct clientio_stats *st)
{
	struct bench bb, *b = &bb;
	memset(b, 0, sizeof *b);
	b->loop = loop;
	b->c = c;
	struct sockaddr_in a4;
	if (uv_ip4_addr(o->host, o->port, &a4))
		return -1;
	b->hc = httpc_new(loop, &(struct httpc_cfg){.max_idle = 0});
	b->pool = httpc_pool_new(b->hc, o->host, o->port);
	b->host = o->host;
	b->port = o->port;
	b->path = o->path;
	b->abort_fraction = o->abort_fraction;
	rng_seed(&b->abort_rng, o->seed ^ 0xab0a7ab0a7ull);
	b->total = o->total;
	b->progress_lines = o->progress_interval_s > 0;
	b->progress_on = o->progress || b->progress_lines;
	uv_timer_init(loop, &b->tick);
	uv_timer_init(loop, &b->progress);
	uv_timer_init(loop, &b->lagprobe);
	uv_signal_init(loop, &b->sigint);
	b->tick.data = b->progress.data = b->lagprobe.data = b->sigint.data = b;
	if (o->measure) {
		uv_signal_start(&b->sigint, on_sigint, SIGINT);
		uv_timer_start(&b->lagprobe, on_lagprobe, 1, 0);
		if (b->progress_on) {
			uint64_t ms = b->progress_lines ? (uint64_t)(o->progress_interval_s * 1000 + 0.5) : 200;
			uv_timer_start(&b->progress, on_progress, ms ? ms : 1, ms ? ms : 1);
		}
	}
	client_set_ops(c, &bench_ops, b);
	client_advance(c, uv_hrtime());
	after(b);
	int rc = uv_run(loop, UV_RUN_DEFAULT);
	httpc_pool_free(b->pool); /* every connection has closed: both go now */
	httpc_free(b->hc);
	if (b->progress_on && !b->progress_lines && o->measure)
		fputc('\n', stderr);
	memset(st, 0, sizeof *st);
	memcpy(st->abort_kinds, b->abort_kinds, sizeof st->abort_kinds);
	st->interrupted = b->interrupted;
	st->lags_us = b->lags;
	st->n_lags = b->n_lags;
	return rc < 0 ? -1 : 0;
}

/* The vLLM test request: the first request of the workload, alone. 0 if it succeeded. */
int clientio_test_request(uv_loop_t *loop, const struct client_cfg *cc, const struct clientio_opts *io)
{
	struct wl_plan one = {0};
	struct wl_request item = {0};
	size_t order = 0;
	struct client_cfg t = *cc;
	if (cc->mode == CLIENT_LIST) {
		one = *cc->plan;
		one.num = 1;
	} else {
		const struct wl_conv *cv = NULL;
		for (size_t i = 0; i < cc->ds->n && !cv; i++)
			if (cc->ds->convs[i].n >= 2)
				cv = &cc->ds->convs[i];
		if (!cv)
			return 0;
		item = (struct wl_request){cv->msgs[0].text, cv->msgs[0].len, -1, 16, 0, 0};
		one = (struct wl_plan){&item, 1, &order, 1, 1};
		t.chat = 1;
	}
	t.mode = CLIENT_LIST;
	t.plan = &one;
	t.request_rate = INFINITY;
	t.dispatch_floor_ms = t.lag_ms = t.timeout_s = 0;
	t.max_concurrency = 0;
	t.keep_text = 0;
	struct clientio_opts o = *io;
	o.abort_fraction = 0;
	o.measure = 0;
	o.progress = 0;
	struct client *c = client_new(&t, NULL, NULL);
	struct clientio_stats st;
	clientio_run(loop, c, &o, &st);
	free(st.lags_us);
	int ok = client_n_recs(c) && client_rec(c, 0)->r.success;
	if (!ok) {
		long n;
		const char *detail = NULL, *why = client_n_reasons(c) ? client_reason(c, 0, &n, &detail) : "no answer";
		fprintf(stderr, "prefixlb bench: the initial test request failed: %s%s%s\n", why, detail ? ": " : "",
			detail ? detail : "");
	}
	client_free(c);
	return ok ? 0 : -1;
}
