/* test_engine.c: the simulated vLLM replica (src/core/engine.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/engine.h"
#include "core/rng.h"
#include <xxhash.h>

#define MS 1000000ULL

static const uint32_t filler[] = {279, 315, 323, 264, 304};

struct rec {
	int n;
	struct engine_event ev[4096];
};

static void on_event(void *ctx, const struct engine_event *ev)
{
	struct rec *r = ctx;
	if (r->n < 4096)
		r->ev[r->n++] = *ev;
}

/* Runs the engine until idle (or until `until`), event by event. */
static void run(struct engine *e, struct rec *r, uint64_t until)
{
	uint64_t t;
	while ((t = engine_next_event(e)) != UINT64_MAX && t <= until)
		engine_advance(e, t, on_event, r);
}

static struct engine_profile prof(void)
{
	struct engine_profile p = *engine_profile_find("l4-llama3.1-8b");
	return p;
}

static void seq(uint32_t *v, size_t n, uint32_t base)
{
	for (size_t i = 0; i < n; i++)
		v[i] = base + (uint32_t)i;
}

static int count_for(const struct rec *r, uint64_t id)
{
	int n = 0;
	for (int i = 0; i < r->n; i++)
		n += r->ev[i].req_id == id;
	return n;
}

static const struct engine_event *last_for(const struct rec *r, uint64_t id)
{
	const struct engine_event *ev = NULL;
	for (int i = 0; i < r->n; i++)
		if (r->ev[i].req_id == id)
			ev = &r->ev[i];
	return ev;
}

static void test_profiles(void **state)
{
	(void)state;
	const struct engine_profile *l4 = engine_profile_find("l4-llama3.1-8b");
	assert_non_null(l4);
	assert_int_equal(l4->kv_capacity_tokens, 75000);
	assert_non_null(engine_profile_find("h100-llama3.1-8b"));
	assert_null(engine_profile_find("nope"));
	/* t = 12 + max(36, 0.26 N) + 0.00026 ctx + 8.7e-6 prefill + 0.1 B */
	assert_float_equal(engine_step_ms(l4, 10, 10, 0, 0), 12 + 36 + 1.0, 1e-9);
	assert_float_equal(engine_step_ms(l4, 1000, 2, 5000, 1e6), 12 + 260 + 1.3 + 8.7 + 0.2, 1e-9);
	struct engine_profile p = *l4;
	assert_int_equal(engine_profile_set(&p, "kv-capacity-tokens", "1600"), 0);
	assert_int_equal(p.kv_capacity_tokens, 1600);
	assert_int_equal(engine_profile_set(&p, "step_base_ms", "3.5"), 0);
	assert_float_equal(p.step_base_ms, 3.5, 1e-12);
	assert_int_equal(engine_profile_set(&p, "block_size", "1.5"), -2);
	assert_int_equal(engine_profile_set(&p, "max_num_seqs", "-1"), -2);
	assert_int_equal(engine_profile_set(&p, "bogus", "1"), -1);
}

/* Token times follow the profile exactly: arrival + 5 ms, a prefill step, then
 * one decode step per token, each token + 1 ms to the client. */
