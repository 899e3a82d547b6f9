/* test_kvevents.c: vLLM KV events end to end: `prefixlb engine
 * --kv-events-config` publishing, `prefixlb route --kv-events` subscribing.
 * Lost messages are replayed; a dead stream goes stale and the approximate
 * index takes over; a restarted replica's entries are dropped. Ports are the
 * kernel's (the engine writes "HTTP PUB REPLAY" per replica to its ports
 * file); the restarted engine takes the same ports back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"

#define MODEL "llama-3.1-8b-instruct-fp8-l4"

struct eng {
	pid_t pid;
	int http, pub, rep;
};

/* `prefixlb ARGS --ports-file F` (the args name the ports), waiting for F. */
static pid_t spawn_raw(const char *const *args, int *ports, int *n)
{
	char pf[64];
	snprintf(pf, sizeof pf, "/tmp/prefixlb-kv-%d-%ld.ports", getpid(), random());
	unlink(pf);
	const char *argv[64];
	int k = 0;
	argv[k++] = it_bin();
	for (int i = 0; args[i] && k < 60; i++)
		argv[k++] = args[i];
	argv[k++] = "--ports-file";
	argv[k++] = pf;
	argv[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	double end = it_now() + 20;
	*n = 0;
	while (it_now() < end) {
		FILE *f = fopen(pf, "r");
		if (f) {
			while (*n < 16 && fscanf(f, "%d", &ports[*n]) == 1)
				(*n)++;
			fclose(f);
			unlink(pf);
			return pid;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* An engine of one replica; port 0: the kernel's ports. */
static struct eng engine(int http, int pub, int rep, const char *extra1, const char *extra2)
{
	char cfg[400], hp[16];
	snprintf(cfg, sizeof cfg,
		 "{\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://127.0.0.1:%d\","
		 "\"replay_endpoint\":\"tcp://127.0.0.1:%d\",\"topic\":\"kv-events\"}",
		 pub, rep);
	snprintf(hp, sizeof hp, "%d", http);
	const char *args[] = {"engine", "--replicas", "1", "--time-scale", "50", "--port", hp, "--kv-events-bind",
			      "--kv-events-config", cfg, extra1, extra2, NULL};
	int p[16], n;
	struct eng e = {spawn_raw(args, p, &n), 0, 0, 0};
	assert_true(e.pid > 0);
	assert_int_equal(n, 3);
	e.http = p[0];
	e.pub = p[1];
	e.rep = p[2];
	return e;
}

static pid_t router(const struct eng *e, const char *x1, const char *x2, int *port)
{
	char url[64], spec[200];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", e->http);
	snprintf(spec, sizeof spec, "127.0.0.1:%d=tcp://127.0.0.1:%d,tcp://127.0.0.1:%d", e->http, e->pub, e->rep);
	const char *args[] = {"route", "--backend", url, "--kv-events", spec, "--policy", "lowest-ttft",
			      "--kv-events-pending-ms", "0", "--access-log", "off", x1, x2, NULL};
	int p[4], n;
	pid_t pid = it_spawn(args, p, &n);
	assert_true(pid > 0);
	*port = p[0];
	struct buf r;
	buf_init(&r, 1 << 20);
	for (int i = 0; i < 200; i++) {
		if (it_request(*port, "GET", "/v1/models", NULL, &r, 5) == 200 && strstr(r.data, MODEL))
			break;
		usleep(50000);
	}
	buf_free(&r);
	return pid;
}

static double metric(int port, const char *series)
{
	struct buf m;
	buf_init(&m, 1 << 24);
	it_request(port, "GET", "/metrics", NULL, &m, 5);
	double v = it_metric(m.data ? m.data : "", series);
	buf_free(&m);
	return v;
}

/* Waits (<= 10 s) until series compares to v (op '>' or '='). */
static int wait_metric(int port, const char *series, char op, double v)
{
	double end = it_now() + 10;
	while (it_now() < end) {
		double x = metric(port, series);
		if (op == '>' ? x > v : x == v)
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "%s stayed at %g (wanted %c %g)\n", series, metric(port, series), op, v);
	return -1;
}

/* A completion of prompt i (distinct, ~120 tokens); the raw response in out. */
static int complete(int port, int i, struct buf *out)
{
	char body[2048];
	int k = snprintf(body, sizeof body, "{\"model\":\"" MODEL "\",\"max_tokens\":2,\"prompt\":\"%d", i);
	for (int w = 0; w < 100; w++)
		k += snprintf(body + k, sizeof body - (size_t)k, " word%d", i * 1000 + w);
	snprintf(body + k, sizeof body - (size_t)k, "\"}");
	return it_request(port, "POST", "/v1/completions", body, out, 10);
}

static long header_long(const struct buf *r, const char *name)
{
	const char *p = r->data ? strcasestr(r->data, name) : NULL;
	return p ? atol(p + strlen(name)) : -1;
}

/* Batches 1 and 2 never reach the PUB socket: the router sees the gap, asks
 * the replay socket, and knows their blocks as if nothing was lost. */
static void test_replay(void **state)
{
	(void)state;
	struct eng e = engine(0, 0, 0, "--kv-events-test-drop", "1,2");
	int rp;
	pid_t r = router(&e, NULL, NULL, &rp);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_connected", '=', 1), 0);
	struct buf out;
	buf_init(&out, 1 << 20);
	for (int i = 1; i <= 5; i++)
		assert_int_equal(complete(rp, i, &out), 200);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_replayed_batches_total", '>', 1), 0);
	assert_true(metric(rp, "prefixlb_kv_events_gaps_total") >= 1);
	assert_true(metric(rp, "prefixlb_kv_events_unrecovered_total") == 0);
	assert_true(metric(rp, "prefixlb_kv_events_errors_total") == 0);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_batches_total", '>', 4), 0);
	/* prompts 2 and 3 (batches 1 and 2): the router predicts their hit from
	 * the replayed events alone (no pending records), as the engine serves it */
	for (int i = 2; i <= 3; i++) {
		assert_int_equal(complete(rp, i, &out), 200);
		long predicted = header_long(&out, "x-prefixlb-predicted-cached: ");
		const char *c = strstr(out.data, "\"cached_tokens\":");
		assert_non_null(c);
		if (predicted <= 0)
			fprintf(stderr, "%s\n", out.data);
		assert_true(predicted > 0);
		assert_int_equal(predicted, atol(c + 16));
	}
	buf_free(&out);
	assert_int_equal(it_stop(r), 0);
	assert_int_equal(it_stop(e.pid), 0);
}

/* The PUB socket closes after one batch: the backend goes stale and the
 * lookups fall back to the approximate index. */
static void test_stale(void **state)
{
	(void)state;
	struct eng e = engine(0, 0, 0, "--kv-events-test-mute-after", "1");
	int rp;
	pid_t r = router(&e, "--kv-events-max-age-ms", "300", &rp);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_connected", '=', 1), 0);
	assert_true(metric(rp, "prefixlb_kv_events_stale") == 0);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(complete(rp, 1, &out), 200);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_connected", '=', 0), 0);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_stale", '=', 1), 0);
	struct buf m;
	buf_init(&m, 1 << 24);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	const char *a = strstr(m.data, "index=\"approximate\"} ");
	double before = a ? atof(a + 21) : -1;
	assert_int_equal(complete(rp, 2, &out), 200);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	a = strstr(m.data, "index=\"approximate\"} ");
	assert_non_null(a);
	assert_true(atof(a + 21) == before + 1);
	buf_free(&m);
	buf_free(&out);
	assert_int_equal(it_stop(r), 0);
	assert_int_equal(it_stop(e.pid), 0);
}

/* A replica restarts on the same ports: its entries go, new ones come. */
static void test_restart(void **state)
{
	(void)state;
	struct eng e = engine(0, 0, 0, NULL, NULL);
	int rp;
	pid_t r = router(&e, NULL, NULL, &rp);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_connected", '=', 1), 0);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(complete(rp, 1, &out), 200);
	assert_int_equal(complete(rp, 2, &out), 200);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_index_blocks", '>', 8), 0);
	double before = metric(rp, "prefixlb_kv_index_blocks");
	assert_int_equal(it_stop(e.pid), 0);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_connected", '=', 0), 0);
	struct eng e2 = engine(e.http, e.pub, e.rep, NULL, NULL);
	assert_int_equal(e2.http, e.http);
	assert_int_equal(wait_metric(rp, "prefixlb_kv_events_restarts_total", '=', 1), 0);
	assert_true(metric(rp, "prefixlb_kv_index_blocks") == 0);
	/* the new replica's own blocks are learnt */
	for (int i = 0; i < 100 && complete(rp, 3, &out) != 200; i++)
		usleep(100000); /* until the router takes it back */
	assert_int_equal(wait_metric(rp, "prefixlb_kv_index_blocks", '>', 0), 0);
	assert_true(metric(rp, "prefixlb_kv_index_blocks") < before);
	buf_free(&out);
	assert_int_equal(it_stop(r), 0);
	assert_int_equal(it_stop(e2.pid), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_stale),
		cmocka_unit_test(test_restart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
