/* test_admit.c: admission control (src/core/admit.c): queueing on saturation,
 * release, rejection, priorities, tenant fairness, deadlines, the signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/admit.h"
#include "core/lb.h"
#include "core/policy.h"
#include "policytest.h"

#define MS 1000000ULL

static struct lb *mk_lb(const char *policy, int n)
{
	return policy_lb(policy, n, NULL, NULL);
}

static struct admit *mk(struct lb *lb, const char *spec)
{
	struct admit_cfg c;
	char err[512];
	if (admit_cfg_parse(&c, spec, err, sizeof err))
		fail_msg("%s", err);
	return admit_new(&c, lb);
}

static void entry(struct admit_entry *e, uint64_t tenant, int prio, uint32_t prompt, uint64_t t0)
{
	memset(e, 0, sizeof *e);
	e->tenant = tenant;
	e->priority = prio;
	e->prompt_tokens = prompt;
	e->max_tokens = 10;
	e->wait_ms = -1;
	e->t0 = t0;
}

/* Places a request on the backend the policy picks (the admitted path). */
static int place(struct lb *lb, struct lb_lease *l, uint64_t now)
{
	struct lb_req rq = {.key = 7, .prompt_tokens = 100, .max_tokens = 10, .now = now};
	int ep = lb_pick(lb, &rq);
	assert_true(ep >= 0);
	lb_acquire(lb, ep, &rq, l);
	return ep;
}

static void test_cfg(void **state)
{
	(void)state;
	struct admit_cfg c;
	char err[512], s[512];
	assert_int_equal(admit_cfg_parse(&c, "off", err, sizeof err), 0);
	assert_int_equal(c.on, 0);
	assert_int_equal(admit_cfg_parse(&c, "on", err, sizeof err), 0);
	assert_true(c.on && c.max_waiting == 2 && c.max_ttft_ms == 0 && c.max_in_flight == 0 && c.queue == 1024 &&
		    c.wait_ms == 30000 && c.filter == 4);
	/* naming a threshold turns the unnamed ones off */
	assert_int_equal(admit_cfg_parse(&c, "on:max-in-flight=2:wait-ms=500", err, sizeof err), 0);
	assert_true(c.max_in_flight == 2 && c.max_waiting == 0 && c.wait_ms == 500);
	admit_cfg_str(&c, s, sizeof s);
	assert_string_equal(s, "on:max-waiting=0:max-in-flight=2:wait-ms=500");
	struct admit_cfg d;
	assert_int_equal(admit_cfg_parse(&d, s, err, sizeof err), 0);
	assert_memory_equal(&c, &d, sizeof c);
	/* every knob lands in its own field: fair-tokens next to fair and edf */
	assert_int_equal(admit_cfg_parse(&c, "on:fair-tokens=1", err, sizeof err), 0);
	assert_true(c.fair_tokens == 1 && c.fair == 1 && c.edf == 0 && c.max_waiting == 2);
	admit_cfg_str(&c, s, sizeof s);
	assert_string_equal(s, "on:fair-tokens=1");
	assert_int_equal(admit_cfg_parse(&c, "on:bogus=1", err, sizeof err), -1);
	assert_non_null(strstr(err, "unknown key 'bogus'"));
	assert_non_null(strstr(err, "max-in-flight"));
	assert_int_equal(admit_cfg_parse(&c, "on:queue=-1", err, sizeof err), -1);
	assert_non_null(strstr(err, "queue must be in"));
	assert_int_equal(admit_cfg_parse(&c, "on:queue", err, sizeof err), -1);
	assert_int_equal(admit_cfg_parse(&c, "yes", err, sizeof err), -1);
	assert_int_equal(admit_cfg_parse(&c, "onx", err, sizeof err), -1);
	assert_int_equal(admit_cfg_parse(&c, "on:wait-ms=1e3x", err, sizeof err), -1);
}

