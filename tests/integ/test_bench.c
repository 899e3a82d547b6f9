/* test_bench.c: `prefixlb bench` against `prefixlb engine` and broken servers. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/tokenizer.h"
#include "core/workload.h"
#include "itest.h"
#include "../unit/testutil.h"

static pid_t engine;
static int eports[4], n_eports;
static char dir[64], dataset[128];

static int setup(void **state)
{
	(void)state;
	const char *args[] = {"engine", "--replicas", "2", "--time-scale", "20", NULL};
	engine = it_spawn(args, eports, &n_eports);
	snprintf(dir, sizeof dir, "/tmp/prefixlb-bench-%d", getpid());
	mkdir(dir, 0755);
	snprintf(dataset, sizeof dataset, "%s/ds.json", dir);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s dataset --out %s --conversations 30 --seed 3 >/dev/null", it_bin(), dataset);
	return engine > 0 && system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) {
	}
	return it_stop(engine) == 0 ? 0 : -1;
}

/* Runs bench with args; stdout into out. Returns the exit status. */
static int run(const char *args, struct buf *out)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "timeout 120 %s bench --disable-tqdm --dataset-path %s %s 2>/dev/null", it_bin(), dataset,
		 args);
	FILE *p = popen(cmd, "r");
	char b[4096];
	size_t n;
	buf_reset(out);
	while ((n = fread(b, 1, sizeof b, p)) > 0)
		buf_append(out, b, n);
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_fork_run_and_json(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 22);
	char args[512], json[160];
	snprintf(json, sizeof json, "%s/r.json", dir);
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --num-prompts 100 --max-conversations 50 --seed 7 --request-rate 500 "
		 "--max-concurrency 40 --save-result --result-filename %s",
		 eports[0], json);
	assert_int_equal(run(args, &out), 0);
	assert_non_null(strstr(out.data, "============ Serving Benchmark Result ============\n"));
	assert_non_null(strstr(out.data, "Successful requests:                     100       \n"));
	assert_non_null(strstr(out.data, "Failed requests:                         0"));
	assert_non_null(strstr(out.data, "Prefix cache hit rate:"));
	/* the saved JSON has vLLM's keys, and the totals are the fork's */
	json_error_t e;
	json_t *j = json_load_file(json, 0, &e);
	assert_non_null(j);
	const char *keys[] = {"date", "backend", "model_id", "tokenizer_id", "best_of", "num_prompts", "request_rate",
			      "burstiness", "max_concurrency", "duration", "completed", "total_input_tokens",
			      "total_output_tokens", "request_throughput", "output_throughput", "total_token_throughput",
			      "input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors", "mean_ttft_ms",
			      "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
			      "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "request_goodput:", NULL};
	for (int i = 0; keys[i]; i++) {
		if (!json_object_get(j, keys[i]))
			fprintf(stderr, "missing key %s\n", keys[i]);
		assert_non_null(json_object_get(j, keys[i]));
	}
	assert_int_equal(json_integer_value(json_object_get(j, "completed")), 100);
	/* as vLLM: e2el only when asked for, goodput's key with its colon (null without --goodput), floats as
	 * floats, the flag's num_prompts, the model as the tokenizer's id */
	assert_null(json_object_get(j, "mean_e2el_ms"));
	assert_true(json_is_null(json_object_get(j, "request_goodput:")));
	assert_true(json_is_real(json_object_get(j, "request_rate")) && json_real_value(json_object_get(j, "request_rate")) == 500);
	assert_true(json_is_real(json_object_get(j, "burstiness")));
	assert_int_equal(json_integer_value(json_object_get(j, "num_prompts")), 100);
	assert_string_equal(json_string_value(json_object_get(j, "tokenizer_id")), "llama-3.1-8b-instruct-fp8-l4");
	assert_int_equal(json_array_size(json_object_get(j, "itls")), 100);
	/* every request ran to max_tokens = the reference completion's tokens */
	struct tok *t = test_tokenizer();
	struct buf f;
	buf_init(&f, 1 << 26);
	FILE *fp = fopen(dataset, "r");
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
		buf_append(&f, chunk, n);
	fclose(fp);
	struct wl_dataset d;
	char err[128];
	assert_int_equal(wl_parse_sharegpt(f.data, f.len, &d, err, sizeof err), 0);
	struct wl_plan plan;
	assert_int_equal(wl_fork_plan(&d, t, 50, 100, 7, &plan), 0);
	long in = 0, outt = 0;
	for (size_t i = 0; i < plan.num; i++) {
		in += wl_plan_at(&plan, i)->prompt_tokens;
		outt += wl_plan_at(&plan, i)->max_tokens;
	}
	assert_int_equal(json_integer_value(json_object_get(j, "total_input_tokens")), in);
	assert_int_equal(json_integer_value(json_object_get(j, "total_output_tokens")), outt);
	wl_plan_free(&plan);
	wl_free(&d);
	tok_free(t);
	buf_free(&f);
	json_decref(j);
	buf_free(&out);
}

