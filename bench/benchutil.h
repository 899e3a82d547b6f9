/* benchutil.h: what the load clients in bench/ share (header-only). */
#ifndef PREFIXLB_BENCHUTIL_H
#define PREFIXLB_BENCHUTIL_H

#include <stdio.h>
#include <sys/resource.h>

/* As many open files as allowed (as root the hard limit goes up too). */
static inline void bench_raise_nofile(void)
{
	struct rlimit rl = {1 << 20, 1 << 20};
	if (setrlimit(RLIMIT_NOFILE, &rl) && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Reads up to max ports, one per line; returns how many. */
static inline int bench_read_ports(const char *path, int *ports, int max)
{
	int n = 0;
	FILE *f = fopen(path, "r");
	while (f && n < max && fscanf(f, "%d", &ports[n]) == 1)
		n++;
	if (f)
		fclose(f);
	return n;
}

#endif
