/* lab_proc.c: the child processes of a live lab run: `prefixlb engine` (the
 * fleet) and `prefixlb route`, spawned from this binary, waited on until they
 * are ready (a ports file they write atomically, then an HTTP answer), and
 * stopped (SIGTERM, then SIGKILL). They die with the lab (PR_SET_PDEATHSIG).
 * Every wait is on a condition with a deadline, never a fixed sleep. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/mem.h"
#include "lab.h"

double lab_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

pid_t lab_spawn(const char *self, const char *const *args, const char *log, const char *out, int errfd)
{
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "prefixlb lab: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (errfd >= 0 ? dup2(errfd, 2) < 0 : log && !freopen(log, "a", stderr))
			_exit(126);
		if (!freopen(out ? out : "/dev/null", "w", stdout))
			_exit(126);
		execv(self, (char *const *)args);
		_exit(127);
	}
	return pid;
}

/* Waits until file lists at least one port (the processes write it
 * atomically) or pid exits; ports[0..n) are filled. 0 on timeout/exit. */
static int wait_ports(const char *file, pid_t pid, int *ports, int max, double timeout)
{
	double end = lab_mono() + timeout;
	while (lab_mono() < end) {
		FILE *f = fopen(file, "r");
		int n = 0;
		if (f) {
			while (n < max && fscanf(f, "%d", &ports[n]) == 1)
				n++;
			fclose(f);
			if (n)
				return n;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return 0;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL); /* a poll interval, not a synchronisation */
	}
	return 0;
}

int lab_stop_pid(pid_t pid)
{
	int st = 0;
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	double end = lab_mono() + 10;
	while (lab_mono() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return st;
}

/* GET path on 127.0.0.1:port; the body (at most cap-1 bytes) in out. Returns the status or -1. */
static int http_get(int port, const char *path, char *out, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n", path);
	size_t got = 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 2000) <= 0 || got + 1 >= cap)
			break;
		ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	out[got] = '\0';
	return got > 12 && !strncmp(out, "HTTP/1.", 7) ? atoi(out + 9) : -1;
}

/* Ready: GET /v1/models lists the backends' model. */
pid_t lab_start_router(const struct lab_ctx *x, const char *policy, int orca, const char *admission, double scale,
		       const int *ports, int np, int *rport)
{
	char rf[1100], log[1100];
	snprintf(rf, sizeof rf, "%s/route.port", x->livedir);
	snprintf(log, sizeof log, "%s/processes.log", x->livedir);
	unlink(rf);
	const char **args = plb_calloc((size_t)np * 2 + 16, sizeof *args);
	char(*urls)[48] = plb_calloc((size_t)np + 1, sizeof *urls);
	if (!args || !urls) {
		free(args);
		free(urls);
		return -1;
	}
	int k = 0;
	char alog[1100]; /* the measured pass's access log (admission's outcomes and queue times) */
	snprintf(alog, sizeof alog, "%s/access.log", x->livedir);
	if (admission)
		unlink(alog);
	const char *fixed[] = {x->self, "route", "--listen", "127.0.0.1:0", "--ports-file", rf, "--policy", policy,
			       "--access-log", admission ? alog : "off", "--orca", orca ? "text" : "off"};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		args[k++] = fixed[i];
	for (int i = 0; i < np; i++) {
		snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d", ports[i]);
		args[k++] = "--backend";
		args[k++] = urls[i];
	}
	char adm[1100];
	if (admission && strncmp(admission, "off", 3)) { /* its times are the engines': scale to the clock */
		snprintf(adm, sizeof adm, "%s:scale=%g", admission, scale);
		args[k++] = "--admission";
		args[k++] = adm;
	}
	args[k] = NULL;
	pid_t rt = lab_spawn(x->self, args, log, NULL, -1);
	free(args);
	free(urls);
	if (rt < 0)
		return -1;
	char body[8192];
	double end = lab_mono() + 30;
	int ready = wait_ports(rf, rt, rport, 1, 30) == 1;
	while (ready && lab_mono() < end) {
		if (http_get(*rport, "/v1/models", body, sizeof body) == 200 && strstr(body, "\"id\""))
			return rt;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	lab_stop_pid(rt);
	fprintf(stderr, "prefixlb lab: the router did not become ready (see %s)\n", log);
	return -1;
}

pid_t lab_start_fleet(const struct lab_ctx *x, const struct lab_point *p, int *ports, int max)
{
	char pf[1100], log[1100], sbuf[32], rbuf[32];
	snprintf(pf, sizeof pf, "%s/engine.ports", x->livedir);
	snprintf(log, sizeof log, "%s/processes.log", x->livedir);
	unlink(pf);
	snprintf(sbuf, sizeof sbuf, "%g", p->scale);
	snprintf(rbuf, sizeof rbuf, "%d", p->replicas);
	size_t n = 0, cap = 16 + 2 * x->params->n;
	const char **args = plb_calloc(cap, sizeof *args);
	if (!args)
		return -1;
	const char *fixed[] = {x->self, "engine", "--port", "0", "--ports-file", pf, "--replicas", rbuf, "--time-scale",
			       sbuf, "--profile", p->profile, "--chat-template", chat_template_name(x->tpl)};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		args[n++] = fixed[i];
	for (size_t i = 0; i < x->params->n; i++) {
		args[n++] = "--param";
		args[n++] = x->params->v[i];
	}
	args[n] = NULL;
	pid_t eng = lab_spawn(x->self, args, log, NULL, -1);
	free(args);
	if (eng < 0)
		return -1;
	if (wait_ports(pf, eng, ports, max, 30) != p->replicas) {
		lab_stop_pid(eng);
		fprintf(stderr, "prefixlb lab: the engine fleet did not start (see %s)\n", log);
		return -1;
	}
	return eng;
}
