/* lab_report.c: what the lab prints and writes (see lab.h): a vLLM-style
 * result block per run, tables next to the seed's published numbers,
 * results.json and gnuplot plots (with the seed's published values drawn as
 * points where a run has the seed's setup). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab.h"

/* The seed's published table (docs/seed.md): conc, rate, strategy, duration,
 * total tok/s, TTFT mean/median/p99, TPOT median, ITL median (ms). */
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

/* The seed's published row for a run of the seed's setup (8 replicas of the
 * L4 profile, 8,000 prompts of its data set shape from 800 pairs, fork), or NULL. */
const struct seed_row *lab_seed_row(const struct lab_point *p)
{
	if (p->replicas != 8 || p->max_conv != 800 || p->num != 8000 || strcmp(p->profile, "l4-llama3.1-8b") ||
	    strcmp(p->dataset, "seed") || strcmp(p->workload, "fork") || p->output_cap || p->timeout_s)
		return NULL;
	for (size_t i = 0; i < sizeof seed_table / sizeof *seed_table; i++)
		if (seed_table[i].conc == p->conc && seed_table[i].rate == p->rate && !strcmp(seed_table[i].policy, p->policy))
			return &seed_table[i];
	return NULL;
}

void lab_rate_str(double rate, char *out, size_t cap)
{
	if (isfinite(rate))
		snprintf(out, cap, "%g", rate);
	else
		snprintf(out, cap, "inf");
}

void lab_label(const struct lab_point *p, char *out, size_t cap)
{
	char r[32];
	lab_rate_str(p->rate, r, sizeof r);
	int k = snprintf(out, cap, "%s %s, %ld@%s, %d replicas", p->variant, p->policy, p->conc, r, p->replicas);
	const char *base = strrchr(p->dataset, '/');
#define MORE(...)                                                              \
	do {                                                                   \
		if (k > 0 && (size_t)k < cap)                                  \
			k += snprintf(out + k, cap - (size_t)k, __VA_ARGS__); \
	} while (0)
	if (strcmp(p->dataset, "seed"))
		MORE(", %s", base ? base + 1 : p->dataset);
	if (strcmp(p->profile, "l4-llama3.1-8b"))
		MORE(", %s", p->profile);
	if (strcmp(p->workload, "fork"))
		MORE(", %s", p->workload);
	MORE(", %ld pairs, %ld prompts, seed %ld", p->max_conv, p->num, p->seed);
	if (p->scale > 0)
		MORE(", time scale %g", p->scale);
#undef MORE
}

/* Admission, goodput and tenants, under a row or a block, when there are any. */
void lab_print_overload(const struct lab_result *r)
{
	int adm = r->p.admission && strncmp(r->p.admission, "off", 3);
	if (adm || r->m.has_goodput || r->rejected)
		printf("    429: %ld (full %llu, wait %llu, ttft %llu), waited then served %llu, goodput %.2f req/s\n",
		       r->rejected, (unsigned long long)r->adm.outcomes[ADMIT_FULL],
		       (unsigned long long)r->adm.outcomes[ADMIT_EXPIRED], (unsigned long long)r->adm.outcomes[ADMIT_LATE],
		       (unsigned long long)r->adm.outcomes[ADMIT_WAITED], r->m.request_goodput);
	for (int t = 0; t < r->n_ten; t++)
		printf("    tenant %-10s ok %6ld failed %6ld (429 %6ld) TTFT mean %8.0f p99 %8.0f ms, goodput %.2f req/s\n",
		       r->ten[t].name, r->ten[t].ok, r->ten[t].failed, r->ten[t].rejected, r->ten[t].ttft_mean,
		       r->ten[t].ttft_p99, r->ten[t].goodput);
}

void lab_print_block(const struct lab_result *r)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	stats_format(&r->m, (1u << M_TTFT) | (1u << M_TPOT) | (1u << M_ITL), &b);
	char lab[512];
	lab_label(&r->p, lab, sizeof lab);
	printf("\n%s, %s (times in simulated seconds)\n%.*s", lab, r->p.scale > 0 ? "live" : "virtual", (int)b.len,
	       b.data ? b.data : "");
	printf("%-40s %-10.4f\n", "Prefix cache hit rate:", r->hit_rate);
	printf("%-40s %-10.3f\n", "Load spread (max/mean per replica):", r->load_spread);
	if (r->timed_out)
		printf("%-40s %-10ld\n", "Timed out (not counted):", r->timed_out);
	lab_print_overload(r);
	if (r->p.scale <= 0)
		printf("%-40s %-10llu\n", "Preemptions:", (unsigned long long)r->preemptions);
	buf_free(&b);
}

