/* lab.c: `prefixlb lab`, the seed's experiment rerun in virtual time.
 *
 * The built-in `seed` scenario: 8 replicas of the calibrated L4 profile, the
 * seed preset data set, fork mode (8000 prompts from the first 800 pairs,
 * seed 12345), concurrency/rate 800/800, 1600/200, 3200/200, 8000/800, and
 * the three strategies of the seed's table (its "round robin" is a Kubernetes
 * Service, i.e. an independent random pick). Variants: as-published (the
 * seed's Python client: a dispatch floor of 7.7 ms) and faithful (none). */
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

static const char filler_text[] =
	" The quick brown fox jumps over the lazy dog while the old man watches from a small house near the river"
	" and the children play in the green field under a bright summer sky";

struct run_out {
	const char *variant, *policy;
	int conc, rate;
	struct bench_metrics m;
	struct sim_result r;
	double cpu_s;
};

static const char usage[] =
	"usage: prefixlb lab --virtual [--scenario seed] [--variant as-published|faithful|both] [--out DIR]\n"
	"                    [--concurrency N,...] [--policies a,b] [--replicas 8] [--profile NAME]\n"
	"  Reruns the seed's experiment in virtual time (the same engine model, routing policies and\n"
	"  metrics as the live processes) and prints its table next to the seed's published numbers.\n";

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

static void print_table(const char *variant, const struct run_out *runs, size_t n, const char *how)
{
	printf("\nseed scenario, %s (%s; seed's published numbers in brackets, then ours/theirs)\n", variant, how);
	printf("%-11s %-12s %8s %17s %28s %15s %15s %7s\n", "conc(rate)", "policy", "dur s", "total tok/s",
	       "TTFT mean / med / p99 ms", "TPOT med ms", "ITL med ms", "hit");
	for (size_t i = 0; i < n; i++) {
		const struct run_out *o = &runs[i];
		if (strcmp(o->variant, variant))
			continue;
		const struct bench_metrics *m = &o->m;
		char cr[24];
		snprintf(cr, sizeof cr, "%d(%d)", o->conc, o->rate);
		printf("%-11s %-12s %8.2f %17.0f %10.0f / %6.0f / %7.0f %15.2f %15.2f %7.3f\n", cr, o->policy, m->duration,
		       m->total_token_throughput, m->m[M_TTFT].mean, m->m[M_TTFT].median, m->m[M_TTFT].pct[0],
		       m->m[M_TPOT].median, m->m[M_ITL].median,
		       o->r.prompt_tokens ? (double)o->r.prefix_hits / (double)o->r.prompt_tokens : 0);
		const struct seed_row *s = seed_of(o->conc, o->rate, o->policy);
		if (s)
			printf("%-11s %-12s %8.2f %17.0f %10.0f / %6.0f / %7.0f %15.2f %15.2f\n"
			       "%-11s %-12s %8.2f %17.2f %10.2f / %6.2f / %7.2f %15.2f %15.2f\n",
			       "", "  [seed]", s->dur, s->tps, s->ttft_mean, s->ttft_med, s->ttft_p99, s->tpot_med, s->itl_med,
			       "", "  ratio", m->duration / s->dur, m->total_token_throughput / s->tps,
			       m->m[M_TTFT].mean / s->ttft_mean, m->m[M_TTFT].median / s->ttft_med,
			       m->m[M_TTFT].pct[0] / s->ttft_p99, m->m[M_TPOT].median / s->tpot_med,
			       m->m[M_ITL].median / s->itl_med);
	}
	/* headline ratios: least-load TTFT / prefix-hash TTFT, prefix-hash tok/s / least-load tok/s */
	printf("headline (ours vs seed): TTFT without/with, throughput with/without\n");
	for (size_t i = 0; i < n; i++) {
		const struct run_out *a = &runs[i];
		if (strcmp(a->variant, variant) || strcmp(a->policy, "least-load"))
			continue;
		for (size_t k = 0; k < n; k++) {
			const struct run_out *b = &runs[k];
			if (strcmp(b->variant, variant) || strcmp(b->policy, "prefix-hash") || b->conc != a->conc)
				continue;
			const struct seed_row *sa = seed_of(a->conc, a->rate, "least-load"),
					      *sb = seed_of(b->conc, b->rate, "prefix-hash");
			printf("  conc %-5d TTFT x%-8.1f (seed x%.1f)   throughput x%.2f (seed x%.2f)\n", a->conc,
			       a->m.m[M_TTFT].mean / b->m.m[M_TTFT].mean, sa && sb ? sa->ttft_mean / sb->ttft_mean : 0,
			       b->m.total_token_throughput / a->m.total_token_throughput, sa && sb ? sb->tps / sa->tps : 0);
		}
	}
}

