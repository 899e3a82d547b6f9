/* server.c: HTTP/1.1 server on libuv; see server.h for the contract.
 *
 * Connection states:
 *   HEAD    reading a request head (deadline: request_timeout_ms); each read
 *           searches only its new bytes for the end of the head
 *           (http_head_end), and the head is parsed once, when whole: a head
 *           trickled in k reads costs O(size + k), not O(size * k)
 *   BODY    reading its body (Content-Length or chunked)
 *   FLIGHT  the handler owns the response; reads continue (disconnect
 *           detection), bytes are buffered up to max_head, then reading stops
 *   IDLE    keep-alive, waiting for the next request (idle_timeout_ms)
 * A finished response moves FLIGHT -> IDLE (or closes); buffered pipelined
 * bytes are then parsed from a zero-delay timer, never recursively. */
#include "../core/mem.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum cstate { S_HEAD, S_BODY, S_FLIGHT, S_IDLE };

/* The parsed head lives here only while it is used (parsing, then the
 * on_request call): a connection keeps just its bytes and framing, which
 * saves 3 KiB per connection at 10,000 connections. Single-threaded loop. */
static struct http_msg scratch;

struct http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	struct http_server_cfg cfg;
	struct http_conn *conns; /* doubly linked */
	size_t n_conns;
	size_t n_alive; /* conn structs not yet freed */
	int port;
	int listening;
	int closing;
	int listener_closed;
};

struct http_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct http_server *srv;
	struct http_conn *next, *prev;
	enum cstate state;
	struct buf rbuf;
	size_t rpos;         /* parsed bytes of rbuf */
	size_t head_scan;    /* S_HEAD: bytes from rpos already searched for the end of the head */
	size_t head_start;   /* the request head in flight: rbuf[head_start..+head_len) */
	size_t head_len;
	int64_t content_length;
	int chunked, is_head;
	size_t body_off;     /* for Content-Length bodies: offset in rbuf */
	struct http_chunked chunk;
	struct buf body;     /* decoded chunked body */
	void *req_ctx;
	int keep_alive;
	int minor;
	int streaming;
	int raw_stream; /* HTTP/1.0 stream: no chunking, close at end */
	int sized;      /* content-length stream: raw writes */
	int closing;
	int lingering; /* response sent and write side shut: discard input until EOF */
	int handles_open;
	int reading;
	char peer[64];
};

/* ---- helpers ------------------------------------------------------------- */

static const char *http_date(void)
{
	static char buf[40];
	static time_t last;
	time_t now = time(NULL);
	if (now != last) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	return buf;
}

/* The cork (http_conn_cork): one gathering buffer for the loop, held by at
 * most one connection at a time (corking another sends the first's). The
 * router corks a client's connection while it relays one upstream read, so
 * this buffer's memory is reused read after read, never allocated per read. */
static struct buf cork;
static struct http_conn *cork_owner;

struct wreq {
	uv_write_t req;
	struct http_conn *c;
	size_t len;
	char data[];
};

static void conn_close(struct http_conn *c);

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct http_conn *c = w->c;
	free(w);
	if (status < 0) {
		if (!c->closing)
			conn_close(c);
		return;
	}
	if (!c->closing && c->state == S_FLIGHT && c->req_ctx && c->srv->cfg.on_drain &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0)
		c->srv->cfg.on_drain(c, c->req_ctx, c->srv->cfg.ud);
}

/* Writes pieces: a direct write first (one system call for all of them),
 * the rest copied and queued. While corked, they are gathered instead. */
