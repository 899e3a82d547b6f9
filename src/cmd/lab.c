/* lab.c: `prefixlb lab`, the seed's experiment rerun in virtual time.
 *
 * The built-in `seed` scenario: 8 replicas of the calibrated L4 profile, the
 * seed preset data set, fork mode (8000 prompts from the first 800 pairs,
 * seed 12345), concurrency/rate 800/800, 1600/200, 3200/200, 8000/800, and
 * the three strategies of the seed's table (its "round robin" is a Kubernetes
 * Service, i.e. an independent random pick). Variants: as-published (the
 * seed's Python client: a dispatch floor of 7.7 ms and a 65 ms lag from a
 * request's clock start to its first byte on the wire) and faithful (neither).
 * In virtual time the seed scenario's runs start on the fleet the seed's run
 * order left (--warm-up alternate): each prefix-hash run after a least-load
 * run of the same requests, each other run after a prefix-hash run. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/policy.h"
#include "../core/sim.h"
#include "../core/stats.h"
#include "../core/tokenizer.h"
#include "../core/workload.h"
#include "cmd.h"
#include "opts.h"

/* REFERENCE.md section 1: conc, rate, strategy, duration, total tok/s, TTFT mean/median/p99,
 * TPOT median, ITL median. */
struct seed_row {
	int conc, rate;
	const char *policy;
	double dur, tps, ttft_mean, ttft_med, ttft_p99, tpot_med, itl_med;
};

static const struct seed_row seed_table[] = {
	{800, 800, "random", 159.98, 45409.81, 1319.77, 601.29, 7438.41, 184.76, 94.60},
	{800, 800, "least-load", 158.39, 45866.16, 817.18, 494.28, 5551.81, 183.18, 124.55},
	{800, 800, "prefix-hash", 104.67, 69407.79, 280.20, 239.80, 1260.53, 91.13, 77.35},
	{1600, 200, "random", 157.07, 46250.51, 10365.29, 10068.73, 22283.86, 207.58, 90.35},
	{1600, 200, "least-load", 153.02, 47476.29, 10579.01, 11501.96, 15514.10, 202.98, 92.65},
	{1600, 200, "prefix-hash", 110.00, 66043.15, 196.13, 184.29, 492.33, 81.50, 70.36},
	{3200, 200, "random", 156.36, 46460.74, 27183.41, 31260.66, 51797.57, 205.61, 88.07},
	{3200, 200, "least-load", 152.43, 47658.74, 24147.86, 25580.61, 46021.48, 201.97, 93.29},
	{3200, 200, "prefix-hash", 111.37, 65233.60, 213.92, 188.53, 838.35, 82.17, 70.32},
	{8000, 800, "random", 156.20, 46510.40, 48587.55, 48682.53, 101940.11, 206.65, 87.08},
	{8000, 800, "least-load", 152.59, 47609.83, 39163.80, 40140.70, 78489.26, 205.62, 90.36},
	{8000, 800, "prefix-hash", 107.89, 67333.71, 237.06, 219.27, 619.65, 81.76, 71.31},
};

struct run_out {
	const char *variant, *policy;
	int conc, rate;
	int replicas;
	long max_conv, seed;
	double floor_ms, lag_ms;
	const char *warm;      /* the policy that warmed the fleet, or "none" */
	const char *warm_mode; /* the --warm-up item: none, same, alternate, a policy */
	const char *profile, *dataset;
	long num;
	double scale; /* live: the time scale */
	const char *workload; /* fork (the seed's) or sessions */
	double think_s;
	struct bench_metrics m;
	struct sim_result r;
	double cpu_s;
};

static const char usage[] =
	"usage: prefixlb lab --virtual|--live [--scenario seed|per-replica|conversations|FILE] [--out DIR]\n"
	"                    [--variant as-published|faithful|both] [--concurrency C[@RATE],...] [--policies a,b]\n"
	"                    [--replicas N,...] [--profile NAME,...] [--dataset PRESET|FILE,...] [--quiet] ...\n"
	"  Reruns the seed's experiment in virtual time (a discrete-event simulation of the same engine\n"
	"  model, routing policies and metrics) or live (engine, router and bench processes over loopback),\n"
	"  prints a result block per run and a table next to the seed's published numbers. Options whose\n"
	"  help says list take a comma list: the lab runs their cross product.\n";

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct seed_row *seed_of(int conc, int rate, const char *policy)
{
	for (size_t i = 0; i < sizeof seed_table / sizeof *seed_table; i++)
		if (seed_table[i].conc == conc && seed_table[i].rate == rate && !strcmp(seed_table[i].policy, policy))
			return &seed_table[i];
	return NULL;
}

/* The seed's published row for a run of the seed's setup (8 replicas of the
 * L4 profile, 8,000 prompts of its data set shape from 800 pairs), or NULL. */
static const struct seed_row *seed_row(const struct run_out *o)
{
	if (o->replicas != 8 || o->max_conv != 800 || o->num != 8000 || strcmp(o->profile, "l4-llama3.1-8b") ||
	    strcmp(o->dataset, "seed") || strcmp(o->workload, "fork"))
		return NULL;
	return seed_of(o->conc, o->rate, o->policy);
}

/* Same point of the sweep but for policy and variant. */
static int same_point(const struct run_out *a, const struct run_out *b)
{
	return a->conc == b->conc && a->rate == b->rate && a->replicas == b->replicas && a->max_conv == b->max_conv &&
	       a->seed == b->seed && a->num == b->num && !strcmp(a->profile, b->profile) &&
	       !strcmp(a->dataset, b->dataset) && a->lag_ms == b->lag_ms && a->scale == b->scale &&
	       !strcmp(a->warm_mode, b->warm_mode) && !strcmp(a->workload, b->workload);
}

/* Axes swept with more than one value that the label must show. */
enum { LABEL_WARM = 1, LABEL_LAG = 2, LABEL_SCALE = 4 };
static unsigned label_extra;

/* "r8 mc800 s12345", then what differs from the seed's setup and the swept
 * warm-up, lag and time scale. */
static void run_label(const struct run_out *o, char *out, size_t cap)
{
	int k = snprintf(out, cap, "r%d mc%ld s%ld", o->replicas, o->max_conv, o->seed);
	if ((label_extra & LABEL_WARM) && k > 0 && (size_t)k < cap)
		k += snprintf(out + k, cap - (size_t)k, " warm:%s", o->warm_mode);
	if ((label_extra & LABEL_LAG) && k > 0 && (size_t)k < cap)
		k += snprintf(out + k, cap - (size_t)k, " lag%g", o->lag_ms);
	if ((label_extra & LABEL_SCALE) && k > 0 && (size_t)k < cap)
		k += snprintf(out + k, cap - (size_t)k, " x%g", o->scale);
	if (strcmp(o->profile, "l4-llama3.1-8b") && k > 0 && (size_t)k < cap)
		k += snprintf(out + k, cap - (size_t)k, " %s", o->profile);
	if (strcmp(o->dataset, "seed") && k > 0 && (size_t)k < cap) {
		const char *base = strrchr(o->dataset, '/');
		k += snprintf(out + k, cap - (size_t)k, " %s", base ? base + 1 : o->dataset);
	}
	if (o->num != 8000 && k > 0 && (size_t)k < cap)
		k += snprintf(out + k, cap - (size_t)k, " n%ld", o->num);
	if (strcmp(o->workload, "fork") && k > 0 && (size_t)k < cap)
		snprintf(out + k, cap - (size_t)k, " %s", o->workload);
}

