/* test_server_trickle.c: a request head trickled in small pieces must cost the
 * server about what the same head costs in one piece (src/net/server.c).
 *
 * The old reader re-parsed the head from its first byte on every read, so a
 * head of n bytes in k pieces cost O(n * k) CPU: a client could burn the
 * router's CPU with slow, large heads. The server now searches only the new
 * bytes for the end of the head and parses it once.
 *
 * Method: a 1-replica `prefixlb engine --max-header 4 MiB` and heads just
 * under 4 MB for GET /health (big enough that a re-parse per read costs far
 * more than the read itself). The engine's CPU time (/proc/PID/schedstat, or
 * utime + stime from /proc/PID/stat) is compared between three ways of
 * sending, taken in turn in the same run, never against absolute times:
 * the head in one write; a small head whose body is those same bytes,
 * trickled in SEG-byte pieces (the cost of the reads themselves, which no
 * parser can avoid: a read of a few KB costs ~20 us of system calls here);
 * and the head trickled in SEG-byte pieces. Each piece is sent only after the
 * server has read the previous one (its read(2) byte counter, /proc/PID/io
 * rchar, has moved past it), so every piece is one read, as with a client
 * that paces its trickle. The trickled head must cost no more than 1.5x the
 * first two together. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"

#define HEAD_BYTES (4000 * 1000)
#define SEG 8192
#define ROUNDS 4

static pid_t pid;
static int port;

static int setup(void **state)
{
	(void)state;
	const char *args[] = {"engine", "--replicas", "1", "--max-header", "4194304", NULL};
	int ports[4], n = 0;
	pid = it_spawn(args, ports, &n);
	port = ports[0];
	return pid > 0 && n == 1 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return it_stop(pid) == 0 ? 0 : -1;
}

/* CPU time of the process in ns: utime + stime from /proc/PID/stat, or, when
 * the kernel has it, the scheduler's exact figure for its (only) thread from
 * /proc/PID/schedstat (stat counts in 10 ms ticks). -1 on error. */
static int coarse_clock; /* set when only /proc/PID/stat could be read */

static double cpu_ns(pid_t p)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)p);
	FILE *f = fopen(path, "r");
	unsigned long long ns;
	if (f) {
		int ok = fscanf(f, "%llu", &ns) == 1;
		fclose(f);
		if (ok)
			return (double)ns;
	}
	snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
	f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = '\0';
	const char *s = strrchr(line, ')'); /* the command name may hold spaces */
	unsigned long ut = 0, st = 0;
	if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	coarse_clock = 1;
	return (double)(ut + st) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

/* Bytes the process has read with read(2) and friends (libuv reads sockets so). */
static long long rchar(pid_t p)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/io", (int)p);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long long v = -1;
	char key[32];
	long long x;
	while (fscanf(f, "%31[^:]: %lld\n", key, &x) == 2)
		if (!strcmp(key, "rchar"))
			v = x;
	fclose(f);
	return v;
}

/* GET /health with X-Pad headers up to exactly n bytes, connection: close.
 * Returns 0, or -1 when h is too small. */
static int make_head(struct buf *h, size_t n)
{
	buf_reset(h);
	if (buf_puts(h, "GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"))
		return -1;
	for (int i = 0;; i++) {
		size_t left = n - 2 - h->len, line = left >= 2 * 48000 ? 48000 : left, start = h->len;
		if (buf_printf(h, "x-pad-%03d: ", i))
			return -1;
		while (h->len < start + line - 2)
			if (buf_putc(h, (char)('a' + (h->len % 26))))
				return -1;
		if (buf_puts(h, "\r\n"))
			return -1;
		if (line == left)
			break;
	}
	return buf_puts(h, "\r\n") ? -1 : 0;
}

/* Sends p[0..n) in pieces of seg bytes (seg 0: one write), each piece after
 * the server has read the previous one. Returns 0, or -1 (deadline passed). */
static int send_paced(int fd, const char *p, size_t n, size_t seg, double deadline)
{
	if (!seg)
		return it_send(fd, p, n);
	long long read0 = rchar(pid);
	if (read0 < 0)
		return -1;
	for (size_t off = 0; off < n; off += seg) {
		size_t k = n - off < seg ? n - off : seg;
		if (it_send(fd, p + off, k))
			return -1;
		while (rchar(pid) < read0 + (long long)(off + k)) { /* one piece, one read */
			if (it_now() > deadline)
				return -1;
			usleep(20);
		}
	}
	return 0;
}

