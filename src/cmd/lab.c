/* lab.c: `prefixlb lab`, the seed's experiment (and sweeps around it) rerun
 * live over HTTP or in virtual time.
 *
 * Every option that takes a list sweeps: the runs are the cross product of
 * the lists. Built-in scenarios fill what the command line leaves unset:
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
 * or a file of lab options, one per line. Virtual runs of a sweep go in
 * parallel (--jobs); each is deterministic per seed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/mem.h"
#include "../core/policy.h"
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

struct lab_opts {
	const char *scenario, *variant, *out, *concs, *per_replica, *policies, *profiles, *tokenizer, *replicas, *mconv,
		*seeds, *datasets, *nums, *warm_up, *scales, *rates, *lags, *modes, *caps, *timeouts, *template, *assign, *orca,
		*admission, *tenants;
	double goodput_ttft_ms;
	int virt, live, quiet, ignore_eos;
	long jobs, routers;
	double net_ms, think_s, kv_ms;
	struct opt_list params;
};

/* ---- lists --------------------------------------------------------------------- */

struct list {
	char buf[4096];
	char *v[64];
	size_t n;
};

static size_t split(struct list *l, const char *s)
{
	snprintf(l->buf, sizeof l->buf, "%s", s ? s : "");
	l->n = 0;
	char *save = NULL;
	for (char *t = strtok_r(l->buf, ", \t", &save); t && l->n < 64; t = strtok_r(NULL, ", \t", &save))
		l->v[l->n++] = t;
	return l->n;
}

/* A number in [lo, hi], or "inf" when inf_ok. */
static int num_ok(const char *opt, const char *s, double lo, double hi, int inf_ok, double *out)
{
	char *end;
	double x = inf_ok && !strcmp(s, "inf") ? INFINITY : strtod(s, &end);
	if (isfinite(x) && (*end || !(x >= lo && x <= hi))) {
		fprintf(stderr, "prefixlb lab: --%s: '%s' is not a number in %g..%g%s\n", opt, s, lo, hi,
			inf_ok ? " or inf" : "");
		return -1;
	}
	*out = x;
	return 0;
}

static int list_nums(const char *opt, const struct list *l, double lo, double hi, int inf_ok)
{
	double x;
	if (!l->n) {
		fprintf(stderr, "prefixlb lab: --%s: an empty list\n", opt);
		return -1;
	}
	for (size_t i = 0; i < l->n; i++)
		if (num_ok(opt, l->v[i], lo, hi, inf_ok, &x))
			return -1;
	return 0;
}

/* ---- scenarios ------------------------------------------------------------------- */

static const char *const scenarios[] = {"seed", "per-replica", "conversations", "chat", "arena"};

