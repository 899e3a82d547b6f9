/* test_sim.c: the lab's discrete-event simulator (src/core/sim.c) with the
 * client (src/core/client.c), the policies and the engine model. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/policy.h"
#include "core/prompt.h"
#include "core/sim.h"
#include "testutil.h"

#include "simfixture.h"

static struct sim_cfg config(const struct fixture *f, const char *policy, long conc, size_t num)
{
	struct sim_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.profile.kv_capacity_tokens = 40000; /* small caches: routing matters */
	cfg.replicas = 4;
	lb_opts_default(&cfg.lb);
	cfg.lb.policy = policy_find(policy);
	cfg.net_delay_ms = 0.1;
	cfg.filler = filler;
	cfg.n_filler = 3;
	cfg.item_ids = f->ids;
	cfg.client = (struct client_cfg){.mode = CLIENT_LIST, .plan = &f->plan, .request_rate = 20, .burstiness = 1,
					 .max_concurrency = conc, .seed = 9};
	(void)num;
	return cfg;
}

/* Runs cfg; checks every request's timeline; fills m. */
static void run(const struct sim_cfg *cfg, struct sim_result *res, struct bench_metrics *m)
{
	assert_int_equal(sim_run(cfg, res), 0);
	double pct[] = {99};
	client_metrics(res->client, res->duration, pct, 1, NULL, m);
	for (size_t i = 0; i < client_n_recs(res->client); i++) {
		const struct client_rec *r = client_rec(res->client, i);
		assert_true(r->r.success);
		assert_true(r->r.ttft > 0 && r->r.latency >= r->r.ttft);
		assert_int_equal(r->r.n_itl, (size_t)r->r.output_len - 1);
		for (size_t k = 0; k < r->r.n_itl; k++)
			assert_true(r->r.itl[k] >= 0);
	}
}

static void test_policies_and_warm_up(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_result ra, rb, rc;
	struct bench_metrics ma, mb, mc;
	struct sim_cfg cfg = config(&f, "least-load", 32, 200);
	run(&cfg, &ra, &ma);
	cfg = config(&f, "prefix-hash", 32, 200);
	run(&cfg, &rb, &mb);
	run(&cfg, &rc, &mc);
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
	/* a warm-up pass of the same 200 requests, not measured: the measured
	 * run counts only its own 200, hits more of the cache and starts faster */
	struct sim_result rw;
	struct bench_metrics mw;
	cfg.warm_requests = 200;
	cfg.warm_lb = cfg.lb;
	run(&cfg, &rw, &mw);
	uint64_t placed = 0;
	for (int k = 0; k < 4; k++)
		placed += rw.per_replica[k];
	double hw = (double)rw.prefix_hits / rw.prompt_tokens;
	fprintf(stderr, "    prefix-hash after a warm-up pass: hit rate %.2f, mean TTFT %.0f ms\n", hw, mw.m[M_TTFT].mean);
	assert_int_equal(mw.completed, 200);
	assert_int_equal(placed, 200);
	assert_true(hw > hb);
	assert_true(mw.m[M_TTFT].mean < mb.m[M_TTFT].mean);
	assert_true(mw.duration < mb.duration * 1.5 && mw.duration > mb.duration * 0.5);
	sim_result_free(&ra);
	sim_result_free(&rb);
	sim_result_free(&rc);
	sim_result_free(&rw);
	fixture_free(&f);
}

/* The semaphore: 20 requests arrive at once through a concurrency of 1, so
 * they run one after another: the latencies sum to the duration, and each
 * TTFT is a lone request's (the clock starts after the semaphore). Without
 * the semaphore they overlap: latencies sum to far more than the duration. */