static void print_table(const char *variant, const struct run_out *runs, size_t n, const char *how, int seedlike)
{
	printf("\n%s (%s%s)\n", variant, how, seedlike ? "; seed's published numbers in brackets, then ours/theirs" : "");
	int lw = 16; /* the run column fits the longest label */
	for (size_t i = 0; i < n; i++) {
		char l[160];
		run_label(&runs[i], l, sizeof l);
		if (!strcmp(runs[i].variant, variant) && (int)strlen(l) > lw)
			lw = (int)strlen(l);
	}
	printf("%-11s %-12s %-*s %8s %17s %28s %15s %15s %7s\n", "conc(rate)", "policy", lw, "run",
	       "dur s", "total tok/s", "TTFT mean / med / p99 ms", "TPOT med ms", "ITL med ms", "hit");
	for (size_t i = 0; i < n; i++) {
		const struct run_out *o = &runs[i];
		if (strcmp(o->variant, variant))
			continue;
		const struct bench_metrics *m = &o->m;
		char cr[24];
		snprintf(cr, sizeof cr, "%d(%d)", o->conc, o->rate);
		char rms[160];
		run_label(o, rms, sizeof rms);
		printf("%-11s %-12s %-*s %8.2f %17.0f %10.0f / %6.0f / %7.0f %15.2f %15.2f %7.3f\n", cr, o->policy, lw, rms,
		       m->duration,
		       m->total_token_throughput, m->m[M_TTFT].mean, m->m[M_TTFT].median, m->m[M_TTFT].pct[0],
		       m->m[M_TPOT].median, m->m[M_ITL].median,
		       o->r.prompt_tokens ? (double)o->r.prefix_hits / (double)o->r.prompt_tokens : 0);
		const struct seed_row *s = seed_row(o);
		if (s && seedlike)
			printf("%-11s %-12s %-*s %8.2f %17.0f %10.0f / %6.0f / %7.0f %15.2f %15.2f\n"
			       "%-11s %-12s %-*s %8.2f %17.2f %10.2f / %6.2f / %7.2f %15.2f %15.2f\n",
			       "", "  [seed]", lw, "", s->dur, s->tps, s->ttft_mean, s->ttft_med, s->ttft_p99, s->tpot_med, s->itl_med,
			       "", "  ratio", lw, "", m->duration / s->dur, m->total_token_throughput / s->tps,
			       m->m[M_TTFT].mean / s->ttft_mean, m->m[M_TTFT].median / s->ttft_med,
			       m->m[M_TTFT].pct[0] / s->ttft_p99, m->m[M_TPOT].median / s->tpot_med,
			       m->m[M_ITL].median / s->itl_med);
	}
	/* headline ratios: least-load TTFT / prefix-hash TTFT, prefix-hash tok/s / least-load tok/s */
	printf("headline%s: TTFT without/with, throughput with/without\n", seedlike ? " (ours vs seed)" : "");
	for (size_t i = 0; i < n; i++) {
		const struct run_out *a = &runs[i];
		if (strcmp(a->variant, variant) || strcmp(a->policy, "least-load"))
			continue;
		for (size_t k = 0; k < n; k++) {
			const struct run_out *b = &runs[k];
			if (strcmp(b->variant, variant) || strcmp(b->policy, "prefix-hash") || !same_point(a, b))
				continue;
			const struct seed_row *sa = seed_row(a), *sb = seed_row(b);
			if (seedlike && sa && sb)
				printf("  conc %-5d TTFT x%-8.1f (seed x%.1f)   throughput x%.2f (seed x%.2f)\n", a->conc,
				       a->m.m[M_TTFT].mean / b->m.m[M_TTFT].mean, sa->ttft_mean / sb->ttft_mean,
				       b->m.total_token_throughput / a->m.total_token_throughput, sb->tps / sa->tps);
			else
			{
				char lab[160];
				run_label(a, lab, sizeof lab);
				printf("  conc %-5d %s: TTFT x%.1f   throughput x%.2f\n", a->conc, lab,
				       a->m.m[M_TTFT].mean / b->m.m[M_TTFT].mean,
				       b->m.total_token_throughput / a->m.total_token_throughput);
			}
		}
	}
}

static void write_json(const char *dir, const struct run_out *runs, size_t n, const char *scenario, const char *mode)
{
	char path[1024];
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/results%s.json", dir, strcmp(mode, "live") ? "" : "-live");
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "prefixlb lab: %s: cannot write\n", path);
		return;
	}
	fprintf(f, "{\"scenario\": \"");
	for (const char *c = scenario; *c; c++)
		fputc(*c == '"' || *c == '\\' ? '_' : *c, f);
	fprintf(f, "\", \"mode\": \"%s\", \"runs\": [", mode);
	for (size_t i = 0; i < n; i++) {
		const struct bench_metrics *m = &runs[i].m;
		fprintf(f,
			"%s\n{\"variant\": \"%s\", \"policy\": \"%s\", \"replicas\": %d, \"max_concurrency\": %d, "
			"\"request_rate\": %d, \"seed\": %llu, \"max_conversations\": %ld, \"completed\": %ld, \"duration\": %.6f, "
			"\"total_input_tokens\": %ld, \"total_output_tokens\": %ld, \"request_throughput\": %.6f, "
			"\"output_throughput\": %.6f, \"total_token_throughput\": %.6f, \"mean_ttft_ms\": %.6f, "
			"\"median_ttft_ms\": %.6f, \"p99_ttft_ms\": %.6f, \"mean_tpot_ms\": %.6f, \"median_tpot_ms\": %.6f, "
			"\"p99_tpot_ms\": %.6f, \"mean_itl_ms\": %.6f, \"median_itl_ms\": %.6f, \"p99_itl_ms\": %.6f, "
			"\"cache_hit_rate\": %.6f, \"preemptions\": %llu, \"load_spread\": %.4f, \"cpu_seconds\": %.3f, "
			"\"dispatch_floor_ms\": %g, \"client_lag_ms\": %g, \"warm_up\": \"%s\", \"profile\": \"%s\", "
			"\"num_prompts\": %ld, \"workload\": \"%s\", \"think_time_s\": %g, \"dataset\": ",
			i ? "," : "", runs[i].variant, runs[i].policy, runs[i].replicas, runs[i].conc, runs[i].rate,
			(unsigned long long)runs[i].seed, runs[i].max_conv, m->completed, m->duration, m->total_input, m->total_output,
			m->request_throughput, m->output_throughput, m->total_token_throughput, m->m[M_TTFT].mean,
			m->m[M_TTFT].median, m->m[M_TTFT].pct[0], m->m[M_TPOT].mean, m->m[M_TPOT].median, m->m[M_TPOT].pct[0],
			m->m[M_ITL].mean, m->m[M_ITL].median, m->m[M_ITL].pct[0],
			runs[i].r.prompt_tokens ? (double)runs[i].r.prefix_hits / (double)runs[i].r.prompt_tokens : 0,
			(unsigned long long)runs[i].r.preemptions, runs[i].r.load_spread, runs[i].cpu_s, runs[i].floor_ms,
			runs[i].lag_ms, runs[i].warm, runs[i].profile, runs[i].num, runs[i].workload, runs[i].think_s);
		json_t *ds = json_string(runs[i].dataset);
		char *dss = ds ? json_dumps(ds, JSON_ENCODE_ANY) : NULL;
		fputs(dss ? dss : "null", f);
		free(dss);
		json_decref(ds);
		const struct seed_row *sr = seed_row(&runs[i]);
		if (sr)
			fprintf(f,
				",\n \"seed_published\": {\"duration\": %.2f, \"total_token_throughput\": %.2f, "
				"\"mean_ttft_ms\": %.2f, \"median_ttft_ms\": %.2f, \"p99_ttft_ms\": %.2f, \"median_tpot_ms\": %.2f, "
				"\"median_itl_ms\": %.2f}",
				sr->dur, sr->tps, sr->ttft_mean, sr->ttft_med, sr->ttft_p99, sr->tpot_med, sr->itl_med);
		fprintf(f, "}");
	}
	fprintf(f, "\n]}\n");
	fclose(f);
	printf("\nwrote %s\n", path);
}

