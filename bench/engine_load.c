/* engine_load.c: opens N concurrent streaming completions against an engine
 * fleet and reports what the engine process sustained.
 *
 * usage: engine_load PORTS_FILE ENGINE_PID STREAMS MAX_TOKENS
 * Connections are spread over the replicas in PORTS_FILE; each sends one
 * streamed /v1/completions request and counts SSE events. Prints peak open
 * streams, tokens received, wall time, tokens/s, and the engine's CPU time per
 * token (utime + stime from /proc/PID/stat). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "benchutil.h"

struct conn {
	uv_tcp_t tcp;
	uv_connect_t cr;
	uv_write_t wr;
	char req[512];
	long events;
	int last_nl;
	int done;
};

static long open_now, open_peak, finished, failed, total_events;
static char rbuf[65536];

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	(void)h;
	(void)s;
	*b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_close(uv_handle_t *h)
{
	(void)h;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = st->data;
	if (n < 0) {
		if (!c->done) {
			c->done = 1;
			open_now--;
			/* events minus [DONE]: tokens */
			if (c->events > 1)
				finished++;
			else
				failed++;
			total_events += c->events > 0 ? c->events - 1 : 0;
		}
		uv_close((uv_handle_t *)st, on_close);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (b->base[i] == '\n') {
			if (c->last_nl)
				c->events++;
			c->last_nl = 1;
		} else {
			c->last_nl = 0;
		}
	}
}

static void on_write(uv_write_t *w, int status)
{
	(void)w;
	(void)status;
}

static void on_connect(uv_connect_t *cr, int status)
{
	struct conn *c = cr->data;
	if (status < 0) {
		failed++;
		c->done = 1;
		uv_close((uv_handle_t *)&c->tcp, on_close);
		return;
	}
	open_now++;
	if (open_now > open_peak)
		open_peak = open_now;
	uv_buf_t b = uv_buf_init(c->req, (unsigned)strlen(c->req));
	uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static double cpu_s(int pid)
{
	char p[64], s[4096];
	snprintf(p, sizeof p, "/proc/%d/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	size_t n = fread(s, 1, sizeof s - 1, f);
	fclose(f);
	s[n] = 0;
	char *q = strrchr(s, ')');
	unsigned long ut = 0, st = 0;
	if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s PORTS_FILE ENGINE_PID STREAMS MAX_TOKENS\n", argv[0]);
		return 2;
	}
	bench_raise_nofile();
	int ports[1024];
	int np = bench_read_ports(argv[1], ports, 1024);
	int pid = atoi(argv[2]);
	long n = atol(argv[3]), mt = atol(argv[4]);
	if (!np || n < 1) {
		fprintf(stderr, "no ports\n");
		return 2;
	}
	uv_loop_t *loop = uv_default_loop();
	struct conn *cs = calloc((size_t)n, sizeof *cs);
	double c0 = cpu_s(pid);
	uint64_t t0 = uv_hrtime();
	for (long i = 0; i < n; i++) {
		struct conn *c = &cs[i];
		char body[256];
		snprintf(body, sizeof body,
			 "{\"model\":\"llama-3.1-8b-instruct-fp8-l4\",\"prompt\":\"Stream number %ld says hello to the engine and asks for tokens.\","
			 "\"max_tokens\":%ld,\"stream\":true}",
			 i, mt);
		snprintf(c->req, sizeof c->req,
			 "POST /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(body), body);
		uv_tcp_init(loop, &c->tcp);
		c->tcp.data = c;
		c->cr.data = c;
		struct sockaddr_in a;
		uv_ip4_addr("127.0.0.1", ports[i % np], &a);
		uv_tcp_connect(&c->cr, &c->tcp, (struct sockaddr *)&a, on_connect);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	double wall = (double)(uv_hrtime() - t0) / 1e9;
	double cpu = cpu_s(pid) - c0;
	printf("engine: streams=%ld peak_open=%ld finished=%ld failed=%ld tokens=%ld wall_s=%.2f tokens_per_s=%.0f "
	       "engine_cpu_s=%.2f cpu_us_per_token=%.2f tokens_per_cpu_s=%.0f\n",
	       n, open_peak, finished, failed, total_events, wall, (double)total_events / wall, cpu,
	       total_events ? cpu / (double)total_events * 1e6 : 0, cpu > 0 ? (double)total_events / cpu : 0);
	free(cs);
	uv_loop_close(loop);
	return failed ? 1 : 0;
}
