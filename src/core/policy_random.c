/* policy_random.c: an independent uniform pick per request, what a Kubernetes
 * Service does (kube-proxy) and what the seed's "round robin" row measured. */
#include "policy.h"

static int pick(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st)
{
	(void)st;
	size_t n = lb__pool_size(p);
	for (int k = 0; k < 8; k++) { /* O(1) while most members are eligible */
		int ep = lb__pool_member(p, lb__rand(lb) % n);
		if (lb__eligible(lb, ep, rq, need_healthy))
			return ep;
	}
	int chosen = -1;
	uint64_t seen = 0;
	for (size_t m = 0; m < n; m++) {
		int ep = lb__pool_member(p, m);
		if (lb__eligible(lb, ep, rq, need_healthy) && lb__rand(lb) % ++seen == 0)
			chosen = ep; /* reservoir: uniform */
	}
	return chosen;
}

static const char *const aliases[] = {"kubernetes-service", NULL};

const struct lb_policy policy_random = {
	.name = "random",
	.help = "a uniform random backend per request (a Kubernetes Service)",
	.aliases = aliases,
	.pick = pick,
};
