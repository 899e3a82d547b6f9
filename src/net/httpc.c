/* httpc.c: HTTP/1.1 client with per-destination keep-alive pools; see httpc.h.
 *
 * A connection (struct conn) lives in one of these states:
 *   RESOLVING   waiting for its pool's name lookup (on the pool's wait list)
 *   CONNECTING  uv_tcp_connect in flight (timer: the connect deadline)
 *   BUSY        carrying one request (timer: the request's deadline, if any)
 *   IDLE        kept alive in its pool's idle list, most recently used first,
 *               read so that a close by the server is seen (timer: idle timeout)
 *   CLOSED      uv_close called; freed when both handles have closed
 * A request (struct httpc_req) is attached to one connection from its start
 * (an idle one, or a new one) to its end, and reads WAIT (not connected yet)
 * -> HEAD -> BODY -> ended. Reading a response: its head is searched for its
 * end only over new bytes (http_head_end), parsed once in place, and copied
 * only when a read ends inside it; its body is handed over as a slice of the
 * read buffer, one per read (a chunked body's data gathered in place over the
 * framing between its chunks). A connection goes back to its pool only after
 * a response framed to its last byte, with the request written whole, no
 * byte past the response, and keep-alive on both sides; everything else
 * closes it.
 *
 * Re-entrancy: a callback may start, cancel or resume any request, this one
 * included. A request is freed only when it has ended and no callback of its
 * own is running (in_cb), so the code that called a callback can always look
 * at it afterwards and stop if it ended. Failures noticed inside httpc_start
 * (a write refused on a kept connection, a connect refused at once) are
 * reported from the connection's timer, never from inside the caller. */
#include "httpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/buf.h"
#include "../core/mem.h"

enum cstate { CS_RESOLVING, CS_CONNECTING, CS_BUSY, CS_IDLE, CS_CLOSED };
enum rstate { RS_WAIT, RS_HEAD, RS_BODY, RS_ENDED };

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t cr;
	uv_write_t wr;
	struct httpc_pool *p;
	struct conn *next, *prev;   /* the pool's idle list, or its wait list */
	struct conn *anext, *aprev; /* all the pool's connections */
	struct httpc_req *req;
	enum cstate state;
	int reused;   /* it carried a response before the current request */
	int writing;  /* a uv_write is in flight */
	int no_keep;  /* never back to the pool */
	int fail_err; /* a failure to report from the timer (0: none) */
	const char *fail_msg;
	int handles; /* handles not closed yet */
	struct buf head; /* a response head cut by a read (allocated only then) */
	size_t scan;     /* head bytes already searched for the blank line */
};

struct httpc_req {
	struct httpc_pool *p;
	struct conn *conn;
	struct httpc_cb cb;
	void *ctx;
	struct httpc_opts o;
	struct buf out; /* the built request head */
	enum rstate state;
	int in_cb;   /* callbacks of its own running (or a read being handed over) */
	int dead;    /* ended: no callback any more */
	int paused;  /* on_data asked for no more reads */
	int handed;  /* bytes were handed over in this read */
	int written; /* the request is on the wire, whole */
	int chunked, until_close, keep, head_method;
	uint64_t got;  /* response bytes read */
	uint64_t left; /* content-length bytes to come */
	uint64_t t0;   /* loop time at the start */
	struct http_chunked ch;
};

struct httpc_pool {
	struct httpc *c;
	struct httpc_pool *next, *prev;
	char *host; /* name or address, without brackets */
	int port;
	char *hosthdr; /* "host: HOST:PORT\r\n" */
	size_t hosthdr_len;
	struct sockaddr_storage addr;
	int literal, have_addr;
	uint64_t resolved_at;
	uv_getaddrinfo_t *gai; /* a lookup in flight */
	struct conn *idle, *idle_tail, *waiting, *all;
	size_t n_idle, n_busy, n_connecting, n_conns;
	int freed; /* its owner let it go */
	uint64_t connects, reuses, idle_closed;
};

struct httpc {
	uv_loop_t *loop;
	struct httpc_cfg cfg;
	struct httpc_pool *pools;
	size_t n_pools;
	int freed;
};

/* One read buffer for the loop: every read is consumed before the next. */
static char read_area[65536];

