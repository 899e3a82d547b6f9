/* policy.c: the registry of routing policies; see policy.h.
 *
 * To add a policy: write src/core/policy_NAME.c (copy policy_least_load.c for
 * the shape), declare it below and add one line to `registry`. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

extern const struct lb_policy policy_round_robin, policy_random, policy_least_load, policy_prefix_hash,
	policy_lowest_ttft;
extern const struct lb_policy policy_dynamo, policy_llmd, policy_smg, policy_aibrix;

static const struct lb_policy *const registry[] = {
	&policy_round_robin,
	&policy_random,
	&policy_least_load,
	&policy_prefix_hash,
	&policy_lowest_ttft,
	&policy_dynamo,
	&policy_llmd,
	&policy_smg,
	&policy_aibrix,
};

#define N_REGISTRY (sizeof registry / sizeof *registry)

const struct lb_policy *policy_at(size_t i)
{
	return i < N_REGISTRY ? registry[i] : NULL;
}

const struct lb_policy *policy_find(const char *name)
{
	for (size_t i = 0; i < N_REGISTRY; i++) {
		if (!strcmp(registry[i]->name, name))
			return registry[i];
		for (const char *const *a = registry[i]->aliases; a && *a; a++)
			if (!strcmp(*a, name))
				return registry[i];
	}
	return NULL;
}

char *policy_names(char *out, size_t cap)
{
	size_t n = 0;
	if (cap)
		out[0] = '\0';
	for (size_t i = 0; i < N_REGISTRY && n < cap; i++) {
		int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", registry[i]->name);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	return out;
}

/* Parameters in registry order, the first definition of a name winning. */
const struct lb_param *policy_param_at(size_t want)
{
	size_t k = 0;
	for (size_t i = 0; i < N_REGISTRY; i++) {
		for (const struct lb_param *p = registry[i]->params; p && p->name; p++) {
			int dup = 0;
			for (size_t j = 0; j <= i && !dup; j++)
				for (const struct lb_param *q = registry[j]->params; q && q->name && q != p && !dup; q++)
					dup = !strcmp(q->name, p->name);
			if (dup)
				continue;
			if (k++ == want)
				return p;
		}
	}
	return NULL;
}

int policy_param_index(const char *name)
{
	for (size_t i = 0; i < LB_MAX_PARAMS; i++) {
		const struct lb_param *p = policy_param_at(i);
		if (!p)
			return -1;
		if (!strcmp(p->name, name))
			return (int)i;
	}
	return -1;
}
