/* test_policy_smg.c: the `smg` policy (src/core/policy_smg.c), SGLang model
 * gateway's cache_aware rule on crafted states: the imbalance test (absolute
 * AND relative, strict), the match-rate threshold (strict, blocks of 16 bytes
 * or 16-token pages), the shortest queue and its tie-break, the old
 * smallest-tree miss rule, the first holder of a shared prefix, and the error
 * the character blocks make against SMG's character tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/lb.h"
#include "core/policy.h"
#include "policytest.h"

#define MAXL 400

/* n endpoints, smg with the defaults but for the (name, value) pairs given. */
static struct lb *mk(int n, const char *name, double v, const char *name2, double v2)
{
	const struct kv p[] = {{name, v}, {name ? name2 : NULL, v2}, {NULL, 0}};
	return policy_lb("smg", n, p, NULL);
}

/* len letters drawn from seed into s */
static void fill(char *s, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		s[i] = (char)('a' + (seed >> 33) % 26);
	}
}

/* A text of len bytes sharing exactly its first k bytes with r. */
static void share(char *s, const char *r, size_t len, size_t k, uint64_t seed)
{
	fill(s, len, seed);
	memcpy(s, r, k);
	if (k < len && s[k] == r[k])
		s[k] = s[k] == 'z' ? 'a' : (char)(s[k] + 1);
}

static int pick_text(struct lb *lb, const char *t, size_t len)
{
	struct lb_req rq = {.text = t, .text_len = len, .now = 1};
	return lb_pick(lb, &rq);
}

/* ep served t (its blocks are recorded) and finished. */
static void record(struct lb *lb, int ep, const char *t, size_t len, const uint32_t *ids, size_t n_ids)
{
	struct lb_req rq = {.text = t, .text_len = len, .ids = ids, .n_ids = n_ids, .now = 1};
	struct lb_lease l;
	lb_acquire(lb, ep, &rq, &l);
	lb_release(&l);
}

/* k requests in flight on ep (not recorded in the index) */
static struct lb_lease held[4][256];
static void load(struct lb *lb, int ep, int k)
{
	for (int i = 0; i < k; i++)
		lb_acquire(lb, ep, NULL, &held[ep][i]);
}
static void unload(int ep, int k)
{
	for (int i = 0; i < k; i++)
		lb_release(&held[ep][i]);
}

/* Imbalanced = (max - min) > 64 AND max > 1.5 x min: then the shortest queue,
 * even against a perfect match; each test alone does not trigger it. */
static void test_imbalance(void **state)
{
	(void)state;
	char r[200];
	fill(r, sizeof r, 1);
	struct lb *lb = mk(2, NULL, 0, NULL, 0);
	record(lb, 0, r, sizeof r, NULL, 0);
	load(lb, 0, 65); /* 65 - 0 > 64, 65 > 0 */
	assert_int_equal(pick_text(lb, r, sizeof r), 1);
	unload(0, 65);
	load(lb, 0, 64); /* 64 - 0 is not > 64: the match wins */
	assert_int_equal(pick_text(lb, r, sizeof r), 0);
	unload(0, 64);
	load(lb, 0, 200);
	load(lb, 1, 134); /* 66 > 64 but 200 <= 1.5 x 134 = 201 */
	assert_int_equal(pick_text(lb, r, sizeof r), 0);
	unload(1, 134);
	load(lb, 1, 133); /* 200 > 199.5: imbalanced */
	assert_int_equal(pick_text(lb, r, sizeof r), 1);
	unload(1, 133);
	unload(0, 200);
	assert_int_equal(lb_total_in_flight(lb), 0);
	lb_free(lb);
	/* the thresholds are parameters */
	lb = mk(2, "smg-balance-abs-threshold", 10, "smg-balance-rel-threshold", 1.1);
	record(lb, 0, r, sizeof r, NULL, 0);
	load(lb, 0, 11);
	assert_int_equal(pick_text(lb, r, sizeof r), 1);
	unload(0, 11);
	lb_free(lb);
}

