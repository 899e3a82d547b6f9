/* test_sim_routers.c: the lab's simulator with several routers (sim_cfg.routers,
 * each with its own routing state) and in-band load reports (sim_cfg.orca). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/policy.h"
#include "core/sim.h"

#include "simfixture.h"

static struct sim_cfg config(const struct fixture *f, const char *policy, int routers)
{
	struct sim_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.profile = *engine_profile_find("l4-llama3.1-8b");
	cfg.profile.kv_capacity_tokens = 40000;
	cfg.replicas = 4;
	cfg.routers = routers;
	char err[200];
	lb_opts_default(&cfg.lb);
	assert_int_equal(lb_opts_policy(&cfg.lb, policy, err, sizeof err), 0);
	cfg.net_delay_ms = 0.1;
	cfg.filler = filler;
	cfg.n_filler = 3;
	cfg.item_ids = f->ids;
	cfg.client = (struct client_cfg){.mode = CLIENT_LIST, .plan = &f->plan, .request_rate = 40, .burstiness = 1,
					 .max_concurrency = 64, .seed = 9};
	return cfg;
}

struct out {
	double ttft_mean;
	uint64_t hits, per[5];
	long completed, failed;
	uint64_t retries;
};

static struct out run(const struct sim_cfg *cfg)
{
	struct sim_result res;
	assert_int_equal(sim_run(cfg, &res), 0);
	struct bench_metrics m;
	double pct[] = {99};
	client_metrics(res.client, res.duration, pct, 1, NULL, &m);
	struct out o = {m.m[M_TTFT].mean, res.prefix_hits, {0}, m.completed, m.failed, res.retries};
	for (int r = 0; r < cfg->replicas && r < 5; r++)
		o.per[r] = res.per_replica[r];
	sim_result_free(&res);
	return o;
}

/* One router (0 or 1) is the simulator as it was; without a bound, a
 * consistent hash gives every request the same replica whichever router
 * takes it, so 4 routers route exactly as one. */
static void test_hash_agrees(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "prefix-hash:load-factor=100", 0);
	struct out zero = run(&cfg);
	cfg.routers = 1;
	struct out one = run(&cfg);
	assert_memory_equal(&zero, &one, sizeof zero);
	cfg.routers = 4;
	struct out four = run(&cfg);
	assert_memory_equal(one.per, four.per, sizeof one.per);
	assert_int_equal(one.hits, four.hits);
	cfg.router_assign = SIM_ASSIGN_ROUND_ROBIN;
	four = run(&cfg);
	assert_memory_equal(one.per, four.per, sizeof one.per);
	assert_int_equal(four.completed, 200);
	fixture_free(&f);
}

/* Routers keep their own counts: least-load with 4 routers places requests
 * differently from one router (each sees a quarter of the load), and the runs
 * are deterministic per seed. */
static void test_own_state(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "least-load", 1);
	struct out one = run(&cfg);
	cfg.routers = 4;
	struct out four = run(&cfg), again = run(&cfg);
	assert_memory_equal(&four, &again, sizeof four);
	assert_true(memcmp(one.per, four.per, sizeof one.per) != 0);
	assert_int_equal(four.completed, 200);
	fixture_free(&f);
}

/* In-band reports reach the policies that read signals (lowest-ttft weighs
 * the engines' waiting queues) and nothing else changes for the others. */
static void test_orca(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "least-load", 4);
	struct out off = run(&cfg);
	cfg.orca = 1;
	struct out on = run(&cfg);
	assert_memory_equal(&off, &on, sizeof off);
	cfg = config(&f, "lowest-ttft", 4);
	off = run(&cfg);
	cfg.orca = 1;
	on = run(&cfg);
	assert_true(off.ttft_mean != on.ttft_mean);
	assert_int_equal(on.completed, 200);
	fixture_free(&f);
}

/* A replica crashes and comes back with 4 routers: each router retries its
 * own requests and drops the replica from its own pool. */
static void test_fleet_changes(void **state)
{
	(void)state;
	static struct fixture f;
	fixture(&f);
	struct sim_cfg cfg = config(&f, "lowest-ttft:home-slack=8", 4);
	cfg.replicas = 5;
	cfg.start_replicas = 4;
	cfg.retries = 2;
	cfg.orca = 1;
	cfg.signals_ms = 100;
	static const struct sim_fleet_event ev[] = {{2.0, 1, 0}, {3.0, 4, 1}, {4.0, 1, 1}};
	cfg.events = ev;
	cfg.n_events = 3;
	struct out o = run(&cfg);
	assert_true(o.retries > 0);
	assert_int_equal(o.completed + o.failed, 200);
	assert_true(o.per[4] > 0);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_agrees),
		cmocka_unit_test(test_own_state),
		cmocka_unit_test(test_orca),
		cmocka_unit_test(test_fleet_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
