/* lab.h: what the files of `prefixlb lab` share.
 *   lab.c         options and the command's course: scenario, checks, workloads, runs, tables
 *   lab_scenarios.c  the built-in scenarios (what each fills in)
 *   lab_sweep.c   the option lists, their checks, the sweep (a cross product of the lists)
 *   lab_run.c     workloads (data sets, plans, token ids), virtual runs (src/core/sim.c), the run loop
 *   lab_arena.c   every policy over one matrix of workloads (--scenario arena)
 *   lab_live.c    live runs: the bench watched (its progress relayed, its wait bounded), its results
 *   lab_proc.c    live runs' child processes: spawned, waited on until ready, stopped
 *   lab_report.c  result blocks, tables against the seed's published numbers, results.json
 *   lab_plot.c    gnuplot plots, the seed's published values as points */
#ifndef PREFIXLB_LAB_H
#define PREFIXLB_LAB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/admit.h"
#include "../core/chat.h"
#include "../core/engine.h"
#include "../core/lb.h"
#include "../core/sim.h"
#include "../core/stats.h"
#include "../core/tokenizer.h"
#include "../core/workload.h"
#include "opts.h"

/* One point of a sweep: everything a run depends on. */
struct lab_point {
	const char *variant;   /* "as-published", "faithful", or a dispatch floor in ms */
	const char *policy;    /* a policy spec: NAME[:param=value]... */
	const char *workload;  /* fork | sessions */
	const char *profile;   /* engine profile name */
	const char *dataset;   /* a generator preset or a ShareGPT file */
	const char *warm_mode; /* none | same | alternate | a policy */
	int replicas;
	long conc;             /* max concurrency (sessions at rate inf: client threads) */
	double rate;           /* inf: no pacing */
	long max_conv, seed, num;
	double floor_ms, lag_ms, think_s;
	double scale;          /* live: time scale; virtual: 0 */
	long output_cap;       /* --max-output-tokens, 0: none */
	double timeout_s;      /* --request-timeout-s, 0: none */
	int ignore_eos;
	const char *fleet;     /* a mixed fleet, "PROFILE*N+PROFILE*N" (replicas = the sum), or NULL */
	const char *churn;     /* fleet changes, "DOWN:r@t,UP:r@t,..." (t in s; replicas absent at the
				  start are those only brought UP), or NULL */
	double signals_ms;     /* the router reads engine signals this often (0: never) */
	int routers;           /* virtual: routers in front of the fleet, each with its own state (0 or 1: one) */
	int router_assign;     /* SIM_ASSIGN_*: how requests are spread over them */
	int orca;              /* in-band load in every response head (the router's --orca; live: off -> --orca off) */
	const char *admission; /* the router's admission control, a spec (admit.h: off | on[:KEY=VALUE]...) */
	const char *tenants;   /* the client's tenants "NAME:WEIGHT+..." (client.h), or NULL */
};

#define LAB_MAX_TENANTS 4

struct lab_result {
	struct lab_point p;
	const char *warm; /* the policy that warmed the fleet, or "none" */
	struct bench_metrics m;
	double hit_rate;
	uint64_t preemptions;
	double load_spread;
	long timed_out;
	uint64_t retries, cut; /* a replica going down: requests retried elsewhere, cut */
	long rejected;         /* answered 429 (admission control) */
	struct admit_stats adm; /* virtual: admission's outcomes */
	struct lab_tenant {
		char name[32];
		long ok, failed, rejected;
		double ttft_mean, ttft_p99, goodput;
	} ten[LAB_MAX_TENANTS];
	int n_ten;
	double cpu_s; /* virtual: CPU seconds of the run; live: wall seconds */
	int ok;
};

/* A workload built once for every run that shares (dataset, num, max_conv, seed). */
struct lab_workload {
	struct wl_dataset ds;
	struct wl_plan plan;    /* fork */
	struct tok_ids *ids;    /* plan.items' ids (BOS + prompt, as the engine tokenizes them) */
	char file[1100];        /* live: the data set as a file the bench reads */
};

struct lab_ctx {
	const struct tok *tok;
	struct tok_ids filler;
	const struct opt_list *params; /* engine profile fields */
	enum chat_template tpl;
	double net_delay_ms;
	double kv_events_ms; /* virtual: KV events reach the router this late (< 0: none) */
	int live;
	double progress_s; /* live: the bench's progress line interval */
	double goodput_ttft_ms; /* goodput SLO (vLLM's --goodput ttft:MS), 0: none */
	char self[4096];   /* this binary (live runs spawn it) */
	char livedir[1024];
};

/* lab_run.c */
int lab_workload_build(struct lab_workload *w, const struct lab_ctx *x, const char *dataset, long max_conv, long num,
		       long seed);
void lab_workload_free(struct lab_workload *w);
/* One virtual run; fills r. Thread-safe: runs of a sweep go in parallel. */
int lab_run_virtual(const struct lab_ctx *x, const struct lab_workload *w, const struct lab_point *p,
		    struct lab_result *r);
/* The --admission specs and --tenants mixes ("-": none): 0, or -1 with a message. */
int lab_check_overload(const char *const *adm, size_t n_adm, const char *const *ten, size_t n_ten);
/* Per-tenant figures of a run's client into r->ten. */
void lab_tenants(const struct client *c, double duration, const struct goodput_slo *slo, struct lab_result *r);
/* The fleet's warm-up: NULL for none, else the policy spec that routes it. */
const char *lab_warm_policy(const struct lab_point *p);

/* One run of a sweep. */
struct lab_job {
	const struct lab_ctx *x;
	const struct lab_workload *w;
	struct lab_point p;
	struct lab_result r;
	int rc, done;
};
/* Runs every job (virtual: on `threads` threads at once), printing each in
 * order as it completes (its block unless quiet, a line on stderr). */
