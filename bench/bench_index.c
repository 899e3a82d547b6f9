/* bench_index.c: the prefix index's memory at scale: 100,000 conversations of
 * 3 turns (prompts of 1,000, 2,000 and 3,000 tokens, each turn extending the
 * last) routed over 1,000 backends by a cache-aware policy with its default
 * caps, through the same lb_pick / lb_acquire / lb_release calls as the
 * router. Prints the index's entries and bytes against the configured cap,
 * the process's peak RSS, and the routing cost per request.
 *
 *   build/bench/bench_index [POLICY] [CONVERSATIONS] [BACKENDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/lb.h"
#include "core/policy.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct stat_ctx {
	double entries, bytes, blocks, evictions;
};

static void stat_cb(void *ctx, const char *name, int ep, double v)
{
	struct stat_ctx *s = ctx;
	if (ep >= 0)
		return;
	if (!strcmp(name, "index_entries"))
		s->entries = v;
	else if (!strcmp(name, "index_bytes"))
		s->bytes = v;
	else if (!strcmp(name, "index_blocks"))
		s->blocks = v;
	else if (!strcmp(name, "index_evictions_total"))
		s->evictions = v;
}

int main(int argc, char **argv)
{
	const char *policy = argc > 1 ? argv[1] : "lowest-ttft";
	long conversations = argc > 2 ? atol(argv[2]) : 100000;
	int backends = argc > 3 ? atoi(argv[3]) : 1000;
	enum { TURNS = 3, TURN_TOKENS = 1000 };
	struct lb_opts o;
	lb_opts_default(&o);
	char err[200];
	if (lb_opts_policy(&o, policy, err, sizeof err)) {
		fprintf(stderr, "bench_index: %s\n", err);
		return 2;
	}
	struct lb *lb = lb_new(&o);
	if (!lb)
		return 1;
	for (int i = 0; i < backends; i++) {
		char name[40];
		snprintf(name, sizeof name, "10.%d.%d.%d:8000", i >> 16, (i >> 8) & 255, i & 255);
		if (lb_add(lb, name, NULL, 0) < 0)
			return 1;
	}
	static uint32_t ids[TURNS * TURN_TOKENS];
	double t0 = now_s();
	uint64_t now = 0;
	long requests = 0;
	/* turn by turn over all conversations: a conversation's next turn comes
	 * after every other conversation's current one, the index's worst case
	 * for recency */
	for (int turn = 1; turn <= TURNS; turn++) {
		for (long c = 0; c < conversations; c++) {
			uint64_t x = (uint64_t)c * 0x9e3779b97f4a7c15ULL + 1;
			size_t n = (size_t)turn * TURN_TOKENS;
			for (size_t i = 0; i < n; i++) { /* the conversation's tokens: its own stream */
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				ids[i] = (uint32_t)(x % 128000);
			}
			now += 100000; /* 10,000 requests per second */
			struct lb_req rq = {.ids = ids, .n_ids = n, .max_tokens = 100, .now = now};
			int ep = lb_pick(lb, &rq);
			if (ep < 0)
				return 1;
			struct lb_lease l;
			lb_acquire(lb, ep, &rq, &l);
			lb_release(&l);
			requests++;
		}
	}
	double dt = now_s() - t0;
	struct stat_ctx s = {0};
	lb_policy_stats(lb, stat_cb, &s);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cap_total = lb_opts_get(&o, "index-max-total");
	printf("policy %s: %ld conversations x %d turns over %d backends = %ld requests, %.1f us per request\n", policy,
	       conversations, TURNS, backends, requests, dt / (double)requests * 1e6);
	printf("index: %.0f entries (cap %.0f), %.0f distinct blocks, %.0f evicted, %.1f MB held (%.0f bytes/entry); "
	       "peak RSS %.1f MB\n",
	       s.entries, cap_total, s.blocks, s.evictions, s.bytes / 1e6, s.entries ? s.bytes / s.entries : 0,
	       (double)ru.ru_maxrss / 1024);
	int ok = cap_total <= 0 || s.entries <= cap_total;
	printf("under the cap: %s\n", ok ? "yes" : "NO");
	lb_free(lb);
	return ok ? 0 : 1;
}
