/* proxy.h: the life of one proxied request, as decisions without sockets
 * (HAProxy's stream.c is such a lifecycle): what to do when the backend's
 * head arrives, when the transfer ends, when a timer fires, whether to eject
 * a backend. src/net/proxy.c does the I/O and asks these functions; the unit
 * tests exercise every path without a socket.
 *
 * The rules:
 *   - a request is retried on another backend (at most max_retries times,
 *     never on a backend already tried) when nothing has reached the client
 *     and the backend could not be connected to, timed out connecting, went
 *     away holding the request before any response byte, or answered 502 or
 *     503 (its answer is then not relayed);
 *   - a kept-alive connection found closed by the backend before any
 *     response byte (it closed it while idle, or as the request went out) is
 *     the pool's race, not the backend's failure: the request is sent again to
 *     the same backend on a new connection, at most PROXY_MAX_RESENDS times,
 *     without counting a retry or moving the lease (a new connection cannot
 *     be stale; if it fails, that failure is judged as any other);
 *   - once the client has the head, a failure ends its request: the client
 *     sees a cut stream (the response cannot be replayed);
 *   - a request finishes exactly once: proxy_finish says yes the first time.
 * Statuses for the metrics: a backend's own answer counts as itself (a 503
 * stays 503), a transport failure as 502, a timeout before the head as 504. */
#ifndef PREFIXLB_PROXY_H
#define PREFIXLB_PROXY_H

#include <stddef.h>

#include "lb.h"

/* How the upstream transfer ended (net/proxy.c maps httpc errors to these). */
enum proxy_end {
	PROXY_END_OK,       /* the whole response */
	PROXY_END_CONNECT,  /* could not connect (refused, unreachable, name) */
	PROXY_END_CTIMEOUT, /* connect timed out */
	PROXY_END_LOST,     /* the connection failed after the request went out, before any response byte */
	PROXY_END_STALE,    /* the same on a kept-alive connection: the backend had closed it */
	PROXY_END_PROTO,    /* malformed or truncated response */
	PROXY_END_OTHER,
};

enum proxy_act {
	PROXY_RELAY, /* pass the head (and what follows) to the client */
	PROXY_RETRY, /* release this backend, pick another, send again */
	PROXY_RESEND, /* send again to the same backend on a new connection (call proxy_resent) */
	PROXY_FAIL,  /* answer the client with status/msg (nothing was sent yet) */
	PROXY_CUT,   /* drop the client's connection (it has a partial response) */
	PROXY_DONE,  /* end the client's response normally */
};

struct proxy_decision {
	enum proxy_act act;
	int status;      /* FAIL: what to answer; all: what to count */
	const char *msg; /* FAIL, CUT: why */
};

struct proxy_req {
	int tried[LB_MAX_TRIED];
	size_t n_tried;
	int retries;
	int head_sent;     /* the client has the response head */
	int refused;       /* the current backend answered 502/503 and the answer was held back */
	int upstream_status; /* the current backend's status, 0 before its head */
	int resends;         /* sends again to this backend after a stale connection */
	int finished;
};

#define PROXY_MAX_RESENDS 2

/* The backend's head arrived with status. */
struct proxy_decision proxy_on_head(struct proxy_req *r, int max_retries, int status);
/* The upstream transfer ended. msg: the transport's own words (may be NULL). */
struct proxy_decision proxy_on_end(const struct proxy_req *r, int max_retries, enum proxy_end how, const char *msg);
/* first_byte: the backend sent no head in time; else a silence inside the response. */
struct proxy_decision proxy_on_timeout(const struct proxy_req *r, int first_byte);
/* Records a retry away from ep (call before picking the next backend). */
void proxy_retry(struct proxy_req *r, int ep);
/* Records a resend (PROXY_RESEND). */
void proxy_resent(struct proxy_req *r);
/* 1 the first time, 0 after: the one exit of every request. */
int proxy_finish(struct proxy_req *r);

/* Passive health: a connect failure on a backend. *consecutive counts them;
 * returns 1 once they reach threshold (eject it if it is still in). A success resets. */
int proxy_passive_failure(int *consecutive, int threshold);

#endif