static void test_semaphore_one(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	f.plan.num = 20;
	/* the first 20 items: first turns of 20 conversations, the same size, nothing shared */
	struct sim_result r;
	struct bench_metrics m;
	struct sim_cfg cfg = config(&f, "prefix-hash", 1, 20);
	cfg.client.request_rate = INFINITY;
	run(&cfg, &r, &m);
	double sum = 0, t0 = client_rec(r.client, 0)->r.ttft;
	for (size_t i = 0; i < 20; i++) {
		const struct client_rec *c = client_rec(r.client, i);
		sum += c->r.latency;
		assert_float_equal(c->r.ttft, t0, 1e-9);
		if (i) /* it started when the one before had ended */
			assert_true(c->t0 >= client_rec(r.client, i - 1)->t0 +
						     (uint64_t)(client_rec(r.client, i - 1)->r.latency * 1e9) - 1);
	}
	assert_float_equal(sum, m.duration, 1e-6);
	sim_result_free(&r);
	cfg.client.max_concurrency = 0;
	run(&cfg, &r, &m);
	double sum2 = 0, ttft_max = 0;
	for (size_t i = 0; i < 20; i++) {
		sum2 += client_rec(r.client, i)->r.latency;
		ttft_max = fmax(ttft_max, client_rec(r.client, i)->r.ttft);
	}
	assert_true(sum2 > 2 * m.duration);
	assert_true(ttft_max > 2 * t0);
	sim_result_free(&r);
	fixture_free(&f);
}

/* Two replicas, one prompt sent 4 times one after another: 2 unmeasured, 2
 * measured round-robin (one to each replica). */
static uint64_t warm_hits(const char *warm_policy, double lag_ms, double *ttft)
{
	static struct fixture f;
	fixture(&f);
	f.plan.num = 2;
	f.order[0] = f.order[1] = 0;
	f.plan.n_order = 2;
	struct sim_cfg cfg = config(&f, "round-robin", 1, 2);
	cfg.profile.kv_capacity_tokens = 75000;
	cfg.replicas = 2;
	cfg.warm_requests = 2;
	cfg.warm_lb = cfg.lb;
	cfg.warm_lb.policy = policy_find(warm_policy);
	cfg.client.request_rate = 1;
	cfg.client.lag_ms = lag_ms;
	cfg.client.seed = 3;
	struct sim_result res;
	struct bench_metrics m;
	run(&cfg, &res, &m);
	assert_int_equal(res.per_replica[0] + res.per_replica[1], 2); /* only the measured ones */
	*ttft = client_rec(res.client, 1)->r.ttft;
	uint64_t h = res.prefix_hits;
	sim_result_free(&res);
	fixture_free(&f);
	return h;
}

static void test_warm_policy_and_lag(void **state)
{
	(void)state;
	double t_rr, t_ph, t_lag;
	/* warmed round-robin, both replicas hold the prompt: both measured
	 * requests hit; warmed by prefix-hash only one replica does */
	uint64_t h_rr = warm_hits("round-robin", 0, &t_rr), h_ph = warm_hits("prefix-hash", 0, &t_ph);
	fprintf(stderr, "    measured prefix hits after a round-robin warm-up %llu, after prefix-hash %llu\n",
		(unsigned long long)h_rr, (unsigned long long)h_ph);
	assert_int_equal(h_rr, 2 * (1500 - 12)); /* the last partial block is recomputed: 1488 of 1500 */
	assert_int_equal(h_ph, 1500 - 12);
	/* the client's lag adds to TTFT one for one and changes nothing else */
	assert_int_equal(warm_hits("round-robin", 65, &t_lag), h_rr);
	assert_float_equal(t_lag - t_rr, 0.065, 1e-9);
}

/* A warm-up through the measured pass's own router (warm_same_router): its
 * prefix index carries over, so the measured requests go where their prompts
 * are cached; a new router (the lab's other warm modes) starts with an empty
 * index and places them by load alone. 4 replicas, 4 distinct prompts, each
 * sent once unmeasured then once measured, one at a time. */