static int conn_writev(struct http_conn *c, const uv_buf_t *v, unsigned nv)
{
	if (c->closing)
		return -1;
	size_t len = 0, off = 0;
	for (unsigned i = 0; i < nv; i++)
		len += v[i].len;
	if (cork_owner == c) {
		if (cork.len + len <= cork.max) {
			for (unsigned i = 0; i < nv; i++)
				buf_append(&cork, v[i].base, v[i].len);
			return 0;
		}
		http_conn_uncork(c); /* a big burst: out with what was gathered, then this */
		if (c->closing)
			return -1;
		http_conn_cork(c);
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
		int n = uv_try_write((uv_stream_t *)&c->tcp, v, nv);
		if (n > 0)
			off = (size_t)n;
		else if (n != UV_EAGAIN && n != UV_ENOSYS) {
			conn_close(c);
			return -1;
		}
	}
	if (off == len)
		return 0;
	struct wreq *w = plb_malloc(sizeof *w + (len - off));
	if (!w) {
		conn_close(c);
		return -1;
	}
	size_t k = 0;
	for (unsigned i = 0; i < nv; i++) { /* the bytes past off */
		if (off >= v[i].len) {
			off -= v[i].len;
			continue;
		}
		memcpy(w->data + k, v[i].base + off, v[i].len - off);
		k += v[i].len - off;
		off = 0;
	}
	w->c = c;
	w->len = k;
	uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write)) {
		free(w);
		conn_close(c);
		return -1;
	}
	return 0;
}

static int conn_write(struct http_conn *c, const char *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	return conn_writev(c, &b, 1);
}

void http_conn_cork(struct http_conn *c)
{
	if (cork_owner == c || c->closing)
		return;
	if (cork_owner)
		http_conn_uncork(cork_owner);
	if (!cork.max)
		buf_init(&cork, 1 << 20);
	cork_owner = c;
}

int http_conn_uncork(struct http_conn *c)
{
	if (cork_owner != c)
		return 0;
	cork_owner = NULL;
	if (!cork.len)
		return 0;
	struct buf b = cork; /* taken out while it is written: a failed write closes c, whose
				on_abort may cork another connection */
	buf_init(&cork, b.max);
	int rc = conn_write(c, b.data, b.len);
	buf_reset(&b);
	if (!cork.data && !cork_owner)
		cork = b; /* the memory is kept for the next one */
	else
		buf_free(&b);
	return rc;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	if (--c->handles_open > 0)
		return;
	struct http_server *s = c->srv;
	buf_free(&c->rbuf);
	buf_free(&c->body);
	free(c);
	if (--s->n_alive == 0 && s->closing && s->listener_closed)
		free(s);
}

static void conn_close(struct http_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (cork_owner == c) { /* what it gathered goes nowhere */
		cork_owner = NULL;
		buf_reset(&cork);
	}
	struct http_server *s = c->srv;
	if (c->state == S_FLIGHT && s->cfg.on_abort)
		s->cfg.on_abort(c, c->req_ctx, s->cfg.ud);
	c->req_ctx = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void start_reading(struct http_conn *c);
static void arm_timer(struct http_conn *c, uint64_t ms);

/* Lingering close (as nginx does): after the last response, the write side is
 * shut and input is read and dropped until the client closes or 2 s pass.
 * Closing at once with unread input would make the kernel send RST, and a
 * client still sending its (rejected) body could lose our answer. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct http_conn *c = req->data;
	free(req);
	if (status < 0 || c->closing) {
		conn_close(c);
		return;
	}
	c->lingering = 1;
	start_reading(c);
	arm_timer(c, 2000);
}

static void on_timeout(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	if (c->lingering || (c->state == S_HEAD && c->rbuf.len == c->rpos)) {
		conn_close(c); /* idle keep-alive: close quietly */
		return;
	}
	if (c->state == S_HEAD || c->state == S_BODY) {
		struct buf b;
		buf_init(&b, 4096);
		const char *ctype = "text/plain";
		if (c->srv->cfg.error_body)
			c->srv->cfg.error_body(408, "request not received in time", &b, &ctype);
		c->keep_alive = 0;
		c->state = S_FLIGHT; /* so http_respond accepts it */
		c->req_ctx = NULL;
		http_respond(c, 408, ctype, NULL, b.data ? b.data : "", b.len);
		buf_free(&b);
	}
}

static void process_input(struct http_conn *c);

static void on_resume(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	process_input(c);
}

