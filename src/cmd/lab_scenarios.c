/* lab_scenarios.c: the built-in scenarios of `prefixlb lab`. Each fills what
 * the command line leaves unset:
 *   seed           8 replicas of the calibrated L4 profile, the seed-shaped data
 *                  set, fork mode (8,000 prompts from the first 800 pairs, seed
 *                  12345), concurrency@rate 800@800, 1600@200, 3200@200,
 *                  8000@800; random (the seed's Kubernetes-Service "round
 *                  robin"), least-load, prefix-hash; both client variants;
 *                  each run on the fleet the seed's run order left;
 *   per-replica    50, 100, 200 requests in flight per replica;
 *   conversations  max-conversations 100 ... 3200;
 *   chat           closed-loop chat sessions (each client thread runs one
 *                  conversation after another, answers capped) at several
 *                  thread counts, for random, round-robin, least-load and
 *                  prefix-hash;
 *   arena          every policy over a matrix of workloads (lab_arena.c), seeds 1, 2, 3.
 * A scenario may also be a file of lab options, one per line (lab.c). */
#include <string.h>

#include "lab.h"

/* Sets *opt to v unless the command line set it: still NULL, or still def when def is not NULL. */
static void fill(const char **opt, const char *def, const char *v)
{
	if (def ? !strcmp(*opt, def) : !*opt)
		*opt = v;
}

/* Sets *opt (--concurrency or --per-replica) to v unless the command line gave either. */
static void fill_conc(struct lab_opts *o, const char **opt, const char *v)
{
	if (!o->concs && !o->per_replica)
		*opt = v;
}

int lab_scenario_fill(struct lab_opts *o)
{
	const char *s = o->scenario;
	if (!strcmp(s, "seed")) {
		fill_conc(o, &o->concs, "800@800,1600@200,3200@200,8000@800");
		fill(&o->policies, NULL, "random,least-load,prefix-hash");
		fill(&o->variant, NULL, "both");
		fill(&o->warm_up, NULL, "alternate");
	} else if (!strcmp(s, "per-replica")) {
		fill_conc(o, &o->per_replica, "50,100,200");
	} else if (!strcmp(s, "conversations")) {
		fill_conc(o, &o->concs, "1600@200");
		fill(&o->mconv, "800", "100,200,400,800,1600,3200");
	} else if (!strcmp(s, "arena")) {
		fill(&o->seeds, "12345", "1,2,3");
	} else if (!strcmp(s, "chat")) {
		fill_conc(o, &o->concs, "16@inf,32@inf,64@inf,128@inf");
		fill(&o->policies, NULL, "random,round-robin,least-load,prefix-hash");
		fill(&o->variant, NULL, "faithful");
		fill(&o->modes, "fork", "sessions");
		fill(&o->mconv, "800", "2000");
		fill(&o->nums, "8000", "6000");
		fill(&o->datasets, "seed", "chat");
		fill(&o->caps, NULL, "40");
	} else {
		return -1;
	}
	return 0;
}

const char *lab_scenario_names(void)
{
	return "seed, per-replica, conversations, chat, arena";
}