/* Off: everything goes, nothing is counted. */
static void test_off(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "off");
	struct lb_lease l[3];
	for (int i = 0; i < 3; i++) {
		struct admit_entry e;
		entry(&e, 0, 0, 100, 0);
		assert_int_equal(admit_offer(a, &e, 0), ADMIT_GO);
		assert_int_equal(e.outcome, ADMIT_NONE);
		place(lb, &l[i], 0);
	}
	for (int i = 0; i < 3; i++)
		lb_release(&l[i]);
	admit_free(a);
	lb_free(lb);
}

/* Direct while a backend is free; queued when all are saturated; released
 * the moment a lease ends, in order; gauges back to zero. */
static void test_queue_and_release(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 2);
	struct admit *a = mk(lb, "on:max-in-flight=1");
	struct lb_lease l[4];
	struct admit_entry e[4];
	for (int i = 0; i < 2; i++) {
		entry(&e[i], 0, 0, 100, 0);
		assert_int_equal(admit_offer(a, &e[i], 0), ADMIT_GO);
		assert_int_equal(e[i].outcome, ADMIT_DIRECT);
		place(lb, &l[i], 0);
	}
	assert_true(admit_saturated(a, NULL, 0));
	for (int i = 2; i < 4; i++) {
		entry(&e[i], 0, 0, 100, i * MS);
		assert_int_equal(admit_offer(a, &e[i], i * MS), ADMIT_QUEUED);
	}
	assert_int_equal(admit_queued(a, NULL, 0), 2);
	assert_null(admit_next(a, 5 * MS));
	lb_release(&l[0]);
	assert_ptr_equal(admit_next(a, 6 * MS), &e[2]);
	assert_int_equal(e[2].outcome, ADMIT_WAITED);
	assert_int_equal(e[2].t_out - e[2].t_enq, 4 * MS);
	place(lb, &l[2], 6 * MS);
	assert_null(admit_next(a, 6 * MS)); /* saturated again */
	lb_release(&l[1]);
	assert_ptr_equal(admit_next(a, 7 * MS), &e[3]);
	place(lb, &l[3], 7 * MS);
	assert_null(admit_next(a, 7 * MS));
	assert_int_equal(admit_queued(a, NULL, 1), 0);
	lb_release(&l[2]);
	lb_release(&l[3]);
	struct admit_stats st;
	admit_get_stats(a, &st);
	assert_int_equal(st.outcomes[ADMIT_DIRECT], 2);
	assert_int_equal(st.outcomes[ADMIT_WAITED], 2);
	assert_int_equal(st.queued, 0);
	assert_true(st.wait_s_total > 0.0079 && st.wait_s_total < 0.0081);
	assert_int_equal(lb_total_in_flight(lb), 0);
	assert_int_equal(admit_next_deadline(a), UINT64_MAX);
	admit_free(a);
	lb_free(lb);
}

/* A full queue rejects; queue=0 rejects whatever would wait. */
static void test_full(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-in-flight=1:queue=2:retry-after-s=3");
	struct lb_lease l;
	struct admit_entry e[4];
	entry(&e[0], 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &e[0], 0), ADMIT_GO);
	place(lb, &l, 0);
	for (int i = 1; i < 3; i++) {
		entry(&e[i], 0, 0, 100, 0);
		assert_int_equal(admit_offer(a, &e[i], 0), ADMIT_QUEUED);
	}
	entry(&e[3], 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &e[3], 0), ADMIT_REJECT);
	assert_int_equal(e[3].outcome, ADMIT_FULL);
	assert_false(e[3].queued);
	assert_int_equal(admit_retry_after_s(a), 3);
	admit_cancel(a, &e[3], 0); /* not queued: nothing */
	admit_cancel(a, &e[1], 0);
	admit_cancel(a, &e[2], 0);
	assert_int_equal(e[2].outcome, ADMIT_CANCELLED);
	assert_int_equal(admit_queued(a, NULL, 1), 0);
	struct admit_cfg c = *admit_get_cfg(a);
	c.queue = 0;
	admit_set_cfg(a, &c);
	entry(&e[1], 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &e[1], 0), ADMIT_REJECT);
	lb_release(&l);
	admit_free(a);
	lb_free(lb);
}

