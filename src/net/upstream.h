/* upstream.h: HTTP client requests on libcurl's multi interface, driven by
 * libuv (the pattern of curl's docs/examples/multi-uv.c).
 *
 * Connections to backends are kept alive and reused by the multi handle's
 * pool. Response bodies are delivered as they are read (no buffering), and a
 * consumer that can't take more returns UP_PAUSE: the transfer stops reading
 * the socket until up_resume (backpressure reaches the backend's TCP window).
 * up_cancel stops a request at once (no callback afterwards) and closes its
 * connection, which is how a client disconnect cancels the upstream request. */
#ifndef PREFIXLB_UPSTREAM_H
#define PREFIXLB_UPSTREAM_H

#include <stddef.h>
#include <uv.h>

#include "../core/buf.h"

struct upstream;
struct up_req;

#define UP_PAUSE 1

enum up_error {
	UP_OK = 0,
	UP_ECONNECT,  /* could not connect (refused, unreachable, DNS) */
	UP_ETIMEOUT,  /* curl's own timeout (connect) */
	UP_EPROTO,    /* malformed or truncated response */
	UP_ELOST,     /* the connection failed after the request went out, before any response byte */
	UP_EOTHER,
};

struct up_callbacks {
	/* Status line and headers arrived (final response, not 1xx). headers:
	 * the raw header lines "name: value\r\n"... Return non-zero to abort. */
	int (*on_head)(void *ctx, int status, const char *headers, size_t len);
	/* Body bytes (de-chunked). Return 0, or UP_PAUSE to stop reading (the
	 * same bytes are delivered again after up_resume). */
	int (*on_data)(void *ctx, const char *data, size_t len);
	/* The transfer ended; err says how. The request is freed after this. */
	void (*on_done)(void *ctx, enum up_error err, const char *msg);
};

struct up_opts {
	const char *method; /* "GET", "POST", ... */
	const char *url;
	const char *const *headers; /* "name: value" lines, NULL-terminated, or NULL */
	const char *body;           /* borrowed: must live until on_done/up_cancel */
	size_t body_len;
	long connect_timeout_ms;
	long total_timeout_ms; /* 0: none */
};

struct upstream *upstream_new(uv_loop_t *loop, long max_connections);
/* Cancels every request (no callbacks) and frees the client once libuv has
 * closed its handles. */
void upstream_free(struct upstream *u);

struct up_req *up_start(struct upstream *u, const struct up_opts *o, const struct up_callbacks *cb, void *ctx);
void up_cancel(struct up_req *r);
void up_resume(struct up_req *r);
size_t upstream_active(const struct upstream *u);

#endif
