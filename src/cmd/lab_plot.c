/* lab_plot.c: the lab's gnuplot plots (see lab.h): mean TTFT (log scale),
 * total throughput and prefix-cache hit rate against the first numeric axis
 * of the sweep that varies, one line per policy and per value of the other
 * axes that vary, the seed's published values as points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "lab.h"

struct point {
	double x, ttft, tps, hit;
};

static int cmp_point(const void *a, const void *b)
{
	double x = ((const struct point *)a)->x, y = ((const struct point *)b)->x;
	return x < y ? -1 : x > y;
}

/* gnuplot: mean TTFT (log), total throughput and hit rate against the first
 * numeric axis that varies (concurrency, max conversations, replicas, num
 * prompts), one line per policy and per value of the other axes that vary,
 * the seed's published values as points. One set of PNGs per variant. */
void lab_plot(const char *dir, const struct lab_result *runs, size_t n)
{
	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		printf("(gnuplot not found: no plots)\n");
		return;
	}
	const char *variants[16];
	size_t nv = lab_variants(runs, n, variants, 16);
	struct point *pts = plb_calloc(n + 1, sizeof *pts);
	size_t *series = plb_calloc(n + 1, sizeof *series);
	for (size_t v = 0; v < nv && pts && series; v++) {
		unsigned vary = lab_varying(runs, n, variants[v]);
		int xa = AX_CONC;
		for (int ax = AX_CONC; ax <= AX_NUM; ax++)
			if (vary & (1u << ax)) {
				xa = ax;
				break;
			}
		vary &= ~(1u << xa);
		if (xa == AX_CONC)
			vary &= ~(1u << AX_RATE); /* a rate goes with its concurrency item */
		size_t n_series = 0, firsts[32];
		double xmin = 1e300, xmax = 0;
		const struct lab_result *r0 = NULL;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(runs[i].p.variant, variants[v]))
				continue;
			if (!r0)
				r0 = &runs[i];
			double xv = lab_axis_num(&runs[i].p, xa);
			xmin = xv < xmin ? xv : xmin;
			xmax = xv > xmax ? xv : xmax;
			size_t s = SIZE_MAX;
			for (size_t k = 0; k < n_series && s == SIZE_MAX; k++) {
				const struct lab_result *r = &runs[firsts[k]];
				int same = !strcmp(r->p.policy, runs[i].p.policy);
				for (int ax = 0; ax < AX_N && same; ax++)
					same = !(vary & (1u << ax)) || lab_axis_same(&r->p, &runs[i].p, ax);
				if (same)
					s = k;
			}
			if (s == SIZE_MAX && n_series < 32)
				firsts[s = n_series++] = i;
			series[i] = s;
		}
		if (!r0)
			continue;
		char gp[1100];
		snprintf(gp, sizeof gp, "%s/plot-%s.gp", dir, variants[v]);
		FILE *f = fopen(gp, "w");
		if (!f)
			break;
		int have_seed = 0;
		char sd[1100];
		snprintf(sd, sizeof sd, "%s/%s-seed.dat", dir, variants[v]);
		FILE *sf = fopen(sd, "w");
		for (size_t i = 0; i < n && sf; i++) {
			const struct seed_row *s = strcmp(runs[i].p.variant, variants[v]) ? NULL : lab_seed_row(&runs[i].p);
			if (s) {
				fprintf(sf, "%g %.3f %.3f\n", lab_axis_num(&runs[i].p, xa), s->ttft_mean, s->tps);
				have_seed = 1;
			}
		}
		if (sf)
			fclose(sf);
		for (size_t k = 0; k < n_series; k++) {
			size_t np = 0;
			for (size_t i = 0; i < n; i++)
				if (!strcmp(runs[i].p.variant, variants[v]) && series[i] == k)
					pts[np++] = (struct point){lab_axis_num(&runs[i].p, xa), runs[i].m.m[M_TTFT].mean,
								   runs[i].m.total_token_throughput, runs[i].hit_rate};
			qsort(pts, np, sizeof *pts, cmp_point);
			char dat[1100];
			snprintf(dat, sizeof dat, "%s/%s-%zu.dat", dir, variants[v], k);
			FILE *d = fopen(dat, "w");
			if (!d)
				continue;
			for (size_t i = 0; i < np; i++)
				fprintf(d, "%g %.3f %.3f %.4f\n", pts[i].x, pts[i].ttft, pts[i].tps, pts[i].hit);
			fclose(d);
		}
		char rs[16], title[512];
		lab_rate_str(r0->p.rate, rs, sizeof rs);
		snprintf(title, sizeof title, "%s client, %d x %s, %s workload%s%s", variants[v], r0->p.replicas,
			 r0->p.profile, r0->p.workload, xa == AX_CONC ? "" : ", rate ", xa == AX_CONC ? "" : rs);
		for (char *c = title; *c; c++)
			if (*c == '\'' || *c == '\\')
				*c = '_';
		int logx = xmax > 4 * xmin && xmin > 0;
		fprintf(f, "set terminal png size 960,560\nset grid\nset key outside right top\nset xlabel '%s'\n%s\n"
			   "set xrange [%g:%g]\n",
			lab_ax_name[xa], logx ? "set logscale x" : "unset logscale x", logx ? xmin / 1.3 : xmin - 1,
			logx ? xmax * 1.3 : xmax + 1);
		if (xa == AX_CONC) { /* label each point with its rate */
			for (size_t i = 0; i < n; i++)
				if (!strcmp(runs[i].p.variant, variants[v]) && series[i] == 0) {
					lab_rate_str(runs[i].p.rate, rs, sizeof rs);
					fprintf(f, "set label 'rate %s' at first %g, graph 0.04 center font ',8'\n", rs,
						lab_axis_num(&runs[i].p, xa));
				}
		}
		static const char *const what[] = {"ttft", "throughput", "hit-rate"};
		static const char *const ylab[] = {"mean TTFT (ms, log scale)", "total token throughput (tok/s)",
						   "prefix-cache hit rate"};
		for (int k = 0; k < 3; k++) {
			fprintf(f, "set output '%s/%s-%s.png'\nset ylabel '%s'\n%s\nset title '%s: %s'\nplot ", dir, what[k],
				variants[v], ylab[k], k == 0 ? "set logscale y\nset yrange [*:*]" : k == 1 ? "unset logscale y\nset yrange [0:*]" : "unset logscale y\nset yrange [0:1.05]",
				title, ylab[k]);
			for (size_t j = 0; j < n_series; j++) {
				const struct lab_result *r = &runs[firsts[j]];
				char st[256];
				int len = snprintf(st, sizeof st, "%s", r->p.policy);
				for (int ax = 0; ax < AX_N && len > 0 && (size_t)len < sizeof st; ax++)
					if (vary & (1u << ax)) {
						if (ax >= AX_PROFILE) {
							const char *sv = lab_axis_str(&r->p, ax), *b = strrchr(sv, '/');
							len += snprintf(st + len, sizeof st - (size_t)len, " %s", b ? b + 1 : sv);
						} else {
							len += snprintf(st + len, sizeof st - (size_t)len, " %s=%g", lab_ax_name[ax],
									lab_axis_num(&r->p, ax));
						}
					}
				for (char *c = st; *c; c++)
					if (*c == '\'' || *c == '\\')
						*c = '_';
				fprintf(f, "%s'%s/%s-%zu.dat' using 1:%d with linespoints lw 2 title '%s'", j ? ", " : "", dir,
					variants[v], j, k + 2, st);
			}
			if (have_seed && k < 2)
				fprintf(f, ", '%s' using 1:%d with points pt 7 ps 1.5 lc rgb 'black' title 'seed, published'", sd,
					k + 2);
			fprintf(f, "\n");
		}
		fclose(f);
		char cmd[1200];
		snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", gp);
		if (system(cmd) == 0)
			printf("plots: %s/{ttft,throughput,hit-rate}-%s.png (x: %s)\n", dir, variants[v], lab_ax_name[xa]);
	}
	free(pts);
	free(series);
}