/* The wait budget (and a request's lower one), the TTFT target. */
static void test_deadlines(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-in-flight=1:wait-ms=100");
	struct lb_lease l;
	struct admit_entry e[5];
	entry(&e[0], 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &e[0], 0), ADMIT_GO);
	place(lb, &l, 0);
	entry(&e[1], 0, 0, 100, 0); /* the configured budget */
	entry(&e[2], 0, 0, 100, 0);
	e[2].wait_ms = 50; /* lower: taken */
	entry(&e[3], 0, 0, 100, 0);
	e[3].wait_ms = 5000; /* higher: capped */
	entry(&e[4], 0, 0, 100, 0);
	e[4].ttft_target_ms = 60; /* 100 tokens x 0.26 ms = 26 ms of its own prefill: must start by 34 ms */
	for (int i = 1; i < 5; i++)
		assert_int_equal(admit_offer(a, &e[i], 0), ADMIT_QUEUED);
	assert_int_equal(admit_next_deadline(a), 34 * MS);
	assert_null(admit_expire(a, 33 * MS));
	assert_ptr_equal(admit_expire(a, 34 * MS), &e[4]);
	assert_int_equal(e[4].outcome, ADMIT_LATE);
	assert_null(admit_expire(a, 34 * MS));
	assert_ptr_equal(admit_expire(a, 60 * MS), &e[2]);
	assert_int_equal(e[2].outcome, ADMIT_EXPIRED);
	assert_int_equal(admit_next_deadline(a), 100 * MS);
	assert_ptr_equal(admit_expire(a, 100 * MS), &e[1]);
	assert_ptr_equal(admit_expire(a, 100 * MS), &e[3]);
	assert_null(admit_expire(a, 1000 * MS));
	/* a target its own prefill cannot meet: rejected at once */
	entry(&e[1], 0, 0, 1000, 0);
	e[1].ttft_target_ms = 200; /* 260 ms of prefill */
	assert_int_equal(admit_offer(a, &e[1], 0), ADMIT_REJECT);
	assert_int_equal(e[1].outcome, ADMIT_LATE);
	/* the scale: engine ms are divided by it on the clock */
	struct admit_cfg c = *admit_get_cfg(a);
	c.scale = 10;
	admit_set_cfg(a, &c);
	entry(&e[1], 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &e[1], 0), ADMIT_QUEUED);
	assert_int_equal(admit_next_deadline(a), 10 * MS);
	admit_cancel(a, &e[1], 0);
	struct admit_stats st;
	admit_get_stats(a, &st);
	assert_int_equal(st.outcomes[ADMIT_LATE], 2);
	assert_int_equal(st.outcomes[ADMIT_EXPIRED], 3);
	lb_release(&l);
	admit_free(a);
	lb_free(lb);
}

/* Drains the queue one request at a time (each served alone); returns the order. */
static size_t drain(struct admit *a, struct lb *lb, struct admit_entry *base, int *order, size_t max)
{
	size_t n = 0;
	uint64_t t = MS;
	for (;;) {
		struct admit_entry *e = admit_next(a, t);
		if (!e)
			break;
		assert_true(n < max);
		order[n++] = (int)(e - base);
		struct lb_lease l;
		place(lb, &l, t);
		assert_null(admit_next(a, t));
		lb_release(&l);
		t += MS;
	}
	return n;
}

/* Strict priority bands, FCFS within one. */
static void test_priority(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-in-flight=1");
	struct lb_lease l;
	struct admit_entry b, e[5];
	entry(&b, 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &b, 0), ADMIT_GO);
	place(lb, &l, 0);
	int prio[5] = {-1, 0, 3, 0, 99 /* clamped to 8 */};
	for (int i = 0; i < 5; i++) {
		entry(&e[i], 0, prio[i], 100, (uint64_t)i);
		assert_int_equal(admit_offer(a, &e[i], (uint64_t)i), ADMIT_QUEUED);
	}
	assert_int_equal(e[4].priority, ADMIT_PRIO_MAX);
	lb_release(&l);
	int order[8];
	assert_int_equal(drain(a, lb, e, order, 8), 5);
	int want[5] = {4, 2, 1, 3, 0};
	assert_memory_equal(order, want, sizeof want);
	admit_free(a);
	lb_free(lb);
}

