/* lab_plot.c: the lab's gnuplot plots (see lab.h): mean TTFT (log scale),
 * total throughput and prefix-cache hit rate against the first numeric axis
 * of the sweep that varies, one line per policy and per value of the other
 * axes that vary, the seed's published values as points, one point series
 * per policy in a darker shade of the policy's colour. Live and virtual runs
 * give the same plots (live ones are named ...-live-VARIANT.png). */
#include <math.h>
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

/* Per policy: the line's colour and a darker one of the same family for the
 * seed's published points. */
static const char *const palette[][2] = {
	{"#a569bd", "#6c3483"}, /* purple */
	{"#52be80", "#1e8449"}, /* green */
	{"#5dade2", "#1f618d"}, /* blue */
	{"#f0b27a", "#ca6f1e"}, /* orange */
	{"#ec7063", "#a93226"}, /* red */
	{"#aab7b8", "#566573"}, /* grey */
};
#define N_COLOURS (sizeof palette / sizeof *palette)

/* A policy's colour, the same in every plot for the seed's three policies and
 * round-robin; other policies take the rest in turn (k: its index among the
 * run's policies). */
static size_t colour_of(const char *policy, size_t k)
{
	static const char *const fixed[] = {"random", "least-load", "prefix-hash", "round-robin"};
	size_t len = strcspn(policy, ":");
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		if (strlen(fixed[i]) == len && !strncmp(policy, fixed[i], len))
			return i;
	return 4 + k % (N_COLOURS - 4);
}

/* Writes s as a gnuplot string: single-quoted (a quote doubled), or
 * double-quoted (newlines as \n, quotes and backslashes escaped). */
static void put_sq(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

static void put_dq(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || *s == '\n')
			fputc('\\', f);
		fputc(*s == '\n' ? 'n' : *s, f);
	}
	fputc('"', f);
}

/* The index of policy among the distinct policies of the variant's runs. */
static size_t policy_index(const struct lab_result *runs, size_t n, const char *variant, const char *policy)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(runs[i].p.variant, variant))
			continue;
		if (!strcmp(runs[i].p.policy, policy))
			return k;
		size_t j;
		for (j = 0; j < i && (strcmp(runs[j].p.variant, variant) || strcmp(runs[j].p.policy, runs[i].p.policy)); j++)
			;
		if (j == i)
			k++;
	}
	return k;
}

