/* kvsub.c: the KV event subscriber; see kvsub.h. */
#include "kvsub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../core/kvindex.h"
#include "../core/mem.h"
#include "../proto/kvevents.h"

#define BUDGET 256               /* messages per socket per loop turn */
#define MAX_HELD 100000          /* live batches held during a replay */
#define MAX_FRAME (64u << 20)    /* a payload larger than this is refused */

struct kvsub;

/* A ZMQ socket polled on the loop. */
struct zpoll {
	void *s;
	uv_poll_t h;
	int on, hurry;
	struct ksub *owner;
	void (*handle)(struct ksub *b); /* reads until nothing pending (or budget) */
};

struct held {
	uint64_t seq;
	char *p;
	size_t n;
};

struct ksub {
	struct kvsub *k;
	char name[160];
	char model[256];
	char pub[300], rep[300];
	int ep;
	int closing, open_handles;
	struct zpoll sub, mon, dealer;
	struct held *held;
	size_t n_held, cap_held;
	uint64_t dropped_held;
	uint64_t errors_logged;
	struct ksub *next;
};

struct kvsub {
	uv_loop_t *loop;
	struct lb *lb;
	void *zctx;
	struct kvindex *kx;
	struct kvevents_dec dec;
	uv_timer_t timer;
	char **specs;
	size_t n_specs;
	char port[64], topic[256];
	struct ksub *subs;
	unsigned mon_seq;
	int closing, open_handles;
};

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

/* ---- configuration ------------------------------------------------------------ */

static int parse_port(const char *s, int *rel, long *pub, long *rep)
{
	char *end;
	*rel = s[0] == '+';
	*pub = strtol(s + *rel, &end, 10);
	*rep = -1;
	if (end == s + *rel || *pub < 0 || *pub > 65535)
		return -1;
	if (*end == ':') {
		const char *r = end + 1;
		if ((*r == '+') != *rel)
			return -1;
		*rep = strtol(r + *rel, &end, 10);
		if (end == r + *rel || *rep < 0 || *rep > 65535)
			return -1;
	}
	return *end ? -1 : 0;
}

static int check_spec(const char *spec, char *err, size_t errlen)
{
	const char *eq = strchr(spec, '=');
	if (!eq || eq == spec || strncmp(eq + 1, "tcp://", 6)) {
		snprintf(err, errlen, "--kv-events %s: expected BACKEND=tcp://HOST:PORT[,tcp://HOST:REPLAY_PORT]", spec);
		return -1;
	}
	const char *comma = strchr(eq + 1, ',');
	if (comma && strncmp(comma + 1, "tcp://", 6)) {
		snprintf(err, errlen, "--kv-events %s: the replay endpoint must be tcp://HOST:PORT", spec);
		return -1;
	}
	if (strlen(eq + 1) >= 290) {
		snprintf(err, errlen, "--kv-events %s: too long", spec);
		return -1;
	}
	return 0;
}

int kvsub_check(const struct kvsub_cfg *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_specs; i++)
		if (check_spec(c->specs[i], err, errlen))
			return -1;
	int rel;
	long p, r;
	if (c->port && c->port[0] && parse_port(c->port, &rel, &p, &r)) {
		snprintf(err, errlen, "--kv-events-port %s: expected PUB[:REPLAY] (ports) or +N[:+M] (offsets from the HTTP port)",
			 c->port);
		return -1;
	}
	return 0;
}

/* The publisher of backend `name` (host:port): 0, or -1 when none is configured. */
static int endpoints_of(const struct kvsub *k, const char *name, char *pub, char *rep, size_t n)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < k->n_specs; i++) {
		const char *s = k->specs[i];
		if (strncmp(s, name, nl) || s[nl] != '=')
			continue;
		const char *e = s + nl + 1, *comma = strchr(e, ',');
		snprintf(pub, n, "%.*s", (int)(comma ? (size_t)(comma - e) : strlen(e)), e);
		snprintf(rep, n, "%s", comma ? comma + 1 : "");
		return 0;
	}
	if (!k->port[0])
		return -1;
	const char *colon = strrchr(name, ':');
	int rel;
	long p, r, http = colon ? atol(colon + 1) : 0;
	if (!colon || parse_port(k->port, &rel, &p, &r))
		return -1;
	if (rel) {
		p += http;
		r = r >= 0 ? r + http : -1;
	}
	if (p > 65535 || r > 65535)
		return -1;
	snprintf(pub, n, "tcp://%.*s:%ld", (int)(colon - name), name, p);
	if (r >= 0)
		snprintf(rep, n, "tcp://%.*s:%ld", (int)(colon - name), name, r);
	else
		rep[0] = '\0';
	return 0;
}

