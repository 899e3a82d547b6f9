/* test_admit.c: the router's admission control (--admission) in front of
 * `prefixlb engine`, over loopback: requests wait when every backend is
 * saturated and go the moment one frees (lease released, first token); a
 * full queue, a spent wait budget and an unreachable TTFT target answer 429
 * with Retry-After and an OpenAI error body; priorities and tenants set the
 * order; a storm of clients leaving while queued leaves every gauge at zero.
 * Processes get kernel-chosen ports and are stopped by PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"

#define MODEL "llama-3.1-8b-instruct-fp8-l4"

static pid_t engine;
static int eports[4], n_eports;

static int setup(void **state)
{
	(void)state;
	const char *args[] = {"engine", "--replicas", "2", "--time-scale", "20", NULL};
	engine = it_spawn(args, eports, &n_eports);
	return engine > 0 && n_eports == 2 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return it_stop(engine) == 0 ? 0 : -1;
}

/* A router over the first n engine replicas with --admission spec. */
static pid_t router(int n, const char *spec, int *port)
{
	const char *args[32];
	static char urls[4][64];
	int k = 0;
	args[k++] = "route";
	for (int i = 0; i < n; i++) {
		snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d", eports[i]);
		args[k++] = "--backend";
		args[k++] = urls[i];
	}
	const char *fixed[] = {"--access-log", "off", "--admission", spec, NULL};
	for (int i = 0; fixed[i]; i++)
		args[k++] = fixed[i];
	args[k] = NULL;
	int p[2], np;
	pid_t pid = it_spawn(args, p, &np);
	*port = p[0];
	struct buf r;
	buf_init(&r, 1 << 20);
	for (int i = 0; i < 200; i++) { /* until the health checks learnt the model */
		if (it_request(*port, "GET", "/v1/models", NULL, &r, 5) == 200 && strstr(r.data, MODEL))
			break;
		usleep(20000);
	}
	buf_free(&r);
	return pid;
}

static double metric(int port, const char *series)
{
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(port, "GET", "/metrics", NULL, &m, 5);
	double v = it_metric(m.data ? m.data : "", series);
	buf_free(&m);
	return v;
}

/* Waits (<= timeout s) until a series has value v. */
static int wait_metric(int port, const char *series, double v, double timeout)
{
	for (double end = it_now() + timeout; it_now() < end; usleep(10000))
		if (metric(port, series) == v)
			return 0;
	fprintf(stderr, "%s did not reach %g (now %g)\n", series, v, metric(port, series));
	return -1;
}

/* Sends a completion on a new connection (connection: close); headers: extra
 * "name: value\r\n" lines or NULL. Returns the fd. */
static int send_req(int port, const char *prompt, int max_tokens, int stream, const char *headers)
{
	struct buf body, req;
	buf_init(&body, 1 << 20);
	buf_init(&req, 1 << 20);
	buf_printf(&body, "{\"model\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":%d,\"stream\":%s}", MODEL, prompt,
		   max_tokens, stream ? "true" : "false");
	buf_printf(&req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n%scontent-length: %zu\r\n\r\n",
		   headers ? headers : "", body.len);
	buf_append(&req, body.data, body.len);
	int fd = it_connect(port);
	assert_true(fd >= 0);
	assert_int_equal(it_send(fd, req.data, req.len), 0);
	buf_free(&body);
	buf_free(&req);
	return fd;
}

static int status_of(const struct buf *b)
{
	return b->len > 12 ? atoi(b->data + 9) : -1;
}

/* Reads every fd to its end; order[k] = the index of the k-th to finish. */
static void collect(const int *fds, int n, int *order, struct buf *out, double timeout)
{
	int done[64] = {0}, k = 0;
	double end = it_now() + timeout;
	while (k < n && it_now() < end) {
		struct pollfd p[64];
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){done[i] ? -1 : fds[i], POLLIN, 0};
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (done[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char b[65536];
			ssize_t r = recv(fds[i], b, sizeof b, 0);
			if (r > 0) {
				buf_append(&out[i], b, (size_t)r);
				continue;
			}
			done[i] = 1;
			order[k++] = i;
		}
	}
	assert_int_equal(k, n);
}

