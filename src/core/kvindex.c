/* kvindex.c: the precise prefix index and its stream decisions; see kvindex.h.
 *
 * Two pindex instances hold (our block hash, backend) pairs: `precise` from
 * the events (no caps, no ageing: the engine says when a block goes) and
 * `pending` from the routing (short ttl). The engine-hash map is one
 * open-addressing table over all backends keyed by (engine hash, backend),
 * with backward-shift deletion; dropping a backend rebuilds it (rare:
 * restarts, clears, unrecoverable gaps). */
#include "kvindex.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"
#include "pindex.h"

struct emap_e {
	uint64_t eh, ours;
	int32_t ep; /* -1: empty */
	uint32_t refs;
};

struct be {
	int attached;
	uint64_t seed;
	size_t blocks;
	/* the stream */
	int have, replaying, initial, tries;
	int probe; /* a reconnection's replay from the last batch we have: does the publisher still have it? */
	uint64_t next, deadline;
	int connected, ever_connected;
	uint64_t conn_at;   /* when connected last changed (or attach) */
	uint32_t routed;    /* requests since the last message */
	uint64_t routed_at; /* the first of them */
	struct kvindex_stats st;
};

struct kvindex {
	struct kvindex_cfg c;
	struct pindex *precise, *pending;
	struct emap_e *em;
	size_t em_mask, em_used;
	struct be *be;
	size_t n_be;
	size_t *scratch_p, *scratch_q;
	size_t n_scratch;
};

void kvindex_cfg_default(struct kvindex_cfg *c)
{
	*c = (struct kvindex_cfg){
		.block_tokens = 16,
		.max_per_backend = 1u << 21,
		.max_age_ns = 5000000000ULL,
		.stale_requests = 8,
		.pending_ns = 2000000000ULL,
		.replay_timeout_ns = 2000000000ULL,
	};
}

struct kvindex *kvindex_new(const struct kvindex_cfg *c)
{
	struct kvindex *kx = plb_calloc(1, sizeof *kx);
	kx->c = *c;
	struct pindex_cfg pc = {0, 0, 0};
	kx->precise = pindex_new(&pc);
	struct pindex_cfg qc = {0, 1u << 20, c->pending_ns ? c->pending_ns : 1};
	kx->pending = pindex_new(&qc);
	kx->em_mask = 1023;
	kx->em = plb_malloc((kx->em_mask + 1) * sizeof *kx->em);
	for (size_t i = 0; i <= kx->em_mask; i++)
		kx->em[i].ep = -1;
	return kx;
}

void kvindex_free(struct kvindex *kx)
{
	if (!kx)
		return;
	pindex_free(kx->precise);
	pindex_free(kx->pending);
	free(kx->em);
	free(kx->be);
	free(kx->scratch_p);
	free(kx->scratch_q);
	free(kx);
}

const struct kvindex_cfg *kvindex_get_cfg(const struct kvindex *kx)
{
	return &kx->c;
}

/* ---- the engine-hash map ---------------------------------------------------- */

static size_t em_home(const struct kvindex *kx, uint64_t eh, int ep)
{
	uint64_t k = eh ^ ((uint64_t)(uint32_t)ep * 0x9E3779B97F4A7C15ULL);
	return (size_t)(k ^ (k >> 29)) & kx->em_mask;
}

static struct emap_e *em_find(struct kvindex *kx, uint64_t eh, int ep)
{
	for (size_t i = em_home(kx, eh, ep);; i = (i + 1) & kx->em_mask) {
		struct emap_e *e = &kx->em[i];
		if (e->ep < 0)
			return NULL;
		if (e->eh == eh && e->ep == ep)
			return e;
	}
}

static void em_put_raw(struct kvindex *kx, const struct emap_e *v)
{
	size_t i = em_home(kx, v->eh, v->ep);
	while (kx->em[i].ep >= 0)
		i = (i + 1) & kx->em_mask;
	kx->em[i] = *v;
	kx->em_used++;
}