/* Tenants: a burst of one does not starve the other (fair share by SFQ);
 * fair=0 is one FCFS line. */
static void test_fairness(void **state)
{
	(void)state;
	for (int fair = 1; fair >= 0; fair--) {
		struct lb *lb = mk_lb("least-load", 1);
		struct admit *a = mk(lb, fair ? "on:max-in-flight=1" : "on:max-in-flight=1:fair=0");
		struct lb_lease l;
		struct admit_entry b, e[8];
		entry(&b, 0, 0, 100, 0);
		assert_int_equal(admit_offer(a, &b, 0), ADMIT_GO);
		place(lb, &l, 0);
		uint64_t x = admit_tenant_hash("x", 1), y = admit_tenant_hash("y", 1);
		for (int i = 0; i < 8; i++) {
			entry(&e[i], i < 6 ? x : y, 0, 100, (uint64_t)i);
			assert_int_equal(admit_offer(a, &e[i], (uint64_t)i), ADMIT_QUEUED);
		}
		lb_release(&l);
		int order[8];
		assert_int_equal(drain(a, lb, e, order, 8), 8);
		int fair_want[8] = {0, 6, 1, 7, 2, 3, 4, 5}, fcfs_want[8] = {0, 1, 2, 3, 4, 5, 6, 7};
		assert_memory_equal(order, fair ? fair_want : fcfs_want, sizeof fair_want);
		admit_free(a);
		lb_free(lb);
	}
}

/* Fair share counts turns by default (a request is one), or tokens with
 * fair-tokens=1: a tenant of prompts 10x longer then gets ~1/10 of the turns. */
static void test_fair_tokens(void **state)
{
	(void)state;
	for (int tokens = 0; tokens <= 1; tokens++) {
		struct lb *lb = mk_lb("least-load", 1);
		struct admit *a = mk(lb, tokens ? "on:max-in-flight=1:fair-tokens=1" : "on:max-in-flight=1");
		struct lb_lease l;
		static struct admit_entry b, e[200];
		entry(&b, 0, 0, 100, 0);
		assert_int_equal(admit_offer(a, &b, 0), ADMIT_GO);
		place(lb, &l, 0);
		for (int i = 0; i < 200; i++) { /* first 100 long (1990 + 10), then 100 short (190 + 10): FCFS would serve
						   55 long first */
			entry(&e[i], i < 100 ? 1 : 2, 0, i < 100 ? 1990 : 190, (uint64_t)i);
			assert_int_equal(admit_offer(a, &e[i], (uint64_t)i), ADMIT_QUEUED);
		}
		lb_release(&l);
		static int order[200];
		assert_int_equal(drain(a, lb, e, order, 200), 200);
		int longs = 0;
		for (int i = 0; i < 55; i++)
			longs += order[i] < 100;
		if (tokens)
			assert_in_range(longs, 4, 6); /* 55 turns: ~5 long (10,000 tokens) for ~50 short (10,000) */
		else
			assert_in_range(longs, 27, 28); /* turn about */
		admit_free(a);
		lb_free(lb);
	}
}

/* A late-comer tenant is served next, ahead of a backlog (it starts at V). */
static void test_quiet_tenant_next(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-in-flight=1");
	struct lb_lease l;
	struct admit_entry b, e[12];
	entry(&b, 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &b, 0), ADMIT_GO);
	place(lb, &l, 0);
	for (int i = 0; i < 10; i++) {
		entry(&e[i], 1, 0, 100, (uint64_t)i);
		assert_int_equal(admit_offer(a, &e[i], (uint64_t)i), ADMIT_QUEUED);
	}
	lb_release(&l);
	/* three of the flood are served, then the quiet tenant arrives */
	for (int i = 0; i < 3; i++) {
		assert_ptr_equal(admit_next(a, 1000 * MS), &e[i]);
		place(lb, &l, 0);
		lb_release(&l);
	}
	entry(&e[10], 2, 0, 100, 10);
	assert_int_equal(admit_offer(a, &e[10], 10), ADMIT_QUEUED);
	struct admit_entry *n = admit_next(a, 1000 * MS);
	assert_true(n == &e[10] || n == &e[3]); /* a tie with the flood's head at most */
	if (n == &e[3]) {
		place(lb, &l, 0);
		lb_release(&l);
		assert_ptr_equal(admit_next(a, 1000 * MS), &e[10]);
	}
	while ((n = admit_next(a, 1000 * MS)))
		;
	assert_int_equal(admit_queued(a, NULL, 1), 0);
	admit_free(a);
	lb_free(lb);
}

