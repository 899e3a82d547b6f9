/* policytest.h: what the policy tests share (test_policy_*.c): a routing
 * state of one policy over n endpoints named 10.0.0.1:8000..., with
 * parameters set from lists (each setting asserted). */
#ifndef PREFIXLB_TEST_POLICYTEST_H
#define PREFIXLB_TEST_POLICYTEST_H

#include <stdio.h>

#include "core/lb.h"
#include "core/policy.h"

struct kv {
	const char *name;
	double v;
};

/* a, then b (either NULL-terminated by name, or NULL), applied in order. */
static struct lb *policy_lb(const char *policy, int n, const struct kv *a, const struct kv *b)
{
	struct lb_opts o;
	lb_opts_default(&o);
	o.policy = policy_find(policy);
	assert_non_null(o.policy);
	for (const struct kv *p = a; p && p->name; p++)
		assert_int_equal(lb_opts_set(&o, p->name, p->v), 0);
	for (const struct kv *p = b; p && p->name; p++)
		assert_int_equal(lb_opts_set(&o, p->name, p->v), 0);
	struct lb *lb = lb_new(&o);
	assert_non_null(lb);
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "10.0.0.%d:8000", i + 1);
		assert_int_equal(lb_add(lb, name, NULL, 0), i);
	}
	return lb;
}

#endif
