/* test_policy_aibrix.c: the `aibrix` policy (src/core/policy_aibrix.c),
 * AIBrix's prefix-cache routing on crafted states: a spread of running
 * requests > 16 goes to a least loaded pod (the best matching one among them),
 * the mean + 2 sample-sigma bound that skips a hot best match, ties by running
 * ascending then at random, integer match percentages, the least-loaded
 * fallback, and the 20-minute expiry. */
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

#define S 1000000000ULL

static struct lb *mk(int n, const char *name, double v)
{
	const struct kv p[] = {{name, v}, {NULL, 0}};
	return policy_lb("aibrix", n, p, NULL);
}

/* R: 4 blocks of 128 bytes; ep holds its first k blocks */
static char R[512];

static void fill(char *s, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		s[i] = (char)('a' + (seed >> 33) % 26);
	}
}

static void record_at(struct lb *lb, int ep, const char *t, size_t len, const uint32_t *ids, size_t n_ids,
		      uint64_t now)
{
	struct lb_req rq = {.text = t, .text_len = len, .ids = ids, .n_ids = n_ids, .now = now};
	struct lb_lease l;
	lb_acquire(lb, ep, &rq, &l);
	lb_release(&l);
}

static void holds(struct lb *lb, int ep, int k)
{
	record_at(lb, ep, R, (size_t)k * 128, NULL, 0, 1);
}

static int pick_r(struct lb *lb)
{
	struct lb_req rq = {.text = R, .text_len = sizeof R, .now = 2};
	return lb_pick(lb, &rq);
}

static struct lb_lease held[8][64];
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

/* max - min running > 16: a least loaded pod, even against a perfect match;
 * exactly 16 is still balanced. */
static void test_imbalance(void **state)
{
	(void)state;
	struct lb *lb = mk(2, NULL, 0);
	holds(lb, 0, 4);
	load(lb, 0, 17);
	assert_int_equal(pick_r(lb), 1);
	unload(0, 17);
	load(lb, 0, 16); /* mean 8, sample sd 11.3: 16 is within the bound */
	assert_int_equal(pick_r(lb), 0);
	unload(0, 16);
	lb_free(lb);
	lb = mk(2, "aibrix-imbalance", 4);
	holds(lb, 0, 4);
	load(lb, 0, 5);
	assert_int_equal(pick_r(lb), 1);
	unload(0, 5);
	lb_free(lb);
	/* imbalanced: among the least loaded pods, the best match still wins */
	lb = mk(3, NULL, 0);
	holds(lb, 0, 4);
	holds(lb, 1, 2);
	load(lb, 0, 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(pick_r(lb), 1);
	unload(0, 20);
	lb_free(lb);
}

/* The hot best match is skipped when its running count exceeds mean + 2 sd
 * (the sample deviation, n - 1), for the next best match; none within the
 * bound: the least loaded pod. */
static void test_sigma_bound(void **state)
{
	(void)state;
	struct lb *lb = mk(8, NULL, 0);
	holds(lb, 0, 4);
	holds(lb, 1, 2);
	load(lb, 0, 16); /* spread 16: balanced; mean 2, sd 5.66: bound 13.3 */
	assert_int_equal(pick_r(lb), 1);
	unload(0, 16);
	lb_free(lb);
	lb = mk(8, "aibrix-sd-factor", 3); /* bound 19 */
	holds(lb, 0, 4);
	holds(lb, 1, 2);
	load(lb, 0, 16);
	assert_int_equal(pick_r(lb), 0);
	unload(0, 16);
	lb_free(lb);
	/* the sample deviation: loads 16, 4, 0 x 4 give a bound of 16.15 (15.03
	 * with the population's) */
	lb = mk(6, NULL, 0);
	holds(lb, 0, 4);
	holds(lb, 1, 2);
	load(lb, 0, 16);
	load(lb, 1, 4);
	assert_int_equal(pick_r(lb), 0);
	unload(0, 16);
	unload(1, 4);
	lb_free(lb);
	/* only the hot pod matches: the least loaded of all */
	lb = mk(8, NULL, 0);
	holds(lb, 0, 4);
	load(lb, 0, 16);
	load(lb, 2, 1);
	for (int i = 0; i < 40; i++) {
		int ep = pick_r(lb);
		assert_true(ep != 0 && ep != 2);
	}
	unload(0, 16);
	unload(2, 1);
	lb_free(lb);
}

/* The same match: fewer running first; the same running too: at random. */
static void test_ties(void **state)
{
	(void)state;
	struct lb *lb = mk(4, NULL, 0);
	for (int ep = 0; ep < 3; ep++)
		holds(lb, ep, 4);
	load(lb, 0, 3);
	load(lb, 1, 1);
	load(lb, 2, 2);
	assert_int_equal(pick_r(lb), 1); /* ep3 runs nothing but matches nothing */
	unload(1, 1);
	unload(2, 2);
	int seen[4] = {0};
	for (int i = 0; i < 200; i++)
		seen[pick_r(lb)]++;
	assert_true(seen[1] > 50 && seen[2] > 50 && !seen[0] && !seen[3]);
	unload(0, 3);
	lb_free(lb);
	/* no match anywhere: the least loaded pod */
	lb = mk(3, NULL, 0);
	load(lb, 0, 2);
	load(lb, 2, 1);
	assert_int_equal(pick_r(lb), 1);
	unload(0, 2);
	unload(2, 1);
	lb_free(lb);
}

/* Percentages are integers: 151 and 150 blocks of 300 are both 50 %, so the
 * running count decides, not the longer match (token ids, 4 per block). */
static void test_integer_percent(void **state)
{
	(void)state;
	static uint32_t ids[1200];
	for (int i = 0; i < 1200; i++)
		ids[i] = (uint32_t)(5000 + i);
	for (int swap = 0; swap < 2; swap++) {
		struct lb *lb = mk(2, NULL, 0);
		record_at(lb, 0, NULL, 0, ids, 151 * 4, 1);
		record_at(lb, 1, NULL, 0, ids, (swap ? 140 : 150) * 4, 1); /* 46 % */
		load(lb, 0, 2);
		load(lb, 1, 1);
		struct lb_req rq = {.ids = ids, .n_ids = 1200, .now = 2};
		assert_int_equal(lb_pick(lb, &rq), swap ? 0 : 1);
		unload(0, 2);
		unload(1, 1);
		lb_free(lb);
	}
}

/* Entries go 20 minutes after their last insert. */
static void test_expiry(void **state)
{
	(void)state;
	for (int late = 0; late < 2; late++) {
		struct lb *lb = mk(2, NULL, 0);
		record_at(lb, 0, R, sizeof R, NULL, 0, 10 * S);
		load(lb, 0, 1);
		struct lb_req rq = {.text = R, .text_len = sizeof R, .now = (late ? 1211 : 1209) * S};
		assert_int_equal(lb_pick(lb, &rq), late ? 1 : 0);
		unload(0, 1);
		lb_free(lb);
	}
}

static int group_setup(void **state)
{
	(void)state;
	fill(R, sizeof R, 42);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imbalance),       cmocka_unit_test(test_sigma_bound),
		cmocka_unit_test(test_ties),            cmocka_unit_test(test_integer_percent),
		cmocka_unit_test(test_expiry),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
