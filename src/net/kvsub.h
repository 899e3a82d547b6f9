/* kvsub.h: the router's KV event subscriber: one ZeroMQ SUB socket per
 * backend (vLLM's publisher, or `prefixlb engine --kv-events-config`), a
 * DEALER socket for its replay endpoint, a monitor for its connection, all on
 * the router's libuv loop; the decisions are core/kvindex.c's, the decoding
 * proto/kvevents.c's.
 *
 * Which publisher: `--kv-events NAME=tcp://HOST:PORT[,tcp://HOST:REPLAY]`
 * for the backend named NAME (host:port of its URL), else the port
 * convention `--kv-events-port PUB[:REPLAY]` on the backend's host: fixed
 * ports (a Kubernetes fleet: every pod 5557/5558), or "+N[:+M]": the backend's
 * HTTP port + N (a `prefixlb engine --replicas K` fleet whose KV ports are its
 * HTTP ports + N). Backends come and go with the configuration and DNS: the
 * subscriptions follow them (checked every 500 ms).
 *
 * libzmq's ZMQ_FD is edge-triggered: after it polls readable, ZMQ_EVENTS is
 * read and messages received until it shows none pending, and again after
 * any send on that socket (zmq_getsockopt(3), ZMQ_FD); a handler that stops
 * early (a budget per turn) comes back on the next loop turn by also polling
 * the (always writable) signaller for writability. */
#ifndef PREFIXLB_KVSUB_H
#define PREFIXLB_KVSUB_H

#include <uv.h>

#include "../core/buf.h"
#include "../core/lb.h"

struct kvsub_cfg {
	const char *const *specs; /* NAME=tcp://...[,tcp://...] */
	size_t n_specs;
	const char *port;         /* PUB[:REPLAY] | +N[:+M] | NULL */
	const char *topic;        /* subscription prefix ("": every topic) */
	long max_age_ms, replay_timeout_ms, pending_ms, stale_requests;
	long block_tokens;        /* the policies' block-tokens */
};

struct kvsub;

/* Checks the specs and the port convention (for reload). 0 or -1 with err. */
int kvsub_check(const struct kvsub_cfg *c, char *err, size_t errlen);
/* NULL when c names no publisher (nothing to do) or on error (err set). The
 * index it feeds is given to lb (lb_set_kvindex). */
struct kvsub *kvsub_new(uv_loop_t *loop, struct lb *lb, const struct kvsub_cfg *c, char *err, size_t errlen);
/* New specs / convention (SIGHUP); the strings are copied. */
void kvsub_reconfigure(struct kvsub *k, const struct kvsub_cfg *c);
/* Prometheus lines: prefixlb_kv_events_* and prefixlb_kv_index_* per backend. */
void kvsub_metrics(struct kvsub *k, struct buf *b);
/* Closes every socket; the memory goes when the loop has closed the handles.
 * The index is taken back from lb first. */
void kvsub_close(struct kvsub *k);

#endif