static void conn_close(struct conn *k);
static void conn_arm(struct conn *k);
static void start_write(struct httpc_req *r);
static void req_end(struct httpc_req *r, enum httpc_err err, const char *msg);

/* ---- lifetimes ------------------------------------------------------------- */

static void maybe_free_client(struct httpc *c)
{
	if (c->freed && c->n_pools == 0)
		free(c);
}

static void maybe_free_pool(struct httpc_pool *p)
{
	if (!p->freed || p->n_conns || p->gai)
		return;
	struct httpc *c = p->c;
	if (p->prev)
		p->prev->next = p->next;
	else
		c->pools = p->next;
	if (p->next)
		p->next->prev = p->prev;
	c->n_pools--;
	free(p->host);
	free(p->hosthdr);
	free(p);
	maybe_free_client(c);
}

static void req_maybe_free(struct httpc_req *r)
{
	if (r->dead && !r->in_cb) {
		buf_free(&r->out);
		free(r);
	}
}

/* Detaches r from its connection (which is closed, or kept when keep). */
static void req_detach(struct httpc_req *r, int keep);

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *k = h->data;
	if (--k->handles)
		return;
	struct httpc_pool *p = k->p;
	if (k->aprev)
		k->aprev->anext = k->anext;
	else
		p->all = k->anext;
	if (k->anext)
		k->anext->aprev = k->aprev;
	buf_free(&k->head);
	free(k);
	p->n_conns--;
	maybe_free_pool(p);
}

static void list_remove(struct conn **head, struct conn **tail, struct conn *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		*head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else if (tail)
		*tail = k->prev;
	k->next = k->prev = NULL;
}