static void test_step_times(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	struct engine *e = engine_new(&p, filler, 5);
	uint32_t prompt[100];
	seq(prompt, 100, 1000);
	uint64_t id;
	assert_int_equal(engine_add(e, 0, prompt, 100, 3, NULL, &id), 0);
	static struct rec r;
	r.n = 0;
	run(e, &r, UINT64_MAX);
	assert_int_equal(r.n, 3);
	double s1 = engine_step_ms(&p, 100, 1, 0, 100 * 50.0);
	double s2 = engine_step_ms(&p, 1, 1, 100, 0);
	double s3 = engine_step_ms(&p, 1, 1, 101, 0);
	double t1 = 5 + s1 + 1, t2 = 5 + s1 + s2 + 1, t3 = 5 + s1 + s2 + s3 + 1;
	assert_float_equal((double)r.ev[0].time / MS, t1, 1e-5);
	assert_float_equal((double)r.ev[1].time / MS, t2, 1e-5);
	assert_float_equal((double)r.ev[2].time / MS, t3, 1e-5);
	assert_int_equal(r.ev[0].index, 0);
	assert_int_equal(r.ev[2].index, 2);
	assert_false(r.ev[1].finished);
	assert_true(r.ev[2].finished);
	assert_int_equal(r.ev[0].prompt_tokens, 100);
	/* the filler is real tokens, deterministic */
	for (int i = 0; i < 3; i++) {
		int found = 0;
		for (int k = 0; k < 5; k++)
			found |= r.ev[i].token == filler[k];
		assert_true(found);
	}
	struct engine_stats st;
	engine_get_stats(e, &st);
	assert_int_equal(st.blocks_used, 0);
	assert_int_equal(st.generation_tokens, 3);
	assert_int_equal(st.requests_finished, 1);
	engine_free(e);
}

static uint32_t cached_of(struct engine *e, const uint32_t *prompt, size_t n)
{
	static struct rec r;
	r.n = 0;
	uint64_t id;
	assert_int_equal(engine_add(e, 0, prompt, n, 2, NULL, &id), 0);
	run(e, &r, UINT64_MAX);
	const struct engine_event *ev = last_for(&r, id);
	assert_non_null(ev);
	assert_true(ev->finished);
	return ev->cached_tokens;
}

static void test_prefix_hits(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	struct engine *e = engine_new(&p, filler, 5);
	uint32_t a[100];
	seq(a, 100, 5000);
	assert_int_equal(cached_of(e, a, 100), 0);
	/* repeated prompt: all full blocks hit (96 of 100 tokens) */
	assert_int_equal(cached_of(e, a, 100), 96);
	/* exactly 6 blocks: a full hit recomputes the last block */
	assert_int_equal(cached_of(e, a, 96), 80);
	/* shared prefix of 70 tokens: only the 4 shared full blocks hit */
	uint32_t b[100];
	seq(b, 100, 5000);
	for (int i = 70; i < 100; i++)
		b[i] = 9;
	assert_int_equal(cached_of(e, b, 100), 64);
	/* a different first token: nothing hits (hashes are chained) */
	b[0] = 1;
	assert_int_equal(cached_of(e, b, 100), 0);
	struct engine_stats st;
	engine_get_stats(e, &st);
	assert_int_equal(st.prefix_hits, 96 + 80 + 64);
	assert_int_equal(st.prefix_queries, 100 + 100 + 96 + 100 + 100);
	engine_free(e);
}

/* Free queue: LRU, a finished request's tail block first. */
static void test_eviction_order(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	p.kv_capacity_tokens = 160; /* 10 blocks */
	p.preallocate_blocks = 0;
	struct engine *e = engine_new(&p, filler, 5);
	uint32_t a[48], b[127];
	seq(a, 48, 100);
	seq(b, 127, 7000);
	static struct rec r;
	uint64_t id;
	r.n = 0;
	assert_int_equal(engine_add(e, 0, a, 48, 1, NULL, &id), 0); /* 3 blocks */
	run(e, &r, UINT64_MAX);
	/* B takes 8 blocks: the 7 never used, then A's LAST block (freed first) */
	assert_int_equal(engine_add(e, 0, b, 127, 1, NULL, &id), 0);
	run(e, &r, UINT64_MAX);
	/* A again: its first two blocks survived, the third was evicted */
	assert_int_equal(cached_of(e, a, 48), 32);
	engine_free(e);
}

/* KV runs out during decode: the newest running request is preempted, recomputed
 * later, and still emits every token. */