/* Axes of a sweep, for labels and plots. */
const char *const lab_ax_name[AX_N] = {"concurrency", "max conversations", "replicas", "num prompts", "rate",
					   "seed", "client lag ms", "time scale", "output cap", "timeout s",
					   "profile", "data set", "warm-up", "workload", "admission", "tenants"};

double lab_axis_num(const struct lab_point *p, int ax)
{
	switch (ax) {
	case AX_CONC: return (double)p->conc;
	case AX_MCONV: return (double)p->max_conv;
	case AX_REPLICAS: return p->replicas;
	case AX_NUM: return (double)p->num;
	case AX_RATE: return isfinite(p->rate) ? p->rate : 1e300;
	case AX_SEED: return (double)p->seed;
	case AX_LAG: return p->lag_ms;
	case AX_SCALE: return p->scale;
	case AX_CAP: return (double)p->output_cap;
	case AX_TIMEOUT: return p->timeout_s;
	default: return 0;
	}
}

const char *lab_axis_str(const struct lab_point *p, int ax)
{
	if (ax == AX_ADMIT)
		return p->admission ? p->admission : "off";
	if (ax == AX_TENANTS)
		return p->tenants ? p->tenants : "-";
	return ax == AX_PROFILE ? p->profile : ax == AX_DATASET ? p->dataset : ax == AX_WARM ? p->warm_mode : p->workload;
}

int lab_axis_same(const struct lab_point *a, const struct lab_point *b, int ax)
{
	if (ax >= AX_PROFILE)
		return !strcmp(lab_axis_str(a, ax), lab_axis_str(b, ax));
	return lab_axis_num(a, ax) == lab_axis_num(b, ax);
}

/* What varies among the runs of one variant (bit per axis). */
unsigned lab_varying(const struct lab_result *runs, size_t n, const char *variant)
{
	unsigned v = 0;
	const struct lab_result *first = NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(runs[i].p.variant, variant))
			continue;
		if (!first)
			first = &runs[i];
		for (int ax = 0; ax < AX_N; ax++)
			if (!lab_axis_same(&first->p, &runs[i].p, ax))
				v |= 1u << ax;
	}
	return v;
}

/* The run column: the values of the axes that vary (but concurrency and rate,
 * which have their own column). */
static void run_col(const struct lab_point *p, unsigned vary, char *out, size_t cap)
{
	size_t k = 0;
	out[0] = '\0';
	for (int ax = AX_MCONV; ax < AX_N && k < cap; ax++) {
		if (!(vary & (1u << ax)) || ax == AX_RATE)
			continue;
		int w;
		if (ax >= AX_PROFILE) {
			const char *s = lab_axis_str(p, ax), *b = strrchr(s, '/');
			w = snprintf(out + k, cap - k, "%s%s", k ? " " : "", b ? b + 1 : s);
		} else {
			static const char *const pre[] = {"", "pairs=", "replicas=", "n=", "", "seed=", "lag=", "x", "cap=", "timeout="};
			w = snprintf(out + k, cap - k, "%s%s%g", k ? " " : "", pre[ax], lab_axis_num(p, ax));
		}
		if (w > 0)
			k += (size_t)w;
	}
}

size_t lab_variants(const struct lab_result *runs, size_t n, const char **out, size_t max)
{
	size_t nv = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k;
		for (k = 0; k < nv && strcmp(out[k], runs[i].p.variant); k++)
			;
		if (k == nv && nv < max)
			out[nv++] = runs[i].p.variant;
	}
	return nv;
}

void lab_variant_desc(const struct lab_point *p, int lag_varies, char *out, size_t cap)
{
	char lag[64];
	if (lag_varies)
		snprintf(lag, sizeof lag, "the client lag of each run");
	else
		snprintf(lag, sizeof lag, "%g ms lag", p->lag_ms);
	if (!strcmp(p->variant, "as-published"))
		snprintf(out, cap, "seed's client: %g ms dispatch floor + %s", p->floor_ms, lag);
	else if (!strcmp(p->variant, "faithful"))
		snprintf(out, cap, "no dispatch floor, no lag: a client that keeps up");
	else
		snprintf(out, cap, "%g ms dispatch floor + %s", p->floor_ms, lag);
}

