/* kvpub.h: a replica's KV event publisher, vLLM's ZmqEventPublisher
 * (vllm/distributed/kv_events.py) on the fleet's libuv loop.
 *
 * A PUB socket sends each batch as [topic, seq (8 bytes big-endian), msgpack
 * payload] with seq counting from 0 in this process's life; the last
 * buffer_steps batches are kept for the ROUTER replay socket, which answers
 * [identity, "", start seq] with [identity, "", seq, payload] for every kept
 * batch with seq >= start, then [identity, "", -1, ""]. The endpoint binds
 * when it holds "*", "::", ipc:// or inproc:// and connects otherwise (vLLM's
 * rule); the replay endpoint always binds. Port "*" or 0 lets the kernel pick
 * (kvpub_ports says which).
 *
 * Sending never blocks: the PUB socket drops batches past its high-water
 * mark, as vLLM's does. The replay socket's ZMQ_FD is polled with uv_poll and,
 * as libzmq's FD is edge-triggered, ZMQ_EVENTS is read again until it shows
 * no pending message (libzmq man zmq_getsockopt, ZMQ_FD). */
#ifndef PREFIXLB_KVPUB_H
#define PREFIXLB_KVPUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../core/kvevent.h"
#include "../proto/kvevents.h"

struct kvpub;

/* Test knobs (engine --kv-events-test-*): batches whose seq is listed are
 * kept for replay but not sent on the PUB socket (lost messages); after
 * mute_after batches (0: never) the PUB socket is closed (a dead stream). */
struct kvpub_test {
	const uint64_t *drop;
	size_t n_drop;
	uint64_t mute_after;
	int bind; /* bind the PUB endpoint whatever it looks like (engine --kv-events-bind) */
};

/* zctx: a libzmq context. The endpoints of rank `rank` are c's offset by it
 * (vLLM's data-parallel rule: port + rank). Returns NULL with a message. */
struct kvpub *kvpub_new(uv_loop_t *loop, void *zctx, const struct kvevents_cfg *c, int rank, enum kvevents_enc enc,
			const struct kvpub_test *test, char *err, size_t errlen);
/* The bound TCP ports (0 when not TCP or not bound). */
void kvpub_ports(const struct kvpub *p, int *pub, int *replay);
/* Publishes one batch (ts: wall clock seconds). */
void kvpub_publish(struct kvpub *p, double ts, const struct kv_event *ev, size_t n);
/* Stops and frees (the poll handle's memory after the loop closes it). */
void kvpub_close(struct kvpub *p);

#endif