static void test_preemption(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	p.kv_capacity_tokens = 16 * 12; /* 12 blocks */
	p.preallocate_blocks = 0;
	struct engine *e = engine_new(&p, filler, 5);
	uint32_t a[64], b[64];
	seq(a, 64, 100);
	seq(b, 64, 900);
	static struct rec r;
	r.n = 0;
	uint64_t ia, ib;
	assert_int_equal(engine_add(e, 0, a, 64, 60, NULL, &ia), 0);
	assert_int_equal(engine_add(e, 1, b, 64, 60, NULL, &ib), 0);
	run(e, &r, UINT64_MAX);
	assert_int_equal(count_for(&r, ia), 60);
	assert_int_equal(count_for(&r, ib), 60);
	assert_true(last_for(&r, ia)->finished && last_for(&r, ib)->finished);
	/* outputs come in order 0..59 for each */
	int next_a = 0, next_b = 0;
	for (int i = 0; i < r.n; i++) {
		if (r.ev[i].req_id == ia)
			assert_int_equal(r.ev[i].index, next_a++);
		else
			assert_int_equal(r.ev[i].index, next_b++);
	}
	struct engine_stats st;
	engine_get_stats(e, &st);
	assert_true(st.preemptions >= 1);
	assert_int_equal(st.blocks_used, 0);
	assert_int_equal(st.running, 0);
	/* B (the newest) finished last */
	assert_true(last_for(&r, ib)->time > last_for(&r, ia)->time);
	engine_free(e);
}

/* Chunked prefill under the token budget; max_num_seqs caps the running set. */
static void test_budget_and_seqs(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	p.max_num_batched_tokens = 32;
	p.max_num_seqs = 2;
	struct engine *e = engine_new(&p, filler, 5);
	uint32_t a[100];
	seq(a, 100, 100);
	static struct rec r;
	r.n = 0;
	uint64_t id[3];
	for (int i = 0; i < 3; i++) {
		a[0] = 50000 + (uint32_t)i;
		assert_int_equal(engine_add(e, 0, a, 100, 4, NULL, &id[i]), 0);
	}
	uint64_t t;
	uint32_t max_running = 0;
	uint64_t steps_before_first = 0;
	while ((t = engine_next_event(e)) != UINT64_MAX) {
		engine_advance(e, t, on_event, &r);
		struct engine_stats st;
		engine_get_stats(e, &st);
		if (st.running > max_running)
			max_running = st.running;
		if (!steps_before_first && count_for(&r, id[0]))
			steps_before_first = st.steps;
	}
	assert_int_equal(max_running, 2);
	/* 100 prompt tokens at <= 32 per step (shared with a second prompt): >= 4 steps */
	assert_true(steps_before_first >= 4);
	for (int i = 0; i < 3; i++)
		assert_int_equal(count_for(&r, id[i]), 4);
	/* the third request started only after one of the first two finished */
	uint64_t first_of_third = UINT64_MAX, end_of_first = last_for(&r, id[0])->time;
	for (int i = 0; i < r.n; i++)
		if (r.ev[i].req_id == id[2] && r.ev[i].time < first_of_third)
			first_of_third = r.ev[i].time;
	assert_true(first_of_third > end_of_first);
	engine_free(e);
}

static void test_abort_and_limits(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	struct engine *e = engine_new(&p, filler, 5);
	uint32_t a[300];
	seq(a, 300, 100);
	static struct rec r;
	r.n = 0;
	uint64_t ia, ib;
	assert_int_equal(engine_add(e, 0, a, 300, 100, NULL, &ia), 0);
	assert_int_equal(engine_add(e, 0, a, 300, 5, NULL, &ib), 0);
	run(e, &r, 200 * MS); /* a few tokens in */
	int before = count_for(&r, ia);
	assert_true(before > 0 && before < 100);
	assert_int_equal(engine_abort(e, ia), 0);
	assert_int_equal(engine_abort(e, ia), -1);
	run(e, &r, UINT64_MAX);
	assert_int_equal(count_for(&r, ia), before);
	assert_int_equal(count_for(&r, ib), 5);
	struct engine_stats st;
	engine_get_stats(e, &st);
	assert_int_equal(st.blocks_used, 0);
	assert_int_equal(st.requests_aborted, 1);
	/* abort while pending, and an id whose slot was reused */
	uint64_t ic;
	assert_int_equal(engine_add(e, 10 * 1000 * MS, a, 10, 5, NULL, &ic), 0);
	assert_int_equal(engine_abort(e, ic), 0);
	assert_int_equal(engine_abort(e, ic), -1);
	/* limits */
	uint64_t x;
	assert_int_equal(engine_add(e, 0, a, 0, 5, NULL, &x), -1);
	assert_int_equal(engine_add(e, 0, a, 10, 0, NULL, &x), -1);
	assert_int_equal(engine_add(e, 0, a, 300, 16384, NULL, &x), -1);
	assert_int_equal(engine_next_event(e), UINT64_MAX);
	engine_free(e);
}

