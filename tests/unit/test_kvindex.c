/* test_kvindex.c: the precise index (src/core/kvindex.c): a real simulated
 * engine's events make the index predict the engine's prefix hits with the
 * router's own hashes; sequence decisions (gaps, replays, restarts, the first
 * message); freshness; pending routing; clears and odd events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/engine.h"
#include "core/kvindex.h"
#include "core/pindex.h"
#include "core/rng.h"

#include <xxhash.h>

#define MS 1000000ULL
#define S (1000 * MS)

static const uint32_t filler[] = {279, 315, 323, 264, 304};

static struct kvindex *new_index(void)
{
	struct kvindex_cfg c;
	kvindex_cfg_default(&c);
	c.pending_ns = 0;
	return kvindex_new(&c);
}

struct got {
	size_t m[8];
	int seen[8];
};

static void visit(void *ctx, int ep, size_t blocks)
{
	struct got *g = ctx;
	g->m[ep] = blocks;
	g->seen[ep] = 1;
}

static size_t match_ep(struct kvindex *kx, const uint64_t *h, size_t n, uint64_t now, int ep)
{
	struct got g;
	memset(&g, 0, sizeof g);
	kvindex_match(kx, h, n, now, visit, &g);
	return g.seen[ep] ? g.m[ep] : (size_t)-1;
}

struct feed {
	struct kvindex *kx;
	int ep;
	uint64_t seq;
};

static void on_kv(void *ctx, uint64_t now, const struct kv_event *ev, size_t n)
{
	struct feed *f = ctx;
	uint64_t from;
	struct kv_batch b = {.ts = 0, .events = ev, .n_events = n};
	assert_int_equal(kvindex_live(f->kx, f->ep, f->seq++, now, &from), KVSEQ_APPLY);
	kvindex_apply(f->kx, f->ep, &b, now);
}

static void on_tok(void *ctx, const struct engine_event *ev)
{
	int *first = ctx;
	if (ev->index == 0)
		first[0] = (int)ev->cached_tokens, first[1] = 1;
}

/* The index knows exactly what the engine caches, in the router's hashes. */
static void test_engine_fidelity(void **state)
{
	(void)state;
	struct engine_profile p = *engine_profile_find("l4-llama3.1-8b");
	p.kv_capacity_tokens = 80 * 16; /* evictions */
	struct engine *e = engine_new(&p, filler, 5);
	struct kvindex *kx = new_index();
	kvindex_attach(kx, 2, "m", 0);
	uint64_t from;
	assert_int_equal(kvindex_transport(kx, 2, 1, 0, &from), 1); /* the first connection asks history */
	kvindex_replay_end(kx, 2, 0, &from);
	struct feed f = {kx, 2, 0};
	engine_set_kv_events(e, on_kv, &f);
	struct rng g;
	rng_seed(&g, 11);
	uint32_t base[3][700];
	for (int b = 0; b < 3; b++)
		for (int i = 0; i < 700; i++)
			base[b][i] = (uint32_t)(b * 5000 + i);
	uint64_t now = 0;
	const char *model = "m";
	int hits = 0;
	for (int it = 0; it < 150; it++) {
		uint32_t prompt[700];
		size_t n = 16 + rng_next(&g) % 600;
		memcpy(prompt, base[rng_next(&g) % 3], n * 4);
		if (rng_next(&g) % 4 == 0)
			prompt[rng_next(&g) % n] = 3;
		uint64_t h[64];
		/* the router seeds with its model name: as lb__hash_blocks */
		size_t nh = pindex_hash_tokens(prompt, n, 16, XXH3_64bits(model, 1), h, 64);
		size_t pred = match_ep(kx, h, nh, now, 2);
		assert_true(pred != (size_t)-1);
		if (pred && pred * 16 == n)
			pred--;
		uint64_t id;
		assert_int_equal(engine_add(e, now, prompt, n, 1 + (uint32_t)(rng_next(&g) % 30), NULL, &id), 0);
		int first[2] = {0, 0};
		uint64_t t;
		while ((t = engine_next_event(e)) != UINT64_MAX) {
			engine_advance(e, t, on_tok, first);
			now = t;
		}
		assert_true(first[1]);
		assert_int_equal((size_t)first[0], pred * 16);
		hits += pred > 0;
	}
	assert_true(hits > 40);
	struct kvindex_stats st;
	assert_int_equal(kvindex_stats(kx, 2, now, &st), 0);
	assert_true(st.removed > 0 && st.blocks > 0 && st.blocks <= 80);
	assert_int_equal(st.orphans, 0);
	/* reset: AllBlocksCleared empties it */
	assert_int_equal(engine_reset_prefix_cache(e, now), 0);
	assert_int_equal(kvindex_stats(kx, 2, now, &st), 0);
	assert_int_equal(st.blocks, 0);
	assert_int_equal(st.cleared, 1);
	engine_free(e);
	kvindex_free(kx);
}

