/* simkv.c: KV events in the lab; see simkv.h. Batches are deep copies in a
 * FIFO: every batch waits the same delay and engines are advanced in time
 * order, so arrival times only grow. */
#include "simkv.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

struct qbatch {
	uint64_t at;
	int r;
	uint32_t gen; /* the replica's life it came from */
	struct kv_event *ev;
	size_t n;
	uint64_t *h;
	uint32_t *t;
};

struct rep {
	struct simkv *k;
	int r, ep;
	uint32_t gen;
	const struct engine *e;
};

struct simkv {
	uint64_t delay;
	struct kvindex *kx;
	struct rep *reps;
	int n_reps;
	struct qbatch *q;
	size_t head, len, cap;
};

struct simkv *simkv_new(uint64_t delay_ns, const struct kvindex_cfg *c, int replicas)
{
	struct simkv *k = plb_calloc(1, sizeof *k);
	k->delay = delay_ns;
	k->kx = kvindex_new(c);
	k->n_reps = replicas;
	k->reps = plb_calloc((size_t)replicas, sizeof *k->reps);
	for (int r = 0; r < replicas; r++)
		k->reps[r] = (struct rep){k, r, -1, 0, NULL};
	return k;
}

static void qfree(struct qbatch *b)
{
	free(b->ev);
	free(b->h);
	free(b->t);
}

void simkv_free(struct simkv *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->len; i++)
		qfree(&k->q[(k->head + i) % k->cap]);
	free(k->q);
	free(k->reps);
	kvindex_free(k->kx);
	free(k);
}

struct kvindex *simkv_index(struct simkv *k)
{
	return k->kx;
}

static void on_kv(void *ctx, uint64_t now, const struct kv_event *ev, size_t n)
{
	struct rep *p = ctx;
	struct simkv *k = p->k;
	if (k->len == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 256;
		struct qbatch *q = plb_malloc(cap * sizeof *q);
		for (size_t i = 0; i < k->len; i++)
			q[i] = k->q[(k->head + i) % k->cap];
		free(k->q);
		k->q = q;
		k->cap = cap;
		k->head = 0;
	}
	struct qbatch *b = &k->q[(k->head + k->len++) % k->cap];
	size_t nh = 0, nt = 0;
	for (size_t i = 0; i < n; i++) {
		nh += ev[i].n_hashes;
		nt += ev[i].n_tokens;
	}
	*b = (struct qbatch){now + k->delay, p->r, p->gen, plb_malloc(n * sizeof *b->ev), n,
			     plb_malloc((nh ? nh : 1) * sizeof *b->h), plb_malloc((nt ? nt : 1) * sizeof *b->t)};
	nh = nt = 0;
	for (size_t i = 0; i < n; i++) {
		b->ev[i] = ev[i];
		memcpy(b->h + nh, ev[i].hashes, ev[i].n_hashes * sizeof *b->h);
		b->ev[i].hashes = b->h + nh;
		nh += ev[i].n_hashes;
		if (ev[i].n_tokens)
			memcpy(b->t + nt, ev[i].tokens, ev[i].n_tokens * sizeof *b->t);
		b->ev[i].tokens = b->t + nt;
		nt += ev[i].n_tokens;
		/* the engine's strings are its constants ("GPU", "full_attention") */
	}
}

void simkv_join(struct simkv *k, struct engine *e, int r, int ep, uint64_t now)
{
	if (r < 0 || r >= k->n_reps)
		return;
	struct rep *p = &k->reps[r];
	if (p->e == e && p->ep == ep && kvindex_attached(k->kx, ep))
		return; /* the same engine in the next pass's router: it keeps what it knows */
	if (p->ep >= 0)
		kvindex_detach(k->kx, p->ep);
	p->ep = ep;
	p->e = e;
	kvindex_detach(k->kx, ep);
	kvindex_attach(k->kx, ep, NULL, now);
	uint64_t from;
	if (kvindex_transport(k->kx, ep, 1, now, &from))
		kvindex_replay_end(k->kx, ep, now, &from); /* a new engine has no history */
	engine_set_kv_events(e, on_kv, p);
}

void simkv_leave(struct simkv *k, int r)
{
	if (r < 0 || r >= k->n_reps)
		return;
	struct rep *p = &k->reps[r];
	if (p->ep >= 0)
		kvindex_detach(k->kx, p->ep);
	p->ep = -1;
	p->e = NULL;
	p->gen++;
}

uint64_t simkv_next(const struct simkv *k)
{
	return k->len ? k->q[k->head].at : UINT64_MAX;
}

void simkv_deliver(struct simkv *k, uint64_t now)
{
	while (k->len && k->q[k->head].at <= now) {
		struct qbatch *b = &k->q[k->head];
		const struct rep *p = &k->reps[b->r];
		if (p->ep >= 0 && p->gen == b->gen) {
			struct kv_batch kb = {.ts = (double)b->at / 1e9, .events = b->ev, .n_events = b->n};
			kvindex_apply(k->kx, p->ep, &kb, b->at);
		}
		qfree(b);
		k->head = (k->head + 1) % k->cap;
		k->len--;
	}
}