/* One request on a fresh connection: head (then body, if any), the head sent
 * in pieces of head_seg bytes and the body in pieces of body_seg; returns
 * the response status or -1. */
static int send_request(const struct buf *head, const struct buf *body, size_t head_seg, size_t body_seg,
			double deadline)
{
	int fd = it_connect(port);
	if (fd < 0)
		return -1;
	int ok = send_paced(fd, head->data, head->len, head_seg, deadline) == 0 &&
		 (!body || send_paced(fd, body->data, body->len, body_seg, deadline) == 0);
	struct buf r;
	buf_init(&r, 1 << 20);
	int st = ok && it_read_all(fd, &r, 10) == 0 && r.len > 12 ? atoi(r.data + 9) : -1;
	close(fd);
	buf_free(&r);
	return st;
}

static void test_trickled_head_is_linear(void **state)
{
	(void)state;
	struct buf h, small, body;
	buf_init(&h, 1 << 23);
	buf_init(&small, 1 << 10);
	buf_init(&body, 1 << 23);
	assert_int_equal(make_head(&h, HEAD_BYTES), 0);
	assert_int_equal(h.len, HEAD_BYTES);
	/* the same bytes as a body behind a small head: the same reads, no head to find */
	buf_printf(&small, "GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n",
		   HEAD_BYTES);
	assert_int_equal(buf_append(&body, h.data, h.len), 0);
	double deadline = it_now() + 30; /* the old quadratic reader: ~2 s of CPU in all here */
	assert_int_equal(send_request(&h, NULL, 0, 0, deadline), 200); /* warm-up: buffers and pages */

	/* the three ways in turn, ROUNDS times, so that load from elsewhere on
	 * the machine falls on all three alike */
	double whole = 0, reads = 0, trickled = 0;
	for (int i = 0; i < ROUNDS; i++) {
		double c0 = cpu_ns(pid);
		assert_int_equal(send_request(&h, NULL, 0, 0, deadline), 200);
		double c1 = cpu_ns(pid);
		assert_int_equal(send_request(&small, &body, 0, SEG, deadline), 200);
		double c2 = cpu_ns(pid);
		assert_int_equal(send_request(&h, NULL, SEG, 0, deadline), 200);
		double c3 = cpu_ns(pid);
		assert_true(c0 >= 0 && c1 >= c0 && c2 >= c1 && c3 >= c2);
		whole += c1 - c0;
		reads += c2 - c1;
		trickled += c3 - c2;
	}
	fprintf(stderr,
		"    %d heads of %d bytes, engine CPU: %.1f ms in one write each; %.1f ms for the same bytes as a body "
		"in %d-byte reads (%d reads each); %.1f ms as heads in %d-byte reads\n",
		ROUNDS, HEAD_BYTES, whole / 1e6, reads / 1e6, SEG, (HEAD_BYTES + SEG - 1) / SEG, trickled / 1e6, SEG);
	/* The budget is the head's cost in one write plus the cost of as many
	 * reads (a read costs its system calls whatever the parser does), with
	 * 1.5x for noise (+60 ms for 10 ms ticks when only /proc/PID/stat could
	 * be read). The old reader, re-parsing up to 4 MB on each read, spent
	 * many times the budget here. */
	assert_true(trickled <= 1.5 * (whole + reads) + (coarse_clock ? 60e6 : 0));
	buf_free(&h);
	buf_free(&small);
	buf_free(&body);
}

/* A head over --max-header is refused with 431 as soon as it passes the
 * limit, without waiting for its end. */
static void test_oversized_head_refused_early(void **state)
{
	(void)state;
	struct buf h;
	buf_init(&h, 1 << 23);
	assert_int_equal(make_head(&h, 4194304 + 8192), 0); /* no byte after the limit is needed to decide */
	int fd = it_connect(port);
	assert_true(fd >= 0);
	assert_int_equal(it_send(fd, h.data, 4194304 + 1), 0); /* the head's end is never sent */
	struct buf r;
	buf_init(&r, 1 << 20);
	assert_int_equal(it_read_until(fd, &r, "\r\n\r\n", 10), 0);
	assert_int_equal(atoi(r.data + 9), 431);
	close(fd);
	buf_free(&r);
	buf_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trickled_head_is_linear),
		cmocka_unit_test(test_oversized_head_refused_early),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
