/* bench.c: `prefixlb bench`, a benchmark client that speaks vLLM's
 * benchmark_serving.py: same flags, same printed block, same saved JSON.
 *
 * Own HTTP client on libuv (docs/DESIGN.md says why): one TCP connection per
 * request as the seed's client, strict response parsing (src/proto/http.c),
 * chunk timestamps taken in the socket's read callback. Arrivals follow vLLM:
 * after each dispatch wait Gamma(burstiness, 1/(rate*burstiness)) (optionally
 * at least --dispatch-floor-ms); --max-concurrency is a semaphore and a
 * request's clock starts when it gets through. Failures are counted with
 * their reason, never fatal; Ctrl-C prints what was measured so far. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../core/chat.h"
#include "../core/jscan.h"
#include "../core/rng.h"
#include "../core/stats.h"
#include "../core/tokenizer.h"
#include "../core/workload.h"
#include "../proto/http.h"
#include "cmd.h"
#include "opts.h"

enum mode { MODE_FORK, MODE_SESSIONS, MODE_SINGLE };

struct bench;

struct breq {
	struct bench *b;
	size_t idx;
	uv_tcp_t tcp;
	uv_connect_t cr;
	uv_write_t wr;
	struct buf out;  /* request bytes */
	struct buf head; /* response head bytes */
	struct buf body; /* de-chunked body (SSE lines pending) */
	struct buf text; /* generated text */
	struct http_chunked ch;
	int head_done, chunked, status, finished, closed;
	uint64_t t0, t_last;
	uint64_t t_queued; /* when the arrival process released it (before the semaphore) */
	double *itl;
	size_t n_itl, cap_itl;
	long chunks, usage_out, cached;
	char backend[96];
	const char *error;
	char errbuf[160];
	/* sessions */
	size_t session, turn;
	/* --abort-fraction: where this request is abandoned, and after how many tokens */
	enum { AB_NONE, AB_HEADERS, AB_BODY, AB_HEAD, AB_TOKENS } abort_at;
	long abort_after, max_tokens;
	int aborted;
};

struct session {
	size_t conv;
	size_t next_msg; /* index of the next user message */
	struct buf history_text; /* rendered "User:/Assistant:" history (completions) */
	struct chat_msg *msgs;   /* chat history (openai-chat) */
	char **owned;
	size_t n_msgs, n_owned;
};

struct bench {
	uv_loop_t *loop;
	struct tok *tok;
	struct wl_dataset ds;
	/* options */
	const char *base_url, *endpoint, *backend, *model, *dataset_name, *dataset_path, *mode_s, *save_requests;
	const char *result_dir, *result_filename, *percentile_metrics, *metric_percentiles, *goodput_s, *tokenizer;
	long num_prompts, max_conversations, seed, max_concurrency, synthetic_input, synthetic_output;
	double rate, burstiness, floor_ms, think_s, timeout_s, abort_fraction;
	double lag_ms;     /* --connect-lag-ms: clock start -> connect */
	size_t *lagged;    /* requests whose clock runs, waiting out lag_ms (FIFO: due times rise) */
	size_t lag_head, n_lagged, cap_lagged;
	int ignore_eos, save_result, disable_tqdm, chat;
	enum mode mode;
	char host[128];
	int port;
	char path[256];
	/* work */
	struct wl_request *reqs;
	size_t n_reqs;
	struct breq **all;
	size_t n_all, cap_all;
	struct req_result *results;
	size_t next_dispatch;
	size_t queued_head; /* requests past the arrival process waiting for the semaphore */
	size_t *queue;
	size_t n_queue, cap_queue;
	long in_flight, done, failed;
	uv_timer_t arrival, progress, lagprobe, kick, lag;
	uint64_t lag_due;
	double *lags;
	size_t n_lags, cap_lags;
	uv_signal_t sigint;
	struct rng rng, abort_rng;
	long aborted, abort_kinds[5];
	uint64_t t_start, t_end, t_first_dispatch, t_last_dispatch;
	uint64_t next_at; /* the arrival schedule, ns */
	long dispatched;
	double sem_wait_s, sem_wait_max; /* time spent waiting for --max-concurrency */
	int interrupted, stopped;
	struct session *sessions;
	size_t n_sessions, next_session;
	long sessions_open;
	long thinking;
	struct hist_backend {
		char name[96];
		long n;
	} backends[64];
	size_t n_backends;
	struct fail_reason {
		char what[96];
		long n;
	} reasons[32];
	size_t n_reasons;
};

/* ---- result bookkeeping --------------------------------------------------- */

static void count_reason(struct bench *b, const char *what)
{
	for (size_t i = 0; i < b->n_reasons; i++)
		if (!strcmp(b->reasons[i].what, what)) {
			b->reasons[i].n++;
			return;
		}
	if (b->n_reasons < 32) {
		snprintf(b->reasons[b->n_reasons].what, sizeof b->reasons[0].what, "%s", what);
		b->reasons[b->n_reasons++].n = 1;
	}
}

static void count_backend(struct bench *b, const char *name)
{
	if (!*name)
		return;
	for (size_t i = 0; i < b->n_backends; i++)
		if (!strcmp(b->backends[i].name, name)) {
			b->backends[i].n++;
			return;
		}
	if (b->n_backends < 64) {
		snprintf(b->backends[b->n_backends].name, sizeof b->backends[0].name, "%s", name);
		b->backends[b->n_backends++].n = 1;
	}
}

/* ---- SSE ------------------------------------------------------------------ */

/* One "data: ..." payload. Returns 1 on [DONE]. */
static int sse_event(struct breq *q, const char *p, size_t n, uint64_t now)
{
	if (n == 6 && !memcmp(p, "[DONE]", 6))
		return 1;
	const char *end = p + n, *vs, *ve;
	if (jscan_member(p, end, "choices", &vs, &ve) == 0 && *vs == '[' && *jscan_ws(vs + 1, ve) != ']') {
		/* a token chunk: TTFT on the first, an ITL gap on the others */
		if (q->chunks == 0) {
			q->b->results[q->idx].ttft = (double)(now - q->t0) / 1e9;
		} else {
			if (q->n_itl == q->cap_itl) {
				q->cap_itl = q->cap_itl ? q->cap_itl * 2 : 64;
				q->itl = realloc(q->itl, q->cap_itl * sizeof *q->itl);
			}
			q->itl[q->n_itl++] = (double)(now - q->t_last) / 1e9;
		}
		q->t_last = now;
		q->chunks++;
		const char *c0 = jscan_ws(vs + 1, ve), *tx;
		const char *ce = jscan_skip(c0, ve);
		if (ce) {
			const char *ds, *de;
			if (jscan_member(c0, ce, "text", &tx, NULL) == 0 && *tx == '"')
				jscan_string(tx, ce, &q->text);
			else if (jscan_member(c0, ce, "delta", &ds, &de) == 0 &&
				 jscan_member(ds, de, "content", &tx, NULL) == 0 && *tx == '"')
				jscan_string(tx, de, &q->text);
		}
	}
	if (jscan_member(p, end, "usage", &vs, &ve) == 0 && *vs == '{') {
		const char *v, *d, *de;
		long long x;
		if (jscan_member(vs, ve, "completion_tokens", &v, NULL) == 0 && jscan_int(v, ve, &x))
			q->usage_out = (long)x;
		if (jscan_member(vs, ve, "prompt_tokens_details", &d, &de) == 0 && *d == '{' &&
		    jscan_member(d, de, "cached_tokens", &v, NULL) == 0 && jscan_int(v, de, &x))
			q->cached = (long)x;
	}
	return 0;
}

