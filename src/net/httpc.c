/* httpc.c: HTTP/1.1 client requests on libuv; see httpc.h.
 *
 * States: CONNECTING -> HEAD (reading the response head) -> BODY -> ended.
 * The head is collected in a buffer and searched for its blank line from
 * where the last search stopped (minus 3 bytes, for a CRLFCRLF cut by a
 * read), so a head trickled one byte per read costs O(its size). */
#include "httpc.h"

#include <stdlib.h>
#include <string.h>

#include "../core/buf.h"
#include "../core/mem.h"

enum { ST_CONNECTING, ST_HEAD, ST_BODY, ST_ENDED };

struct httpc_req {
	uv_tcp_t tcp;
	uv_connect_t cr;
	uv_write_t wr;
	struct httpc_cb cb;
	void *ctx;
	struct httpc_opts o;
	int state;
	int closing;
	int written; /* the request is on the wire */
	struct buf head;
	size_t scan; /* head bytes already searched */
	struct http_chunked ch;
	struct buf dechunked;
	int chunked, until_close;
	uint64_t left; /* content-length body bytes left */
	uint64_t scanned;
};

static void on_closed(uv_handle_t *h)
{
	struct httpc_req *r = h->data;
	buf_free(&r->head);
	buf_free(&r->dechunked);
	free(r);
}

static void close_req(struct httpc_req *r)
{
	if (r->closing)
		return;
	r->closing = 1;
	r->state = ST_ENDED;
	uv_close((uv_handle_t *)&r->tcp, on_closed);
}

static void end(struct httpc_req *r, enum httpc_err err, const char *msg)
{
	if (r->state == ST_ENDED)
		return;
	r->state = ST_ENDED;
	if (r->cb.on_done)
		r->cb.on_done(r->ctx, err, msg);
	close_req(r);
}

void httpc_cancel(struct httpc_req *r)
{
	if (r && r->state != ST_ENDED)
		close_req(r);
}

uint64_t httpc_scanned(const struct httpc_req *r)
{
	return r->scanned;
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	(void)h;
	(void)s;
	static char area[65536]; /* one loop: every read is consumed before the next */
	*b = uv_buf_init(area, sizeof area);
}

/* Body bytes as they arrive; returns -1 when the request has ended. */
static int body(struct httpc_req *r, const char *p, size_t n)
{
	if (r->chunked) {
		while (n) {
			size_t used = 0;
			struct http_error e;
			buf_reset(&r->dechunked);
			int c = http_chunked_feed(&r->ch, p, n, &used, &r->dechunked, r->o.max_body, &e);
			if (c < 0) {
				end(r, HTTPC_EPROTO, "malformed chunked body");
				return -1;
			}
			if (r->dechunked.len && r->cb.on_data && r->cb.on_data(r->ctx, r->dechunked.data, r->dechunked.len)) {
				close_req(r);
				return -1;
			}
			p += used;
			n -= used;
			if (c == 1) {
				end(r, HTTPC_OK, NULL);
				return -1;
			}
			if (!used)
				break;
		}
		return 0;
	}
	if (!r->until_close && n > r->left)
		n = (size_t)r->left; /* bytes past the body: nothing a closing server should send */
	if (n && r->cb.on_data && r->cb.on_data(r->ctx, p, n)) {
		close_req(r);
		return -1;
	}
	if (!r->until_close) {
		r->left -= n;
		if (!r->left) {
			end(r, HTTPC_OK, NULL);
			return -1;
		}
	}
	return 0;
}

