/* bench.c: `prefixlb bench`, a benchmark client that speaks vLLM's
 * benchmark_serving.py: same flags, same printed block, same saved JSON.
 *
 * A shell: the client (arrivals, semaphore, lag, sessions, timeouts,
 * recording) is src/core/client.c, the same code the lab's simulator drives in
 * virtual time; src/net/clientio.c drives it over HTTP; src/core/report.c
 * writes what it measured. As vLLM's client, one test request runs before the
 * clock starts and the run stops there if it fails. Exit status: 0 when at
 * least one request succeeded, 1 when none did, 2 on a usage error. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../core/client.h"
#include "../core/mem.h"
#include "../core/prompt.h"
#include "../core/report.h"
#include "../net/clientio.h"
#include "cmd.h"
#include "opts.h"

struct bench_opts {
	const char *base_url, *endpoint, *backend, *model, *dataset_name, *dataset_path, *mode, *save_requests;
	const char *result_dir, *result_filename, *percentile_metrics, *metric_percentiles, *goodput, *tokenizer;
	const char *rate_s, *template, *tenants;
	long num_prompts, max_conversations, seed, max_concurrency, max_output_tokens;
	double burstiness, floor_ms, lag_ms, think_s, timeout_s, abort_fraction, progress_s;
	int ignore_eos, save_result, disable_tqdm, no_initial_test;
};

static const char usage[] =
	"usage: prefixlb bench --base-url http://HOST:PORT --model NAME --dataset-path FILE [options]\n"
	"  A benchmark client compatible with vLLM's benchmark_serving.py (same flags, block and JSON).\n"
	"  --multi-turn-mode fork (the seed's: prompts from the first --max-conversations pairs), sessions\n"
	"  (chat sessions: each turn sends the whole history with the model's own answers; with\n"
	"  --request-rate inf, --max-concurrency client threads each run one conversation after another),\n"
	"  or single (upstream vLLM's ShareGPT sampling). Exit status 1 when no request succeeded.\n";

/* --metric-percentiles "50,90,99" */
static size_t parse_percentiles(const char *s, double *out)
{
	size_t n = 0;
	char tmp[256];
	snprintf(tmp, sizeof tmp, "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(tmp, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
		out[n++] = atof(t);
	return n;
}

static unsigned parse_selected(const char *s)
{
	static const char *const names[M_COUNT] = {"ttft", "tpot", "itl", "e2el"};
	unsigned m = 0;
	for (int k = 0; k < M_COUNT; k++)
		if (strstr(s, names[k]))
			m |= 1u << k;
	return m;
}

/* vLLM's --goodput KEY:VALUE ... (ms); -1 with a message on a bad item. */
static int parse_goodput(const char *s, struct goodput_slo *slo)
{
	*slo = (struct goodput_slo){-1, -1, -1};
	char tmp[256];
	snprintf(tmp, sizeof tmp, "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(tmp, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
		char *c = strchr(t, ':'), *end;
		double v = c ? strtod(c + 1, &end) : 0;
		if (!c || end == c + 1 || *end || v < 0) {
			fprintf(stderr, "prefixlb bench: --goodput '%s': expected KEY:VALUE with KEY ttft, tpot or e2el\n", t);
			return -1;
		}
		*c = 0;
		if (!strcmp(t, "ttft"))
			slo->ttft_ms = v;
		else if (!strcmp(t, "tpot"))
			slo->tpot_ms = v;
		else if (!strcmp(t, "e2el"))
			slo->e2el_ms = v;
		else {
			fprintf(stderr, "prefixlb bench: --goodput: unknown metric '%s' (ttft, tpot, e2el)\n", t);
			return -1;
		}
	}
	return 0;
}

/* "http://HOST:PORT[/prefix]" (HOST an IPv4 address or localhost). */
static int parse_url(const char *u, const char *endpoint, char *host, size_t hn, int *port, char *path, size_t pn)
{
	if (strncmp(u, "http://", 7) != 0)
		return -1;
	u += 7;
	const char *colon = strchr(u, ':'), *slash = strchr(u, '/');
	if (!colon || (slash && slash < colon))
		return -1;
	snprintf(host, hn, "%.*s", (int)(colon - u), u);
	if (!strcmp(host, "localhost"))
		snprintf(host, hn, "127.0.0.1");
	*port = atoi(colon + 1);
	const char *prefix = slash ? slash : "";
	size_t pl = strlen(prefix);
	while (pl && prefix[pl - 1] == '/')
		pl--;
	snprintf(path, pn, "%.*s%s", (int)pl, prefix, endpoint);
	struct sockaddr_in a;
	return *port > 0 && *port < 65536 && uv_ip4_addr(host, *port, &a) == 0 ? 0 : -1;
}

/* vLLM takes --goodput ttft:8 tpot:2.5 (several words): join them into one. */
static char **join_goodput(int argc, char **argv, int *out_argc)
{
	char **v = plb_calloc((size_t)argc + 1, sizeof *v);
	int n = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--goodput") && i + 1 < argc) {
			struct buf b;
			buf_init(&b, 4096);
			while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
				buf_puts(&b, b.len ? " " : "");
				buf_puts(&b, argv[++i]);
			}
			v[n++] = plb_strdup("--goodput");
			v[n++] = b.data ? buf_steal(&b, NULL) : plb_strdup("");
			buf_free(&b);
			continue;
		}
		v[n++] = plb_strdup(argv[i]);
	}
	*out_argc = n;
	return v;
}