/* A request whose last token is made but not yet delivered (the profile's
 * token_overhead_ms): aborting it drops that token, since its owner frees what
 * ev.user points at. A twin engine tells when the delivery is due. */
static void test_abort_undelivered(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	assert_true(p.token_overhead_ms > 0);
	uint32_t a[40];
	seq(a, 40, 500);
	static struct rec r;
	uint64_t id;
	r.n = 0;
	struct engine *twin = engine_new(&p, filler, 5);
	assert_int_equal(engine_add(twin, 0, a, 40, 1, NULL, &id), 0);
	run(twin, &r, UINT64_MAX);
	assert_int_equal(count_for(&r, id), 1);
	uint64_t due = last_for(&r, id)->time;
	engine_free(twin);

	r.n = 0;
	struct engine *e = engine_new(&p, filler, 5);
	assert_int_equal(engine_add(e, 0, a, 40, 1, NULL, &id), 0);
	run(e, &r, due - 1); /* the step is over, the token waits for its delivery */
	assert_int_equal(r.n, 0);
	assert_int_equal(engine_next_event(e), due);
	assert_int_equal(engine_abort(e, id), 0);
	assert_int_equal(engine_abort(e, id), -1);
	run(e, &r, UINT64_MAX);
	assert_int_equal(r.n, 0);
	struct engine_stats st;
	engine_get_stats(e, &st);
	assert_int_equal(st.blocks_used, 0);
	engine_free(e);
}

/* Many requests on a small cache: every request completes with exactly
 * max_tokens tokens and every block returns to the free queue. */
