/* lab.c: `prefixlb lab`, the seed's experiment (and sweeps around it) rerun
 * live over HTTP or in virtual time.
 *
 * Every option that takes a list sweeps: the runs are the cross product of
 * the lists (lab_sweep.c). A built-in scenario (lab_scenarios.c) fills what
 * the command line leaves unset; or --scenario names a file of lab options,
 * one per line. Virtual runs of a sweep go in parallel (--jobs); each is
 * deterministic per seed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/mem.h"
#include "cmd.h"
#include "lab.h"

static const char usage[] =
	"usage: prefixlb lab --virtual|--live [--scenario seed|per-replica|conversations|chat|FILE] [--out DIR]\n"
	"                    [--variant as-published|faithful|both] [--concurrency C[@RATE],...] [--policies a,b]\n"
	"                    [--replicas N,...] [--profile NAME,...] [--dataset PRESET|FILE,...] [--quiet] ...\n"
	"  Reruns the seed's experiment in virtual time (a discrete-event simulation of the same client,\n"
	"  routing policies and engine model) or live (engine, router and bench processes over loopback),\n"
	"  prints a result block per run and tables next to the seed's published numbers. Options whose\n"
	"  help says list take a comma list: the lab runs their cross product. Rates take inf (no pacing;\n"
	"  sessions: a closed loop of --concurrency client threads).\n";

/* ---- main ------------------------------------------------------------------------ */

static void oom(size_t n)
{
	fprintf(stderr, "prefixlb: out of memory (%zu bytes)\n", n);
}