/* ---- live mode: real processes on loopback --------------------------------- */

static char self_exe[4096];

/* Runs self_exe with args; stderr appends to log, stdout goes to out (or nowhere). */
static pid_t spawn(const char *const *args, const char *log, const char *out)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log) {
			FILE *f = freopen(log, "a", stderr);
			(void)f;
		}
		FILE *o = freopen(out ? out : "/dev/null", "w", stdout);
		(void)o;
		execv(self_exe, (char *const *)args);
		_exit(127);
	}
	return pid;
}

static int wait_ports(const char *file, int *ports, int max, double timeout)
{
	for (int i = 0; i < (int)(timeout * 20); i++) {
		FILE *f = fopen(file, "r");
		int n = 0;
		if (f) {
			while (n < max && fscanf(f, "%d", &ports[n]) == 1)
				n++;
			fclose(f);
			if (n)
				return n;
		}
		usleep(50000);
	}
	return 0;
}

static int stop_pid(pid_t pid)
{
	int st = 0;
	kill(pid, SIGTERM);
	for (int i = 0; i < 400; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(25000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return st;
}

/* A router with the policy in front of the fleet; its port in *rport. */
static pid_t start_router(const char *rf, const char *log, const char *policy, const int *ports, int np, int *rport)
{
	const char *rargs[600];
	static char urls[256][48];
	int k = 0;
	unlink(rf);
	rargs[k++] = self_exe;
	rargs[k++] = "route";
	rargs[k++] = "--listen";
	rargs[k++] = "127.0.0.1:0";
	rargs[k++] = "--ports-file";
	rargs[k++] = rf;
	rargs[k++] = "--policy";
	rargs[k++] = policy;
	rargs[k++] = "--access-log";
	rargs[k++] = "off";
	for (int i = 0; i < np; i++) {
		snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d", ports[i]);
		rargs[k++] = "--backend";
		rargs[k++] = urls[i];
	}
	rargs[k] = NULL;
	pid_t rt = spawn(rargs, log, NULL);
	if (wait_ports(rf, rport, 1, 30) != 1) {
		stop_pid(rt);
		fprintf(stderr, "prefixlb lab: the router did not start (see %s)\n", log);
		return -1;
	}
	usleep(300000); /* first health checks learn the models */
	return rt;
}

/* One live run: a fresh engine fleet, warmed (when warm_policy is set) by one
 * pass of the first max_conv requests through a router with that policy, then
 * a router with the run's policy and the measured bench; times are scaled back
 * to simulated time. */
static int live_run(const char *dir, const char *dataset, int replicas, const char *profile,
		    const struct opt_list *params, double scale, const char *policy, const char *warm_policy, int conc,
		    int rate, double floor_ms, double lag_ms, long num, long max_conv, long seed, const char *workload,
		    double think_s, struct run_out *o)
{
	char pf[2100], rf[2100], json[2200], log[2100], sbuf[32], rbuf[32], nbuf[32], mbuf[32], cbuf[32], fbuf[32],
		lbuf[32], seedbuf[32], url[64], ratebuf[32];
	snprintf(pf, sizeof pf, "%s/engine.ports", dir);
	snprintf(rf, sizeof rf, "%s/route.port", dir);
	snprintf(log, sizeof log, "%s/processes.log", dir);
	unlink(pf);
	snprintf(sbuf, sizeof sbuf, "%g", scale);
	snprintf(rbuf, sizeof rbuf, "%d", replicas);
	const char *eargs[80] = {self_exe, "engine", "--port", "0", "--ports-file", pf, "--replicas", rbuf, "--time-scale",
				 sbuf, "--profile", profile};
	size_t ne = 12;
	for (size_t i = 0; i < params->n && ne + 3 < sizeof eargs / sizeof *eargs; i++) {
		eargs[ne++] = "--param";
		eargs[ne++] = params->v[i];
	}
	eargs[ne] = NULL;
	pid_t eng = spawn(eargs, log, NULL);
	int ports[256];
	int np = wait_ports(pf, ports, 256, 30);
	if (np != replicas) {
		stop_pid(eng);
		fprintf(stderr, "prefixlb lab: the engine fleet did not start (see %s)\n", log);
		return -1;
	}
	snprintf(mbuf, sizeof mbuf, "%ld", max_conv);
	snprintf(cbuf, sizeof cbuf, "%d", conc);
	snprintf(fbuf, sizeof fbuf, "%g", floor_ms / scale);
	snprintf(lbuf, sizeof lbuf, "%g", lag_ms / scale);
	snprintf(seedbuf, sizeof seedbuf, "%ld", seed);
	snprintf(ratebuf, sizeof ratebuf, "%g", rate * scale);
	char thbuf[32];
	snprintf(thbuf, sizeof thbuf, "%g", think_s / scale);
	for (int pass = warm_policy ? 0 : 1; pass < 2; pass++) {
		int rport;
		pid_t rt = start_router(rf, log, pass ? policy : warm_policy, ports, np, &rport);
		if (rt < 0) {
			stop_pid(eng);
			return -1;
		}
		snprintf(url, sizeof url, "http://127.0.0.1:%d", rport);
		snprintf(nbuf, sizeof nbuf, "%ld", pass ? num : max_conv < num ? max_conv : num);
		snprintf(json, sizeof json, "%s/%s-%d%s.json", dir, policy, conc, pass ? "" : "-warm-up");
		const char *bargs[] = {self_exe, "bench", "--disable-tqdm", "--base-url", url, "--dataset-path", dataset,
				       "--num-prompts", nbuf, "--max-conversations", mbuf, "--seed", seedbuf,
				       "--request-rate", ratebuf, "--max-concurrency", cbuf, "--dispatch-floor-ms", fbuf,
				       "--connect-lag-ms", lbuf, "--multi-turn-mode", workload, "--think-time-s", thbuf,
				       "--save-result", "--result-filename", json, NULL};
		char txt[2200];
		snprintf(txt, sizeof txt, "%s/%s-%d%s.txt", dir, policy, conc, pass ? "" : "-warm-up");
		pid_t bp = spawn(bargs, log, txt);
		int st;
		waitpid(bp, &st, 0);
		stop_pid(rt);
	}
	stop_pid(eng);
	json_error_t e;
	json_t *j = json_load_file(json, 0, &e);
	if (!j) {
		fprintf(stderr, "prefixlb lab: %s: no result (%s)\n", json, e.text);
		return -1;
	}
#define JN(k) json_number_value(json_object_get(j, k))
	memset(&o->m, 0, sizeof o->m);
	o->m.completed = (long)json_integer_value(json_object_get(j, "completed"));
	o->m.duration = JN("duration") * scale;
	o->m.total_input = (long)json_integer_value(json_object_get(j, "total_input_tokens"));
	o->m.total_output = (long)json_integer_value(json_object_get(j, "total_output_tokens"));
	o->m.request_throughput = JN("request_throughput") / scale;
	o->m.output_throughput = JN("output_throughput") / scale;
	o->m.total_token_throughput = JN("total_token_throughput") / scale;
	static const char *const names[M_COUNT] = {"ttft", "tpot", "itl", "e2el"};
	for (int m = 0; m < M_COUNT; m++) {
		char key[64];
		snprintf(key, sizeof key, "mean_%s_ms", names[m]);
		o->m.m[m].mean = JN(key) * scale;
		snprintf(key, sizeof key, "median_%s_ms", names[m]);
		o->m.m[m].median = JN(key) * scale;
		snprintf(key, sizeof key, "p99_%s_ms", names[m]);
		o->m.m[m].pct[0] = JN(key) * scale;
	}
	double hit = JN("cache_hit_rate");
	o->r.prompt_tokens = 1000000;
	o->r.prefix_hits = (uint64_t)(hit * 1000000);
	o->r.duration = o->m.duration;
	o->m.n_percentiles = 1;
	o->m.percentiles[0] = 99;
#undef JN
	json_decref(j);
	/* load spread from the bench's "Requests on BACKEND:" lines (x-prefixlb-backend) */
	char txt[2200], line[512];
	snprintf(txt, sizeof txt, "%s/%s-%d.txt", dir, policy, conc);
	FILE *f = fopen(txt, "r");
	long tot = 0, mx = 0;
	while (f && fgets(line, sizeof line, f)) {
		const char *c = strncmp(line, "Requests on ", 12) ? NULL : strrchr(line, ':');
		if (c) {
			long v = atol(c + 1);
			tot += v;
			mx = v > mx ? v : mx;
		}
	}
	if (f)
		fclose(f);
	o->r.load_spread = tot ? (double)mx / ((double)tot / replicas) : 0;
	return 0;
}

/* The run's vLLM-style result block, then what the lab adds. */
static void print_run_block(const struct run_out *o, const char *label, int live)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	stats_format(&o->m, (1u << M_TTFT) | (1u << M_TPOT) | (1u << M_ITL), &b);
	printf("\n%s %s %s %d(%d), %s (times in simulated seconds)\n%.*s", o->variant, o->policy, label, o->conc,
	       o->rate, live ? "live" : "virtual", (int)b.len, b.data ? b.data : "");
	printf("%-40s %-10.4f\n", "Prefix cache hit rate:",
	       o->r.prompt_tokens ? (double)o->r.prefix_hits / (double)o->r.prompt_tokens : 0);
	printf("%-40s %-10.3f\n", "Load spread (max/mean per replica):", o->r.load_spread);
	if (!live)
		printf("%-40s %-10llu\n", "Preemptions:", (unsigned long long)o->r.preemptions);
	buf_free(&b);
}

/* Every item a number in [lo, hi]; else says which and returns 0. */
static int num_list_ok(const char *opt, char *const *v, size_t n, double lo, double hi)
{
	for (size_t i = 0; i < n; i++) {
		char *end;
		double x = strtod(v[i], &end);
		if (*end || !(x >= lo && x <= hi)) {
			fprintf(stderr, "prefixlb lab: --%s: '%s' is not a number in %g..%g\n", opt, v[i], lo, hi);
			return 0;
		}
	}
	return 1;
}

/* Splits a comma list into out[] (in place in buf). */
static size_t split_list(char *buf, char **out, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ", \t", &save); t && n < max; t = strtok_r(NULL, ", \t", &save))
		out[n++] = t;
	return n;
}

