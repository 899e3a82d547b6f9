/* test_policy_dynamo.c: the `dynamo` policy (src/core/policy_dynamo.c) on
 * crafted states where Dynamo's default selector decides. Costs are worked
 * out by hand in blocks of 16 tokens:
 *   cost_i = s * max(0, (A_i + isl)/16 - credit_i * H_i) + D_i + w * R_i,
 *   credit_i = c / (1 + d * ((A_i - A_min)/16) / ceil(isl/16)),
 *   D_i = in_flight_tokens_i/16 + (prompt blocks - H_i).
 * The prompt X is 160 tokens (10 blocks) in every test. */
#include <math.h>
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

static struct lb *mk(int n, const struct kv *params)
{
	return policy_lb("dynamo", n, params, NULL);
}

static uint32_t x_ids[168];       /* the prompt X (its first 160 tokens; all 168 in one test) */
static uint32_t load_ids[64][512]; /* other prompts, distinct from X and each other */

static void init_ids(void)
{
	for (int i = 0; i < 168; i++)
		x_ids[i] = 1000 + (uint32_t)i;
	for (int k = 0; k < 64; k++)
		for (int i = 0; i < 512; i++)
			load_ids[k][i] = 100000 + (uint32_t)k * 1000 + (uint32_t)i;
}

static struct lb_req req_x(uint64_t now)
{
	return (struct lb_req){.ids = x_ids, .n_ids = 160, .max_tokens = 0, .now = now};
}

/* ep has served X (its blocks are in the index) and holds nothing in flight. */
static void seed_x(struct lb *lb, int ep, uint64_t now)
{
	struct lb_lease l;
	struct lb_req rq = req_x(now);
	lb_acquire(lb, ep, &rq, &l);
	lb_release(&l);
}

/* A request of `prompt` tokens and `output` expected tokens placed on ep; it
 * stays in prefill (counted in prefill_tokens) unless decoding. Acquired with
 * no pick before it, so all its prompt counts as uncached. */
static void load(struct lb *lb, int ep, int k, uint32_t prompt, uint32_t output, int decoding, uint64_t now,
		 struct lb_lease *l)
{
	struct lb_req rq = {.ids = load_ids[k], .n_ids = prompt, .max_tokens = output, .now = now};
	lb_acquire(lb, ep, &rq, l);
	if (decoding)
		lb_first_token(l);
}

static int pick_x(struct lb *lb, uint64_t now)
{
	struct lb_req rq = req_x(now);
	return lb_pick(lb, &rq);
}

/* ep0 holds X but has a prefill queue of q blocks; ep1 is idle.
 * cost0 = (q + 10 - 10) + (q + 0) = 2q, cost1 = 10 + 10 = 20. */
static int cached_vs_queue(int q_blocks, long *cached)
{
	struct lb *lb = mk(2, NULL);
	struct lb_lease l;
	seed_x(lb, 0, 0);
	load(lb, 0, 0, (uint32_t)q_blocks * 16, 0, 0, 0, &l);
	assert_int_equal(lb_endpoint(lb, 0)->prefill_tokens, (uint64_t)q_blocks * 16);
	int ep = pick_x(lb, S);
	if (cached)
		*cached = lb_predicted_cached(lb);
	lb_release(&l);
	lb_free(lb);
	return ep;
}

static void test_cache_against_prefill_queue(void **state)
{
	(void)state;
	long cached = -2;
	assert_int_equal(cached_vs_queue(0, &cached), 0); /* 0 < 20 */
	assert_int_equal(cached, 160);
	assert_int_equal(cached_vs_queue(9, &cached), 0); /* 18 < 20 */
	assert_int_equal(cached, 160);
	assert_int_equal(cached_vs_queue(11, &cached), 1); /* 22 > 20 */
	assert_int_equal(cached, 0);
	assert_int_equal(cached_vs_queue(30, NULL), 1);

	/* 2q = 20: a tie, broken at random */
	struct lb *lb = mk(2, NULL);
	struct lb_lease l;
	seed_x(lb, 0, 0);
	load(lb, 0, 0, 160, 0, 0, 0, &l);
	int seen[2] = {0, 0};
	for (int i = 0; i < 200; i++)
		seen[pick_x(lb, S)]++;
	assert_true(seen[0] > 50 && seen[1] > 50);
	/* the chosen endpoint's prefill queue grows by what it lacks of X */
	struct lb_req rq = req_x(S);
	int ep;
	while ((ep = lb_pick(lb, &rq)) != 1)
		;
	struct lb_lease l2;
	lb_acquire(lb, ep, &rq, &l2);
	assert_int_equal(lb_endpoint(lb, 1)->prefill_tokens, 160);
	lb_release(&l2);
	lb_release(&l);
	lb_free(lb);
}

/* Decode blocks: ep0 holds X and has M tokens decoding; ep1 is idle.
 * cost0 = (0 + 10 - 10) + (M/16 + 0), cost1 = 20. */
