/* policy_round_robin.c: each pool's members in turn, skipping those not
 * eligible (unhealthy, tried). The baseline every load balancer has. */
#include "policy.h"

static int pick(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st)
{
	(void)st;
	size_t n = lb__pool_size(p), *cur = lb__pool_cursor(p);
	for (size_t k = 0; k < n; k++) {
		int ep = lb__pool_member(p, (*cur)++ % n);
		if (lb__eligible(lb, ep, rq, need_healthy))
			return ep;
	}
	return -1;
}

const struct lb_policy policy_round_robin = {
	.name = "round-robin",
	.help = "each backend in turn",
	.pick = pick,
};