/* The sweep's axes, for plots: which vary among a set of runs. */
enum axis {
	AX_CONC, AX_MCONV, AX_REPLICAS, AX_NUM, AX_RATE, AX_SEED, AX_LAG, AX_SCALE,
	AX_PROFILE, AX_DATASET, AX_WARM, AX_WORKLOAD, AX_N
};

static double axis_num(const struct run_out *o, int ax)
{
	switch (ax) {
	case AX_CONC: return o->conc;
	case AX_MCONV: return (double)o->max_conv;
	case AX_REPLICAS: return o->replicas;
	case AX_NUM: return (double)o->num;
	case AX_RATE: return o->rate;
	case AX_SEED: return (double)o->seed;
	case AX_LAG: return o->lag_ms;
	case AX_SCALE: return o->scale;
	default: return 0;
	}
}

static int axis_same(const struct run_out *a, const struct run_out *b, int ax)
{
	if (ax == AX_PROFILE)
		return !strcmp(a->profile, b->profile);
	if (ax == AX_DATASET)
		return !strcmp(a->dataset, b->dataset);
	if (ax == AX_WARM)
		return !strcmp(a->warm_mode, b->warm_mode);
	if (ax == AX_WORKLOAD)
		return !strcmp(a->workload, b->workload);
	return axis_num(a, ax) == axis_num(b, ax);
}

struct point {
	double x, ttft, tps, hit;
};

static int cmp_point(const void *a, const void *b)
{
	double x = ((const struct point *)a)->x, y = ((const struct point *)b)->x;
	return x < y ? -1 : x > y;
}

/* gnuplot: mean TTFT (log), total throughput and hit rate against the first
 * numeric axis that varies (concurrency, max-conversations, replicas,
 * num-prompts; else concurrency), one line per policy and per value of the
 * other axes that vary. One set of PNGs per variant. Skipped without gnuplot. */
static void plot(const char *dir, const struct run_out *runs, size_t n)
{
	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		printf("(gnuplot not found: no plots)\n");
		return;
	}
	static const char *const axname[] = {"concurrency", "max conversations", "replicas", "num prompts"};
	const char *variants[] = {"as-published", "faithful"};
	struct point *pts = calloc(n + 1, sizeof *pts);
	size_t *series = calloc(n + 1, sizeof *series); /* run -> its series' first run */
	for (int v = 0; v < 2 && pts && series; v++) {
		int varies[AX_N] = {0}, any = 0;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(runs[i].variant, variants[v]))
				continue;
			for (size_t k = 0; k < i; k++)
				if (!strcmp(runs[k].variant, variants[v]))
					for (int ax = 0; ax < AX_N; ax++)
						varies[ax] |= !axis_same(&runs[i], &runs[k], ax);
			any = 1;
		}
		if (!any)
			continue;
		int xa = AX_CONC;
		for (int ax = AX_CONC; ax <= AX_NUM; ax++)
			if (varies[ax]) {
				xa = ax;
				break;
			}
		varies[xa] = 0;
		if (xa == AX_CONC)
			varies[AX_RATE] = 0; /* rate goes with its concurrency item */
		char gp[1024];
		snprintf(gp, sizeof gp, "%s/plot-%s.gp", dir, variants[v]);
		FILE *f = fopen(gp, "w");
		if (!f)
			break;
		/* series: runs of this variant with the same policy and values of the varying non-x axes */
		size_t n_series = 0, firsts[32];
		for (size_t i = 0; i < n; i++) {
			if (strcmp(runs[i].variant, variants[v]))
				continue;
			size_t s = SIZE_MAX;
			for (size_t k = 0; k < n_series && s == SIZE_MAX; k++) {
				const struct run_out *r = &runs[firsts[k]];
				int same = !strcmp(r->policy, runs[i].policy);
				for (int ax = 0; ax < AX_N && same; ax++)
					same = !varies[ax] || axis_same(r, &runs[i], ax);
				if (same)
					s = k;
			}
			if (s == SIZE_MAX && n_series < 32)
				firsts[s = n_series++] = i;
			series[i] = s;
		}
		fprintf(f, "set terminal png size 900,560\nset grid\nset key top left\nset xlabel '%s'\nset logscale x\n",
			axname[xa]);
		for (size_t k = 0; k < n_series; k++) {
			size_t np = 0;
			for (size_t i = 0; i < n; i++)
				if (!strcmp(runs[i].variant, variants[v]) && series[i] == k)
					pts[np++] = (struct point){axis_num(&runs[i], xa), runs[i].m.m[M_TTFT].mean,
								   runs[i].m.total_token_throughput,
								   runs[i].r.prompt_tokens ? (double)runs[i].r.prefix_hits /
												     (double)runs[i].r.prompt_tokens
											   : 0};
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
		for (size_t k = n_series; k < 32; k++) { /* an earlier sweep's extra series */
			char dat[1100];
			snprintf(dat, sizeof dat, "%s/%s-%zu.dat", dir, variants[v], k);
			unlink(dat);
		}
		const char *what[] = {"ttft", "throughput", "hit-rate"};
		const char *ylab[] = {"mean TTFT (ms, log)", "total token throughput (tok/s)", "prefix-cache hit rate"};
		for (int k = 0; k < 3; k++) {
			fprintf(f, "set output '%s/%s-%s.png'\nset ylabel '%s'\n%s\nset title '%s'\nplot ", dir, what[k],
				variants[v], ylab[k], k == 0 ? "set logscale y" : "unset logscale y", variants[v]);
			for (size_t j = 0; j < n_series; j++) {
				const struct run_out *r = &runs[firsts[j]];
				char title[256];
				int len = snprintf(title, sizeof title, "%s", r->policy);
				for (int ax = 0; ax < AX_N && len > 0 && (size_t)len < sizeof title; ax++) {
					if (!varies[ax])
						continue;
					if (ax >= AX_PROFILE) {
						const char *sv = ax == AX_PROFILE   ? r->profile
								 : ax == AX_DATASET ? r->dataset
								 : ax == AX_WARM    ? r->warm_mode
										    : r->workload,
							   *b = strrchr(sv, '/');
						len += snprintf(title + len, sizeof title - (size_t)len, " %s%s",
								ax == AX_WARM ? "warm:" : "", b ? b + 1 : sv);
					} else {
						static const char *const pre[] = {"c", "mc", "r", "n", "@", "s", "lag", "x"};
						len += snprintf(title + len, sizeof title - (size_t)len, " %s%g", pre[ax],
								axis_num(r, ax));
					}
				}
				for (char *c = title; *c; c++)
					if (*c == '\'' || *c == '\\')
						*c = '_';
				fprintf(f, "%s'%s/%s-%zu.dat' using 1:%d with linespoints lw 2 title '%s'", j ? ", " : "", dir,
					variants[v], j, k + 2, title);
			}
			fprintf(f, "\n");
		}
		fclose(f);
		char cmd[1200];
		snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", gp);
		if (system(cmd) == 0)
			printf("plots: %s/{ttft,throughput,hit-rate}-%s.png (x: %s)\n", dir, variants[v], axname[xa]);
	}
	free(pts);
	free(series);
}

