/* lab_arena.c: `prefixlb lab --virtual --scenario arena`: every registered
 * routing policy over one matrix of workloads, in virtual time, each cell run
 * with several seeds (the data set, the shuffle and the arrivals change with
 * it) and reported as the median over them. One table per figure (mean TTFT,
 * p99 TTFT, total tokens/s, prefix-cache hit rate): a row per policy, a column
 * per workload, the best of each column marked; then the targets (ours against
 * the best of each column, against least-load, p99 against prefix-hash) and a
 * grouped bar chart per figure. Deterministic per seed.
 *
 * The cells: the seed's 1600@200 and 8000@800 rows with both clients (each run
 * on a fleet the same policy warmed with one pass of the prompts, its steady
 * state), closed-loop chat at 32 and 128 client threads (answers capped at 40
 * tokens), the shared-system, hot and rag data sets at 100 requests in flight
 * per replica, a mixed fleet (4 x L4 + 4 x H100), churn (a replica crashes at
 * 20 s and returns at 50 s; 4 replicas join at 60 s: 8 -> 12; on a fleet the
 * policy warmed, since on a cold one every request slower than 1.5 s was sent
 * in the first 4 s: the cell's p99 was the cold start, not the churn) and 64
 * replicas.
 * The router reads engine signals every 200 ms in every cell (the policies
 * that use them see them 200 ms stale at most) and, with --orca on (the
 * default, as `prefixlb route`), from every response head as well.
 *
 * Many routers (--routers N): every cell also runs with N routers, each with
 * its own state (in-flight counts, prefix index), requests spread over them
 * (--router-assign); the engine signals are their shared truth. Then a table
 * per policy: hit rate and p99 TTFT with N routers against one, per cell. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "../core/policy.h"
#include "cmd.h"
#include "lab.h"

struct cell {
	const char *name; /* column label */
	const char *dataset, *workload, *variant, *warm;
	int replicas;
	long conc;
	double rate;
	long max_conv, num, cap;
	const char *fleet, *churn;
};

static const struct cell cells[] = {
	{"seed1600", "seed", "fork", "as-published", "same", 8, 1600, 200, 800, 8000, 0, NULL, NULL},
	{"seed1600f", "seed", "fork", "faithful", "same", 8, 1600, 200, 800, 8000, 0, NULL, NULL},
	{"seed8000", "seed", "fork", "as-published", "same", 8, 8000, 800, 800, 8000, 0, NULL, NULL},
	{"seed8000f", "seed", "fork", "faithful", "same", 8, 8000, 800, 800, 8000, 0, NULL, NULL},
	{"chat32", "chat", "sessions", "faithful", "none", 8, 32, INFINITY, 2000, 3000, 40, NULL, NULL},
	{"chat128", "chat", "sessions", "faithful", "none", 8, 128, INFINITY, 2000, 4000, 40, NULL, NULL},
	{"shared", "shared-system", "fork", "faithful", "none", 8, 800, 200, 800, 8000, 0, NULL, NULL},
	{"hot", "hot", "fork", "faithful", "none", 8, 800, 200, 800, 8000, 0, NULL, NULL},
	{"rag", "rag", "fork", "faithful", "none", 8, 800, 200, 800, 8000, 0, NULL, NULL},
	{"mixed", "seed", "fork", "faithful", "none", 8, 800, 200, 800, 8000, 0, "l4-llama3.1-8b*4+h100-llama3.1-8b*4",
	 NULL},
	{"churn", "seed", "fork", "faithful", "same", 12, 800, 200, 800, 8000, 0, NULL,
	 "DOWN:3@20,UP:3@50,UP:8@60,UP:9@60,UP:10@60,UP:11@60"},
	{"64rep", "seed", "fork", "faithful", "none", 64, 6400, 1600, 6400, 16000, 0, NULL, NULL},
};
#define N_CELLS (sizeof cells / sizeof *cells)

enum { F_MEAN, F_P99, F_TPS, F_HIT, N_FIG };
static const char *const fig_name[N_FIG] = {"mean TTFT (ms)", "p99 TTFT (ms)", "total tokens/s", "prefix-cache hit rate"};
static const char *const fig_file[N_FIG] = {"mean-ttft", "p99-ttft", "throughput", "hit-rate"};