static void write_json(const char *dir, const struct run_out *runs, size_t n, int replicas, uint64_t seed,
		       const char *mode)
{
	char path[1024];
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/results%s.json", dir, strcmp(mode, "live") ? "" : "-live");
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "prefixlb lab: %s: cannot write\n", path);
		return;
	}
	fprintf(f, "{\"scenario\": \"seed\", \"mode\": \"%s\", \"runs\": [", mode);
	for (size_t i = 0; i < n; i++) {
		const struct bench_metrics *m = &runs[i].m;
		fprintf(f,
			"%s\n{\"variant\": \"%s\", \"policy\": \"%s\", \"replicas\": %d, \"max_concurrency\": %d, "
			"\"request_rate\": %d, \"seed\": %llu, \"completed\": %ld, \"duration\": %.6f, "
			"\"total_input_tokens\": %ld, \"total_output_tokens\": %ld, \"request_throughput\": %.6f, "
			"\"output_throughput\": %.6f, \"total_token_throughput\": %.6f, \"mean_ttft_ms\": %.6f, "
			"\"median_ttft_ms\": %.6f, \"p99_ttft_ms\": %.6f, \"mean_tpot_ms\": %.6f, \"median_tpot_ms\": %.6f, "
			"\"p99_tpot_ms\": %.6f, \"mean_itl_ms\": %.6f, \"median_itl_ms\": %.6f, \"p99_itl_ms\": %.6f, "
			"\"cache_hit_rate\": %.6f, \"preemptions\": %llu, \"load_spread\": %.4f, \"cpu_seconds\": %.3f}",
			i ? "," : "", runs[i].variant, runs[i].policy, replicas, runs[i].conc, runs[i].rate,
			(unsigned long long)seed, m->completed, m->duration, m->total_input, m->total_output,
			m->request_throughput, m->output_throughput, m->total_token_throughput, m->m[M_TTFT].mean,
			m->m[M_TTFT].median, m->m[M_TTFT].pct[0], m->m[M_TPOT].mean, m->m[M_TPOT].median, m->m[M_TPOT].pct[0],
			m->m[M_ITL].mean, m->m[M_ITL].median, m->m[M_ITL].pct[0],
			runs[i].r.prompt_tokens ? (double)runs[i].r.prefix_hits / (double)runs[i].r.prompt_tokens : 0,
			(unsigned long long)runs[i].r.preemptions, runs[i].r.load_spread, runs[i].cpu_s);
	}
	fprintf(f, "\n]}\n");
	fclose(f);
	printf("\nwrote %s\n", path);
}

/* ---- live mode: real processes on loopback --------------------------------- */

static char self_exe[4096];

static pid_t spawn(const char *const *args, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log) {
			FILE *f = freopen(log, "a", stderr);
			(void)f;
		}
		FILE *o = freopen("/dev/null", "w", stdout);
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

/* One live run: a fresh engine fleet (cold caches), a router with the policy,
 * the bench client; times are scaled back to simulated time. */
