/* bench_lb.c: routing decisions per second (lb_key + lb_pick + acquire/release)
 * for 8 and 1,000 endpoints, per policy, with a steady 4 requests in flight per
 * endpoint so the bounded-load walk does real work. Median of 5 runs. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/lb.h"
#include "core/policy.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	int sizes[] = {8, 1000};
	const char *pols[] = {"prefix-hash", "least-load", "random"};
	char texts[512][120];
	for (int i = 0; i < 512; i++)
		snprintf(texts[i], sizeof texts[i], "User: conversation %d asks about the weather in a city far away.\n", i);
	for (size_t s = 0; s < 2; s++) {
		for (size_t p = 0; p < 3; p++) {
			struct lb_opts o;
			lb_opts_default(&o);
			o.policy = policy_find(pols[p]);
			struct lb *lb = lb_new(&o);
			for (int i = 0; i < sizes[s]; i++) {
				char name[40];
				snprintf(name, sizeof name, "10.%d.%d.%d:8000", i >> 16, (i >> 8) & 255, i & 255);
				lb_add(lb, name, NULL, 0);
			}
			int window = 4 * sizes[s];
			struct lb_lease *ls = calloc((size_t)window, sizeof *ls);
			double rates[5];
			long n = 400000;
			for (int r = 0; r < 5; r++) {
				double t0 = now_s();
				for (long i = 0; i < n; i++) {
					const char *t = texts[i & 511];
					uint64_t k = lb_key(lb, t, 70);
					struct lb_req rq = {.key = k};
					int ep = lb_pick(lb, &rq);
					struct lb_lease *l = &ls[i % window];
					lb_release(l);
					lb_acquire(lb, ep, &rq, l);
				}
				rates[r] = (double)n / (now_s() - t0);
			}
			qsort(rates, 5, sizeof *rates, cmp);
			printf("lb: policy=%-12s endpoints=%-5d decisions/s=%.0f (%.0f ns each)\n", pols[p],
			       sizes[s], rates[2], 1e9 / rates[2]);
			for (int i = 0; i < window; i++)
				lb_release(&ls[i]);
			free(ls);
			lb_free(lb);
		}
	}
	return 0;
}