static double figure(const struct lab_result *r, int f)
{
	switch (f) {
	case F_MEAN: return r->m.m[M_TTFT].mean;
	case F_P99: return r->m.m[M_TTFT].pct[0];
	case F_TPS: return r->m.total_token_throughput;
	default: return r->hit_rate;
	}
}

static int lower_is_better(int f)
{
	return f == F_MEAN || f == F_P99;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_d);
	return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : NAN;
}

/* The medians, med[cell][policy][figure]. */
static void print_tables(double (*med)[64][N_FIG], const char *const *pol, size_t np, int ours)
{
	int w = 13; /* the widest label: policies may carry parameters */
	for (size_t p = 0; p < np; p++)
		w = (int)strlen(pol[p]) > w ? (int)strlen(pol[p]) : w;
	for (int f = 0; f < N_FIG; f++) {
		printf("\n%s, median of the seeds (* best of the column)\n%-*s", fig_name[f], w, "policy");
		for (size_t c = 0; c < N_CELLS; c++)
			printf(" %10s", cells[c].name);
		printf("\n");
		for (size_t p = 0; p < np; p++) {
			printf("%-*s", w, pol[p]);
			for (size_t c = 0; c < N_CELLS; c++) {
				double best = med[c][0][f];
				for (size_t q = 1; q < np; q++)
					best = lower_is_better(f) ? fmin(best, med[c][q][f]) : fmax(best, med[c][q][f]);
				double v = med[c][p][f];
				if (f == F_HIT)
					printf(" %9.3f%c", v, v == best ? '*' : ' ');
				else
					printf(" %9.0f%c", v, v == best ? '*' : ' ');
			}
			printf("%s\n", (int)p == ours ? "   <- ours" : "");
		}
	}
}

/* What the README's targets ask, measured. */
static void print_targets(double (*med)[64][N_FIG], const char *const *pol, size_t np, int ours)
{
	int ll = -1, ph = -1;
	for (size_t p = 0; p < np; p++) {
		if (!strcmp(pol[p], "least-load"))
			ll = (int)p;
		if (!strcmp(pol[p], "prefix-hash"))
			ph = (int)p;
	}
	if (ours < 0)
		return;
	printf("\ntargets (%s):\n", pol[ours]);
	int cells_ok = 0, cells_all = 0, never_worse = 1;
	for (size_t c = 0; c < N_CELLS; c++)
		for (int f = 0; f < N_FIG; f++) {
			double best = med[c][0][f];
			for (size_t q = 1; q < np; q++)
				best = lower_is_better(f) ? fmin(best, med[c][q][f]) : fmax(best, med[c][q][f]);
			double v = med[c][ours][f];
			double gap = lower_is_better(f) ? v / best - 1 : 1 - v / best;
			cells_all++;
			if (gap <= 0.05)
				cells_ok++;
			else
				printf("  %-10s %-22s %.0f%% behind the best\n", cells[c].name, fig_name[f], gap * 100);
			if (ll >= 0 && f != F_HIT) {
				double l = med[c][ll][f];
				int worse = lower_is_better(f) ? v > l * 1.02 : v < l * 0.98;
				if (worse) {
					never_worse = 0;
					printf("  %-10s %-22s worse than least-load: %.0f vs %.0f\n", cells[c].name, fig_name[f], v,
					       l);
				}
			}
		}
	printf("  best or within 5%% of the best: %d of %d cells x figures\n", cells_ok, cells_all);
	printf("  never worse than least-load (2%% noise allowed): %s\n", never_worse ? "yes" : "no");
	if (ph >= 0) {
		static const char *const p99_cells[] = {"shared", "hot", "churn", "mixed"};
		for (int k = 0; k < 4; k++)
			for (size_t c = 0; c < N_CELLS; c++)
				if (!strcmp(cells[c].name, p99_cells[k]))
					printf("  p99 TTFT on %-7s prefix-hash / ours = %.1fx (target >= 2x)\n", p99_cells[k],
					       med[c][ph][F_P99] / med[c][ours][F_P99]);
	}
	if (ll >= 0)
		printf("  seed 1600@200 as-published: least-load / ours mean TTFT = %.0fx (the seed's least-load / "
		       "prefix-hash: 54x)\n",
		       med[0][ll][F_MEAN] / med[0][ours][F_MEAN]);
}