static int live_run(const char *dir, const char *dataset, int replicas, const char *profile, double scale,
		    const char *policy, int conc, int rate, double floor_ms, long num, long max_conv, long seed,
		    struct run_out *o)
{
	char pf[1024], rf[1024], json[1024], log[1024], sbuf[32], rbuf[32], nbuf[32], mbuf[32], cbuf[32], fbuf[32],
		seedbuf[32], url[64];
	snprintf(pf, sizeof pf, "%s/engine.ports", dir);
	snprintf(rf, sizeof rf, "%s/route.port", dir);
	snprintf(json, sizeof json, "%s/%s-%d.json", dir, policy, conc);
	snprintf(log, sizeof log, "%s/processes.log", dir);
	unlink(pf);
	unlink(rf);
	snprintf(sbuf, sizeof sbuf, "%g", scale);
	snprintf(rbuf, sizeof rbuf, "%d", replicas);
	const char *eargs[] = {self_exe, "engine", "--port", "0", "--ports-file", pf, "--replicas", rbuf, "--time-scale",
			       sbuf, "--profile", profile, NULL};
	pid_t eng = spawn(eargs, log);
	int ports[256];
	int np = wait_ports(pf, ports, 256, 30);
	if (np != replicas) {
		stop_pid(eng);
		fprintf(stderr, "prefixlb lab: the engine fleet did not start (see %s)\n", log);
		return -1;
	}
	const char *rargs[600];
	static char urls[256][48];
	int k = 0;
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
	pid_t rt = spawn(rargs, log);
	int rport;
	if (wait_ports(rf, &rport, 1, 30) != 1) {
		stop_pid(rt);
		stop_pid(eng);
		fprintf(stderr, "prefixlb lab: the router did not start (see %s)\n", log);
		return -1;
	}
	usleep(300000); /* first health checks learn the models */
	snprintf(url, sizeof url, "http://127.0.0.1:%d", rport);
	snprintf(nbuf, sizeof nbuf, "%ld", num);
	snprintf(mbuf, sizeof mbuf, "%ld", max_conv);
	snprintf(cbuf, sizeof cbuf, "%d", conc);
	snprintf(fbuf, sizeof fbuf, "%g", floor_ms / scale);
	snprintf(seedbuf, sizeof seedbuf, "%ld", seed);
	char ratebuf[32];
	snprintf(ratebuf, sizeof ratebuf, "%g", rate * scale);
	const char *bargs[] = {self_exe, "bench", "--disable-tqdm", "--base-url", url, "--dataset-path", dataset,
			       "--num-prompts", nbuf, "--max-conversations", mbuf, "--seed", seedbuf, "--request-rate",
			       ratebuf, "--max-concurrency", cbuf, "--dispatch-floor-ms", fbuf, "--save-result",
			       "--result-filename", json, NULL};
	pid_t bp = spawn(bargs, log);
	int st;
	waitpid(bp, &st, 0);
	stop_pid(rt);
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
#undef JN
	json_decref(j);
	return 0;
}

