/* lab_run.c: the lab's workloads and its virtual runs (see lab.h).
 *
 * A workload (data set, the fork's plan and the token ids of its distinct
 * prompts) is built once per (data set, num, max conversations, seed) and
 * shared read-only by every run that uses it, which may run in parallel: the
 * simulator, the client and the policies keep all their state per run, and
 * the tokenizer is read-only after loading. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/mem.h"
#include "../core/policy.h"
#include "../core/prompt.h"
#include "../core/sim.h"
#include "cmd.h"
#include "lab.h"

static int is_preset(const char *d)
{
	struct wl_gen g;
	return wl_preset(d, &g) == 0;
}

int lab_workload_build(struct lab_workload *w, const struct lab_ctx *x, const char *dataset, long max_conv, long num,
		       long seed)
{
	memset(w, 0, sizeof *w);
	if (is_preset(dataset)) {
		struct wl_gen g;
		wl_preset(dataset, &g);
		g.seed = (uint64_t)seed;
		if ((size_t)max_conv * 2 > g.conversations * 8) /* enough pairs for the sweep */
			g.conversations = (size_t)max_conv / 4 + 100;
		if (wl_generate(&g, &w->ds))
			return -1;
	} else {
		if (cmd_load_dataset(dataset, NULL, 0, &w->ds))
			return -1;
		snprintf(w->file, sizeof w->file, "%s", dataset);
	}
	if (wl_fork_plan(&w->ds, x->tok, (size_t)max_conv, (size_t)num, (uint64_t)seed, &w->plan))
		return -1;
	w->ids = plb_calloc(w->plan.n_items + 1, sizeof *w->ids);
	for (size_t i = 0; i < w->plan.n_items; i++)
		tok_encode(x->tok, w->plan.items[i].prompt, w->plan.items[i].prompt_len, TOK_BOS, &w->ids[i]);
	if (x->live && !w->file[0]) { /* the bench reads the data set from a file */
		snprintf(w->file, sizeof w->file, "%s/dataset.json", x->livedir);
		struct buf jb;
		buf_init(&jb, (size_t)1 << 34);
		int bad = wl_write_sharegpt(&w->ds, &jb) || cmd_write_file_atomic(w->file, jb.data ? jb.data : "", jb.len);
		buf_free(&jb);
		if (bad) {
			fprintf(stderr, "prefixlb lab: %s: cannot write\n", w->file);
			return -1;
		}
	}
	return 0;
}

void lab_workload_free(struct lab_workload *w)
{
	for (size_t i = 0; w->ids && i < w->plan.n_items; i++)
		tok_ids_free(&w->ids[i]);
	free(w->ids);
	wl_plan_free(&w->plan);
	wl_free(&w->ds);
	memset(w, 0, sizeof *w);
}

const char *lab_warm_policy(const struct lab_point *p)
{
	if (!strcmp(p->workload, "sessions") || !strcmp(p->warm_mode, "none"))
		return NULL;
	if (!strcmp(p->warm_mode, "same"))
		return p->policy;
	if (!strcmp(p->warm_mode, "alternate")) /* the seed's run order: prefix-hash after least-load, the rest after prefix-hash */
		return !strncmp(p->policy, "prefix-hash", 11) && (!p->policy[11] || p->policy[11] == ':') ? "least-load"
													    : "prefix-hash";
	return p->warm_mode;
}

static double thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "PROFILE*N+PROFILE*N" into profiles[0..replicas). 0, or -1 (message). */
static int parse_fleet(const char *spec, const struct opt_list *params, struct engine_profile **out, int *replicas)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", spec);
	int n = 0;
	struct engine_profile *v = NULL;
	char *save = NULL;
	for (char *t = strtok_r(buf, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
		char *star = strchr(t, '*');
		int k = star ? atoi(star + 1) : 1;
		if (star)
			*star = '\0';
		const struct engine_profile *p0 = engine_profile_find(t);
		if (!p0 || k < 1 || k > 100000) {
			fprintf(stderr, "prefixlb lab: fleet '%s': '%s' is not PROFILE*N\n", spec, t);
			free(v);
			return -1;
		}
		v = plb_realloc(v, (size_t)(n + k) * sizeof *v);
		for (int i = 0; i < k; i++) {
			v[n + i] = *p0;
			for (size_t j = 0; j < params->n; j++) {
				char kv[256];
				snprintf(kv, sizeof kv, "%s", params->v[j]);
				char *eq = strchr(kv, '=');
				if (eq && (*eq = '\0', engine_profile_set(&v[n + i], kv, eq + 1))) {
					free(v);
					return -1;
				}
			}
		}
		n += k;
	}
	*out = v;
	*replicas = n;
	return n ? 0 : -1;
}