/* Prints text wrapped at width columns, continuation lines indented by two. */
static void wrap_print(const char *text, int width)
{
	const char *s = text;
	int first = 1;
	while (*s) {
		int room = width - (first ? 0 : 2), len = (int)strlen(s), cut = len;
		if (len > room) {
			for (cut = room; cut > 0 && s[cut] != ' '; cut--)
				;
			if (cut == 0)
				cut = room;
		}
		printf("%s%.*s\n", first ? "" : "  ", cut, s);
		s += cut;
		while (*s == ' ')
			s++;
		first = 0;
	}
}

/* The legend: every column and row label of the tables that follow. */
static void print_legend(const struct lab_result *runs, size_t n, int any_seed)
{
	static const char *const known[][2] = {
		{"random", "a random replica per request (the seed's Kubernetes Service, its \"round robin\")"},
		{"round-robin", "each replica in turn"},
		{"least-load", "the replica with the fewest requests in flight (KubeAI's LeastLoad)"},
		{"prefix-hash", "consistent hashing with bounded loads on the prompt's first 100 characters (KubeAI's "
				"PrefixHash)"},
	};
	char text[2048];
	int k = snprintf(text, sizeof text, "rows: one per run; policy:");
	int said = 0;
	for (size_t q = 0; q < sizeof known / sizeof *known; q++) {
		size_t len = strlen(known[q][0]);
		for (size_t i = 0; i < n; i++)
			if (!strncmp(runs[i].p.policy, known[q][0], len) && (!runs[i].p.policy[len] || runs[i].p.policy[len] == ':')) {
				k += snprintf(text + k, sizeof text - (size_t)k, "%s %s = %s", said++ ? ";" : "", known[q][0],
					      known[q][1]);
				break;
			}
	}
	if (any_seed)
		snprintf(text + k, sizeof text - (size_t)k,
			 ". Under a run of the seed's setup: seed = the seed's published figures (no hit rate published), "
			 "ours/seed = our figure divided by the seed's.");
	printf("\n");
	wrap_print("columns: conc@rate = max concurrency @ request rate (req/s); dur s = benchmark duration; tok/s = "
		   "total token throughput (input + output); TTFT = time to first token, mean / median / p99; TPOT med = "
		   "median time per output token after the first; ITL med = median inter-token latency; hit = prefix-cache "
		   "hit rate (cached / prompt tokens). Times in ms of simulated time.",
		   116);
	wrap_print(text, 116);
}

