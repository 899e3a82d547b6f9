/* lab_sweep.c: the sweep of `prefixlb lab`. Every option that takes a list
 * sweeps: the runs are the cross product of the lists, minus the points that
 * mean nothing (an item with its own @RATE has no other rate, the faithful
 * client no lag, sessions no warm-up). Every item of every list is checked
 * before anything runs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/mem.h"
#include "../core/policy.h"
#include "lab.h"

static void split(struct lab_list *l, const char *s)
{
	snprintf(l->buf, sizeof l->buf, "%s", s ? s : "");
	l->n = 0;
	char *save = NULL;
	for (char *t = strtok_r(l->buf, ", \t", &save); t && l->n < 64; t = strtok_r(NULL, ", \t", &save))
		l->v[l->n++] = t;
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

static int list_nums(const char *opt, const struct lab_list *l, double lo, double hi, int inf_ok)
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

int lab_sweep_parse(struct lab_sweep *s, const struct lab_opts *o)
{
	/* every list, checked before anything runs */
	split(&s->var, strcmp(o->variant, "both") ? o->variant : "as-published,faithful");
	split(&s->mode, o->modes);
	split(&s->rep, o->replicas);
	split(&s->conc, o->concs ? o->concs : o->per_replica);
	split(&s->pol, o->policies);
	split(&s->prof, o->profiles);
	split(&s->rate, o->rates);
	split(&s->warm, o->warm_up);
	split(&s->lag, o->lags);
	split(&s->scale, o->live ? o->scales : "0");
	split(&s->ds, o->datasets);
	split(&s->num, o->nums);
	split(&s->mc, o->mconv);
	split(&s->seed, o->seeds);
	split(&s->cap, o->caps);
	split(&s->to, o->timeouts);
	split(&s->adm, o->admission ? o->admission : "off");
	split(&s->ten, o->tenants ? o->tenants : "-");
	const char *bad = NULL;
	char err[600];
	for (size_t i = 0; i < s->var.n && !bad; i++) {
		double f;
		if (strcmp(s->var.v[i], "as-published") && strcmp(s->var.v[i], "faithful") &&
		    num_ok("variant", s->var.v[i], 0, 1e6, 0, &f))
			bad = s->var.v[i];
	}
	if (lab_check_overload((const char *const *)s->adm.v, s->adm.n, (const char *const *)s->ten.v, s->ten.n))
		bad = "admission or tenants";
	for (size_t i = 0; i < s->mode.n && !bad; i++)
		if (strcmp(s->mode.v[i], "fork") && strcmp(s->mode.v[i], "sessions")) {
			fprintf(stderr, "prefixlb lab: --multi-turn-mode: fork or sessions, not '%s'\n", s->mode.v[i]);
			bad = s->mode.v[i];
		}
	for (size_t i = 0; i < s->pol.n && !bad; i++) {
		struct lb_opts lo;
		lb_opts_default(&lo);
		if (lb_opts_policy(&lo, s->pol.v[i], err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: --policies: %s\n", err);
			bad = s->pol.v[i];
		}
	}
	for (size_t i = 0; i < s->warm.n && !bad; i++) {
		const char *w = s->warm.v[i];
		struct lb_opts lo;
		lb_opts_default(&lo);
		if (strcmp(w, "none") && strcmp(w, "same") && strcmp(w, "alternate") && lb_opts_policy(&lo, w, err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: --warm-up: none, same, alternate or a policy: %s\n", err);
			bad = w;
		}
	}
	for (size_t i = 0; i < s->prof.n && !bad; i++) {
		const struct engine_profile *p0 = engine_profile_find(s->prof.v[i]);
		if (!p0) {
			fprintf(stderr, "prefixlb lab: unknown profile '%s' (known:", s->prof.v[i]);
			for (size_t k = 0; engine_profile_at(k); k++)
				fprintf(stderr, " %s", engine_profile_at(k)->name);
			fprintf(stderr, ")\n");
			bad = s->prof.v[i];
			break;
		}
		struct engine_profile pp = *p0;
		for (size_t k = 0; k < o->params.n && !bad; k++) {
			char kv[256];
			snprintf(kv, sizeof kv, "%s", o->params.v[k]);
			char *eq = strchr(kv, '=');
			int r = eq ? (*eq = '\0', engine_profile_set(&pp, kv, eq + 1)) : -3;
			if (r) {
				fprintf(stderr, "prefixlb lab: --param %s: %s\n", o->params.v[k],
					r == -3 ? "expected KEY=VALUE" : r == -1 ? "unknown profile field" : "bad value");
				bad = o->params.v[k];
			}
		}
		if (!bad && engine_profile_check(&pp, err, sizeof err)) {
			fprintf(stderr, "prefixlb lab: profile %s: %s\n", s->prof.v[i], err);
			bad = s->prof.v[i];
		}
	}
	for (size_t i = 0; i < s->ds.n && !bad; i++) {
		struct wl_gen g;
		if (wl_preset(s->ds.v[i], &g) && access(s->ds.v[i], R_OK)) {
			fprintf(stderr, "prefixlb lab: --dataset %s: neither a preset (seed, shared-system, hot, rag, chat) nor a "
					"readable file\n",
				s->ds.v[i]);
			bad = s->ds.v[i];
		}
	}
	for (size_t i = 0; i < s->conc.n && !bad; i++) {
		double c, r;
		char item[64];
		snprintf(item, sizeof item, "%s", s->conc.v[i]);
		char *at = strchr(item, '@');
		if (at)
			*at = '\0';
		if (num_ok("concurrency", item, 1, 1e7, 0, &c) || (at && num_ok("concurrency", at + 1, 1e-3, 1e6, 1, &r)))
			bad = s->conc.v[i];
	}
	if (!bad && (list_nums("request-rate", &s->rate, 1e-3, 1e6, 1) || list_nums("client-lag-ms", &s->lag, 0, 1e4, 0) ||
		     list_nums("time-scale", &s->scale, 0, 100, 0) || list_nums("replicas", &s->rep, 1, 100000, 0) ||
		     list_nums("num-prompts", &s->num, 1, 1e8, 0) || list_nums("max-conversations", &s->mc, 1, 1e8, 0) ||
		     list_nums("seed", &s->seed, 0, 9e18, 0) || list_nums("max-output-tokens", &s->cap, 0, 1e7, 0) ||
		     list_nums("request-timeout-s", &s->to, 0, 1e7, 0)))
		bad = "a number";
	if (o->live) {
		for (size_t i = 0; i < s->scale.n && !bad; i++)
			if (atof(s->scale.v[i]) < 0.1)
				bad = "time scale";
	}
	if (bad || !s->var.n || !s->mode.n || !s->conc.n || !s->pol.n || !s->prof.n || !s->warm.n || !s->ds.n) {
		if (!bad)
			fprintf(stderr, "prefixlb lab: an empty list\n");
		return -1;
	}
	return 0;
}

int lab_sweep_workloads(const struct lab_sweep *s, const struct lab_ctx *x, struct lab_workload **ws, size_t *n_ws)
{
	size_t n = *n_ws = s->ds.n * s->num.n * s->mc.n * s->seed.n;
	struct lab_workload *w = *ws = plb_calloc(n, sizeof *w);
	for (size_t wi = 0; wi < n; wi++) {
		size_t k = wi;
		size_t si = k % s->seed.n, mi = (k /= s->seed.n) % s->mc.n, ni = (k /= s->mc.n) % s->num.n, di = k / s->num.n;
		if (lab_workload_build(&w[wi], x, s->ds.v[di], atol(s->mc.v[mi]), atol(s->num.v[ni]), atol(s->seed.v[si])))
			return -1;
	}
	return 0;
}

size_t lab_sweep_jobs(const struct lab_sweep *s, const struct lab_opts *o, const struct lab_ctx *x,
		      const struct lab_workload *ws, const struct lab_point *ropt, struct lab_job **jobs_out)
{
	size_t n_inner = s->var.n * s->mode.n * s->rep.n * s->conc.n * s->pol.n * s->prof.n * s->rate.n * s->warm.n * s->lag.n *
			 s->scale.n * s->cap.n * s->to.n * s->adm.n * s->ten.n;
	size_t n_ws = s->ds.n * s->num.n * s->mc.n * s->seed.n;
	struct lab_job *jobs = *jobs_out = plb_calloc(n_ws * n_inner + 1, sizeof *jobs);
	size_t n_jobs = 0;
	for (size_t wi = 0; wi < n_ws; wi++) {
		size_t k = wi;
		size_t si = k % s->seed.n, mi = (k /= s->seed.n) % s->mc.n, ni = (k /= s->mc.n) % s->num.n, di = k / s->num.n;
		for (size_t ii = 0; ii < n_inner; ii++) {
			size_t q = ii;
			size_t tei = q % s->ten.n, adi = (q /= s->ten.n) % s->adm.n;
			q /= s->adm.n;
			size_t toi = q % s->to.n, capi = (q /= s->to.n) % s->cap.n, ti = (q /= s->cap.n) % s->scale.n,
			       li = (q /= s->scale.n) % s->lag.n, ki = (q /= s->lag.n) % s->warm.n, qi = (q /= s->warm.n) % s->rate.n,
			       fi = (q /= s->rate.n) % s->prof.n, pi = (q /= s->prof.n) % s->pol.n, ci = (q /= s->pol.n) % s->conc.n,
			       ri = (q /= s->conc.n) % s->rep.n, oi = (q /= s->rep.n) % s->mode.n, vi = (q /= s->mode.n) % s->var.n;
			const char *at = strchr(s->conc.v[ci], '@');
			int faithful = !strcmp(s->var.v[vi], "faithful"), sessions = !strcmp(s->mode.v[oi], "sessions");
			if ((at && qi) || (faithful && li) || (sessions && ki))
				continue; /* the item has its rate / the faithful client no lag / sessions no warm-up */
			struct lab_point *p = &jobs[n_jobs].p;
			double rate;
			num_ok("request-rate", at ? at + 1 : s->rate.v[qi], 1e-3, 1e6, 1, &rate);
			int reps = atoi(s->rep.v[ri]);
			*p = (struct lab_point){
				.variant = faithful ? "faithful" : s->var.v[vi],
				.policy = s->pol.v[pi],
				.workload = s->mode.v[oi],
				.profile = s->prof.v[fi],
				.dataset = s->ds.v[di],
				.warm_mode = sessions ? "none" : s->warm.v[ki],
				.replicas = reps,
				.conc = o->concs ? atol(s->conc.v[ci]) : atol(s->conc.v[ci]) * reps,
				.rate = rate,
				.max_conv = atol(s->mc.v[mi]),
				.seed = atol(s->seed.v[si]),
				.num = atol(s->num.v[ni]),
				.floor_ms = faithful ? 0 : !strcmp(s->var.v[vi], "as-published") ? 7.7 : atof(s->var.v[vi]),
				.lag_ms = faithful ? 0 : atof(s->lag.v[li]),
				.think_s = sessions ? o->think_s : 0,
				.scale = o->live ? atof(s->scale.v[ti]) : 0,
				.output_cap = atol(s->cap.v[capi]),
				.timeout_s = atof(s->to.v[toi]),
				.ignore_eos = o->ignore_eos,
				.routers = ropt->routers,
				.router_assign = ropt->router_assign,
				.orca = ropt->orca,
				.admission = s->adm.v[adi],
				.tenants = strcmp(s->ten.v[tei], "-") ? s->ten.v[tei] : NULL,
			};
			jobs[n_jobs].x = x;
			jobs[n_jobs].w = &ws[wi];
			n_jobs++;
		}
	}
	return n_jobs;
}