static int cached_vs_decode(uint32_t m_tokens)
{
	struct lb *lb = mk(2, NULL);
	struct lb_lease l;
	seed_x(lb, 0, 0);
	load(lb, 0, 0, 16, m_tokens - 16, 1, 0, &l);
	assert_int_equal(lb_endpoint(lb, 0)->prefill_tokens, 0);
	int ep = pick_x(lb, S);
	lb_release(&l);
	lb_free(lb);
	return ep;
}

static void test_decode_heavy_worker_loses(void **state)
{
	(void)state;
	assert_int_equal(cached_vs_decode(304), 0); /* 19 < 20 */
	assert_int_equal(cached_vs_decode(336), 1); /* 21 > 20 */

	/* without any cache, the one with decode load loses every time: 20 + 2 > 20 */
	struct lb *lb = mk(2, NULL);
	struct lb_lease l;
	load(lb, 0, 0, 16, 16, 1, 0, &l);
	for (int i = 0; i < 50; i++)
		assert_int_equal(pick_x(lb, S), 1);
	lb_release(&l);
	lb_free(lb);
}

/* Three workers, no cache, decode loads of 0, 10 and 20 blocks: costs 20, 30, 40. */
static struct lb *three_costs(const struct kv *params, struct lb_lease *l)
{
	struct lb *lb = mk(3, params);
	load(lb, 1, 0, 16, 144, 1, 0, &l[0]);
	load(lb, 2, 1, 16, 304, 1, 0, &l[1]);
	return lb;
}

static void test_temperature(void **state)
{
	(void)state;
	struct lb_lease l[2];
	/* 0: the lowest cost, always */
	struct lb *lb = three_costs(NULL, l);
	for (int i = 0; i < 200; i++)
		assert_int_equal(pick_x(lb, S), 0);
	lb_release(&l[0]);
	lb_release(&l[1]);
	lb_free(lb);

	/* 1: softmax over (cost - min)/(max - min) = 0, 0.5, 1 */
	const struct kv t1[] = {{"dynamo-temperature", 1}, {NULL, 0}};
	lb = three_costs(t1, l);
	int seen[3] = {0, 0, 0};
	const int n = 20000;
	for (int i = 0; i < n; i++)
		seen[pick_x(lb, S)]++;
	double z = 1 + exp(-0.5) + exp(-1);
	assert_true(fabs(seen[0] / (double)n - 1 / z) < 0.02);
	assert_true(fabs(seen[1] / (double)n - exp(-0.5) / z) < 0.02);
	assert_true(fabs(seen[2] / (double)n - exp(-1) / z) < 0.02);
	lb_release(&l[0]);
	lb_release(&l[1]);
	lb_free(lb);

	/* equal costs at any temperature: uniform */
	const struct kv t2[] = {{"dynamo-temperature", 0.5}, {NULL, 0}};
	lb = mk(3, t2);
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 3000; i++)
		seen[pick_x(lb, S)]++;
	for (int i = 0; i < 3; i++)
		assert_true(seen[i] > 900 && seen[i] < 1100);
	lb_free(lb);
}

/* ep0 holds X with a queue of q blocks; ep1 idle: the credit and its decay. */
static int with_params(int q_blocks, const struct kv *params)
{
	struct lb *lb = mk(2, params);
	struct lb_lease l;
	seed_x(lb, 0, 0);
	load(lb, 0, 0, (uint32_t)q_blocks * 16, 0, 0, 0, &l);
	int ep = pick_x(lb, S);
	lb_release(&l);
	lb_free(lb);
	return ep;
}

static void test_credit_and_decay(void **state)
{
	(void)state;
	/* decay 0: cost0 = 8 + 8 = 16 < 20 */
	assert_int_equal(with_params(8, NULL), 0);
	/* decay 1: excess = 8 blocks / 10 request blocks = 0.8, credit = 1/1.8;
	 * cost0 = 18 - 10/1.8 + 8 = 20.44 > 20 */
	const struct kv d1[] = {{"dynamo-credit-decay", 1}, {NULL, 0}};
	assert_int_equal(with_params(8, d1), 1);
	/* decay 1, q = 7: credit = 1/1.7, cost0 = 17 - 5.88 + 7 = 18.1 < 20 */
	assert_int_equal(with_params(7, d1), 0);
	/* credit 0 ignores the cache in the prefill term: cost0 = 17 + 7 = 24 > 20 (credit 1: 14) */
	const struct kv c0[] = {{"dynamo-overlap-credit", 0}, {NULL, 0}};
	assert_int_equal(with_params(7, NULL), 0);
	assert_int_equal(with_params(7, c0), 1);

	/* the excess is measured from the least loaded: ep0 holds X with 20 blocks queued,
	 * ep1 13: credit0 = 1/(1 + 7/10); cost0 = 20 + 10 - 10/1.7 + 20 = 44.1 < cost1 = 13 + 10 +
	 * 13 + 10 = 46 (measured from 0 it would be 50 - 10/3 = 46.7: ep1) */
	{
		struct lb *lb = mk(2, d1);
		struct lb_lease l[2];
		seed_x(lb, 0, 0);
		load(lb, 0, 0, 320, 0, 0, 0, &l[0]);
		load(lb, 1, 1, 208, 0, 0, 0, &l[1]);
		assert_int_equal(pick_x(lb, S), 0);
		lb_release(&l[0]);
		lb_release(&l[1]);
		lb_free(lb);
	}

	/* the excess is normalised by the request's blocks, ceil(168/16) = 11: a 168-token
	 * prompt (10 full blocks, all on ep0), ep0's queue 126 tokens (7.875 blocks):
	 * cost0 = 7.875 + 10.5 - 10/(1 + 7.875/11) + 7.875 = 20.42 < cost1 = 10.5 + 10 = 20.5
	 * (with 10 request blocks it would be 20.66: ep1) */
	struct lb *lb = mk(2, d1);
	struct lb_lease l, l2;
	struct lb_req rq = {.ids = x_ids, .n_ids = 168, .now = 0};
	lb_acquire(lb, 0, &rq, &l);
	lb_release(&l);
	load(lb, 0, 0, 126, 0, 0, 0, &l2);
	rq.now = S;
	assert_int_equal(lb_pick(lb, &rq), 0);
	lb_release(&l2);
	lb_free(lb);
}

