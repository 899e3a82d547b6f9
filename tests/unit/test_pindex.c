/* test_pindex.c: the prefix index (src/core/pindex.c): matching, ageing, caps,
 * removal, and a model check against a naive list of (block, backend) pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pindex.h"

struct got {
	size_t m[64];
	int seen[64];
};

static void visit(void *ctx, int ep, size_t blocks)
{
	struct got *g = ctx;
	g->m[ep] = blocks;
	g->seen[ep]++;
}

static size_t match(struct pindex *x, const uint64_t *h, size_t n, uint64_t now, struct got *g)
{
	memset(g, 0, sizeof *g);
	return pindex_match(x, h, n, now, visit, g);
}

static void test_hashes(void **state)
{
	(void)state;
	uint32_t a[40], b[40];
	for (int i = 0; i < 40; i++)
		a[i] = b[i] = (uint32_t)i;
	b[20] = 999; /* differs in block 1 (of 16) */
	uint64_t ha[4], hb[4];
	assert_int_equal(pindex_hash_tokens(a, 40, 16, 0, ha, 4), 2); /* full blocks only */
	assert_int_equal(pindex_hash_tokens(b, 40, 16, 0, hb, 4), 2);
	assert_true(ha[0] == hb[0] && ha[1] != hb[1]);
	/* chained: the same block after another prefix hashes differently */
	assert_int_equal(pindex_hash_tokens(a + 16, 16, 16, 0, hb, 4), 1);
	assert_true(hb[0] != ha[1]);
	/* namespaces (seeds) and kinds do not collide */
	assert_int_equal(pindex_hash_tokens(a, 40, 16, 7, hb, 4), 2);
	assert_true(hb[0] != ha[0]);
	char s[100];
	memset(s, 'x', sizeof s);
	assert_int_equal(pindex_hash_chars(s, 100, 32, 0, hb, 4), 3);
	assert_int_equal(pindex_hash_chars(s, 100, 32, 0, hb, 2), 2); /* at most max */
}

static void test_match_gaps_and_best(void **state)
{
	(void)state;
	struct pindex_cfg cfg = {0};
	struct pindex *x = pindex_new(&cfg);
	uint64_t h[6] = {11, 12, 13, 14, 15, 16};
	pindex_insert(x, 0, h, 6, 1);
	pindex_insert(x, 1, h, 3, 1);
	uint64_t gap[2] = {11, 13};
	pindex_insert(x, 2, gap, 2, 1); /* block 0 and 2, not 1 */
	struct got g;
	assert_int_equal(match(x, h, 6, 2, &g), 6);
	assert_int_equal(g.m[0], 6);
	assert_int_equal(g.m[1], 3);
	assert_int_equal(g.m[2], 1); /* the gap stops it */
	assert_int_equal(g.seen[3], 0);
	/* a prompt that diverges after block 1 */
	uint64_t other[3] = {11, 12, 99};
	assert_int_equal(match(x, other, 3, 2, &g), 2);
	assert_int_equal(g.m[0], 2);
	assert_int_equal(g.m[1], 2);
	/* nothing in common */
	uint64_t none[1] = {42};
	assert_int_equal(match(x, none, 1, 2, &g), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(g.seen[i], 0);
	/* removal and clearing */
	uint64_t r[1] = {12};
	pindex_remove(x, 0, r, 1);
	assert_int_equal(match(x, h, 6, 3, &g), 3);
	assert_int_equal(g.m[0], 1);
	pindex_clear_backend(x, 1);
	match(x, h, 6, 3, &g);
	assert_int_equal(g.seen[1], 0);
	assert_int_equal(pindex_backend_entries(x, 1), 0);
	pindex_free(x);
}

/* Per-backend cap: the least recently used entries go, tail blocks first. */
static void test_caps_and_ttl(void **state)
{
	(void)state;
	struct pindex_cfg cfg = {.max_per_backend = 5, .max_total = 8, .ttl_ns = 100};
	struct pindex *x = pindex_new(&cfg);
	uint64_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 30, 40};
	pindex_insert(x, 0, a, 4, 10);
	pindex_insert(x, 0, b, 4, 20); /* 6 distinct: the oldest (a's tail: 4) goes */
	assert_int_equal(pindex_backend_entries(x, 0), 5);
	struct got g;
	assert_int_equal(match(x, a, 4, 21, &g), 3);
	assert_int_equal(match(x, b, 4, 21, &g), 4);
	/* the global cap takes the oldest over all backends */
	uint64_t c[4] = {7, 8, 9, 10};
	pindex_insert(x, 1, c, 4, 30); /* 9 entries > 8: backend 0's oldest goes (a's 3) */
	struct pindex_stats st;
	pindex_get_stats(x, &st);
	assert_int_equal(st.entries, 8);
	assert_int_equal(match(x, a, 4, 31, &g), 2);
	/* ttl: entries untouched for 100 ns expire when the index is next used */
	assert_int_equal(match(x, c, 4, 131, &g), 0); /* 30 + 100 < 131 */
	pindex_get_stats(x, &st);
	assert_int_equal(st.entries, 0);
	assert_true(st.expirations >= 8);
	pindex_free(x);
}

/* Random operations against a naive model: a list of (block, backend, time). */
struct pair {
	uint64_t h;
	int ep;
	uint64_t t;
	long order; /* recency: larger = more recent */
};

static void test_model(void **state)
{
	(void)state;
	struct pindex_cfg cfg = {.max_per_backend = 0, .max_total = 0, .ttl_ns = 0};
	struct pindex *x = pindex_new(&cfg);
	static struct pair model[20000];
	size_t nm = 0;
	uint64_t rnd = 5;
	for (int step = 0; step < 3000; step++) {
		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		int ep = (int)(rnd >> 60) % 6;
		size_t conv = (rnd >> 40) % 20, len = 1 + (rnd >> 20) % 8;
		uint64_t h[8];
		for (size_t k = 0; k < len; k++)
			h[k] = conv * 100 + k; /* conversation conv's blocks */
		if ((rnd >> 10) % 5 == 0) {
			pindex_remove(x, ep, h + len - 1, 1);
			for (size_t i = 0; i < nm; i++)
				if (model[i].ep == ep && model[i].h == h[len - 1])
					model[i] = model[--nm];
		} else if ((rnd >> 10) % 5 == 1) {
			struct got g;
			match(x, h, len, (uint64_t)step, &g);
			for (int e = 0; e < 6; e++) {
				size_t want = 0;
				for (size_t k = 0; k < len; k++) {
					int has = 0;
					for (size_t i = 0; i < nm && !has; i++)
						has = model[i].ep == e && model[i].h == h[k];
					if (!has)
						break;
					want++;
				}
				assert_int_equal(g.m[e], want);
			}
		} else {
			pindex_insert(x, ep, h, len, (uint64_t)step);
			for (size_t k = 0; k < len; k++) {
				int has = 0;
				for (size_t i = 0; i < nm && !has; i++)
					has = model[i].ep == ep && model[i].h == h[k];
				if (!has)
					model[nm++] = (struct pair){h[k], ep, (uint64_t)step, 0};
			}
		}
	}
	struct pindex_stats st;
	pindex_get_stats(x, &st);
	assert_int_equal(st.entries, nm);
	pindex_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hashes),
		cmocka_unit_test(test_match_gaps_and_best),
		cmocka_unit_test(test_caps_and_ttl),
		cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