static uint64_t same_router_hits(int same)
{
	static struct fixture f;
	fixture(&f);
	f.plan.num = 4; /* the first 4 items: first turns of 4 conversations, nothing shared */
	struct sim_cfg cfg = config(&f, "lowest-ttft", 1, 4);
	cfg.profile.kv_capacity_tokens = 75000;
	cfg.warm_requests = 4;
	cfg.warm_lb = cfg.lb;
	cfg.warm_same_router = same;
	cfg.warm_lb.seed = 77; /* (else a new router would draw the warm-up's ties again) */
	cfg.client.request_rate = 1;
	struct sim_result res;
	struct bench_metrics m;
	run(&cfg, &res, &m);
	uint64_t h = res.prefix_hits;
	sim_result_free(&res);
	fixture_free(&f);
	return h;
}

static void test_warm_same_router(void **state)
{
	(void)state;
	uint64_t same = same_router_hits(1), fresh = same_router_hits(0);
	fprintf(stderr, "    measured prefix hits, same router %llu, a new router %llu\n", (unsigned long long)same,
		(unsigned long long)fresh);
	assert_int_equal(same, 4 * (1500 - 12)); /* every one hits all but its last partial block */
	assert_true(fresh < same);
}

/* Chat sessions: each later turn sends the history with the model's own
 * answer, rendered with the chat template as the engine renders it; the
 * replica that served the earlier turn has its prompt AND its answer cached
 * (vLLM V1 caches full blocks of generated tokens), so the hit is every full
 * block of what was computed: the earlier prompt plus all but the last answer
 * token. A timeout ends a session. */
static void test_sessions_hit_answers(void **state)
{
	(void)state;
	struct tok *t = test_tokenizer();
	assert_non_null(t);
	struct tok_ids fill = {0};
	tok_encode(t, engine_filler_text, strlen(engine_filler_text), 0, &fill);
	static struct wl_msg msgs[3][6];
	static char text[3][6][200];
	for (int c = 0; c < 3; c++)
		for (int m = 0; m < 6; m++) {
			int n = snprintf(text[c][m], sizeof text[c][m], "%s %d of conversation %d: %s", m % 2 ? "answer" : "question",
					 m / 2, c, "the quick brown fox asks about the river and the old house near the field");
			msgs[c][m] = (struct wl_msg){text[c][m], (size_t)n, !(m % 2)};
		}
	struct wl_conv convs[3] = {{"a", msgs[0], 6}, {"b", msgs[1], 6}, {"c", msgs[2], 6}};
	struct wl_dataset ds = {convs, 3};
	struct prompt_cache *pc = prompt_cache_new(t, 1 << 20);
	struct sim_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.replicas = 2;
	lb_opts_default(&cfg.lb);
	cfg.lb.policy = policy_find("prefix-hash");
	cfg.net_delay_ms = 0.1;
	cfg.filler = fill.v;
	cfg.n_filler = fill.n;
	cfg.client = (struct client_cfg){.mode = CLIENT_SESSIONS, .ds = &ds, .tok = t, .pc = pc, .tpl = CHAT_LLAMA31,
					 .request_rate = INFINITY, .max_concurrency = 2, .burstiness = 1, .think_s = 0.5,
					 .max_output_tokens = 23, .seed = 5};
	struct sim_result res;
	assert_int_equal(sim_run(&cfg, &res), 0);
	fprintf(stderr, "    3 sessions x 3 turns: %zu requests, %llu prefix hits, %.2f s\n", res.n_requests,
		(unsigned long long)res.prefix_hits, res.duration);
	assert_int_equal(res.n_requests, 9);
	/* first turns share the template's system block and the message's start:
	 * a first turn hits those full blocks when another went there first */
	struct tok_ids a = {0}, b = {0};
	struct chat_msg ma = {"user", 4, msgs[0][0].text, msgs[0][0].len}, mb = {"user", 4, msgs[1][0].text, msgs[1][0].len};
	prompt_chat(pc, CHAT_LLAMA31, &ma, 1, 1, &a);
	prompt_chat(pc, CHAT_LLAMA31, &mb, 1, 1, &b);
	size_t common = 0;
	while (common < a.n && common < b.n && a.v[common] == b.v[common])
		common++;
	long shared = (long)common / 16 * 16;
	assert_true(shared >= 32); /* BOS + the 3.1 system block: more than 2 blocks */
	tok_ids_free(&a);
	tok_ids_free(&b);
	long prev_prompt[3] = {0};
	for (size_t i = 0; i < 9; i++) {
		const struct client_rec *r = client_rec(res.client, i);
		assert_true(r->r.success);
		assert_int_equal(r->r.output_len, 23);
		if (r->turn > 0) /* every full block of the earlier prompt + 22 answer tokens */
			assert_int_equal(r->r.cached_tokens, (prev_prompt[r->conv] + 22) / 16 * 16);
		else
			assert_true(r->r.cached_tokens == 0 || r->r.cached_tokens == shared);
		prev_prompt[r->conv] = r->r.prompt_len;
	}
	/* two think times in a row per session, the third session after the first */
	assert_true(res.duration > 2 * 0.5 + 0.5);
	sim_result_free(&res);
	/* a timeout shorter than any turn: every session ends at its first turn */
	cfg.client.timeout_s = 0.01;
	assert_int_equal(sim_run(&cfg, &res), 0);
	struct client_stats st;
	client_get_stats(res.client, &st);
	assert_int_equal(res.n_requests, 3);
	assert_int_equal(st.timed_out, 3);
	sim_result_free(&res);
	prompt_cache_free(pc);
	tok_ids_free(&fill);
	tok_free(t);
}