static void conn_close(struct conn *k)
{
	struct httpc_pool *p = k->p;
	switch (k->state) {
	case CS_CLOSED: return;
	case CS_RESOLVING:
		list_remove(&p->waiting, NULL, k);
		p->n_connecting--;
		break;
	case CS_CONNECTING: p->n_connecting--; break;
	case CS_BUSY: p->n_busy--; break;
	case CS_IDLE:
		list_remove(&p->idle, &p->idle_tail, k);
		p->n_idle--;
		p->idle_closed++;
		break;
	}
	k->state = CS_CLOSED;
	uv_timer_stop(&k->timer);
	uv_close((uv_handle_t *)&k->timer, on_conn_closed);
	uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

/* A connection whose response ended cleanly: back to the pool, or closed. */
static void conn_release(struct conn *k)
{
	struct httpc_pool *p = k->p;
	struct httpc *c = p->c;
	if (k->no_keep || k->writing || p->freed || c->freed || c->cfg.max_idle == 0) {
		conn_close(k);
		return;
	}
	p->n_busy--;
	k->state = CS_IDLE;
	k->reused = 1;
	k->next = p->idle;
	k->prev = NULL;
	if (p->idle)
		p->idle->prev = k;
	else
		p->idle_tail = k;
	p->idle = k;
	p->n_idle++;
	buf_free(&k->head);
	k->scan = 0;
	/* reading goes on (it never stops inside a response that completes), so a
	 * close by the server is seen at once */
	conn_arm(k);
	while (p->n_idle > c->cfg.max_idle)
		conn_close(p->idle_tail); /* the oldest */
}

static void req_detach(struct httpc_req *r, int keep)
{
	struct conn *k = r->conn;
	if (!k)
		return;
	r->conn = NULL;
	k->req = NULL;
	if (keep)
		conn_release(k);
	else
		conn_close(k);
}

/* The request ends with on_done (its connection kept when err is OK and the
 * connection allows it). */
static void req_end(struct httpc_req *r, enum httpc_err err, const char *msg)
{
	if (r->dead)
		return;
	r->dead = 1;
	r->state = RS_ENDED;
	req_detach(r, err == HTTPC_OK);
	if (r->cb.on_done) {
		r->in_cb++;
		r->cb.on_done(r->ctx, err, msg);
		r->in_cb--;
	}
	req_maybe_free(r);
}

/* The request ends without a callback (its consumer said stop, or cancelled). */
static void req_stop(struct httpc_req *r)
{
	if (r->dead)
		return;
	r->dead = 1;
	r->state = RS_ENDED;
	req_detach(r, 0);
}

void httpc_cancel(struct httpc_req *r)
{
	if (!r || r->dead)
		return;
	req_stop(r);
	req_maybe_free(r);
}

/* ---- timers: deadlines, idle timeout, deferred failures --------------------- */

static void on_timer(uv_timer_t *t)
{
	struct conn *k = t->data;
	struct httpc_req *r = k->req;
	if (k->state == CS_IDLE || !r) {
		conn_close(k);
		return;
	}
	if (k->fail_err) {
		int e = k->fail_err;
		k->fail_err = 0;
		req_end(r, (enum httpc_err)e, k->fail_msg);
		return;
	}
	uint64_t now = uv_now(k->tcp.loop);
	int connecting = k->state != CS_BUSY;
	int whole = r->o.timeout_ms && now - r->t0 >= r->o.timeout_ms;
	req_end(r, HTTPC_ETIMEOUT, connecting && !whole ? "connect timeout" : "timeout");
}

/* Arms the timer for the connection's state. */
static void conn_arm(struct conn *k)
{
	struct httpc_req *r = k->req;
	uint64_t ms = 0;
	if (k->state == CS_IDLE) {
		ms = k->p->c->cfg.idle_timeout_ms;
	} else if (r) {
		uint64_t now = uv_now(k->tcp.loop), used = now - r->t0;
		if (r->o.timeout_ms)
			ms = r->o.timeout_ms > used ? r->o.timeout_ms - used : 1;
		if (k->state != CS_BUSY && r->o.connect_timeout_ms && (!ms || r->o.connect_timeout_ms < ms))
			ms = r->o.connect_timeout_ms;
	}
	if (ms)
		uv_timer_start(&k->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&k->timer);
}

/* A failure reported from the loop (the caller of httpc_start is mid-call). */
static void conn_fail_later(struct conn *k, enum httpc_err err, const char *msg)
{
	k->fail_err = (int)err;
	k->fail_msg = msg;
	uv_timer_start(&k->timer, on_timer, 0, 0);
}

/* ---- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	*b = uv_buf_init(read_area, sizeof read_area);
}

/* Calls a consumer callback; HTTPC_STOP when the request ended meanwhile. */
static int call_head(struct httpc_req *r, const struct http_msg *m)
{
	if (!r->cb.on_head)
		return HTTPC_CONTINUE;
	r->in_cb++;
	int rc = r->cb.on_head(r->ctx, m);
	r->in_cb--;
	return r->dead ? HTTPC_STOP : rc;
}

/* Hands body bytes over; -1 when the request ended. */
static int deliver(struct httpc_req *r, const char *p, size_t n)
{
	if (!n || !r->cb.on_data)
		return 0;
	r->handed = 1;
	r->in_cb++;
	int rc = r->cb.on_data(r->ctx, p, n);
	r->in_cb--;
	if (r->dead)
		return -1;
	if (rc == HTTPC_STOP) {
		req_stop(r);
		return -1;
	}
	if (rc == HTTPC_PAUSE)
		r->paused = 1;
	return 0;
}

/* The response is whole; extra: bytes followed it in the read. */
static void complete(struct httpc_req *r, int extra)
{
	struct conn *k = r->conn;
	if (extra || !r->keep || !r->written)
		k->no_keep = 1;
	req_end(r, HTTPC_OK, NULL);
}

/* Head bytes p[0..n): returns the bytes of p the head took (> 0, the head is
 * whole and parsed into *m), 0 when it is incomplete (all taken and kept), or
 * -1 when the request ended. */
static long take_head(struct httpc_req *r, const char *p, size_t n, struct http_msg *m)
{
	struct conn *k = r->conn;
	size_t max_head = k->p->c->cfg.max_head;
	const char *h;
	size_t used;
	long end;
	if (k->head.len == 0) {
		end = http_head_end(p, n, &k->scan);
		if (end == 0 && n < max_head) {
			buf_init(&k->head, max_head);
			buf_append(&k->head, p, n);
			return 0;
		}
		h = p;
		used = end > 0 ? (size_t)end : 0;
	} else {
		size_t old = k->head.len;
		if (buf_append(&k->head, p, n)) {
			req_end(r, HTTPC_EPROTO, "response head too large");
			return -1;
		}
		end = http_head_end(k->head.data, k->head.len, &k->scan);
		if (end == 0 && k->head.len < max_head)
			return 0;
		h = k->head.data;
		used = end > 0 ? (size_t)end - old : 0;
	}
	if (end <= 0) {
		req_end(r, HTTPC_EPROTO, end == 0 ? "response head too large" : "malformed HTTP response");
		return -1;
	}
	k->scan = 0;
	struct http_error e;
	if (http_parse_response(h, (size_t)end, (size_t)end + 1, m, &e) <= 0) {
		req_end(r, HTTPC_EPROTO, "malformed HTTP response");
		return -1;
	}
	return (long)used;
}

/* A read's bytes for the request on this connection. */
static void feed(struct httpc_req *r, const char *p, size_t n)
{
	r->got += n;
	while (n && !r->dead) {
		if (r->state == RS_HEAD) {
			struct http_msg m;
			long used = take_head(r, p, n, &m);
			if (used <= 0) /* ended, or incomplete (kept) */
				return;
			p += used;
			n -= (size_t)used;
			struct conn *k = r->conn;
			if (m.status < 200) {
				if (m.status == 101) {
					req_end(r, HTTPC_EPROTO, "unexpected protocol switch");
					return;
				}
				buf_free(&k->head); /* interim (100 Continue...): the real head follows */
				continue;
			}
			r->chunked = m.chunked;
			r->until_close = !m.chunked && m.content_length < 0;
			r->left = m.content_length > 0 ? (uint64_t)m.content_length : 0;
			r->keep = m.keep_alive && !r->until_close && !r->o.close;
			int empty = r->head_method || m.status == 204 || m.status == 304 ||
				    (!m.chunked && m.content_length == 0);
			r->state = RS_BODY;
			r->handed = 1;
			int rc = call_head(r, &m);
			buf_free(&k->head); /* m pointed into it */
			if (rc == HTTPC_STOP || r->dead) {
				req_stop(r);
				return;
			}
			if (empty) {
				complete(r, n > 0);
				return;
			}
			continue;
		}
		if (r->chunked) {
			/* the read's data is gathered in place, over the framing between
			 * its chunks (the read buffer is ours): one hand-over per read,
			 * however many chunks it held */
			char *run = NULL;
			size_t run_len = 0;
			int c = 0;
			while (n && c == 0) {
				size_t u, dl;
				const char *d;
				struct http_error e;
				c = http_chunked_next(&r->ch, p, n, &u, &d, &dl, r->p->c->cfg.max_body, &e);
				if (c < 0)
					break;
				p += u;
				n -= u;
				if (dl && !run)
					run = (char *)d;
				else if (dl && d != run + run_len)
					memmove(run + run_len, d, dl);
				run_len += dl;
			}
			if (deliver(r, run, run_len))
				return;
			if (c < 0) {
				req_end(r, HTTPC_EPROTO, "malformed chunked body");
				return;
			}
			if (c == 1) {
				complete(r, n > 0);
				return;
			}
		} else if (r->until_close) {
			deliver(r, p, n);
			return;
		} else {
			size_t k = n < r->left ? n : (size_t)r->left;
			r->left -= k;
			if (deliver(r, p, k))
				return;
			p += k;
			n -= k;
			if (!r->left) {
				complete(r, n > 0);
				return;
			}
		}
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *k = s->data;
	struct httpc_req *r = k->req;
	if (k->state == CS_CLOSED || n == 0)
		return;
	if (!r) { /* idle: the server closed it, or sent what nobody asked for */
		conn_close(k);
		return;
	}
	r->in_cb++; /* r stays allocated through the hand-over */
	if (n < 0) {
		if (r->state == RS_BODY && r->until_close && n == UV_EOF)
			complete(r, 0);
		else if (r->state == RS_BODY)
			req_end(r, HTTPC_ETRUNC, "connection ended inside the response");
		else if (r->got)
			req_end(r, HTTPC_EPROTO, "connection ended inside the response head");
		else if (k->reused)
			req_end(r, HTTPC_ESTALE, "kept connection closed by the server");
		else
			req_end(r, HTTPC_ECLOSED, n == UV_EOF ? "connection closed before a response" : "connection reset");
	} else {
		r->handed = 0;
		feed(r, b->base, (size_t)n);
		if (!r->dead && r->paused && r->conn)
			uv_read_stop((uv_stream_t *)&r->conn->tcp);
		if (!r->dead && r->handed && r->cb.on_flush)
			r->cb.on_flush(r->ctx);
	}
	r->in_cb--;
	req_maybe_free(r);
}

void httpc_resume(struct httpc_req *r)
{
	if (!r || r->dead || !r->paused)
		return;
	r->paused = 0;
	if (r->conn && r->conn->state == CS_BUSY)
		uv_read_start((uv_stream_t *)&r->conn->tcp, on_alloc, on_read);
}

/* ---- writing ------------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
	struct conn *k = w->data;
	k->writing = 0;
	struct httpc_req *r = k->req;
	if (k->state == CS_CLOSED || !r)
		return;
	if (status < 0) {
		k->no_keep = 1;
		if (!r->got)
			req_end(r, k->reused ? HTTPC_ESTALE : HTTPC_EWRITE,
				k->reused ? "kept connection closed by the server" : "write error");
		return; /* else the response being read says what happened */
	}
	r->written = 1;
	if (r->o.raw && r->o.write_limit && r->o.write_limit < r->o.raw_len)
		req_end(r, HTTPC_ESTOPPED, "left on purpose");
}