/* Consumes whole lines of q->body. Returns 1 when [DONE] was seen. */
static int sse_lines(struct breq *q, uint64_t now)
{
	size_t off = 0;
	int done = 0;
	while (off < q->body.len) {
		const char *nl = memchr(q->body.data + off, '\n', q->body.len - off);
		if (!nl)
			break;
		const char *l = q->body.data + off;
		size_t len = (size_t)(nl - l);
		if (len && l[len - 1] == '\r')
			len--;
		if (len >= 6 && !memcmp(l, "data: ", 6))
			done |= sse_event(q, l + 6, len - 6, now);
		else if (len >= 5 && !memcmp(l, "data:", 5))
			done |= sse_event(q, l + 5, len - 5, now);
		off = (size_t)(nl - q->body.data) + 1;
	}
	buf_consume(&q->body, off);
	return done;
}

/* ---- request life --------------------------------------------------------- */

static void dispatch_ready(struct bench *b);
static void session_next(struct bench *b, size_t s);
static void maybe_finish(struct bench *b);

static void on_closed(uv_handle_t *h)
{
	struct breq *q = h->data;
	q->closed = 1;
}

static const char ABORTED[] = "aborted by the client";

static void finish(struct breq *q, const char *error)
{
	if (q->finished)
		return;
	q->finished = 1;
	struct bench *b = q->b;
	struct req_result *r = &b->results[q->idx];
	if (error == ABORTED) {
		q->aborted = 1;
		b->aborted++;
		b->abort_kinds[q->abort_at]++;
		r->success = 0;
		b->done++;
		b->in_flight--;
		uv_close((uv_handle_t *)&q->tcp, on_closed);
		if (b->mode == MODE_SESSIONS && !b->interrupted)
			session_next(b, q->session);
		dispatch_ready(b);
		maybe_finish(b);
		return;
	}
	if (!error && !q->chunks)
		error = "no token in the response";
	r->success = !error;
	r->latency = (double)(q->t_last - q->t0) / 1e9;
	r->itl = q->itl;
	r->n_itl = q->n_itl;
	r->cached_tokens = q->cached;
	if (q->usage_out >= 0)
		r->output_len = q->usage_out;
	else if (b->tok)
		r->output_len = tok_count(b->tok, q->text.data ? q->text.data : "", q->text.len, 0);
	if (error) {
		q->error = error;
		count_reason(b, error);
		b->failed++;
	} else {
		count_backend(b, q->backend);
	}
	b->done++;
	b->in_flight--;
	if (!uv_is_closing((uv_handle_t *)&q->tcp))
		uv_close((uv_handle_t *)&q->tcp, on_closed);
	if (b->mode == MODE_SESSIONS && !b->interrupted)
		session_next(b, q->session);
	dispatch_ready(b);
	maybe_finish(b);
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf)
{
	(void)h;
	(void)s;
	static char area[65536];
	*buf = uv_buf_init(area, sizeof area);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct breq *q = st->data;
	uint64_t now = uv_hrtime();
	if (q->finished)
		return;
	if (n < 0) {
		if (!q->head_done)
			finish(q, n == UV_EOF ? "connection closed before a response" : "connection error");
		else if (q->status != 200)
			finish(q, q->errbuf);
		else
			finish(q, "stream ended without [DONE]");
		return;
	}
	const char *p = buf->base;
	size_t len = (size_t)n;
	if (!q->head_done) {
		buf_append(&q->head, p, len);
		struct http_msg m;
		struct http_error e;
		long h = http_parse_response(q->head.data, q->head.len, 65536, &m, &e);
		if (h < 0) {
			finish(q, "malformed HTTP response");
			return;
		}
		if (h == 0)
			return;
		q->head_done = 1;
		q->status = m.status;
		q->chunked = m.chunked;
		const struct http_header *bh = http_find(&m, "x-prefixlb-backend");
		if (bh)
			snprintf(q->backend, sizeof q->backend, "%.*s", (int)bh->value_len, bh->value);
		if (m.status != 200)
			snprintf(q->errbuf, sizeof q->errbuf, "HTTP %d", m.status);
		else if (q->abort_at == AB_HEAD) {
			finish(q, ABORTED);
			return;
		}
		p = q->head.data + h;
		len = q->head.len - (size_t)h;
		/* the rest is body: move it out of head */
		struct buf rest;
		buf_init(&rest, 1 << 20);
		buf_append(&rest, p, len);
		buf_free(&q->head);
		q->head = rest;
		p = q->head.data ? q->head.data : "";
		len = q->head.len;
	}
	if (q->chunked) {
		struct http_error e;
		size_t used;
		int r = http_chunked_feed(&q->ch, p, len, &used, &q->body, 1u << 30, &e);
		if (r < 0) {
			finish(q, "malformed chunked body");
			return;
		}
	} else {
		buf_append(&q->body, p, len);
	}
	if (q->head.data && q->head_done)
		buf_reset(&q->head);
	if (q->status != 200)
		return; /* read to the end for the error */
	if (sse_lines(q, now))
		finish(q, NULL);
	else if (q->abort_at == AB_TOKENS && q->chunks >= q->abort_after)
		finish(q, ABORTED);
}

static void on_write(uv_write_t *w, int status)
{
	struct breq *q = w->data;
	if (status < 0 && !q->finished)
		finish(q, "write error");
	else if ((q->abort_at == AB_HEADERS || q->abort_at == AB_BODY) && !q->finished)
		finish(q, ABORTED);
}

