/* kvpub.c: the KV event publisher; see kvpub.h. */
#include "kvpub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../core/mem.h"

struct kept {
	uint64_t seq;
	char *p;
	size_t n;
};

struct kvpub {
	uv_loop_t *loop;
	void *pub, *router;
	uv_poll_t poll; /* the router's ZMQ_FD */
	int polling, hurry; /* hurry: also polled for writable, to come back next loop turn */
	enum kvevents_enc enc;
	char topic[256];
	uint64_t seq;
	struct kept *ring; /* the last cap batches, for replay */
	size_t cap, head, len;
	struct buf out;
	struct kvpub_test test;
	uint64_t *drop;
	int pub_port, replay_port;
};

/* "tcp://h:0" -> "tcp://h:*"; rank offsets the port unless it is the kernel's. */
static int endpoint_for(const char *ep, int rank, char *out, size_t n)
{
	const char *colon = strrchr(ep, ':');
	if (colon && (!strcmp(colon + 1, "*") || !strcmp(colon + 1, "0")))
		return snprintf(out, n, "%.*s:*", (int)(colon - ep), ep) < (int)n ? 0 : -1;
	return kvevents_offset_endpoint(ep, rank, out, n);
}

static int bound_port(void *s)
{
	char last[256];
	size_t n = sizeof last;
	if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &n) || !strstr(last, "tcp://"))
		return 0;
	const char *colon = strrchr(last, ':');
	return colon ? atoi(colon + 1) : 0;
}

static void *open_socket(void *zctx, int type, const char *ep, int bind, long hwm, char *err, size_t errlen)
{
	void *s = zmq_socket(zctx, type);
	int zero = 0, h = (int)hwm;
	if (!s) {
		snprintf(err, errlen, "kv events: socket: %s", zmq_strerror(zmq_errno()));
		return NULL;
	}
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	if (type == ZMQ_PUB)
		zmq_setsockopt(s, ZMQ_SNDHWM, &h, sizeof h);
	if ((bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
		snprintf(err, errlen, "kv events: %s %s: %s", bind ? "bind" : "connect", ep, zmq_strerror(zmq_errno()));
		zmq_close(s);
		return NULL;
	}
	return s;
}

static void send_frames(void *s, const void *const *p, const size_t *n, int k)
{
	for (int i = 0; i < k; i++)
		if (zmq_send(s, p[i], n[i], ZMQ_DONTWAIT | (i + 1 < k ? ZMQ_SNDMORE : 0)) < 0)
			return; /* the peer's queue is full or it is gone: the rest is dropped, as ZMQ drops */
}

/* One replay request: [identity, "", start seq]. Anything else is ignored
 * (vLLM logs "Invalid replay request" and goes on). */
static void serve_one(struct kvpub *p)
{
	zmq_msg_t f[4];
	int k = 0, more = 1;
	while (more && k < 4) {
		zmq_msg_init(&f[k]);
		if (zmq_msg_recv(&f[k], p->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&f[k]);
			break;
		}
		more = zmq_msg_more(&f[k]);
		k++;
	}
	while (more) { /* too many frames: drain the rest */
		zmq_msg_t x;
		zmq_msg_init(&x);
		if (zmq_msg_recv(&x, p->router, ZMQ_DONTWAIT) < 0)
			more = 0;
		else
			more = zmq_msg_more(&x);
		zmq_msg_close(&x);
		k = 5;
	}
	uint64_t start;
	if (k == 3 && zmq_msg_size(&f[1]) == 0 && !kvevents_get_seq(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &start)) {
		const void *id = zmq_msg_data(&f[0]);
		size_t idn = zmq_msg_size(&f[0]);
		uint8_t sb[8];
		for (size_t i = 0; i < p->len; i++) {
			const struct kept *e = &p->ring[(p->head + i) % p->cap];
			if (e->seq < start)
				continue;
			kvevents_put_seq(sb, e->seq);
			const void *fp[4] = {id, "", sb, e->p};
			size_t fn[4] = {idn, 0, 8, e->n};
			send_frames(p->router, fp, fn, 4);
		}
		kvevents_put_seq(sb, KVEVENTS_REPLAY_END);
		const void *fp[4] = {id, "", sb, ""};
		size_t fn[4] = {idn, 0, 8, 0};
		send_frames(p->router, fp, fn, 4);
	} else if (k <= 4) {
		fprintf(stderr, "prefixlb engine: kv events: invalid replay request (%d frames)\n", k);
	}
	for (int i = 0; i < k && i < 4; i++)
		zmq_msg_close(&f[i]);
}

static void on_router(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct kvpub *p = h->data;
	/* edge-triggered: serve until ZMQ_EVENTS shows nothing pending */
	for (int budget = 64; budget > 0; budget--) {
		int ev = 0;
		size_t n = sizeof ev;
		if (zmq_getsockopt(p->router, ZMQ_EVENTS, &ev, &n) || !(ev & ZMQ_POLLIN)) {
			if (p->hurry) {
				p->hurry = 0;
				uv_poll_start(&p->poll, UV_READABLE, on_router);
			}
			return;
		}
		serve_one(p);
	}
	/* more pending: the FD will not wake us again, so come back on the next
	 * loop turn (the signaller FD is always writable) */
	p->hurry = 1;
	uv_poll_start(&p->poll, UV_READABLE | UV_WRITABLE, on_router);
}

struct kvpub *kvpub_new(uv_loop_t *loop, void *zctx, const struct kvevents_cfg *c, int rank, enum kvevents_enc enc,
			const struct kvpub_test *test, char *err, size_t errlen)
{
	char ep[300], rep[300];
	if (endpoint_for(c->endpoint, rank, ep, sizeof ep) ||
	    (c->replay[0] && endpoint_for(c->replay, rank, rep, sizeof rep))) {
		snprintf(err, errlen, "kv events: cannot offset '%s' by %d (tcp://HOST:PORT, PORT + replica index <= 65535)",
			 c->endpoint, rank);
		return NULL;
	}
	struct kvpub *p = plb_calloc(1, sizeof *p);
	p->loop = loop;
	p->enc = enc;
	snprintf(p->topic, sizeof p->topic, "%s", c->topic);
	p->cap = (size_t)c->buffer_steps;
	p->ring = plb_calloc(p->cap, sizeof *p->ring);
	buf_init(&p->out, 256u << 20);
	if (test) {
		p->test = *test;
		if (test->n_drop) {
			p->drop = plb_malloc(test->n_drop * sizeof *p->drop);
			memcpy(p->drop, test->drop, test->n_drop * sizeof *p->drop);
			p->test.drop = p->drop;
		}
	}
	int bind = p->test.bind || strchr(ep, '*') || strstr(ep, "::") || !strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9);
	p->pub = open_socket(zctx, ZMQ_PUB, ep, bind, c->hwm, err, errlen);
	if (p->pub && c->replay[0])
		p->router = open_socket(zctx, ZMQ_ROUTER, rep, 1, 0, err, errlen);
	if (!p->pub || (c->replay[0] && !p->router)) {
		kvpub_close(p);
		return NULL;
	}
	p->pub_port = bound_port(p->pub);
	if (p->router) {
		int fd;
		size_t n = sizeof fd;
		p->replay_port = bound_port(p->router);
		if (zmq_getsockopt(p->router, ZMQ_FD, &fd, &n) || uv_poll_init(loop, &p->poll, fd)) {
			snprintf(err, errlen, "kv events: cannot poll the replay socket");
			kvpub_close(p);
			return NULL;
		}
		p->poll.data = p;
		p->polling = 1;
		uv_poll_start(&p->poll, UV_READABLE, on_router);
	}
	return p;
}

