/* test_pool.c: the router's upstream connection pool (src/net/httpc.c), over
 * loopback: the idle bound (--upstream-keepalive) and timeout
 * (--upstream-keepalive-timeout-ms) as the backend sees them (its established
 * sockets, counted by the kernel), reuse, and a kept connection closed by the
 * backend costing no client request. Every process is started with a
 * kernel-chosen port and stopped by PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"

#define MODEL "llama-3.1-8b-instruct-fp8-l4"

/* Established TCP sockets whose local port is port (the server's side of its
 * connections), from /proc/net/tcp and tcp6. */
static int established_at(int port)
{
	int n = 0;
	const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "r");
		char line[512];
		while (fp && fgets(line, sizeof line, fp)) {
			char local[128];
			unsigned st;
			if (sscanf(line, " %*d: %127s %*s %x", local, &st) != 2)
				continue;
			const char *colon = strrchr(local, ':');
			if (colon && (int)strtol(colon + 1, NULL, 16) == port && st == 1)
				n++;
		}
		if (fp)
			fclose(fp);
	}
	return n;
}

static double metric_sum(int rp, const char *name)
{
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	double s = 0;
	size_t nl = strlen(name);
	for (const char *p = m.data ? m.data : ""; (p = strstr(p, name)); p += nl)
		if ((p == m.data || p[-1] == '\n') && p[nl] == '{')
			s += atof(strchr(p, ' ') + 1);
	buf_free(&m);
	return s;
}

static pid_t router(int backend, const char *const *extra, int *rp)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", backend);
	const char *args[32] = {"route", "--backend", url, "--access-log", "off", "--health-interval-ms", "600000"};
	int k = 7, np;
	for (int i = 0; extra && extra[i]; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	int p[4];
	pid_t pid = it_spawn(args, p, &np);
	*rp = p[0];
	return pid;
}

/* Waits (<= timeout s) until the backend has at most max connections; returns
 * the time it took, or -1. */
static double wait_at_most(int port, int max, double timeout)
{
	double t0 = it_now();
	while (it_now() - t0 < timeout) {
		if (established_at(port) <= max)
			return it_now() - t0;
		usleep(10000);
	}
	return -1;
}

/* 24 streams at once through a router keeping at most 4 idle connections for
 * 1 s: the burst opens more than 4 connections; once it is over the backend
 * has at most 4 (at once: the bound holds at every moment), the next request
 * reuses one, and 1 s later the backend has none. (Reading /proc/net/tcp takes
 * tens of ms on a busy machine: it is read only outside the timed parts.) */