static void plot(const char *dir, double (*med)[64][N_FIG], const char *const *pol, size_t np)
{
	if (system("command -v gnuplot >/dev/null 2>&1") != 0)
		return;
	char dat[1100], gp[1100];
	snprintf(dat, sizeof dat, "%s/arena.dat", dir);
	snprintf(gp, sizeof gp, "%s/arena.gp", dir);
	FILE *d = fopen(dat, "w"), *g = fopen(gp, "w");
	if (!d || !g) {
		if (d)
			fclose(d);
		if (g)
			fclose(g);
		return;
	}
	for (size_t c = 0; c < N_CELLS; c++) {
		fprintf(d, "%s", cells[c].name);
		for (size_t p = 0; p < np; p++)
			for (int f = 0; f < N_FIG; f++)
				fprintf(d, " %.6g", med[c][p][f]);
		fprintf(d, "\n");
	}
	fclose(d);
	fprintf(g, "set terminal png size 1400,560\nset style data histograms\nset style histogram clustered gap 1\n"
		   "set style fill solid 0.9 border -1\nset grid ytics\nset key outside right top\nset xtics rotate by -30\n");
	for (int f = 0; f < N_FIG; f++) {
		fprintf(g, "set output '%s/arena-%s.png'\nset title 'arena: %s by workload, median of the seeds'\n"
			   "set ylabel '%s'\n%s\nplot ",
			dir, fig_file[f], fig_name[f], fig_name[f], f < 2 ? "set logscale y" : "unset logscale y");
		for (size_t p = 0; p < np; p++)
			fprintf(g, "%s'%s' using %zu:xtic(1) title '%s'", p ? ", " : "", dat, 2 + p * N_FIG + (size_t)f, pol[p]);
		fprintf(g, "\n");
	}
	fclose(g);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", gp);
	if (system(cmd) == 0)
		printf("plots: %s/arena-{mean-ttft,p99-ttft,throughput,hit-rate}.png\n", dir);
}

/* N routers against one: per policy, the change of hit rate and p99 TTFT in
 * each cell, and how many cells stay within 5% on both. */
static void print_routers(double (*one)[64][N_FIG], double (*many)[64][N_FIG], const char *const *pol, size_t np,
			  int n_routers)
{
	printf("\n%d routers against 1: hit rate change / p99 TTFT change (%%), median of the seeds\n%-13s", n_routers,
	       "policy");
	for (size_t c = 0; c < N_CELLS; c++)
		printf(" %13s", cells[c].name);
	printf("  within 5%%\n");
	for (size_t p = 0; p < np; p++) {
		int ok = 0;
		double worst_hit = 0, worst_p99 = 0;
		printf("%-13.13s", pol[p]);
		for (size_t c = 0; c < N_CELLS; c++) {
			double dh = (many[c][p][F_HIT] / one[c][p][F_HIT] - 1) * 100;
			double dp = (many[c][p][F_P99] / one[c][p][F_P99] - 1) * 100;
			if (!isfinite(dh))
				dh = 0;
			printf(" %+6.1f/%+6.1f", dh, dp);
			ok += dh >= -5 && dp <= 5;
			worst_hit = fmin(worst_hit, dh);
			worst_p99 = fmax(worst_p99, dp);
		}
		printf("  %2d of %zu (worst: hit %+.1f%%, p99 %+.1f%%)\n", ok, N_CELLS, worst_hit, worst_p99);
	}
}