static void on_connect(uv_connect_t *cr, int status)
{
	struct breq *q = cr->data;
	if (status < 0) {
		finish(q, status == UV_ECONNREFUSED ? "connection refused" : "connect error");
		return;
	}
	uv_tcp_nodelay(&q->tcp, 1);
	size_t len = q->out.len;
	if (q->abort_at == AB_HEADERS || q->abort_at == AB_BODY) {
		/* send part of the head, or the head and part of the body, then leave */
		const char *eoh = memmem(q->out.data, q->out.len, "\r\n\r\n", 4);
		size_t head = eoh ? (size_t)(eoh - q->out.data) + 4 : q->out.len;
		if (q->abort_at == AB_HEADERS || q->out.len == head)
			len = 1 + rng_below(&q->b->abort_rng, head > 1 ? head - 1 : 1);
		else
			len = head + rng_below(&q->b->abort_rng, q->out.len - head);
	}
	uv_buf_t bb = uv_buf_init(q->out.data, (unsigned)len);
	q->wr.data = q;
	uv_write(&q->wr, (uv_stream_t *)&q->tcp, &bb, 1, on_write);
	uv_read_start((uv_stream_t *)&q->tcp, on_alloc, on_read);
}

/* Builds the request body for prompt/messages. */
static void build_body(struct bench *b, struct buf *body, const char *prompt, size_t plen, const struct chat_msg *msgs,
		       size_t n_msgs, long max_tokens)
{
	buf_puts(body, "{\"model\":\"");
	buf_json_escape(body, b->model, strlen(b->model));
	if (b->chat) {
		buf_puts(body, "\",\"messages\":[");
		if (msgs) {
			for (size_t i = 0; i < n_msgs; i++) {
				buf_printf(body, "%s{\"role\":\"%.*s\",\"content\":\"", i ? "," : "", (int)msgs[i].role_len,
					   msgs[i].role);
				buf_json_escape(body, msgs[i].content, msgs[i].content_len);
				buf_puts(body, "\"}");
			}
		} else {
			buf_puts(body, "{\"role\":\"user\",\"content\":\"");
			buf_json_escape(body, prompt, plen);
			buf_puts(body, "\"}");
		}
		buf_printf(body, "],\"temperature\":0.0,\"max_completion_tokens\":%ld", max_tokens);
	} else {
		buf_puts(body, "\",\"prompt\":\"");
		buf_json_escape(body, prompt, plen);
		buf_printf(body, "\",\"temperature\":0.0,\"best_of\":1,\"max_tokens\":%ld", max_tokens);
	}
	if (b->ignore_eos)
		buf_puts(body, ",\"ignore_eos\":true");
	buf_puts(body, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

static void connect_request(struct breq *q)
{
	struct sockaddr_in a;
	uv_ip4_addr(q->b->host, q->b->port, &a);
	if (uv_tcp_connect(&q->cr, &q->tcp, (struct sockaddr *)&a, on_connect))
		finish(q, "connect error");
}

/* --connect-lag-ms emulates a client that is slow to put a request on the wire
 * once its clock has started (the seed's saturated Python event loop): the
 * lag counts in TTFT and latency like any other delay before the first byte. */
static void on_lag(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = uv_hrtime(), lag = (uint64_t)(b->lag_ms * 1e6);
	while (b->lag_head < b->n_lagged) {
		struct breq *q = b->all[b->lagged[b->lag_head]];
		if (!q->finished && q->t0 + lag > now) {
			uv_timer_start(&b->lag, on_lag, (q->t0 + lag - now + 999999) / 1000000, 0);
			return;
		}
		b->lag_head++;
		if (!q->finished)
			connect_request(q);
	}
}

static void start_request(struct bench *b, size_t idx)
{
	struct breq *q = b->all[idx];
	q->t0 = q->t_last = uv_hrtime();
	double wait = (double)(q->t0 - q->t_queued) / 1e9;
	b->sem_wait_s += wait;
	if (wait > b->sem_wait_max)
		b->sem_wait_max = wait;
	if (!b->t_first_dispatch)
		b->t_first_dispatch = q->t0;
	b->t_last_dispatch = q->t0;
	b->dispatched++;
	b->in_flight++;
	if (b->abort_fraction > 0 && rng_uniform(&b->abort_rng) < b->abort_fraction) {
		/* the four places a client can leave: in the head, in the body, before the first token, mid-stream */
		q->abort_at = AB_HEADERS + (int)rng_below(&b->abort_rng, 4);
		long expect = q->max_tokens;
		q->abort_after = 1 + (long)rng_below(&b->abort_rng, (uint64_t)(expect > 1 ? expect - 1 : 1));
	}
	uv_tcp_init(b->loop, &q->tcp);
	q->tcp.data = q;
	q->cr.data = q;
	if (b->lag_ms <= 0) {
		connect_request(q);
		return;
	}
	if (b->n_lagged == b->cap_lagged) {
		b->cap_lagged = b->cap_lagged ? b->cap_lagged * 2 : 1024;
		b->lagged = realloc(b->lagged, b->cap_lagged * sizeof *b->lagged);
	}
	b->lagged[b->n_lagged++] = idx;
	if (!uv_is_active((uv_handle_t *)&b->lag))
		uv_timer_start(&b->lag, on_lag, (uint64_t)ceil(b->lag_ms), 0);
}

/* A request past the arrival process: run it now if the semaphore allows. */
static void enqueue(struct bench *b, size_t idx)
{
	if (b->n_queue == b->cap_queue) {
		b->cap_queue = b->cap_queue ? b->cap_queue * 2 : 1024;
		b->queue = realloc(b->queue, b->cap_queue * sizeof *b->queue);
	}
	b->queue[b->n_queue++] = idx;
	b->all[idx]->t_queued = uv_hrtime();
	dispatch_ready(b);
}

static void on_kick(uv_timer_t *t)
{
	dispatch_ready(t->data);
}

/* Starts queued requests the semaphore admits, at most 128 per loop turn, so
 * a burst of thousands doesn't stall the timestamps of streams in flight. */
static void dispatch_ready(struct bench *b)
{
	int started = 0;
	while (b->queued_head < b->n_queue && !b->interrupted &&
	       (b->max_concurrency <= 0 || b->in_flight < b->max_concurrency)) {
		if (started++ == 128) {
			if (!b->stopped)
				uv_timer_start(&b->kick, on_kick, 0, 0);
			return;
		}
		start_request(b, b->queue[b->queued_head++]);
	}
}

static struct breq *new_breq(struct bench *b, const char *prompt, size_t plen, const struct chat_msg *msgs,
			     size_t n_msgs, long max_tokens, long prompt_tokens)
{
	if (b->n_all == b->cap_all) {
		b->cap_all = b->cap_all ? b->cap_all * 2 : 1024;
		b->all = realloc(b->all, b->cap_all * sizeof *b->all);
		b->results = realloc(b->results, b->cap_all * sizeof *b->results);
	}
	struct breq *q = calloc(1, sizeof *q);
	q->b = b;
	q->idx = b->n_all;
	q->usage_out = -1;
	q->cached = -1;
	q->max_tokens = max_tokens;
	buf_init(&q->out, (size_t)1 << 30);
	buf_init(&q->head, 1 << 20);
	buf_init(&q->body, (size_t)1 << 30);
	buf_init(&q->text, (size_t)1 << 30);
	struct buf body;
	buf_init(&body, (size_t)1 << 30);
	build_body(b, &body, prompt, plen, msgs, n_msgs, max_tokens);
	buf_printf(&q->out, "POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
			    "connection: close\r\ncontent-length: %zu\r\n\r\n",
		   b->path, b->host, b->port, body.len);
	buf_append(&q->out, body.data, body.len);
	buf_free(&body);
	memset(&b->results[q->idx], 0, sizeof b->results[q->idx]);
	b->results[q->idx].prompt_len = prompt_tokens;
	b->results[q->idx].cached_tokens = -1;
	b->all[b->n_all++] = q;
	return q;
}

/* ---- arrivals ------------------------------------------------------------- */

static double next_interval(struct bench *b)
{
	double s = 0;
	if (isfinite(b->rate) && b->rate > 0)
		s = rng_gamma(&b->rng, b->burstiness, 1.0 / (b->rate * b->burstiness));
	if (s * 1000 < b->floor_ms)
		s = b->floor_ms / 1000;
	return s;
}

static void on_arrival(uv_timer_t *t);

static int release_one(struct bench *b)
{
	if (b->mode == MODE_SESSIONS) {
		if (b->next_session >= b->n_sessions || (long)b->n_all >= b->num_prompts)
			return 0;
		b->sessions_open++;
		session_next(b, b->next_session++);
		return 1;
	}
	if (b->next_dispatch >= b->n_reqs)
		return 0;
	struct wl_request *w = &b->reqs[b->next_dispatch++];
	new_breq(b, w->prompt, w->prompt_len, NULL, 0, w->max_tokens, w->prompt_tokens);
	enqueue(b, b->n_all - 1);
	return 1;
}

/* Arrival times are kept on an absolute, nanosecond schedule; the timer only
 * wakes the loop (libuv timers have 1 ms resolution) and every arrival due by
 * then is released, so the achieved rate is the asked one, not one rounded to
 * whole milliseconds per gap. */
static void on_arrival(uv_timer_t *t)
{
	struct bench *b = t->data;
	if (b->interrupted)
		return;
	if (!b->next_at)
		b->next_at = uv_hrtime();
	if (!isfinite(b->rate) && b->floor_ms <= 0) { /* as vLLM with rate inf: all at once */
		while (release_one(b))
			;
		return;
	}
	uint64_t now = uv_hrtime();
	int more = 1;
	while (more && b->next_at <= now) {
		more = release_one(b);
		if (more)
			b->next_at += (uint64_t)(next_interval(b) * 1e9);
	}
	if (more) {
		uint64_t ms = b->next_at > now ? (b->next_at - now + 999999) / 1000000 : 0;
		uv_timer_start(&b->arrival, on_arrival, ms, 0);
	}
}

/* ---- sessions ------------------------------------------------------------- */

struct think {
	uv_timer_t t;
	struct bench *b;
	size_t idx;
};

static void free_think(uv_handle_t *h)
{
	free(h->data);
}

static void on_think(uv_timer_t *t)
{
	struct think *th = t->data;
	struct bench *b = th->b;
	b->thinking--;
	if (!b->interrupted)
		enqueue(b, th->idx);
	uv_close((uv_handle_t *)&th->t, free_think);
	maybe_finish(b);
}

/* Sends the session's next user turn with the whole history, the model's
 * own answers included; closes the session at its end. */
static void session_next(struct bench *b, size_t si)
{
	struct session *s = &b->sessions[si];
	const struct wl_conv *c = &b->ds.convs[s->conv];
	/* record the previous answer */
	if (s->next_msg > 0) {
		struct breq *prev = NULL;
		for (size_t i = b->n_all; i-- > 0;)
			if (b->all[i]->session == si) {
				prev = b->all[i];
				break;
			}
		const char *ans = prev && prev->text.data ? prev->text.data : "";
		size_t al = prev ? prev->text.len : 0;
		buf_puts(&s->history_text, "Assistant: ");
		buf_append(&s->history_text, ans, al);
		buf_putc(&s->history_text, '\n');
		char *copy = strndup(ans, al);
		s->owned[s->n_owned++] = copy;
		s->msgs[s->n_msgs++] = (struct chat_msg){"assistant", 9, copy, al};
	}
	if (s->next_msg + 1 >= c->n || (long)b->n_all >= b->num_prompts) {
		b->sessions_open--;
		/* a finished session lets a waiting one start (concurrency = sessions) */
		if (b->next_session < b->n_sessions && (long)b->n_all < b->num_prompts &&
		    (b->max_concurrency <= 0 || b->sessions_open < b->max_concurrency) && !isfinite(b->rate)) {
			b->sessions_open++;
			session_next(b, b->next_session++);
		}
		maybe_finish(b);
		return;
	}
	const struct wl_msg *um = &c->msgs[s->next_msg];
	buf_puts(&s->history_text, "User: ");
	buf_append(&s->history_text, um->text, um->len);
	buf_putc(&s->history_text, '\n');
	s->msgs[s->n_msgs++] = (struct chat_msg){"user", 4, um->text, um->len};
	long max_tokens = tok_count(b->tok, c->msgs[s->next_msg + 1].text, c->msgs[s->next_msg + 1].len, TOK_BOS);
	long pt = b->chat ? 0 : tok_count(b->tok, s->history_text.data, s->history_text.len, TOK_BOS);
	if (b->chat) {
		struct buf r;
		buf_init(&r, (size_t)1 << 30);
		chat_render(s->msgs, s->n_msgs, 1, &r);
		pt = tok_count(b->tok, r.data, r.len, 0);
		buf_free(&r);
	}
	struct breq *q = new_breq(b, s->history_text.data, s->history_text.len, b->chat ? s->msgs : NULL, s->n_msgs,
				  max_tokens < 1 ? 1 : max_tokens, pt);
	q->session = si;
	q->turn = s->next_msg;
	s->next_msg += 2;
	if (b->think_s > 0 && s->next_msg > 2) {
		/* the user thinks before the next turn; the request's clock starts later */
		struct think *th = malloc(sizeof *th);
		uv_timer_init(b->loop, &th->t);
		th->t.data = th;
		th->b = b;
		th->idx = q->idx;
		b->thinking++;
		uv_timer_start(&th->t, on_think, (uint64_t)llround(b->think_s * 1000), 0);
		return;
	}
	enqueue(b, q->idx);
}

/* ---- timing error ----------------------------------------------------------- */

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
			b->lags = realloc(b->lags, b->cap_lags * sizeof *b->lags);
		}
		b->lags[b->n_lags++] = now > b->lag_due ? (double)(now - b->lag_due) / 1e3 : 0;
	}
	uv_update_time(b->loop);
	b->lag_due = now + 1000000;
	uv_timer_start(&b->lagprobe, on_lagprobe, 1, 0);
}