/* A hit needs matched / input > 0.3 (strict); matched counts whole 16-byte
 * blocks. ep1, busier by one, holds the first k bytes of the request. */
static int hit(size_t len, size_t k, const char *pname, double pv)
{
	char r[MAXL], s[MAXL];
	fill(r, len, 7);
	share(s, r, len, k, 99);
	struct lb *lb = mk(2, pname, pv, NULL, 0);
	record(lb, 1, s, len, NULL, 0);
	load(lb, 1, 1);
	int ep = pick_text(lb, r, len);
	unload(1, 1);
	lb_free(lb);
	return ep == 1;
}

static void test_threshold(void **state)
{
	(void)state;
	assert_false(hit(160, 48, NULL, 0)); /* 48/160 = 0.3: not above */
	assert_true(hit(160, 64, NULL, 0));  /* 0.4 */
	assert_true(hit(150, 48, NULL, 0));  /* 0.32: just above */
	assert_false(hit(150, 47, NULL, 0)); /* 2 whole blocks: 32/150 = 0.21 */
	assert_false(hit(160, 64, "smg-cache-threshold", 0.5));
	assert_true(hit(160, 96, "smg-cache-threshold", 0.5)); /* 0.6 */
	assert_false(hit(160, 0, NULL, 0));
	assert_true(hit(160, 160, NULL, 0));
}

/* Token ids: SMG's token tree matches whole pages of 16 tokens and divides by
 * every token of the request. */
static void test_token_pages(void **state)
{
	(void)state;
	uint32_t r[100], a[100], b[100];
	for (int i = 0; i < 100; i++)
		r[i] = a[i] = b[i] = (uint32_t)(1000 + i);
	a[32] = b[31] = 7; /* a shares 32 tokens (2 pages), b 31 (1 page) */
	for (int t = 0; t < 2; t++) {
		struct lb *lb = mk(2, NULL, 0, NULL, 0);
		record(lb, 1, NULL, 0, t ? b : a, 100);
		load(lb, 1, 1);
		struct lb_req rq = {.ids = r, .n_ids = 100, .now = 1};
		assert_int_equal(lb_pick(lb, &rq), t ? 0 : 1); /* 32/100 = 0.32 > 0.3; 16/100 is not */
		unload(1, 1);
		lb_free(lb);
	}
}

/* A miss (or nothing indexed) goes to the shortest queue: fewest in flight,
 * then fewest requests served, then the first in the pool. With
 * smg-miss-smallest-tree=1, to the backend with the fewest index entries. */
static void test_miss(void **state)
{
	(void)state;
	char t[3][320], r[200];
	for (int i = 0; i < 3; i++)
		fill(t[i], sizeof t[i], (uint64_t)(100 + i));
	fill(r, sizeof r, 5);
	for (int old = 0; old < 2; old++) {
		struct lb *lb = mk(3, "smg-miss-smallest-tree", old, NULL, 0);
		record(lb, 0, t[0], 320, NULL, 0); /* ep0: 60 entries */
		record(lb, 0, t[1], 320, NULL, 0);
		record(lb, 0, t[2], 320, NULL, 0);
		record(lb, 1, t[0], 32, NULL, 0); /* ep1: 2 */
		record(lb, 2, t[1], 160, NULL, 0); /* ep2: 10 */
		load(lb, 1, 2);
		load(lb, 2, 1);
		assert_int_equal(pick_text(lb, r, sizeof r), old ? 1 : 0);
		unload(1, 2);
		unload(2, 1);
		lb_free(lb);
	}
	/* ties in flight: fewest served, then pool order */
	struct lb *lb = mk(3, NULL, 0, NULL, 0);
	record(lb, 0, t[0], 8, NULL, 0); /* shorter than a block: counts as served, indexes nothing */
	record(lb, 0, t[0], 8, NULL, 0);
	record(lb, 1, t[0], 8, NULL, 0);
	record(lb, 2, t[0], 8, NULL, 0);
	assert_int_equal(pick_text(lb, r, sizeof r), 1);
	record(lb, 1, t[0], 8, NULL, 0);
	assert_int_equal(pick_text(lb, r, sizeof r), 2);
	load(lb, 2, 1);
	assert_int_equal(pick_text(lb, r, sizeof r), 0);
	unload(2, 1);
	lb_free(lb);
}

