/* httpc.h: an HTTP/1.1 client on libuv, with the same strict parser as the
 * server side (src/proto/http.c): the bench client's transport, where every
 * byte must be timestamped the moment it is read.
 *
 * One request per connection (the caller writes "connection: close", as the
 * seed's client does), bytes in and out without copies: the request bytes are
 * borrowed until the request ends, response body bytes (de-chunked) are handed
 * over from the read callback. The response head is scanned only over new
 * bytes (linear whatever the segmentation) and parsed once; its size and the
 * body's are bounded. Lifetime follows libuv: a request is freed in its
 * handle's close callback, never inside a callback of its own; on_done is
 * called exactly once unless the request was cancelled (then never). */
#ifndef PREFIXLB_HTTPC_H
#define PREFIXLB_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../proto/http.h"

enum httpc_err {
	HTTPC_OK = 0,
	HTTPC_ECONNECT,  /* could not connect */
	HTTPC_EWRITE,    /* the request could not be written */
	HTTPC_ECLOSED,   /* the server closed before a response */
	HTTPC_EPROTO,    /* malformed response head or chunked body, or over a limit */
	HTTPC_ETRUNC,    /* the connection ended inside the body */
	HTTPC_ESTOPPED,  /* write_limit reached: the request was left on purpose */
};

struct httpc_cb {
	/* The final response head (1xx are skipped); m is valid during the call.
	 * Return non-zero to stop: the request ends with no on_done. */
	int (*on_head)(void *ctx, const struct http_msg *m);
	/* Body bytes (de-chunked). Non-zero stops as on_head does. */
	int (*on_data)(void *ctx, const char *p, size_t n);
	/* The request ended; msg names the problem when err != HTTPC_OK. */
	void (*on_done)(void *ctx, enum httpc_err err, const char *msg);
};

struct httpc_opts {
	const struct sockaddr *addr;
	const char *data; /* the request's bytes (head and body), borrowed */
	size_t len;
	size_t write_limit; /* > 0: write only this many bytes, then end with HTTPC_ESTOPPED */
	size_t max_head;    /* largest response head (0: 64 KiB) */
	uint64_t max_body;  /* largest de-chunked body (0: 1 GiB) */
};

struct httpc_req;

/* Connects and sends. Returns NULL when the socket cannot even be created
 * (then no callback is made). */
struct httpc_req *httpc_start(uv_loop_t *loop, const struct httpc_opts *o, const struct httpc_cb *cb, void *ctx);
/* Ends the request now: no callback afterwards. Safe from inside callbacks
 * of other requests; inside its own, return non-zero instead. */
void httpc_cancel(struct httpc_req *r);
/* Bytes of the response head and body read so far (tests check linearity). */
uint64_t httpc_scanned(const struct httpc_req *r);

#endif