/* Head bytes; once the head is complete, the rest goes to body(). */
static void head(struct httpc_req *r, const char *p, size_t n)
{
	if (buf_append(&r->head, p, n)) {
		end(r, HTTPC_EPROTO, "response head too large");
		return;
	}
	for (;;) {
		size_t from = r->scan > 3 ? r->scan - 3 : 0;
		const char *h = r->head.len > from ? memmem(r->head.data + from, r->head.len - from, "\r\n\r\n", 4) : NULL;
		if (!h) {
			r->scan = r->head.len;
			return;
		}
		size_t hl = (size_t)(h - r->head.data) + 4;
		struct http_msg m;
		struct http_error e;
		if (http_parse_response(r->head.data, hl, hl, &m, &e) <= 0) {
			end(r, HTTPC_EPROTO, "malformed HTTP response");
			return;
		}
		if (m.status >= 100 && m.status < 200) { /* interim: the real head follows */
			buf_consume(&r->head, hl);
			r->scan = 0;
			continue;
		}
		r->chunked = m.chunked;
		r->until_close = !m.chunked && m.content_length < 0;
		r->left = m.content_length > 0 ? (uint64_t)m.content_length : 0;
		r->state = ST_BODY;
		if (r->cb.on_head && r->cb.on_head(r->ctx, &m)) {
			close_req(r);
			return;
		}
		int empty = (m.status == 204 || m.status == 304 || (!m.chunked && m.content_length == 0));
		if (empty) {
			end(r, HTTPC_OK, NULL);
			return;
		}
		size_t rest = r->head.len - hl;
		if (rest) {
			/* the body bytes that came with the head: hand them over from a copy,
			 * since the callbacks may end r (and free its head buffer) */
			char *tmp = plb_malloc(rest);
			memcpy(tmp, r->head.data + hl, rest);
			buf_reset(&r->head);
			body(r, tmp, rest);
			free(tmp);
		} else {
			buf_reset(&r->head);
		}
		return;
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct httpc_req *r = s->data;
	if (r->state == ST_ENDED)
		return;
	if (n < 0) {
		if (r->state == ST_HEAD || r->state == ST_CONNECTING)
			end(r, HTTPC_ECLOSED, n == UV_EOF ? "connection closed before a response" : "connection error");
		else if (r->until_close && n == UV_EOF)
			end(r, HTTPC_OK, NULL);
		else
			end(r, HTTPC_ETRUNC, "connection ended inside the response");
		return;
	}
	r->scanned += (uint64_t)n;
	if (r->state == ST_HEAD)
		head(r, b->base, (size_t)n);
	else if (r->state == ST_BODY)
		body(r, b->base, (size_t)n);
}

static void on_write(uv_write_t *w, int status)
{
	struct httpc_req *r = w->data;
	if (r->state == ST_ENDED)
		return;
	if (status < 0) {
		end(r, HTTPC_EWRITE, "write error");
		return;
	}
	r->written = 1;
	if (r->o.write_limit && r->o.write_limit < r->o.len)
		end(r, HTTPC_ESTOPPED, "left on purpose");
}

static void on_connect(uv_connect_t *cr, int status)
{
	struct httpc_req *r = cr->data;
	if (r->state == ST_ENDED)
		return;
	if (status < 0) {
		end(r, HTTPC_ECONNECT, status == UV_ECONNREFUSED ? "connection refused" : "connect error");
		return;
	}
	uv_tcp_nodelay(&r->tcp, 1);
	r->state = ST_HEAD;
	size_t len = r->o.write_limit && r->o.write_limit < r->o.len ? r->o.write_limit : r->o.len;
	uv_buf_t bb = uv_buf_init((char *)r->o.data, (unsigned)len);
	r->wr.data = r;
	if (uv_write(&r->wr, (uv_stream_t *)&r->tcp, &bb, 1, on_write)) {
		end(r, HTTPC_EWRITE, "write error");
		return;
	}
	if (uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read))
		end(r, HTTPC_ECLOSED, "connection error");
}

struct httpc_req *httpc_start(uv_loop_t *loop, const struct httpc_opts *o, const struct httpc_cb *cb, void *ctx)
{
	struct httpc_req *r = plb_calloc(1, sizeof *r);
	r->cb = *cb;
	r->ctx = ctx;
	r->o = *o;
	buf_init(&r->head, o->max_head ? o->max_head : 65536);
	buf_init(&r->dechunked, (size_t)1 << 30);
	if (!r->o.max_body)
		r->o.max_body = (uint64_t)1 << 30;
	if (uv_tcp_init(loop, &r->tcp)) {
		buf_free(&r->head);
		buf_free(&r->dechunked);
		free(r);
		return NULL;
	}
	r->tcp.data = r;
	r->cr.data = r;
	r->state = ST_CONNECTING;
	int rc = uv_tcp_connect(&r->cr, &r->tcp, o->addr, on_connect);
	if (rc) {
		/* report from the loop, never from inside the caller */
		r->state = ST_ENDED;
		close_req(r);
		return NULL;
	}
	return r;
}