int cmd_lab(int argc, char **argv)
{
	const char *scenario = "seed", *variant = "both", *outdir = NULL, *concs = "800,1600,3200,8000",
		   *policies = "random,least-load,prefix-hash", *profile = "l4-llama3.1-8b", *tokenizer = NULL;
	int virt = 0, live = 0;
	double scale = 2.5;
	long replicas = 8, num_prompts = 8000, max_conv = 800, seed = 12345;
	const struct opt tab[] = {
		{"virtual", OPT_BOOL, &virt, "run in virtual time (discrete-event simulation)", 0, 0},
		{"live", OPT_BOOL, &live, "run real processes over loopback HTTP (engine, router, bench)", 0, 0},
		{"time-scale", OPT_DBL, &scale, "live: simulated seconds per real second", 0.1, 100},
		{"scenario", OPT_STR, &scenario, "seed (the only built-in scenario yet)", 0, 0},
		{"variant", OPT_STR, &variant, "as-published | faithful | both", 0, 0},
		{"concurrency", OPT_STR, &concs, "rows of the seed table to run", 0, 0},
		{"policies", OPT_STR, &policies, "policies to compare", 0, 0},
		{"replicas", OPT_INT, &replicas, "engine replicas", 1, 256},
		{"profile", OPT_STR, &profile, "engine profile", 0, 0},
		{"num-prompts", OPT_INT, &num_prompts, "requests per run", 1, 10000000},
		{"max-conversations", OPT_INT, &max_conv, "fork mode's pair limit", 1, 10000000},
		{"seed", OPT_INT, &seed, "seed of data set, shuffle and arrivals", 0, 0},
		{"tokenizer", OPT_STR, &tokenizer, "tokenizer.json", 0, 0},
		{"out", OPT_STR, &outdir, "write DIR/results.json", 0, 0},
		{0},
	};
	int pr = opts_parse("lab", usage, tab, argc, argv, NULL, NULL);
	if (pr)
		return pr == 1 ? 0 : 2;
	setvbuf(stdout, NULL, _IOLBF, 0); /* tables and progress lines interleave in order */
	if (virt == live) {
		fprintf(stderr, "prefixlb lab: give --virtual or --live\n");
		return 2;
	}
	ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (sl <= 0)
		return 1;
	self_exe[sl] = 0;
	if (strcmp(scenario, "seed")) {
		fprintf(stderr, "prefixlb lab: unknown scenario '%s' (seed)\n", scenario);
		return 2;
	}
	const struct engine_profile *prof = engine_profile_find(profile);
	if (!prof) {
		fprintf(stderr, "prefixlb lab: unknown profile '%s'\n", profile);
		return 2;
	}
	struct tok *t = cmd_load_tokenizer(tokenizer);
	if (!t)
		return 1;
	double c0 = cpu_now();
	/* the workload: seed preset data set, fork mode */
	struct wl_gen g;
	wl_preset("seed", &g);
	g.seed = (uint64_t)seed;
	struct wl_dataset ds;
	wl_generate(&g, &ds);
	struct wl_request *wr;
	size_t nr;
	wl_fork_requests(&ds, t, (size_t)max_conv, (size_t)num_prompts, (uint64_t)seed, &wr, &nr);
	/* tokenize each distinct prompt once */
	struct tok_ids *ids = calloc(nr, sizeof *ids);
	struct sim_req *sr = calloc(nr, sizeof *sr);
	for (size_t i = 0; i < nr; i++) {
		size_t same = i;
		for (size_t k = 0; k < i && k < (size_t)max_conv * 2; k++)
			if (wr[k].conv == wr[i].conv && wr[k].turn == wr[i].turn) {
				same = k;
				break;
			}
		if (same == i)
			tok_encode(t, wr[i].prompt, wr[i].prompt_len, TOK_BOS, &ids[i]);
		sr[i].ids = ids[same].v;
		sr[i].n_ids = ids[same].n;
		sr[i].max_tokens = (uint32_t)wr[i].max_tokens;
		sr[i].key = wr[i].prompt;
		sr[i].key_len = wr[i].prompt_len;
	}
	struct tok_ids filler = {0};
	tok_encode(t, filler_text, sizeof filler_text - 1, 0, &filler);
	fprintf(stderr, "prefixlb lab: %zu requests prepared in %.2f s CPU\n", nr, cpu_now() - c0);
	char livedir[1024] = "", dsfile[1100] = "";
	if (live) {
		snprintf(livedir, sizeof livedir, "%s/live", outdir ? outdir : "build/lab");
		mkdir(outdir ? outdir : "build/lab", 0755);
		mkdir(livedir, 0755);
		snprintf(dsfile, sizeof dsfile, "%s/dataset.json", livedir);
		struct buf jb;
		buf_init(&jb, (size_t)1 << 34);
		FILE *df = fopen(dsfile, "w");
		if (wl_write_sharegpt(&ds, &jb) || !df || fwrite(jb.data, 1, jb.len, df) != jb.len || fclose(df)) {
			fprintf(stderr, "prefixlb lab: %s: cannot write\n", dsfile);
			buf_free(&jb);
			return 1;
		}
		buf_free(&jb);
		fprintf(stderr, "prefixlb lab: live runs at time scale %g; processes log to %s/processes.log\n", scale,
			livedir);
	}
	const char *variants[2];
	size_t nv = 0;
	if (!strcmp(variant, "both") || !strcmp(variant, "as-published"))
		variants[nv++] = "as-published";
	if (!strcmp(variant, "both") || !strcmp(variant, "faithful"))
		variants[nv++] = "faithful";
	struct run_out *runs = calloc(64, sizeof *runs);
	size_t n_runs = 0;
	struct req_result *res = calloc(nr, sizeof *res);
	char cbuf[256], pbuf[256];
	for (size_t v = 0; v < nv; v++) {
		snprintf(cbuf, sizeof cbuf, "%s", concs);
		char *s1 = NULL;
		for (char *c = strtok_r(cbuf, ",", &s1); c; c = strtok_r(NULL, ",", &s1)) {
			int conc = atoi(c), rate = conc == 800 || conc == 8000 ? 800 : 200;
			snprintf(pbuf, sizeof pbuf, "%s", policies);
			char *s2 = NULL;
			for (char *p = strtok_r(pbuf, ",", &s2); p && n_runs < 64; p = strtok_r(NULL, ",", &s2)) {
				struct sim_cfg cfg = {0};
				cfg.profile = *prof;
				cfg.replicas = (int)replicas;
				lb_opts_default(&cfg.lb);
				if (lb_policy_parse(p, &cfg.lb.policy)) {
					fprintf(stderr, "prefixlb lab: unknown policy '%s'\n", p);
					continue;
				}
				cfg.lb.seed = (uint64_t)seed;
				cfg.request_rate = rate;
				cfg.burstiness = 1;
				cfg.max_concurrency = conc;
				cfg.dispatch_floor_ms = !strcmp(variants[v], "as-published") ? 7.7 : 0;
				cfg.net_delay_ms = 0.1;
				cfg.seed = (uint64_t)seed;
				double t0 = cpu_now();
				struct run_out *o = &runs[n_runs];
				if (live) {
					double w0 = wall_now();
					if (live_run(livedir, dsfile, (int)replicas, profile, scale, p, conc, rate,
						     cfg.dispatch_floor_ms, (long)nr, max_conv, seed, o))
						continue;
					o->cpu_s = wall_now() - w0;
				} else {
					sim_run(&cfg, sr, nr, filler.v, filler.n, res, &o->r);
					o->cpu_s = cpu_now() - t0;
					double pct[] = {99};
					stats_compute(res, nr, o->r.duration, pct, 1, NULL, &o->m);
					sim_results_free(res, nr);
				}
				o->variant = variants[v];
				o->policy = strcmp(p, "random") == 0 ? "random" : strcmp(p, "least-load") == 0 ? "least-load"
												 : "prefix-hash";
				o->conc = conc;
				o->rate = rate;
				fprintf(stderr, "prefixlb lab: %s %s %s %d(%d): %.2f s simulated in %.2f s %s\n",
					live ? "live" : "virtual", o->variant, o->policy, conc, rate, o->r.duration, o->cpu_s,
					live ? "wall" : "CPU");
				n_runs++;
			}
		}
		print_table(variants[v], runs, n_runs, live ? "live over HTTP, times scaled back" : "virtual time");
	}
	if (outdir)
		write_json(outdir, runs, n_runs, (int)replicas, (uint64_t)seed, live ? "live" : "virtual");
	free(res);
	free(runs);
	for (size_t i = 0; i < nr; i++)
		tok_ids_free(&ids[i]);
	free(ids);
	free(sr);
	tok_ids_free(&filler);
	wl_requests_free(wr, nr);
	wl_free(&ds);
	tok_free(t);
	return 0;
}