/* Sessions for the simulator (sim_cfg.next_turn), rendered as `prefixlb bench
 * --multi-turn-mode sessions` renders them for /v1/completions: "User: ...\n"
 * and "Assistant: <the model's own answer>\n" lines, tokenized with BOS;
 * max_tokens = the reference answer's tokens. One per conversation, the first
 * max_conv conversations with at least one (user, answer) pair. */
struct sessions {
	const struct tok *t;
	const struct wl_dataset *ds;
	size_t n, *conv, *next_msg;
	struct buf *hist;
	struct tok_ids *ids; /* every prompt handed out, alive until the run ends */
	size_t n_ids, cap_ids;
	struct buf ans;
};

static void sessions_free(struct sessions *S)
{
	for (size_t i = 0; i < S->n; i++)
		buf_free(&S->hist[i]);
	for (size_t i = 0; i < S->n_ids; i++)
		tok_ids_free(&S->ids[i]);
	free(S->hist);
	free(S->ids);
	free(S->conv);
	free(S->next_msg);
	buf_free(&S->ans);
	memset(S, 0, sizeof *S);
}

/* Appends "User: m\n" for the session's next user message; fills out. */
static int sessions_turn(struct sessions *S, size_t si, struct sim_req *out)
{
	const struct wl_conv *c = &S->ds->convs[S->conv[si]];
	size_t m = S->next_msg[si];
	if (m + 1 >= c->n)
		return 1;
	struct buf *h = &S->hist[si];
	buf_puts(h, "User: ");
	buf_append(h, c->msgs[m].text, c->msgs[m].len);
	buf_putc(h, '\n');
	if (S->n_ids == S->cap_ids) {
		S->cap_ids = S->cap_ids ? S->cap_ids * 2 : 1024;
		S->ids = realloc(S->ids, S->cap_ids * sizeof *S->ids);
	}
	struct tok_ids *ids = &S->ids[S->n_ids++];
	memset(ids, 0, sizeof *ids);
	tok_encode(S->t, h->data, h->len, TOK_BOS, ids);
	long mt = tok_count(S->t, c->msgs[m + 1].text, c->msgs[m + 1].len, TOK_BOS);
	*out = (struct sim_req){ids->v, ids->n, (uint32_t)(mt < 1 ? 1 : mt), h->data, h->len};
	S->next_msg[si] = m + 2;
	return 0;
}

static int sessions_next(void *ctx, size_t si, const uint32_t *answer, size_t n_answer, struct sim_req *out)
{
	struct sessions *S = ctx;
	buf_reset(&S->ans);
	tok_decode(S->t, answer, n_answer, &S->ans);
	struct buf *h = &S->hist[si];
	buf_puts(h, "Assistant: ");
	buf_append(h, S->ans.data ? S->ans.data : "", S->ans.len);
	buf_putc(h, '\n');
	return sessions_turn(S, si, out);
}

/* The sessions' first turns in first[] (room for max_conv); returns their number. */
static size_t sessions_init(struct sessions *S, const struct tok *t, const struct wl_dataset *ds, size_t max_conv,
			    struct sim_req *first)
{
	memset(S, 0, sizeof *S);
	S->t = t;
	S->ds = ds;
	size_t cap = max_conv < ds->n ? max_conv : ds->n;
	S->conv = calloc(cap + 1, sizeof *S->conv);
	S->next_msg = calloc(cap + 1, sizeof *S->next_msg);
	S->hist = calloc(cap + 1, sizeof *S->hist);
	buf_init(&S->ans, (size_t)1 << 26);
	for (size_t i = 0; i < cap; i++) {
		size_t si = S->n;
		S->conv[si] = i;
		buf_init(&S->hist[si], (size_t)1 << 30);
		S->n++;
		if (sessions_turn(S, si, &first[si])) { /* no (user, answer) pair */
			buf_free(&S->hist[si]);
			S->n--;
		}
	}
	return S->n;
}

/* The workload of one (max_conversations, seed, num_prompts). */
struct workload {
	struct wl_dataset ds;
	struct wl_request *wr;
	size_t nr;
	struct tok_ids *ids;
	struct sim_req *sr;
	char dsfile[1100];
};

static void workload_free(struct workload *w)
{
	for (size_t i = 0; i < w->nr; i++)
		tok_ids_free(&w->ids[i]);
	free(w->ids);
	free(w->sr);
	wl_requests_free(w->wr, w->nr);
	wl_free(&w->ds);
	memset(w, 0, sizeof *w);
}

/* A data set item is a generator preset or a ShareGPT file. */
static int is_preset(const char *d)
{
	struct wl_gen g;
	return wl_preset(d, &g) == 0;
}