/* The prefill scale weighs prefill blocks against decode blocks: X is cached
 * nowhere; ep0 has 15 blocks decoding, ep1 a prefill queue of 8 blocks.
 * cost0 = s*10 + 15 + 10, cost1 = s*(8 + 10) + 8 + 10. */
static void test_prefill_scale(void **state)
{
	(void)state;
	const double scale[] = {1, 0.5, 2};
	const int want[] = {0, 1, 0}; /* 35 < 36; 30 > 27; 45 < 54 */
	for (int k = 0; k < 3; k++) {
		const struct kv p[] = {{"dynamo-prefill-scale", scale[k]}, {NULL, 0}};
		struct lb *lb = mk(2, p);
		struct lb_lease l[2];
		load(lb, 0, 0, 16, 224, 1, 0, &l[0]);
		load(lb, 1, 1, 128, 0, 0, 0, &l[1]);
		assert_int_equal(pick_x(lb, S), want[k]);
		lb_release(&l[0]);
		lb_release(&l[1]);
		lb_free(lb);
	}
}

static void test_request_weight(void **state)
{
	(void)state;
	/* ep0 holds X and has 12 one-block requests decoding: cost0 = 12 (+ 12 with w = 1) vs 20 */
	for (int w = 0; w < 2; w++) {
		const struct kv p[] = {{"dynamo-request-weight", w}, {NULL, 0}};
		struct lb *lb = mk(2, p);
		struct lb_lease l[12];
		seed_x(lb, 0, 0);
		for (int k = 0; k < 12; k++)
			load(lb, 0, k, 16, 0, 1, 0, &l[k]);
		assert_int_equal(pick_x(lb, S), w ? 1 : 0);
		for (int k = 0; k < 12; k++)
			lb_release(&l[k]);
		lb_free(lb);
	}
}

/* Routed blocks are forgotten router_ttl_secs (120 s) after routing. */
static void test_ttl(void **state)
{
	(void)state;
	for (int late = 0; late < 2; late++) {
		struct lb *lb = mk(2, NULL);
		struct lb_lease l;
		seed_x(lb, 0, 0);
		load(lb, 0, 0, 9 * 16, 0, 0, 0, &l);
		/* held: 18 < 20; forgotten: 9 + 10 + 9 + 10 = 38 > 20 */
		assert_int_equal(pick_x(lb, late ? 121 * S : 119 * S), late ? 1 : 0);
		lb_release(&l);
		lb_free(lb);
	}
}

static void stat_cb(void *ctx, const char *name, int ep, double v)
{
	double *g = ctx;
	if (!strcmp(name, ep < 0 ? "index_entries" : "index_backend_entries") && ep < 1)
		g[ep + 1] = v;
}

/* Without token ids, 64-byte character blocks stand for 16-token blocks. */
static void test_text_blocks_and_stats(void **state)
{
	(void)state;
	char text[640];
	for (int i = 0; i < 640; i++)
		text[i] = (char)('a' + i % 26);
	struct lb *lb = mk(2, NULL);
	struct lb_req rq = {.text = text, .text_len = sizeof text, .now = 0};
	struct lb_lease l;
	lb_acquire(lb, 0, &rq, &l);
	lb_release(&l);
	assert_int_equal(lb_pick(lb, &rq), 0);
	assert_int_equal(lb_predicted_cached(lb), 160);

	double g[2] = {-1, -1}; /* index entries: all, ep 0 */
	lb_policy_stats(lb, stat_cb, g);
	assert_true(g[0] == 10 && g[1] == 10);
	lb_free(lb);
}

int main(void)
{
	init_ids();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_against_prefill_queue),
		cmocka_unit_test(test_decode_heavy_worker_loses),
		cmocka_unit_test(test_temperature),
		cmocka_unit_test(test_credit_and_decay),
		cmocka_unit_test(test_prefill_scale),
		cmocka_unit_test(test_request_weight),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_text_blocks_and_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
