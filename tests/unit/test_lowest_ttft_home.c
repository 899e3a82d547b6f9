/* test_lowest_ttft_home.c: lowest-ttft's home-slack (src/core/policy_lowest_ttft.c):
 * two routers with their own state send a prompt that neither has seen to the
 * same backend, its rendezvous-hash home, unless the home is busier than the
 * slack allows; off (0), the least-cost backend wins as before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/lb.h"

static struct lb *router(const char *spec, uint64_t seed)
{
	struct lb_opts o;
	char err[200];
	lb_opts_default(&o);
	assert_int_equal(lb_opts_policy(&o, spec, err, sizeof err), 0);
	o.seed = seed;
	struct lb *lb = lb_new(&o);
	char name[32];
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof name, "10.0.0.%d:8000", i + 1);
		assert_int_equal(lb_add(lb, name, NULL, 0), i);
	}
	return lb;
}

static struct lb_req req(struct lb *lb, const char *text, uint64_t now)
{
	return (struct lb_req){.key = lb_key(lb, text, strlen(text)), .text = text, .text_len = strlen(text),
			       .max_tokens = 16, .now = now};
}

static void test_routers_agree(void **state)
{
	(void)state;
	struct lb *a = router("lowest-ttft:home-slack=8", 1), *b = router("lowest-ttft:home-slack=8", 2);
	struct lb_lease la[40];
	/* router a is busy elsewhere: 40 requests of other prompts in flight */
	char t[128];
	for (int i = 0; i < 40; i++) {
		snprintf(t, sizeof t, "another conversation, number %d, long enough to fill a few blocks of text here", i);
		struct lb_req q = req(a, t, 1000);
		int ep = lb_pick(a, &q);
		lb_acquire(a, ep, &q, &la[i]);
	}
	int same = 0;
	for (int i = 0; i < 50; i++) {
		snprintf(t, sizeof t, "a conversation neither router has routed, number %d, with a long first message", i);
		struct lb_req qa = req(a, t, 2000), qb = req(b, t, 2000);
		same += lb_pick(a, &qa) == lb_pick(b, &qb);
	}
	assert_int_equal(same, 50);
	/* off: router a's own load decides, not the hash */
	struct lb *c = router("lowest-ttft", 1), *d = router("lowest-ttft", 2);
	struct lb_lease lc[40];
	for (int i = 0; i < 40; i++) {
		snprintf(t, sizeof t, "another conversation, number %d, long enough to fill a few blocks of text here", i);
		struct lb_req q = req(c, t, 1000);
		int ep = lb_pick(c, &q);
		lb_acquire(c, ep, &q, &lc[i]);
	}
	same = 0;
	for (int i = 0; i < 50; i++) {
		snprintf(t, sizeof t, "a conversation neither router has routed, number %d, with a long first message", i);
		struct lb_req qc = req(c, t, 2000), qd = req(d, t, 2000);
		same += lb_pick(c, &qc) == lb_pick(d, &qd);
	}
	assert_true(same < 50);
	for (int i = 0; i < 40; i++) {
		lb_release(&la[i]);
		lb_release(&lc[i]);
	}
	assert_int_equal(lb_total_in_flight(a), 0);
	lb_free(a);
	lb_free(b);
	lb_free(c);
	lb_free(d);
}

/* A home far busier than the slack allows is passed over. */
static void test_busy_home(void **state)
{
	(void)state;
	struct lb *a = router("lowest-ttft:home-slack=0.5:guard-factor=100", 1);
	const char *t = "a prompt whose home will be made very busy by the requests before it, long enough";
	struct lb_req q = req(a, t, 1000);
	int home = lb_pick(a, &q);
	/* load the home with requests of other prompts, pinned there */
	struct lb_lease l[64];
	char u[96];
	for (int i = 0; i < 64; i++) {
		snprintf(u, sizeof u, "filler %d with a long enough text to weigh on the queue of its backend", i);
		struct lb_req f = req(a, u, 1000);
		f.prompt_tokens = 2000;
		lb_acquire(a, home, &f, &l[i]);
	}
	q = req(a, t, 2000);
	assert_int_not_equal(lb_pick(a, &q), home);
	for (int i = 0; i < 64; i++)
		lb_release(&l[i]);
	lb_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routers_agree),
		cmocka_unit_test(test_busy_home),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
