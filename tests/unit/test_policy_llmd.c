/* test_policy_llmd.c: the `llm-d` policy (src/core/policy_llmd.c) on crafted
 * states where llm-d's default profile decides. Scores are worked out by hand:
 *   score_i = 2 * (max q - q_i)/(max q - min q)  [1 when all equal]
 *           + 2 * (1 - kv usage_i) + 3 * matched_i / total blocks,
 * blocks of 256 bytes of text, the last partial one counted. */
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

#define MS 1000000ULL

static struct lb *mk(int n, const struct kv *params)
{
	return policy_lb("llm-d", n, params, NULL);
}

static char a_text[600]; /* 3 blocks: 256 + 256 + 88 bytes */

static void init_text(void)
{
	for (size_t i = 0; i < sizeof a_text; i++)
		a_text[i] = (char)('a' + (i * 7) % 26);
}

static struct lb_req req_text(const char *t, size_t len, uint64_t now)
{
	return (struct lb_req){
		.model = "m", .text = t, .text_len = len, .prompt_tokens = (uint32_t)(len / 4), .now = now};
}

/* ep has served the prompt (its blocks are in the index), nothing in flight. */
static void seed(struct lb *lb, int ep, const char *t, size_t len)
{
	struct lb_lease l;
	struct lb_req rq = req_text(t, len, 0);
	lb_acquire(lb, ep, &rq, &l);
	lb_release(&l);
}

/* A request on ep holding `tokens` in flight, past its first token (not queued). */
static void kv_load(struct lb *lb, int ep, uint32_t tokens, struct lb_lease *l)
{
	struct lb_req rq = {.model = "m", .max_tokens = tokens};
	lb_acquire(lb, ep, &rq, l);
	lb_first_token(l);
}

/* ep0 has served A and holds T tokens in flight (KV capacity 1000, no
 * signals: usage T/1000); ep1 is idle. The prompt B is A with byte `at`
 * changed. score0 = 2 + 2(1 - T/1000) + 3 * matched/3, score1 = 4. */
