/* policy_least_load.c: the backend with the fewest requests in flight from
 * this router, ties broken uniformly at random (KubeAI's LeastLoad, its
 * default). Knows nothing of caches: the seed's "without" row. */
#include "policy.h"

static int pick(struct lb *lb, struct lb_pool *p, const struct lb_req *rq, int need_healthy, void *st)
{
	(void)st;
	return lb__least_loaded(lb, p, rq, need_healthy);
}

static const char *const aliases[] = {"LeastLoad", "least-loaded", NULL};

const struct lb_policy policy_least_load = {
	.name = "least-load",
	.help = "fewest requests in flight, random tie-break (KubeAI LeastLoad)",
	.aliases = aliases,
	.pick = pick,
};
