/* test_lb.c: routing policies and in-flight accounting (src/core/lb.c). */
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

static struct lb *mk(const char *p, int n)
{
	return policy_lb(p, n, NULL, NULL);
}

static int pick(struct lb *lb, const char *model, uint64_t key, const int *tried, size_t n_tried)
{
	struct lb_req rq = {.model = model, .key = key, .tried = tried, .n_tried = n_tried};
	return lb_pick(lb, &rq);
}

static uint64_t key_of(struct lb *lb, int i)
{
	char k[64];
	int n = snprintf(k, sizeof k, "User: conversation %d says hello", i);
	return lb_key(lb, k, (size_t)n);
}

static void test_key(void **state)
{
	(void)state;
	struct lb *lb = mk("prefix-hash", 1);
	/* only the first 100 code points count */
	char a[300], b[300];
	memset(a, 'x', sizeof a);
	memcpy(b, a, sizeof b);
	b[150] = 'y';
	assert_true(lb_key(lb, a, 300) == lb_key(lb, b, 300));
	b[99] = 'y';
	assert_true(lb_key(lb, a, 300) != lb_key(lb, b, 300));
	/* code points, not bytes: 100 x "é" is 200 bytes */
	char c[400], d[400];
	for (int i = 0; i < 200; i++) {
		c[2 * i] = (char)0xC3;
		c[2 * i + 1] = (char)0xA9;
	}
	memcpy(d, c, sizeof d);
	d[200] = 'z';
	assert_true(lb_key(lb, c, 400) == lb_key(lb, d, 400));
	lb_free(lb);
}

/* At zero load a key always goes to its ring owner; keys spread evenly. */
static void test_prefix_spread_and_stick(void **state)
{
	(void)state;
	struct lb *lb = mk("prefix-hash", 8);
	int count[8] = {0};
	for (int i = 0; i < 8000; i++) {
		int ep = pick(lb, NULL, key_of(lb, i), NULL, 0);
		assert_true(ep >= 0 && ep < 8);
		assert_int_equal(pick(lb, NULL, key_of(lb, i), NULL, 0), ep);
		count[ep]++;
	}
	for (int i = 0; i < 8; i++)
		assert_true(count[i] > 500 && count[i] < 1600); /* 1000 +- 60% with 256 vnodes */
	lb_free(lb);
}

/* Adding a ninth endpoint moves about 1/9 of the keys, all to the new one. */
static void test_prefix_remap(void **state)
{
	(void)state;
	struct lb *lb = mk("prefix-hash", 8);
	int before[4000];
	for (int i = 0; i < 4000; i++)
		before[i] = pick(lb, NULL, key_of(lb, i), NULL, 0);
	int nine = lb_add(lb, "10.0.0.9:8000", NULL, 0);
	int moved = 0;
	for (int i = 0; i < 4000; i++) {
		int ep = pick(lb, NULL, key_of(lb, i), NULL, 0);
		if (ep != before[i]) {
			moved++;
			assert_int_equal(ep, nine);
		}
	}
	assert_true(moved > 4000 / 9 / 2 && moved < 4000 / 9 * 2);
	/* removing it moves exactly those keys back */
	lb_remove(lb, nine);
	for (int i = 0; i < 4000; i++)
		assert_int_equal(pick(lb, NULL, key_of(lb, i), NULL, 0), before[i]);
	lb_free(lb);
}

/* A hot key fills its owner up to the bound, then spills clockwise; no
 * endpoint ever exceeds c * (total + 1) / n. */
static void test_bounded_load(void **state)
{
	(void)state;
	struct lb *lb = mk("prefix-hash", 4);
	uint64_t k = key_of(lb, 42);
	int owner = pick(lb, NULL, k, NULL, 0);
	static struct lb_lease l[400];
	int spilled = 0;
	for (int i = 0; i < 400; i++) {
		uint64_t total = lb_total_in_flight(lb);
		int ep = pick(lb, NULL, k, NULL, 0);
		double bound = 1.25 * (double)(total + 1) / 4;
		assert_true(total == 0 || (double)lb_endpoint(lb, ep)->in_flight <= bound);
		spilled += ep != owner;
		lb_acquire(lb, ep, NULL, &l[i]);
	}
	assert_true(spilled > 0);
	/* the owner was admitted only while within the bound */
	assert_true(lb_endpoint(lb, owner)->in_flight <= 1.25 * 400 / 4 + 1);
	for (int i = 0; i < 400; i++)
		lb_release(&l[i]);
	assert_int_equal(lb_total_in_flight(lb), 0);
	lb_free(lb);
}