static void test_bound_and_timeout(void **state)
{
	(void)state;
	int ep, ne, rp;
	const char *eargs[] = {"engine", "--replicas", "1", "--time-scale", "20", NULL};
	pid_t e = it_spawn(eargs, &ep, &ne);
	assert_true(e > 0);
	const char *extra[] = {"--upstream-keepalive", "4", "--upstream-keepalive-timeout-ms", "1000", NULL};
	pid_t r = router(ep, extra, &rp);
	assert_true(r > 0);
	enum { N = 24 };
	int fds[N];
	char body[256], req[512];
	snprintf(body, sizeof body, "{\"model\":\"" MODEL "\",\"prompt\":\"pool\",\"max_tokens\":60,\"stream\":true}");
	int rl = snprintf(req, sizeof req,
			  "POST /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %zu\r\n\r\n%s",
			  strlen(body), body);
	for (int i = 0; i < N; i++) {
		fds[i] = it_connect(rp);
		it_send(fds[i], req, (size_t)rl);
	}
	struct buf resp;
	buf_init(&resp, 1 << 20);
	for (int i = 0; i < N; i++) {
		buf_reset(&resp);
		assert_int_equal(it_read_all(fds[i], &resp, 30), 0);
		close(fds[i]);
		assert_non_null(strstr(resp.data, "data: [DONE]"));
	}
	double connects = metric_sum(rp, "prefixlb_upstream_connects_total");
	double t_bound = wait_at_most(ep, 4, 2);
	double idle = metric_sum(rp, "prefixlb_upstream_idle_connections");
	fprintf(stderr, "    %d streams: %g connections opened; the backend has at most 4 after %.3f s, %g idle in "
		"the pool\n", N, connects, t_bound, idle);
	assert_true(connects > 4); /* the burst needed more than the bound */
	assert_true(t_bound >= 0 && t_bound < 0.4);
	assert_true(idle >= 1 && idle <= 4);
	/* the next request reuses one of them */
	double reuses = metric_sum(rp, "prefixlb_upstream_reuses_total");
	snprintf(body, sizeof body, "{\"model\":\"" MODEL "\",\"prompt\":\"again\",\"max_tokens\":2}");
	assert_int_equal(it_request(rp, "POST", "/v1/completions", body, &resp, 10), 200);
	assert_true(metric_sum(rp, "prefixlb_upstream_reuses_total") == reuses + 1);
	assert_true(metric_sum(rp, "prefixlb_upstream_connects_total") == connects);
	/* idle for the timeout: closed (the backend sees none), and not long before */
	double t0 = it_now();
	double t_zero = wait_at_most(ep, 0, 4);
	double waited = it_now() - t0;
	fprintf(stderr, "    idle connections all closed %.3f s after the last request (timeout 1 s)\n", waited);
	assert_true(t_zero >= 0);
	assert_true(waited > 0.6);
	assert_true(metric_sum(rp, "prefixlb_upstream_idle_connections") == 0);
	/* --upstream-keepalive 0: a new connection for every request */
	assert_int_equal(it_stop(r), 0);
	const char *none[] = {"--upstream-keepalive", "0", NULL};
	r = router(ep, none, &rp);
	for (int i = 0; i < 3; i++)
		assert_int_equal(it_request(rp, "POST", "/v1/completions", body, &resp, 10), 200);
	assert_true(metric_sum(rp, "prefixlb_upstream_reuses_total") == 0);
	assert_true(metric_sum(rp, "prefixlb_upstream_connects_total") >= 3);
	assert_int_equal(it_stop(r), 0);
	assert_int_equal(it_stop(e), 0);
	buf_free(&resp);
}

/* A backend that answers one request per connection with keep-alive, then
 * closes the connection when the next request arrives on it, unanswered: the
 * race of a backend closing an idle connection as the router reuses it.
 * (Health checks get 200 and a close.) */
static pid_t one_per_connection(int *port)
{
	int fd;
	pid_t pid = it_fork_listener(port, &fd);
	if (pid != 0)
		return pid;
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		char req[65536];
		ssize_t n = it_read_request(c, req, sizeof req);
		if (n <= 0) {
			close(c);
			continue;
		}
		if (strncmp(req, "GET /health", 11) == 0) {
			const char *ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
			send(c, ok, strlen(ok), MSG_NOSIGNAL);
			close(c);
			continue;
		}
		const char *resp = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
		send(c, resp, strlen(resp), MSG_NOSIGNAL);
		char more[4096]; /* the next request on this connection: closed on it, unanswered */
		recv(c, more, sizeof more, 0);
		close(c);
	}
}

/* Through that backend with --retries 0 (no other backend to go to anyway),
 * every request succeeds: each one that found its kept connection closed was
 * sent again on a new one, and counted as such. */
static void test_stale_connection_resent(void **state)
{
	(void)state;
	int bp, rp;
	pid_t b = one_per_connection(&bp);
	assert_true(b > 0);
	const char *extra[] = {"--retries", "0", NULL};
	pid_t r = router(bp, extra, &rp);
	assert_true(r > 0);
	struct buf resp;
	buf_init(&resp, 1 << 20);
	int ok = 0;
	for (int i = 0; i < 10; i++)
		ok += it_request(rp, "POST", "/v1/completions", "{\"model\":\"m\",\"prompt\":\"x\"}", &resp, 10) == 200;
	double resends = metric_sum(rp, "prefixlb_upstream_resends_total");
	double errors = metric_sum(rp, "prefixlb_upstream_errors_total");
	fprintf(stderr, "    backend closing every kept connection on reuse: %d/10 ok, %g sent again\n", ok, resends);
	assert_int_equal(ok, 10);
	assert_true(resends >= 9);
	assert_true(errors == 0);
	assert_int_equal(it_stop(r), 0);
	it_kill(b);
	buf_free(&resp);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bound_and_timeout),
		cmocka_unit_test(test_stale_connection_resent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