/* Earliest deadline first within a tenant. */
static void test_edf(void **state)
{
	(void)state;
	for (int edf = 0; edf < 2; edf++) {
		struct lb *lb = mk_lb("least-load", 1);
		struct admit *a = mk(lb, edf ? "on:max-in-flight=1:edf=1" : "on:max-in-flight=1");
		struct lb_lease l;
		struct admit_entry b, e[3];
		entry(&b, 0, 0, 100, 0);
		assert_int_equal(admit_offer(a, &b, 0), ADMIT_GO);
		place(lb, &l, 0);
		double w[3] = {20000, 100, 5000};
		for (int i = 0; i < 3; i++) {
			entry(&e[i], 0, 0, 100, 0);
			e[i].wait_ms = w[i];
			assert_int_equal(admit_offer(a, &e[i], 0), ADMIT_QUEUED);
		}
		lb_release(&l);
		int order[3];
		assert_int_equal(drain(a, lb, e, order, 3), 3);
		int want_edf[3] = {1, 2, 0}, want_fcfs[3] = {0, 1, 2};
		assert_memory_equal(order, edf ? want_edf : want_fcfs, sizeof order);
		admit_free(a);
		lb_free(lb);
	}
}

/* Cancels anywhere in the queue keep counts, heap and order right. */
static void test_cancel(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-in-flight=1:wait-ms=1000");
	struct lb_lease l;
	struct admit_entry b, e[6];
	entry(&b, 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &b, 0), ADMIT_GO);
	place(lb, &l, 0);
	for (int i = 0; i < 6; i++) {
		entry(&e[i], (uint64_t)(i % 2 + 1), 0, 100, (uint64_t)i * MS);
		assert_int_equal(admit_offer(a, &e[i], (uint64_t)i * MS), ADMIT_QUEUED);
	}
	admit_cancel(a, &e[0], 10 * MS); /* a head */
	admit_cancel(a, &e[3], 10 * MS); /* the middle */
	admit_cancel(a, &e[5], 10 * MS); /* a tail */
	admit_cancel(a, &e[5], 10 * MS); /* twice: nothing */
	assert_int_equal(admit_queued(a, NULL, 0), 3);
	assert_int_equal(admit_next_deadline(a), 1001 * MS); /* e[1] */
	lb_release(&l);
	int order[6];
	assert_int_equal(drain(a, lb, e, order, 6), 3);
	int want[3] = {1, 2, 4};
	assert_memory_equal(order, want, sizeof want);
	struct admit_stats st;
	admit_get_stats(a, &st);
	assert_int_equal(st.outcomes[ADMIT_CANCELLED], 3);
	assert_int_equal(st.queued, 0);
	assert_int_equal(admit_next_deadline(a), UINT64_MAX);
	admit_free(a);
	lb_free(lb);
}