static void oom(size_t n)
{
	fprintf(stderr, "prefixlb: out of memory (%zu bytes)\n", n);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int write_file(const char *path, const struct buf *b)
{
	FILE *f = fopen(path, "w");
	if (!f || fwrite(b->data ? b->data : "", 1, b->len, f) != b->len || fclose(f)) {
		fprintf(stderr, "prefixlb bench: %s: cannot write\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	return 0;
}

/* The printed block, what we add to it, and the files asked for. */
static int report(const struct bench_opts *o, const struct client *c, const struct clientio_stats *io, double rate,
		  const char *backend)
{
	double pcts[16];
	size_t np = parse_percentiles(o->metric_percentiles, pcts);
	struct goodput_slo slo;
	if (o->goodput && parse_goodput(o->goodput, &slo))
		return -1;
	struct bench_metrics m;
	client_metrics(c, 0, pcts, np, o->goodput ? &slo : NULL, &m);
	struct buf out;
	buf_init(&out, 1 << 24);
	stats_format(&m, parse_selected(o->percentile_metrics), &out);
	report_extras(&out, c, &m, o->max_concurrency);
	if (o->abort_fraction > 0) {
		struct client_stats cs;
		client_get_stats(c, &cs);
		buf_printf(&out, "%-40s %-10ld\n", "Aborted by the client (not counted):", cs.aborted);
		static const char *const where[] = {"", "in the request head", "in the request body",
						    "before the first token", "mid-stream"};
		for (int k = 1; k <= 4; k++)
			buf_printf(&out, "  %-38s %-10ld\n", where[k], io->abort_kinds[k]);
	}
	if (io->n_lags) {
		qsort(io->lags_us, io->n_lags, sizeof *io->lags_us, cmp_dbl);
		buf_printf(&out, "%-40s %-10.1f\n", "Client timing error p50 (us):", stats_percentile(io->lags_us, io->n_lags, 50));
		buf_printf(&out, "%-40s %-10.1f\n", "Client timing error p99 (us):", stats_percentile(io->lags_us, io->n_lags, 99));
		buf_printf(&out, "%-40s %-10.1f\n", "Client timing error max (us):", io->lags_us[io->n_lags - 1]);
	}
	fwrite(out.data, 1, out.len, stdout);
	fflush(stdout);
	buf_free(&out);
	char date[32];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
	int rc = 0;
	if (o->save_result) {
		char path[2048], name[1024];
		if (o->result_filename) {
			snprintf(name, sizeof name, "%s", o->result_filename);
		} else { /* vLLM's name: {backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json */
			struct buf r;
			buf_init(&r, 64);
			if (isfinite(rate))
				report_py_float(&r, rate);
			else
				buf_puts(&r, "inf");
			const char *base = strrchr(o->model, '/');
			char conc[48] = "";
			if (o->max_concurrency > 0)
				snprintf(conc, sizeof conc, "-concurrency%ld", o->max_concurrency);
			snprintf(name, sizeof name, "%s-%sqps%s-%s-%s.json", backend, r.data, conc, base ? base + 1 : o->model,
				 date);
			buf_free(&r);
		}
		if (name[0] == '/' || !o->result_dir)
			snprintf(path, sizeof path, "%s", name);
		else
			snprintf(path, sizeof path, "%s/%s", o->result_dir, name);
		struct report_meta meta = {
			.date = date,
			.backend = backend,
			.model = o->model,
			.tokenizer_id = o->tokenizer ? o->tokenizer : o->model,
			.num_prompts = o->num_prompts,
			.request_rate = rate,
			.burstiness = o->burstiness,
			.max_concurrency = o->max_concurrency,
			.selected = parse_selected(o->percentile_metrics),
			.goodput = o->goodput != NULL,
		};
		struct buf j;
		buf_init(&j, (size_t)1 << 34);
		report_vllm_json(&j, &meta, c, &m);
		if (write_file(path, &j) == 0)
			fprintf(stderr, "saved %s\n", path);
		else
			rc = -1;
		buf_free(&j);
	}
	if (o->save_requests) {
		struct buf csv;
		buf_init(&csv, (size_t)1 << 34);
		struct client_stats cs;
		client_get_stats(c, &cs);
		report_csv(&csv, c, cs.t_first);
		rc |= write_file(o->save_requests, &csv);
		buf_free(&csv);
	}
	return rc ? -1 : m.completed > 0 ? 0 : 1;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o = {
		.base_url = "http://127.0.0.1:8000",
		.backend = "vllm",
		.model = "llama-3.1-8b-instruct-fp8-l4",
		.dataset_name = "sharegpt",
		.mode = "fork",
		.percentile_metrics = "ttft,tpot,itl",
		.metric_percentiles = "99",
		.num_prompts = 1000,
		.burstiness = 1.0,
		.rate_s = "inf",
		.template = "llama-3.1",
	};
	const struct opt tab[] = {
		{"base-url", OPT_STR, &o.base_url, "server or router, http://HOST:PORT", 0, 0},
		{"endpoint", OPT_STR, &o.endpoint, "path (default /v1/completions; chat: /v1/chat/completions)", 0, 0},
		{"backend", OPT_STR, &o.backend, "vllm | openai (completions) | openai-chat (chat completions)", 0, 0},
		{"model", OPT_STR, &o.model, "model name sent in requests", 0, 0},
		{"tokenizer", OPT_STR, &o.tokenizer, "tokenizer.json for counting (default data/tokenizer.json)", 0, 0},
		{"chat-template", OPT_STR, &o.template, "llama-3.1 | llama-3: how the server renders chat (counting)", 0, 0},
		{"dataset-name", OPT_STR, &o.dataset_name, "sharegpt (--dataset-path) or synthetic (prefixlb dataset's seed preset)", 0, 0},
		{"dataset-path", OPT_STR, &o.dataset_path, "ShareGPT JSON file", 0, 0},
		{"num-prompts", OPT_INT, &o.num_prompts, "requests to send (sessions: most turns in all)", 1, 1e9},
		{"max-conversations", OPT_INT, &o.max_conversations,
		 "fork: the first N pairs; sessions: the first N conversations; 0: all", 0, 1e9},
		{"multi-turn-mode", OPT_STR, &o.mode, "fork | sessions | single", 0, 0},
		{"seed", OPT_INT, &o.seed, "random seed (shuffle, arrivals)", 0, 0},
		{"request-rate", OPT_STR, &o.rate_s, "requests (sessions) per second, or inf: all at once / closed loop", 0, 0},
		{"burstiness", OPT_DBL, &o.burstiness, "gamma shape of the arrivals (1 = Poisson)", 1e-3, 1e3},
		{"max-concurrency", OPT_INT, &o.max_concurrency,
		 "most requests in flight; sessions at rate inf: client threads; 0: unlimited", 0, 1e7},
		{"dispatch-floor-ms", OPT_DBL, &o.floor_ms, "at least this long between dispatches (seed: ~7.7)", 0, 1e6},
		{"connect-lag-ms", OPT_DBL, &o.lag_ms,
		 "send a request this long after its clock starts (emulates a lagging client)", 0, 1e6},
		{"think-time-s", OPT_DBL, &o.think_s, "sessions: pause before each next turn", 0, 1e6},
		{"max-output-tokens", OPT_INT, &o.max_output_tokens,
		 "cap every answer: max_tokens = min(N, the reference answer's tokens); 0: no cap", 0, 1e7},
		{"request-timeout-s", OPT_DBL, &o.timeout_s,
		 "abandon a request running this long (counted apart; a session ends); 0: never", 0, 1e7},
		{"abort-fraction", OPT_DBL, &o.abort_fraction,
		 "abandon this fraction of requests at a random point (head, body, before or after the first token)", 0, 1},
		{"percentile-metrics", OPT_STR, &o.percentile_metrics, "ttft,tpot,itl[,e2el]", 0, 0},
		{"metric-percentiles", OPT_STR, &o.metric_percentiles, "e.g. 50,90,99", 0, 0},
		{"goodput", OPT_STR, &o.goodput, "SLOs in ms, e.g. ttft:500 tpot:50 (vLLM's form)", 0, 0},
		{"tenants", OPT_STR, &o.tenants,
		 "NAME:WEIGHT,...: each request (session) is one tenant's, sent as x-prefixlb-tenant; per-tenant lines", 0,
		 0},
		{"ignore-eos", OPT_BOOL, &o.ignore_eos, "send ignore_eos", 0, 0},
		{"save-result", OPT_BOOL, &o.save_result, "write the result JSON (vLLM's keys)", 0, 0},
		{"result-dir", OPT_STR, &o.result_dir, "where --save-result writes (default .)", 0, 0},
		{"result-filename", OPT_STR, &o.result_filename, "file name for --save-result", 0, 0},
		{"save-requests", OPT_STR, &o.save_requests, "per-request CSV file", 0, 0},
		{"no-initial-test", OPT_BOOL, &o.no_initial_test, "skip vLLM's single test request before the clock", 0, 0},
		{"disable-tqdm", OPT_BOOL, &o.disable_tqdm, "no progress bar", 0, 0},
		{"progress-interval-s", OPT_DBL, &o.progress_s,
		 "a progress line on stderr every N s, terminal or not, instead of the bar (for scripts; 0: off)", 0, 86400},
		{0},
	};
	plb_set_oom_handler(oom);
	int jargc;
	char **jargv = join_goodput(argc, argv, &jargc);
	int rc = 0;
	struct tok *tok = NULL;
	struct prompt_cache *pc = NULL;
	struct wl_dataset ds = {0};
	struct wl_plan plan = {0};
	struct client *c = NULL;
	uv_loop_t *loop = NULL;
	struct clientio_stats io = {0};
	int pr = opts_parse("bench", usage, tab, jargc, jargv, NULL, NULL);
	if (pr) {
		rc = pr == 1 ? 0 : 2;
		goto out;
	}
	char *end;
	double rate = !strcmp(o.rate_s, "inf") ? INFINITY : strtod(o.rate_s, &end);
	if (isfinite(rate) && (*end || !(rate > 0))) {
		fprintf(stderr, "prefixlb bench: --request-rate %s: expected a positive number or inf\n", o.rate_s);
		rc = 2;
		goto out;
	}
	enum client_mode mode = CLIENT_LIST;
	int sessions = !strcmp(o.mode, "sessions"), single = !strcmp(o.mode, "single");
	if (sessions)
		mode = CLIENT_SESSIONS;
	else if (!single && strcmp(o.mode, "fork")) {
		fprintf(stderr, "prefixlb bench: --multi-turn-mode %s: fork, sessions or single\n", o.mode);
		rc = 2;
		goto out;
	}
	enum chat_template tpl;
	if (chat_template_find(o.template, &tpl)) {
		fprintf(stderr, "prefixlb bench: --chat-template %s: llama-3.1 or llama-3\n", o.template);
		rc = 2;
		goto out;
	}
	struct goodput_slo slo;
	if (o.goodput && parse_goodput(o.goodput, &slo)) {
		rc = 2;
		goto out;
	}
	int chat = sessions || !strcmp(o.backend, "openai-chat");
	if (!o.endpoint)
		o.endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
	int synthetic = !strcmp(o.dataset_name, "synthetic");
	if (!synthetic && strcmp(o.dataset_name, "sharegpt") != 0) {
		fprintf(stderr, "prefixlb bench: --dataset-name %s: sharegpt or synthetic\n", o.dataset_name);
		rc = 2;
		goto out;
	}
	char host[128], path[512];
	int port;
	if (parse_url(o.base_url, o.endpoint, host, sizeof host, &port, path, sizeof path)) {
		fprintf(stderr, "prefixlb bench: --base-url %s: expected http://HOST:PORT (an IPv4 address or localhost)\n",
			o.base_url);
		rc = 2;
		goto out;
	}
	if (!o.dataset_path && !synthetic) {
		fprintf(stderr, "prefixlb bench: --dataset-path is required with --dataset-name sharegpt\n");
		rc = 2;
		goto out;
	}
	cmd_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (!(tok = cmd_load_tokenizer(o.tokenizer))) {
		rc = 1;
		goto out;
	}
	if (cmd_load_dataset(o.dataset_path, synthetic ? "seed" : NULL, (uint64_t)o.seed, &ds)) {
		rc = 1;
		goto out;
	}
	pc = prompt_cache_new(tok, (size_t)1 << 22);
	if (!sessions) {
		if (single)
			wl_single_plan(&ds, tok, (size_t)o.num_prompts, (uint64_t)o.seed, &plan);
		else
			wl_fork_plan(&ds, tok, (size_t)o.max_conversations, (size_t)o.num_prompts, (uint64_t)o.seed, &plan);
		if (!plan.num) {
			fprintf(stderr, "prefixlb bench: %s: no request survives the filters\n",
				o.dataset_path ? o.dataset_path : "(synthetic)");
			rc = 1;
			goto out;
		}
	}
	struct client_cfg cc = {
		.mode = mode,
		.plan = &plan,
		.ds = &ds,
		.max_sessions = (size_t)o.max_conversations,
		.max_requests = sessions ? (size_t)o.num_prompts : 0,
		.chat = chat,
		.tok = tok,
		.pc = pc,
		.tpl = tpl,
		.request_rate = rate,
		.burstiness = o.burstiness,
		.dispatch_floor_ms = o.floor_ms,
		.lag_ms = o.lag_ms,
		.max_concurrency = o.max_concurrency,
		.think_s = o.think_s,
		.timeout_s = o.timeout_s,
		.max_output_tokens = o.max_output_tokens,
		.ignore_eos = o.ignore_eos,
		.keep_text = o.save_result,
		.seed = (uint64_t)o.seed,
		.model = o.model,
		.tenants = o.tenants,
	};
	char terr[256];
	if (o.tenants && client_tenants_check(o.tenants, terr, sizeof terr)) {
		fprintf(stderr, "prefixlb bench: --%s\n", terr);
		rc = 2;
		goto out;
	}
	loop = uv_default_loop();
	struct clientio_opts ioo = {
		.host = host,
		.port = port,
		.path = path,
		.abort_fraction = o.abort_fraction,
		.seed = (uint64_t)o.seed,
		.total = sessions ? 0 : (long)plan.num,
		.progress = !o.disable_tqdm && isatty(2),
		.progress_interval_s = o.progress_s,
		.measure = 1,
	};
	if (!o.no_initial_test) {
		printf("Starting initial single prompt test run...\n");
		fflush(stdout);
		if (clientio_test_request(loop, &cc, &ioo)) {
			rc = 1;
			goto out;
		}
		printf("Initial test run completed. Starting main benchmark run...\n");
	}
	fprintf(stderr, "prefixlb bench: %ld %s (%s mode) to %s%s, rate %s, max concurrency %ld\n",
		sessions ? o.num_prompts : (long)plan.num, sessions ? "turns at most" : "requests", o.mode, o.base_url,
		o.endpoint, o.rate_s, o.max_concurrency);
	c = client_new(&cc, NULL, NULL);
	clientio_run(loop, c, &ioo, &io);
	rc = report(&o, c, &io, rate, o.backend);
	if (rc < 0)
		rc = 1;
out:
	client_free(c);
	free(io.lags_us);
	wl_plan_free(&plan);
	wl_free(&ds);
	prompt_cache_free(pc);
	tok_free(tok);
	if (loop)
		uv_loop_close(loop);
	for (int i = 0; i < jargc; i++)
		free(jargv[i]);
	free(jargv);
	return rc;
}
