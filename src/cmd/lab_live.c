/* lab_live.c: one live run of the lab: a fresh `prefixlb engine` fleet, warmed
 * (when the point asks for it) by one pass of the first max-conversations
 * requests through a router with the warm-up's policy, then a router with the
 * run's policy and the measured `prefixlb bench`, all child processes of this
 * one on loopback (they die with it: PR_SET_PDEATHSIG). The engine runs
 * --time-scale times faster; the client's rate, floor, lag, think time and
 * timeout are scaled to match, and the measured times are scaled back, so
 * results read in simulated seconds. Every wait is on a condition (a ports
 * file, an HTTP answer, a child's exit) with a deadline, never a fixed sleep. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
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

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs self with args; stderr appends to log, stdout goes to out (or nowhere).
 * Returns the pid, or -1 (with a message) when fork fails. */
static pid_t spawn(const char *self, const char *const *args, const char *log, const char *out)
{
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "prefixlb lab: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log && !freopen(log, "a", stderr))
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
	double end = mono() + timeout;
	while (mono() < end) {
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

static int stop_pid(pid_t pid)
{
	int st = 0;
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	double end = mono() + 10;
	while (mono() < end) {
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

/* A router with the policy in front of the fleet, ready: its health checks
 * have learned the backends' model (GET /v1/models lists it). */
static pid_t start_router(const struct lab_ctx *x, const char *policy, const char *admission, double scale,
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
			       "--access-log", admission ? alog : "off"};
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
	pid_t rt = spawn(x->self, args, log, NULL);
	free(args);
	free(urls);
	if (rt < 0)
		return -1;
	char body[8192];
	double end = mono() + 30;
	int ready = wait_ports(rf, rt, rport, 1, 30) == 1;
	while (ready && mono() < end) {
		if (http_get(*rport, "/v1/models", body, sizeof body) == 200 && strstr(body, "\"id\""))
			return rt;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	stop_pid(rt);
	fprintf(stderr, "prefixlb lab: the router did not become ready (see %s)\n", log);
	return -1;
}

static pid_t start_fleet(const struct lab_ctx *x, const struct lab_point *p, int *ports, int max)
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
	pid_t eng = spawn(x->self, args, log, NULL);
	free(args);
	if (eng < 0)
		return -1;
	if (wait_ports(pf, eng, ports, max, 30) != p->replicas) {
		stop_pid(eng);
		fprintf(stderr, "prefixlb lab: the engine fleet did not start (see %s)\n", log);
		return -1;
	}
	return eng;
}

/* The bench's saved result, scaled back to simulated time. */
static int read_result(const char *json, double scale, struct lab_result *r)
{
	json_error_t e;
	json_t *j = json_load_file(json, 0, &e);
	if (!j) {
		fprintf(stderr, "prefixlb lab: %s: no result (%s)\n", json, e.text);
		return -1;
	}
#define JN(k) json_number_value(json_object_get(j, k))
	struct bench_metrics *m = &r->m;
	memset(m, 0, sizeof *m);
	m->completed = (long)json_integer_value(json_object_get(j, "completed"));
	m->failed = (long)json_integer_value(json_object_get(j, "failed"));
	m->duration = JN("duration") * scale;
	m->total_input = (long)json_integer_value(json_object_get(j, "total_input_tokens"));
	m->total_output = (long)json_integer_value(json_object_get(j, "total_output_tokens"));
	m->request_throughput = JN("request_throughput") / scale;
	m->output_throughput = JN("output_throughput") / scale;
	m->total_token_throughput = JN("total_token_throughput") / scale;
	static const char *const names[M_COUNT] = {"ttft", "tpot", "itl", "e2el"};
	for (int k = 0; k < M_COUNT; k++) {
		char key[64];
		snprintf(key, sizeof key, "mean_%s_ms", names[k]);
		m->m[k].mean = JN(key) * scale;
		snprintf(key, sizeof key, "median_%s_ms", names[k]);
		m->m[k].median = JN(key) * scale;
		snprintf(key, sizeof key, "p99_%s_ms", names[k]);
		m->m[k].pct[0] = JN(key) * scale;
	}
	m->n_percentiles = 1;
	m->percentiles[0] = 99;
	r->hit_rate = JN("cache_hit_rate");
	r->timed_out = (long)json_integer_value(json_object_get(j, "timed_out"));
	r->rejected = (long)json_integer_value(json_object_get(j, "rejected"));
	json_t *gp = json_object_get(j, "request_goodput:");
	if (json_is_number(gp)) {
		m->has_goodput = 1;
		m->request_goodput = json_number_value(gp) / scale;
	}
	const char *tname;
	json_t *tv;
	r->n_ten = 0;
	json_object_foreach(json_object_get(j, "tenants"), tname, tv) {
		if (r->n_ten == LAB_MAX_TENANTS)
			break;
		struct lab_tenant *t = &r->ten[r->n_ten++];
		snprintf(t->name, sizeof t->name, "%s", tname);
		t->ok = (long)json_integer_value(json_object_get(tv, "completed"));
		t->failed = (long)json_integer_value(json_object_get(tv, "failed"));
		t->rejected = (long)json_integer_value(json_object_get(tv, "rejected"));
		t->ttft_mean = json_number_value(json_object_get(tv, "mean_ttft_ms")) * scale;
		t->ttft_p99 = json_number_value(json_object_get(tv, "p99_ttft_ms")) * scale;
		t->goodput = json_number_value(json_object_get(tv, "request_goodput")) / scale;
	}
#undef JN
	json_decref(j);
	return 0;
}

/* Admission's outcomes from the router's access log ("admission":"NAME"). */
static void admission_outcomes(const char *path, struct admit_stats *st)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	while (f && fgets(line, sizeof line, f)) {
		const char *a = strstr(line, "\"admission\":\"");
		for (int o = ADMIT_DIRECT; a && o < ADMIT_N_OUTCOMES; o++) {
			size_t n = strlen(admit_outcome_name(o));
			if (!strncmp(a + 13, admit_outcome_name(o), n) && a[13 + n] == '"')
				st->outcomes[o]++;
		}
	}
	if (f)
		fclose(f);
}

/* Load spread from the bench's "Requests on BACKEND:" lines (x-prefixlb-backend). */
static double load_spread(const char *txt, int replicas)
{
	FILE *f = fopen(txt, "r");
	char line[512];
	long tot = 0, mx = 0;
	while (f && fgets(line, sizeof line, f)) {
		const char *c = strncmp(line, "Requests on ", 12) ? NULL : strrchr(line, ':');
		if (c) {
			long v = atol(c + 1);
			tot += v;
			mx = v > mx ? v : mx;
		}
	}
	if (f)
		fclose(f);
	return tot ? (double)mx / ((double)tot / replicas) : 0;
}

int lab_run_live(const struct lab_ctx *x, const struct lab_workload *w, const struct lab_point *p,
		 struct lab_result *r)
{
	double w0 = mono();
	memset(r, 0, sizeof *r);
	r->p = *p;
	const char *warm = lab_warm_policy(p);
	r->warm = warm ? warm : "none";
	int ports[4096];
	pid_t eng = start_fleet(x, p, ports, 4096);
	if (eng < 0)
		return -1;
	char log[1100], json[1300], txt[1300], url[64], nbuf[32], mbuf[32], cbuf[32], fbuf[32], lbuf[32], seedbuf[32],
		ratebuf[32], thbuf[32], capbuf[32], tobuf[32];
	snprintf(log, sizeof log, "%s/processes.log", x->livedir);
	snprintf(mbuf, sizeof mbuf, "%ld", p->max_conv);
	snprintf(cbuf, sizeof cbuf, "%ld", p->conc);
	snprintf(fbuf, sizeof fbuf, "%g", p->floor_ms / p->scale);
	snprintf(lbuf, sizeof lbuf, "%g", p->lag_ms / p->scale);
	snprintf(seedbuf, sizeof seedbuf, "%ld", p->seed);
	if (isfinite(p->rate))
		snprintf(ratebuf, sizeof ratebuf, "%g", p->rate * p->scale);
	else
		snprintf(ratebuf, sizeof ratebuf, "inf");
	snprintf(thbuf, sizeof thbuf, "%g", p->think_s / p->scale);
	snprintf(capbuf, sizeof capbuf, "%ld", p->output_cap);
	snprintf(tobuf, sizeof tobuf, "%g", p->timeout_s / p->scale);
	int rc = 0;
	char pol[64];
	snprintf(pol, sizeof pol, "%.*s", (int)strcspn(p->policy, ":"), p->policy);
	for (int pass = warm ? 0 : 1; pass < 2 && !rc; pass++) {
		int rport;
		pid_t rt = start_router(x, pass ? p->policy : warm, pass ? p->admission : NULL, p->scale, ports, p->replicas,
					&rport);
		if (rt < 0) {
			rc = -1;
			break;
		}
		snprintf(url, sizeof url, "http://127.0.0.1:%d", rport);
		snprintf(nbuf, sizeof nbuf, "%ld", pass ? p->num : p->max_conv < p->num ? p->max_conv : p->num);
		snprintf(json, sizeof json, "%s/%s-%ld%s.json", x->livedir, pol, p->conc, pass ? "" : "-warm-up");
		snprintf(txt, sizeof txt, "%s/%s-%ld%s.txt", x->livedir, pol, p->conc, pass ? "" : "-warm-up");
		const char *bargs[] = {x->self, "bench", "--disable-tqdm", "--base-url", url, "--dataset-path", w->file,
				       "--num-prompts", nbuf, "--max-conversations", mbuf, "--seed", seedbuf,
				       "--request-rate", ratebuf, "--max-concurrency", cbuf, "--dispatch-floor-ms", fbuf,
				       "--connect-lag-ms", lbuf, "--multi-turn-mode", p->workload, "--think-time-s", thbuf,
				       "--max-output-tokens", capbuf, "--request-timeout-s", tobuf, "--chat-template",
				       chat_template_name(x->tpl), p->ignore_eos ? "--ignore-eos" : "--save-result",
				       "--save-result", "--result-filename", json, NULL, NULL, NULL, NULL, NULL};
		size_t nb = sizeof bargs / sizeof *bargs - 5;
		char gbuf[64];
		if (x->goodput_ttft_ms > 0) {
			snprintf(gbuf, sizeof gbuf, "ttft:%g", x->goodput_ttft_ms / p->scale);
			bargs[nb++] = "--goodput";
			bargs[nb++] = gbuf;
		}
		if (pass && p->tenants) {
			bargs[nb++] = "--tenants";
			bargs[nb++] = p->tenants;
		}
		unlink(json);
		pid_t bp = spawn(x->self, bargs, log, txt);
		int st = 0;
		if (bp < 0 || waitpid(bp, &st, 0) != bp)
			rc = -1;
		stop_pid(rt);
	}
	stop_pid(eng);
	if (!rc && !(rc = read_result(json, p->scale, r))) {
		r->load_spread = load_spread(txt, p->replicas);
		char alog[1100];
		snprintf(alog, sizeof alog, "%s/access.log", x->livedir);
		if (p->admission && strncmp(p->admission, "off", 3))
			admission_outcomes(alog, &r->adm);
		r->ok = 1;
	}
	r->cpu_s = mono() - w0;
	return rc;
}
