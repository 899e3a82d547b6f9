/* server.h: an HTTP/1.1 server on libuv, shared by the engine and the router.
 *
 * One request at a time per connection (pipelined bytes wait in the read
 * buffer); reading continues while a request is in flight so a client that
 * goes away is noticed at once (on_abort), which is what lets the engine free
 * KV blocks and the router cancel the upstream request the moment it happens.
 * Limits: head size, body size, a deadline to receive the whole request
 * (slowloris) and an idle keep-alive timeout. Handle lifetime follows libuv:
 * a connection is freed only in its close callback, never inside a callback
 * of its own. */
#ifndef PREFIXLB_SERVER_H
#define PREFIXLB_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../core/buf.h"
#include "../proto/http.h"

struct http_conn;
struct http_server;

struct http_server_cfg {
	const char *host; /* "127.0.0.1", "0.0.0.0", "::" */
	int port;         /* 0: the kernel picks one (see http_server_port) */
	size_t max_head;  /* request line + headers */
	size_t max_body;
	uint64_t request_timeout_ms; /* from first byte to whole request */
	uint64_t idle_timeout_ms;    /* keep-alive connection with no request */
	/* A whole request arrived; the handler must answer it (now or later) with
	 * http_respond or http_stream_*, unless on_abort is called first. */
	void (*on_request)(struct http_conn *c, const struct http_msg *m, const char *body, size_t body_len,
			   void *ud);
	/* The client went away while its request was in flight. After this call
	 * the handler must not touch c again. */
	void (*on_abort)(struct http_conn *c, void *req_ctx, void *ud);
	/* The write queue of a connection with a request in flight drained to
	 * zero (optional): resume what was paused for backpressure. */
	void (*on_drain)(struct http_conn *c, void *req_ctx, void *ud);
	/* Formats an error body for parse errors (status, message); sets *ctype. */
	void (*error_body)(int status, const char *msg, struct buf *out, const char **ctype);
	void *ud;
};

struct http_server *http_server_new(uv_loop_t *loop, const struct http_server_cfg *cfg, char *err, size_t errlen);
int http_server_port(const struct http_server *s);
/* Stops accepting; open connections continue. */
void http_server_stop_listening(struct http_server *s);
/* Closes the listener and every connection (in-flight requests get on_abort),
 * then frees the server once libuv has closed all handles. */
void http_server_close(struct http_server *s);
size_t http_server_conn_count(const struct http_server *s);

/* The handler's context for the request in flight (given back in on_abort). */
void http_conn_set_ctx(struct http_conn *c, void *req_ctx);
void *http_conn_ctx(const struct http_conn *c);
/* Whole response with Content-Length. extra_headers: "name: value\r\n"... or NULL. */
int http_respond(struct http_conn *c, int status, const char *ctype, const char *extra_headers, const char *body,
		 size_t len);
/* Streaming response (chunked for HTTP/1.1, raw until close for HTTP/1.0). */
int http_stream_begin(struct http_conn *c, int status, const char *ctype, const char *extra_headers);
/* Streaming response of a known length (content-length framing, raw writes). */
int http_stream_begin_len(struct http_conn *c, int status, const char *ctype, const char *extra_headers,
			  uint64_t content_length);
/* Drops the connection now (a response that can't be finished): the client
 * sees a truncated response. on_abort is not called for it. */
void http_conn_abort(struct http_conn *c);
int http_stream_write(struct http_conn *c, const char *data, size_t len);
int http_stream_end(struct http_conn *c);
/* Corks c: what is written is gathered until http_conn_uncork (or the end of
 * the response, or http_conn_abort), then goes out in one system call: a
 * relay that writes a head and several chunks from one read makes one write.
 * http_conn_uncork returns -1 when that write failed (c is closed). */
void http_conn_cork(struct http_conn *c);
int http_conn_uncork(struct http_conn *c);
/* Bytes accepted but not yet written to the socket (backpressure). */
size_t http_conn_write_queue(const struct http_conn *c);
/* Peer address as "ip:port". */
const char *http_conn_peer(const struct http_conn *c);

#endif