static void test_least_load(void **state)
{
	(void)state;
	struct lb *lb = mk("least-load", 5);
	static struct lb_lease l[103];
	for (int i = 0; i < 103; i++)
		lb_acquire(lb, pick(lb, NULL, 0, NULL, 0), NULL, &l[i]);
	uint32_t mn = 1000, mx = 0;
	for (int i = 0; i < 5; i++) {
		uint32_t v = lb_endpoint(lb, i)->in_flight;
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
	}
	assert_true(mx - mn <= 1);
	/* ties are broken at random: over many picks at equal load all are used */
	for (int i = 0; i < 103; i++)
		lb_release(&l[i]);
	int used[5] = {0};
	for (int i = 0; i < 200; i++)
		used[pick(lb, NULL, 0, NULL, 0)] = 1;
	for (int i = 0; i < 5; i++)
		assert_true(used[i]);
	lb_free(lb);
}

static void test_rr_random(void **state)
{
	(void)state;
	struct lb *lb = mk("round-robin", 3);
	int a = pick(lb, NULL, 0, NULL, 0), b = pick(lb, NULL, 0, NULL, 0), c = pick(lb, NULL, 0, NULL, 0);
	assert_true(a != b && b != c && a != c);
	assert_int_equal(pick(lb, NULL, 0, NULL, 0), a);
	lb_free(lb);
	lb = mk("random", 4);
	int count[4] = {0};
	for (int i = 0; i < 4000; i++)
		count[pick(lb, NULL, 0, NULL, 0)]++;
	for (int i = 0; i < 4; i++)
		assert_true(count[i] > 800 && count[i] < 1200);
	lb_free(lb);
}

/* Leases: release is idempotent; an endpoint removed while busy keeps its
 * slot until its last lease ends, and the counters end at zero. */
static void test_leases_and_removal(void **state)
{
	(void)state;
	struct lb *lb = mk("prefix-hash", 3);
	struct lb_lease l1, l2;
	lb_acquire(lb, 1, NULL, &l1);
	lb_acquire(lb, 1, NULL, &l2);
	lb_release(&l1);
	lb_release(&l1);
	assert_int_equal(lb_endpoint(lb, 1)->in_flight, 1);
	lb_remove(lb, 1);
	assert_non_null(lb_endpoint(lb, 1)); /* draining */
	for (int i = 0; i < 300; i++)
		assert_true(pick(lb, NULL, key_of(lb, i), NULL, 0) != 1);
	assert_int_equal(lb_find(lb, "10.0.0.2:8000"), -1);
	lb_release(&l2);
	assert_null(lb_endpoint(lb, 1)); /* freed */
	assert_int_equal(lb_total_in_flight(lb), 0);
	/* the slot is reused with a new generation */
	assert_int_equal(lb_add(lb, "10.0.0.7:8000", NULL, 0), 1);
	lb_free(lb);
}

static void test_health_and_tried(void **state)
{
	(void)state;
	struct lb *lb = mk("prefix-hash", 3);
	uint64_t k = key_of(lb, 7);
	int owner = pick(lb, NULL, k, NULL, 0);
	lb_set_healthy(lb, owner, 0);
	int next = pick(lb, NULL, k, NULL, 0);
	assert_true(next >= 0 && next != owner);
	int tried[2] = {next};
	int third = pick(lb, NULL, k, tried, 1);
	assert_true(third != next && third != owner);
	tried[1] = third;
	/* only the unhealthy one is left: used rather than failing */
	assert_int_equal(pick(lb, NULL, k, tried, 2), owner);
	int all[3] = {0, 1, 2};
	assert_int_equal(pick(lb, NULL, k, all, 3), -1);
	lb_set_healthy(lb, owner, 1);
	assert_int_equal(pick(lb, NULL, k, NULL, 0), owner);
	lb_free(lb);
}