void kvpub_ports(const struct kvpub *p, int *pub, int *replay)
{
	*pub = p->pub_port;
	*replay = p->replay_port;
}

void kvpub_publish(struct kvpub *p, double ts, const struct kv_event *ev, size_t n)
{
	struct kv_batch b = {.ts = ts, .has_dp_rank = 1, .dp_rank = 0, .events = ev, .n_events = n};
	buf_reset(&p->out);
	if (kvevents_encode(&p->out, &b, p->enc)) {
		fprintf(stderr, "prefixlb engine: kv events: a batch over %zu bytes dropped\n", p->out.max);
		return;
	}
	uint64_t seq = p->seq++;
	uint8_t sb[8];
	kvevents_put_seq(sb, seq);
	int drop = 0;
	for (size_t i = 0; i < p->test.n_drop; i++)
		drop |= p->test.drop[i] == seq;
	if (p->pub && !drop) {
		const void *fp[3] = {p->topic, sb, p->out.data};
		size_t fn[3] = {strlen(p->topic), 8, p->out.len};
		send_frames(p->pub, fp, fn, 3);
	}
	if (p->pub && p->test.mute_after && p->seq >= p->test.mute_after) {
		fprintf(stderr, "prefixlb engine: kv events: test: PUB socket closed after %llu batches\n",
			(unsigned long long)p->seq);
		zmq_close(p->pub);
		p->pub = NULL;
	}
	/* keep it for replay (the oldest goes) */
	struct kept *k;
	if (p->len == p->cap) {
		k = &p->ring[p->head];
		p->head = (p->head + 1) % p->cap;
		free(k->p);
	} else {
		k = &p->ring[(p->head + p->len++) % p->cap];
	}
	k->seq = seq;
	k->n = p->out.len;
	k->p = plb_malloc(k->n ? k->n : 1);
	memcpy(k->p, p->out.data, k->n);
	/* a send may leave the replay socket readable without waking its FD */
	if (p->polling)
		on_router(&p->poll, 0, UV_READABLE);
}

static void free_pub(uv_handle_t *h)
{
	free(h->data);
}

void kvpub_close(struct kvpub *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->len; i++)
		free(p->ring[(p->head + i) % p->cap].p);
	free(p->ring);
	free(p->drop);
	buf_free(&p->out);
	if (p->polling)
		uv_poll_stop(&p->poll); /* off epoll before the FD goes with the socket */
	if (p->pub)
		zmq_close(p->pub);
	if (p->router)
		zmq_close(p->router);
	if (p->polling)
		uv_close((uv_handle_t *)&p->poll, free_pub);
	else
		free(p);
}