/* The fleet changes mid-run: replica 1 crashes at 3 s (its requests without a
 * token yet are retried elsewhere, the others are cut), replica 4 joins at
 * 4 s and takes requests, replica 1 comes back at 6 s with an empty cache. */
static void test_fleet_changes(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "least-load", 64, 200);
	cfg.replicas = 5;
	cfg.start_replicas = 4;
	cfg.retries = 2;
	static const struct sim_fleet_event ev[] = {{3.0, 1, 0}, {4.0, 4, 1}, {6.0, 1, 1}};
	cfg.events = ev;
	cfg.n_events = 3;
	cfg.client.request_rate = 40;
	struct sim_result res;
	assert_int_equal(sim_run(&cfg, &res), 0);
	struct bench_metrics m;
	double pct[] = {99};
	client_metrics(res.client, res.duration, pct, 1, NULL, &m);
	fprintf(stderr, "    crash at 3 s: %llu retried, %llu cut; %ld completed, %ld failed; per replica %llu %llu %llu %llu %llu\n",
		(unsigned long long)res.retries, (unsigned long long)res.cut, m.completed, m.failed,
		(unsigned long long)res.per_replica[0], (unsigned long long)res.per_replica[1],
		(unsigned long long)res.per_replica[2], (unsigned long long)res.per_replica[3],
		(unsigned long long)res.per_replica[4]);
	assert_true(res.retries > 0);
	assert_int_equal(m.failed, (long)res.cut); /* only the cut ones fail: the others were retried */
	assert_int_equal(m.completed + m.failed, 200);
	assert_true(res.per_replica[4] > 0); /* the newcomer took requests */
	/* a request that started on replica 1 before the crash and was still in
	 * flight was either retried (it completed) or cut */
	uint64_t on1 = res.per_replica[1];
	assert_true(on1 > 0);
	sim_result_free(&res);
	/* without retries, every request in flight on the crashed replica fails */
	cfg.retries = 0;
	assert_int_equal(sim_run(&cfg, &res), 0);
	client_metrics(res.client, res.duration, pct, 1, NULL, &m);
	assert_int_equal(res.retries, 0);
	assert_true(m.failed > (long)res.cut);
	sim_result_free(&res);
	fixture_free(&f);
}

/* Engine signals: read every 50 ms, they reach the policies (lowest-ttft
 * weighs a replica's waiting queue), and change nothing for the others. */