static int workload_build(struct workload *w, const struct tok *t, const char *dataset, long max_conv, long num,
			  long seed, const char *livedir)
{
	struct wl_gen g;
	if (!is_preset(dataset)) {
		struct buf file;
		char err[256] = "";
		buf_init(&file, (size_t)1 << 34);
		int bad = cmd_read_file(dataset, file.max, &file) ||
			  wl_parse_sharegpt(file.data ? file.data : "", file.len, &w->ds, err, sizeof err);
		if (bad && *err)
			fprintf(stderr, "prefixlb lab: %s:%s\n", dataset, err);
		buf_free(&file);
		if (bad)
			return -1;
		snprintf(w->dsfile, sizeof w->dsfile, "%s", dataset);
		livedir = NULL; /* the bench reads the file itself */
	} else {
		wl_preset(dataset, &g);
		g.seed = (uint64_t)seed;
		if ((size_t)max_conv * 2 > g.conversations * 8) /* enough pairs for the sweep */
			g.conversations = (size_t)max_conv / 4 + 100;
		wl_generate(&g, &w->ds);
	}
	wl_fork_requests(&w->ds, t, (size_t)max_conv, (size_t)num, (uint64_t)seed, &w->wr, &w->nr);
	w->ids = calloc(w->nr + 1, sizeof *w->ids);
	w->sr = calloc(w->nr + 1, sizeof *w->sr);
	for (size_t i = 0; i < w->nr; i++) {
		size_t same = i;
		for (size_t k = 0; k < i && k < (size_t)max_conv * 2; k++)
			if (w->wr[k].conv == w->wr[i].conv && w->wr[k].turn == w->wr[i].turn) {
				same = k;
				break;
			}
		if (same == i)
			tok_encode(t, w->wr[i].prompt, w->wr[i].prompt_len, TOK_BOS, &w->ids[i]);
		w->sr[i].ids = w->ids[same].v;
		w->sr[i].n_ids = w->ids[same].n;
		w->sr[i].max_tokens = (uint32_t)w->wr[i].max_tokens;
		w->sr[i].key = w->wr[i].prompt;
		w->sr[i].key_len = w->wr[i].prompt_len;
	}
	if (livedir && *livedir) {
		snprintf(w->dsfile, sizeof w->dsfile, "%s/dataset.json", livedir);
		struct buf jb;
		buf_init(&jb, (size_t)1 << 34);
		FILE *df = fopen(w->dsfile, "w");
		int bad = wl_write_sharegpt(&w->ds, &jb) || !df || fwrite(jb.data, 1, jb.len, df) != jb.len;
		if (df && fclose(df))
			bad = 1;
		buf_free(&jb);
		if (bad) {
			fprintf(stderr, "prefixlb lab: %s: cannot write\n", w->dsfile);
			return -1;
		}
	}
	return 0;
}