static void test_models(void **state)
{
	(void)state;
	struct lb_opts o;
	lb_opts_default(&o);
	struct lb *lb = lb_new(&o);
	const char *a[] = {"llama"}, *b[] = {"llama", "qwen"}, *c[] = {"qwen"};
	lb_add(lb, "a:1", a, 1);
	lb_add(lb, "b:1", b, 2);
	lb_add(lb, "c:1", c, 1);
	for (int i = 0; i < 200; i++) {
		int ep = pick(lb, "llama", key_of(lb, i), NULL, 0);
		assert_true(ep == 0 || ep == 1);
		ep = pick(lb, "qwen", key_of(lb, i), NULL, 0);
		assert_true(ep == 1 || ep == 2);
	}
	assert_int_equal(pick(lb, "mistral", 1, NULL, 0), -1);
	assert_true(lb_has_model(lb, "qwen"));
	assert_false(lb_has_model(lb, "mistral"));
	/* an endpoint with no model list serves any model */
	lb_add(lb, "d:1", NULL, 0);
	assert_int_equal(pick(lb, "mistral", 1, NULL, 0), 3);
	lb_free(lb);
}

/* Every registered policy keeps the invariants all must keep: it never picks a
 * tried, removed or (while a healthy one is left) unhealthy endpoint, it
 * always finds one while one is eligible, and the counters end at zero. */
static void test_registry_invariants(void **state)
{
	(void)state;
	assert_null(policy_find("no-such-policy"));
	for (size_t pi = 0; policy_at(pi); pi++) {
		const struct lb_policy *pol = policy_at(pi);
		assert_ptr_equal(policy_find(pol->name), pol);
		assert_non_null(pol->help);
		struct lb_opts o;
		lb_opts_default(&o);
		o.policy = pol;
		struct lb *lb = lb_new(&o);
		assert_non_null(lb);
		for (int i = 0; i < 6; i++) {
			char name[32];
			snprintf(name, sizeof name, "10.0.1.%d:8000", i + 1);
			lb_add(lb, name, NULL, 0);
		}
		lb_set_healthy(lb, 4, 0);
		static struct lb_lease l[3000];
		uint64_t x = 1;
		for (int i = 0; i < 3000; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			int tried[3] = {(int)(x >> 60) % 6, (int)(x >> 56) % 6, 5};
			size_t nt = (size_t)(x >> 40) % 4;
			char text[64];
			int tl = snprintf(text, sizeof text, "User: conversation %d", (int)(x >> 33) % 50);
			uint32_t ids[40];
			for (int k = 0; k < 40; k++)
				ids[k] = (uint32_t)((x >> 33) % 50 * 1000 + (uint64_t)k);
			struct lb_req rq = {.key = lb_key(lb, text, (size_t)tl), .text = text, .text_len = (size_t)tl,
					    .ids = ids, .n_ids = 40, .max_tokens = 10, .tried = tried, .n_tried = nt,
					    .now = (uint64_t)i * 1000000};
			int ep = lb_pick(lb, &rq);
			assert_true(ep >= 0 && ep < 6);
			assert_int_not_equal(ep, 4); /* unhealthy while healthy ones are left */
			for (size_t k = 0; k < nt; k++)
				assert_int_not_equal(ep, tried[k]);
			lb_acquire(lb, ep, &rq, &l[i]);
			if (i == 1500)
				lb_remove(lb, 2);
			if (i > 1500)
				assert_int_not_equal(ep, 2);
			if (i % 3 == 0)
				lb_release(&l[i / 2]);
		}
		for (int i = 0; i < 3000; i++)
			lb_release(&l[i]);
		assert_int_equal(lb_total_in_flight(lb), 0);
		for (size_t e = 0; e < lb_count(lb); e++)
			if (lb_endpoint(lb, (int)e))
				assert_int_equal(lb_endpoint(lb, (int)e)->in_flight_tokens, 0);
		lb_free(lb);
	}
	/* a parameter name means the same knob in every policy that takes it */
	for (size_t a = 0; policy_at(a); a++)
		for (const struct lb_param *p = policy_at(a)->params; p && p->name; p++) {
			const struct lb_param *q = policy_param_at((size_t)policy_param_index(p->name));
			assert_true(p->dflt == q->dflt && p->min == q->min && p->max == q->max);
		}
}

