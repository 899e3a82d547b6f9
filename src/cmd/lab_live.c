/* lab_live.c: one live run of the lab: a fresh `prefixlb engine` fleet, warmed
 * (when the point asks for it) by one pass of the first max-conversations
 * requests through a router with the warm-up's policy, then a router with the
 * run's policy and the measured `prefixlb bench`, all child processes of this
 * one on loopback (lab_proc.c starts and stops the engine and the routers;
 * this file watches the bench and reads its results). The engine runs
 * --time-scale times faster; the client's rate, floor, lag, think time and
 * timeout are scaled to match, and the measured times are scaled back, so
 * results read in simulated seconds. Every wait is on a condition (a ports
 * file, an HTTP answer, a child's exit) with a deadline, never a fixed sleep. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lab.h"

/* Watching the measured (or warm-up) bench. It prints a progress line every
 * few seconds on its stderr, a pipe to this process, and the lab shows each
 * one in simulated seconds (rewritten in place on a terminal); its other
 * stderr lines go to the log. The wait is a waitpid on the child between
 * polls of the pipe, bounded: a bench that prints nothing for BENCH_SILENT_S
 * plus two intervals, or finishes no request for BENCH_STUCK_S (or three
 * intervals if longer), is stopped and the run fails. */
#define BENCH_SILENT_S 120
#define BENCH_STUCK_S 900

struct relay {
	const char *what; /* "measured pass" */
	double scale, interval; /* simulated seconds per real second; the bench's line interval */
	int tty, shown;
	FILE *log;
	char buf[4096];
	size_t len;
	long count;       /* done + failed at the last change */
	double t_change;  /* when it last changed */
};

static void relay_line(struct relay *rl, const char *line)
{
	long done, failed, total;
	double el;
	char tot[32];
	if (sscanf(line, "progress: %ld/%31s requests done, %ld failed, %lf s elapsed", &done, tot, &failed, &el) != 4) {
		if (rl->log && *line)
			fprintf(rl->log, "%s\n", line);
		return;
	}
	total = atol(tot);
	if (done + failed != rl->count) {
		rl->count = done + failed;
		rl->t_change = lab_mono();
	}
	char msg[256];
	int k = snprintf(msg, sizeof msg, "  %s: %ld", rl->what, done);
	if (total > 0)
		k += snprintf(msg + k, sizeof msg - (size_t)k, " of %ld requests done (%ld%%)", total, 100 * done / total);
	else
		k += snprintf(msg + k, sizeof msg - (size_t)k, " requests done");
	k += snprintf(msg + k, sizeof msg - (size_t)k, ", %ld failed, %.0f s simulated in %.0f s", failed, el * rl->scale, el);
	double left = total > 0 && done > 0 ? el * (double)(total - done) / (double)done : 0;
	if (left >= 1)
		snprintf(msg + k, sizeof msg - (size_t)k, ", about %.0f s left", left);
	if (rl->tty)
		fprintf(stderr, "\r%s\033[K", msg);
	else
		fprintf(stderr, "%s\n", msg);
	rl->shown = 1;
}

/* Reads what the pipe has; relays every whole line. Returns the bytes read,
 * 0 at the end of the pipe, -1 when nothing is there now. */
static ssize_t relay_read(struct relay *rl, int fd)
{
	ssize_t r = read(fd, rl->buf + rl->len, sizeof rl->buf - 1 - rl->len);
	if (r <= 0)
		return r < 0 && errno != EAGAIN && errno != EINTR ? 0 : r;
	rl->len += (size_t)r;
	char *start = rl->buf, *nl;
	while ((nl = memchr(start, '\n', rl->len - (size_t)(start - rl->buf)))) {
		*nl = '\0';
		relay_line(rl, start);
		start = nl + 1;
	}
	rl->len -= (size_t)(start - rl->buf);
	memmove(rl->buf, start, rl->len);
	if (rl->len == sizeof rl->buf - 1) { /* a line longer than the buffer: pass it on in pieces */
		rl->buf[rl->len] = '\0';
		relay_line(rl, rl->buf);
		rl->len = 0;
	}
	return r;
}

/* Waits for the bench bp, relaying its stderr (the pipe fd). Returns 0 when
 * it exited (its status in *st), -1 when it was stopped or lost. */