static void test_signals(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "least-load", 64, 200);
	struct sim_result a, b;
	struct bench_metrics ma, mb;
	run(&cfg, &a, &ma);
	cfg.signals_ms = 50;
	run(&cfg, &b, &mb);
	assert_float_equal(ma.m[M_TTFT].mean, mb.m[M_TTFT].mean, 0); /* least-load ignores them */
	sim_result_free(&a);
	sim_result_free(&b);
	cfg = config(&f, "lowest-ttft", 64, 200);
	run(&cfg, &a, &ma);
	cfg.signals_ms = 50;
	run(&cfg, &b, &mb);
	assert_true(ma.m[M_TTFT].mean != mb.m[M_TTFT].mean); /* lowest-ttft reads them */
	sim_result_free(&a);
	sim_result_free(&b);
	fixture_free(&f);
}

/* Admission control in virtual time (core/admit.c, as the router): everything
 * at once on 2 replicas of at most 4 requests each: some wait, some are
 * refused (429, counted by the client as failed and rejected), no request is
 * lost, and those served waited at most their budget. */
static void test_admission(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "least-load", 0, 200);
	cfg.replicas = 2;
	cfg.client.request_rate = INFINITY;
	cfg.client.tenants = "a:1,b:3";
	char err[256];
	assert_int_equal(admit_cfg_parse(&cfg.admit, "on:max-in-flight=4:queue=50:wait-ms=3000", err, sizeof err), 0);
	struct sim_result res;
	assert_int_equal(sim_run(&cfg, &res), 0);
	const struct admit_stats *as = &res.admit;
	struct client_stats cs;
	client_get_stats(res.client, &cs);
	uint64_t served = as->outcomes[ADMIT_DIRECT] + as->outcomes[ADMIT_WAITED];
	uint64_t refused = as->outcomes[ADMIT_FULL] + as->outcomes[ADMIT_EXPIRED] + as->outcomes[ADMIT_LATE];
	fprintf(stderr, "    admission: %llu direct, %llu waited, %llu refused (full %llu, waited out %llu)\n",
		(unsigned long long)as->outcomes[ADMIT_DIRECT], (unsigned long long)as->outcomes[ADMIT_WAITED],
		(unsigned long long)refused, (unsigned long long)as->outcomes[ADMIT_FULL],
		(unsigned long long)as->outcomes[ADMIT_EXPIRED]);
	assert_int_equal(as->outcomes[ADMIT_DIRECT], 8);
	assert_true(as->outcomes[ADMIT_WAITED] > 0 && as->outcomes[ADMIT_FULL] > 0);
	assert_int_equal(served + refused, 200);
	assert_int_equal(cs.rejected, (long)refused);
	assert_int_equal(cs.failed, (long)refused);
	assert_int_equal(as->queued, 0);
	for (size_t i = 0; i < client_n_recs(res.client); i++) {
		const struct client_rec *r = client_rec(res.client, i);
		assert_true(r->r.success != r->rejected);
		assert_true(r->tenant < 2);
		if (r->r.success) /* waited <= 3 s, then at most one prefill behind */
			assert_true(r->r.ttft < 3.0 + 1.0);
	}
	assert_int_equal(client_n_tenants(res.client), 2);
	struct bench_metrics ma, mb;
	double pct[] = {99};
	client_metrics_tenant(res.client, 0, res.duration, pct, 1, NULL, &ma);
	client_metrics_tenant(res.client, 1, res.duration, pct, 1, NULL, &mb);
	assert_int_equal(ma.completed + ma.failed + mb.completed + mb.failed, 200);
	assert_true(mb.completed + mb.failed > ma.completed + ma.failed); /* weights 1:3 */
	sim_result_free(&res);
	/* off: the same run without it serves everything */
	admit_cfg_default(&cfg.admit);
	assert_int_equal(sim_run(&cfg, &res), 0);
	client_get_stats(res.client, &cs);
	assert_int_equal(cs.failed, 0);
	assert_int_equal(res.admit.outcomes[ADMIT_DIRECT], 0);
	sim_result_free(&res);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policies_and_warm_up),
		cmocka_unit_test(test_semaphore_one),
		cmocka_unit_test(test_warm_policy_and_lag),
		cmocka_unit_test(test_warm_same_router),
		cmocka_unit_test(test_sessions_hit_answers),
		cmocka_unit_test(test_fleet_changes),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_admission),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