/* "DOWN:r@t,UP:r@t" into events (time order kept as given). Replicas that
 * only come UP start absent: *start = the lowest of them. */
static int parse_churn(const char *spec, int replicas, struct sim_fleet_event **out, size_t *n, int *start)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", spec);
	struct sim_fleet_event *v = NULL;
	size_t k = 0;
	int first_new = replicas;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int up = !strncmp(t, "UP:", 3), down = !strncmp(t, "DOWN:", 5);
		char *at = strchr(t, '@');
		if ((!up && !down) || !at) {
			fprintf(stderr, "prefixlb lab: churn '%s': '%s' is not DOWN:r@t or UP:r@t\n", spec, t);
			free(v);
			return -1;
		}
		int r = atoi(t + (up ? 3 : 5));
		if (r < 0 || r >= replicas) {
			free(v);
			return -1;
		}
		v = plb_realloc(v, (k + 1) * sizeof *v);
		v[k++] = (struct sim_fleet_event){atof(at + 1), r, up};
	}
	for (size_t i = 0; i < k; i++) { /* a replica whose first event is UP starts absent */
		int seen_before = 0;
		for (size_t j = 0; j < i; j++)
			seen_before |= v[j].replica == v[i].replica;
		if (v[i].up && !seen_before && v[i].replica < first_new)
			first_new = v[i].replica;
	}
	*out = v;
	*n = k;
	*start = first_new;
	return 0;
}

