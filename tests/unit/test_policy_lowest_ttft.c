/* test_policy_lowest_ttft.c: prefixlb's own policy (src/core/policy_lowest_ttft.c)
 * on crafted states. Costs worked out by hand, t = prefill-ms-per-token = 0.26:
 *   cost_b = t (queue_b + uncached_b) + dec x decode_b + wait x waiting_b
 *          + A_b t uncached_b,   A_b = affinity + per-waiting x waiting_b.
 * The prompt X is 160 tokens (10 blocks of 16) in every test; each test sets
 * the terms it does not exercise to 0, so one boundary moves at a time, and
 * checks both sides of it. */
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

#define MS 1000000ULL

/* Two endpoints (or n), every term off but those given. */
static struct lb *mk(int n, const struct kv *params)
{
	const struct kv off[] = {{"wait-ms-per-request", 0}, {"affinity-per-waiting", 0}, {"decode-ms-per-request", 0},
				 {NULL, 0}};
	return policy_lb("lowest-ttft", n, off, params);
}

static uint32_t x_ids[160], y_ids[160];
static uint32_t load_ids[16][2048]; /* other prompts, distinct from X, Y and each other */

static void init_ids(void)
{
	for (int i = 0; i < 160; i++) {
		x_ids[i] = 1000 + (uint32_t)i;
		y_ids[i] = 5000 + (uint32_t)i;
	}
	for (int k = 0; k < 16; k++)
		for (int i = 0; i < 2048; i++)
			load_ids[k][i] = 100000 + (uint32_t)k * 4096 + (uint32_t)i;
}

static struct lb_req req_ids(const uint32_t *ids, uint64_t now)
{
	return (struct lb_req){.ids = ids, .n_ids = 160, .now = now};
}

/* ep has served X: its blocks are in the index, nothing in flight. */
static void seed_x(struct lb *lb, int ep)
{
	struct lb_lease l;
	struct lb_req rq = req_ids(x_ids, 0);
	lb_acquire(lb, ep, &rq, &l);
	lb_release(&l);
}

/* A request of `prompt` tokens on ep, acquired without a pick (all of it
 * uncached: counted in prefill_tokens until its first token). */
static void load(struct lb *lb, int ep, int k, uint32_t prompt, int decoding, struct lb_lease *l)
{
	struct lb_req rq = {.ids = load_ids[k], .n_ids = prompt, .now = 0};
	lb_acquire(lb, ep, &rq, l);
	if (decoding)
		lb_first_token(l);
}

static int pick_x(struct lb *lb, uint64_t now)
{
	struct lb_req rq = req_ids(x_ids, now);
	return lb_pick(lb, &rq);
}

/* ep0 holds X behind a prefill queue of q tokens; ep1 is idle. */
static int holder_with_queue(uint32_t q, const struct kv *params, long *cached)
{
	struct lb *lb = mk(2, params);
	struct lb_lease l;
	seed_x(lb, 0);
	load(lb, 0, 0, q, 0, &l);
	assert_int_equal(lb_endpoint(lb, 0)->prefill_tokens, q);
	int ep = pick_x(lb, MS);
	if (cached)
		*cached = lb_predicted_cached(lb);
	lb_release(&l);
	lb_free(lb);
	return ep;
}

/* A = 8: cost0 = t q, cost1 = t 160 + 8 t 160: ep0 while q < 1440. */
static void test_cache_against_queue(void **state)
{
	(void)state;
	const struct kv a8[] = {{"affinity", 8}, {NULL, 0}};
	long cached = -2;
	assert_int_equal(holder_with_queue(0, a8, &cached), 0);
	assert_int_equal(cached, 160);
	assert_int_equal(holder_with_queue(1424, a8, &cached), 0);
	assert_int_equal(cached, 160);
	assert_int_equal(holder_with_queue(1456, a8, &cached), 1);
	assert_int_equal(cached, 0);
	/* A = 0 (plain TTFT): ep0 while q < 160 */
	const struct kv a0[] = {{"affinity", 0}, {NULL, 0}};
	assert_int_equal(holder_with_queue(144, a0, NULL), 0);
	assert_int_equal(holder_with_queue(176, a0, NULL), 1);
}

/* A miss weighs more where requests wait: ep0 holds X behind a queue of q
 * tokens, ep1 is cold with one 1-token request waiting. per-waiting 1: A_1 =
 * 9, cost1 = 0.26 x 161 + 9 x 41.6 = 416.26, ep0 while q < 1601; per-waiting 0:
 * cost1 = 374.66, ep0 while q < 1441. */