/* A batch storing n blocks of 16 tokens (engine hashes base+i, chained). */
static struct kv_batch stored_batch(struct kv_event *ev, uint64_t *hs, uint32_t *toks, uint64_t base, size_t n,
				    int parent)
{
	for (size_t i = 0; i < n; i++)
		hs[i] = base + i;
	for (size_t i = 0; i < n * 16; i++)
		toks[i] = (uint32_t)(base * 16 + i);
	*ev = (struct kv_event){.type = KV_BLOCK_STORED, .hashes = hs, .n_hashes = n, .tokens = toks,
				.n_tokens = n * 16, .block_size = 16, .group_idx = -1,
				.has_parent = parent >= 0, .parent = (uint64_t)parent};
	return (struct kv_batch){.events = ev, .n_events = 1};
}

static size_t blocks_of(struct kvindex *kx, int ep)
{
	struct kvindex_stats st;
	assert_int_equal(kvindex_stats(kx, ep, 0, &st), 0);
	return st.blocks;
}

static void test_sequences(void **state)
{
	(void)state;
	struct kvindex *kx = new_index();
	struct kv_event ev;
	uint64_t hs[8], from = 99;
	uint32_t toks[128];
	kvindex_attach(kx, 0, NULL, 0);
	kvindex_transport(kx, 0, 1, 0, &from);
	kvindex_replay_end(kx, 0, 0, &from); /* nothing before */
	struct kv_batch b = stored_batch(&ev, hs, toks, 100, 4, -1);
	assert_int_equal(kvindex_live(kx, 0, 0, 1, &from), KVSEQ_APPLY);
	kvindex_apply(kx, 0, &b, 1);
	assert_int_equal(blocks_of(kx, 0), 4);
	/* a gap: 1 is missing */
	assert_int_equal(kvindex_live(kx, 0, 2, 2, &from), KVSEQ_REPLAY);
	assert_int_equal(from, 1);
	assert_int_equal(kvindex_live(kx, 0, 3, 2, &from), KVSEQ_HOLD);
	assert_int_equal(kvindex_replayed(kx, 0, 0, 3), KVSEQ_SKIP); /* already had it */
	assert_int_equal(kvindex_replayed(kx, 0, 1, 3), KVSEQ_APPLY);
	assert_int_equal(kvindex_replayed(kx, 0, 2, 3), KVSEQ_APPLY);
	kvindex_replay_end(kx, 0, 3, &from);
	/* the held ones come back: 2 was replayed, 3 follows */
	assert_int_equal(kvindex_held(kx, 0, 3, 4, &from), KVSEQ_APPLY);
	struct kvindex_stats st;
	kvindex_stats(kx, 0, 4, &st);
	assert_int_equal(st.gaps, 1);
	assert_int_equal(st.replays, 2); /* the first connection's, and this one */
	assert_int_equal(st.replayed, 2);
	kvindex_free(kx);

	/* held messages after a replay, in order */
	kx = new_index();
	kvindex_attach(kx, 1, NULL, 0);
	assert_int_equal(kvindex_live(kx, 1, 0, 1, &from), KVSEQ_APPLY);
	kvindex_apply(kx, 1, &b, 1);
	assert_int_equal(kvindex_live(kx, 1, 3, 2, &from), KVSEQ_REPLAY);
	assert_int_equal(from, 1);
	assert_int_equal(kvindex_replayed(kx, 1, 1, 2), KVSEQ_APPLY);
	assert_int_equal(kvindex_replayed(kx, 1, 2, 2), KVSEQ_APPLY);
	kvindex_replay_end(kx, 1, 2, &from);
	assert_int_equal(kvindex_held(kx, 1, 3, 2, &from), KVSEQ_APPLY);
	assert_int_equal(blocks_of(kx, 1), 4);
	/* unrecoverable: replays that never bring 5 (the buffer is past it) */
	assert_int_equal(kvindex_live(kx, 1, 6, 3, &from), KVSEQ_REPLAY);
	assert_int_equal(from, 4);
	assert_int_equal(kvindex_replayed(kx, 1, 4, 3), KVSEQ_APPLY);
	kvindex_replay_end(kx, 1, 3, &from);
	assert_int_equal(kvindex_live(kx, 1, 6, 3, &from), KVSEQ_REPLAY); /* second try */
	kvindex_replay_end(kx, 1, 3, &from);
	assert_int_equal(kvindex_live(kx, 1, 6, 3, &from), KVSEQ_APPLY); /* given up: dropped, go on */
	kvindex_stats(kx, 1, 3, &st);
	assert_int_equal(st.unrecovered, 1);
	assert_int_equal(st.blocks, 0);
	/* a replay that skips numbers (the buffer no longer has them): dropped too */
	kvindex_apply(kx, 1, &b, 3);
	assert_int_equal(kvindex_live(kx, 1, 9, 4, &from), KVSEQ_REPLAY);
	assert_int_equal(from, 7);
	assert_int_equal(kvindex_replayed(kx, 1, 8, 4), KVSEQ_APPLY);
	kvindex_stats(kx, 1, 4, &st);
	assert_int_equal(st.unrecovered, 2);
	assert_int_equal(st.blocks, 0);
	kvindex_replay_end(kx, 1, 4, &from);
	/* restart: seq goes back to 0 */
	kvindex_apply(kx, 1, &b, 5);
	assert_int_equal(kvindex_live(kx, 1, 9, 5, &from), KVSEQ_APPLY);
	assert_int_equal(blocks_of(kx, 1), 4);
	assert_int_equal(kvindex_live(kx, 1, 0, 6, &from), KVSEQ_APPLY);
	kvindex_stats(kx, 1, 6, &st);
	assert_int_equal(st.restarts, 1);
	assert_int_equal(st.blocks, 0);
	/* a restart seen late (back to 1: 0 was missed): its history is replayed */
	assert_int_equal(kvindex_live(kx, 1, 1, 7, &from), KVSEQ_APPLY);
	assert_int_equal(kvindex_live(kx, 1, 1, 8, &from), KVSEQ_REPLAY);
	assert_int_equal(from, 0);
	kvindex_free(kx);

	/* the first message is not 0: ask for the history; a replay that times out */
	kx = new_index();
	kvindex_attach(kx, 0, NULL, 0);
	assert_int_equal(kvindex_live(kx, 0, 500, 1, &from), KVSEQ_REPLAY);
	assert_int_equal(from, 0);
	assert_int_equal(kvindex_replayed(kx, 0, 300, 2), KVSEQ_APPLY); /* the buffer starts at 300: fine */
	kvindex_stats(kx, 0, 2, &st);
	assert_int_equal(st.unrecovered, 0);
	assert_int_equal(kvindex_replay_expired(kx, 0, 3), 0);
	assert_int_equal(kvindex_replay_expired(kx, 0, 3 * S), 1);
	assert_int_equal(kvindex_live(kx, 0, 500, 3 * S, &from), KVSEQ_REPLAY); /* 301..499 missing: try again */
	kvindex_free(kx);
}