/* Rebuilds the table at a size for its entries, leaving out drop_ep's. */
static void em_rebuild(struct kvindex *kx, int drop_ep)
{
	struct emap_e *old = kx->em;
	size_t old_n = kx->em_mask + 1, live = 0;
	for (size_t i = 0; i < old_n; i++)
		live += old[i].ep >= 0 && old[i].ep != drop_ep;
	size_t cap = 1024;
	while (cap < live * 2 + 2)
		cap *= 2;
	kx->em_mask = cap - 1;
	kx->em = plb_malloc(cap * sizeof *kx->em);
	for (size_t i = 0; i < cap; i++)
		kx->em[i].ep = -1;
	kx->em_used = 0;
	for (size_t i = 0; i < old_n; i++)
		if (old[i].ep >= 0 && old[i].ep != drop_ep)
			em_put_raw(kx, &old[i]);
	free(old);
}

static void em_put(struct kvindex *kx, const struct emap_e *v)
{
	if ((kx->em_used + 1) * 2 > kx->em_mask + 1)
		em_rebuild(kx, -1);
	em_put_raw(kx, v);
}

static void em_del(struct kvindex *kx, struct emap_e *e)
{
	size_t i = (size_t)(e - kx->em), j = i;
	kx->em_used--;
	for (;;) {
		kx->em[i].ep = -1;
		for (;;) {
			j = (j + 1) & kx->em_mask;
			if (kx->em[j].ep < 0)
				return;
			size_t k = em_home(kx, kx->em[j].eh, kx->em[j].ep);
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		kx->em[i] = kx->em[j];
		i = j;
	}
}

/* ---- backends ------------------------------------------------------------------ */

static struct be *be_get(struct kvindex *kx, int ep)
{
	if (ep < 0)
		return NULL;
	if ((size_t)ep >= kx->n_be) {
		size_t n = (size_t)ep + 1;
		kx->be = plb_realloc(kx->be, n * sizeof *kx->be);
		memset(kx->be + kx->n_be, 0, (n - kx->n_be) * sizeof *kx->be);
		kx->n_be = n;
	}
	return &kx->be[ep];
}

static const struct be *be_at(const struct kvindex *kx, int ep)
{
	return ep >= 0 && (size_t)ep < kx->n_be && kx->be[ep].attached ? &kx->be[ep] : NULL;
}

/* Drops what ep holds (not its stream state). */
static void drop_entries(struct kvindex *kx, int ep)
{
	struct be *b = &kx->be[ep];
	if (b->blocks)
		em_rebuild(kx, ep);
	b->blocks = 0;
	pindex_clear_backend(kx->precise, ep);
	pindex_clear_backend(kx->pending, ep);
}

static uint64_t model_seed(const char *model)
{
	return model ? XXH3_64bits(model, strlen(model)) : 0;
}

void kvindex_attach(struct kvindex *kx, int ep, const char *model, uint64_t now)
{
	struct be *b = be_get(kx, ep);
	if (!b)
		return;
	uint64_t seed = model_seed(model);
	if (b->attached && b->seed == seed)
		return;
	if (b->attached)
		drop_entries(kx, ep);
	memset(b, 0, sizeof *b);
	b->attached = 1;
	b->seed = seed;
	b->conn_at = now;
}

void kvindex_detach(struct kvindex *kx, int ep)
{
	if (!be_at(kx, ep))
		return;
	drop_entries(kx, ep);
	memset(&kx->be[ep], 0, sizeof kx->be[ep]);
}

int kvindex_attached(const struct kvindex *kx, int ep)
{
	return be_at(kx, ep) != NULL;
}

/* ---- the stream -------------------------------------------------------------- */

static enum kvseq start_replay(struct kvindex *kx, struct be *b, uint64_t from, int initial, uint64_t now,
			       uint64_t *out)
{
	b->replaying = 1;
	b->initial = initial;
	b->next = from;
	b->deadline = now + kx->c.replay_timeout_ns;
	b->tries++;
	b->st.replays++;
	*out = from;
	return KVSEQ_REPLAY;
}

static void heard(struct be *b, uint64_t now)
{
	b->routed = 0;
	b->st.last_message_at = now ? now : 1;
}

static enum kvseq live(struct kvindex *kx, int ep, uint64_t seq, uint64_t now, uint64_t *from, int held)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be && kx->be[ep].attached ? &kx->be[ep] : NULL;
	if (!b)
		return KVSEQ_SKIP;
	heard(b, now);
	if (b->replaying)
		return KVSEQ_HOLD;
	if (!b->have) { /* the first message: learn what came before it */
		b->have = 1;
		if (seq == 0) {
			b->next = 1;
			return KVSEQ_APPLY;
		}
		return start_replay(kx, b, 0, 1, now, from);
	}
	if (seq == b->next) {
		b->next++;
		b->tries = 0;
		return KVSEQ_APPLY;
	}
	if (seq < b->next && held)
		return KVSEQ_SKIP;
	if (seq < b->next) { /* backwards: the publisher restarted, with an empty cache */
		b->st.restarts++;
		drop_entries(kx, ep);
		b->tries = 0;
		if (seq == 0) {
			b->next = 1;
			return KVSEQ_APPLY;
		}
		return start_replay(kx, b, 0, 1, now, from);
	}
	b->st.gaps++;
	if (b->tries < 2)
		return start_replay(kx, b, b->next, 0, now, from);
	/* replayed twice and still missing: the engine no longer has them */
	b->st.unrecovered++;
	drop_entries(kx, ep);
	b->next = seq + 1;
	b->tries = 0;
	return KVSEQ_APPLY;
}