void lab_print_tables(const struct lab_result *runs, size_t n, int seedlike, int live, const char *fleet_note)
{
	const char *variants[16];
	size_t nv = lab_variants(runs, n, variants, 16);
	int any_seed = 0;
	for (size_t i = 0; i < n && seedlike; i++)
		any_seed |= lab_seed_row(&runs[i].p) != NULL;
	if (n)
		print_legend(runs, n, any_seed);
	for (size_t v = 0; v < nv; v++) {
		const char *variant = variants[v];
		unsigned vary = lab_varying(runs, n, variant);
		const struct lab_result *r0 = NULL;
		for (size_t i = 0; i < n && !r0; i++)
			if (!strcmp(runs[i].p.variant, variant))
				r0 = &runs[i];
		char desc[256];
		lab_variant_desc(&r0->p, (vary >> AX_LAG) & 1, desc, sizeof desc);
		printf("\n== %s client (%s), %s\n", variant, desc, live ? "live over HTTP, times scaled back" : "virtual time");
		printf("   %d replicas of %s, %s workload\n   fleet: %s\n", r0->p.replicas, r0->p.profile, r0->p.workload,
		       fleet_note);
		if (vary & ~((1u << AX_CONC) | (1u << AX_RATE))) {
			printf("run column: the settings that vary:");
			for (int ax = AX_MCONV; ax < AX_N; ax++)
				if ((vary & (1u << ax)) && ax != AX_RATE)
					printf(" %s", lab_ax_name[ax]);
			printf("\n");
		}
		int lw = 0;
		for (size_t i = 0; i < n; i++) {
			char l[256];
			run_col(&runs[i].p, vary, l, sizeof l);
			if (!strcmp(runs[i].p.variant, variant) && (int)strlen(l) > lw)
				lw = (int)strlen(l);
		}
		if (lw && lw < 3)
			lw = 3;
		const char *sep = lw ? " " : "";
		printf("%-10s %-12s %-*s%s%7s %8s %26s %8s %7s %6s\n", "conc@rate", "policy", lw, lw ? "run" : "", sep,
		       "dur s", "tok/s", "TTFT mean / median / p99", "TPOT med", "ITL med", "hit");
		for (size_t i = 0; i < n; i++) {
			const struct lab_result *o = &runs[i];
			if (strcmp(o->p.variant, variant))
				continue;
			const struct bench_metrics *m = &o->m;
			char cr[32], rs[16], l[256];
			lab_rate_str(o->p.rate, rs, sizeof rs);
			snprintf(cr, sizeof cr, "%ld@%s", o->p.conc, rs);
			run_col(&o->p, vary, l, sizeof l);
			printf("%-10s %-12.12s %-*s%s%7.1f %8.0f %8.0f / %6.0f / %7.0f %8.1f %7.1f %6.3f\n", cr, o->p.policy, lw,
			       l, sep, m->duration, m->total_token_throughput, m->m[M_TTFT].mean, m->m[M_TTFT].median,
			       m->m[M_TTFT].pct[0], m->m[M_TPOT].median, m->m[M_ITL].median, o->hit_rate);
			lab_print_overload(o);
			const struct seed_row *s = seedlike ? lab_seed_row(&o->p) : NULL;
			if (s)
				printf("%-10s %-12s %-*s%s%7.1f %8.0f %8.0f / %6.0f / %7.0f %8.1f %7.1f\n"
				       "%-10s %-12s %-*s%s%7.2f %8.2f %8.2f / %6.2f / %7.2f %8.2f %7.2f\n",
				       "", "  seed", lw, "", sep, s->dur, s->tps, s->ttft_mean, s->ttft_med, s->ttft_p99,
				       s->tpot_med, s->itl_med, "", "  ours/seed", lw, "", sep, m->duration / s->dur,
				       m->total_token_throughput / s->tps, m->m[M_TTFT].mean / s->ttft_mean,
				       m->m[M_TTFT].median / s->ttft_med, m->m[M_TTFT].pct[0] / s->ttft_p99,
				       m->m[M_TPOT].median / s->tpot_med, m->m[M_ITL].median / s->itl_med);
		}
		/* headline ratios: least-load TTFT / prefix-hash TTFT, prefix-hash tok/s / least-load tok/s */
		int said = 0;
		for (size_t i = 0; i < n; i++) {
			const struct lab_result *a = &runs[i];
			if (strcmp(a->p.variant, variant) || strcmp(a->p.policy, "least-load"))
				continue;
			for (size_t k = 0; k < n; k++) {
				const struct lab_result *b = &runs[k];
				if (strcmp(b->p.variant, variant) || strcmp(b->p.policy, "prefix-hash"))
					continue;
				int same = 1;
				for (int ax = 0; ax < AX_N && same; ax++)
					same = lab_axis_same(&a->p, &b->p, ax);
				if (!same)
					continue;
				if (!said++)
					printf("headline, prefix-hash against least-load (the seed's with and without prefix-aware "
					       "routing):\n  mean TTFT least-load / prefix-hash, total tok/s prefix-hash / least-load\n");
				const struct seed_row *sa = seedlike ? lab_seed_row(&a->p) : NULL, *sb = seedlike ? lab_seed_row(&b->p) : NULL;
				char l[256], rs[16];
				run_col(&a->p, vary, l, sizeof l);
				lab_rate_str(a->p.rate, rs, sizeof rs);
				char cr[300];
				snprintf(cr, sizeof cr, "%ld@%s%s%s:", a->p.conc, rs, *l ? " " : "", l);
				printf("  %-10s TTFT x%-6.1f throughput x%.2f", cr,
				       a->m.m[M_TTFT].mean / b->m.m[M_TTFT].mean,
				       b->m.total_token_throughput / a->m.total_token_throughput);
				if (sa && sb)
					printf("   (seed: x%.1f, x%.2f)", sa->ttft_mean / sb->ttft_mean, sb->tps / sa->tps);
				printf("\n");
			}
		}
	}
}

static void set_num(json_t *o, const char *k, double v)
{
	json_object_set_new(o, k, isfinite(v) ? json_real(v) : json_string("inf"));
}