/* Queued while the backend is busy, dispatched when it frees (in order); a
 * full queue answers 429 at once, with Retry-After and an OpenAI error body. */
static void test_queue_release_full(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(1, "on:max-in-flight=1:queue=2:retry-after-s=2", &rp);
	int fds[3];
	fds[0] = send_req(rp, "User: the first one holds the backend", 600, 1, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_backend_in_flight", 1, 5), 0);
	fds[1] = send_req(rp, "User: the second waits", 3, 0, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_admission_queued", 1, 5), 0);
	fds[2] = send_req(rp, "User: the third waits too", 3, 0, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_admission_queued", 2, 5), 0);
	/* the fourth: the queue is full */
	double t0 = it_now();
	struct buf b;
	buf_init(&b, 1 << 20);
	int fd = send_req(rp, "User: the fourth is refused", 3, 0, NULL);
	assert_int_equal(it_read_all(fd, &b, 5), 0);
	double took = it_now() - t0;
	close(fd);
	fprintf(stderr, "    queue full: 429 in %.2f ms\n", took * 1e3);
	assert_int_equal(status_of(&b), 429);
	assert_non_null(strcasestr(b.data, "\r\nretry-after: 2\r\n"));
	assert_non_null(strstr(b.data, "{\"error\":{\"message\":\"the router is at capacity"));
	assert_non_null(strstr(b.data, "\"type\":\"rate_limit_error\""));
	assert_true(took < 1);
	/* the first ends: the two waiting go, one after the other, in arrival order */
	int order[3];
	struct buf out[3];
	for (int i = 0; i < 3; i++)
		buf_init(&out[i], 1 << 22);
	collect(fds, 3, order, out, 20);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(status_of(&out[i]), 200);
		close(fds[i]);
		buf_free(&out[i]);
	}
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 0, 5), 0);
	assert_int_equal(metric(rp, "prefixlb_admission_queued"), 0);
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	assert_non_null(strstr(m.data, "prefixlb_admission_total{outcome=\"queued\"} 2\n"));
	assert_non_null(strstr(m.data, "prefixlb_admission_total{outcome=\"rejected_full\"} 1\n"));
	assert_non_null(strstr(m.data, "prefixlb_admission_wait_seconds_count{} 2\n"));
	assert_int_equal(it_stop(r), 0);
	buf_free(&m);
	buf_free(&b);
}

/* With max-waiting, a queued request goes at the first token of the one
 * ahead (its prefill done), not at its end. */
static void test_release_on_first_token(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(1, "on:max-waiting=1", &rp);
	static char prompt[40000];
	strcpy(prompt, "User:");
	for (int i = 0; i < 6000; i++)
		memcpy(prompt + 5 + 5 * i, " word", 6);
	double t0 = it_now();
	int a = send_req(rp, prompt, 600, 1, NULL); /* ~6,000 tokens of prefill (80 ms here), then a long answer */
	assert_int_equal(wait_metric(rp, "prefixlb_backend_in_flight", 1, 5), 0);
	int b = send_req(rp, "User: short", 2, 0, NULL);
	struct buf ba, bb;
	buf_init(&ba, 1 << 22);
	buf_init(&bb, 1 << 22);
	assert_int_equal(it_read_all(b, &bb, 20), 0);
	double b_done = it_now() - t0;
	assert_int_equal(status_of(&bb), 200);
	assert_int_equal(it_read_all(a, &ba, 30), 0);
	double a_done = it_now() - t0;
	fprintf(stderr, "    first token releases: the queued one ended at %.2f s, the first at %.2f s\n", b_done, a_done);
	assert_true(b_done < a_done * 0.6); /* it did not wait for the end */
	close(a);
	close(b);
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 0, 5), 0);
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	assert_non_null(strstr(m.data, "prefixlb_admission_total{outcome=\"queued\"} 1\n"));
	assert_int_equal(it_stop(r), 0);
	buf_free(&m);
	buf_free(&ba);
	buf_free(&bb);
}