/* ---- progress, end -------------------------------------------------------- */

static void on_progress(uv_timer_t *t)
{
	struct bench *b = t->data;
	double el = (double)(uv_hrtime() - b->t_start) / 1e9;
	long total = b->num_prompts;
	int w = 30, fill = total ? (int)(w * b->done / total) : 0;
	char bar[64];
	for (int i = 0; i < w; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[w] = 0;
	double rate = el > 0 ? b->done / el : 0;
	double eta = rate > 0 ? (total - b->done) / rate : 0;
	fprintf(stderr, "\r[%s] %ld/%ld requests, %.1f req/s, %ld failed, %.0fs elapsed, ETA %.0fs ", bar, b->done, total,
		rate, b->failed, el, eta);
}

static void stop_all(struct bench *b)
{
	if (b->stopped)
		return;
	b->stopped = 1;
	b->t_end = uv_hrtime();
	uv_timer_stop(&b->arrival);
	uv_timer_stop(&b->progress);
	uv_timer_stop(&b->lagprobe);
	uv_timer_stop(&b->kick);
	uv_timer_stop(&b->lag);
	uv_close((uv_handle_t *)&b->lag, NULL);
	uv_close((uv_handle_t *)&b->lagprobe, NULL);
	uv_close((uv_handle_t *)&b->kick, NULL);
	uv_close((uv_handle_t *)&b->arrival, NULL);
	uv_close((uv_handle_t *)&b->progress, NULL);
	uv_close((uv_handle_t *)&b->sigint, NULL);
}

static void maybe_finish(struct bench *b)
{
	int all_sent = b->mode == MODE_SESSIONS ? (b->sessions_open == 0 &&
						   (b->next_session >= b->n_sessions || (long)b->n_all >= b->num_prompts))
						: b->next_dispatch >= b->n_reqs;
	if ((all_sent || b->interrupted) && b->in_flight == 0 && b->queued_head >= b->n_queue && !b->thinking)
		stop_all(b);
}

static void on_sigint(uv_signal_t *s, int sig)
{
	(void)sig;
	struct bench *b = s->data;
	if (b->interrupted)
		return;
	b->interrupted = 1;
	fprintf(stderr, "\ninterrupted: stopping, results so far follow\n");
	b->queued_head = b->n_queue; /* drop queued requests */
	for (size_t i = 0; i < b->n_all; i++) {
		struct breq *q = b->all[i];
		if (q->t0 && !q->finished)
			finish(q, "interrupted");
	}
	maybe_finish(b);
}

/* ---- output --------------------------------------------------------------- */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static unsigned parse_selected(const char *s)
{
	unsigned m = 0;
	if (strstr(s, "ttft"))
		m |= 1u << M_TTFT;
	if (strstr(s, "tpot"))
		m |= 1u << M_TPOT;
	if (strstr(s, "itl"))
		m |= 1u << M_ITL;
	if (strstr(s, "e2el"))
		m |= 1u << M_E2EL;
	return m;
}

static size_t parse_percentiles(const char *s, double *out)
{
	size_t n = 0;
	char tmp[256];
	snprintf(tmp, sizeof tmp, "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
		out[n++] = atof(t);
	return n;
}

static void json_num_array(struct buf *j, const char *key, const struct bench *b, int which)
{
	buf_printf(j, ", \"%s\": [", key);
	int first = 1;
	for (size_t i = 0; i < b->n_all; i++) {
		const struct req_result *r = &b->results[i];
		if (!b->all[i]->t0)
			continue;
		double v = which == 0 ? (double)r->prompt_len : which == 1 ? (double)r->output_len : r->ttft;
		buf_printf(j, first ? "%.17g" : ", %.17g", v);
		first = 0;
	}
	buf_puts(j, "]");
}

static void save_json(struct bench *b, const struct bench_metrics *m, const char *path)
{
	struct buf j;
	buf_init(&j, (size_t)1 << 32);
	char date[32];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
	buf_printf(&j, "{\"date\": \"%s\", \"backend\": \"%s\", \"model_id\": \"", date, b->backend);
	buf_json_escape(&j, b->model, strlen(b->model));
	buf_puts(&j, "\", \"tokenizer_id\": \"");
	buf_json_escape(&j, b->tokenizer ? b->tokenizer : "data/tokenizer.json", strlen(b->tokenizer ? b->tokenizer : "data/tokenizer.json"));
	buf_printf(&j, "\", \"best_of\": 1, \"num_prompts\": %ld, \"request_rate\": ", b->num_prompts);
	if (isfinite(b->rate))
		buf_printf(&j, "%.17g", b->rate);
	else
		buf_puts(&j, "\"inf\"");
	buf_printf(&j, ", \"burstiness\": %.17g, \"max_concurrency\": ", b->burstiness);
	if (b->max_concurrency > 0)
		buf_printf(&j, "%ld", b->max_concurrency);
	else
		buf_puts(&j, "null");
	buf_printf(&j, ", \"duration\": %.17g, \"completed\": %ld, \"total_input_tokens\": %ld, \"total_output_tokens\": %ld",
		   m->duration, m->completed, m->total_input, m->total_output);
	buf_printf(&j, ", \"request_throughput\": %.17g, \"output_throughput\": %.17g, \"total_token_throughput\": %.17g",
		   m->request_throughput, m->output_throughput, m->total_token_throughput);
	if (m->has_goodput)
		buf_printf(&j, ", \"request_goodput\": %.17g", m->request_goodput);
	json_num_array(&j, "input_lens", b, 0);
	json_num_array(&j, "output_lens", b, 1);
	json_num_array(&j, "ttfts", b, 2);
	buf_puts(&j, ", \"itls\": [");
	for (size_t i = 0; i < b->n_all; i++) {
		buf_puts(&j, i ? ", [" : "[");
		for (size_t k = 0; k < b->all[i]->n_itl; k++)
			buf_printf(&j, k ? ", %.17g" : "%.17g", b->all[i]->itl[k]);
		buf_puts(&j, "]");
	}
	buf_puts(&j, "], \"generated_texts\": [");
	for (size_t i = 0; i < b->n_all; i++) {
		buf_puts(&j, i ? ", \"" : "\"");
		buf_json_escape(&j, b->all[i]->text.data ? b->all[i]->text.data : "", b->all[i]->text.len);
		buf_puts(&j, "\"");
	}
	buf_puts(&j, "], \"errors\": [");
	for (size_t i = 0; i < b->n_all; i++) {
		const char *e = b->all[i]->error ? b->all[i]->error : "";
		buf_printf(&j, i ? ", \"%s\"" : "\"%s\"", e);
	}
	buf_puts(&j, "]");
	static const char *const names[M_COUNT] = {"ttft", "tpot", "itl", "e2el"};
	for (int k = 0; k < M_COUNT; k++) {
		buf_printf(&j, ", \"mean_%s_ms\": %.17g, \"median_%s_ms\": %.17g, \"std_%s_ms\": %.17g", names[k],
			   m->m[k].mean, names[k], m->m[k].median, names[k], m->m[k].std);
		for (size_t i = 0; i < m->n_percentiles; i++) {
			char pw[32];
			double p = m->percentiles[i];
			if (p == (double)(long)p)
				snprintf(pw, sizeof pw, "%ld", (long)p);
			else
				snprintf(pw, sizeof pw, "%g", p);
			buf_printf(&j, ", \"p%s_%s_ms\": %.17g", pw, names[k], m->m[k].pct[i]);
		}
	}
	buf_printf(&j, ", \"failed\": %ld", m->failed);
	if (m->prompt_tokens_cached_known)
		buf_printf(&j, ", \"cache_hit_rate\": %.17g",
			   (double)m->cached_tokens / (double)m->prompt_tokens_cached_known);
	buf_puts(&j, "}\n");
	FILE *f = fopen(path, "w");
	if (!f || fwrite(j.data, 1, j.len, f) != j.len || fclose(f))
		fprintf(stderr, "prefixlb bench: %s: cannot write\n", path);
	else
		fprintf(stderr, "saved %s\n", path);
	buf_free(&j);
}

static void save_csv(struct bench *b, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "prefixlb bench: %s: cannot write\n", path);
		return;
	}
	fprintf(f, "index,conversation,turn,backend,success,prompt_tokens,output_tokens,cached_tokens,start_ms,ttft_ms,"
		   "latency_ms,error\n");
	for (size_t i = 0; i < b->n_all; i++) {
		const struct breq *q = b->all[i];
		const struct req_result *r = &b->results[i];
		size_t conv = b->mode == MODE_SESSIONS ? b->sessions[q->session].conv : (i < b->n_reqs ? b->reqs[i].conv : 0);
		size_t turn = b->mode == MODE_SESSIONS ? q->turn : (i < b->n_reqs ? b->reqs[i].turn : 0);
		double start = q->t0 ? (double)(q->t0 - b->t_start) / 1e6 : -1;
		fprintf(f, "%zu,%zu,%zu,%s,%d,%ld,%ld,%ld,%.3f,%.3f,%.3f,%s\n", i, conv, turn,
			q->backend[0] ? q->backend : "-", r->success,
			r->prompt_len, r->output_len, r->cached_tokens, start, r->ttft * 1e3, r->latency * 1e3,
			q->error ? q->error : "");
	}
	fclose(f);
}