static int wait_bench(pid_t bp, int fd, struct relay *rl, int *st)
{
	double last_out = lab_mono(), silent = BENCH_SILENT_S + 2 * rl->interval,
	       stuck = BENCH_STUCK_S > 3 * rl->interval ? BENCH_STUCK_S : 3 * rl->interval;
	int rc = 0, open = 1;
	rl->t_change = last_out;
	for (;;) {
		pid_t w = waitpid(bp, st, WNOHANG);
		if (w == bp)
			break;
		if (w < 0 && errno != EINTR) {
			rc = -1;
			break;
		}
		double now = lab_mono();
		if (now - last_out > silent || now - rl->t_change > stuck) {
			fprintf(stderr, "%sprefixlb lab: the bench %s for %.0f s: stopped (see the log)\n",
				rl->shown && rl->tty ? "\n" : "", now - last_out > silent ? "printed nothing" : "finished no request",
				now - last_out > silent ? silent : stuck);
			lab_stop_pid(bp);
			rl->shown = 0;
			rc = -1;
			break;
		}
		struct pollfd p = {fd, POLLIN, 0};
		if (open && poll(&p, 1, 1000) > 0) {
			ssize_t r = relay_read(rl, fd);
			if (r == 0)
				open = 0; /* the bench is exiting: its waitpid comes next */
			else if (r > 0)
				last_out = lab_mono();
		} else if (!open) {
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL); /* a poll interval, not a synchronisation */
		}
	}
	while (open && relay_read(rl, fd) > 0)
		;
	if (rl->len) {
		rl->buf[rl->len] = '\0';
		relay_line(rl, rl->buf);
		rl->len = 0;
	}
	if (rl->shown && rl->tty)
		fputc('\n', stderr);
	return rc;
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
	double w0 = lab_mono();
	memset(r, 0, sizeof *r);
	r->p = *p;
	const char *warm = lab_warm_policy(p);
	r->warm = warm ? warm : "none";
	int ports[4096];
	pid_t eng = lab_start_fleet(x, p, ports, 4096);
	if (eng < 0)
		return -1;
	char log[1100], json[1300], txt[1300], url[64], nbuf[32], mbuf[32], cbuf[32], fbuf[32], lbuf[32], seedbuf[32],
		ratebuf[32], thbuf[32], capbuf[32], tobuf[32], pbuf[32];
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
	snprintf(pbuf, sizeof pbuf, "%g", x->progress_s > 0 ? x->progress_s : 10);
	int rc = 0;
	char pol[64];
	snprintf(pol, sizeof pol, "%.*s", (int)strcspn(p->policy, ":"), p->policy);
	for (int pass = warm ? 0 : 1; pass < 2 && !rc; pass++) {
		int rport;
		pid_t rt = lab_start_router(x, pass ? p->policy : warm, p->orca, pass ? p->admission : NULL, p->scale,
					    ports, p->replicas, &rport);
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
				       "--save-result", "--result-filename", json, "--progress-interval-s", pbuf,
				       NULL, NULL, NULL, NULL, NULL};
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
		fprintf(stderr, "  %s pass: %s%s routed by %s%s\n", pass ? "measured" : "warm-up", nbuf,
			strcmp(p->workload, "sessions") ? " requests" : " turns at most", pass ? p->policy : warm,
			pass ? "" : " (unmeasured: it fills the replicas' prefix caches)");
		int pfd[2], st = 0;
		if (pipe2(pfd, O_CLOEXEC)) {
			fprintf(stderr, "prefixlb lab: pipe: %s\n", strerror(errno));
			rc = -1;
			lab_stop_pid(rt);
			break;
		}
		pid_t bp = lab_spawn(x->self, bargs, log, txt, pfd[1]);
		close(pfd[1]);
		fcntl(pfd[0], F_SETFL, O_NONBLOCK);
		struct relay rl = {.what = pass ? "measured pass" : "warm-up pass", .scale = p->scale,
				   .interval = atof(pbuf), .tty = isatty(2), .log = fopen(log, "a")};
		if (bp < 0 || wait_bench(bp, pfd[0], &rl, &st))
			rc = -1; /* else its saved result says how it went (none when no request succeeded) */
		if (rl.log)
			fclose(rl.log);
		close(pfd[0]);
		lab_stop_pid(rt);
	}
	lab_stop_pid(eng);
	if (!rc && !(rc = read_result(json, p->scale, r))) {
		r->load_spread = load_spread(txt, p->replicas);
		char alog[1100];
		snprintf(alog, sizeof alog, "%s/access.log", x->livedir);
		if (p->admission && strncmp(p->admission, "off", 3))
			admission_outcomes(alog, &r->adm);
		r->ok = 1;
		if (r->m.completed > 0 && r->m.m[M_ITL].median < 0.1 * r->m.m[M_TPOT].median) /* ITL ~ TPOT, one token a step */
			fprintf(stderr, "  (median ITL %.1f ms, TPOT %.1f ms: the bench read tokens in bursts, the machine was too "
					"busy for time scale %g;\n   this run's times are off: try a lower --time-scale or an idle "
					"machine)\n",
				r->m.m[M_ITL].median, r->m.m[M_TPOT].median, p->scale);
	}
	r->cpu_s = lab_mono() - w0;
	return rc;
}