/* Each signal saturates; first tokens release the waiting signal. */
static void test_signals(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-waiting=2");
	struct lb_lease l[3];
	place(lb, &l[0], 0);
	assert_false(admit_saturated(a, NULL, 0));
	place(lb, &l[1], 0);
	assert_true(admit_saturated(a, NULL, 0));
	lb_first_token(&l[0]);
	assert_false(admit_saturated(a, NULL, 0));
	/* the engine's own waiting count, while fresh (signals-max-age-ms 1000) */
	struct lb_signals sg = {.valid = 1, .at = 0, .waiting = 5, .running = 1, .kv_usage = 0.5};
	lb_set_signals(lb, 0, &sg);
	assert_true(admit_saturated(a, NULL, 500 * MS));
	assert_false(admit_saturated(a, NULL, 1001 * MS));
	lb_release(&l[0]);
	lb_release(&l[1]);
	admit_free(a);

	a = mk(lb, "on:max-tokens=250"); /* 110 tokens each */
	place(lb, &l[0], 0);
	place(lb, &l[1], 0);
	assert_false(admit_saturated(a, NULL, 2000 * MS));
	place(lb, &l[2], 0);
	assert_true(admit_saturated(a, NULL, 2000 * MS));
	for (int i = 0; i < 3; i++)
		lb_release(&l[i]);
	admit_free(a);

	/* predicted wait: 0.26 ms x 100 prefill tokens each + 0.5 ms per decoding request */
	a = mk(lb, "on:max-ttft-ms=50");
	place(lb, &l[0], 2000 * MS);
	assert_false(admit_saturated(a, NULL, 2000 * MS)); /* 26 ms */
	place(lb, &l[1], 2000 * MS);
	assert_true(admit_saturated(a, NULL, 2000 * MS)); /* 52 ms */
	lb_first_token(&l[1]);
	assert_false(admit_saturated(a, NULL, 2000 * MS)); /* 26 + 0.5 ms */
	struct lb_ttft_model m;
	lb_ttft_model(lb, &m);
	assert_true(m.t_tok == 0.26 && m.t_dec == 0.5);
	double p = lb_ttft_ms(&m, lb_endpoint(lb, 0), 1000, 2000 * MS);
	assert_true(p > 0.26 * 1100 + 0.5 - 1e-9 && p < 0.26 * 1100 + 0.5 + 1e-9);
	lb_release(&l[0]);
	lb_release(&l[1]);
	admit_free(a);
	lb_free(lb);
}

/* The filter: a pick passes over a saturated backend while another can take
 * the request (prefix-hash would send the same key to one), and fails open. */
static void test_filter(void **state)
{
	(void)state;
	for (int filter = 1; filter >= 0; filter--) {
		struct lb *lb = mk_lb("prefix-hash", 2);
		struct admit *a = mk(lb, filter ? "on:max-in-flight=1:filter=1" : "on:max-in-flight=1:filter=0");
		struct lb_lease l[3];
		int e0 = place(lb, &l[0], 0), e1 = place(lb, &l[1], 0);
		if (filter)
			assert_int_not_equal(e0, e1);
		else
			assert_int_equal(e0, e1); /* the ring owner, within CHWBL's bound */
		place(lb, &l[2], 0);          /* everyone saturated (or not): still a backend */
		for (int i = 0; i < 3; i++)
			lb_release(&l[i]);
		admit_free(a);
		/* freed: no skip rule left behind */
		int f0 = place(lb, &l[0], 0), f1 = place(lb, &l[1], 0);
		assert_int_equal(f0, f1);
		lb_release(&l[0]);
		lb_release(&l[1]);
		lb_free(lb);
	}
}

/* filter=K: the owner keeps requests up to K x the threshold before they spill. */
static void test_filter_factor(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("prefix-hash", 2);
	struct admit *a = mk(lb, "on:max-in-flight=1:filter=2");
	struct lb_opts o = *lb_get_opts(lb);
	lb_opts_set(&o, "load-factor", 10); /* CHWBL's own bound out of the way */
	lb_set_opts(lb, &o);
	admit_set_cfg(a, admit_get_cfg(a));
	struct lb_lease l[3];
	int e0 = place(lb, &l[0], 0), e1 = place(lb, &l[1], 0), e2 = place(lb, &l[2], 0);
	assert_int_equal(e0, e1);     /* 1 in flight: saturated, not yet at 2 x 1 */
	assert_int_not_equal(e1, e2); /* 2 in flight: passed over */
	for (int i = 0; i < 3; i++)
		lb_release(&l[i]);
	admit_free(a);
	lb_free(lb);
}