static int prefix_vs_kv(size_t at, uint32_t t, long *cached)
{
	const struct kv p[] = {{"llmd-kv-capacity-tokens", 1000}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_lease l;
	seed(lb, 0, a_text, sizeof a_text);
	kv_load(lb, 0, t, &l);
	char b[sizeof a_text];
	memcpy(b, a_text, sizeof b);
	if (at < sizeof b)
		b[at] = '#';
	struct lb_req rq = req_text(b, sizeof b, 1000 * MS);
	int ep = lb_pick(lb, &rq);
	if (cached)
		*cached = lb_predicted_cached(lb);
	lb_release(&l);
	lb_free(lb);
	return ep;
}

static void test_prefix_ratio_256_byte_blocks(void **state)
{
	(void)state;
	long cached = -2;
	/* differs at byte 300: 1 block of 3 matches: 3 * 1/3 = 1 beats 2 * T/1000 iff T < 500 */
	assert_int_equal(prefix_vs_kv(300, 450, &cached), 0);
	assert_int_equal(cached, 64); /* one block of 64 pseudo-tokens */
	assert_int_equal(prefix_vs_kv(300, 550, NULL), 1);
	/* differs at byte 200: nothing matches, the loaded one loses */
	assert_int_equal(prefix_vs_kv(200, 100, NULL), 1);
	/* differs at byte 520, in the partial last block: 2 of 3, 2 beats 2T/1000 iff T < 1000 */
	assert_int_equal(prefix_vs_kv(520, 950, &cached), 0);
	assert_int_equal(cached, 128);
	/* the same prompt: 3 of 3 (the partial block too), wins even at T = 1000 (kv term 0) */
	assert_int_equal(prefix_vs_kv(sizeof a_text, 1000, &cached), 0);
	assert_int_equal(cached, 150); /* all of it: at most the prompt's 150 tokens */
	/* the model is part of the hash: the same text under another model matches nothing */
	struct lb *lb = mk(2, NULL);
	seed(lb, 0, a_text, sizeof a_text);
	struct lb_req rq = req_text(a_text, sizeof a_text, 0);
	rq.model = "other";
	lb_pick(lb, &rq);
	assert_int_equal(lb_predicted_cached(lb), 0);
	lb_free(lb);
}

/* ep0: 2 of our requests queued (no first token); ep1: none. Engine signals
 * read at t = 1 s say the opposite: waiting 0 on ep0, 5 on ep1; KV 0.1 both. */
static int signals_at(uint64_t now, const struct kv *params)
{
	struct lb *lb = mk(2, params);
	struct lb_lease l[2];
	for (int k = 0; k < 2; k++) {
		struct lb_req rq = {.model = "m", .max_tokens = 10};
		lb_acquire(lb, 0, &rq, &l[k]);
	}
	struct lb_signals s0 = {.valid = 1, .at = 1000 * MS, .waiting = 0, .kv_usage = 0.1};
	struct lb_signals s1 = {.valid = 1, .at = 1000 * MS, .waiting = 5, .kv_usage = 0.1};
	lb_set_signals(lb, 0, &s0);
	lb_set_signals(lb, 1, &s1);
	struct lb_req rq = req_text(a_text, sizeof a_text, now);
	int ep = lb_pick(lb, &rq);
	lb_release(&l[0]);
	lb_release(&l[1]);
	lb_free(lb);
	return ep;
}

static void test_fresh_and_stale_signals(void **state)
{
	(void)state;
	/* fresh (150 ms): queue scores 1 and 0, the rest equal: ep0 */
	assert_int_equal(signals_at(1150 * MS, NULL), 0);
	assert_int_equal(signals_at(1200 * MS, NULL), 0);
	/* stale (250 ms > 200): our own queue counts, 2 and 0: ep1 */
	assert_int_equal(signals_at(1250 * MS, NULL), 1);
	const struct kv age[] = {{"llmd-signals-max-age-ms", 1000}, {NULL, 0}};
	assert_int_equal(signals_at(1250 * MS, age), 0);
}

/* Three endpoints with fresh signals, waiting 4, 6, 8 (queue scores 1, 0.5,
 * 0), KV 0 (2 points each); ep1 has served the prompt (ratio 1). With prefix
 * weight wp: score0 = 2 + 2, score1 = 1 + 2 + wp, score2 = 0 + 2. */
static int weighted(double prefix_weight)
{
	const struct kv p[] = {{"llmd-prefix-weight", prefix_weight}, {NULL, 0}};
	struct lb *lb = mk(3, p);
	seed(lb, 1, a_text, sizeof a_text);
	for (int i = 0; i < 3; i++) {
		struct lb_signals s = {.valid = 1, .at = 0, .waiting = 4 + 2 * i, .kv_usage = 0};
		lb_set_signals(lb, i, &s);
	}
	struct lb_req rq = req_text(a_text, sizeof a_text, 10 * MS);
	int ep = lb_pick(lb, &rq);
	lb_free(lb);
	return ep;
}

static void test_weighted_max_score(void **state)
{
	(void)state;
	assert_int_equal(weighted(3), 1);   /* 4 > 2 */
	assert_int_equal(weighted(1.2), 1); /* 2.2 > 2 */
	assert_int_equal(weighted(0.8), 0); /* 1.8 < 2 */

	/* KV: ep0 has served the prompt but is 90% full (signal), ep1 empty, queues equal:
	 * 2 + 0.2 + 3 = 5.2 > 4; with KV weight 8: 2 + 0.8 + 3 = 5.8 < 10 */
	for (int heavy = 0; heavy < 2; heavy++) {
		const struct kv p[] = {{"llmd-kv-weight", heavy ? 8 : 2}, {NULL, 0}};
		struct lb *lb = mk(2, p);
		seed(lb, 0, a_text, sizeof a_text);
		struct lb_signals s0 = {.valid = 1, .at = 0, .waiting = 3, .kv_usage = 0.9};
		struct lb_signals s1 = {.valid = 1, .at = 0, .waiting = 3, .kv_usage = 0};
		lb_set_signals(lb, 0, &s0);
		lb_set_signals(lb, 1, &s1);
		struct lb_req rq = req_text(a_text, sizeof a_text, 10 * MS);
		assert_int_equal(lb_pick(lb, &rq), heavy ? 1 : 0);
		lb_free(lb);
	}
}

static void test_ties_random(void **state)
{
	(void)state;
	struct lb *lb = mk(3, NULL);
	int seen[3] = {0, 0, 0};
	struct lb_req rq = req_text(a_text, sizeof a_text, 0);
	for (int i = 0; i < 300; i++)
		seen[lb_pick(lb, &rq)]++;
	for (int i = 0; i < 3; i++)
		assert_true(seen[i] > 60);
	lb_free(lb);
}

static void stat_cb(void *ctx, const char *name, int ep, double v)
{
	double *g = ctx;
	if (!strcmp(name, ep < 0 ? "index_entries" : "index_backend_entries") && ep < 1)
		g[ep + 1] = v;
}

/* Token ids without text: blocks of 64 ids, the partial last one counted; the
 * per-endpoint LRU cap; the stats. */
static void test_ids_lru_and_stats(void **state)
{
	(void)state;
	uint32_t a[200], b[200];
	for (int i = 0; i < 200; i++)
		a[i] = b[i] = 7000 + (uint32_t)i;
	b[150] = 1; /* in block 2 of 0..3 */
	struct lb *lb = mk(2, NULL);
	struct lb_lease l;
	struct lb_req ra = {.model = "m", .ids = a, .n_ids = 200};
	lb_acquire(lb, 0, &ra, &l);
	lb_release(&l);
	double g[2] = {-1, -1};
	lb_policy_stats(lb, stat_cb, g);
	assert_true(g[0] == 4 && g[1] == 4);
	struct lb_req rb = {.model = "m", .ids = b, .n_ids = 200};
	assert_int_equal(lb_pick(lb, &rb), 0); /* 3 * 2/4 */
	assert_int_equal(lb_predicted_cached(lb), 128);
	lb_free(lb);

	const struct kv p[] = {{"llmd-lru-per-pod", 2}, {NULL, 0}};
	lb = mk(2, p);
	seed(lb, 0, a_text, sizeof a_text);
	seed(lb, 1, a_text, 300);
	lb_policy_stats(lb, stat_cb, g);
	assert_true(g[0] == 4 && g[1] == 2);
	lb_free(lb);
}

int main(void)
{
	init_text();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_ratio_256_byte_blocks),
		cmocka_unit_test(test_fresh_and_stale_signals),
		cmocka_unit_test(test_weighted_max_score),
		cmocka_unit_test(test_ties_random),
		cmocka_unit_test(test_ids_lru_and_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