static void test_storm(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	p.kv_capacity_tokens = 4000;
	p.max_num_seqs = 16;
	p.max_num_batched_tokens = 512;
	struct engine *e = engine_new(&p, filler, 5);
	static struct rec r;
	r.n = 0;
	uint32_t pr[400];
	uint64_t ids[40];
	uint32_t want[40];
	uint32_t x = 1;
	for (int i = 0; i < 40; i++) {
		size_t n = 20 + (size_t)(i * 37 % 380);
		for (size_t k = 0; k < n; k++) {
			x = x * 1103515245 + 12345;
			pr[k] = k < 48 ? (uint32_t)(i % 4) * 100 + (uint32_t)k : x % 128000;
		}
		want[i] = 1 + (uint32_t)(i * 13 % 90);
		assert_int_equal(engine_add(e, (uint64_t)i * 3 * MS, pr, n, want[i], NULL, &ids[i]), 0);
		if (i == 17)
			engine_abort(e, ids[5]);
	}
	run(e, &r, UINT64_MAX);
	for (int i = 0; i < 40; i++)
		if (i != 5)
			assert_int_equal(count_for(&r, ids[i]), want[i]);
	struct engine_stats st;
	engine_get_stats(e, &st);
	assert_int_equal(st.blocks_used, 0);
	assert_int_equal(st.running + st.waiting, 0);
	assert_int_equal(st.requests_finished + st.requests_aborted, 40);
	engine_free(e);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* KV capacities whose block count does not fit: refused with a message naming
 * the limit, never wrapped to a small cache (2^32 + 1000 tokens of 1-token
 * blocks used to become a 1000-block cache), never a crash. */
static void test_kv_capacity_bounds(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	char err[256] = "";
	p.block_size = 1;
	p.kv_capacity_tokens = (1L << 32) + 1000;
	assert_int_equal(engine_profile_check(&p, err, sizeof err), -1);
	assert_non_null(strstr(err, "at most 16777216 with block_size 1"));
	assert_null(engine_new(&p, filler, 5));

	p = prof();
	assert_int_equal(engine_profile_set(&p, "kv_capacity_tokens", "1e10"), 0); /* each field alone is fine */
	assert_int_equal(engine_profile_check(&p, err, sizeof err), -1);
	assert_non_null(strstr(err, "kv_capacity_tokens: at most 268435456 with block_size 16"));
	assert_null(engine_new(&p, filler, 5));

	/* the limit itself passes the check (not built here: ~800 MB) */
	p.block_size = 1;
	p.kv_capacity_tokens = ENGINE_MAX_BLOCKS;
	assert_int_equal(engine_profile_check(&p, err, sizeof err), 0);
	p.kv_capacity_tokens = ENGINE_MAX_BLOCKS + 1;
	assert_int_equal(engine_profile_check(&p, err, sizeof err), -1);
	/* fewer tokens than one block */
	p = prof();
	p.block_size = 32;
	p.kv_capacity_tokens = 16;
	assert_int_equal(engine_profile_check(&p, err, sizeof err), -1);
	assert_non_null(strstr(err, "at least block_size"));
	assert_null(engine_new(&p, filler, 5));

#ifndef UNDER_ASAN /* ASan reserves its shadow memory up front: no address-space limit under it */
	/* a cache the address space cannot hold: NULL, nothing leaked, no crash */
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	struct rlimit lim = old;
	lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20);
	if (old.rlim_cur == RLIM_INFINITY || old.rlim_cur > lim.rlim_cur) {
		assert_int_equal(setrlimit(RLIMIT_AS, &lim), 0);
		p = prof();
		p.block_size = 1;
		p.kv_capacity_tokens = ENGINE_MAX_BLOCKS; /* ~800 MB */
		struct engine *e = engine_new(&p, filler, 5);
		assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
		int built = e != NULL;
		engine_free(e);
		assert_false(built);
	}
#endif
}

/* ---- KV events ------------------------------------------------------------ */

/* What a subscriber knows from the events alone: hash -> copies stored. */
struct kvview {
	uint64_t h[8192];
	int refs[8192];
	size_t n;
	int batches, stored, removed, cleared, bad;
	uint64_t last_now;
};

static int kv_find(const struct kvview *v, uint64_t h)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->h[i] == h && v->refs[i] > 0)
			return (int)i;
	return -1;
}

static void on_kv(void *ctx, uint64_t now, const struct kv_event *ev, size_t n)
{
	struct kvview *v = ctx;
	v->batches++;
	if (now < v->last_now || !n)
		v->bad++;
	v->last_now = now;
	for (size_t i = 0; i < n; i++) {
		const struct kv_event *e = &ev[i];
		if (e->type == KV_ALL_CLEARED) {
			v->n = 0;
			v->cleared++;
			continue;
		}
		for (size_t k = 0; k < e->n_hashes; k++) {
			int at = kv_find(v, e->hashes[k]);
			if (e->type == KV_BLOCK_STORED) {
				/* the chain: h = XXH3(tokens, seed = parent hash) */
				uint64_t parent = k ? e->hashes[k - 1] : e->has_parent ? e->parent : 0x9E3779B97F4A7C15ULL;
				if (XXH3_64bits_withSeed(e->tokens + k * e->block_size, e->block_size * 4, parent) != e->hashes[k] ||
				    e->n_tokens != e->n_hashes * e->block_size)
					v->bad++;
				if (at < 0 && v->n < 8192) {
					v->h[v->n] = e->hashes[k];
					v->refs[v->n++] = 1;
				} else if (at >= 0) {
					v->refs[at]++;
				}
				v->stored++;
			} else {
				if (at < 0)
					v->bad++; /* removed what was never stored */
				else
					v->refs[at]--;
				v->removed++;
			}
		}
	}
}