/* Saturation counts the healthy members only (all when none is healthy). */
static void test_unhealthy(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 2);
	struct admit *a = mk(lb, "on:max-in-flight=1");
	struct lb_lease l;
	lb_set_healthy(lb, 1, 0);
	place(lb, &l, 0);
	assert_int_equal(l.ep, 0);
	assert_true(admit_saturated(a, NULL, 0)); /* the only healthy one is busy */
	lb_set_healthy(lb, 0, 0);
	assert_false(admit_saturated(a, NULL, 0)); /* none healthy: the unhealthy free one counts */
	lb_release(&l);
	admit_free(a);
	lb_free(lb);
}

/* One queue per model: a free pool serves its queue while another waits. */
static void test_models(void **state)
{
	(void)state;
	struct lb_opts o;
	lb_opts_default(&o);
	o.policy = policy_find("least-load");
	struct lb *lb = lb_new(&o);
	const char *ma[] = {"a"}, *mb[] = {"b"};
	assert_int_equal(lb_add(lb, "h1:1", ma, 1), 0);
	assert_int_equal(lb_add(lb, "h2:1", mb, 1), 1);
	struct admit *a = mk(lb, "on:max-in-flight=1");
	struct lb_lease la, lb_;
	struct lb_req ra = {.model = "a", .now = 0}, rb = {.model = "b", .now = 0};
	lb_acquire(lb, lb_pick(lb, &ra), &ra, &la);
	lb_acquire(lb, lb_pick(lb, &rb), &rb, &lb_);
	struct admit_entry ea, eb;
	entry(&ea, 0, 0, 100, 0);
	ea.model = "a";
	entry(&eb, 0, 0, 100, 0);
	eb.model = "b";
	assert_int_equal(admit_offer(a, &ea, 0), ADMIT_QUEUED);
	assert_int_equal(admit_offer(a, &eb, 0), ADMIT_QUEUED);
	assert_int_equal(admit_queued(a, "a", 0), 1);
	lb_release(&lb_);
	assert_ptr_equal(admit_next(a, 0), &eb);
	assert_null(admit_next(a, 0));
	assert_int_equal(admit_queued(a, "a", 0), 1);
	assert_int_equal(admit_queued(a, "b", 0), 0);
	/* turned off: the queue drains whatever the load */
	struct admit_cfg c = *admit_get_cfg(a);
	c.on = 0;
	admit_set_cfg(a, &c);
	assert_ptr_equal(admit_next(a, 0), &ea);
	lb_release(&la);
	admit_free(a);
	lb_free(lb);
}

/* A full queue: a newcomer displaces the newest request of a lower band, or
 * of a tenant with at least two more waiting than its own; else it is refused. */