/* Higher priority first; within a band, fair share between tenants. */
static void test_priority_and_fairness(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(1, "on:max-in-flight=1", &rp);
	struct {
		const char *headers;
	} q[] = {
		{"x-prefixlb-priority: -1\r\n"},                            /* 1: low */
		{"x-prefixlb-tenant: flood\r\n"},                           /* 2 */
		{"x-prefixlb-tenant: flood\r\n"},                           /* 3 */
		{"x-prefixlb-tenant: flood\r\n"},                           /* 4 */
		{"x-prefixlb-tenant: flood\r\n"},                           /* 5 */
		{"x-prefixlb-tenant: quiet\r\n"},                           /* 6 */
		{"authorization: Bearer sk-quiet-2\r\n"},                   /* 7: another tenant by its key */
		{"x-prefixlb-priority: 3\r\nx-prefixlb-tenant: flood\r\n"}, /* 8: high */
	};
	int n = (int)(sizeof q / sizeof *q) + 1, fds[16];
	fds[0] = send_req(rp, "User: the blocker", 600, 1, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_backend_in_flight", 1, 5), 0);
	for (int i = 1; i < n; i++) {
		char p[64];
		snprintf(p, sizeof p, "User: queued request %d", i);
		fds[i] = send_req(rp, p, 2, 0, q[i - 1].headers);
		assert_int_equal(wait_metric(rp, "prefixlb_admission_queued", i, 5), 0);
	}
	int order[16];
	struct buf out[16];
	for (int i = 0; i < n; i++)
		buf_init(&out[i], 1 << 22);
	collect(fds, n, order, out, 30);
	fprintf(stderr, "    order:");
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %d", order[i]);
	fprintf(stderr, "\n");
	/* the blocker, the high one, then by fair share: flood, quiet, key, flood, flood, flood; the low one last */
	int want[] = {0, 8, 2, 6, 7, 3, 4, 5, 1};
	assert_memory_equal(order, want, sizeof want);
	for (int i = 0; i < n; i++) {
		assert_int_equal(status_of(&out[i]), 200);
		close(fds[i]);
		buf_free(&out[i]);
	}
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 0, 5), 0);
	assert_int_equal(it_stop(r), 0);
}

/* The wait budget and the TTFT target end a wait with 429; bad headers are 400. */
static void test_budget_and_target(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(1, "on:max-in-flight=1:wait-ms=20000", &rp);
	int blocker = send_req(rp, "User: the blocker", 2000, 1, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_backend_in_flight", 1, 5), 0);
	struct buf b;
	buf_init(&b, 1 << 20);
	double t0 = it_now();
	int fd = send_req(rp, "User: in a hurry", 2, 0, "x-prefixlb-max-wait-ms: 200\r\n");
	assert_int_equal(it_read_all(fd, &b, 10), 0);
	double took = it_now() - t0;
	close(fd);
	fprintf(stderr, "    budget 200 ms: 429 after %.0f ms\n", took * 1e3);
	assert_int_equal(status_of(&b), 429);
	assert_non_null(strstr(b.data, "waited its whole budget"));
	assert_non_null(strcasestr(b.data, "\r\nretry-after: 1\r\n"));
	assert_true(took >= 0.19 && took < 2);
	buf_reset(&b);
	t0 = it_now();
	fd = send_req(rp, "User: with a target", 2, 0, "x-prefixlb-ttft-target-ms: 300\r\n");
	assert_int_equal(it_read_all(fd, &b, 10), 0);
	took = it_now() - t0;
	close(fd);
	fprintf(stderr, "    TTFT target 300 ms: 429 after %.0f ms\n", took * 1e3);
	assert_int_equal(status_of(&b), 429);
	assert_non_null(strstr(b.data, "TTFT target"));
	assert_true(took >= 0.25 && took < 2);
	const char *bad[] = {"x-prefixlb-priority: high\r\n", "x-prefixlb-ttft-target-ms: soon\r\n",
			     "x-prefixlb-max-wait-ms: -5\r\n"};
	for (int i = 0; i < 3; i++) {
		buf_reset(&b);
		fd = send_req(rp, "User: bad header", 2, 0, bad[i]);
		assert_int_equal(it_read_all(fd, &b, 10), 0);
		close(fd);
		assert_int_equal(status_of(&b), 400);
		assert_non_null(strstr(b.data, "{\"error\":{\"message\":\"x-prefixlb-"));
	}
	close(blocker);
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 0, 5), 0);
	assert_int_equal(it_stop(r), 0);
	buf_free(&b);
}