static void test_freshness_and_pending(void **state)
{
	(void)state;
	struct kvindex_cfg c;
	kvindex_cfg_default(&c);
	c.max_age_ns = 1 * S;
	c.stale_requests = 3;
	c.pending_ns = 2 * S;
	struct kvindex *kx = kvindex_new(&c);
	uint64_t from, h[4] = {1, 2, 3, 4};
	kvindex_attach(kx, 0, NULL, 0);
	kvindex_attach(kx, 1, NULL, 0);
	assert_true(kvindex_fresh(kx, 0, 0));
	assert_false(kvindex_fresh(kx, 0, 1 * S)); /* never connected */
	kvindex_transport(kx, 0, 1, 1 * S, &from);
	kvindex_replay_end(kx, 0, 1 * S, &from);
	assert_true(kvindex_fresh(kx, 0, 5 * S));
	assert_false(kvindex_fresh(kx, 5, 5 * S)); /* not attached */
	/* silence under load */
	kvindex_note_request(kx, 0, 100, 5 * S);
	kvindex_note_request(kx, 0, 100, 5 * S);
	kvindex_note_request(kx, 0, 4, 5 * S); /* under a block: doesn't count */
	assert_true(kvindex_fresh(kx, 0, 7 * S));
	kvindex_note_request(kx, 0, 100, 6 * S);
	assert_true(kvindex_fresh(kx, 0, 5 * S + S / 2));
	assert_false(kvindex_fresh(kx, 0, 6 * S));
	assert_int_equal(kvindex_live(kx, 0, 0, 7 * S, &from), KVSEQ_APPLY); /* a message: fresh again */
	assert_true(kvindex_fresh(kx, 0, 7 * S));
	/* disconnected too long */
	kvindex_transport(kx, 0, 0, 8 * S, &from);
	assert_true(kvindex_fresh(kx, 0, 8 * S + S / 2));
	assert_false(kvindex_fresh(kx, 0, 9 * S));
	/* back: replay from the last batch we have (0); the publisher still has
	 * it, so what follows is what we missed */
	assert_int_equal(kvindex_transport(kx, 0, 1, 10 * S, &from), 1);
	assert_int_equal(from, 0);
	assert_int_equal(kvindex_replayed(kx, 0, 0, 10 * S), KVSEQ_SKIP);
	assert_int_equal(kvindex_replayed(kx, 0, 1, 10 * S), KVSEQ_APPLY);
	assert_int_equal(kvindex_replay_end(kx, 0, 10 * S, &from), 0);
	/* away again; this time it no longer has batch 1: it restarted */
	kvindex_transport(kx, 0, 0, 10 * S, &from);
	assert_int_equal(kvindex_transport(kx, 0, 1, 10 * S, &from), 1);
	assert_int_equal(from, 1);
	assert_int_equal(kvindex_replay_end(kx, 0, 10 * S, &from), 1);
	assert_int_equal(from, 0);
	assert_int_equal(kvindex_replay_end(kx, 0, 10 * S, &from), 0);
	struct kvindex_stats st;
	kvindex_stats(kx, 0, 10 * S, &st);
	assert_int_equal(st.restarts, 1);
	/* pending: routed blocks count for a while; only fresh backends are visited */
	kvindex_note_routed(kx, 0, h, 3, 10 * S);
	kvindex_note_routed(kx, 1, h, 4, 10 * S);
	assert_int_equal(match_ep(kx, h, 4, 10 * S, 0), 3);
	assert_int_equal(match_ep(kx, h, 4, 10 * S, 1), (size_t)-1); /* 1 never connected: stale */
	assert_int_equal(match_ep(kx, h, 4, 13 * S, 0), 0);
	kvindex_stats(kx, 1, 13 * S, &st);
	assert_true(st.lookups_fallback >= 2);
	kvindex_free(kx);
}

