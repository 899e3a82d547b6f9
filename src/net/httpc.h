/* httpc.h: prefixlb's one HTTP/1.1 client, on libuv: the router's upstream
 * requests, its health checks and /metrics reads, and the bench's requests.
 *
 * Destinations are pools (struct httpc_pool: a host and a port; a name is
 * resolved with uv_getaddrinfo and the answer kept HTTPC_DNS_TTL_MS). A
 * connection is kept alive after a response that allows it and reused, most
 * recently used first; a pool keeps at most cfg.max_idle idle connections
 * (one more coming back closes the oldest) and closes one idle for
 * cfg.idle_timeout_ms: nginx's `keepalive N` and `keepalive_timeout`. Idle
 * connections are read, so a server that closes one is seen at once and the
 * connection leaves the pool. One request per connection at a time (no
 * pipelining).
 *
 * The response head goes through src/proto/http.c, the server's parser: the
 * same strict rules and limits on both sides of the router. Bytes are not
 * copied to new memory: the request's head is built once and written with its
 * body (borrowed) in one system call when the socket takes it; a response is
 * read into one loop-wide buffer, its head parsed in place (copied only when a
 * read ends inside it) and its body handed over as one slice of that buffer
 * per read (a chunked body de-chunked in place: the chunks' data moved over
 * the framing between them, http_chunked_next), from the read callback, so a
 * reader can timestamp every byte as it arrives.
 *
 * Lifetime follows libuv: connections are freed in their handles' close
 * callbacks. A request ends exactly once: on_done, or a callback's
 * HTTPC_STOP, or httpc_cancel (safe anywhere, in its own callbacks too);
 * no callback comes after that. */
#ifndef PREFIXLB_HTTPC_H
#define PREFIXLB_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../proto/http.h"

#define HTTPC_DNS_TTL_MS 30000

enum httpc_err {
	HTTPC_OK = 0,
	HTTPC_ECONNECT,  /* could not connect (refused, unreachable, the name does not resolve) */
	HTTPC_ETIMEOUT,  /* connect_timeout_ms or timeout_ms passed */
	HTTPC_EWRITE,    /* the request could not be written (on a new connection) */
	HTTPC_ECLOSED,   /* the server closed or reset a new connection before any response byte */
	HTTPC_ESTALE,    /* the same on a connection reused from the pool: the server closed it while it was
			    idle, or as the request went out; nothing was read */
	HTTPC_EPROTO,    /* malformed response head or chunked body, or over a limit */
	HTTPC_ETRUNC,    /* the connection ended inside the body */
	HTTPC_ESTOPPED,  /* write_limit reached: the request was left on purpose */
};

/* What on_head and on_data return. */
#define HTTPC_CONTINUE 0
#define HTTPC_STOP 1  /* end the request now (its connection is closed), no on_done */
#define HTTPC_PAUSE 2 /* on_data: these bytes were taken; read no more until httpc_resume */

struct httpc_cb {
	/* The final response head (1xx are skipped); m points into the read
	 * buffer and is valid during the call (a header of the response:
	 * http_find(m, name)). */
	int (*on_head)(void *ctx, const struct http_msg *m);
	/* Body bytes (de-chunked), valid during the call. */
	int (*on_data)(void *ctx, const char *p, size_t n);
	/* The request ended; msg names the problem when err != HTTPC_OK. */
	void (*on_done)(void *ctx, enum httpc_err err, const char *msg);
	/* Optional: the bytes of one read were all handed over (on_head/on_data)
	 * and the request goes on: the moment to flush what they produced. */
	void (*on_flush)(void *ctx);
};

struct httpc_opts {
	/* The request, either as raw bytes (head and body, borrowed), written as
	 * they are ... */
	const char *raw;
	size_t raw_len;
	size_t write_limit; /* raw: > 0: write only this many bytes, then end with HTTPC_ESTOPPED */
	/* ... or built: "METHOD TARGET HTTP/1.1", host, the caller's header
	 * lines, content-length (with a body or a method other than GET/HEAD),
	 * connection: close (with close), then the body. The head is built in
	 * httpc_start (method, target, headers are copied then); the body is
	 * borrowed, written after it with one writev. */
	const char *method, *target;
	const char *headers; /* "name: value\r\n" lines, or NULL */
	size_t headers_len;
	const char *body; /* borrowed until the request ends */
	size_t body_len;
	int fresh; /* a new connection, never an idle one */
	int close; /* the connection is not kept afterwards (built requests say so) */
	uint64_t connect_timeout_ms; /* 0: none */
	uint64_t timeout_ms;         /* the whole request, 0: none */
};

struct httpc_cfg {
	size_t max_idle;          /* idle connections kept per pool (0: none) */
	uint64_t idle_timeout_ms; /* an idle connection is closed after this (0: 60 s) */
	size_t max_head;          /* largest response head (0: 64 KiB) */
	uint64_t max_body;        /* largest de-chunked body (0: no limit) */
};

struct httpc_pool_stats {
	size_t idle, busy, connecting; /* connections now */
	uint64_t connects, reuses;     /* connections opened, requests sent on a kept one */
	uint64_t idle_closed;          /* idle connections closed: timeout, over max_idle, closed by the server */
};

struct httpc;
struct httpc_pool;
struct httpc_req;

struct httpc *httpc_new(uv_loop_t *loop, const struct httpc_cfg *cfg);
/* New limits (a reload): idle connections over the new bound are closed now. */
void httpc_set_cfg(struct httpc *c, const struct httpc_cfg *cfg);
/* Ends every request in flight with on_done(HTTPC_ECLOSED) (so its owner can
 * free what it holds) and closes every connection; a request started after
 * this ends the same way, from the loop. The client's memory goes once every
 * pool has been freed by its owner (before or after this) and libuv has
 * closed the handles (run the loop). */
void httpc_free(struct httpc *c);

/* A destination: host is a name or an address literal (an IPv6 one with or
 * without brackets). The pool belongs to the caller until httpc_pool_free. */
struct httpc_pool *httpc_pool_new(struct httpc *c, const char *host, int port);
/* Closes the idle connections; requests in flight finish, then their
 * connections close. p is not used again by the caller. */
void httpc_pool_free(struct httpc_pool *p);
void httpc_pool_stats(const struct httpc_pool *p, struct httpc_pool_stats *s);

/* Starts a request (from anywhere, callbacks included; none is made from
 * inside this call). Never NULL. */
struct httpc_req *httpc_start(struct httpc_pool *p, const struct httpc_opts *o, const struct httpc_cb *cb,
			      void *ctx);
/* Ends the request now: no callback afterwards. Its connection is closed
 * unless the response was complete. */
void httpc_cancel(struct httpc_req *r);
/* Reads again after on_data returned HTTPC_PAUSE. */
void httpc_resume(struct httpc_req *r);

#endif