/* Writes the request: at once as far as the socket takes it, the rest queued. */
static void start_write(struct httpc_req *r)
{
	struct conn *k = r->conn;
	uv_buf_t b[2];
	unsigned nb = 0;
	if (r->o.raw) {
		size_t len = r->o.write_limit && r->o.write_limit < r->o.raw_len ? r->o.write_limit : r->o.raw_len;
		b[nb++] = uv_buf_init((char *)r->o.raw, (unsigned)len);
	} else {
		b[nb++] = uv_buf_init(r->out.data, (unsigned)r->out.len);
		if (r->o.body_len)
			b[nb++] = uv_buf_init((char *)r->o.body, (unsigned)r->o.body_len);
	}
	size_t total = 0;
	for (unsigned i = 0; i < nb; i++)
		total += b[i].len;
	int n = uv_try_write((uv_stream_t *)&k->tcp, b, nb);
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0) {
		k->no_keep = 1;
		conn_fail_later(k, k->reused ? HTTPC_ESTALE : HTTPC_EWRITE,
				k->reused ? "kept connection closed by the server" : "write error");
		return;
	}
	if ((size_t)n == total) {
		r->written = 1;
		if (r->o.raw && r->o.write_limit && r->o.write_limit < r->o.raw_len)
			conn_fail_later(k, HTTPC_ESTOPPED, "left on purpose");
		return;
	}
	size_t skip = (size_t)n; /* queue what is left */
	unsigned first = 0;
	while (skip >= b[first].len) {
		skip -= b[first].len;
		first++;
	}
	b[first].base += skip;
	b[first].len -= skip;
	k->wr.data = k;
	k->writing = 1;
	if (uv_write(&k->wr, (uv_stream_t *)&k->tcp, b + first, nb - first, on_write)) {
		k->writing = 0;
		k->no_keep = 1;
		conn_fail_later(k, HTTPC_EWRITE, "write error");
	}
}