/* ---- polling ZMQ sockets -------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h);

static void on_poll(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct zpoll *z = h->data;
	z->handle(z->owner);
}

static int zp_pending(struct zpoll *z)
{
	int ev = 0;
	size_t n = sizeof ev;
	return z->s && !zmq_getsockopt(z->s, ZMQ_EVENTS, &ev, &n) && (ev & ZMQ_POLLIN);
}

/* After a budget's worth: come back next turn (the signaller is writable). */
static void zp_hurry(struct zpoll *z, int more)
{
	if (!z->on || z->hurry == more)
		return;
	z->hurry = more;
	uv_poll_start(&z->h, UV_READABLE | (more ? UV_WRITABLE : 0), on_poll);
}

static int zp_start(struct ksub *b, struct zpoll *z, void *s, void (*handle)(struct ksub *))
{
	int fd;
	size_t n = sizeof fd;
	z->s = s;
	z->owner = b;
	z->handle = handle;
	if (zmq_getsockopt(s, ZMQ_FD, &fd, &n) || uv_poll_init(b->k->loop, &z->h, fd))
		return -1;
	z->h.data = z;
	z->on = 1;
	b->open_handles++;
	uv_poll_start(&z->h, UV_READABLE, on_poll);
	return 0;
}

static void zp_stop(struct zpoll *z)
{
	if (z->on) {
		uv_poll_stop(&z->h); /* off epoll before the FD goes with the socket */
		uv_close((uv_handle_t *)&z->h, handle_closed);
		z->on = 0;
	}
	if (z->s)
		zmq_close(z->s);
	z->s = NULL;
}

/* One multipart message into up to 4 frames; returns the number of frames
 * (more than 4: the rest is drained and 5 returned), 0 when none was there. */