int lab_write_json(const char *dir, const struct lab_result *runs, size_t n, const char *scenario, int live)
{
	char path[1100];
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/results%s.json", dir, live ? "-live" : "");
	json_t *root = json_object(), *arr = json_array();
	json_object_set_new(root, "scenario", json_string(scenario));
	json_object_set_new(root, "mode", json_string(live ? "live" : "virtual"));
	for (size_t i = 0; i < n; i++) {
		const struct lab_result *r = &runs[i];
		const struct bench_metrics *m = &r->m;
		json_t *o = json_object();
		json_object_set_new(o, "variant", json_string(r->p.variant));
		json_object_set_new(o, "policy", json_string(r->p.policy));
		json_object_set_new(o, "replicas", json_integer(r->p.replicas));
		json_object_set_new(o, "max_concurrency", json_integer(r->p.conc));
		set_num(o, "request_rate", r->p.rate);
		json_object_set_new(o, "seed", json_integer(r->p.seed));
		json_object_set_new(o, "max_conversations", json_integer(r->p.max_conv));
		json_object_set_new(o, "completed", json_integer(m->completed));
		json_object_set_new(o, "failed", json_integer(m->failed));
		json_object_set_new(o, "timed_out", json_integer(r->timed_out));
		json_object_set_new(o, "rejected", json_integer(r->rejected));
		json_object_set_new(o, "admission", json_string(r->p.admission ? r->p.admission : "off"));
		if (r->m.has_goodput)
			set_num(o, "request_goodput", r->m.request_goodput);
		for (int t = 0; t < r->n_ten; t++) {
			char key[96];
			snprintf(key, sizeof key, "tenant_%s_p99_ttft_ms", r->ten[t].name);
			set_num(o, key, r->ten[t].ttft_p99);
			snprintf(key, sizeof key, "tenant_%s_completed", r->ten[t].name);
			json_object_set_new(o, key, json_integer(r->ten[t].ok));
			snprintf(key, sizeof key, "tenant_%s_rejected", r->ten[t].name);
			json_object_set_new(o, key, json_integer(r->ten[t].rejected));
		}
		set_num(o, "duration", m->duration);
		json_object_set_new(o, "total_input_tokens", json_integer(m->total_input));
		json_object_set_new(o, "total_output_tokens", json_integer(m->total_output));
		set_num(o, "request_throughput", m->request_throughput);
		set_num(o, "output_throughput", m->output_throughput);
		set_num(o, "total_token_throughput", m->total_token_throughput);
		static const char *const names[3] = {"ttft", "tpot", "itl"};
		for (int k = 0; k < 3; k++) {
			char key[64];
			snprintf(key, sizeof key, "mean_%s_ms", names[k]);
			set_num(o, key, m->m[k].mean);
			snprintf(key, sizeof key, "median_%s_ms", names[k]);
			set_num(o, key, m->m[k].median);
			snprintf(key, sizeof key, "p99_%s_ms", names[k]);
			set_num(o, key, m->m[k].pct[0]);
		}
		set_num(o, "cache_hit_rate", r->hit_rate);
		json_object_set_new(o, "preemptions", json_integer((json_int_t)r->preemptions));
		set_num(o, "load_spread", r->load_spread);
		set_num(o, "cpu_seconds", r->cpu_s);
		set_num(o, "dispatch_floor_ms", r->p.floor_ms);
		set_num(o, "client_lag_ms", r->p.lag_ms);
		json_object_set_new(o, "warm_up", json_string(r->warm));
		json_object_set_new(o, "profile", json_string(r->p.profile));
		if (r->p.fleet)
			json_object_set_new(o, "fleet", json_string(r->p.fleet));
		if (r->p.churn)
			json_object_set_new(o, "fleet_changes", json_string(r->p.churn));
		json_object_set_new(o, "num_prompts", json_integer(r->p.num));
		json_object_set_new(o, "workload", json_string(r->p.workload));
		set_num(o, "think_time_s", r->p.think_s);
		json_object_set_new(o, "max_output_tokens", json_integer(r->p.output_cap));
		set_num(o, "request_timeout_s", r->p.timeout_s);
		json_object_set_new(o, "dataset", json_string(r->p.dataset));
		if (live)
			set_num(o, "time_scale", r->p.scale);
		const struct seed_row *sr = lab_seed_row(&r->p);
		if (sr) {
			json_t *s = json_object();
			set_num(s, "duration", sr->dur);
			set_num(s, "total_token_throughput", sr->tps);
			set_num(s, "mean_ttft_ms", sr->ttft_mean);
			set_num(s, "median_ttft_ms", sr->ttft_med);
			set_num(s, "p99_ttft_ms", sr->ttft_p99);
			set_num(s, "median_tpot_ms", sr->tpot_med);
			set_num(s, "median_itl_ms", sr->itl_med);
			json_object_set_new(o, "seed_published", s);
		}
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "runs", arr);
	int rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
	json_decref(root);
	if (rc)
		fprintf(stderr, "prefixlb lab: %s: cannot write\n", path);
	else
		printf("\nwrote %s\n", path);
	return rc ? -1 : 0;
}