int lab_arena(const struct lab_ctx *x, const char *dir, long threads, const char *policies, const char *seeds,
	      int quiet, const struct lab_point *opt)
{
	const char *pol[64];
	char pbuf[2048];
	size_t np = 0;
	if (policies) { /* a list, else every registered policy */
		snprintf(pbuf, sizeof pbuf, "%s", policies);
		char *save = NULL;
		for (char *t = strtok_r(pbuf, ", \t", &save); t && np < 64; t = strtok_r(NULL, ", \t", &save))
			pol[np++] = t;
	} else {
		for (size_t i = 0; policy_at(i) && np < 64; i++)
			pol[np++] = policy_at(i)->name;
	}
	long sd[16];
	size_t ns = 0;
	char sbuf[256];
	snprintf(sbuf, sizeof sbuf, "%s", seeds);
	char *save = NULL;
	for (char *t = strtok_r(sbuf, ", \t", &save); t && ns < 16; t = strtok_r(NULL, ", \t", &save))
		sd[ns++] = atol(t);
	/* one workload per (cell, seed): built before the runs, shared read-only */
	struct lab_workload *ws = plb_calloc(N_CELLS * ns, sizeof *ws);
	int nr = opt->routers > 1 ? 2 : 1; /* one router, and N */
	struct lab_job *jobs = plb_calloc(N_CELLS * ns * np * (size_t)nr, sizeof *jobs);
	size_t n = 0;
	int rc = 0;
	for (size_t c = 0; c < N_CELLS && !rc; c++)
		for (size_t s = 0; s < ns && !rc; s++) {
			const struct cell *k = &cells[c];
			struct lab_workload *w = &ws[c * ns + s];
			if (lab_workload_build(w, x, k->dataset, k->max_conv, k->num, sd[s])) {
				rc = 1;
				break;
			}
			for (size_t pr = 0; pr < np * (size_t)nr; pr++) {
				size_t p = pr / (size_t)nr;
				int faithful = !strcmp(k->variant, "faithful");
				jobs[n].x = x;
				jobs[n].w = w;
				jobs[n].p = (struct lab_point){
					.variant = k->variant,
					.policy = pol[p],
					.workload = k->workload,
					.profile = "l4-llama3.1-8b",
					.dataset = k->dataset,
					.warm_mode = k->warm,
					.replicas = k->replicas,
					.conc = k->conc,
					.rate = k->rate,
					.max_conv = k->max_conv,
					.seed = sd[s],
					.num = k->num,
					.floor_ms = faithful ? 0 : 7.7,
					.lag_ms = faithful ? 0 : 65,
					.output_cap = k->cap,
					.fleet = k->fleet,
					.churn = k->churn,
					.signals_ms = 200,
					.orca = opt->orca,
					.routers = pr % (size_t)nr ? opt->routers : 1,
					.router_assign = opt->router_assign,
				};
				n++;
			}
		}
	if (!rc) {
		fprintf(stderr, "prefixlb lab: arena: %zu policies x %zu workloads x %zu seeds%s = %zu runs\n", np, N_CELLS, ns,
			nr > 1 ? " x (1 and N routers)" : "", n);
		lab_run_all(jobs, n, 0, threads, 1);
		(void)quiet;
		static double med[N_CELLS][64][N_FIG], med_n[N_CELLS][64][N_FIG];
		double v[16];
		int ours = -1;
		for (size_t p = 0; p < np; p++)
			if (!strcmp(pol[p], "lowest-ttft"))
				ours = (int)p;
		for (size_t c = 0; c < N_CELLS; c++)
			for (size_t p = 0; p < np; p++)
				for (int f = 0; f < N_FIG; f++) {
					size_t k = 0;
					for (size_t s = 0; s < ns; s++) {
						const struct lab_job *j = &jobs[((c * ns + s) * np + p) * (size_t)nr];
						if (!j->rc)
							v[k++] = figure(&j->r, f);
					}
					med[c][p][f] = median(v, k);
					k = 0;
					for (size_t s = 0; s < ns && nr > 1; s++) {
						const struct lab_job *j = &jobs[((c * ns + s) * np + p) * (size_t)nr + 1];
						if (!j->rc)
							v[k++] = figure(&j->r, f);
					}
					med_n[c][p][f] = nr > 1 ? median(v, k) : NAN;
				}
		print_tables(med, pol, np, ours);
		print_targets(med, pol, np, ours);
		if (nr > 1) {
			printf("\nwith %d routers (%s assignment, in-band load %s):", opt->routers,
			       opt->router_assign ? "round-robin" : "random", opt->orca ? "on" : "off");
			print_tables(med_n, pol, np, ours);
			print_routers(med, med_n, pol, np, opt->routers);
		}
		struct lab_result *res = plb_calloc(n + 1, sizeof *res);
		size_t nr = 0;
		for (size_t i = 0; i < n; i++)
			if (!jobs[i].rc)
				res[nr++] = jobs[i].r;
		lab_write_json(dir, res, nr, "arena", 0);
		free(res);
		plot(dir, med, pol, np);
		for (size_t i = 0; i < n; i++)
			if (jobs[i].rc)
				rc = 1;
	}
	for (size_t i = 0; i < N_CELLS * ns; i++)
		lab_workload_free(&ws[i]);
	free(ws);
	free(jobs);
	return rc;
}