int cmd_lab(int argc, char **argv)
{
	struct lab_opts o = {
		.scenario = "seed",
		.profiles = "l4-llama3.1-8b",
		.replicas = "8",
		.mconv = "800",
		.seeds = "12345",
		.datasets = "seed",
		.nums = "8000",
		.scales = "2.5",
		.rates = "200",
		.lags = "65",
		.modes = "fork",
		.timeouts = "0",
		.template = "llama-3.1",
		.net_ms = 0.1,
		.kv_ms = -1,
		.routers = 1,
		.assign = "random",
		.orca = "on",
		.jobs = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1,
	};
	struct lab_ctx x = {.params = &o.params, .progress_s = isatty(2) ? 1 : 10};
	struct opt tab[] = {
		{"virtual", OPT_BOOL, &o.virt, "run in virtual time (discrete-event simulation)", 0, 0},
		{"live", OPT_BOOL, &o.live, "run real processes over loopback HTTP (engine, router, bench)", 0, 0},
		{"time-scale", OPT_STR, &o.scales, "live: list of simulated seconds per real second", 0, 0},
		{"scenario", OPT_STR, &o.scenario, "seed | per-replica | conversations | chat | arena | FILE of these options", 0, 0},
		{"variant", OPT_STR, &o.variant,
		 "list of as-published (7.7 ms dispatch floor, client lag) / faithful / a floor in ms, or both", 0, 0},
		{"client-lag-ms", OPT_STR, &o.lags,
		 "list: as-published: a request's clock start -> its first byte sent (the seed client's lag)", 0, 0},
		{"concurrency", OPT_STR, &o.concs, "list of total concurrency, each C or C@RATE (RATE may be inf)", 0, 0},
		{"per-replica", OPT_STR, &o.per_replica, "list of concurrency per replica (x replicas)", 0, 0},
		{"request-rate", OPT_STR, &o.rates, "list of rates (or inf) for concurrency items without @RATE", 0, 0},
		{"policies", OPT_STR, &o.policies, "list of policies, NAME[:param=value...] (default least-load,prefix-hash)", 0, 0},
		{"replicas", OPT_STR, &o.replicas, "list of replica counts", 0, 0},
		{"profile", OPT_STR, &o.profiles, "list of engine profiles", 0, 0},
		{"param", OPT_LIST, &o.params, "KEY=VALUE: set one engine profile field (repeatable; prefixlb engine --help)", 0, 0},
		{"dataset", OPT_STR, &o.datasets, "list of data sets: generator presets (prefixlb dataset) or ShareGPT files",
		 0, 0},
		{"dataset-preset", OPT_STR, &o.datasets, "same as --dataset", 0, 0},
		{"num-prompts", OPT_STR, &o.nums, "list of requests per run (sessions: most turns)", 0, 0},
		{"multi-turn-mode", OPT_STR, &o.modes,
		 "list: fork (the seed's: prompts from the first max-conversations pairs) or sessions (chat sessions, the "
		 "model's own answers fed back; start cold)",
		 0, 0},
		{"think-time-s", OPT_DBL, &o.think_s, "sessions: pause before each next turn", 0, 1e6},
		{"max-output-tokens", OPT_STR, &o.caps, "list: cap every answer at N tokens (0: the reference length)", 0, 0},
		{"ignore-eos", OPT_BOOL, &o.ignore_eos, "send ignore_eos", 0, 0},
		{"request-timeout-s", OPT_STR, &o.timeouts, "list: the client abandons a request after this long (0: never)", 0, 0},
		{"max-conversations", OPT_STR, &o.mconv, "list: fork's pair limit; sessions: conversations", 0, 0},
		{"seed", OPT_STR, &o.seeds, "list of seeds (repetitions): data set, shuffle, arrivals", 0, 0},
		{"net-delay-ms", OPT_DBL, &o.net_ms, "virtual: one-way network delay", 0, 1000},
		{"kv-events-delay-ms", OPT_DBL, &o.kv_ms,
		 "virtual: the router hears the engines' KV events this long after their step (-1: no events)", -1, 60000},
		{"warm-up", OPT_STR, &o.warm_up,
		 "list of none | same | alternate | POLICY: each run starts on a fleet that has served one pass of its "
		 "prompts (unmeasured) routed by its own policy, by the seed's run order (prefix-hash after least-load, "
		 "the rest after prefix-hash) or by POLICY (seed scenario: alternate; else none)",
		 0, 0},
		{"chat-template", OPT_STR, &o.template, "llama-3.1 | llama-3: how the engines render chat", 0, 0},
		{"jobs", OPT_INT, &o.jobs, "virtual runs at once (default: the cores)", 1, 1024},
		{"routers", OPT_INT, &o.routers, "virtual: routers in front of the fleet, each with its own state (arena: "
		 "each cell with 1 and N)", 1, 64},
		{"router-assign", OPT_STR, &o.assign, "random (each request, as a Service) | round-robin: which router", 0, 0},
		{"orca", OPT_STR, &o.orca, "on | off: engines report their load in each response head (route --orca)", 0, 0},
		{"tokenizer", OPT_STR, &o.tokenizer, "tokenizer.json", 0, 0},
		{"out", OPT_STR, &o.out, "write DIR/results.json and plots (default build/lab)", 0, 0},
		{"quiet", OPT_BOOL, &o.quiet, "no result block per run, only the tables", 0, 0},
		{"progress-interval-s", OPT_DBL, &x.progress_s,
		 "live: a progress line every N s (1 when stderr is a terminal, else 10)", 0.1, 3600},
		{"admission", OPT_STR, &o.admission,
		 "list of the router's admission control specs: off | on[:KEY=VALUE]... (prefixlb route --admission)", 0, 0},
		{"tenants", OPT_STR, &o.tenants,
		 "list of client tenant mixes NAME:WEIGHT+NAME:WEIGHT (each request is one tenant's; per-tenant figures)", 0,
		 0},
		{"goodput-ttft-ms", OPT_DBL, &o.goodput_ttft_ms, "goodput SLO: requests with TTFT <= this (vLLM's --goodput ttft:MS)",
		 0, 1e9},
		{0},
	};
	plb_set_oom_handler(oom);
	char **cfg = NULL;
	struct tok *t = NULL;
	struct lab_workload *ws = NULL;
	size_t n_ws = 0;
	struct lab_job *jobs = NULL;
	struct lab_result *res = NULL;
	int rc = 0;
	int pr = opts_parse("lab", usage, tab, argc, argv, NULL, NULL);
	if (pr) {
		rc = pr == 1 ? 0 : 2;
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0); /* tables and progress lines interleave in order */
	if (o.virt == o.live) {
		fprintf(stderr, "prefixlb lab: give --virtual or --live\n");
		rc = 2;
		goto out;
	}
	if (lab_scenario_fill(&o)) {
		if (access(o.scenario, R_OK)) {
			fprintf(stderr, "prefixlb lab: unknown scenario '%s' (built in: %s; or a readable file of lab options)\n",
				o.scenario, lab_scenario_names());
			rc = 2;
			goto out;
		}
		int cargc, *lines = NULL;
		if (!(cfg = cmd_config_argv_lines(o.scenario, "lab", &cargc, &lines)) ||
		    opts_parse_file("lab", usage, tab, cargc, cfg, NULL, NULL, o.scenario, lines) ||
		    opts_parse("lab", usage, tab, argc, argv, NULL, NULL)) {
			free(lines);
			rc = 2;
			goto out;
		}
		free(lines);
	}
	int arena = !strcmp(o.scenario, "arena");
	if (arena && o.live) {
		fprintf(stderr, "prefixlb lab: the arena runs in virtual time only (--virtual)\n");
		rc = 2;
		goto out;
	}
	const char *arena_policies = o.policies; /* the arena's default: every registered policy */
	if (!o.policies)
		o.policies = "least-load,prefix-hash";
	if (!o.variant)
		o.variant = "as-published";
	if (!o.warm_up)
		o.warm_up = "none";
	if (!o.caps)
		o.caps = "0";
	struct lab_point ropt = {.routers = (int)o.routers, .router_assign = !strcmp(o.assign, "round-robin"),
				 .orca = !strcmp(o.orca, "on")};
	if ((strcmp(o.assign, "random") && strcmp(o.assign, "round-robin")) || (strcmp(o.orca, "on") && strcmp(o.orca, "off")) ||
	    (o.live && o.routers > 1)) {
		fprintf(stderr, "prefixlb lab: --router-assign random|round-robin, --orca on|off, --routers > 1 virtual only\n");
		rc = 2;
		goto out;
	}
	if (chat_template_find(o.template, &x.tpl)) {
		fprintf(stderr, "prefixlb lab: --chat-template %s: llama-3.1 or llama-3\n", o.template);
		rc = 2;
		goto out;
	}
	if (arena) {
		const char *adir = o.out ? o.out : "build/lab";
		if (!(t = cmd_load_tokenizer(o.tokenizer))) {
			rc = 1;
			goto out;
		}
		x.tok = t;
		x.net_delay_ms = o.net_ms;
		x.kv_events_ms = o.kv_ms;
		tok_encode(t, engine_filler_text, strlen(engine_filler_text), 0, &x.filler);
		if (mkdir(adir, 0755) && errno != EEXIST) {
			fprintf(stderr, "prefixlb lab: %s: %s\n", adir, strerror(errno));
			rc = 1;
			goto out;
		}
		rc = lab_arena(&x, adir, o.jobs, arena_policies, o.seeds, o.quiet, &ropt);
		goto out;
	}
	/* every list, checked before anything runs */
	static struct lab_sweep sw;
	if (lab_sweep_parse(&sw, &o)) {
		rc = 2;
		goto out;
	}
	if (!(t = cmd_load_tokenizer(o.tokenizer))) {
		rc = 1;
		goto out;
	}
	x.tok = t;
	x.live = o.live;
	x.net_delay_ms = o.net_ms;
	x.kv_events_ms = o.kv_ms;
	x.goodput_ttft_ms = o.goodput_ttft_ms;
	tok_encode(t, engine_filler_text, strlen(engine_filler_text), 0, &x.filler);
	const char *dir = o.out ? o.out : "build/lab";
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "prefixlb lab: %s: %s\n", dir, strerror(errno));
		rc = 1;
		goto out;
	}
	if (o.live) {
		ssize_t sl = readlink("/proc/self/exe", x.self, sizeof x.self - 1);
		if (sl <= 0) {
			rc = 1;
			goto out;
		}
		x.self[sl] = 0;
		snprintf(x.livedir, sizeof x.livedir, "%s/live", dir);
		mkdir(x.livedir, 0755);
	}
	/* the workloads: one per (data set, num, max conversations, seed) */
	if (lab_sweep_workloads(&sw, &x, &ws, &n_ws)) {
		rc = 1;
		goto out;
	}
	size_t n_jobs = lab_sweep_jobs(&sw, &o, &x, ws, &ropt, &jobs);
	if (o.live)
		fprintf(stderr, "prefixlb lab: %zu live run%s at time scale %s (every time reported is simulated); process "
				"logs: %s/processes.log\n",
			n_jobs, n_jobs == 1 ? "" : "s", o.scales, x.livedir);
	else
		fprintf(stderr, "prefixlb lab: %zu virtual run%s\n", n_jobs, n_jobs == 1 ? "" : o.jobs > 1 ? "s, in parallel" : "s");
	lab_run_all(jobs, n_jobs, o.live, o.jobs, o.quiet);
	res = plb_calloc(n_jobs + 1, sizeof *res);
	size_t n_res = 0;
	for (size_t i = 0; i < n_jobs; i++)
		if (!jobs[i].rc)
			res[n_res++] = jobs[i].r;
	const char *w0 = sw.warm.v[0];
	char note[256];
	snprintf(note, sizeof note, "%s",
		 sw.warm.n > 1		     ? "per run: see the warm-up in the run column"
		 : !strcmp(w0, "none")	     ? "cold (empty caches)"
		 : !strcmp(w0, "same")	     ? "warmed by an unmeasured pass of the run's own policy"
		 : !strcmp(w0, "alternate") ? "as the seed's run order left it, after an unmeasured pass of least-load "
					      "(for prefix-hash) or prefix-hash"
					    : "warmed by an unmeasured pass of --warm-up's policy");
	lab_print_tables(res, n_res, !strcmp(o.scenario, "seed") || !strcmp(o.scenario, "per-replica"), o.live, note);
	lab_write_json(dir, res, n_res, o.scenario, o.live);
	lab_plot(dir, res, n_res, o.scenario, o.live);
	if (n_res < n_jobs)
		rc = 1;
out:
	for (size_t i = 0; i < n_ws; i++)
		lab_workload_free(&ws[i]);
	free(ws);
	free(jobs);
	free(res);
	tok_ids_free(&x.filler);
	tok_free(t);
	cmd_free_argv(cfg);
	opt_list_free(&o.params);
	return rc;
}
