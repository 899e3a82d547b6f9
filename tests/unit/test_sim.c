/* test_sim.c: the lab's discrete-event simulator (src/core/sim.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/sim.h"

static const uint32_t filler[] = {279, 315, 323};

/* 40 conversations x 5 turns, turn k+1 extends turn k (fork-like); all
 * first turns, then all second turns, ... */
static void workload(struct sim_req *r, uint32_t **ids, char **keys, size_t *n)
{
	size_t k = 0;
	for (int turn = 0; turn < 5; turn++) {
		for (int c = 0; c < 40; c++, k++) {
			size_t len = 1500 + (size_t)turn * 600;
			ids[k] = malloc(len * sizeof **ids);
			for (size_t i = 0; i < len; i++)
				ids[k][i] = (uint32_t)(c * 100000 + (int)i);
			keys[k] = malloc(128);
			snprintf(keys[k], 128, "User: conversation %d, a first message of more than a hundred characters so "
					      "that every turn hashes the same",
				 c);
			r[k] = (struct sim_req){ids[k], len, 20 + (uint32_t)(c % 7), keys[k], strlen(keys[k])};
		}
	}
	*n = k;
}

static void run_warm(enum lb_policy p, long conc, const struct sim_req *r, size_t n, size_t warm,
		     struct sim_result *res, struct bench_metrics *m)
{
	struct sim_cfg cfg = {0};
	cfg.warm = warm;
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.profile.kv_capacity_tokens = 40000; /* small caches: routing matters */
	cfg.replicas = 4;
	lb_opts_default(&cfg.lb);
	cfg.lb.policy = p;
	cfg.request_rate = 20;
	cfg.burstiness = 1;
	cfg.max_concurrency = conc;
	cfg.net_delay_ms = 0.1;
	cfg.seed = 9;
	struct req_result *out = calloc(n, sizeof *out);
	assert_int_equal(sim_run(&cfg, r, n, filler, 3, out, res), 0);
	double pct[] = {99};
	stats_compute(out + warm, n - warm, res->duration, pct, 1, NULL, m);
	/* event order: every request's tokens came after its start, gaps >= 0 */
	for (size_t i = 0; i < n; i++) {
		assert_true(out[i].success);
		assert_true(out[i].ttft > 0 && out[i].latency >= out[i].ttft);
		assert_int_equal(out[i].n_itl, (size_t)out[i].output_len - 1);
		for (size_t k = 0; k < out[i].n_itl; k++)
			assert_true(out[i].itl[k] >= 0);
	}
	sim_results_free(out, n);
	free(out);
}

static void run(enum lb_policy p, long conc, const struct sim_req *r, size_t n, struct sim_result *res,
		struct bench_metrics *m)
{
	run_warm(p, conc, r, n, 0, res, m);
}

/* n requests all at once (rate inf) through a semaphore of conc (0: none):
 * the sum of their latencies, their TTFT range and the run's duration. */
static void run_burst(long conc, const struct sim_req *r, size_t n, double *lat_sum, double *ttft_min,
		      double *ttft_max, double *duration)
{
	struct sim_cfg cfg = {0};
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.replicas = 4;
	lb_opts_default(&cfg.lb);
	cfg.lb.policy = LB_PREFIX_HASH;
	cfg.request_rate = INFINITY;
	cfg.max_concurrency = conc;
	cfg.net_delay_ms = 0.1;
	cfg.seed = 9;
	struct req_result *out = calloc(n, sizeof *out);
	struct sim_result res;
	assert_int_equal(sim_run(&cfg, r, n, filler, 3, out, &res), 0);
	*lat_sum = 0;
	*ttft_min = INFINITY;
	*ttft_max = 0;
	for (size_t i = 0; i < n; i++) {
		assert_true(out[i].success);
		*lat_sum += out[i].latency;
		*ttft_min = out[i].ttft < *ttft_min ? out[i].ttft : *ttft_min;
		*ttft_max = out[i].ttft > *ttft_max ? out[i].ttft : *ttft_max;
	}
	*duration = res.duration;
	sim_results_free(out, n);
	free(out);
}