static int recv_frames(void *s, zmq_msg_t *f)
{
	int k = 0, more = 1;
	while (more) {
		zmq_msg_t tmp, *m = k < 4 ? &f[k] : &tmp;
		zmq_msg_init(m);
		if (zmq_msg_recv(m, s, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(m);
			return k > 4 ? 5 : k;
		}
		more = zmq_msg_more(m);
		if (k >= 4)
			zmq_msg_close(m);
		k++;
	}
	return k > 4 ? 5 : k;
}

static void close_frames(zmq_msg_t *f, int k)
{
	for (int i = 0; i < k && i < 4; i++)
		zmq_msg_close(&f[i]);
}

/* ---- one backend ------------------------------------------------------------------ */

static void bad(struct ksub *b, const char *what)
{
	kvindex_bad_message(b->k->kx, b->ep);
	if (b->errors_logged++ % 1000 == 0)
		fprintf(stderr, "prefixlb route: kv events from %s: %s (message dropped)\n", b->name, what);
}

static void apply_payload(struct ksub *b, const void *p, size_t n)
{
	struct kv_batch bt;
	char err[300];
	if (kvevents_decode(&b->k->dec, p, n, &bt, NULL, err, sizeof err)) {
		bad(b, err);
		return;
	}
	kvindex_apply(b->k->kx, b->ep, &bt, now_ns());
}

static void hold(struct ksub *b, uint64_t seq, const void *p, size_t n)
{
	if (b->n_held >= MAX_HELD) { /* the replay will be found short: the gap is given up */
		b->dropped_held++;
		return;
	}
	if (b->n_held == b->cap_held) {
		b->cap_held = b->cap_held ? b->cap_held * 2 : 64;
		b->held = plb_realloc(b->held, b->cap_held * sizeof *b->held);
	}
	struct held *h = &b->held[b->n_held++];
	h->seq = seq;
	h->n = n;
	h->p = plb_malloc(n ? n : 1);
	memcpy(h->p, p, n);
}

static void on_dealer(struct ksub *b);
static void replay_done(struct ksub *b);

/* Asks the replay socket for every batch from `from` on. */
static void ask_replay(struct ksub *b, uint64_t from)
{
	if (!b->rep[0]) { /* no replay endpoint: the gap can't be filled */
		replay_done(b);
		return;
	}
	if (!b->dealer.s) {
		void *d = zmq_socket(b->k->zctx, ZMQ_DEALER);
		int zero = 0;
		if (!d)
			goto fail;
		zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
		if (zmq_connect(d, b->rep) || zp_start(b, &b->dealer, d, on_dealer)) {
			fprintf(stderr, "prefixlb route: kv events: replay %s: %s\n", b->rep, zmq_strerror(zmq_errno()));
			if (b->dealer.s == NULL)
				zmq_close(d);
			goto fail;
		}
	}
	uint8_t sb[8];
	kvevents_put_seq(sb, from);
	/* [identity, "", seq] at the ROUTER: the DEALER sends the delimiter itself */
	if (zmq_send(b->dealer.s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 || zmq_send(b->dealer.s, sb, 8, ZMQ_DONTWAIT) < 0)
		goto fail;
	on_dealer(b); /* a send may leave it readable without a wake-up */
	return;
fail:
	replay_done(b);
}

/* The replay is over (ended, failed or timed out): offer the held batches. */
static void replay_done(struct ksub *b)
{
	struct kvsub *k = b->k;
	uint64_t now = now_ns(), from = 0;
	if (kvindex_replay_end(k->kx, b->ep, now, &from)) { /* restarted: its history first */
		ask_replay(b, from);
		return;
	}
	size_t i = 0;
	for (; i < b->n_held; i++) {
		enum kvseq v = kvindex_held(k->kx, b->ep, b->held[i].seq, now, &from);
		if (v == KVSEQ_APPLY) {
			apply_payload(b, b->held[i].p, b->held[i].n);
		} else if (v == KVSEQ_REPLAY || v == KVSEQ_HOLD) {
			break; /* still a gap: held again, and a replay asked below */
		}
		free(b->held[i].p);
	}
	if (i && i < b->n_held)
		memmove(b->held, b->held + i, (b->n_held - i) * sizeof *b->held);
	b->n_held -= i;
	if (b->n_held)
		ask_replay(b, from);
}

static void on_dealer(struct ksub *b)
{
	struct kvsub *k = b->k;
	for (int budget = BUDGET; budget > 0; budget--) {
		if (!zp_pending(&b->dealer)) {
			zp_hurry(&b->dealer, 0);
			return;
		}
		zmq_msg_t f[4];
		int n = recv_frames(b->dealer.s, f);
		uint64_t seq;
		if (n == 0) {
			zp_hurry(&b->dealer, 0);
			return;
		}
		if (n != 3 || zmq_msg_size(&f[0]) != 0 || kvevents_get_seq(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &seq)) {
			bad(b, "a replay message is not [\"\", seq, payload]");
		} else if (seq == KVEVENTS_REPLAY_END) {
			close_frames(f, n);
			replay_done(b);
			if (!b->dealer.s)
				return;
			continue;
		} else if (kvindex_replayed(k->kx, b->ep, seq, now_ns()) == KVSEQ_APPLY) {
			apply_payload(b, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
		}
		close_frames(f, n);
	}
	zp_hurry(&b->dealer, 1);
}

static void on_sub(struct ksub *b)
{
	struct kvsub *k = b->k;
	for (int budget = BUDGET; budget > 0; budget--) {
		if (!zp_pending(&b->sub)) {
			zp_hurry(&b->sub, 0);
			return;
		}
		zmq_msg_t f[4];
		int n = recv_frames(b->sub.s, f);
		uint64_t seq, from;
		if (n == 0) {
			zp_hurry(&b->sub, 0);
			return;
		}
		if (n != 3 || kvevents_get_seq(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &seq)) {
			bad(b, "not [topic, 8-byte seq, payload]");
		} else if (zmq_msg_size(&f[2]) > MAX_FRAME) {
			bad(b, "a payload over 64 MiB");
		} else {
			const void *p = zmq_msg_data(&f[2]);
			size_t len = zmq_msg_size(&f[2]);
			switch (kvindex_live(k->kx, b->ep, seq, now_ns(), &from)) {
			case KVSEQ_APPLY: apply_payload(b, p, len); break;
			case KVSEQ_HOLD: hold(b, seq, p, len); break;
			case KVSEQ_REPLAY:
				hold(b, seq, p, len);
				ask_replay(b, from);
				break;
			case KVSEQ_SKIP: break;
			}
		}
		close_frames(f, n);
	}
	zp_hurry(&b->sub, 1);
}

/* The monitor: [event (u16) + value (u32), endpoint]. */
static void on_mon(struct ksub *b)
{
	for (int budget = BUDGET; budget > 0; budget--) {
		if (!zp_pending(&b->mon)) {
			zp_hurry(&b->mon, 0);
			return;
		}
		zmq_msg_t f[4];
		int n = recv_frames(b->mon.s, f);
		if (n == 0)
			return;
		if (n >= 1 && zmq_msg_size(&f[0]) >= 2) {
			uint16_t ev;
			memcpy(&ev, zmq_msg_data(&f[0]), sizeof ev); /* host order, as libzmq writes it */
			uint64_t from;
			if (ev == ZMQ_EVENT_CONNECTED || ev == ZMQ_EVENT_DISCONNECTED) {
				int up = ev == ZMQ_EVENT_CONNECTED;
				if (kvindex_transport(b->k->kx, b->ep, up, now_ns(), &from))
					ask_replay(b, from);
			}
		}
		close_frames(f, n);
	}
	zp_hurry(&b->mon, 1);
}

static void sub_free_if_closed(struct ksub *b)
{
	if (b->closing && b->open_handles == 0) {
		struct kvsub *k = b->k;
		for (size_t i = 0; i < b->n_held; i++)
			free(b->held[i].p);
		free(b->held);
		free(b);
		k->open_handles--;
		if (k->closing && k->open_handles == 0)
			free(k);
	}
}

static void handle_closed(uv_handle_t *h)
{
	struct zpoll *z = h->data;
	struct ksub *b = z->owner;
	b->open_handles--;
	sub_free_if_closed(b);
}

static void sub_close(struct ksub *b)
{
	b->closing = 1;
	zp_stop(&b->dealer);
	zp_stop(&b->mon);
	zp_stop(&b->sub);
	if (b->ep >= 0) /* its slot is gone (lb detached it) or names another publisher now */
		kvindex_detach(b->k->kx, b->ep);
	sub_free_if_closed(b);
}

static struct ksub *sub_open(struct kvsub *k, int ep, const char *name, const char *model, const char *pub,
			     const char *rep)
{
	struct ksub *b = plb_calloc(1, sizeof *b);
	b->k = k;
	b->ep = ep;
	snprintf(b->name, sizeof b->name, "%s", name);
	snprintf(b->model, sizeof b->model, "%s", model ? model : "");
	snprintf(b->pub, sizeof b->pub, "%s", pub);
	snprintf(b->rep, sizeof b->rep, "%s", rep);
	k->open_handles++;
	uint64_t now = now_ns();
	kvindex_detach(k->kx, ep);
	kvindex_attach(k->kx, ep, model, now);
	void *s = zmq_socket(k->zctx, ZMQ_SUB);
	int zero = 0;
	char mon[64];
	snprintf(mon, sizeof mon, "inproc://prefixlb-kvmon-%u", k->mon_seq++);
	if (s) {
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
		zmq_setsockopt(s, ZMQ_SUBSCRIBE, k->topic, strlen(k->topic));
	}
	void *m = NULL;
	if (!s || zmq_socket_monitor(s, mon, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) ||
	    !(m = zmq_socket(k->zctx, ZMQ_PAIR)) || zmq_connect(m, mon) || zmq_connect(s, pub) ||
	    zp_start(b, &b->sub, s, on_sub) || zp_start(b, &b->mon, m, on_mon)) {
		fprintf(stderr, "prefixlb route: kv events: %s (%s): %s\n", name, pub, zmq_strerror(zmq_errno()));
		if (s && !b->sub.s)
			zmq_close(s);
		if (m && !b->mon.s)
			zmq_close(m);
		sub_close(b);
		return NULL;
	}
	fprintf(stderr, "prefixlb route: kv events of %s from %s%s%s\n", name, pub, rep[0] ? ", replay " : "", rep);
	/* what is already pending signals no edge: look now */
	on_mon(b);
	on_sub(b);
	return b;
}

/* ---- the set of subscriptions ---------------------------------------------------------- */

/* Subscriptions follow the live endpoints: new ones opened, gone or changed
 * ones closed; replays that ran too long given up. */
static void reconcile(struct kvsub *k)
{
	uint64_t now = now_ns();
	char pub[300], rep[300];
	/* first close what no longer matches (a reused slot is reattached below) */
	for (struct ksub **pp = &k->subs; *pp;) {
		struct ksub *b = *pp;
		const struct lb_endpoint *e = lb_endpoint(k->lb, b->ep);
		const char *model = lb_endpoint_model(k->lb, b->ep, 0);
		if (!e || e->removed || !model || strcmp(e->name, b->name) || endpoints_of(k, e->name, pub, rep, sizeof pub) ||
		    strcmp(b->pub, pub) || strcmp(b->rep, rep) || strcmp(b->model, model)) {
			*pp = b->next;
			sub_close(b);
			continue;
		}
		/* a safety net for an edge missed: pending messages are looked for */
		on_mon(b);
		on_sub(b);
		if (b->dealer.s)
			on_dealer(b);
		if (kvindex_replay_expired(k->kx, b->ep, now)) {
			/* late answers are told apart by their sequence numbers */
			fprintf(stderr, "prefixlb route: kv events of %s: replay timed out\n", b->name);
			replay_done(b);
		}
		pp = &b->next;
	}
	for (size_t ep = 0; ep < lb_count(k->lb); ep++) {
		const struct lb_endpoint *e = lb_endpoint(k->lb, (int)ep);
		/* the model seeds the block hashes: wait until it is known (pinned or discovered) */
		if (!e || e->removed || !lb_endpoint_model(k->lb, (int)ep, 0) || endpoints_of(k, e->name, pub, rep, sizeof pub))
			continue;
		struct ksub *b;
		for (b = k->subs; b && b->ep != (int)ep; b = b->next)
			;
		if (!b && (b = sub_open(k, (int)ep, e->name, lb_endpoint_model(k->lb, (int)ep, 0), pub, rep))) {
			b->next = k->subs;
			k->subs = b;
		}
	}
}

static void on_timer(uv_timer_t *t)
{
	reconcile(t->data);
}

static void set_specs(struct kvsub *k, const struct kvsub_cfg *c)
{
	for (size_t i = 0; i < k->n_specs; i++)
		free(k->specs[i]);
	free(k->specs);
	k->specs = c->n_specs ? plb_calloc(c->n_specs, sizeof *k->specs) : NULL;
	for (size_t i = 0; i < c->n_specs; i++)
		k->specs[i] = plb_strdup(c->specs[i]);
	k->n_specs = c->n_specs;
	snprintf(k->port, sizeof k->port, "%s", c->port ? c->port : "");
}

struct kvsub *kvsub_new(uv_loop_t *loop, struct lb *lb, const struct kvsub_cfg *c, char *err, size_t errlen)
{
	err[0] = '\0';
	if (kvsub_check(c, err, errlen) || (!c->n_specs && (!c->port || !c->port[0])))
		return NULL;
	struct kvsub *k = plb_calloc(1, sizeof *k);
	k->loop = loop;
	k->lb = lb;
	k->zctx = zmq_ctx_new();
	if (!k->zctx) {
		snprintf(err, errlen, "kv events: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
		free(k);
		return NULL;
	}
	struct kvindex_cfg kc;
	kvindex_cfg_default(&kc);
	kc.block_tokens = (size_t)c->block_tokens;
	kc.max_age_ns = (uint64_t)c->max_age_ms * 1000000ULL;
	kc.replay_timeout_ns = (uint64_t)c->replay_timeout_ms * 1000000ULL;
	kc.pending_ns = (uint64_t)c->pending_ms * 1000000ULL;
	kc.stale_requests = (uint32_t)c->stale_requests;
	k->kx = kvindex_new(&kc);
	kvevents_dec_init(&k->dec);
	snprintf(k->topic, sizeof k->topic, "%s", c->topic ? c->topic : "");
	set_specs(k, c);
	lb_set_kvindex(lb, k->kx);
	uv_timer_init(loop, &k->timer);
	k->timer.data = k;
	k->open_handles = 1;
	uv_timer_start(&k->timer, on_timer, 0, 200);
	return k;
}

void kvsub_reconfigure(struct kvsub *k, const struct kvsub_cfg *c)
{
	if (!k)
		return;
	set_specs(k, c);
	reconcile(k);
}

static void timer_closed(uv_handle_t *h)
{
	struct kvsub *k = h->data;
	if (--k->open_handles == 0)
		free(k);
}

void kvsub_close(struct kvsub *k)
{
	if (!k)
		return;
	lb_set_kvindex(k->lb, NULL);
	k->closing = 1;
	uv_timer_stop(&k->timer);
	while (k->subs) {
		struct ksub *b = k->subs;
		k->subs = b->next;
		b->ep = -1; /* the index goes below: nothing to detach */
		sub_close(b);
	}
	kvindex_free(k->kx);
	k->kx = NULL;
	kvevents_dec_free(&k->dec);
	for (size_t i = 0; i < k->n_specs; i++)
		free(k->specs[i]);
	free(k->specs);
	zmq_ctx_term(k->zctx); /* every socket is closed, with linger 0 */
	uv_close((uv_handle_t *)&k->timer, timer_closed);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void kvsub_metrics(struct kvsub *k, struct buf *b)
{
	if (!k)
		return;
	static const struct {
		const char *name, *type, *help;
	} m[] = {
		{"prefixlb_kv_events_batches_total", "counter", "KV event batches applied (live and replayed)."},
		{"prefixlb_kv_events_total", "counter", "KV events applied."},
		{"prefixlb_kv_events_blocks_stored_total", "counter", "Blocks announced stored (BlockStored)."},
		{"prefixlb_kv_events_blocks_removed_total", "counter", "Blocks announced removed (BlockRemoved)."},
		{"prefixlb_kv_events_cleared_total", "counter", "AllBlocksCleared received."},
		{"prefixlb_kv_events_gaps_total", "counter", "Sequence gaps seen on the live stream."},
		{"prefixlb_kv_events_replays_total", "counter", "Replays asked of the publisher."},
		{"prefixlb_kv_events_replayed_batches_total", "counter", "Batches received from replays."},
		{"prefixlb_kv_events_unrecovered_total", "counter", "Gaps no replay could fill (entries dropped)."},
		{"prefixlb_kv_events_restarts_total", "counter", "Publisher restarts seen (sequence went back; entries dropped)."},
		{"prefixlb_kv_events_replay_timeouts_total", "counter", "Replays that did not end in time."},
		{"prefixlb_kv_events_errors_total", "counter", "Messages that could not be decoded (dropped)."},
		{"prefixlb_kv_events_orphans_total", "counter", "Stored blocks whose parent was unknown (skipped)."},
		{"prefixlb_kv_events_ignored_total", "counter", "Events of other KV groups or tiers (skipped)."},
		{"prefixlb_kv_events_incompatible_total", "counter", "Events whose block size is not block-tokens (skipped)."},
		{"prefixlb_kv_events_connected", "gauge", "1 while the subscriber is connected to the publisher."},
		{"prefixlb_kv_events_stale", "gauge", "1 when the backend's events are stale: the approximate index is used."},
		{"prefixlb_kv_index_blocks", "gauge", "Engine blocks the precise index holds for the backend."},
		{"prefixlb_kv_index_lookups_total", "counter", "Routing lookups of the backend, by the index used."},
		{"prefixlb_kv_events_last_message_age_seconds", "gauge", "Seconds since the last message (-1: never)."},
	};
	uint64_t now = now_ns();
	for (size_t s = 0; s < sizeof m / sizeof *m; s++) {
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[s].name, m[s].help, m[s].name, m[s].type);
		for (struct ksub *x = k->subs; x; x = x->next) {
			struct kvindex_stats st;
			if (kvindex_stats(k->kx, x->ep, now, &st))
				continue;
			double v[] = {(double)st.batches, (double)st.events, (double)st.stored, (double)st.removed,
				      (double)st.cleared, (double)st.gaps, (double)st.replays, (double)st.replayed,
				      (double)st.unrecovered, (double)st.restarts, (double)st.replay_timeouts,
				      (double)st.bad_messages, (double)st.orphans, (double)st.ignored, (double)st.incompatible,
				      st.connected, !st.fresh, (double)st.blocks, 0,
				      st.last_message_at ? (double)(now - st.last_message_at) / 1e9 : -1};
			if (s == 18) {
				buf_printf(b, "%s{backend=\"%s\",index=\"precise\"} %llu\n", m[s].name, x->name,
					   (unsigned long long)st.lookups_precise);
				buf_printf(b, "%s{backend=\"%s\",index=\"approximate\"} %llu\n", m[s].name, x->name,
					   (unsigned long long)st.lookups_fallback);
			} else {
				buf_printf(b, "%s{backend=\"%s\"} %.17g\n", m[s].name, x->name, v[s]);
			}
		}
	}
}