enum kvseq kvindex_live(struct kvindex *kx, int ep, uint64_t seq, uint64_t now, uint64_t *from)
{
	return live(kx, ep, seq, now, from, 0);
}

enum kvseq kvindex_held(struct kvindex *kx, int ep, uint64_t seq, uint64_t now, uint64_t *from)
{
	return live(kx, ep, seq, now, from, 1);
}

enum kvseq kvindex_replayed(struct kvindex *kx, int ep, uint64_t seq, uint64_t now)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be && kx->be[ep].attached ? &kx->be[ep] : NULL;
	if (b && b->replaying && b->probe && seq + 1 == b->next) {
		b->probe = 0; /* the same publisher: what follows is what we missed */
		heard(b, now);
		return KVSEQ_SKIP;
	}
	if (!b || !b->replaying || seq < b->next)
		return KVSEQ_SKIP;
	heard(b, now);
	b->probe = 0;
	b->have = 1;
	if (seq > b->next) {
		if (!b->initial) { /* past the engine's buffer: what was lost is lost */
			b->st.unrecovered++;
			drop_entries(kx, ep);
		}
		b->initial = 0;
	}
	b->next = seq + 1;
	b->st.replayed++;
	return KVSEQ_APPLY;
}

int kvindex_replay_end(struct kvindex *kx, int ep, uint64_t now, uint64_t *from)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be ? &kx->be[ep] : NULL;
	if (!b || !b->attached)
		return 0;
	b->replaying = 0;
	if (b->probe) { /* it no longer has our last batch: a new publisher, a new cache */
		b->probe = 0;
		b->st.restarts++;
		drop_entries(kx, ep);
		b->tries = 0;
		start_replay(kx, b, 0, 1, now, from);
		return 1;
	}
	return 0;
}

int kvindex_replay_expired(struct kvindex *kx, int ep, uint64_t now)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be ? &kx->be[ep] : NULL;
	if (!b || !b->attached || !b->replaying || now < b->deadline)
		return 0;
	b->replaying = 0;
	b->probe = 0;
	b->st.replay_timeouts++;
	return 1;
}