/* Two backends hold the whole request: the one that held it first gets it,
 * whatever the order of the pool or their (balanced) loads. */
static void test_first_holder(void **state)
{
	(void)state;
	char r[256];
	fill(r, sizeof r, 11);
	for (int first = 0; first < 2; first++) {
		struct lb *lb = mk(3, NULL, 0, NULL, 0);
		record(lb, first, r, sizeof r, NULL, 0);
		record(lb, !first, r, sizeof r, NULL, 0);
		record(lb, first, r, 64, NULL, 0); /* touched again: still the older holder */
		load(lb, first, 5);
		assert_int_equal(pick_text(lb, r, sizeof r), first);
		unload(first, 5);
		lb_free(lb);
	}
}

static size_t entries_of;
static void entries(void *ctx, const char *name, int ep, double v)
{
	if (!strcmp(name, ep < 0 ? "index_entries" : "index_backend_entries") && ep == *(int *)ctx)
		entries_of = (size_t)v;
}

/* The imbalanced branch records the request too (SMG inserts on every branch). */
static void test_insert_when_imbalanced(void **state)
{
	(void)state;
	char r[160];
	fill(r, sizeof r, 3);
	struct lb *lb = mk(2, NULL, 0, NULL, 0);
	record(lb, 0, r, sizeof r, NULL, 0);
	load(lb, 0, 100);
	struct lb_req rq = {.text = r, .text_len = sizeof r, .now = 2};
	int ep = lb_pick(lb, &rq);
	assert_int_equal(ep, 1);
	struct lb_lease l;
	lb_acquire(lb, ep, &rq, &l);
	int want = 1;
	lb_policy_stats(lb, entries, &want);
	assert_int_equal(entries_of, 10);
	lb_release(&l);
	unload(0, 100);
	lb_remove(lb, 1); /* its slot is cleared for the next endpoint */
	assert_int_equal(lb_add(lb, "10.0.0.9:8000", NULL, 0), 1);
	entries_of = 99;
	lb_policy_stats(lb, entries, &want);
	assert_int_equal(entries_of, 0);
	lb_free(lb);
}

/* The error of 16-byte blocks against SMG's character tree, measured: for
 * requests of len bytes sharing k bytes with a less preferred backend, SMG
 * hits iff k / len > 0.3; we hit iff 16 floor(k / 16) / len > 0.3. Blocks only
 * ever turn a hit into a miss, within 16 bytes of the threshold. */
static void test_granularity(void **state)
{
	(void)state;
	int cases = 0, differ = 0, at100 = 0;
	for (size_t len = 40; len <= 200; len += 20)
		for (size_t k = 0; k <= len; k++) {
			int smg = (float)k / (float)len > 0.3f;
			int ours = hit(len, k, NULL, 0);
			assert_int_equal(ours, (float)(k / 16 * 16) / (float)len > 0.3f);
			assert_true(smg || !ours);
			if (smg != ours) {
				assert_true((double)k <= 0.3 * (double)len + 16);
				differ++;
				at100 += len == 100;
			}
			cases++;
		}
	assert_int_equal(at100, 1); /* len 100: only k = 31 */
	print_message("smg granularity: %d of %d (len, k) cases decide differently from a character tree\n", differ,
		      cases);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imbalance),     cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_token_pages),   cmocka_unit_test(test_miss),
		cmocka_unit_test(test_first_holder),  cmocka_unit_test(test_insert_when_imbalanced),
		cmocka_unit_test(test_granularity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
