/* clientio.h: the benchmark client (src/core/client.c) driven over HTTP on a
 * libuv loop: `prefixlb bench`'s engine room. The client's sends become HTTP
 * requests, their streamed answers become client_on_* calls, its timer is a
 * libuv timer. Faults on purpose (abort_fraction): that share of the clients
 * leave at a random point: in the request head, in the body, before the first
 * token or mid-stream. */
#ifndef PREFIXLB_CLIENTIO_H
#define PREFIXLB_CLIENTIO_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../core/client.h"

struct clientio_opts {
	const char *host; /* an IPv4 address */
	int port;
	const char *path; /* "/v1/completions" */
	double abort_fraction;
	uint64_t seed;   /* for the abort draws */
	long total;      /* requests expected (progress bar), 0: unknown */
	int progress;    /* a progress bar on stderr */
	double progress_interval_s; /* > 0: instead, a plain line on stderr every that many seconds,
				     * "progress: DONE/TOTAL requests done, F failed, E s elapsed" (TOTAL ?
				     * when unknown), for a parent process to read (the lab relays it) */
	int measure;     /* the measured run: SIGINT stops it, the loop lag is sampled */
};

struct clientio_stats {
	long abort_kinds[5]; /* [1..4]: in the head, in the body, before the first token, mid-stream */
	int interrupted;
	double *lags_us;     /* the loop's lag, sampled every ms (owned by the caller: free) */
	size_t n_lags;
};

/* Runs c to its end (client_done) on loop. Returns 0, or -1 when host is not
 * an IPv4 address. */
int clientio_run(uv_loop_t *loop, struct client *c, const struct clientio_opts *o, struct clientio_stats *st);

/* vLLM's initial test request: the workload's first request alone (a session's
 * first user message as chat), before the clock. Returns 0 when it
 * succeeded; else prints why ("prefixlb bench: the initial test request
 * failed: HTTP 404: ...") and returns -1. */
int clientio_test_request(uv_loop_t *loop, const struct client_cfg *cc, const struct clientio_opts *io);

#endif
