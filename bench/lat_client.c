/* lat_client.c: latency of streamed completions at a fixed concurrency.
 *
 * usage: lat_client PORTS_FILE CONCURRENCY SECONDS MAX_TOKENS [THINK_MS [SAMPLES_FILE]]
 * Each of CONCURRENCY keep-alive connections sends one streamed
 * /v1/completions request after another (connections spread over the ports
 * in PORTS_FILE) for SECONDS (after a 1 s warm-up), optionally pausing an
 * exponentially distributed THINK_MS (mean) between requests (open streams at
 * a bounded rate instead of a saturating loop), and records the time to
 * the first byte of the body (the first SSE event's chunk) and to the end of
 * the response (its last chunk, searched only in the body: a head ending in
 * "x-prefixlb-predicted-cached: 0" is not the end). Prints count, median,
 * p99 of both in microseconds; with SAMPLES_FILE, appends every sample to it
 * ("ttfb_us total_us" lines), so runs can be pooled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <math.h>
#include <uv.h>

#include "benchutil.h"

struct conn;
static void send_req(struct conn *c);

struct conn {
	uv_tcp_t tcp;
	uv_timer_t think;
	uv_connect_t cr;
	uv_write_t wr;
	int id;
	uint64_t t0, t_first;
	int got_first;
	int hstate; /* how much of the head's closing CRLF CRLF was seen (4: in the body) */
	char tail[8];
	size_t tail_len;
	char req[1024];
};

static double *ttfb, *total;
static size_t n_lat, cap_lat;
static uint64_t t_warm, t_end;
static long max_tokens;
static char rbuf[65536];
static int stopping;
static double think_ms;
static uint64_t rng = 88172645463325252ULL;

static double expo(double mean)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	double u = (double)(rng >> 11) / 9007199254740992.0;
	return -mean * log(1 - u);
}

static void on_think(uv_timer_t *t)
{
	send_req(t->data);
}

static void send_req(struct conn *c);

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

static void record(struct conn *c, uint64_t now)
{
	if (c->t0 < t_warm)
		return;
	if (n_lat == cap_lat) {
		cap_lat = cap_lat ? cap_lat * 2 : 4096;
		ttfb = realloc(ttfb, cap_lat * sizeof *ttfb);
		total = realloc(total, cap_lat * sizeof *total);
	}
	ttfb[n_lat] = (double)(c->t_first - c->t0) / 1e3;
	total[n_lat] = (double)(now - c->t0) / 1e3;
	n_lat++;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = st->data;
	if (n < 0) {
		uv_close((uv_handle_t *)st, on_close);
		uv_close((uv_handle_t *)&c->think, on_close);
		return;
	}
	uint64_t now = uv_hrtime();
	const char *p = b->base;
	size_t len = (size_t)n;
	while (c->hstate < 4 && len) { /* the head: "...: 0\r\n\r\n" must not look like the end */
		char ch = *p++;
		len--;
		c->hstate = ch == "\r\n\r\n"[c->hstate] ? c->hstate + 1 : ch == '\r';
	}
	if (!len)
		return;
	if (!c->got_first) { /* the body's first byte: the first event's chunk */
		c->got_first = 1;
		c->t_first = now;
	}
	/* the response ends with the last chunk "0\r\n\r\n" */
	char window[80];
	size_t keep = c->tail_len;
	memcpy(window, c->tail, keep);
	size_t take = len < 64 ? len : 64;
	memcpy(window + keep, p + len - take, take);
	size_t wl = keep + take;
	int done = wl >= 5 && memcmp(window + wl - 5, "0\r\n\r\n", 5) == 0;
	c->tail_len = wl < 7 ? wl : 7;
	memcpy(c->tail, window + wl - c->tail_len, c->tail_len);
	if (done) {
		record(c, now);
		c->tail_len = 0;
		if (now >= t_end) {
			uv_close((uv_handle_t *)st, on_close);
			uv_close((uv_handle_t *)&c->think, on_close);
			return;
		}
		if (think_ms > 0)
			uv_timer_start(&c->think, on_think, (uint64_t)expo(think_ms), 0);
		else
			send_req(c);
	}
}

static void on_write(uv_write_t *w, int status)
{
	(void)w;
	(void)status;
}

static void send_req(struct conn *c)
{
	char body[512];
	static unsigned long seq;
	snprintf(body, sizeof body,
		 "{\"model\":\"llama-3.1-8b-instruct-fp8-l4\",\"prompt\":\"User: latency probe %lu from connection %d, "
		 "a prompt of ordinary length for a chat turn.\",\"max_tokens\":%ld,\"stream\":true}",
		 seq++ % 512, c->id, max_tokens);
	int n = snprintf(c->req, sizeof c->req,
			 "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
			 "content-length: %zu\r\n\r\n%s",
			 strlen(body), body);
	c->got_first = 0;
	c->hstate = 0;
	c->t0 = uv_hrtime();
	uv_buf_t b = uv_buf_init(c->req, (unsigned)n);
	uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_write);
}

static void on_connect(uv_connect_t *cr, int status)
{
	struct conn *c = cr->data;
	if (status < 0) {
		fprintf(stderr, "connect: %s\n", uv_strerror(status));
		uv_close((uv_handle_t *)&c->tcp, on_close);
		uv_close((uv_handle_t *)&c->think, on_close);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	send_req(c);
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	double r = p / 100.0 * (double)(n - 1);
	size_t i = (size_t)r;
	double f = r - (double)i;
	return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s PORTS_FILE CONCURRENCY SECONDS MAX_TOKENS\n", argv[0]);
		return 2;
	}
	bench_raise_nofile();
	int ports[256];
	int np = bench_read_ports(argv[1], ports, 256);
	int conc = atoi(argv[2]);
	double secs = atof(argv[3]);
	max_tokens = atol(argv[4]);
	think_ms = argc > 5 ? atof(argv[5]) : 0;
	if (!np || conc < 1)
		return 2;
	uv_loop_t *loop = uv_default_loop();
	struct conn *cs = calloc((size_t)conc, sizeof *cs);
	uint64_t now = uv_hrtime();
	t_warm = now + 1000000000ULL;
	t_end = t_warm + (uint64_t)(secs * 1e9);
	for (int i = 0; i < conc; i++) {
		struct conn *c = &cs[i];
		c->id = i;
		uv_tcp_init(loop, &c->tcp);
		uv_timer_init(loop, &c->think);
		c->think.data = c;
		c->tcp.data = c;
		c->cr.data = c;
		struct sockaddr_in a;
		uv_ip4_addr("127.0.0.1", ports[i % np], &a);
		uv_tcp_connect(&c->cr, &c->tcp, (struct sockaddr *)&a, on_connect);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	(void)stopping;
	FILE *dump = argc > 6 ? fopen(argv[6], "a") : NULL;
	for (size_t i = 0; dump && i < n_lat; i++)
		fprintf(dump, "%.1f %.1f\n", ttfb[i], total[i]);
	if (dump)
		fclose(dump);
	qsort(ttfb, n_lat, sizeof *ttfb, cmpd);
	qsort(total, n_lat, sizeof *total, cmpd);
	printf("n=%zu ttfb_median_us=%.1f ttfb_p99_us=%.1f total_median_us=%.1f total_p99_us=%.1f req_per_s=%.0f\n",
	       n_lat, pct(ttfb, n_lat, 50), pct(ttfb, n_lat, 99), pct(total, n_lat, 50), pct(total, n_lat, 99),
	       (double)n_lat / secs);
	free(cs);
	free(ttfb);
	free(total);
	return 0;
}