/* ---- connecting ----------------------------------------------------------------- */

static void on_connect(uv_connect_t *cr, int status)
{
	struct conn *k = cr->data;
	if (k->state == CS_CLOSED)
		return;
	struct httpc_pool *p = k->p;
	p->n_connecting--;
	k->state = CS_BUSY;
	p->n_busy++;
	struct httpc_req *r = k->req;
	if (status < 0) {
		if (!p->literal)
			p->have_addr = 0; /* look the name up again next time */
		req_end(r, HTTPC_ECONNECT, status == UV_ECONNREFUSED ? "connection refused" : uv_strerror(status));
		return;
	}
	p->connects++;
	uv_tcp_nodelay(&k->tcp, 1);
	r->state = RS_HEAD;
	conn_arm(k);
	if (uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read)) {
		req_end(r, HTTPC_ECLOSED, "connection error");
		return;
	}
	start_write(r);
}

static void tcp_connect(struct conn *k)
{
	struct httpc_pool *p = k->p;
	k->state = CS_CONNECTING;
	k->cr.data = k;
	conn_arm(k);
	int rc = uv_tcp_connect(&k->cr, &k->tcp, (const struct sockaddr *)&p->addr, on_connect);
	if (rc) {
		/* refused at once (no address, no port...): reported from the loop */
		k->state = CS_BUSY;
		p->n_connecting--;
		p->n_busy++;
		k->no_keep = 1;
		conn_fail_later(k, HTTPC_ECONNECT, uv_strerror(rc));
	}
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct httpc_pool *p = req->data;
	free(req);
	p->gai = NULL;
	if (status == 0 && res && res->ai_addrlen <= sizeof p->addr) {
		memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
		p->have_addr = 1;
		p->resolved_at = uv_now(p->c->loop);
	}
	if (res)
		uv_freeaddrinfo(res);
	while (p->waiting) {
		struct conn *k = p->waiting;
		list_remove(&p->waiting, NULL, k);
		if (p->have_addr) {
			tcp_connect(k); /* still counted as connecting */
		} else {
			p->n_connecting--;
			k->state = CS_BUSY;
			p->n_busy++;
			k->no_keep = 1;
			req_end(k->req, HTTPC_ECONNECT, "the backend's name does not resolve");
		}
	}
	maybe_free_pool(p);
}