int kvindex_transport(struct kvindex *kx, int ep, int connected, uint64_t now, uint64_t *from)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be ? &kx->be[ep] : NULL;
	if (!b || !b->attached || b->connected == (connected != 0))
		return 0;
	b->connected = connected != 0;
	b->conn_at = now;
	if (!connected || b->replaying)
		return 0;
	b->ever_connected = 1;
	if (!b->have) { /* what was stored before we listened */
		b->have = 1;
		start_replay(kx, b, 0, 1, now, from);
		return 1;
	}
	/* what we missed while away, from the last batch we have: if the
	 * publisher no longer has it, it restarted (kvindex_replay_end) */
	b->tries = 0;
	if (!b->next) {
		start_replay(kx, b, 0, 1, now, from);
		return 1;
	}
	start_replay(kx, b, b->next - 1, 0, now, from);
	b->next++; /* start_replay set next to from; the probe's batch is next - 1 */
	b->probe = 1;
	return 1;
}

void kvindex_bad_message(struct kvindex *kx, int ep)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be ? &kx->be[ep] : NULL;
	if (b && b->attached)
		b->st.bad_messages++;
}

/* ---- applying events ------------------------------------------------------------ */

static int is(struct kv_str s, const char *v)
{
	return s.n == strlen(v) && !memcmp(s.p, v, s.n);
}

static void stored(struct kvindex *kx, int ep, struct be *b, const struct kv_event *e)
{
	if (e->group_idx > 0 || (e->spec_kind.p && !is(e->spec_kind, "full_attention")) ||
	    (e->medium.p && !is(e->medium, "GPU"))) {
		b->st.ignored++;
		return;
	}
	if (e->block_size != kx->c.block_tokens) {
		b->st.incompatible++;
		return;
	}
	uint64_t parent;
	if (e->has_parent) {
		struct emap_e *pe = em_find(kx, e->parent, ep);
		if (!pe) {
			b->st.orphans += e->n_hashes;
			return;
		}
		parent = pe->ours;
	} else {
		parent = pindex_chain_root(e->lora_name.p ? XXH3_64bits(e->lora_name.p, e->lora_name.n) : b->seed);
	}
	for (size_t k = 0; k < e->n_hashes; k++) {
		uint64_t ours = pindex_chain_next(parent, e->tokens + k * e->block_size, e->block_size);
		struct emap_e *m = em_find(kx, e->hashes[k], ep);
		if (m) {
			m->refs++;
			if (m->ours != ours) { /* the engine reused a hash for other tokens */
				pindex_remove(kx->precise, ep, &m->ours, 1);
				m->ours = ours;
			}
		} else {
			struct emap_e v = {e->hashes[k], ours, ep, 1};
			em_put(kx, &v);
			b->blocks++;
		}
		pindex_insert(kx->precise, ep, &ours, 1, 0);
		parent = ours;
		b->st.stored++;
	}
}

static void removed(struct kvindex *kx, int ep, struct be *b, const struct kv_event *e)
{
	if (e->group_idx > 0 || (e->medium.p && !is(e->medium, "GPU"))) {
		b->st.ignored++;
		return;
	}
	for (size_t k = 0; k < e->n_hashes; k++) {
		struct emap_e *m = em_find(kx, e->hashes[k], ep);
		b->st.removed++;
		if (!m || --m->refs > 0)
			continue;
		pindex_remove(kx->precise, ep, &m->ours, 1);
		em_del(kx, m);
		b->blocks--;
	}
}