static void test_odd_events(void **state)
{
	(void)state;
	struct kvindex *kx = new_index();
	struct kv_event ev;
	uint64_t hs[8], from;
	uint32_t toks[128];
	kvindex_attach(kx, 0, "m", 0);
	kvindex_live(kx, 0, 0, 0, &from);
	/* a parent we never saw: orphans */
	struct kv_batch b = stored_batch(&ev, hs, toks, 10, 2, 77);
	kvindex_apply(kx, 0, &b, 0);
	struct kvindex_stats st;
	kvindex_stats(kx, 0, 0, &st);
	assert_int_equal(st.orphans, 2);
	assert_int_equal(st.blocks, 0);
	/* chains across events: 10,11 then 12 with parent 11 */
	b = stored_batch(&ev, hs, toks, 10, 2, -1);
	kvindex_apply(kx, 0, &b, 0);
	uint64_t hs2[1] = {12};
	uint32_t t2[16];
	for (int i = 0; i < 16; i++)
		t2[i] = (uint32_t)(12 * 16 + i);
	struct kv_event e2 = {.type = KV_BLOCK_STORED, .hashes = hs2, .n_hashes = 1, .tokens = t2, .n_tokens = 16,
			      .block_size = 16, .has_parent = 1, .parent = 11, .group_idx = -1};
	struct kv_batch b2 = {.events = &e2, .n_events = 1};
	kvindex_apply(kx, 0, &b2, 0);
	uint32_t all[48];
	for (int i = 0; i < 48; i++)
		all[i] = (uint32_t)(160 + i);
	uint64_t h[3];
	pindex_hash_tokens(all, 48, 16, XXH3_64bits("m", 1), h, 3);
	assert_int_equal(match_ep(kx, h, 3, 0, 0), 3);
	/* a second copy then one removal: still there; the second removal: gone */
	kvindex_apply(kx, 0, &b2, 0);
	struct kv_event rm = {.type = KV_BLOCK_REMOVED, .hashes = hs2, .n_hashes = 1, .group_idx = -1};
	struct kv_batch br = {.events = &rm, .n_events = 1};
	kvindex_apply(kx, 0, &br, 0);
	assert_int_equal(match_ep(kx, h, 3, 0, 0), 3);
	kvindex_apply(kx, 0, &br, 0);
	assert_int_equal(match_ep(kx, h, 3, 0, 0), 2);
	/* other groups, tiers, block sizes: ignored / incompatible */
	e2.group_idx = 1;
	kvindex_apply(kx, 0, &b2, 0);
	e2.group_idx = 0;
	e2.medium = (struct kv_str){"CPU", 3};
	kvindex_apply(kx, 0, &b2, 0);
	e2.medium = (struct kv_str){0};
	e2.block_size = 8;
	e2.n_tokens = 8;
	kvindex_apply(kx, 0, &b2, 0);
	kvindex_stats(kx, 0, 0, &st);
	assert_int_equal(st.ignored, 2);
	assert_int_equal(st.incompatible, 1);
	assert_int_equal(match_ep(kx, h, 3, 0, 0), 2);
	/* a LoRA's blocks are seeded by its name */
	b = stored_batch(&ev, hs, toks, 40, 1, -1);
	ev.lora_name = (struct kv_str){"ad", 2};
	kvindex_apply(kx, 0, &b, 0);
	uint32_t lt[16];
	for (int i = 0; i < 16; i++)
		lt[i] = (uint32_t)(640 + i);
	pindex_hash_tokens(lt, 16, 16, XXH3_64bits("ad", 2), h, 1);
	assert_int_equal(match_ep(kx, h, 1, 0, 0), 1);
	/* cleared; detach; re-attach with another model drops */
	struct kv_event cl = {.type = KV_ALL_CLEARED, .group_idx = -1};
	struct kv_batch bc = {.events = &cl, .n_events = 1};
	kvindex_apply(kx, 0, &bc, 0);
	assert_int_equal(blocks_of(kx, 0), 0);
	kvindex_apply(kx, 0, &b, 0);
	kvindex_attach(kx, 0, "other", 0);
	assert_int_equal(blocks_of(kx, 0), 0);
	kvindex_detach(kx, 0);
	assert_false(kvindex_attached(kx, 0));
	kvindex_free(kx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engine_fidelity),
		cmocka_unit_test(test_sequences),
		cmocka_unit_test(test_freshness_and_pending),
		cmocka_unit_test(test_odd_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