static int builtin(struct lab_opts *o)
{
	const char *s = o->scenario;
	if (!strcmp(s, "seed")) {
		if (!o->concs && !o->per_replica)
			o->concs = "800@800,1600@200,3200@200,8000@800";
		if (!o->policies)
			o->policies = "random,least-load,prefix-hash";
		if (!o->variant)
			o->variant = "both";
		if (!o->warm_up)
			o->warm_up = "alternate";
	} else if (!strcmp(s, "per-replica")) {
		if (!o->concs && !o->per_replica)
			o->per_replica = "50,100,200";
	} else if (!strcmp(s, "conversations")) {
		if (!o->concs && !o->per_replica)
			o->concs = "1600@200";
		if (!strcmp(o->mconv, "800"))
			o->mconv = "100,200,400,800,1600,3200";
	} else if (!strcmp(s, "arena")) {
		if (!strcmp(o->seeds, "12345"))
			o->seeds = "1,2,3";
	} else if (!strcmp(s, "chat")) {
		if (!o->concs && !o->per_replica)
			o->concs = "16@inf,32@inf,64@inf,128@inf";
		if (!o->policies)
			o->policies = "random,round-robin,least-load,prefix-hash";
		if (!o->variant)
			o->variant = "faithful";
		if (!strcmp(o->modes, "fork"))
			o->modes = "sessions";
		if (!strcmp(o->mconv, "800"))
			o->mconv = "2000";
		if (!strcmp(o->nums, "8000"))
			o->nums = "6000";
		if (!strcmp(o->datasets, "seed"))
			o->datasets = "chat";
		if (!o->caps)
			o->caps = "40";
	} else {
		return -1;
	}
	return 0;
}

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
	if (builtin(&o)) {
		if (access(o.scenario, R_OK)) {
			fprintf(stderr, "prefixlb lab: unknown scenario '%s' (built in: seed, per-replica, conversations, chat, arena; "
					"or a readable file of lab options)\n",
				o.scenario);
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
	(void)scenarios;
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
	static struct list L_var, L_mode, L_rep, L_conc, L_pol, L_prof, L_rate, L_warm, L_lag, L_scale, L_ds, L_num,
		L_mc, L_seed, L_cap, L_to, L_adm, L_ten;
	split(&L_var, strcmp(o.variant, "both") ? o.variant : "as-published,faithful");
	split(&L_mode, o.modes);
	split(&L_rep, o.replicas);
	split(&L_conc, o.concs ? o.concs : o.per_replica);
	split(&L_pol, o.policies);
	split(&L_prof, o.profiles);
	split(&L_rate, o.rates);
	split(&L_warm, o.warm_up);
	split(&L_lag, o.lags);
	split(&L_scale, o.live ? o.scales : "0");
	split(&L_ds, o.datasets);
	split(&L_num, o.nums);
	split(&L_mc, o.mconv);
	split(&L_seed, o.seeds);
	split(&L_cap, o.caps);
	split(&L_to, o.timeouts);
	split(&L_adm, o.admission ? o.admission : "off");
	split(&L_ten, o.tenants ? o.tenants : "-");
	const char *bad = NULL;
	char err[600];
	for (size_t i = 0; i < L_var.n && !bad; i++) {
		double f;
		if (strcmp(L_var.v[i], "as-published") && strcmp(L_var.v[i], "faithful") &&
		    num_ok("variant", L_var.v[i], 0, 1e6, 0, &f))
			bad = L_var.v[i];
	}
	if (lab_check_overload((const char *const *)L_adm.v, L_adm.n, (const char *const *)L_ten.v, L_ten.n))
		bad = "admission or tenants";
	for (size_t i = 0; i < L_mode.n && !bad; i++)
		if (strcmp(L_mode.v[i], "fork") && strcmp(L_mode.v[i], "sessions")) {
			fprintf(stderr, "prefixlb lab: --multi-turn-mode: fork or sessions, not '%s'\n", L_mode.v[i]);
			bad = L_mode.v[i];
		}
	for (size_t i = 0; i < L_pol.n && !bad; i++) {
		struct lb_opts lo;
		lb_opts_default(&lo);
		if (lb_opts_policy(&lo, L_pol.v[i], err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: --policies: %s\n", err);
			bad = L_pol.v[i];
		}
	}
	for (size_t i = 0; i < L_warm.n && !bad; i++) {
		const char *w = L_warm.v[i];
		struct lb_opts lo;
		lb_opts_default(&lo);
		if (strcmp(w, "none") && strcmp(w, "same") && strcmp(w, "alternate") && lb_opts_policy(&lo, w, err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: --warm-up: none, same, alternate or a policy: %s\n", err);
			bad = w;
		}
	}
	for (size_t i = 0; i < L_prof.n && !bad; i++) {
		const struct engine_profile *p0 = engine_profile_find(L_prof.v[i]);
		if (!p0) {
			fprintf(stderr, "prefixlb lab: unknown profile '%s' (known:", L_prof.v[i]);
			for (size_t k = 0; engine_profile_at(k); k++)
				fprintf(stderr, " %s", engine_profile_at(k)->name);
			fprintf(stderr, ")\n");
			bad = L_prof.v[i];
			break;
		}
		struct engine_profile pp = *p0;
		for (size_t k = 0; k < o.params.n && !bad; k++) {
			char kv[256];
			snprintf(kv, sizeof kv, "%s", o.params.v[k]);
			char *eq = strchr(kv, '=');
			int r = eq ? (*eq = '\0', engine_profile_set(&pp, kv, eq + 1)) : -3;
			if (r) {
				fprintf(stderr, "prefixlb lab: --param %s: %s\n", o.params.v[k],
					r == -3 ? "expected KEY=VALUE" : r == -1 ? "unknown profile field" : "bad value");
				bad = o.params.v[k];
			}
		}
		if (!bad && engine_profile_check(&pp, err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: profile %s: %s\n", L_prof.v[i], err);
			bad = L_prof.v[i];
		}
	}
	for (size_t i = 0; i < L_ds.n && !bad; i++) {
		struct wl_gen g;
		if (wl_preset(L_ds.v[i], &g) && access(L_ds.v[i], R_OK)) {
			fprintf(stderr, "prefixlb lab: --dataset %s: neither a preset (seed, shared-system, hot, rag, chat) nor a "
					"readable file\n",
				L_ds.v[i]);
			bad = L_ds.v[i];
		}
	}
	for (size_t i = 0; i < L_conc.n && !bad; i++) {
		double c, r;
		char item[64];
		snprintf(item, sizeof item, "%s", L_conc.v[i]);
		char *at = strchr(item, '@');
		if (at)
			*at = '\0';
		if (num_ok("concurrency", item, 1, 1e7, 0, &c) || (at && num_ok("concurrency", at + 1, 1e-3, 1e6, 1, &r)))
			bad = L_conc.v[i];
	}
	if (!bad && (list_nums("request-rate", &L_rate, 1e-3, 1e6, 1) || list_nums("client-lag-ms", &L_lag, 0, 1e4, 0) ||
		     list_nums("time-scale", &L_scale, 0, 100, 0) || list_nums("replicas", &L_rep, 1, 100000, 0) ||
		     list_nums("num-prompts", &L_num, 1, 1e8, 0) || list_nums("max-conversations", &L_mc, 1, 1e8, 0) ||
		     list_nums("seed", &L_seed, 0, 9e18, 0) || list_nums("max-output-tokens", &L_cap, 0, 1e7, 0) ||
		     list_nums("request-timeout-s", &L_to, 0, 1e7, 0)))
		bad = "a number";
	if (o.live) {
		for (size_t i = 0; i < L_scale.n && !bad; i++)
			if (atof(L_scale.v[i]) < 0.1)
				bad = "time scale";
	}
	if (bad || !L_var.n || !L_mode.n || !L_conc.n || !L_pol.n || !L_prof.n || !L_warm.n || !L_ds.n) {
		if (!bad)
			fprintf(stderr, "prefixlb lab: an empty list\n");
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
	n_ws = L_ds.n * L_num.n * L_mc.n * L_seed.n;
	ws = plb_calloc(n_ws, sizeof *ws);
	for (size_t wi = 0; wi < n_ws; wi++) {
		size_t k = wi;
		size_t si = k % L_seed.n, mi = (k /= L_seed.n) % L_mc.n, ni = (k /= L_mc.n) % L_num.n, di = k / L_num.n;
		if (lab_workload_build(&ws[wi], &x, L_ds.v[di], atol(L_mc.v[mi]), atol(L_num.v[ni]), atol(L_seed.v[si]))) {
			rc = 1;
			goto out;
		}
	}
	/* the runs: the cross product, minus the points that mean nothing */
	size_t n_inner = L_var.n * L_mode.n * L_rep.n * L_conc.n * L_pol.n * L_prof.n * L_rate.n * L_warm.n * L_lag.n *
			 L_scale.n * L_cap.n * L_to.n * L_adm.n * L_ten.n;
	jobs = plb_calloc(n_ws * n_inner + 1, sizeof *jobs);
	size_t n_jobs = 0;
	for (size_t wi = 0; wi < n_ws; wi++) {
		size_t k = wi;
		size_t si = k % L_seed.n, mi = (k /= L_seed.n) % L_mc.n, ni = (k /= L_mc.n) % L_num.n, di = k / L_num.n;
		for (size_t ii = 0; ii < n_inner; ii++) {
			size_t q = ii;
			size_t tei = q % L_ten.n, adi = (q /= L_ten.n) % L_adm.n;
			q /= L_adm.n;
			size_t toi = q % L_to.n, capi = (q /= L_to.n) % L_cap.n, ti = (q /= L_cap.n) % L_scale.n,
			       li = (q /= L_scale.n) % L_lag.n, ki = (q /= L_lag.n) % L_warm.n, qi = (q /= L_warm.n) % L_rate.n,
			       fi = (q /= L_rate.n) % L_prof.n, pi = (q /= L_prof.n) % L_pol.n, ci = (q /= L_pol.n) % L_conc.n,
			       ri = (q /= L_conc.n) % L_rep.n, oi = (q /= L_rep.n) % L_mode.n, vi = (q /= L_mode.n) % L_var.n;
			const char *at = strchr(L_conc.v[ci], '@');
			int faithful = !strcmp(L_var.v[vi], "faithful"), sessions = !strcmp(L_mode.v[oi], "sessions");
			if ((at && qi) || (faithful && li) || (sessions && ki))
				continue; /* the item has its rate / the faithful client no lag / sessions no warm-up */
			struct lab_point *p = &jobs[n_jobs].p;
			double rate;
			num_ok("request-rate", at ? at + 1 : L_rate.v[qi], 1e-3, 1e6, 1, &rate);
			int reps = atoi(L_rep.v[ri]);
			*p = (struct lab_point){
				.variant = faithful ? "faithful" : L_var.v[vi],
				.policy = L_pol.v[pi],
				.workload = L_mode.v[oi],
				.profile = L_prof.v[fi],
				.dataset = L_ds.v[di],
				.warm_mode = sessions ? "none" : L_warm.v[ki],
				.replicas = reps,
				.conc = o.concs ? atol(L_conc.v[ci]) : atol(L_conc.v[ci]) * reps,
				.rate = rate,
				.max_conv = atol(L_mc.v[mi]),
				.seed = atol(L_seed.v[si]),
				.num = atol(L_num.v[ni]),
				.floor_ms = faithful ? 0 : !strcmp(L_var.v[vi], "as-published") ? 7.7 : atof(L_var.v[vi]),
				.lag_ms = faithful ? 0 : atof(L_lag.v[li]),
				.think_s = sessions ? o.think_s : 0,
				.scale = o.live ? atof(L_scale.v[ti]) : 0,
				.output_cap = atol(L_cap.v[capi]),
				.timeout_s = atof(L_to.v[toi]),
				.ignore_eos = o.ignore_eos,
				.routers = ropt.routers,
				.router_assign = ropt.router_assign,
				.orca = ropt.orca,
				.admission = L_adm.v[adi],
				.tenants = strcmp(L_ten.v[tei], "-") ? L_ten.v[tei] : NULL,
			};
			jobs[n_jobs].x = &x;
			jobs[n_jobs].w = &ws[wi];
			n_jobs++;
		}
	}
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
	const char *w0 = L_warm.v[0];
	char note[256];
	snprintf(note, sizeof note, "%s",
		 L_warm.n > 1		     ? "per run: see the warm-up in the run column"
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