static void conn_connect(struct conn *k)
{
	struct httpc_pool *p = k->p;
	p->n_connecting++;
	uint64_t now = uv_now(p->c->loop);
	if (p->literal || (p->have_addr && now - p->resolved_at < HTTPC_DNS_TTL_MS)) {
		tcp_connect(k);
		return;
	}
	k->state = CS_RESOLVING;
	k->next = p->waiting;
	k->prev = NULL;
	if (p->waiting)
		p->waiting->prev = k;
	p->waiting = k;
	conn_arm(k);
	if (p->gai)
		return;
	p->gai = plb_calloc(1, sizeof *p->gai);
	p->gai->data = p;
	char port[16];
	snprintf(port, sizeof port, "%d", p->port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	int rc = uv_getaddrinfo(p->c->loop, p->gai, on_resolved, p->host, port, &hints);
	if (rc) {
		free(p->gai);
		p->gai = NULL;
		list_remove(&p->waiting, NULL, k);
		k->state = CS_BUSY;
		p->n_connecting--;
		p->n_busy++;
		k->no_keep = 1;
		conn_fail_later(k, HTTPC_ECONNECT, "the backend's name cannot be looked up");
	}
}

static struct conn *conn_new(struct httpc_pool *p)
{
	struct conn *k = plb_calloc(1, sizeof *k);
	k->p = p;
	k->handles = 2;
	uv_tcp_init(p->c->loop, &k->tcp);
	uv_timer_init(p->c->loop, &k->timer);
	k->tcp.data = k->timer.data = k;
	k->anext = p->all;
	if (p->all)
		p->all->aprev = k;
	p->all = k;
	p->n_conns++;
	return k;
}

/* ---- requests -------------------------------------------------------------------- */

static void build_head(struct httpc_req *r)
{
	const struct httpc_opts *o = &r->o;
	struct buf *b = &r->out;
	buf_init(b, (size_t)1 << 24);
	buf_reserve(b, strlen(o->method) + strlen(o->target) + r->p->hosthdr_len + o->headers_len + 96);
	buf_puts(b, o->method);
	buf_putc(b, ' ');
	buf_puts(b, o->target);
	buf_puts(b, " HTTP/1.1\r\n");
	buf_append(b, r->p->hosthdr, r->p->hosthdr_len);
	if (o->headers_len)
		buf_append(b, o->headers, o->headers_len);
	if (o->body_len || (strcmp(o->method, "GET") && strcmp(o->method, "HEAD")))
		buf_printf(b, "content-length: %zu\r\n", o->body_len);
	if (o->close)
		buf_puts(b, "connection: close\r\n");
	buf_puts(b, "\r\n");
}

struct httpc_req *httpc_start(struct httpc_pool *p, const struct httpc_opts *o, const struct httpc_cb *cb,
			      void *ctx)
{
	struct httpc *c = p->c;
	struct httpc_req *r = plb_calloc(1, sizeof *r);
	r->p = p;
	r->cb = *cb;
	r->ctx = ctx;
	r->o = *o;
	r->t0 = uv_now(c->loop);
	r->state = RS_WAIT;
	if (!o->raw) {
		build_head(r);
		r->head_method = !strcmp(o->method, "HEAD");
	}
	struct conn *k = NULL;
	if (c->freed || p->freed) { /* too late: ends from the loop */
		k = conn_new(p);
		k->req = r;
		r->conn = k;
		k->state = CS_BUSY;
		p->n_busy++;
		k->no_keep = 1;
		conn_fail_later(k, HTTPC_ECLOSED, "the client is closed");
		return r;
	}
	if (!o->fresh && p->idle) {
		k = p->idle;
		list_remove(&p->idle, &p->idle_tail, k);
		p->n_idle--;
		p->n_busy++;
		p->reuses++;
		k->state = CS_BUSY;
	}
	if (k) {
		k->req = r;
		r->conn = k;
		r->state = RS_HEAD;
		conn_arm(k);
		start_write(r);
		return r;
	}
	k = conn_new(p);
	k->req = r;
	r->conn = k;
	conn_connect(k);
	return r;
}

/* ---- pools and the client ---------------------------------------------------------- */

struct httpc_pool *httpc_pool_new(struct httpc *c, const char *host, int port)
{
	struct httpc_pool *p = plb_calloc(1, sizeof *p);
	p->c = c;
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		p->host = plb_strndup(host + 1, hl - 2);
	else
		p->host = plb_strdup(host);
	p->port = port;
	int v6 = strchr(p->host, ':') != NULL;
	size_t n = strlen(p->host) + 32;
	p->hosthdr = plb_malloc(n);
	p->hosthdr_len = (size_t)snprintf(p->hosthdr, n, v6 ? "host: [%s]:%d\r\n" : "host: %s:%d\r\n", p->host, port);
	if (uv_ip4_addr(p->host, port, (struct sockaddr_in *)&p->addr) == 0 ||
	    uv_ip6_addr(p->host, port, (struct sockaddr_in6 *)&p->addr) == 0)
		p->literal = p->have_addr = 1;
	p->next = c->pools;
	if (c->pools)
		c->pools->prev = p;
	c->pools = p;
	c->n_pools++;
	return p;
}

void httpc_pool_free(struct httpc_pool *p)
{
	if (!p || p->freed)
		return;
	p->freed = 1;
	while (p->idle)
		conn_close(p->idle);
	maybe_free_pool(p);
}

void httpc_pool_stats(const struct httpc_pool *p, struct httpc_pool_stats *s)
{
	*s = (struct httpc_pool_stats){p->n_idle, p->n_busy, p->n_connecting, p->connects, p->reuses, p->idle_closed};
}

static void apply_defaults(struct httpc_cfg *cfg)
{
	if (!cfg->idle_timeout_ms)
		cfg->idle_timeout_ms = 60000;
	if (!cfg->max_head)
		cfg->max_head = 64 * 1024;
	if (!cfg->max_body)
		cfg->max_body = UINT64_MAX / 4;
}

struct httpc *httpc_new(uv_loop_t *loop, const struct httpc_cfg *cfg)
{
	struct httpc *c = plb_calloc(1, sizeof *c);
	c->loop = loop;
	c->cfg = *cfg;
	apply_defaults(&c->cfg);
	return c;
}

void httpc_set_cfg(struct httpc *c, const struct httpc_cfg *cfg)
{
	c->cfg = *cfg;
	apply_defaults(&c->cfg);
	for (struct httpc_pool *p = c->pools; p; p = p->next)
		while (p->n_idle > c->cfg.max_idle)
			conn_close(p->idle_tail);
}

void httpc_free(struct httpc *c)
{
	if (!c)
		return;
	c->freed = 1;
	for (struct httpc_pool *p = c->pools; p; p = p->next) {
		for (struct conn *k = p->all; k; k = k->anext) {
			if (k->req) {
				k->no_keep = 1;
				req_end(k->req, HTTPC_ECLOSED, "the client is closed");
			}
			conn_close(k);
		}
	}
	maybe_free_client(c);
}