/* Through a router that predicts (lowest-ttft, token blocks): bench reads
 * x-prefixlb-predicted-cached and sets it beside what the engine reported.
 * The router and the engine cut the same 16-token blocks of the same ids, so
 * most predictions are exact to the block; a wrong one shows up as error. */
static void test_prediction_accuracy(void **state)
{
	(void)state;
	char u0[64], u1[64];
	snprintf(u0, sizeof u0, "http://127.0.0.1:%d", eports[0]);
	snprintf(u1, sizeof u1, "http://127.0.0.1:%d", eports[1]);
	const char *args[] = {"route", "--backend", u0, "--backend", u1, "--policy", "lowest-ttft",
			      "--prefix-blocks", "tokens", "--access-log", "off", NULL};
	int rport[2], nr;
	pid_t r = it_spawn(args, rport, &nr);
	assert_true(r > 0);
	struct buf out;
	buf_init(&out, 1 << 22);
	char a[256];
	snprintf(a, sizeof a, "--base-url http://127.0.0.1:%d --num-prompts 120 --max-conversations 30 --seed 5 "
		 "--request-rate 100 --max-concurrency 8", rport[0]);
	assert_int_equal(run(a, &out), 0);
	const char *p = strstr(out.data, "Predictions within a block (16 tok):");
	assert_non_null(p);
	double within = atof(p + 40);
	const char *q = strstr(out.data, "Router-predicted cached tokens:");
	const char *e = strstr(out.data, "Engine-reported cached tokens:");
	assert_non_null(q);
	assert_non_null(e);
	double pred = atof(q + 40), rep = atof(e + 40);
	fprintf(stderr, "    router predicted %.0f cached tokens, engine reported %.0f; %.0f%% within a block\n", pred,
		rep, within * 100);
	assert_true(rep > 0);
	assert_true(within >= 0.6); /* requests of one conversation in flight together: the engine has not computed yet what the router counted */
	assert_true(pred >= rep * 0.8 && pred <= rep * 1.2);
	/* straight to the engine: no router, no prediction lines */
	snprintf(a, sizeof a, "--base-url http://127.0.0.1:%d --num-prompts 20 --seed 5", eports[0]);
	assert_int_equal(run(a, &out), 0);
	assert_null(strstr(out.data, "Router-predicted"));
	buf_free(&out);
	assert_int_equal(it_stop(r), 0);
}

/* Sessions: turn k+1 starts only after turn k ended, and carries its answer. */
static void test_sessions_order(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 22);
	char args[512], csv[160];
	snprintf(csv, sizeof csv, "%s/s.csv", dir);
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --multi-turn-mode sessions --max-conversations 4 --num-prompts 40 "
		 "--max-concurrency 4 --save-requests %s",
		 eports[1], csv);
	assert_int_equal(run(args, &out), 0);
	FILE *f = fopen(csv, "r");
	assert_non_null(f);
	char line[1024];
	assert_non_null(fgets(line, sizeof line, f)); /* header */
	double last_end[8] = {0};
	long last_prompt[8] = {0}, last_out[8] = {0};
	int last_turn[8], rows = 0;
	for (int i = 0; i < 8; i++)
		last_turn[i] = -1;
	while (fgets(line, sizeof line, f)) {
		size_t idx, conv, turn;
		char backend[64];
		int ok;
		long pt, ot, ct;
		double start, ttft, lat;
		assert_int_equal(sscanf(line, "%zu,%zu,%zu,%63[^,],%d,%ld,%ld,%ld,%lf,%lf,%lf", &idx, &conv, &turn, backend, &ok,
					&pt, &ot, &ct, &start, &ttft, &lat),
				 11);
		assert_true(ok);
		assert_true(conv < 4);
		if (last_turn[conv] >= 0) {
			assert_int_equal((int)turn, last_turn[conv] + 2);
			assert_true(start >= last_end[conv]);            /* after the previous turn ended */
			assert_true(pt >= last_prompt[conv] + last_out[conv]); /* history + the model's answer */
			assert_true(ct > 0);                                /* and the replica had it cached */
		}
		last_turn[conv] = (int)turn;
		last_end[conv] = start + lat;
		last_prompt[conv] = pt;
		last_out[conv] = ot;
		rows++;
	}
	fclose(f);
	assert_true(rows > 8);
	buf_free(&out);
}