static void test_displace(void **state)
{
	(void)state;
	struct lb *lb = mk_lb("least-load", 1);
	struct admit *a = mk(lb, "on:max-in-flight=1:queue=3");
	struct lb_lease l;
	/* e[0] runs; e[1..3] the flood (tenant 1); e[4] quiet (2); e[5] flood, e[6] quiet;
	 * e[7] flood at priority 2; e[8] tenant 3 at -1; e[9] tenant 3 at priority 3 */
	struct admit_entry e[10];
	entry(&e[0], 0, 0, 100, 0);
	assert_int_equal(admit_offer(a, &e[0], 0), ADMIT_GO);
	place(lb, &l, 0);
	for (int i = 1; i <= 3; i++) {
		entry(&e[i], 1, 0, 100, 0);
		assert_int_equal(admit_offer(a, &e[i], 0), ADMIT_QUEUED);
	}
	assert_null(admit_expire(a, 0));
	entry(&e[4], 2, 0, 100, 0); /* quiet: 0 waiting, the flood 3: its newest makes room */
	assert_int_equal(admit_offer(a, &e[4], 0), ADMIT_QUEUED);
	assert_int_equal(admit_next_deadline(a), 0);
	assert_ptr_equal(admit_expire(a, 0), &e[3]);
	assert_int_equal(e[3].outcome, ADMIT_FULL);
	assert_null(admit_expire(a, 0));
	entry(&e[5], 1, 0, 100, 0); /* flood 2, quiet 1: the newcomer is refused */
	assert_int_equal(admit_offer(a, &e[5], 0), ADMIT_REJECT);
	entry(&e[6], 2, 0, 100, 0); /* quiet 1 vs flood 2: 2 > 1 + 1 fails: refused */
	assert_int_equal(admit_offer(a, &e[6], 0), ADMIT_REJECT);
	entry(&e[7], 1, 2, 100, 0); /* a higher priority: a lower band's newest of its biggest tenant goes */
	assert_int_equal(admit_offer(a, &e[7], 0), ADMIT_QUEUED);
	assert_ptr_equal(admit_expire(a, 0), &e[2]);
	entry(&e[8], 3, -1, 100, 0); /* below everyone: refused */
	assert_int_equal(admit_offer(a, &e[8], 0), ADMIT_REJECT);
	/* a displaced request whose client leaves before it is handed back */
	entry(&e[9], 3, 3, 100, 0);
	assert_int_equal(admit_offer(a, &e[9], 0), ADMIT_QUEUED);
	assert_true(e[1].refused != e[4].refused);
	int gone = e[1].refused ? 1 : 4;
	admit_cancel(a, &e[gone], 0);
	assert_false(e[gone].refused);
	assert_null(admit_expire(a, 0));
	assert_int_equal(admit_queued(a, NULL, 1), 3);
	lb_release(&l);
	int order[4];
	assert_int_equal(drain(a, lb, e, order, 4), 3);
	assert_int_equal(order[0], 9);
	assert_int_equal(order[1], 7);
	assert_int_equal(order[2], gone == 1 ? 4 : 1);
	struct admit_stats st;
	admit_get_stats(a, &st);
	assert_int_equal(st.outcomes[ADMIT_FULL], 6);
	admit_free(a);
	lb_free(lb);
}

static void test_headers(void **state)
{
	(void)state;
	int p;
	double ms;
	assert_int_equal(admit_parse_priority(" 3 ", 3, &p), 0);
	assert_int_equal(p, 3);
	assert_int_equal(admit_parse_priority("-2", 2, &p), 0);
	assert_int_equal(p, -2);
	assert_int_equal(admit_parse_priority("1000", 4, &p), 0);
	assert_int_equal(p, ADMIT_PRIO_MAX);
	assert_int_equal(admit_parse_priority("high", 4, &p), -1);
	assert_int_equal(admit_parse_priority("", 0, &p), -1);
	assert_int_equal(admit_parse_priority("2x", 2, &p), -1);
	assert_int_equal(admit_parse_ms("1500", 4, &ms), 0);
	assert_true(ms == 1500);
	assert_int_equal(admit_parse_ms("-1", 2, &ms), -1);
	assert_int_equal(admit_parse_ms("nan", 3, &ms), -1);
	assert_int_equal(admit_parse_ms("12ms", 4, &ms), -1);
	assert_true(admit_tenant_hash("a", 1) != 0 && admit_tenant_hash("a", 1) != admit_tenant_hash("b", 1));
	assert_true(admit_tenant_hash("", 0) == 0);
	assert_string_equal(admit_outcome_name(ADMIT_EXPIRED), "rejected_wait");
	assert_string_equal(admit_outcome_name(99), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cfg),          cmocka_unit_test(test_off),
		cmocka_unit_test(test_queue_and_release), cmocka_unit_test(test_full),
		cmocka_unit_test(test_deadlines),    cmocka_unit_test(test_priority),
		cmocka_unit_test(test_fairness),     cmocka_unit_test(test_fair_tokens),
		cmocka_unit_test(test_quiet_tenant_next), cmocka_unit_test(test_edf),
		cmocka_unit_test(test_cancel),       cmocka_unit_test(test_signals),
		cmocka_unit_test(test_filter),       cmocka_unit_test(test_filter_factor),
		cmocka_unit_test(test_unhealthy),
		cmocka_unit_test(test_models),       cmocka_unit_test(test_displace),
		cmocka_unit_test(test_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