static void arm_timer(struct http_conn *c, uint64_t ms)
{
	if (ms)
		uv_timer_start(&c->timer, on_timeout, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

static void start_reading(struct http_conn *c);

/* A response is complete: keep the connection for the next request or close. */
static void response_done(struct http_conn *c)
{
	if (http_conn_uncork(c))
		return; /* the write failed: closed */
	c->req_ctx = NULL;
	c->streaming = 0;
	c->sized = 0;
	c->is_head = 0;
	if (!c->keep_alive || c->raw_stream || c->srv->closing) {
		c->state = S_IDLE;
		uv_shutdown_t *sd = plb_malloc(sizeof *sd);
		/* let queued writes drain, then close */
		if (sd) {
			sd->data = c;
			if (uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
				arm_timer(c, 0);
				return;
			}
		}
		free(sd);
		conn_close(c);
		return;
	}
	/* drop the consumed request, keep pipelined bytes */
	buf_consume(&c->rbuf, c->rpos);
	c->rpos = 0;
	if (c->rbuf.len == 0 && c->rbuf.cap > 16384)
		buf_free(&c->rbuf); /* don't keep a big body's buffer on an idle connection */
	buf_free(&c->body);
	memset(&c->chunk, 0, sizeof c->chunk);
	c->state = S_HEAD;
	start_reading(c);
	if (c->rbuf.len)
		uv_timer_start(&c->timer, on_resume, 0, 0);
	else
		arm_timer(c, c->srv->cfg.idle_timeout_ms);
}

static void reject(struct http_conn *c, int status, const char *what)
{
	struct buf b;
	buf_init(&b, 4096);
	const char *ctype = "text/plain";
	if (c->srv->cfg.error_body)
		c->srv->cfg.error_body(status, what, &b, &ctype);
	else
		buf_puts(&b, what);
	c->keep_alive = 0; /* after a framing error the stream can't be trusted */
	c->state = S_FLIGHT;
	c->req_ctx = NULL;
	http_respond(c, status, ctype, NULL, b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void dispatch(struct http_conn *c, const char *body, size_t len)
{
	c->state = S_FLIGHT;
	c->req_ctx = NULL;
	arm_timer(c, 0);
	struct http_error err;
	/* re-parse the head kept in rbuf: it parsed before, so it parses again */
	if (http_parse_request(c->rbuf.data + c->head_start, c->head_len, c->head_len + 1, &scratch, &err) <= 0) {
		reject(c, 500, "internal error re-reading the request head");
		return;
	}
	c->srv->cfg.on_request(c, &scratch, body, len, c->srv->cfg.ud);
}

/* Parses what is buffered: head, then body, then hands the request over. */
static void process_input(struct http_conn *c)
{
	struct http_server *s = c->srv;
	if (c->closing)
		return;
	if (c->state == S_HEAD) {
		if (c->rbuf.len == c->rpos)
			return;
		struct http_error err;
		struct http_msg *m = &scratch;
		const char *head = c->rbuf.data + c->rpos;
		size_t avail = c->rbuf.len - c->rpos;
		/* only the new bytes are searched; the head is parsed once, when whole
		 * (or malformed, or over the limit: then the parse names the error) */
		long end = http_head_end(head, avail, &c->head_scan);
		if (end == 0 && avail < s->cfg.max_head) {
			if (!uv_is_active((uv_handle_t *)&c->timer))
				arm_timer(c, s->cfg.request_timeout_ms);
			return;
		}
		c->head_scan = 0;
		long n = http_parse_request(head, end > 0 ? (size_t)end : avail, s->cfg.max_head, m, &err);
		if (n <= 0) {
			if (n == 0) { /* cannot happen: the search and the parse agree on line ends */
				err.status = end == 0 ? 431 : 400;
				err.what = end == 0 ? "request header too large" : "malformed request head";
			}
			reject(c, err.status, err.what);
			return;
		}
		c->head_start = c->rpos;
		c->head_len = (size_t)n;
		c->rpos += (size_t)n;
		c->keep_alive = m->keep_alive;
		c->minor = m->minor;
		c->content_length = m->content_length;
		c->chunked = m->chunked;
		c->is_head = m->method_len == 4 && memcmp(m->method, "HEAD", 4) == 0;
		if (m->content_length > 0 && (uint64_t)m->content_length > s->cfg.max_body) {
			reject(c, 413, "request body too large");
			return;
		}
		if (m->expect_continue && (m->content_length > 0 || m->chunked))
			conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		c->state = S_BODY;
		c->body_off = c->rpos;
		if (!uv_is_active((uv_handle_t *)&c->timer))
			arm_timer(c, s->cfg.request_timeout_ms);
	}
	if (c->state == S_BODY) {
		if (c->chunked) {
			struct http_error err;
			size_t used = 0;
			int r = http_chunked_feed(&c->chunk, c->rbuf.data + c->rpos, c->rbuf.len - c->rpos, &used,
						  &c->body, s->cfg.max_body, &err);
			c->rpos += used;
			if (r < 0) {
				reject(c, err.status, err.what);
				return;
			}
			if (r == 0)
				return;
			dispatch(c, c->body.data ? c->body.data : "", c->body.len);
		} else {
			size_t need = c->content_length > 0 ? (size_t)c->content_length : 0;
			if (c->rbuf.len - c->body_off < need)
				return;
			c->rpos = c->body_off + need;
			dispatch(c, c->rbuf.data + c->body_off, need);
		}
	}
}

/* One read buffer for the whole loop: libuv calls on_read right after
 * on_alloc, and only the bytes read are copied into the connection's own
 * buffer, so an idle connection costs no 64 KiB of its own. */
static char read_area[65536];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	b->base = read_area;
	b->len = sizeof read_area;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct http_conn *c = st->data;
	if (n < 0) {
		conn_close(c);
		return;
	}
	if (n == 0 || c->lingering)
		return;
	if (buf_append(&c->rbuf, b->base, (size_t)n)) {
		conn_close(c); /* over max_head + max_body of buffered input */
		return;
	}
	if (c->state == S_FLIGHT || c->state == S_IDLE) {
		/* pipelined bytes during a response: keep a bounded amount */
		if (c->rbuf.len - c->rpos > c->srv->cfg.max_head) {
			uv_read_stop(st);
			c->reading = 0;
		}
		return;
	}
	process_input(c);
}

static void start_reading(struct http_conn *c)
{
	if (!c->reading && !c->closing) {
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
		c->reading = 1;
	}
}

static void on_connection(uv_stream_t *l, int status)
{
	struct http_server *s = l->data;
	if (status < 0)
		return;
	struct http_conn *c = plb_calloc(1, sizeof *c);
	if (!c)
		return;
	/* the read buffer holds one head plus a Content-Length body */
	buf_init(&c->rbuf, s->cfg.max_head + s->cfg.max_body + 65536);
	buf_init(&c->body, s->cfg.max_body);
	c->srv = s;
	s->n_alive++;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles_open = 2;
	if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
		c->closing = 1;
		uv_close((uv_handle_t *)&c->timer, on_handle_closed);
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		char ip[48] = "?";
		int port = 0;
		if (ss.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	c->state = S_HEAD;
	arm_timer(c, s->cfg.request_timeout_ms);
	start_reading(c);
}

/* ---- public -------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h);

struct http_server *http_server_new(uv_loop_t *loop, const struct http_server_cfg *cfg, char *err, size_t errlen)
{
	struct http_server *s = plb_calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->cfg = *cfg;
	if (!s->cfg.max_head)
		s->cfg.max_head = 64 * 1024;
	if (!s->cfg.max_body)
		s->cfg.max_body = 16 * 1024 * 1024;
	if (!s->cfg.request_timeout_ms)
		s->cfg.request_timeout_ms = 30000;
	if (!s->cfg.idle_timeout_ms)
		s->cfg.idle_timeout_ms = 75000;
	struct sockaddr_storage addr;
	const char *host = cfg->host ? cfg->host : "127.0.0.1";
	int rc = strchr(host, ':') ? uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)&addr)
				   : uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)&addr);
	if (rc) {
		snprintf(err, errlen, "%s: not an IP address", host);
		free(s);
		return NULL;
	}
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection);
	if (rc) {
		snprintf(err, errlen, "listen on %s:%d: %s", host, cfg->port, uv_strerror(rc));
		s->closing = 1;
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return NULL;
	}
	struct sockaddr_storage bound;
	int blen = sizeof bound;
	uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
	s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
					      : ntohs(((struct sockaddr_in *)&bound)->sin_port);
	s->listening = 1;
	return s;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

size_t http_server_conn_count(const struct http_server *s)
{
	return s->n_conns;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct http_server *s = h->data;
	s->listener_closed = 1;
	if (s->closing && s->n_alive == 0)
		free(s);
}

void http_server_stop_listening(struct http_server *s)
{
	if (s->listening) {
		s->listening = 0;
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
	}
}

void http_server_close(struct http_server *s)
{
	int was_listening = s->listening;
	s->closing = 1;
	if (was_listening) {
		s->listening = 0;
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
	}
	while (s->conns)
		conn_close(s->conns);
	/* freed by the last close callback (listener or connection) */
	if (!was_listening && s->listener_closed && s->n_alive == 0)
		free(s);
}

void http_conn_set_ctx(struct http_conn *c, void *req_ctx)
{
	c->req_ctx = req_ctx;
}

void *http_conn_ctx(const struct http_conn *c)
{
	return c->req_ctx;
}

const char *http_conn_peer(const struct http_conn *c)
{
	return c->peer;
}

size_t http_conn_write_queue(const struct http_conn *c)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static int write_head(struct http_conn *c, int status, const char *ctype, const char *extra, const char *framing)
{
	char head[1024];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\ndate: %s\r\nserver: prefixlb\r\n%s%s%s%s%s",
			 status, http_reason(status), http_date(), ctype ? "content-type: " : "", ctype ? ctype : "",
			 ctype ? "\r\n" : "", framing, c->keep_alive && !c->raw_stream ? "" : "connection: close\r\n");
	if (n < 0 || (size_t)n >= sizeof head)
		return -1;
	struct buf b;
	buf_init(&b, 1 << 20);
	int rc = buf_append(&b, head, (size_t)n);
	if (!rc && extra)
		rc = buf_puts(&b, extra);
	if (!rc)
		rc = buf_puts(&b, "\r\n");
	if (!rc)
		rc = conn_write(c, b.data, b.len);
	buf_free(&b);
	return rc;
}

int http_respond(struct http_conn *c, int status, const char *ctype, const char *extra_headers, const char *body,
		 size_t len)
{
	if (c->closing || c->state != S_FLIGHT || c->streaming)
		return -1;
	char framing[64];
	snprintf(framing, sizeof framing, "content-length: %zu\r\n", len);
	http_conn_cork(c); /* head and body in one write (response_done sends them) */
	if (write_head(c, status, ctype, extra_headers, framing) || (len && !c->is_head && conn_write(c, body, len))) {
		http_conn_uncork(c);
		return -1;
	}
	c->state = S_IDLE;
	response_done(c);
	return 0;
}

int http_stream_begin(struct http_conn *c, int status, const char *ctype, const char *extra_headers)
{
	if (c->closing || c->state != S_FLIGHT || c->streaming)
		return -1;
	c->streaming = 1;
	c->raw_stream = c->minor == 0;
	if (write_head(c, status, ctype, extra_headers, c->raw_stream ? "" : "transfer-encoding: chunked\r\n"))
		return -1;
	return 0;
}

int http_stream_begin_len(struct http_conn *c, int status, const char *ctype, const char *extra_headers,
			  uint64_t content_length)
{
	if (c->closing || c->state != S_FLIGHT || c->streaming)
		return -1;
	c->streaming = 1;
	c->sized = 1;
	char framing[64];
	snprintf(framing, sizeof framing, "content-length: %llu\r\n", (unsigned long long)content_length);
	return write_head(c, status, ctype, extra_headers, framing);
}

void http_conn_abort(struct http_conn *c)
{
	if (c->closing)
		return;
	c->req_ctx = NULL;
	c->state = S_IDLE; /* no on_abort: the handler asked for it */
	http_conn_uncork(c); /* what was relayed goes out, then the connection is cut */
	conn_close(c);
}

int http_stream_write(struct http_conn *c, const char *data, size_t len)
{
	if (c->closing || !c->streaming)
		return -1;
	if (len == 0)
		return 0;
	if (c->raw_stream || c->sized)
		return conn_write(c, data, len);
	char size[24];
	int h = snprintf(size, sizeof size, "%zx\r\n", len);
	uv_buf_t v[3] = {uv_buf_init(size, (unsigned)h), uv_buf_init((char *)data, (unsigned)len),
			 uv_buf_init("\r\n", 2)};
	return conn_writev(c, v, 3);
}

int http_stream_end(struct http_conn *c)
{
	if (c->closing || !c->streaming)
		return -1;
	if (!c->raw_stream && !c->sized && conn_write(c, "0\r\n\r\n", 5))
		return -1;
	c->state = S_IDLE;
	response_done(c);
	return 0;
}