static void test_failures_counted(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 22);
	char args[256];
	/* nothing listens on the fake's port once it is killed */
	int gp;
	pid_t g = it_fake_server(IT_GARBAGE, &gp);
	/* vLLM's initial test request fails: the run stops there, exit 1, no result block */
	snprintf(args, sizeof args, "--base-url http://127.0.0.1:%d --num-prompts 10 --max-conversations 10", gp);
	assert_int_equal(run(args, &out), 1);
	assert_null(strstr(out.data, "Serving Benchmark Result"));
	/* without it every request is tried, each failure counted by reason; none succeeded: exit 1 */
	snprintf(args, sizeof args, "--base-url http://127.0.0.1:%d --num-prompts 10 --max-conversations 10 --no-initial-test", gp);
	assert_int_equal(run(args, &out), 1);
	assert_non_null(strstr(out.data, "Successful requests:                     0"));
	assert_non_null(strstr(out.data, "malformed HTTP response"));
	it_kill(g);
	assert_int_equal(run(args, &out), 1);
	assert_non_null(strstr(out.data, "connection refused                     10"));
	/* a server's error: the status, and its first message */
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --num-prompts 10 --max-conversations 10 --model nope --no-initial-test",
		 eports[0]);
	assert_int_equal(run(args, &out), 1);
	assert_non_null(strstr(out.data, "  HTTP 404                               10"));
	assert_non_null(strstr(out.data, "    first: The model `nope` does not exist."));
	/* a usage error is an error */
	assert_int_equal(run("--base-url ftp://x --num-prompts 1", &out), 2);
	buf_free(&out);
}

/* --abort-fraction 0.5: about half the clients leave at one of the four points;
 * they are counted apart, the rest succeed, the engine aborts the work it had. */
static void test_abort_fraction(void **state)
{
	(void)state;
	struct buf out, m;
	buf_init(&out, 1 << 22);
	buf_init(&m, 1 << 20);
	char args[256];
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --num-prompts 200 --max-conversations 30 --max-concurrency 20 "
		 "--abort-fraction 0.5",
		 eports[1]);
	it_request(eports[1], "GET", "/metrics", NULL, &m, 5);
	double aborted0 = it_metric(m.data, "prefixlb_engine_requests_aborted_total");
	assert_int_equal(run(args, &out), 0);
	const char *a = strstr(out.data, "Aborted by the client (not counted):");
	assert_non_null(a);
	long n_ab = atol(a + 40), n_ok = atol(strstr(out.data, "Successful requests:") + 40);
	long kinds = 0;
	const char *where[] = {"in the request head", "in the request body", "before the first token", "mid-stream"};
	for (int k = 0; k < 4; k++) {
		const char *w = strstr(a, where[k]);
		assert_non_null(w);
		long c = atol(w + 38);
		assert_true(c > 0); /* each point drawn at least once among ~100 */
		kinds += c;
	}
	buf_reset(&m);
	it_request(eports[1], "GET", "/metrics", NULL, &m, 5);
	double aborted = it_metric(m.data, "prefixlb_engine_requests_aborted_total") - aborted0;
	fprintf(stderr, "    abort-fraction 0.5: %ld aborted, %ld ok; the engine aborted %g\n", n_ab, n_ok, aborted);
	assert_int_equal(kinds, n_ab);
	assert_int_equal(n_ab + n_ok, 200);
	assert_true(n_ab > 60 && n_ab < 140);
	assert_non_null(strstr(out.data, "Failed requests:                         0"));
	assert_true(aborted > 0);
	buf_free(&out);
	buf_free(&m);
}