static int cold_backlogged(uint32_t q, double per_waiting)
{
	const struct kv p[] = {{"affinity", 8}, {"affinity-per-waiting", per_waiting}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_lease l0, l1;
	seed_x(lb, 0);
	load(lb, 0, 0, q, 0, &l0);
	load(lb, 1, 1, 1, 0, &l1);
	int ep = pick_x(lb, MS);
	lb_release(&l0);
	lb_release(&l1);
	lb_free(lb);
	return ep;
}

static void test_affinity_grows_with_backlog(void **state)
{
	(void)state;
	assert_int_equal(cold_backlogged(1520, 1), 0);
	assert_int_equal(cold_backlogged(1520, 0), 1);
	assert_int_equal(cold_backlogged(1616, 1), 1);
	assert_int_equal(cold_backlogged(1424, 0), 0);
}

/* wait 200: n requests of 1 token wait on ep0 (holder), ep1 idle:
 * cost0 = 0.26 n + 200 n - 8 x 41.6, cost1 = 41.6: ep0 while n < 1.87. */
static int holder_with_waiting(int n, double wait)
{
	const struct kv p[] = {{"affinity", 8}, {"wait-ms-per-request", wait}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_lease l[4];
	seed_x(lb, 0);
	for (int i = 0; i < n; i++)
		load(lb, 0, i, 1, 0, &l[i]);
	int ep = pick_x(lb, MS);
	for (int i = 0; i < n; i++)
		lb_release(&l[i]);
	lb_free(lb);
	return ep;
}

static void test_waiting_requests(void **state)
{
	(void)state;
	assert_int_equal(holder_with_waiting(1, 200), 0);
	assert_int_equal(holder_with_waiting(2, 200), 1);
	assert_int_equal(holder_with_waiting(2, 0), 0); /* the term off: 2 tokens of queue are nothing */
}

/* decode 10 ms, A = 1: k decoding requests on ep0 (holder):
 * cost0 = 10 k - 41.6, cost1 = 41.6: ep0 while k < 8.32. */
static int holder_with_decodes(int k, double decode_ms)
{
	const struct kv p[] = {{"affinity", 1}, {"decode-ms-per-request", decode_ms}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_lease l[12];
	seed_x(lb, 0);
	for (int i = 0; i < k; i++)
		load(lb, 0, i, 1, 1, &l[i]);
	assert_int_equal(lb_endpoint(lb, 0)->n_prefill, 0);
	int ep = pick_x(lb, MS);
	for (int i = 0; i < k; i++)
		lb_release(&l[i]);
	lb_free(lb);
	return ep;
}

static void test_decoding_requests(void **state)
{
	(void)state;
	assert_int_equal(holder_with_decodes(8, 10), 0);
	assert_int_equal(holder_with_decodes(9, 10), 1);
	assert_int_equal(holder_with_decodes(9, 0), 0);
}

/* Guard: 3 requests decode on ep0 (holder), n = 2, total 3: only backends with
 * in_flight <= factor x 4 / 2 compete: 2 -> 4 (ep0 in), 1.5 -> 3 (in, at the
 * bound), 1.2 -> 2.4 (out). */
static int guarded(double factor)
{
	const struct kv p[] = {{"affinity", 8}, {"guard-factor", factor}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_lease l[3];
	seed_x(lb, 0);
	for (int i = 0; i < 3; i++)
		load(lb, 0, i, 1, 1, &l[i]);
	int ep = pick_x(lb, MS);
	for (int i = 0; i < 3; i++)
		lb_release(&l[i]);
	lb_free(lb);
	return ep;
}

static void test_guard(void **state)
{
	(void)state;
	assert_int_equal(guarded(2), 0);
	assert_int_equal(guarded(1.5), 0);
	assert_int_equal(guarded(1.2), 1);
}

/* Engine signals: ep0 (holder) reports 10 waiting; the mean prompt seen is
 * 160, so its queue is 1600 tokens: cost0 = 0.26 (1600 - 1280) = 83.2 >
 * cost1 = 41.6. Older than signals-max-age-ms (1000), they are ignored. */
static void test_engine_signals(void **state)
{
	(void)state;
	const struct kv p[] = {{"affinity", 8}, {NULL, 0}};
	for (int stale = 0; stale < 2; stale++) {
		struct lb *lb = mk(2, p);
		seed_x(lb, 0);
		uint64_t now = 5000 * MS;
		struct lb_signals sg = {.valid = 1, .at = stale ? now - 1001 * MS : now - 999 * MS, .waiting = 10};
		lb_set_signals(lb, 0, &sg);
		assert_int_equal(pick_x(lb, now), stale ? 0 : 1);
		lb_free(lb);
	}
}

/* The pick's prediction: the holder's cached tokens, and only the uncached
 * rest counts in its prefill queue once acquired. */
static void test_prediction_and_prefill_accounting(void **state)
{
	(void)state;
	const struct kv p[] = {{"affinity", 8}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	seed_x(lb, 1);
	struct lb_req rq = {.ids = x_ids, .n_ids = 160, .now = MS};
	int ep = lb_pick(lb, &rq);
	assert_int_equal(ep, 1);
	assert_int_equal(lb_predicted_cached(lb), 160);
	struct lb_lease l;
	lb_acquire(lb, ep, &rq, &l);
	assert_int_equal(lb_endpoint(lb, 1)->prefill_tokens, 0);
	assert_int_equal(lb_endpoint(lb, 1)->n_prefill, 1);
	lb_first_token(&l);
	assert_int_equal(lb_endpoint(lb, 1)->n_prefill, 0);
	lb_release(&l);
	/* Y is new: predicted 0 cached, all 160 tokens to prefill */
	struct lb_req ry = {.ids = y_ids, .n_ids = 160, .now = 2 * MS};
	ep = lb_pick(lb, &ry);
	assert_true(ep == 0 || ep == 1);
	assert_int_equal(lb_predicted_cached(lb), 0);
	lb_acquire(lb, ep, &ry, &l);
	assert_int_equal(lb_endpoint(lb, ep)->prefill_tokens, 160);
	lb_release(&l);
	lb_free(lb);
}

/* An acquire with no pick before it records its own request's blocks, even
 * at the address of the request picked last (a reused stack slot). */
static void test_acquire_without_pick_at_reused_address(void **state)
{
	(void)state;
	const struct kv p[] = {{"affinity", 8}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_req rq = req_ids(x_ids, MS);
	struct lb_lease l;
	assert_true(lb_pick(lb, &rq) >= 0);
	lb_acquire(lb, 1, &rq, &l); /* X on ep1 */
	lb_release(&l);
	rq = req_ids(x_ids, MS);
	assert_true(lb_pick(lb, &rq) >= 0); /* picked, not acquired */
	rq = req_ids(y_ids, MS);            /* the same address, another request */
	lb_acquire(lb, 0, &rq, &l);         /* Y on ep0, without a pick */
	lb_release(&l);
	struct lb_req ry = req_ids(y_ids, 2 * MS);
	assert_int_equal(lb_pick(lb, &ry), 0);
	assert_int_equal(lb_predicted_cached(lb), 160);
	lb_free(lb);
}

/* A removed backend's entries go with it: a new backend in its slot holds
 * nothing. */
static void test_remove_clears_slot(void **state)
{
	(void)state;
	const struct kv p[] = {{"affinity", 8}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	seed_x(lb, 0);
	assert_int_equal(pick_x(lb, MS), 0);
	assert_int_equal(lb_predicted_cached(lb), 160);
	lb_remove(lb, 0);
	assert_int_equal(lb_add(lb, "10.0.3.9:8000", NULL, 0), 0);
	pick_x(lb, 2 * MS);
	assert_int_equal(lb_predicted_cached(lb), 0);
	lb_free(lb);
}

/* Without ids the text is cut in block-chars blocks (64 bytes here) counted
 * as 16 tokens each: 640 characters held = 160 tokens predicted. */
static void test_character_blocks(void **state)
{
	(void)state;
	char text[641];
	for (int i = 0; i < 640; i++)
		text[i] = (char)('a' + (i * 7) % 26);
	text[640] = 0;
	const struct kv p[] = {{"affinity", 8}, {"block-chars", 64}, {NULL, 0}};
	struct lb *lb = mk(2, p);
	struct lb_req rq = {.text = text, .text_len = 640, .prompt_tokens = 160, .now = 0};
	struct lb_lease l;
	lb_acquire(lb, 1, &rq, &l);
	lb_release(&l);
	rq.now = MS;
	assert_int_equal(lb_pick(lb, &rq), 1);
	assert_int_equal(lb_predicted_cached(lb), 160);
	text[100] = '#'; /* the second block differs: only the first one matches */
	rq.now = 2 * MS;
	assert_int_equal(lb_pick(lb, &rq), 1);
	assert_int_equal(lb_predicted_cached(lb), 16);
	lb_free(lb);
}

int main(void)
{
	init_ids();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_against_queue),
		cmocka_unit_test(test_affinity_grows_with_backlog),
		cmocka_unit_test(test_waiting_requests),
		cmocka_unit_test(test_decoding_requests),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_engine_signals),
		cmocka_unit_test(test_prediction_and_prefill_accounting),
		cmocka_unit_test(test_acquire_without_pick_at_reused_address),
		cmocka_unit_test(test_remove_clears_slot),
		cmocka_unit_test(test_character_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