/* 200 clients leave while queued: nothing leaks, every gauge is back to zero,
 * and the backend never saw them. */
static void test_disconnect_storm(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(2, "on:max-in-flight=1:filter=1", &rp); /* filter=1: the second blocker takes the other backend */
	int blockers[2];
	blockers[0] = send_req(rp, "User: blocker one", 2000, 1, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 1, 5), 0);
	blockers[1] = send_req(rp, "User: blocker two, another prompt", 2000, 1, NULL);
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 2, 5), 0);
	int fds[200];
	for (int i = 0; i < 200; i++) {
		char p[64];
		snprintf(p, sizeof p, "User: storm %d", i);
		fds[i] = send_req(rp, p, 50, i % 2, i % 3 ? "x-prefixlb-tenant: a\r\n" : "x-prefixlb-tenant: b\r\n");
	}
	assert_int_equal(wait_metric(rp, "prefixlb_admission_queued", 200, 10), 0);
	assert_int_equal(metric(rp, "prefixlb_in_flight"), 202);
	for (int i = 0; i < 200; i++)
		close(fds[i]);
	assert_int_equal(wait_metric(rp, "prefixlb_admission_queued", 0, 10), 0);
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 2, 5), 0);
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	assert_non_null(strstr(m.data, "prefixlb_admission_total{outcome=\"cancelled\"} 200\n"));
	assert_non_null(strstr(m.data, "prefixlb_admission_queue_length{model=\"" MODEL "\"} 0\n"));
	for (int i = 0; i < 2; i++)
		close(blockers[i]);
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 0, 5), 0);
	buf_reset(&m);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	double sum = 0;
	for (const char *p = m.data; (p = strstr(p, "\nprefixlb_backend_in_flight{")); p++)
		sum += atof(strchr(p, ' ') + 1);
	assert_true(sum == 0);
	/* the storm never reached a backend (the sum over backends counts sends) */
	double sent = 0;
	for (const char *p = m.data; (p = strstr(p, "\nprefixlb_backend_requests_total{")); p++)
		sent += atof(strchr(p, ' ') + 1);
	assert_true(sent == 2);
	assert_int_equal(it_stop(r), 0);
	buf_free(&m);
}

/* Off (the default): no queue, the headers are not even read. */
static void test_off(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(1, "off", &rp);
	int fds[4];
	for (int i = 0; i < 4; i++) {
		char p[64];
		snprintf(p, sizeof p, "User: all at once %d", i);
		fds[i] = send_req(rp, p, 20, 1, "x-prefixlb-priority: not-a-number\r\n");
	}
	assert_int_equal(wait_metric(rp, "prefixlb_backend_in_flight", 4, 5), 0);
	struct buf b;
	buf_init(&b, 1 << 22);
	for (int i = 0; i < 4; i++) {
		buf_reset(&b);
		assert_int_equal(it_read_all(fds[i], &b, 10), 0);
		assert_int_equal(status_of(&b), 200);
		close(fds[i]);
	}
	assert_int_equal(wait_metric(rp, "prefixlb_in_flight", 0, 5), 0);
	assert_int_equal(it_stop(r), 0);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_release_full), cmocka_unit_test(test_release_on_first_token),
		cmocka_unit_test(test_priority_and_fairness), cmocka_unit_test(test_budget_and_target),
		cmocka_unit_test(test_disconnect_storm),   cmocka_unit_test(test_off),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