static void test_sim(void **state)
{
	(void)state;
	static struct sim_req r[200];
	static uint32_t *ids[200];
	static char *keys[200];
	size_t n;
	workload(r, ids, keys, &n);
	struct sim_result ra, rb, rc;
	struct bench_metrics ma, mb, mc;
	run(LB_LEAST_LOAD, 32, r, n, &ra, &ma);
	run(LB_PREFIX_HASH, 32, r, n, &rb, &mb);
	run(LB_PREFIX_HASH, 32, r, n, &rc, &mc);
	assert_int_equal(ma.completed, 200);
	/* deterministic: the same seed gives the same run */
	assert_float_equal(mb.duration, mc.duration, 0);
	assert_float_equal(mb.m[M_TTFT].mean, mc.m[M_TTFT].mean, 0);
	double ha = (double)ra.prefix_hits / ra.prompt_tokens, hb = (double)rb.prefix_hits / rb.prompt_tokens;
	fprintf(stderr, "    hit rate least-load %.2f, prefix-hash %.2f; mean TTFT %.0f vs %.0f ms\n", ha, hb,
		ma.m[M_TTFT].mean, mb.m[M_TTFT].mean);
	/* prefix-hash keeps conversations on one replica: more hits, faster first tokens */
	assert_true(hb > ha);
	assert_true(mb.m[M_TTFT].mean < ma.m[M_TTFT].mean);
	/* a warm-up pass (the same 200 requests, not measured): the measured run
	 * counts only its own 200, hits more of the cache and starts faster */
	static struct sim_req rw[400];
	memcpy(rw, r, 200 * sizeof *r);
	memcpy(rw + 200, r, 200 * sizeof *r);
	struct sim_result rwarm;
	struct bench_metrics mwarm;
	run_warm(LB_PREFIX_HASH, 32, rw, 400, 200, &rwarm, &mwarm);
	uint64_t placed = 0;
	for (int k = 0; k < 4; k++)
		placed += rwarm.per_replica[k];
	double hw = (double)rwarm.prefix_hits / rwarm.prompt_tokens;
	fprintf(stderr, "    prefix-hash after a warm-up pass: hit rate %.2f, mean TTFT %.0f ms\n", hw, mwarm.m[M_TTFT].mean);
	assert_int_equal(mwarm.completed, 200);
	assert_int_equal(placed, 200);
	assert_true(hw > hb);
	assert_true(mwarm.m[M_TTFT].mean < mb.m[M_TTFT].mean);
	assert_true(mwarm.duration < mb.duration * 1.5 && mwarm.duration > mb.duration * 0.5);
	/* the semaphore: with concurrency 1 requests never overlap. All 20
	 * arrive at once (rate inf), so each waits at the semaphore and its clock
	 * starts when the one before it ends: back to back, the latencies add up
	 * to the run's duration exactly, and every request finds an idle fleet
	 * (the 20 prompts are different 1,500-token conversations: equal TTFTs).
	 * Without the semaphore the same burst overlaps: the latencies add up to
	 * several durations and every TTFT carries the wait for the whole batch. */
	double lat1, ttft1_min, ttft1_max, dur1, latn, ttftn_min, ttftn_max, durn;
	run_burst(1, r, 20, &lat1, &ttft1_min, &ttft1_max, &dur1);
	run_burst(0, r, 20, &latn, &ttftn_min, &ttftn_max, &durn);
	fprintf(stderr, "    20 at once, concurrency 1: latencies %.3f s over %.3f s, TTFT %.1f-%.1f ms; "
			"unlimited: %.3f s over %.3f s, TTFT %.1f-%.1f ms\n",
		lat1, dur1, ttft1_min * 1e3, ttft1_max * 1e3, latn, durn, ttftn_min * 1e3, ttftn_max * 1e3);
	assert_true(dur1 > 0);
	assert_float_equal(lat1, dur1, 1e-6 * dur1);
	assert_true(ttft1_max < ttft1_min * 1.01);
	assert_true(latn > 2 * durn);
	assert_true(ttftn_min > 2 * ttft1_max); /* even the first token of a burst waits for its batch */
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(keys[i]);
	}
}

/* Two replicas, one prompt sent 4 times one after another: 2 unmeasured, 2
 * measured round-robin (one to each replica). */
static uint64_t warm_hits(enum lb_policy warm_policy, double lag_ms, double *ttft)
{
	static uint32_t ids[800];
	for (size_t i = 0; i < 800; i++)
		ids[i] = (uint32_t)(1000 + i);
	const char *key = "User: one conversation";
	struct sim_req r[4];
	for (int i = 0; i < 4; i++)
		r[i] = (struct sim_req){ids, 800, 4, key, strlen(key)};
	struct sim_cfg cfg = {0};
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.replicas = 2;
	lb_opts_default(&cfg.lb);
	cfg.lb.policy = LB_ROUND_ROBIN;
	cfg.warm = 2;
	cfg.warm_lb = cfg.lb;
	cfg.warm_lb.policy = warm_policy;
	cfg.warm_lb_set = 1;
	cfg.request_rate = 1;
	cfg.burstiness = 1;
	cfg.max_concurrency = 1;
	cfg.net_delay_ms = 0.1;
	cfg.client_lag_ms = lag_ms;
	cfg.seed = 3;
	struct req_result out[4];
	struct sim_result res;
	assert_int_equal(sim_run(&cfg, r, 4, filler, 3, out, &res), 0);
	assert_int_equal(res.per_replica[0] + res.per_replica[1], 2); /* only the measured ones */
	*ttft = out[3].ttft;
	sim_results_free(out, 4);
	return res.prefix_hits;
}