int lab_check_overload(const char *const *adm, size_t n_adm, const char *const *ten, size_t n_ten)
{
	char err[1024];
	for (size_t i = 0; i < n_adm; i++) {
		struct admit_cfg ac;
		if (admit_cfg_parse(&ac, adm[i], err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: --admission: %s\n", err);
			return -1;
		}
	}
	for (size_t i = 0; i < n_ten; i++)
		if (strcmp(ten[i], "-") && client_tenants_check(ten[i], err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: --tenants: %s\n", err);
			return -1;
		}
	return 0;
}

void lab_tenants(const struct client *c, double duration, const struct goodput_slo *slo, struct lab_result *r)
{
	r->n_ten = 0;
	for (size_t t = 0; t < client_n_tenants(c) && r->n_ten < LAB_MAX_TENANTS; t++) {
		struct lab_tenant *lt = &r->ten[r->n_ten++];
		double pct[] = {99};
		struct bench_metrics m;
		client_metrics_tenant(c, t, duration, pct, 1, slo, &m);
		snprintf(lt->name, sizeof lt->name, "%s", client_tenant_name(c, t));
		lt->ok = m.completed;
		lt->failed = m.failed;
		lt->rejected = 0;
		for (size_t i = 0; i < client_n_recs(c); i++)
			lt->rejected += client_rec(c, i)->tenant == t && client_rec(c, i)->rejected;
		lt->ttft_mean = m.m[M_TTFT].mean;
		lt->ttft_p99 = m.m[M_TTFT].pct[0];
		lt->goodput = m.request_goodput;
	}
}

int lab_run_virtual(const struct lab_ctx *x, const struct lab_workload *w, const struct lab_point *p,
		    struct lab_result *r)
{
	double c0 = thread_cpu();
	struct sim_cfg c;
	memset(&c, 0, sizeof c);
	memset(r, 0, sizeof *r);
	r->p = *p;
	const struct engine_profile *prof = engine_profile_find(p->profile);
	if (!prof)
		return -1;
	c.profile = *prof;
	for (size_t i = 0; i < x->params->n; i++) {
		char kv[256];
		snprintf(kv, sizeof kv, "%s", x->params->v[i]);
		char *eq = strchr(kv, '=');
		if (eq && (*eq = '\0', engine_profile_set(&c.profile, kv, eq + 1)))
			return -1;
	}
	c.replicas = p->replicas;
	struct engine_profile *fleet = NULL;
	struct sim_fleet_event *events = NULL;
	if (p->fleet) {
		if (parse_fleet(p->fleet, x->params, &fleet, &c.replicas))
			return -1;
		c.profiles = fleet;
	}
	if (p->churn) {
		if (parse_churn(p->churn, c.replicas, &events, &c.n_events, &c.start_replicas)) {
			free(fleet);
			return -1;
		}
		c.events = events;
	}
	c.signals_ms = p->signals_ms;
	c.orca = p->orca;
	c.routers = p->routers;
	c.router_assign = p->router_assign;
	char err[600];
	admit_cfg_default(&c.admit);
	if (p->admission && admit_cfg_parse(&c.admit, p->admission, err, sizeof err)) {
		free(fleet);
		free(events);
		return -1;
	}
	lb_opts_default(&c.lb);
	if (lb_opts_policy(&c.lb, p->policy, err, sizeof err)) {
		free(fleet);
		free(events);
		return -1;
	}
	c.lb.seed = (uint64_t)p->seed;
	c.net_delay_ms = x->net_delay_ms;
	c.kv_events = x->kv_events_ms >= 0;
	c.kv_events_delay_ms = x->kv_events_ms;
	c.retries = 2;
	c.tpl = x->tpl;
	c.filler = x->filler.v;
	c.n_filler = x->filler.n;
	c.item_ids = w->ids;
	int sessions = !strcmp(p->workload, "sessions");
	struct prompt_cache *pc = sessions ? prompt_cache_new(x->tok, (size_t)1 << 22) : NULL;
	c.client = (struct client_cfg){
		.mode = sessions ? CLIENT_SESSIONS : CLIENT_LIST,
		.plan = &w->plan,
		.ds = &w->ds,
		.max_sessions = (size_t)p->max_conv,
		.max_requests = sessions ? (size_t)p->num : 0,
		.tok = x->tok,
		.pc = pc,
		.tpl = x->tpl,
		.request_rate = p->rate,
		.burstiness = 1,
		.dispatch_floor_ms = p->floor_ms,
		.lag_ms = p->lag_ms,
		.max_concurrency = p->conc,
		.think_s = p->think_s,
		.timeout_s = p->timeout_s,
		.max_output_tokens = p->output_cap,
		.ignore_eos = p->ignore_eos,
		.seed = (uint64_t)p->seed,
		.tenants = p->tenants,
	};
	const char *warm = lab_warm_policy(p);
	r->warm = warm ? warm : "none";
	if (warm) {
		c.warm_requests = (size_t)p->max_conv < w->plan.num ? (size_t)p->max_conv : w->plan.num;
		c.warm_lb = c.lb;
		c.warm_same_router = !strcmp(warm, p->policy); /* one router served both passes */
		if (lb_opts_policy(&c.warm_lb, warm, err, sizeof err)) {
			prompt_cache_free(pc);
			free(fleet);
			free(events);
			return -1;
		}
	}
	struct sim_result res;
	int rc = sim_run(&c, &res);
	if (!rc) {
		double pct[] = {99};
		struct goodput_slo slo = {x->goodput_ttft_ms, -1, -1};
		const struct goodput_slo *sp = x->goodput_ttft_ms > 0 ? &slo : NULL;
		client_metrics(res.client, res.duration, pct, 1, sp, &r->m);
		lab_tenants(res.client, res.duration, sp, r);
		r->adm = res.admit;
		r->hit_rate = res.prompt_tokens ? (double)res.prefix_hits / (double)res.prompt_tokens : 0;
		r->preemptions = res.preemptions;
		r->load_spread = res.load_spread;
		struct client_stats cs;
		client_get_stats(res.client, &cs);
		r->timed_out = cs.timed_out;
		r->rejected = cs.rejected;
		r->retries = res.retries;
		r->cut = res.cut;
		r->ok = 1;
		sim_result_free(&res);
	}
	prompt_cache_free(pc);
	free(fleet);
	free(events);
	r->cpu_s = thread_cpu() - c0;
	return rc;
}

/* ---- running a sweep in parallel -------------------------------------------------- */

struct pool {
	struct lab_job *jobs;
	size_t n, next;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void *worker(void *arg)
{
	struct pool *pl = arg;
	for (;;) {
		pthread_mutex_lock(&pl->mu);
		size_t i = pl->next < pl->n ? pl->next++ : SIZE_MAX;
		pthread_mutex_unlock(&pl->mu);
		if (i == SIZE_MAX)
			return NULL;
		struct lab_job *j = &pl->jobs[i];
		j->rc = lab_run_virtual(j->x, j->w, &j->p, &j->r);
		pthread_mutex_lock(&pl->mu);
		j->done = 1;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
}

struct progress {
	size_t done, n;
	double cpu, t_last;
};

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A finished run: its block (unless quiet) and a line on stderr (quiet and
 * virtual: a count every 2 s and at the end). */
static void report_run(int live, int quiet, const struct lab_job *j, struct progress *pg)
{
	char lab[512];
	struct lab_point p = j->p;
	p.scale = 0; /* a live run's time scale was said at the start */
	lab_label(&p, lab, sizeof lab);
	pg->done++;
	if (j->rc) {
		fprintf(stderr, "prefixlb lab: %s: the run failed\n", lab);
		return;
	}
	pg->cpu += j->r.cpu_s;
	if (!quiet)
		lab_print_block(&j->r);
	if (live)
		fprintf(stderr, "  done: %.1f s simulated in %.1f s wall\n", j->r.m.duration, j->r.cpu_s);
	else if (!quiet)
		fprintf(stderr, "prefixlb lab: virtual %s: %.2f s simulated in %.2f s CPU\n", lab, j->r.m.duration, j->r.cpu_s);
	else if (pg->done == pg->n || wall() - pg->t_last >= 2) {
		pg->t_last = wall();
		fprintf(stderr, "prefixlb lab: %zu of %zu virtual runs done (%.1f s of CPU)\n", pg->done, pg->n, pg->cpu);
	}
}

void lab_run_all(struct lab_job *jobs, size_t n, int live, long threads, int quiet)
{
	struct progress pg = {.n = n, .t_last = wall()};
	if (live || threads <= 1 || n < 2) {
		for (size_t i = 0; i < n; i++) {
			double load;
			long cores = sysconf(_SC_NPROCESSORS_ONLN);
			if (live && !i && getloadavg(&load, 1) == 1 && cores > 0 && load > (double)cores - 0.5)
				fprintf(stderr, "prefixlb lab: (load average %.1f on %ld cores: other processes share the CPUs with "
						"the live runs; their times will show it)\n",
					load, cores);
			if (live) {
				char lab[512];
				struct lab_point p = jobs[i].p;
				p.scale = 0;
				lab_label(&p, lab, sizeof lab);
				fprintf(stderr, "prefixlb lab: live run %zu of %zu: %s\n", i + 1, n, lab);
			}
			jobs[i].rc = live ? lab_run_live(jobs[i].x, jobs[i].w, &jobs[i].p, &jobs[i].r)
					  : lab_run_virtual(jobs[i].x, jobs[i].w, &jobs[i].p, &jobs[i].r);
			report_run(live, quiet, &jobs[i], &pg);
		}
		return;
	}
	struct pool pl = {.jobs = jobs, .n = n};
	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	size_t nt = (size_t)threads < n ? (size_t)threads : n, started = 0;
	pthread_t *th = plb_calloc(nt, sizeof *th);
	for (size_t i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, worker, &pl) == 0)
			started++;
	if (!started) /* no thread: do the work here */
		worker(&pl);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&pl.mu);
		while (!jobs[i].done)
			pthread_cond_wait(&pl.cv, &pl.mu);
		pthread_mutex_unlock(&pl.mu);
		report_run(live, quiet, &jobs[i], &pg);
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	pthread_mutex_destroy(&pl.mu);
	pthread_cond_destroy(&pl.cv);
}