/* min and max of the saved JSON's ttfts */
static void ttft_range(const char *json, double *lo, double *hi, long *completed)
{
	json_error_t e;
	json_t *j = json_load_file(json, 0, &e);
	assert_non_null(j);
	json_t *a = json_object_get(j, "ttfts"), *v;
	size_t i;
	*lo = 1e9;
	*hi = 0;
	json_array_foreach(a, i, v)
	{
		double x = json_number_value(v);
		*lo = x < *lo ? x : *lo;
		*hi = x > *hi ? x : *hi;
	}
	*completed = (long)json_integer_value(json_object_get(j, "completed"));
	json_decref(j);
}

/* --connect-lag-ms: the clock starts, the request leaves that much later. */
static void test_connect_lag(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 22);
	double lo0, hi0, lo, hi;
	long c0, c;
	for (int lagged = 0; lagged < 2; lagged++) {
		char args[512];
		snprintf(args, sizeof args,
			 "--base-url http://127.0.0.1:%d --num-prompts 40 --max-conversations 30 --request-rate 200 "
			 "--max-concurrency 8 --save-result --result-filename %s/lag%d.json%s",
			 eports[0], dir, lagged, lagged ? " --connect-lag-ms 250" : "");
		assert_int_equal(run(args, &out), 0);
		char json[160];
		snprintf(json, sizeof json, "%s/lag%d.json", dir, lagged);
		if (lagged)
			ttft_range(json, &lo, &hi, &c);
		else
			ttft_range(json, &lo0, &hi0, &c0);
	}
	fprintf(stderr, "    TTFT without lag %.0f-%.0f ms, with --connect-lag-ms 250: %.0f-%.0f ms\n", lo0 * 1e3,
		hi0 * 1e3, lo * 1e3, hi * 1e3);
	assert_int_equal(c0, 40);
	assert_int_equal(c, 40);
	assert_true(lo >= 0.250);
	assert_true(lo0 < 0.250);
	assert_true(lo < lo0 + 0.250 + 0.2); /* the lag, not a stall on top of it */
	buf_free(&out);
}

/* --request-timeout-s: a request still running then is abandoned (the
 * connection closed, the server's work aborted), counted apart and not in the
 * metrics; --max-output-tokens caps every answer. */
static void test_timeout_and_cap(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 22);
	int sp;
	pid_t slow = it_fake_server(IT_SLOW, &sp); /* a whole stream takes ~0.7 s */
	char args[512], json[160];
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --num-prompts 6 --max-conversations 6 --no-initial-test "
		 "--request-timeout-s 0.2",
		 sp);
	assert_int_equal(run(args, &out), 1); /* none succeeded */
	assert_non_null(strstr(out.data, "Successful requests:                     0"));
	assert_non_null(strstr(out.data, "Timed out (not counted):                 6"));
	assert_non_null(strstr(out.data, "Failed requests:                         0"));
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --num-prompts 2 --max-conversations 6 --no-initial-test "
		 "--request-timeout-s 30",
		 sp);
	assert_int_equal(run(args, &out), 0);
	assert_null(strstr(out.data, "Timed out"));
	it_kill(slow);
	/* the cap: every answer at most 7 tokens, on the real engine */
	snprintf(json, sizeof json, "%s/cap.json", dir);
	snprintf(args, sizeof args,
		 "--base-url http://127.0.0.1:%d --num-prompts 30 --max-conversations 30 --max-output-tokens 7 "
		 "--save-result --result-filename %s",
		 eports[0], json);
	assert_int_equal(run(args, &out), 0);
	json_error_t e;
	json_t *j = json_load_file(json, 0, &e);
	assert_non_null(j);
	json_t *ol = json_object_get(j, "output_lens");
	size_t i;
	json_t *v;
	int at_cap = 0;
	json_array_foreach(ol, i, v) {
		assert_true(json_integer_value(v) >= 1 && json_integer_value(v) <= 7);
		at_cap += json_integer_value(v) == 7;
	}
	assert_true(at_cap > 20); /* the references are longer than 7 tokens */
	json_decref(j);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_run_and_json), cmocka_unit_test(test_prediction_accuracy),
		cmocka_unit_test(test_sessions_order),
		cmocka_unit_test(test_failures_counted),
		cmocka_unit_test(test_abort_fraction),
		cmocka_unit_test(test_connect_lag),
		cmocka_unit_test(test_timeout_and_cap),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