static void test_warm_policy_and_lag(void **state)
{
	(void)state;
	double t_rr, t_ph, t_lag;
	/* warmed round-robin, both replicas hold the prompt: both measured
	 * requests hit; warmed by prefix-hash only one replica does */
	uint64_t h_rr = warm_hits(LB_ROUND_ROBIN, 0, &t_rr), h_ph = warm_hits(LB_PREFIX_HASH, 0, &t_ph);
	fprintf(stderr, "    measured prefix hits after a round-robin warm-up %llu, after prefix-hash %llu\n",
		(unsigned long long)h_rr, (unsigned long long)h_ph);
	assert_int_equal(h_rr, 2 * (800 - 16)); /* a full hit recomputes the last block */
	assert_int_equal(h_ph, 800 - 16);
	/* the client's lag adds to TTFT one for one and changes nothing else */
	assert_int_equal(warm_hits(LB_ROUND_ROBIN, 65, &t_lag), h_rr);
	assert_float_equal(t_lag - t_rr, 0.065, 1e-9);
}

/* Sessions: turn k+1 = turn k's prompt + its answer + 32 new ids. */
struct sess_ctx {
	uint32_t ids[3][4][256];
	int turn[3];
	char key[3][32];
	size_t calls, bad_answers;
};

static int next_turn(void *ctx, size_t session, const uint32_t *answer, size_t n_answer, struct sim_req *out)
{
	struct sess_ctx *c = ctx;
	int k = c->turn[session];
	if (n_answer != 8)
		c->bad_answers++;
	c->calls++;
	if (k == 2)
		return 1; /* three turns each */
	size_t n = k == 0 ? 64 : 64 + 8 + 32 + (size_t)(k - 1) * (8 + 32);
	uint32_t *prev = c->ids[session][k], *nx = c->ids[session][k + 1];
	memcpy(nx, prev, n * sizeof *nx);
	memcpy(nx + n, answer, n_answer * sizeof *nx);
	for (size_t i = 0; i < 32; i++)
		nx[n + n_answer + i] = (uint32_t)(50000 + session * 1000 + (size_t)k * 100 + i);
	c->turn[session] = k + 1;
	*out = (struct sim_req){nx, n + n_answer + 32, 8, c->key[session], strlen(c->key[session])};
	return 0;
}

static void test_sessions(void **state)
{
	(void)state;
	static struct sess_ctx c;
	struct sim_req first[3];
	for (size_t sn = 0; sn < 3; sn++) {
		for (size_t i = 0; i < 64; i++)
			c.ids[sn][0][i] = (uint32_t)(1000 + sn * 100 + i);
		snprintf(c.key[sn], sizeof c.key[sn], "User: session %zu", sn);
		first[sn] = (struct sim_req){c.ids[sn][0], 64, 8, c.key[sn], strlen(c.key[sn])};
	}
	struct sim_cfg cfg = {0};
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.replicas = 2;
	lb_opts_default(&cfg.lb);
	cfg.lb.policy = LB_PREFIX_HASH;
	cfg.request_rate = 1.0 / 0.0; /* inf: 2 sessions at once, the third when one ends */
	cfg.burstiness = 1;
	cfg.max_concurrency = 2;
	cfg.net_delay_ms = 0.1;
	cfg.seed = 5;
	cfg.next_turn = next_turn;
	cfg.turn_ctx = &c;
	cfg.think_s = 0.5;
	cfg.max_requests = 100;
	struct req_result out[100];
	struct sim_result res;
	assert_int_equal(sim_run(&cfg, first, 3, filler, 3, out, &res), 0);
	fprintf(stderr, "    3 sessions x 3 turns: %zu requests, %llu prefix hits, %.2f s\n", res.n_requests,
		(unsigned long long)res.prefix_hits, res.duration);
	assert_int_equal(res.n_requests, 9);
	assert_int_equal(c.calls, 9);      /* once per finished turn */
	assert_int_equal(c.bad_answers, 0); /* called with the whole answer */
	for (size_t i = 0; i < 9; i++)
		assert_true(out[i].success && out[i].output_len == 8);
	/* each later turn hits its session's earlier prompt AND answer, in full
	 * blocks of 16 of what has KV (the last answer token has none): turn 2
	 * (64 + 8 + 32 ids) hits 64 of 64 + 7; turn 3 hits 96 of 104 + 7 */
	assert_int_equal(res.prefix_hits, 3 * (64 + 96));
	/* two think times in a row per session, the third session after the first */
	assert_true(res.duration > 2 * 0.5 + 0.5);
	sim_results_free(out, res.n_requests);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_sim), cmocka_unit_test(test_warm_policy_and_lag),
					   cmocka_unit_test(test_sessions)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