void lab_run_all(struct lab_job *jobs, size_t n, int live, long threads, int quiet);

/* The command line of `prefixlb lab` (lab.c's options table). */
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

/* lab_scenarios.c */
/* Fills what the command line left unset from the built-in scenario o->scenario:
 * 0, or -1 when it is not a built-in one. */
int lab_scenario_fill(struct lab_opts *o);
/* The built-in scenarios' names, "seed, per-replica, ...". */
const char *lab_scenario_names(void);

/* lab_sweep.c: every list option, split ("a,b" or "a b") */
struct lab_list {
	char buf[4096];
	char *v[64];
	size_t n;
};
struct lab_sweep {
	struct lab_list var, mode, rep, conc, pol, prof, rate, warm, lag, scale, ds, num, mc, seed, cap, to, adm, ten;
};
/* Splits every list of o and checks every item before anything runs: 0, or
 * -1 after a message on stderr. */
int lab_sweep_parse(struct lab_sweep *s, const struct lab_opts *o);
/* The workloads, one per (data set, num, max conversations, seed): 0, or -1
 * (*ws, *n_ws hold what was built: free them either way). */
int lab_sweep_workloads(const struct lab_sweep *s, const struct lab_ctx *x, struct lab_workload **ws, size_t *n_ws);
/* The runs: the cross product of the lists, minus the points that mean
 * nothing; ropt gives routers, router_assign and orca. Returns their count;
 * *jobs is allocated (free it). */
size_t lab_sweep_jobs(const struct lab_sweep *s, const struct lab_opts *o, const struct lab_ctx *x,
		      const struct lab_workload *ws, const struct lab_point *ropt, struct lab_job **jobs);

/* lab_arena.c: every policy over one matrix of workloads (--scenario arena) */
/* opt: routers, router_assign and orca of every cell; with routers > 1 each
 * cell also runs with one router and the comparison is printed. */
int lab_arena(const struct lab_ctx *x, const char *dir, long threads, const char *policies, const char *seeds,
	      int quiet, const struct lab_point *opt);

/* lab_live.c */
int lab_run_live(const struct lab_ctx *x, const struct lab_workload *w, const struct lab_point *p,
		 struct lab_result *r);

/* lab_proc.c: child processes of live runs (they die with the lab: PR_SET_PDEATHSIG) */
double lab_mono(void); /* monotonic seconds */
/* Runs self with args; stderr appends to log (or goes to errfd when >= 0),
 * stdout goes to out (or nowhere). Returns the pid, or -1 (with a message)
 * when fork fails. */
pid_t lab_spawn(const char *self, const char *const *args, const char *log, const char *out, int errfd);
/* SIGTERM, then SIGKILL after 10 s; the exit status, or -1 when pid <= 0. */
int lab_stop_pid(pid_t pid);
/* The point's engine fleet (one `prefixlb engine` process), its ports in
 * ports[0..replicas): the pid, or -1 with a message. */
pid_t lab_start_fleet(const struct lab_ctx *x, const struct lab_point *p, int *ports, int max);
/* A router with the policy in front of the fleet, ready (its health checks
 * have learned the backends' model); its port in *rport: the pid, or -1. */
pid_t lab_start_router(const struct lab_ctx *x, const char *policy, int orca, const char *admission, double scale,
		       const int *ports, int np, int *rport);

/* lab_report.c: the seed's published table, the sweep's axes */
struct seed_row {
	int conc, rate;
	const char *policy;
	double dur, tps, ttft_mean, ttft_med, ttft_p99, tpot_med, itl_med;
};

const struct seed_row *lab_seed_row(const struct lab_point *p); /* NULL unless the seed's setup */
void lab_rate_str(double rate, char *out, size_t cap);
/* The sweep's axes, for labels and plots. */
enum axis { AX_CONC, AX_MCONV, AX_REPLICAS, AX_NUM, AX_RATE, AX_SEED, AX_LAG, AX_SCALE, AX_CAP, AX_TIMEOUT,
	    AX_PROFILE, AX_DATASET, AX_WARM, AX_WORKLOAD, AX_ADMIT, AX_TENANTS, AX_N };
extern const char *const lab_ax_name[AX_N];
double lab_axis_num(const struct lab_point *p, int ax);
const char *lab_axis_str(const struct lab_point *p, int ax);
int lab_axis_same(const struct lab_point *a, const struct lab_point *b, int ax);
/* The distinct client variants of runs, in order of appearance. */
size_t lab_variants(const struct lab_result *runs, size_t n, const char **out, size_t max);
unsigned lab_varying(const struct lab_result *runs, size_t n, const char *variant); /* bit per axis */

void lab_print_block(const struct lab_result *r);
/* What the point's client variant is ("seed's client: 7.7 ms dispatch floor + 65 ms lag"). */
void lab_variant_desc(const struct lab_point *p, int lag_varies, char *out, size_t cap);
void lab_print_overload(const struct lab_result *r);
void lab_print_tables(const struct lab_result *runs, size_t n, int seedlike, int live, const char *fleet_note);
int lab_write_json(const char *dir, const struct lab_result *runs, size_t n, const char *scenario, int live);
/* gnuplot PNGs of the runs in dir (live: named ...-live-VARIANT.png); "plots: ..." on stdout. */
void lab_plot(const char *dir, const struct lab_result *runs, size_t n, const char *scenario, int live);
/* A short label of what differs from the seed's setup ("8 replicas, 800 pairs", ...). */
void lab_label(const struct lab_point *p, char *out, size_t cap);

#endif