/* One set of PNGs for the runs of one variant. */
static int plot_variant(const char *dir, const struct lab_result *runs, size_t n, const char *variant,
			const char *scenario, const char *pre, struct point *pts, size_t *series)
{
	unsigned vary = lab_varying(runs, n, variant), vary0 = vary;
	int xa = AX_CONC;
	for (int ax = AX_CONC; ax <= AX_NUM; ax++)
		if (vary & (1u << ax)) {
			xa = ax;
			break;
		}
	int all_finite = 1;
	for (size_t i = 0; i < n; i++)
		all_finite &= strcmp(runs[i].p.variant, variant) || isfinite(runs[i].p.rate);
	if (!(vary & ((1u << (AX_NUM + 1)) - 1)) && (vary & (1u << AX_RATE)) && all_finite)
		xa = AX_RATE; /* only the rate varies among the numeric axes */
	vary &= ~(1u << xa);
	if (xa == AX_CONC && (vary0 & (1u << AX_CONC)))
		vary &= ~(1u << AX_RATE); /* a rate goes with its concurrency item: labelled per point */
	size_t n_series = 0, firsts[32], n_xs = 0;
	double xmin = 1e300, xmax = -1e300, xs[16];
	const struct lab_result *r0 = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(runs[i].p.variant, variant))
			continue;
		if (!r0)
			r0 = &runs[i];
		double xv = lab_axis_num(&runs[i].p, xa);
		xmin = xv < xmin ? xv : xmin;
		xmax = xv > xmax ? xv : xmax;
		size_t q;
		for (q = 0; q < n_xs && xs[q] != xv; q++)
			;
		if (q == n_xs && n_xs < 16)
			xs[n_xs++] = xv;
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
		return 0;
	/* our runs: one data file per series */
	for (size_t k = 0; k < n_series; k++) {
		size_t np = 0;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(runs[i].p.variant, variant) && series[i] == k)
				pts[np++] = (struct point){lab_axis_num(&runs[i].p, xa), runs[i].m.m[M_TTFT].mean,
							   runs[i].m.total_token_throughput, runs[i].hit_rate};
		qsort(pts, np, sizeof *pts, cmp_point);
		char dat[1100];
		snprintf(dat, sizeof dat, "%s/%s%s-%zu.dat", dir, pre, variant, k);
		FILE *d = fopen(dat, "w");
		if (!d)
			return -1;
		for (size_t i = 0; i < np; i++)
			fprintf(d, "%g %.3f %.3f %.4f\n", pts[i].x, pts[i].ttft, pts[i].tps, pts[i].hit);
		fclose(d);
	}
	/* the seed's published points: one data file per policy that has any */
	size_t n_pol = policy_index(runs, n, variant, ""); /* no policy is "": the count */
	int *has_seed = plb_calloc(n_pol + 1, sizeof *has_seed), n_seed = 0;
	for (size_t pi = 0; pi < n_pol; pi++) {
		char sd[1100];
		snprintf(sd, sizeof sd, "%s/%s%s-seed-%zu.dat", dir, pre, variant, pi);
		FILE *sf = NULL;
		for (size_t i = 0; i < n; i++) {
			const struct seed_row *s = strcmp(runs[i].p.variant, variant) ? NULL : lab_seed_row(&runs[i].p);
			if (!s || policy_index(runs, n, variant, runs[i].p.policy) != pi)
				continue;
			if (!sf && !(sf = fopen(sd, "w")))
				break;
			fprintf(sf, "%g %.3f %.3f\n", lab_axis_num(&runs[i].p, xa), s->ttft_mean, s->tps);
			has_seed[pi] = 1;
			n_seed++;
		}
		if (sf)
			fclose(sf);
	}
	char gp[1100];
	snprintf(gp, sizeof gp, "%s/plot-%s%s.gp", dir, pre, variant);
	FILE *f = fopen(gp, "w");
	if (!f) {
		free(has_seed);
		return -1;
	}
	/* the title: scenario, client variant, mode, fleet, rate */
	char desc[256], rs[16], rate[96], title[1024];
	const char *sc = strrchr(scenario, '/');
	lab_variant_desc(&r0->p, (vary0 >> AX_LAG) & 1, desc, sizeof desc);
	lab_rate_str(r0->p.rate, rs, sizeof rs);
	int rate_labels = xa == AX_CONC && (vary0 & (1u << AX_RATE)) && !(vary & (1u << AX_RATE));
	if (xa == AX_RATE)
		snprintf(rate, sizeof rate, "request rate (req/s) on the x axis");
	else if (!(vary0 & (1u << AX_RATE)))
		snprintf(rate, sizeof rate, "request rate %s%s", rs, isfinite(r0->p.rate) ? " req/s" : " (no pacing)");
	else
		snprintf(rate, sizeof rate, "request rate %s", rate_labels ? "per point (at the bottom)" : "per line");
	char mode[64] = "virtual time";
	if (r0->p.scale > 0)
		snprintf(mode, sizeof mode, "live, time scale %g", r0->p.scale);
	snprintf(title, sizeof title, "%s scenario, %s\n%s client (%s)\n%d x %s, %s workload, %s", sc ? sc + 1 : scenario,
		 mode, variant, desc, r0->p.replicas, r0->p.profile, r0->p.workload, rate);
	int logx = xmax > 4 * xmin && xmin > 0;
	double pad = xmax > xmin ? (xmax - xmin) * 0.08 : xmin != 0 ? fabs(xmin) * 0.25 : 1;
	fprintf(f, "set terminal png size 1000,700 noenhanced\nset grid\nset key outside below maxrows 3 height 1\n"
		   "set xlabel '%s'\n%s\nset xrange [%g:%g]\nset xtics (",
		lab_ax_name[xa], logx ? "set logscale x" : "unset logscale x", logx ? xmin / 1.3 : xmin - pad,
		logx ? xmax * 1.3 : xmax + pad);
	for (size_t q = 0; q < n_xs; q++)
		fprintf(f, "%s'%g' %g", q ? ", " : "", xs[q], xs[q]);
	fprintf(f, ")\n");
	if (rate_labels) /* label each concurrency with its rate */
		for (size_t i = 0; i < n; i++)
			if (!strcmp(runs[i].p.variant, variant) && series[i] == 0) {
				lab_rate_str(runs[i].p.rate, rs, sizeof rs);
				fprintf(f, "set label 'rate %s' at first %g, graph 0.04 center font ',8'\n", rs,
					lab_axis_num(&runs[i].p, xa));
			}
	static const char *const what[] = {"ttft", "throughput", "hit-rate"};
	static const char *const ylab[] = {"mean TTFT (ms, log scale)", "total token throughput (tok/s)",
					   "prefix-cache hit rate"};
	for (int k = 0; k < 3; k++) {
		char t[1200];
		snprintf(t, sizeof t, "%s%s, %s", ylab[k], k == 2 && n_seed ? " (the seed published none)" : "", title);
		fprintf(f, "set output '%s/%s-%s%s.png'\nset ylabel '%s'\n%s\nset title ", dir, what[k], pre, variant, ylab[k],
			k == 0	 ? "set logscale y\nset yrange [*:*]\nset offsets 0, 0, 0, 0"
			: k == 1 ? "unset logscale y\nset yrange [0:*]\nset offsets 0, 0, graph 0.05, 0"
				 : "unset logscale y\nset yrange [0:1.05]\nset offsets 0, 0, 0, 0");
		put_dq(f, t);
		fprintf(f, "\nplot ");
		for (size_t j = 0; j < n_series; j++) {
			const struct lab_result *r = &runs[firsts[j]];
			size_t c = colour_of(r->p.policy, policy_index(runs, n, variant, r->p.policy)), dt = 1;
			for (size_t q = 0; q < j; q++) /* a dash type per line of the same colour */
				dt += colour_of(runs[firsts[q]].p.policy,
						policy_index(runs, n, variant, runs[firsts[q]].p.policy)) == c;
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
			static const int pt[] = {7, 9, 11, 13, 15, 1, 2, 3}; /* 4, an open square, is the seed's */
			fprintf(f, "%s'%s/%s%s-%zu.dat' using 1:%d with linespoints lw 2 dt %zu pt %d ps 1.1 lc rgb '%s' title ",
				j ? ", " : "", dir, pre, variant, j, k + 2, dt, pt[(dt - 1) % 8], palette[c][0]);
			put_sq(f, st);
		}
		for (size_t pi = 0; pi < n_pol && k < 2; pi++) {
			if (!has_seed[pi])
				continue;
			char st[256] = "seed, published";
			size_t c = 0;
			for (size_t i = 0; i < n; i++)
				if (!strcmp(runs[i].p.variant, variant) && policy_index(runs, n, variant, runs[i].p.policy) == pi) {
					snprintf(st, sizeof st, "%s (seed, published)", runs[i].p.policy);
					c = colour_of(runs[i].p.policy, pi);
					break;
				}
			fprintf(f, ", '%s/%s%s-seed-%zu.dat' using 1:%d with points pt 4 ps 1.8 lw 2 lc rgb '%s' title ", dir, pre,
				variant, pi, k + 2, palette[c][1]);
			put_sq(f, st);
		}
		fprintf(f, "\n");
	}
	fclose(f);
	free(has_seed);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", gp);
	if (system(cmd) == 0)
		printf("plots: %s/{ttft,throughput,hit-rate}-%s%s.png (x: %s)\n", dir, pre, variant, lab_ax_name[xa]);
	return 0;
}

void lab_plot(const char *dir, const struct lab_result *runs, size_t n, const char *scenario, int live)
{
	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		printf("(gnuplot not found: no plots)\n");
		return;
	}
	const char *variants[16];
	size_t nv = lab_variants(runs, n, variants, 16);
	struct point *pts = plb_calloc(n + 1, sizeof *pts);
	size_t *series = plb_calloc(n + 1, sizeof *series);
	for (size_t v = 0; v < nv; v++)
		if (plot_variant(dir, runs, n, variants[v], scenario, live ? "live-" : "", pts, series))
			break;
	free(pts);
	free(series);
}
