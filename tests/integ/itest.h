/* itest.h: helpers for the C integration tests (header-only, tests only).
 * Servers are started as real processes on 127.0.0.1 with kernel-chosen ports
 * (--port 0 --ports-file), waited for with a deadline, and stopped by PID. */
#ifndef PREFIXLB_ITEST_H
#define PREFIXLB_ITEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

static inline double it_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline const char *it_bin(void)
{
	const char *p = getenv("PREFIXLB");
	return p ? p : "build/prefixlb";
}

/* Starts `prefixlb ARGS... --port 0 --ports-file F` and waits (<= 20 s) for
 * its ports. Returns the pid; ports[0..*n) are filled. */
static inline pid_t it_spawn(const char *const *args, int *ports, int *n)
{
	char pf[64];
	snprintf(pf, sizeof pf, "/tmp/prefixlb-it-%d-%ld.ports", getpid(), random());
	unlink(pf);
	const char *argv[64];
	int k = 0;
	argv[k++] = it_bin();
	for (int i = 0; args[i] && k < 58; i++)
		argv[k++] = args[i];
	if (strcmp(args[0], "route") == 0) {
		argv[k++] = "--listen";
		argv[k++] = "127.0.0.1:0";
	} else {
		argv[k++] = "--port";
		argv[k++] = "0";
	}
	argv[k++] = "--ports-file";
	argv[k++] = pf;
	argv[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	double end = it_now() + 20;
	*n = 0;
	while (it_now() < end) {
		FILE *f = fopen(pf, "r"); /* written atomically (rename) */
		if (f) {
			while (*n < 256 && fscanf(f, "%d", &ports[*n]) == 1)
				(*n)++;
			fclose(f);
			unlink(pf);
			if (*n > 0)
				return pid;
			break;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* SIGTERM, then SIGKILL after 10 s; returns the exit status (or -1). */
static inline int it_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	double end = it_now() + 10;
	int st;
	while (it_now() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Kills a fake server (or any child) and reaps it. */
static inline void it_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static inline int it_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static inline int it_send(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads into out until `needle` appears (needle NULL: until the peer closes)
 * or timeout_s passes. Returns 0 when that happened, -1 on timeout (or, with
 * a needle, when the peer closed first). */
static inline int it_read(int fd, struct buf *out, const char *needle, double timeout_s)
{
	double end = it_now() + timeout_s;
	char b[65536];
	while (!needle || !out->data || !strstr(out->data, needle)) {
		int ms = (int)((end - it_now()) * 1000);
		if (ms <= 0)
			return -1;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, ms) <= 0)
			return -1;
		ssize_t r = recv(fd, b, sizeof b, 0);
		if (r <= 0)
			return needle ? -1 : 0;
		buf_append(out, b, (size_t)r);
	}
	return 0;
}

static inline int it_read_all(int fd, struct buf *out, double timeout_s)
{
	return it_read(fd, out, NULL, timeout_s);
}

static inline int it_read_until(int fd, struct buf *out, const char *needle, double timeout_s)
{
	return it_read(fd, out, needle, timeout_s);
}

/* One request on a fresh connection with "connection: close"; the whole raw
 * response goes to out. Returns the status code, or -1. */
static inline int it_request(int port, const char *method, const char *path, const char *body, struct buf *out,
			     double timeout_s)
{
	int fd = it_connect(port);
	if (fd < 0)
		return -1;
	struct buf req;
	buf_init(&req, 1u << 30);
	buf_printf(&req, "%s %s HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n", method, path);
	if (body)
		buf_printf(&req, "content-type: application/json\r\ncontent-length: %zu\r\n\r\n%s", strlen(body), body);
	else
		buf_puts(&req, "\r\n");
	int rc = it_send(fd, req.data, req.len);
	buf_free(&req);
	buf_reset(out);
	if (!rc)
		rc = it_read_all(fd, out, timeout_s);
	close(fd);
	if (rc || out->len < 12)
		return -1;
	return atoi(out->data + 9);
}

/* The body of a raw response, de-chunked when chunked. */
static inline void it_body(const struct buf *resp, struct buf *body)
{
	buf_reset(body);
	const char *h = resp->data ? strstr(resp->data, "\r\n\r\n") : NULL;
	if (!h)
		return;
	const char *p = h + 4, *end = resp->data + resp->len;
	if (!strcasestr(resp->data, "transfer-encoding: chunked") || strcasestr(resp->data, "transfer-encoding: chunked") > h) {
		buf_append(body, p, (size_t)(end - p));
		return;
	}
	while (p < end) {
		char *e;
		unsigned long n = strtoul(p, &e, 16);
		if (e == p || !n)
			break;
		p = strstr(e, "\r\n");
		if (!p)
			break;
		p += 2;
		if ((size_t)(end - p) < n)
			n = (unsigned long)(end - p);
		buf_append(body, p, n);
		p += n + 2;
	}
}

static inline int it_count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Value of a Prometheus series line "name{...} value" (first match). */
static inline double it_metric(const char *text, const char *series)
{
	const char *p = text;
	size_t n = strlen(series);
	while ((p = strstr(p, series))) {
		if ((p == text || p[-1] == '\n') && (p[n] == ' ' || p[n] == '{')) {
			const char *sp = strchr(p, ' ');
			return sp ? atof(sp + 1) : -1;
		}
		p += n;
	}
	return -1;
}

#endif

/* ---- fake backends for failure tests ------------------------------------- */

enum it_fake { IT_HANG, IT_GARBAGE, IT_CUT, IT_503, IT_SLOW, IT_RECORD };

/* IT_RECORD appends every byte of every request but health checks to this
 * file and answers 200 "{}". */
static const char *it_record_path;

/* IT_SLOW's answer: a whole, valid SSE stream, sent one byte every 5 ms. */
#define IT_SLOW_RESPONSE                                                                                            \
	"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"                \
	"2f\r\ndata: {\"choices\":[{\"text\":\"slow\",\"index\":0}]}\n\n\r\n"                                 \
	"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"

/* Listens on 127.0.0.1 (kernel-chosen port, into *port) and forks: returns
 * the child's pid in the parent (-1 on failure), 0 in the child, which gets the
 * listening socket in *lfd, dies with its parent and ignores SIGPIPE. */
static inline pid_t it_fork_listener(int *port, int *lfd)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128) || getsockname(fd, (struct sockaddr *)&a, &al)) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	pid_t pid = fork();
	if (pid != 0) {
		close(fd);
		return pid;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	*lfd = fd;
	return 0;
}

/* Reads one request (head and a small body, by its Content-Length) from c into
 * req, NUL-terminated; returns the bytes read (<= 0: nothing came). */
static inline ssize_t it_read_request(int c, char *req, size_t cap)
{
	ssize_t n = 0, r;
	req[0] = 0;
	while (n < (ssize_t)cap - 1 && (r = recv(c, req + n, cap - 1 - (size_t)n, 0)) > 0) {
		n += r;
		req[n] = 0;
		char *h = strstr(req, "\r\n\r\n");
		if (h) {
			char *cl = strcasestr(req, "content-length:");
			long want = cl ? atol(cl + 15) : 0;
			if (n - (h + 4 - req) >= want)
				break;
		}
	}
	return n;
}

/* Forks a tiny misbehaving HTTP server on 127.0.0.1 (kernel-chosen port).
 * Returns its pid; *port is set. Stop it with it_stop/kill. */
static inline pid_t it_fake_server(enum it_fake mode, int *port)
{
	int fd;
	pid_t pid = it_fork_listener(port, &fd);
	if (pid != 0)
		return pid;
	int nh = 0; /* connections held open (IT_HANG): never closed, never answered */
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		char req[65536];
		ssize_t n = it_read_request(c, req, sizeof req);
		int is_health = strncmp(req, "GET /health", 11) == 0;
		const char *resp = NULL;
		if (is_health && mode != IT_503)
			resp = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
		else if (mode == IT_GARBAGE)
			resp = "THIS IS NOT HTTP\r\n\r\n";
		else if (mode == IT_503)
			resp = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno";
		else if (mode == IT_CUT)
			resp = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
			       "1c\r\ndata: {\"choices\":[{}]}\n\n\r\n";
		if (mode == IT_RECORD && !is_health) {
			FILE *f = fopen(it_record_path, "a");
			if (f) {
				fwrite(req, 1, (size_t)n, f);
				fclose(f);
			}
			resp = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
			       "connection: close\r\n\r\n{}";
		}
		if (mode == IT_SLOW && !is_health) {
			for (const char *q = IT_SLOW_RESPONSE; *q; q++) {
				if (send(c, q, 1, MSG_NOSIGNAL) != 1)
					break;
				usleep(5000);
			}
		} else if (resp) {
			send(c, resp, strlen(resp), MSG_NOSIGNAL);
		}
		if (mode == IT_HANG && !is_health && nh < 1024)
			nh++; /* keep c open, never answer */
		else
			close(c);
	}
}