static int report(struct bench *b)
{
	double pcts[16];
	size_t np = parse_percentiles(b->metric_percentiles, pcts);
	struct goodput_slo slo = {-1, -1, -1}, *sp = NULL;
	if (b->goodput_s) {
		char tmp[256];
		snprintf(tmp, sizeof tmp, "%s", b->goodput_s);
		char *save = NULL;
		for (char *t = strtok_r(tmp, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
			char *c = strchr(t, ':');
			if (!c)
				continue;
			*c = 0;
			double v = atof(c + 1);
			if (!strcmp(t, "ttft"))
				slo.ttft_ms = v;
			else if (!strcmp(t, "tpot"))
				slo.tpot_ms = v;
			else if (!strcmp(t, "e2el"))
				slo.e2el_ms = v;
		}
		sp = &slo;
	}
	size_t n = 0;
	struct req_result *sent = calloc(b->n_all + 1, sizeof *sent);
	for (size_t i = 0; i < b->n_all; i++)
		if (b->all[i]->t0 && !b->all[i]->aborted)
			sent[n++] = b->results[i]; /* never sent (Ctrl-C) or abandoned on purpose: not counted */
	double duration = (double)(b->t_end - b->t_start) / 1e9;
	struct bench_metrics m;
	stats_compute(sent, n, duration, pcts, np, sp, &m);
	free(sent);
	struct buf out;
	buf_init(&out, 1 << 20);
	stats_format(&m, parse_selected(b->percentile_metrics), &out);
	if (b->progress.data && !b->disable_tqdm)
		fputc('\n', stderr);
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	/* what the seed's block lacks */
	printf("%-40s %-10ld\n", "Failed requests:", m.failed);
	for (size_t i = 0; i < b->n_reasons; i++)
		printf("  %-38s %-10ld\n", b->reasons[i].what, b->reasons[i].n);
	if (b->abort_fraction > 0) {
		printf("%-40s %-10ld\n", "Aborted by the client (not counted):", b->aborted);
		static const char *where[] = {"", "in the request head", "in the request body", "before the first token",
					      "mid-stream"};
		for (int k = AB_HEADERS; k <= AB_TOKENS; k++)
			printf("  %-38s %-10ld\n", where[k], b->abort_kinds[k]);
	}
	if (m.prompt_tokens_cached_known)
		printf("%-40s %-10.4f\n", "Prefix cache hit rate:", (double)m.cached_tokens / m.prompt_tokens_cached_known);
	double disp = b->t_last_dispatch > b->t_first_dispatch
			      ? (double)(b->dispatched - 1) / ((double)(b->t_last_dispatch - b->t_first_dispatch) / 1e9)
			      : 0;
	printf("%-40s %-10.2f\n", "Achieved dispatch rate (req/s):", disp);
	if (b->max_concurrency > 0)
		printf("%-40s %-10.2f\n%-40s %-10.2f\n", "Mean wait for max-concurrency (ms):",
		       b->dispatched ? b->sem_wait_s / (double)b->dispatched * 1e3 : 0, "Max wait for max-concurrency (ms):",
		       b->sem_wait_max * 1e3);
	if (b->n_lags) {
		qsort(b->lags, b->n_lags, sizeof *b->lags, cmp_dbl);
		printf("%-40s %-10.1f\n", "Client timing error p50 (us):", stats_percentile(b->lags, b->n_lags, 50));
		printf("%-40s %-10.1f\n", "Client timing error p99 (us):", stats_percentile(b->lags, b->n_lags, 99));
		printf("%-40s %-10.1f\n", "Client timing error max (us):", b->lags[b->n_lags - 1]);
	}
	for (size_t i = 0; i < b->n_backends; i++) {
		char label[128];
		snprintf(label, sizeof label, "Requests on %s:", b->backends[i].name);
		printf("%-40s %-10ld\n", label, b->backends[i].n);
	}
	fflush(stdout);
	if (b->save_result) {
		char path[1024];
		if (b->result_filename && b->result_filename[0] == '/')
			snprintf(path, sizeof path, "%s", b->result_filename);
		else if (b->result_filename)
			snprintf(path, sizeof path, "%s/%s", b->result_dir ? b->result_dir : ".", b->result_filename);
		else {
			char date[32];
			time_t now = time(NULL);
			struct tm tm;
			localtime_r(&now, &tm);
			strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
			snprintf(path, sizeof path, "%s/%s-%sqps-%s.json", b->result_dir ? b->result_dir : ".", b->backend,
				 isfinite(b->rate) ? "" : "inf", date);
		}
		save_json(b, &m, path);
	}
	if (b->save_requests)
		save_csv(b, b->save_requests);
	return 0;
}

/* ---- main ----------------------------------------------------------------- */

static const char bench_usage[] =
	"usage: prefixlb bench --base-url http://HOST:PORT --model NAME --dataset-path FILE [options]\n"
	"  A benchmark client compatible with vLLM's benchmark_serving.py (same flags, block and JSON).\n"
	"  --multi-turn-mode fork (the seed's: prompts from the first --max-conversations pairs), sessions\n"
	"  (real chat sessions, answers fed back), or single (upstream ShareGPT sampling).\n";

static int parse_url(struct bench *b)
{
	const char *u = b->base_url;
	if (strncmp(u, "http://", 7) != 0)
		return -1;
	u += 7;
	const char *colon = strchr(u, ':'), *slash = strchr(u, '/');
	if (!colon || (slash && slash < colon))
		return -1;
	snprintf(b->host, sizeof b->host, "%.*s", (int)(colon - u), u);
	if (!strcmp(b->host, "localhost"))
		snprintf(b->host, sizeof b->host, "127.0.0.1");
	b->port = atoi(colon + 1);
	const char *prefix = slash ? slash : "";
	size_t pl = strlen(prefix);
	while (pl && prefix[pl - 1] == '/')
		pl--;
	snprintf(b->path, sizeof b->path, "%.*s%s", (int)pl, prefix, b->endpoint);
	return b->port > 0 ? 0 : -1;
}

int cmd_bench(int argc, char **argv)
{
	static struct bench b;
	memset(&b, 0, sizeof b);
	b.base_url = "http://127.0.0.1:8000";
	b.backend = "vllm";
	b.model = "llama-3.1-8b-instruct-fp8-l4";
	b.dataset_name = "sharegpt";
	b.mode_s = "fork";
	b.percentile_metrics = "ttft,tpot,itl";
	b.metric_percentiles = "99";
	b.num_prompts = 1000;
	b.max_conversations = 0;
	b.seed = 0;
	b.rate = INFINITY;
	b.burstiness = 1.0;
	b.result_dir = ".";
	const char *rate_s = "inf";
	const struct opt tab[] = {
		{"base-url", OPT_STR, &b.base_url, "server or router, http://HOST:PORT", 0, 0},
		{"endpoint", OPT_STR, &b.endpoint, "path (default /v1/completions, /v1/chat/completions for openai-chat)", 0, 0},
		{"backend", OPT_STR, &b.backend, "vllm | openai (completions) | openai-chat (chat completions)", 0, 0},
		{"model", OPT_STR, &b.model, "model name sent in requests", 0, 0},
		{"tokenizer", OPT_STR, &b.tokenizer, "tokenizer.json for counting", 0, 0},
		{"dataset-name", OPT_STR, &b.dataset_name, "sharegpt (--dataset-path) or synthetic (prefixlb dataset's seed preset)", 0, 0},
		{"dataset-path", OPT_STR, &b.dataset_path, "ShareGPT JSON file", 0, 0},
		{"num-prompts", OPT_INT, &b.num_prompts, "requests to send", 1, 1e9},
		{"max-conversations", OPT_INT, &b.max_conversations, "fork: first N pairs; sessions: N conversations", 0, 1e9},
		{"multi-turn-mode", OPT_STR, &b.mode_s, "fork | sessions | single", 0, 0},
		{"seed", OPT_INT, &b.seed, "random seed (shuffle, arrivals)", 0, 0},
		{"request-rate", OPT_STR, &rate_s, "requests (sessions) per second, or inf", 0, 0},
		{"burstiness", OPT_DBL, &b.burstiness, "gamma shape of the arrivals (1 = Poisson)", 1e-3, 1e3},
		{"max-concurrency", OPT_INT, &b.max_concurrency, "most requests in flight (sessions: open sessions)", 0, 1e7},
		{"dispatch-floor-ms", OPT_DBL, &b.floor_ms, "at least this long between dispatches (seed: ~7.7)", 0, 1e6},
		{"connect-lag-ms", OPT_DBL, &b.lag_ms,
		 "wait this long after a request's clock starts before connecting (emulates a lagging client)", 0, 1e6},
		{"think-time-s", OPT_DBL, &b.think_s, "sessions: pause before each next turn", 0, 1e6},
		{"abort-fraction", OPT_DBL, &b.abort_fraction,
		 "abandon this fraction of requests at a random point (head, body, before or after the first token)", 0, 1},
		{"percentile-metrics", OPT_STR, &b.percentile_metrics, "ttft,tpot,itl[,e2el]", 0, 0},
		{"metric-percentiles", OPT_STR, &b.metric_percentiles, "e.g. 50,90,99", 0, 0},
		{"goodput", OPT_STR, &b.goodput_s, "SLOs, e.g. ttft:500 tpot:50 (ms)", 0, 0},
		{"ignore-eos", OPT_BOOL, &b.ignore_eos, "send ignore_eos", 0, 0},
		{"save-result", OPT_BOOL, &b.save_result, "write the result JSON", 0, 0},
		{"result-dir", OPT_STR, &b.result_dir, "where --save-result writes", 0, 0},
		{"result-filename", OPT_STR, &b.result_filename, "file name for --save-result", 0, 0},
		{"save-requests", OPT_STR, &b.save_requests, "per-request CSV file", 0, 0},
		{"disable-tqdm", OPT_BOOL, &b.disable_tqdm, "no progress bar", 0, 0},
		{0},
	};
	int pr = opts_parse("bench", bench_usage, tab, argc, argv, NULL, NULL);
	if (pr)
		return pr == 1 ? 0 : 2;
	b.rate = !strcmp(rate_s, "inf") ? INFINITY : atof(rate_s);
	if (!(b.rate > 0)) {
		fprintf(stderr, "prefixlb bench: --request-rate %s: expected a positive number or inf\n", rate_s);
		return 2;
	}
	b.chat = !strcmp(b.backend, "openai-chat");
	if (!b.endpoint)
		b.endpoint = b.chat ? "/v1/chat/completions" : "/v1/completions";
	if (!strcmp(b.mode_s, "fork"))
		b.mode = MODE_FORK;
	else if (!strcmp(b.mode_s, "sessions"))
		b.mode = MODE_SESSIONS;
	else if (!strcmp(b.mode_s, "single"))
		b.mode = MODE_SINGLE;
	else {
		fprintf(stderr, "prefixlb bench: --multi-turn-mode %s: fork, sessions or single\n", b.mode_s);
		return 2;
	}
	int synthetic = !strcmp(b.dataset_name, "synthetic");
	if (!synthetic && strcmp(b.dataset_name, "sharegpt") != 0) {
		fprintf(stderr, "prefixlb bench: --dataset-name %s: sharegpt or synthetic\n", b.dataset_name);
		return 2;
	}
	if (parse_url(&b)) {
		fprintf(stderr, "prefixlb bench: --base-url %s: expected http://HOST:PORT (an IP or localhost)\n", b.base_url);
		return 2;
	}
	if (!b.dataset_path && !synthetic) {
		fprintf(stderr, "prefixlb bench: --dataset-path is required with --dataset-name sharegpt\n");
		return 2;
	}
	cmd_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	b.tok = cmd_load_tokenizer(b.tokenizer);
	if (!b.tok)
		return 1;
	struct buf file;
	buf_init(&file, (size_t)1 << 34);
	int rc = 0;
	char err[256];
	if (synthetic) { /* `prefixlb dataset`'s seed preset, in memory */
		struct wl_gen g;
		wl_preset("seed", &g);
		g.seed = (uint64_t)b.seed;
		wl_generate(&g, &b.ds);
		b.dataset_path = "(synthetic)";
	} else if (cmd_read_file(b.dataset_path, file.max, &file) ||
		   wl_parse_sharegpt(file.data ? file.data : "", file.len, &b.ds, err, sizeof err)) {
		if (file.data)
			fprintf(stderr, "prefixlb bench: %s:%s\n", b.dataset_path, err);
		buf_free(&file);
		tok_free(b.tok);
		return 1;
	}
	buf_free(&file);
	rng_seed(&b.rng, (uint64_t)b.seed);
	rng_seed(&b.abort_rng, (uint64_t)b.seed ^ 0xab0a7ab0a7ull);
	if (b.mode == MODE_FORK)
		wl_fork_requests(&b.ds, b.tok, (size_t)b.max_conversations, (size_t)b.num_prompts, (uint64_t)b.seed, &b.reqs,
				 &b.n_reqs);
	else if (b.mode == MODE_SINGLE)
		wl_single_requests(&b.ds, b.tok, (size_t)b.num_prompts, (uint64_t)b.seed, &b.reqs, &b.n_reqs);
	else {
		size_t nconv = b.max_conversations > 0 && (size_t)b.max_conversations < b.ds.n ? (size_t)b.max_conversations
												 : b.ds.n;
		b.sessions = calloc(nconv + 1, sizeof *b.sessions);
		for (size_t i = 0; i < nconv; i++) {
			b.sessions[i].conv = i;
			buf_init(&b.sessions[i].history_text, (size_t)1 << 30);
			b.sessions[i].msgs = calloc(b.ds.convs[i].n + 2, sizeof *b.sessions[i].msgs);
			b.sessions[i].owned = calloc(b.ds.convs[i].n + 2, sizeof *b.sessions[i].owned);
		}
		b.n_sessions = nconv;
	}
	if (b.mode != MODE_SESSIONS && b.n_reqs == 0) {
		fprintf(stderr, "prefixlb bench: %s: no request survives the filters\n", b.dataset_path);
		rc = 1;
		goto out;
	}
	if (b.mode != MODE_SESSIONS)
		b.num_prompts = (long)b.n_reqs;
	b.loop = uv_default_loop();
	uv_timer_init(b.loop, &b.arrival);
	uv_timer_init(b.loop, &b.progress);
	uv_timer_init(b.loop, &b.lagprobe);
	uv_timer_init(b.loop, &b.kick);
	uv_timer_init(b.loop, &b.lag);
	uv_signal_init(b.loop, &b.sigint);
	b.arrival.data = b.progress.data = b.sigint.data = b.lagprobe.data = b.kick.data = b.lag.data = &b;
	uv_timer_start(&b.lagprobe, on_lagprobe, 1, 0);
	uv_signal_start(&b.sigint, on_sigint, SIGINT);
	if (!b.disable_tqdm && isatty(2))
		uv_timer_start(&b.progress, on_progress, 200, 200);
	else
		b.progress.data = NULL;
	fprintf(stderr, "prefixlb bench: %ld requests (%s mode) to %s%s, rate %s, max concurrency %ld\n", b.num_prompts,
		b.mode_s, b.base_url, b.path, rate_s, b.max_concurrency);
	b.t_start = uv_hrtime();
	if (b.mode == MODE_SESSIONS && !isfinite(b.rate)) {
		long open = b.max_concurrency > 0 ? b.max_concurrency : (long)b.n_sessions;
		for (long i = 0; i < open && b.next_session < b.n_sessions; i++) {
			b.sessions_open++;
			session_next(&b, b.next_session++);
		}
	} else {
		uv_timer_start(&b.arrival, on_arrival, 0, 0);
	}
	uv_run(b.loop, UV_RUN_DEFAULT);
	if (!b.t_end)
		b.t_end = uv_hrtime();
	report(&b);
out:
	for (size_t i = 0; i < b.n_all; i++) {
		struct breq *q = b.all[i];
		buf_free(&q->out);
		buf_free(&q->head);
		buf_free(&q->body);
		buf_free(&q->text);
		free(q->itl);
		free(q);
	}
	free(b.all);
	free(b.lags);
	free(b.results);
	free(b.queue);
	free(b.lagged);
	for (size_t i = 0; i < b.n_sessions; i++) {
		buf_free(&b.sessions[i].history_text);
		for (size_t k = 0; k < b.sessions[i].n_owned; k++)
			free(b.sessions[i].owned[k]);
		free(b.sessions[i].owned);
		free(b.sessions[i].msgs);
	}
	free(b.sessions);
	wl_requests_free(b.reqs, b.n_reqs);
	wl_free(&b.ds);
	tok_free(b.tok);
	if (b.loop)
		uv_loop_close(b.loop);
	return rc;
}