void kvindex_apply(struct kvindex *kx, int ep, const struct kv_batch *bt, uint64_t now)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be && kx->be[ep].attached ? &kx->be[ep] : NULL;
	if (!b)
		return;
	heard(b, now);
	b->st.batches++;
	for (size_t i = 0; i < bt->n_events; i++) {
		const struct kv_event *e = &bt->events[i];
		b->st.events++;
		switch (e->type) {
		case KV_BLOCK_STORED: stored(kx, ep, b, e); break;
		case KV_BLOCK_REMOVED: removed(kx, ep, b, e); break;
		case KV_ALL_CLEARED:
			b->st.cleared++;
			drop_entries(kx, ep);
			break;
		}
		if (b->blocks > kx->c.max_per_backend) { /* more than any cache: removals were missed */
			b->st.overflows++;
			drop_entries(kx, ep);
		}
	}
}

/* ---- the routing side ------------------------------------------------------------ */

void kvindex_note_request(struct kvindex *kx, int ep, uint32_t prompt_tokens, uint64_t now)
{
	struct be *b = ep >= 0 && (size_t)ep < kx->n_be && kx->be[ep].attached ? &kx->be[ep] : NULL;
	if (!b || prompt_tokens < kx->c.block_tokens)
		return;
	if (!b->routed++)
		b->routed_at = now;
}

void kvindex_note_routed(struct kvindex *kx, int ep, const uint64_t *h, size_t n, uint64_t now)
{
	if (kx->c.pending_ns && be_at(kx, ep))
		pindex_insert(kx->pending, ep, h, n, now);
}

int kvindex_fresh(const struct kvindex *kx, int ep, uint64_t now)
{
	const struct be *b = be_at(kx, ep);
	if (!b)
		return 0;
	if (!b->connected && now - b->conn_at >= kx->c.max_age_ns)
		return 0;
	if (b->routed >= kx->c.stale_requests && now - b->routed_at >= kx->c.max_age_ns)
		return 0;
	return 1;
}

static void visit_p(void *ctx, int ep, size_t blocks)
{
	struct kvindex *kx = ctx;
	if ((size_t)ep < kx->n_scratch)
		kx->scratch_p[ep] = blocks;
}

static void visit_q(void *ctx, int ep, size_t blocks)
{
	struct kvindex *kx = ctx;
	if ((size_t)ep < kx->n_scratch)
		kx->scratch_q[ep] = blocks;
}

size_t kvindex_match(struct kvindex *kx, const uint64_t *h, size_t n, uint64_t now,
		     void (*visit)(void *ctx, int ep, size_t blocks), void *ctx)
{
	if (kx->n_scratch < kx->n_be) {
		kx->scratch_p = plb_realloc(kx->scratch_p, kx->n_be * sizeof *kx->scratch_p);
		kx->scratch_q = plb_realloc(kx->scratch_q, kx->n_be * sizeof *kx->scratch_q);
		kx->n_scratch = kx->n_be;
	}
	memset(kx->scratch_p, 0, kx->n_scratch * sizeof *kx->scratch_p);
	memset(kx->scratch_q, 0, kx->n_scratch * sizeof *kx->scratch_q);
	pindex_match(kx->precise, h, n, now, visit_p, kx);
	if (kx->c.pending_ns)
		pindex_match(kx->pending, h, n, now, visit_q, kx);
	size_t visited = 0;
	for (size_t ep = 0; ep < kx->n_be; ep++) {
		struct be *b = &kx->be[ep];
		if (!b->attached)
			continue;
		if (!kvindex_fresh(kx, (int)ep, now)) {
			b->st.lookups_fallback++;
			continue;
		}
		b->st.lookups_precise++;
		size_t m = kx->scratch_p[ep] > kx->scratch_q[ep] ? kx->scratch_p[ep] : kx->scratch_q[ep];
		visit(ctx, (int)ep, m);
		visited++;
	}
	return visited;
}

int kvindex_stats(const struct kvindex *kx, int ep, uint64_t now, struct kvindex_stats *st)
{
	const struct be *b = be_at(kx, ep);
	if (!b)
		return -1;
	*st = b->st;
	st->connected = b->connected;
	st->replaying = b->replaying;
	st->blocks = b->blocks;
	st->fresh = kvindex_fresh(kx, ep, now);
	return 0;
}