int cmd_lab(int argc, char **argv)
{
	const char *scenario = "seed", *variant = NULL, *outdir = NULL, *concs = NULL, *per_replica = NULL,
		   *policies = NULL, *profiles_s = "l4-llama3.1-8b", *tokenizer = NULL, *replicas_s = "8",
		   *mconv_s = "800", *seeds_s = "12345", *datasets_s = "seed", *nums_s = "8000";
	int virt = 0, live = 0, quiet = 0;
	const char *warm_up = NULL, *scales_s = "2.5", *rates_s = "200", *lags_s = "65", *modes_s = "fork";
	double net_ms = 0.1, think_s = 0;
	struct opt_list params = {0};
	char **cfg = NULL;
	struct tok *t = NULL;
	struct tok_ids filler = {0};
	struct run_out *runs = NULL;
	int rc = 0;
	struct opt tab[] = {
		{"virtual", OPT_BOOL, &virt, "run in virtual time (discrete-event simulation)", 0, 0},
		{"live", OPT_BOOL, &live, "run real processes over loopback HTTP (engine, router, bench)", 0, 0},
		{"time-scale", OPT_STR, &scales_s, "live: list of simulated seconds per real second", 0, 0},
		{"scenario", OPT_STR, &scenario, "seed | per-replica | conversations | FILE of these options", 0, 0},
		{"variant", OPT_STR, &variant,
		 "list of as-published (7.7 ms dispatch floor, client lag) / faithful / a floor in ms, or both", 0, 0},
		{"client-lag-ms", OPT_STR, &lags_s,
		 "list: as-published: a request's clock start -> its first byte sent (the seed client's lag)", 0, 0},
		{"concurrency", OPT_STR, &concs, "list of total concurrency, each C or C@RATE", 0, 0},
		{"per-replica", OPT_STR, &per_replica, "list of concurrency per replica (x replicas)", 0, 0},
		{"request-rate", OPT_STR, &rates_s, "list of rates for concurrency items without @RATE", 0, 0},
		{"policies", OPT_STR, &policies, "list of policies", 0, 0},
		{"replicas", OPT_STR, &replicas_s, "list of replica counts", 0, 0},
		{"profile", OPT_STR, &profiles_s, "list of engine profiles", 0, 0},
		{"param", OPT_LIST, &params, "KEY=VALUE: set one engine profile field (repeatable; prefixlb engine --help)", 0, 0},
		{"dataset", OPT_STR, &datasets_s, "list of data sets: generator presets (prefixlb dataset) or ShareGPT files",
		 0, 0},
		{"dataset-preset", OPT_STR, &datasets_s, "same as --dataset", 0, 0},
		{"num-prompts", OPT_STR, &nums_s, "list of requests per run", 0, 0},
		{"multi-turn-mode", OPT_STR, &modes_s,
		 "list: fork (the seed's: prompts from the first max-conversations pairs) or sessions (a chat session per "
		 "conversation, the model's own answers fed back; starts cold)",
		 0, 0},
		{"think-time-s", OPT_DBL, &think_s, "sessions: pause before each next turn", 0, 1e6},
		{"max-conversations", OPT_STR, &mconv_s, "list: fork mode's pair limit", 0, 0},
		{"seed", OPT_STR, &seeds_s, "list of seeds (repetitions): data set, shuffle, arrivals", 0, 0},
		{"net-delay-ms", OPT_DBL, &net_ms, "virtual: one-way network delay", 0, 1000},
		{"warm-up", OPT_STR, &warm_up,
		 "list of none | same | alternate | POLICY: each run starts on a fleet that has served one pass of its "
		 "prompts (unmeasured) routed by its own policy, by the seed's run order (prefix-hash after least-load, "
		 "the rest after prefix-hash) or by POLICY (seed scenario: alternate; else none)",
		 0, 0},
		{"tokenizer", OPT_STR, &tokenizer, "tokenizer.json", 0, 0},
		{"out", OPT_STR, &outdir, "write DIR/results.json and plots", 0, 0},
		{"quiet", OPT_BOOL, &quiet, "no result block per run, only the tables", 0, 0},
		{0},
	};
	int pr = opts_parse("lab", usage, tab, argc, argv, NULL, NULL);
	if (pr) {
		rc = pr == 1 ? 0 : 2;
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0); /* tables and progress lines interleave in order */
	if (virt == live) {
		fprintf(stderr, "prefixlb lab: give --virtual or --live\n");
		rc = 2;
		goto out;
	}

	ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (sl <= 0) {
		rc = 1;
		goto out;
	}
	self_exe[sl] = 0;
	/* built-in scenarios fill what the command line left unset */
	if (!strcmp(scenario, "seed")) {
		if (!concs && !per_replica)
			concs = "800@800,1600@200,3200@200,8000@800";
		if (!policies)
			policies = "random,least-load,prefix-hash";
		if (!variant)
			variant = "both";
	} else if (!strcmp(scenario, "per-replica")) {
		if (!concs && !per_replica)
			per_replica = "50,100,200";
		if (!policies)
			policies = "least-load,prefix-hash";
	} else if (!strcmp(scenario, "conversations")) {
		if (!concs && !per_replica)
			concs = "1600@200";
		if (!policies)
			policies = "least-load,prefix-hash";
		if (!strcmp(mconv_s, "800"))
			mconv_s = "100,200,400,800,1600,3200";
	} else {
		/* a scenario file: the same options, one per line */
		int cargc;
		cfg = cmd_config_argv(scenario, "lab", &cargc);
		if (!cfg) {
			rc = 2;
			goto out;
		}
		if (opts_parse("lab", usage, tab, cargc, cfg, NULL, NULL)) {
			fprintf(stderr, "prefixlb lab: in %s\n", scenario);
			rc = 2;
			goto out;
		}
		opts_parse("lab", usage, tab, argc, argv, NULL, NULL); /* the command line wins */
		if (!concs && !per_replica)
			concs = "1600@200";
		if (!policies)
			policies = "least-load,prefix-hash";
	}
	if (!variant)
		variant = "as-published";
	if (!warm_up)
		warm_up = !strcmp(scenario, "seed") ? "alternate" : "none";
	/* the scalar axes that are lists too: warm-up, client lag, request rate, time scale */
	char wbuf[256], lbuf[256], qbuf[256], tbuf[256], obuf[64];
	char *wv[8], *lv[16], *qv[16], *tv[16], *ov[2];
	snprintf(wbuf, sizeof wbuf, "%s", warm_up);
	snprintf(lbuf, sizeof lbuf, "%s", lags_s);
	snprintf(qbuf, sizeof qbuf, "%s", rates_s);
	snprintf(tbuf, sizeof tbuf, "%s", scales_s);
	snprintf(obuf, sizeof obuf, "%s", modes_s);
	size_t nwv = split_list(wbuf, wv, 8), nlv = split_list(lbuf, lv, 16), nqv = split_list(qbuf, qv, 16),
	       ntv = split_list(tbuf, tv, 16), nov = split_list(obuf, ov, 2);
	int warm_modes[8];
	const struct lb_policy *warm_policies[8];
	const char *axis_bad = !nwv || !nlv || !nqv || !ntv || !nov ? "an empty list" : NULL;
	for (size_t k = 0; k < nov && !axis_bad; k++)
		if (strcmp(ov[k], "fork") && strcmp(ov[k], "sessions")) {
			fprintf(stderr, "prefixlb lab: --multi-turn-mode: fork or sessions, not '%s'\n", ov[k]);
			axis_bad = ov[k];
		}
	for (size_t k = 0; k < nwv && !axis_bad; k++) {
		warm_modes[k] = !strcmp(wv[k], "none") ? 0 : !strcmp(wv[k], "same") ? 1 : !strcmp(wv[k], "alternate") ? 2
			      : !(warm_policies[k] = policy_find(wv[k])) ? -1 : 3;
		if (warm_modes[k] < 0) {
			fprintf(stderr, "prefixlb lab: --warm-up: none, same, alternate or a policy, not '%s'\n", wv[k]);
			axis_bad = wv[k];
		}
	}
	if (!axis_bad && (!num_list_ok("client-lag-ms", lv, nlv, 0, 1e4) || !num_list_ok("request-rate", qv, nqv, 1e-3, 1e6) ||
			  !num_list_ok("time-scale", tv, ntv, 0.1, 100)))
		axis_bad = "a number";
	if (axis_bad) {
		if (!strcmp(axis_bad, "an empty list"))
			fprintf(stderr, "prefixlb lab: an empty list\n");
		rc = 2;
		goto out;
	}
	if (!live)
		ntv = 1; /* virtual time has no time scale */
	label_extra = (nwv > 1 ? LABEL_WARM : 0) | (nlv > 1 ? LABEL_LAG : 0) | (ntv > 1 ? LABEL_SCALE : 0);
	char fbuf[512], dbuf[4096], nbuf[256];
	char *fv[8], *dv[16], *nv[16];
	snprintf(fbuf, sizeof fbuf, "%s", profiles_s);
	snprintf(dbuf, sizeof dbuf, "%s", datasets_s);
	snprintf(nbuf, sizeof nbuf, "%s", nums_s);
	size_t nfv = split_list(fbuf, fv, 8), ndv = split_list(dbuf, dv, 16), nnv = split_list(nbuf, nv, 16);
	struct engine_profile profs[8];
	const char *bad = NULL;
	for (size_t k = 0; k < nfv && !bad; k++) {
		const struct engine_profile *p0 = engine_profile_find(fv[k]);
		if (!p0) {
			fprintf(stderr, "prefixlb lab: unknown profile '%s'\n", fv[k]);
			bad = fv[k];
			break;
		}
		profs[k] = *p0;
		for (size_t i = 0; i < params.n; i++) {
			char kv[256];
			snprintf(kv, sizeof kv, "%s", params.v[i]);
			char *eq = strchr(kv, '=');
			int r = eq ? (*eq = '\0', engine_profile_set(&profs[k], kv, eq + 1)) : -3;
			if (r) {
				fprintf(stderr, "prefixlb lab: --param %s: %s\n", params.v[i],
					r == -3 ? "expected KEY=VALUE" : r == -1 ? "unknown profile field" : "bad value");
				bad = params.v[i];
				break;
			}
		}
	}
	for (size_t k = 0; k < ndv && !bad; k++)
		if (!is_preset(dv[k]) && access(dv[k], R_OK)) {
			fprintf(stderr, "prefixlb lab: --dataset %s: neither a preset (prefixlb dataset --help) nor a readable "
					"file\n",
				dv[k]);
			bad = dv[k];
		}
	for (size_t k = 0; k < nnv && !bad; k++) {
		char *end;
		long v = strtol(nv[k], &end, 10);
		if (*end || v < 1 || v > 10000000) {
			fprintf(stderr, "prefixlb lab: --num-prompts: '%s' is not a count in 1..10000000\n", nv[k]);
			bad = nv[k];
		}
	}
	if (bad || !nfv || !ndv || !nnv) {
		if (!bad)
			fprintf(stderr, "prefixlb lab: empty --profile, --dataset or --num-prompts\n");
		rc = 2;
		goto out;
	}
	char vbuf[256], rbuf[256], mbuf[512], sbuf[512], cbuf[1024], pbuf[512];
	char *vv[8], *rv[32], *mv[32], *sv[32], *cv[64], *pv[8];
	snprintf(vbuf, sizeof vbuf, "%s", strcmp(variant, "both") ? variant : "as-published,faithful");
	snprintf(rbuf, sizeof rbuf, "%s", replicas_s);
	snprintf(mbuf, sizeof mbuf, "%s", mconv_s);
	snprintf(sbuf, sizeof sbuf, "%s", seeds_s);
	snprintf(cbuf, sizeof cbuf, "%s", concs ? concs : per_replica);
	snprintf(pbuf, sizeof pbuf, "%s", policies);
	size_t nvv = split_list(vbuf, vv, 8), nrv = split_list(rbuf, rv, 32), nmv = split_list(mbuf, mv, 32),
	       nsv = split_list(sbuf, sv, 32), ncv = split_list(cbuf, cv, 64), npv = split_list(pbuf, pv, 8);
	for (size_t i = 0; i < npv; i++) {
		struct lb_opts lp;
		char perr[600];
		lb_opts_default(&lp);
		if (lb_opts_policy(&lp, pv[i], perr, sizeof perr)) {
			fprintf(stderr, "prefixlb lab: %s\n", perr);
			rc = 2;
			goto out;
		}
	}
	t = cmd_load_tokenizer(tokenizer);
	if (!t) {
		rc = 1;
		goto out;
	}
	const char *dir = outdir ? outdir : "build/lab";
	char livedir[1024] = "";
	if (live) {
		snprintf(livedir, sizeof livedir, "%s/live", dir);
		mkdir(dir, 0755);
		mkdir(livedir, 0755);
		fprintf(stderr, "prefixlb lab: live runs at time scale %s; processes log to %s/processes.log\n", scales_s,
			livedir);
	}
	tok_encode(t, engine_filler_text, strlen(engine_filler_text), 0, &filler);
	size_t n_inner = nvv * nov * nrv * ncv * npv * nfv * nqv * nwv * nlv * ntv;
	size_t cap_runs = n_inner * nmv * nsv * ndv * nnv + 1, n_runs = 0;
	runs = calloc(cap_runs, sizeof *runs);
	int seedlike = !strcmp(scenario, "seed");
	int load_failed = 0;
	for (size_t wi = 0; wi < ndv * nnv * nmv * nsv && !load_failed; wi++) {
		const char *dataset = dv[wi / (nnv * nmv * nsv)];
		long num = atol(nv[wi / (nmv * nsv) % nnv]), mc = atol(mv[wi / nsv % nmv]), sd = atol(sv[wi % nsv]);
		struct workload w = {0};
		double c0 = cpu_now();
		if (workload_build(&w, t, dataset, mc, num, sd, livedir)) {
			workload_free(&w);
			load_failed = 1;
			break;
		}
		fprintf(stderr,
			"prefixlb lab: %zu requests (data set %s, max-conversations %ld, seed %ld) prepared in %.2f s CPU\n",
			w.nr, dataset, mc, sd, cpu_now() - c0);
		/* a warm-up (sim_cfg.warm) is one pass over the distinct prompts: sr = [warm-up][measured] */
		size_t nwarm_max = (size_t)mc < w.nr ? (size_t)mc : w.nr;
		struct sim_req *sr = calloc(nwarm_max + w.nr + 1, sizeof *sr);
		memcpy(sr, w.sr, nwarm_max * sizeof *sr);
		memcpy(sr + nwarm_max, w.sr, w.nr * sizeof *sr);
		struct req_result *res = calloc(nwarm_max + w.nr + 1, sizeof *res);
		for (size_t ii = 0; ii < n_inner; ii++) {
			/* mixed radix: variant, workload, replicas, concurrency, policy, profile, rate, warm-up, lag, scale */
			size_t x = ii;
			size_t ti = x % ntv, li = (x /= ntv) % nlv, ki = (x /= nlv) % nwv, qi = (x /= nwv) % nqv,
			       fi = (x /= nqv) % nfv, pi = (x /= nfv) % npv, ci = (x /= npv) % ncv, ri = (x /= ncv) % nrv,
			       oi = (x /= nrv) % nov, vi = (x /= nov) % nvv;
			char *at = strchr(cv[ci], '@');
			int faithful = !strcmp(vv[vi], "faithful"), sessions = !strcmp(ov[oi], "sessions");
			if ((at && qi) || (faithful && li) || (sessions && ki))
				continue; /* the item has its rate / the faithful client no lag / sessions no warm-up */
			int reps = atoi(rv[ri]), wm = sessions ? 0 : warm_modes[ki];
			int conc = concs ? atoi(cv[ci]) : atoi(cv[ci]) * reps;
			double rate = at ? atof(at + 1) : atof(qv[qi]), scale = atof(tv[ti]);
			size_t nwarm = wm ? nwarm_max : 0;
			struct sim_cfg c = {0};
			c.profile = profs[fi];
			c.replicas = reps;
			char perr[600];
			lb_opts_default(&c.lb);
			lb_opts_policy(&c.lb, pv[pi], perr, sizeof perr);
			c.lb.seed = (uint64_t)sd;
			c.request_rate = rate;
			c.burstiness = 1;
			c.max_concurrency = conc;
			c.dispatch_floor_ms = faithful ? 0 : !strcmp(vv[vi], "as-published") ? 7.7 : atof(vv[vi]);
			c.client_lag_ms = faithful ? 0 : atof(lv[li]);
			c.net_delay_ms = net_ms;
			c.seed = (uint64_t)sd;
			/* the warm-up's policy: same, the seed's run order, or given */
			c.warm = nwarm;
			c.warm_lb = c.lb;
			c.warm_lb_set = wm >= 2;
			if (wm == 2)
				c.warm_lb.policy = policy_find(c.lb.policy == policy_find("prefix-hash") ? "least-load" : "prefix-hash");
			else if (wm == 3)
				c.warm_lb.policy = warm_policies[ki];
			struct run_out *o = &runs[n_runs];
			*o = (struct run_out){.variant = faithful ? "faithful" : "as-published",
					      .policy = pv[pi],
					      .conc = conc,
					      .rate = (int)rate,
					      .replicas = reps,
					      .max_conv = mc,
					      .seed = sd,
					      .floor_ms = c.dispatch_floor_ms,
					      .lag_ms = c.client_lag_ms,
					      .warm = wm ? c.warm_lb.policy->name : "none",
					      .warm_mode = sessions ? "none" : wv[ki],
					      .workload = ov[oi],
					      .think_s = sessions ? think_s : 0,
					      .profile = fv[fi],
					      .dataset = dataset,
					      .num = num,
					      .scale = live ? scale : 0};
			double t0 = cpu_now(), w0 = wall_now();
			if (live) {
				if (live_run(livedir, w.dsfile, reps, o->profile, &params, scale, o->policy, wm ? o->warm : NULL,
					     conc, (int)rate, c.dispatch_floor_ms, c.client_lag_ms, sessions ? num : (long)w.nr,
					     mc, sd, ov[oi], o->think_s, o))
					continue;
				o->cpu_s = wall_now() - w0;
			} else if (sessions) {
				struct sessions S;
				struct sim_req *first = calloc((size_t)mc + 1, sizeof *first);
				struct req_result *sres = calloc((size_t)num + 1, sizeof *sres);
				size_t ns = first && sres ? sessions_init(&S, t, &w.ds, (size_t)mc, first) : 0;
				c.next_turn = sessions_next;
				c.turn_ctx = &S;
				c.think_s = think_s;
				c.max_requests = (size_t)num;
				if (ns)
					sim_run(&c, first, ns, filler.v, filler.n, sres, &o->r);
				o->cpu_s = cpu_now() - t0;
				double pct[] = {99};
				stats_compute(sres, o->r.n_requests, o->r.duration, pct, 1, NULL, &o->m);
				sim_results_free(sres, o->r.n_requests);
				if (ns)
					sessions_free(&S);
				free(sres);
				free(first);
			} else {
				sim_run(&c, sr + (nwarm_max - nwarm), nwarm + w.nr, filler.v, filler.n,
					res + (nwarm_max - nwarm), &o->r);
				o->cpu_s = cpu_now() - t0;
				double pct[] = {99};
				stats_compute(res + nwarm_max, w.nr, o->r.duration, pct, 1, NULL, &o->m);
				sim_results_free(res + (nwarm_max - nwarm), nwarm + w.nr);
			}
			char lab[160];
			run_label(o, lab, sizeof lab);
			if (!quiet)
				print_run_block(o, lab, live);
			fprintf(stderr, "prefixlb lab: %s %s %s %s %d(%g): %.2f s simulated in %.2f s %s\n",
				live ? "live" : "virtual", o->variant, o->policy, lab, conc, rate, o->m.duration, o->cpu_s,
				live ? "wall" : "CPU");
			n_runs++;
		}
		free(res);
		free(sr);
		workload_free(&w);
	}
	if (load_failed) {
		rc = 1;
		goto out;
	}
	char how[160];
	int wm0 = warm_modes[0];
	snprintf(how, sizeof how, "%s; %s", live ? "live over HTTP, times scaled back" : "virtual time",
		 nwv > 1     ? "fleet state per run: warm:MODE"
		 : wm0 == 0 ? "cold fleet"
		 : wm0 == 1 ? "fleet warmed by one pass of the same policy"
		 : wm0 == 2 ? "fleet as the seed's run order left it: prefix-hash after least-load, the rest after prefix-hash"
			    : "fleet warmed by one pass of --warm-up's policy");
	for (size_t vi = 0; vi < nvv; vi++)
		print_table(strcmp(vv[vi], "faithful") ? "as-published" : "faithful", runs, n_runs, how, seedlike);
	write_json(dir, runs, n_runs, scenario, live ? "live" : "virtual");
	if (!live)
		plot(dir, runs, n_runs);
out:
	free(runs);
	tok_ids_free(&filler);
	tok_free(t);
	cmd_free_argv(cfg);
	opt_list_free(&params);
	return rc;
}