/* An engine's reading, brought up to now: the requests the router saw leave
 * the queue (first token, or an end before it) or end since the reading were
 * in the engine's counts then and are taken out; new ones are the router's. */
static void test_signals_brought_up_to_now(void **state)
{
	(void)state;
	struct lb *lb = mk("least-load", 1);
	struct lb_lease a, b, c;
	struct lb_req rq = {.prompt_tokens = 10};
	lb_acquire(lb, 0, &rq, &a);
	lb_acquire(lb, 0, &rq, &b);
	lb_acquire(lb, 0, &rq, &c);
	lb_first_token(&c);
	struct lb_signals sg = {.valid = 1, .at = 1, .waiting = 2, .running = 1};
	lb_set_signals(lb, 0, &sg); /* a and b wait, c runs */
	const struct lb_endpoint *e = lb_endpoint(lb, 0);
	assert_float_equal(lb_signal_waiting(e), 2, 0);
	assert_float_equal(lb_signal_running(e), 1, 0);
	lb_first_token(&a); /* a runs now */
	assert_float_equal(lb_signal_waiting(e), 1, 0);
	assert_float_equal(lb_signal_running(e), 2, 0);
	lb_release(&c); /* c ended */
	assert_float_equal(lb_signal_running(e), 1, 0);
	lb_release(&b); /* b ended before its first token: out of the queue, never ran */
	assert_float_equal(lb_signal_waiting(e), 0, 0);
	assert_float_equal(lb_signal_running(e), 1, 0);
	lb_release(&a);
	assert_float_equal(lb_signal_running(e), 0, 0);
	lb_set_signals(lb, 0, &sg); /* a new reading counts from here */
	assert_float_equal(lb_signal_waiting(e), 2, 0);
	lb_free(lb);
}

/* NAME:KEY=NUMBER... specs: parameters set, every malformed item refused
 * with the spec and the item named, nothing changed on a refusal. */
static void test_policy_spec(void **state)
{
	(void)state;
	struct lb_opts o;
	lb_opts_default(&o);
	char err[256];
	assert_int_equal(lb_opts_policy(&o, "lowest-ttft:affinity=3:guard-factor=1.5", err, sizeof err), 0);
	assert_string_equal(o.policy->name, "lowest-ttft");
	assert_float_equal(lb_opts_get(&o, "affinity"), 3, 0);
	assert_float_equal(lb_opts_get(&o, "guard-factor"), 1.5, 0);
	const char *bad[][2] = {
		{"lowest-ttft:affinity", "'affinity' is not KEY=NUMBER"},
		{"lowest-ttft:affinity=", "'affinity=' is not KEY=NUMBER"},
		{"lowest-ttft:affinity=2x", "'affinity=2x' is not KEY=NUMBER"},
		{"lowest-ttft::affinity=2", "'' is not KEY=NUMBER"},
		{"lowest-ttft:nosuch=1", "unknown parameter 'nosuch'"},
		{"lowest-ttft:guard-factor=0.5", "guard-factor must be in"},
		{"nosuch:affinity=1", "unknown policy 'nosuch'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		assert_int_equal(lb_opts_policy(&o, bad[i][0], err, sizeof err), -1);
		if (!strstr(err, bad[i][1]))
			fprintf(stderr, "%s -> %s\n", bad[i][0], err);
		assert_non_null(strstr(err, bad[i][1]));
		assert_float_equal(lb_opts_get(&o, "affinity"), 3, 0); /* unchanged */
	}
	char longspec[300] = "lowest-ttft:affinity=";
	memset(longspec + 21, '1', 200);
	longspec[221] = 0;
	assert_int_equal(lb_opts_policy(&o, longspec, err, sizeof err), -1);
	assert_non_null(strstr(err, "item too long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),          cmocka_unit_test(test_prefix_spread_and_stick),
		cmocka_unit_test(test_prefix_remap), cmocka_unit_test(test_bounded_load),
		cmocka_unit_test(test_least_load),   cmocka_unit_test(test_rr_random),
		cmocka_unit_test(test_leases_and_removal), cmocka_unit_test(test_health_and_tried),
		cmocka_unit_test(test_models),       cmocka_unit_test(test_registry_invariants),
		cmocka_unit_test(test_signals_brought_up_to_now), cmocka_unit_test(test_policy_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