/* The events describe the cache exactly: before each request, the longest
 * run of its blocks the events say are cached is the hit the engine gives. */
static void test_kv_events(void **state)
{
	(void)state;
	struct engine_profile p = prof();
	p.kv_capacity_tokens = 64 * 16; /* 64 blocks: evictions */
	struct engine *e = engine_new(&p, filler, 5);
	static struct kvview v;
	memset(&v, 0, sizeof v);
	engine_set_kv_events(e, on_kv, &v);
	static struct rec r;
	struct rng g;
	rng_seed(&g, 3);
	uint32_t base[4][600];
	for (int b = 0; b < 4; b++)
		seq(base[b], 600, 1000 * (uint32_t)b);
	uint64_t now = 0;
	int checked = 0;
	for (int it = 0; it < 200; it++) {
		uint32_t prompt[600];
		int b = (int)(rng_next(&g) % 4);
		size_t n = 16 + rng_next(&g) % 500;
		memcpy(prompt, base[b], n * sizeof *prompt);
		if (rng_next(&g) % 3 == 0)
			prompt[n - 1 - rng_next(&g) % 16] = 7; /* a different tail */
		/* predicted from the events */
		uint64_t h = 0x9E3779B97F4A7C15ULL;
		size_t hit = 0, full = n / 16;
		for (size_t k = 0; k < full; k++) {
			h = XXH3_64bits_withSeed(prompt + k * 16, 16 * 4, h);
			if (kv_find(&v, h) < 0)
				break;
			hit++;
		}
		if (hit && hit * 16 == n)
			hit--;
		uint64_t id;
		r.n = 0;
		assert_int_equal(engine_add(e, now, prompt, n, 1 + (uint32_t)(rng_next(&g) % 40), NULL, &id), 0);
		run(e, &r, UINT64_MAX);
		const struct engine_event *first = NULL;
		for (int i = 0; i < r.n; i++)
			if (r.ev[i].req_id == id && r.ev[i].index == 0)
				first = &r.ev[i];
		assert_non_null(first);
		assert_int_equal(first->cached_tokens, hit * 16);
		checked += hit > 0;
		now = r.ev[r.n - 1].time;
	}
	assert_true(checked > 50);
	assert_int_equal(v.bad, 0);
	assert_true(v.removed > 0 && v.stored > v.removed);
	/* reset: refused while a request holds blocks, then AllBlocksCleared */
	uint32_t pr[64];
	seq(pr, 64, 5);
	uint64_t id;
	assert_int_equal(engine_add(e, now, pr, 64, 50, NULL, &id), 0);
	engine_advance(e, engine_next_event(e), on_event, &r);
	engine_advance(e, engine_next_event(e), on_event, &r);
	assert_int_equal(engine_reset_prefix_cache(e, now), -1);
	run(e, &r, UINT64_MAX);
	int before = v.batches;
	assert_int_equal(engine_reset_prefix_cache(e, v.last_now), 0);
	assert_int_equal(v.batches, before + 1);
	assert_int_equal(v.cleared, 1);
	assert_int_equal(cached_of(e, pr, 64), 0);
	engine_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profiles),       cmocka_unit_test(test_step_times),
		cmocka_unit_test(test_prefix_hits),    cmocka_unit_test(test_eviction_order),
		cmocka_unit_test(test_preemption),     cmocka_unit_test(test_budget_and_seqs),
		cmocka_unit_test(test_abort_and_limits), cmocka_unit_test(test_abort_undelivered),
		cmocka_unit_test(test_storm),          cmocka_unit_test(test_kv_capacity_bounds),
		cmocka_unit_test(test_kv_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
