/* test_route.c: `prefixlb route` in front of `prefixlb engine` and of fake,
 * misbehaving backends, over loopback. Every process is started with a
 * kernel-chosen port and stopped by PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include <fcntl.h>

#include "itest.h"

#define MODEL "llama-3.1-8b-instruct-fp8-l4"

static pid_t engine;
static int eports[8], n_eports;

static int setup(void **state)
{
	(void)state;
	const char *args[] = {"engine", "--replicas", "4", "--time-scale", "20", NULL};
	engine = it_spawn(args, eports, &n_eports);
	return engine > 0 && n_eports == 4 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return it_stop(engine) == 0 ? 0 : -1;
}

/* Starts a router over the given backend ports plus extra args; with log
 * non-NULL its stderr goes to that file (truncated). */
static pid_t router_log(const int *ports, int n, const char *const *extra, int *port, const char *log)
{
	const char *args[64];
	static char urls[16][64];
	int k = 0;
	args[k++] = "route";
	for (int i = 0; i < n; i++) {
		snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d", ports[i]);
		args[k++] = "--backend";
		args[k++] = urls[i];
	}
	args[k++] = "--access-log";
	args[k++] = "off";
	for (int i = 0; extra && extra[i]; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	int p[2], np, saved = -1;
	if (log) { /* the child inherits fd 2 */
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		saved = dup(2);
		dup2(fd, 2);
		close(fd);
	}
	pid_t pid = it_spawn(args, p, &np);
	if (log) {
		dup2(saved, 2);
		close(saved);
	}
	*port = p[0];
	/* wait until the first health checks have learnt the models */
	struct buf r;
	buf_init(&r, 1 << 20);
	for (int i = 0; i < 100; i++) {
		if (it_request(*port, "GET", "/v1/models", NULL, &r, 5) == 200 && strstr(r.data, MODEL))
			break;
		usleep(20000);
	}
	buf_free(&r);
	return pid;
}

static pid_t router(const int *ports, int n, const char *const *extra, int *port)
{
	return router_log(ports, n, extra, port, NULL);
}

static char *backend_of(const struct buf *resp, char *out, size_t n)
{
	const char *h = strcasestr(resp->data, "x-prefixlb-backend: ");
	if (!h)
		return NULL;
	h += 20;
	size_t l = strcspn(h, "\r\n");
	snprintf(out, n, "%.*s", (int)(l < n ? l : n - 1), h);
	return out;
}

/* Sum of a per-backend gauge over all backends, and its max and min. */
static void gauge_stats(const char *text, const char *name, double *sum, double *mx, double *mn)
{
	*sum = 0;
	*mx = -1;
	*mn = 1e18;
	size_t nl = strlen(name);
	for (const char *p = text; (p = strstr(p, name)); p += nl) {
		if (p != text && p[-1] != '\n')
			continue;
		if (p[nl] != '{')
			continue;
		const char *sp = strchr(p, ' ');
		double v = atof(sp + 1);
		*sum += v;
		*mx = v > *mx ? v : *mx;
		*mn = v < *mn ? v : *mn;
	}
}

static double in_flight_total(int port)
{
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(port, "GET", "/metrics", NULL, &m, 5);
	double sum, mx, mn;
	gauge_stats(m.data ? m.data : "", "prefixlb_backend_in_flight", &sum, &mx, &mn);
	double all = it_metric(m.data ? m.data : "", "prefixlb_in_flight");
	buf_free(&m);
	return sum + all;
}

static int wait_zero(int port, double timeout)
{
	double end = it_now() + timeout;
	while (it_now() < end) {
		if (in_flight_total(port) == 0)
			return 0;
		usleep(20000);
	}
	return -1;
}

/* Each conversation's turns land on one replica; conversations spread. */
static void test_prefix_hash_sticks_and_spreads(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(eports, 4, NULL, &rp);
	assert_true(r > 0);
	struct buf resp, body;
	buf_init(&resp, 1 << 20);
	buf_init(&body, 1 << 20);
	char used[4][64] = {{0}};
	int n_used = 0, later_cached = 0;
	for (int conv = 0; conv < 16; conv++) {
		char first[64] = "";
		buf_reset(&body);
		/* KubeAI hashes the first 100 characters: the first message is longer */
		buf_printf(&body, "User: conversation %d wants to talk about topic number %d at some length, "
				  "with a first message long enough to fill the routing key.\\n",
			   conv, conv * 7);
		for (int turn = 0; turn < 4; turn++) {
			char req[8192];
			snprintf(req, sizeof req, "{\"model\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":2}", MODEL, body.data);
			assert_int_equal(it_request(rp, "POST", "/v1/completions", req, &resp, 10), 200);
			char be[64];
			assert_non_null(backend_of(&resp, be, sizeof be));
			if (turn == 0)
				strcpy(first, be);
			else
				assert_string_equal(be, first);
			if (turn == 3 && !strstr(resp.data, "\"cached_tokens\":0}"))
				later_cached++;
			buf_printf(&body, "Assistant: answer %d for turn %d.\\nUser: and another question, turn %d, "
					  "with more words to fill a block or two of tokens.\\n",
				   conv, turn, turn + 1);
		}
		int seen = 0;
		for (int i = 0; i < n_used; i++)
			seen |= !strcmp(used[i], first);
		if (!seen && n_used < 4)
			strcpy(used[n_used++], first);
	}
	assert_true(n_used >= 3);
	assert_true(later_cached >= 12); /* the replica held the conversation's prefix */
	assert_int_equal(wait_zero(rp, 5), 0);
	assert_int_equal(it_stop(r), 0);
	buf_free(&resp);
	buf_free(&body);
}

/* Opens n streams (max_tokens long) with the given prompt maker; returns fds. */
static void open_streams(int port, int n, int same_key, int *fds, int max_tokens)
{
	for (int i = 0; i < n; i++) {
		char body[512], req[1024];
		snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"User: %s %d\",\"max_tokens\":%d,\"stream\":true}",
			 MODEL, same_key ? "the same hot prompt for everyone" : "a different prompt number", same_key ? 0 : i,
			 max_tokens);
		snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(body), body);
		fds[i] = it_connect(port);
		it_send(fds[i], req, strlen(req));
	}
	/* wait for every head */
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < n; i++) {
		buf_reset(&b);
		it_read_until(fds[i], &b, "\r\n\r\n", 10);
	}
	buf_free(&b);
}

static void metrics_spread(int port, double *sum, double *mx, double *mn)
{
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(port, "GET", "/metrics", NULL, &m, 5);
	gauge_stats(m.data, "prefixlb_backend_in_flight", sum, mx, mn);
	buf_free(&m);
}

static void test_least_load_evens(void **state)
{
	(void)state;
	int rp;
	const char *extra[] = {"--policy", "least-load", NULL};
	pid_t r = router(eports, 4, extra, &rp);
	int fds[40];
	open_streams(rp, 40, 1, fds, 3000);
	double sum, mx, mn;
	metrics_spread(rp, &sum, &mx, &mn);
	fprintf(stderr, "    least-load, 40 streams of one prompt: in flight per backend %g..%g\n", mn, mx);
	assert_true(sum == 40);
	assert_true(mx - mn <= 1);
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	assert_int_equal(wait_zero(rp, 5), 0);
	assert_int_equal(it_stop(r), 0);
}

/* A hot prompt spills past its owner once the owner is over the bound. */
static void test_bounded_load_spills(void **state)
{
	(void)state;
	int rp;
	pid_t r = router(eports, 4, NULL, &rp);
	int fds[40];
	open_streams(rp, 40, 1, fds, 3000);
	double sum, mx, mn;
	metrics_spread(rp, &sum, &mx, &mn);
	fprintf(stderr, "    prefix-hash, 40 streams of one prompt: in flight per backend %g..%g\n", mn, mx);
	assert_true(sum == 40);
	assert_true(mx <= 1.25 * 40 / 4 + 1); /* bounded */
	assert_true(mx >= 10);                 /* the owner is filled first */
	assert_true(mn < mx);
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	assert_int_equal(wait_zero(rp, 5), 0);
	assert_int_equal(it_stop(r), 0);
}

static void expect(int port, const char *raw, int status, const char *frag)
{
	int fd = it_connect(port);
	struct buf r;
	buf_init(&r, 1 << 22);
	it_send(fd, raw, strlen(raw));
	it_read_all(fd, &r, 10);
	close(fd);
	int st = r.len > 12 ? atoi(r.data + 9) : -1;
	if (st != status || (frag && !strstr(r.data, frag)))
		fprintf(stderr, "sent %.60s... got %d:\n%.400s\n", raw, st, r.data ? r.data : "");
	assert_int_equal(st, status);
	if (frag)
		assert_non_null(strstr(r.data, frag));
	buf_free(&r);
}

static void post_to(int port, const char *path, const char *body, int status, const char *frag)
{
	char req[70000];
	snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %zu\r\n\r\n%s",
		 path, strlen(body), body);
	expect(port, req, status, frag);
}

static void post(int port, const char *body, int status, const char *frag)
{
	post_to(port, "/v1/completions", body, status, frag);
}

static void test_bad_input(void **state)
{
	(void)state;
	int rp;
	const char *extra[] = {"--max-body", "65536", "--max-messages", "3", NULL};
	pid_t r = router(eports, 4, extra, &rp);
	post_to(rp, "/v1/chat/completions",
		"{\"model\":\"" MODEL "\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
		"{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\",\"content\":\"c\"},"
		"{\"role\":\"user\",\"content\":\"d\"}]}",
		400, "too many messages: 4");
	post_to(rp, "/v1/chat/completions",
		"{\"model\":\"" MODEL "\",\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
		200, "chat.completion");
	expect(rp, "NOT HTTP\r\n\r\n", 400, "\"error\"");
	expect(rp, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
	       400, "Transfer-Encoding and Content-Length");
	expect(rp, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}", 400,
	       NULL);
	expect(rp, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n", 501, NULL);
	expect(rp, "GET /v1/models HTTP/1.1\nhost: x\n\n", 400, NULL);
	static char big[80000];
	memset(big, 0, sizeof big);
	strcpy(big, "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ");
	memset(big + strlen(big), 'a', 70000);
	strcat(big, "\r\n\r\n");
	expect(rp, big, 431, NULL);
	/* 101 headers: over the count limit */
	strcpy(big, "GET /v1/models HTTP/1.1\r\nhost: x\r\n");
	for (int i = 0; i < 100; i++)
		sprintf(big + strlen(big), "x-h%d: v\r\n", i);
	strcat(big, "\r\n");
	expect(rp, big, 431, "too many headers");
	/* a prompt longer than the model's context (16,384 tokens): 400 from the engine, passed through */
	strcpy(big, "{\"model\":\"" MODEL "\",\"max_tokens\":1,\"prompt\":\"");
	size_t bl = strlen(big);
	for (int i = 0; i < 20000; i++, bl += 2)
		memcpy(big + bl, " a", 2);
	strcpy(big + bl, "\"}");
	post(rp, big, 400, "maximum context length");
	char huge[256];
	snprintf(huge, sizeof huge, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 999999\r\n\r\n");
	expect(rp, huge, 413, NULL);
	post(rp, "{\"model\": ", 400, "invalid JSON");
	post(rp, "{\"model\":\"nope\",\"prompt\":\"hi\"}", 404, "does not exist");
	post(rp, "{\"model\":\"" MODEL "\",\"prompt\":\"bad \xff\xfe utf8\"}", 400, "\"error\"");
	post(rp, "{\"model\":\"" MODEL "\",\"prompt\":[\"a\",\"b\"],\"max_tokens\":1}", 200, "\"index\":1"); /* a batch */
	post(rp, "{\"model\":\"" MODEL "\",\"prompt\":\"x\",\"max_tokens\":-3}", 400, "max_tokens"); /* from the engine */
	expect(rp, "GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", 404, "\"error\"");
	expect(rp, "DELETE /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", 405, NULL);
	/* deep JSON: well-formed, 600 levels (over the 512 limit) refused, 400 accepted */
	static char deep[60000];
	for (int levels = 600; levels >= 400; levels -= 200) {
		strcpy(deep, "{\"model\":\"" MODEL "\",\"prompt\":\"x\",\"max_tokens\":1,\"extra\":");
		size_t l = strlen(deep);
		for (int i = 0; i < levels; i++)
			deep[l++] = '[';
		for (int i = 0; i < levels; i++)
			deep[l++] = ']';
		strcpy(deep + l, "}");
		post(rp, deep, levels > 512 ? 400 : 200, levels > 512 ? "\"error\"" : "text_completion");
	}
	/* still healthy, nothing counted */
	expect(rp, "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", 200, "ok");
	assert_int_equal(wait_zero(rp, 5), 0);
	assert_int_equal(it_stop(r), 0);
}

/* Request smuggling through the router: every payload hides a second request
 * ("GET /smuggled") behind an ambiguous or malformed frame. Each must be
 * answered with an error (400; 501 for a transfer coding we don't do, 413 for
 * a chunk size past any limit) and the connection closed, and the backend (which
 * records every byte it gets) must never see "/smuggled". A plain request
 * first proves the recorder works. */
#define SM "GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"
#define PC "POST /v1/completions HTTP/1.1\r\nhost: x\r\n"
#define SMUGGLE(name, raw, status) {name, raw, sizeof raw - 1, status}
static const struct smuggle {
	const char *name, *raw;
	size_t len;
	int status;
} smuggles[] = {
	SMUGGLE("CL.TE", PC "content-length: 40\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("TE.CL", PC "transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n23\r\n" SM "\r\n0\r\n\r\n", 400),
	SMUGGLE("duplicate Content-Length", PC "content-length: 0\r\ncontent-length: 35\r\n\r\n" SM, 400),
	SMUGGLE("Content-Length list", PC "content-length: 0, 35\r\n\r\n" SM, 400),
	SMUGGLE("Content-Length +sign", PC "content-length: +0\r\n\r\n" SM, 400),
	SMUGGLE("Content-Length space before colon", PC "content-length : 0\r\n\r\n" SM, 400),
	SMUGGLE("two Transfer-Encoding", PC "transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("TE space before colon", PC "transfer-encoding : chunked\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("TE xchunked", PC "transfer-encoding: xchunked\r\n\r\n0\r\n\r\n" SM, 501),
	SMUGGLE("TE chunked, identity", PC "transfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n" SM, 501),
	SMUGGLE("TE vertical tab", PC "transfer-encoding:\x0b" "chunked\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("TE with NUL", PC "transfer-encoding: chunked\0\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("TE folded", PC "transfer-encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("bare LF", "POST /v1/completions HTTP/1.1\nhost: x\ncontent-length: 0\n\n" SM, 400),
	SMUGGLE("bare CR", "POST /v1/completions HTTP/1.1\r\nhost: x\rcontent-length: 35\r\n\r\n" SM, 400),
	SMUGGLE("NUL in request line", "POST /v1/completions\0 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n" SM, 400),
	SMUGGLE("absurd chunk size", PC "transfer-encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n" SM, 413),
	SMUGGLE("negative chunk size", PC "transfer-encoding: chunked\r\n\r\n-23\r\n" SM "\r\n0\r\n\r\n", 400),
	SMUGGLE("chunk size 0x prefix", PC "transfer-encoding: chunked\r\n\r\n0x23\r\n" SM "\r\n0\r\n\r\n", 400),
	SMUGGLE("chunk data longer than its size", PC "transfer-encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("HTTP/1.0 keep-alive with TE", "POST /v1/completions HTTP/1.0\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" SM, 400),
	SMUGGLE("two Host", PC "host: y\r\ncontent-length: 0\r\n\r\n" SM, 400),
	SMUGGLE("request line with two spaces", "POST  /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n" SM, 400),
	SMUGGLE("HTTP/1.1 with a bad version", "POST /v1/completions HTTP/1.10\r\nhost: x\r\ncontent-length: 0\r\n\r\n" SM, 400),
};

static void test_smuggling(void **state)
{
	(void)state;
	char path[] = "/tmp/prefixlb-smuggle-XXXXXX";
	int tfd = mkstemp(path);
	assert_true(tfd >= 0);
	close(tfd);
	it_record_path = path;
	int bp, rp;
	pid_t rec = it_fake_server(IT_RECORD, &bp);
	const char *extra[] = {"--retries", "0", NULL};
	pid_t r = router(&bp, 1, extra, &rp);
	post(rp, "{\"model\":\"m\",\"prompt\":\"plain\"}", 200, "{}");
	struct buf resp, seen;
	buf_init(&resp, 1 << 20);
	buf_init(&seen, 1 << 24);
	size_t n = sizeof smuggles / sizeof *smuggles, ok = 0;
	for (size_t i = 0; i < n; i++) {
		const struct smuggle *c = &smuggles[i];
		int fd = it_connect(rp);
		it_send(fd, c->raw, c->len);
		buf_reset(&resp);
		int closed = it_read_all(fd, &resp, 5) == 0;
		close(fd);
		buf_append(&resp, "", 1);
		int st = resp.len > 12 ? atoi(resp.data + 9) : -1;
		int responses = it_count(resp.data, "HTTP/1.1 ");
		int good = st == c->status && closed && responses == 1;
		ok += good;
		if (!good)
			fprintf(stderr, "    smuggling %-34s got %d (want %d), closed %d, %d responses\n", c->name, st,
				c->status, closed, responses);
	}
	assert_int_equal(it_stop(r), 0);
	it_kill(rec);
	FILE *f = fopen(path, "r");
	char b[4096];
	size_t k;
	while (f && (k = fread(b, 1, sizeof b, f)) > 0)
		buf_append(&seen, b, k);
	if (f)
		fclose(f);
	unlink(path);
	buf_append(&seen, "", 1);
	int plain = it_count(seen.data, "plain"), smuggled = it_count(seen.data, "/smuggled");
	fprintf(stderr, "    smuggling: %zu of %zu payloads refused and closed; the backend saw %d plain request(s), "
		"%d smuggled\n", ok, n, plain, smuggled);
	assert_int_equal(plain, 1);
	assert_int_equal(smuggled, 0);
	assert_int_equal(ok, n);
	buf_free(&resp);
	buf_free(&seen);
}

/* Hanging and broken backends: timeouts and errors are clean, counters end at 0. */
static void test_broken_backends(void **state)
{
	(void)state;
	int hp, gp, cp;
	pid_t hang = it_fake_server(IT_HANG, &hp);
	pid_t garb = it_fake_server(IT_GARBAGE, &gp);
	pid_t cut = it_fake_server(IT_CUT, &cp);
	int ports[1];
	const char *extra[] = {"--first-byte-timeout-ms", "300", "--retries", "0", NULL};
	char body[256];
	snprintf(body, sizeof body, "{\"model\":\"m\",\"prompt\":\"hello\",\"stream\":true}");
	int rp;
	ports[0] = hp;
	pid_t r = router(ports, 1, extra, &rp);
	double t0 = it_now();
	post(rp, body, 504, "first-byte timeout");
	assert_true(it_now() - t0 < 10);
	assert_int_equal(wait_zero(rp, 5), 0);
	it_stop(r);
	ports[0] = gp;
	r = router(ports, 1, extra, &rp);
	post(rp, body, 502, "\"error\"");
	assert_int_equal(wait_zero(rp, 5), 0);
	it_stop(r);
	/* closes mid-stream: the client sees a truncated chunked response */
	ports[0] = cp;
	r = router(ports, 1, extra, &rp);
	int fd = it_connect(rp);
	char req[512];
	snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s", strlen(body),
		 body);
	it_send(fd, req, strlen(req));
	struct buf resp;
	buf_init(&resp, 1 << 20);
	assert_int_equal(it_read_all(fd, &resp, 5), 0); /* closed by the router */
	close(fd);
	assert_non_null(strstr(resp.data, "HTTP/1.1 200"));
	assert_null(strstr(resp.data, "\r\n0\r\n\r\n")); /* no clean end */
	assert_int_equal(wait_zero(rp, 5), 0);
	it_stop(r);
	buf_free(&resp);
	it_kill(hang);
	it_kill(garb);
	it_kill(cut);
}

/* A backend that answers one byte every 5 ms (~0.8 s in all): relayed whole
 * when the idle timeout (400 ms) is longer than its gaps though shorter than
 * the whole response, cut cleanly (timeout counted, nothing left in flight)
 * when it is shorter than a gap. */
static void test_slow_backend(void **state)
{
	(void)state;
	int sp;
	pid_t slow = it_fake_server(IT_SLOW, &sp);
	char body[256], req[512];
	snprintf(body, sizeof body, "{\"model\":\"m\",\"prompt\":\"hello\",\"stream\":true}");
	snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
		 strlen(body), body);
	struct buf resp, m, dec;
	buf_init(&resp, 1 << 20);
	buf_init(&m, 1 << 22);
	buf_init(&dec, 1 << 20);
	for (int cut = 0; cut < 2; cut++) {
		const char *extra[] = {"--idle-timeout-ms", cut ? "2" : "400", "--retries", "0", NULL};
		int rp;
		pid_t r = router(&sp, 1, extra, &rp);
		int fd = it_connect(rp);
		it_send(fd, req, strlen(req));
		buf_reset(&resp);
		double t0 = it_now();
		int rc = it_read_until(fd, &resp, "\r\n0\r\n\r\n", 10);
		close(fd);
		buf_reset(&m);
		it_request(rp, "GET", "/metrics", NULL, &m, 5);
		double timeouts = it_metric(m.data, "prefixlb_timeouts_total");
		fprintf(stderr, "    slow backend, idle timeout %s ms: %s after %.2f s, %g timeouts\n", extra[1],
			rc == 0 ? "whole stream" : "cut", it_now() - t0, timeouts);
		assert_int_equal(wait_zero(rp, 5), 0);
		if (cut) {
			assert_int_not_equal(rc, 0);
			assert_true(timeouts >= 1);
		} else {
			assert_int_equal(rc, 0);
			it_body(&resp, &dec);
			buf_append(&dec, "", 1);
			assert_non_null(strstr(dec.data, "\"text\":\"slow\""));
			assert_non_null(strstr(dec.data, "data: [DONE]"));
			assert_true(timeouts == 0);
		}
		assert_int_equal(it_stop(r), 0);
	}
	it_kill(slow);
	buf_free(&resp);
	buf_free(&m);
	buf_free(&dec);
}

/* The backend sends its stream one byte every 5 ms, so "data: [DONE]" reaches
 * the router split over many reads. A client that closes as soon as it has
 * [DONE] (as benchmark clients do) had the whole answer: the router must count
 * a completed request, not a client that went away (it used to match [DONE]
 * only at the end of one read). */
static void test_done_split_then_close(void **state)
{
	(void)state;
	int sp;
	pid_t slow = it_fake_server(IT_SLOW, &sp);
	const char *extra[] = {"--retries", "0", NULL};
	int rp;
	pid_t r = router(&sp, 1, extra, &rp);
	char body[128], req[512];
	snprintf(body, sizeof body, "{\"model\":\"m\",\"prompt\":\"hello\",\"stream\":true}");
	snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
		 strlen(body), body);
	struct buf resp, dec, m;
	buf_init(&resp, 1 << 20);
	buf_init(&dec, 1 << 20);
	buf_init(&m, 1 << 22);
	int fd = it_connect(rp);
	it_send(fd, req, strlen(req));
	double end = it_now() + 10;
	int got = 0;
	char b[4096];
	while (!got && it_now() < end) { /* de-chunk as it comes: the router re-chunks every byte */
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, b, sizeof b, 0);
		if (n <= 0)
			break;
		buf_append(&resp, b, (size_t)n);
		it_body(&resp, &dec);
		buf_append(&dec, "", 1);
		got = strstr(dec.data, "data: [DONE]\n\n") != NULL;
	}
	assert_true(got);
	close(fd); /* before the backend's last chunk: the router still relays "\r\n0\r\n\r\n" */
	assert_int_equal(wait_zero(rp, 5), 0);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	assert_true(it_metric(m.data, "prefixlb_client_disconnects_total") == 0);
	assert_non_null(strstr(m.data, "code=\"200\"} 1"));
	assert_int_equal(it_stop(r), 0);
	it_kill(slow);
	buf_free(&resp);
	buf_free(&dec);
	buf_free(&m);
}

/* One streamed chat turn through the router: the answer's text, its usage and
 * the backend that served it. */
struct turn {
	char answer[4096];
	long prompt_tokens, completion_tokens, cached_tokens, predicted;
	char backend[96];
};

static void chat_turn(int rp, const char *messages, struct turn *t)
{
	char body[20000];
	snprintf(body, sizeof body,
		 "{\"model\":\"" MODEL "\",\"messages\":%s,\"max_completion_tokens\":23,\"stream\":true,"
		 "\"stream_options\":{\"include_usage\":true}}",
		 messages);
	struct buf r, b;
	buf_init(&r, 1 << 22);
	buf_init(&b, 1 << 22);
	assert_int_equal(it_request(rp, "POST", "/v1/chat/completions", body, &r, 30), 200);
	backend_of(&r, t->backend, sizeof t->backend);
	const char *ph = strcasestr(r.data, "x-prefixlb-predicted-cached: ");
	t->predicted = ph ? atol(ph + 29) : -1;
	it_body(&r, &b);
	buf_append(&b, "", 1);
	size_t al = 0;
	t->answer[0] = '\0';
	for (const char *p = b.data; (p = strstr(p, "data: {")); p++) {
		json_error_t e;
		const char *end = strstr(p, "\n\n");
		json_t *ev = json_loadb(p + 6, (size_t)(end - p - 6), 0, &e);
		assert_non_null(ev);
		json_t *ch = json_array_get(json_object_get(ev, "choices"), 0);
		const char *piece = json_string_value(json_object_get(json_object_get(ch, "delta"), "content"));
		if (piece) {
			al += (size_t)snprintf(t->answer + al, sizeof t->answer - al, "%s", piece);
		}
		json_t *u = json_object_get(ev, "usage");
		if (json_is_object(u)) {
			t->prompt_tokens = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
			t->completion_tokens = (long)json_integer_value(json_object_get(u, "completion_tokens"));
			t->cached_tokens = (long)json_integer_value(
				json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
		}
		json_decref(ev);
	}
	buf_free(&r);
	buf_free(&b);
}

/* A chat conversation through the router with prefix-hash: the second turn
 * (the history with the model's own answer) goes to the replica of the first
 * and hits every full KV block of what that replica computed: the first
 * prompt and all but the last token of its answer (vLLM V1 caches the blocks of
 * generated tokens as they fill; the last sampled token never has KV). */
static void test_chat_second_turn_hits_answer(void **state)
{
	(void)state;
	const char *extra[] = {"--policy", "prefix-hash", NULL};
	int rp;
	pid_t r = router(eports, 4, extra, &rp);
	char m1[2048], m2[16384];
	snprintf(m1, sizeof m1, "[{\"role\":\"user\",\"content\":\"Tell me about the old house near the river, "
				"and the children who play in the green field under the summer sky. %d\"}]",
		 (int)getpid());
	struct turn t1, t2;
	chat_turn(rp, m1, &t1);
	assert_int_equal(t1.completion_tokens, 23);
	assert_true(t1.answer[0] && t1.answer[0] != ' '); /* an answer does not start with a space */
	char esc[8192];
	size_t k = 0;
	for (const char *p = t1.answer; *p && k + 2 < sizeof esc; p++) {
		if (*p == '"' || *p == '\\')
			esc[k++] = '\\';
		esc[k++] = *p;
	}
	esc[k] = '\0';
	m1[strlen(m1) - 1] = '\0'; /* drop "]" */
	snprintf(m2, sizeof m2, "%s,{\"role\":\"assistant\",\"content\":\"%s\"},{\"role\":\"user\",\"content\":"
				"\"And then?\"}]",
		 m1, esc);
	chat_turn(rp, m2, &t2);
	fprintf(stderr, "    turn 1: %ld prompt tokens on %s; turn 2: %ld prompt tokens, %ld cached, on %s\n",
		t1.prompt_tokens, t1.backend, t2.prompt_tokens, t2.cached_tokens, t2.backend);
	assert_string_equal(t1.backend, t2.backend);
	assert_true(t2.prompt_tokens > t1.prompt_tokens + t1.completion_tokens);
	assert_int_equal(t2.cached_tokens, (t1.prompt_tokens + t1.completion_tokens - 1) / 16 * 16);
	assert_int_equal(it_stop(r), 0);
}

/* lowest-ttft keeps a conversation on the replica that holds it, and says
 * what it predicted: the second turn's predicted cached tokens (every full
 * block of the first prompt, recorded when it was routed) is what the engine
 * reports minus the blocks of the first answer (which only the engine knows). */
static void test_lowest_ttft_conversation(void **state)
{
	(void)state;
	const char *extra[] = {"--policy", "lowest-ttft", NULL};
	int rp;
	pid_t r = router(eports, 4, extra, &rp);
	for (int conv = 0; conv < 4; conv++) {
		char m1[2048], m2[16384], esc[8192];
		snprintf(m1, sizeof m1, "[{\"role\":\"user\",\"content\":\"Conversation %d: tell me about the old "
					"house near the river and the children who play in the green field. %d\"}]",
			 conv, (int)getpid());
		struct turn t1, t2;
		chat_turn(rp, m1, &t1);
		size_t k = 0;
		for (const char *p = t1.answer; *p && k + 2 < sizeof esc; p++) {
			if (*p == '"' || *p == '\\')
				esc[k++] = '\\';
			esc[k++] = *p;
		}
		esc[k] = '\0';
		m1[strlen(m1) - 1] = '\0';
		snprintf(m2, sizeof m2,
			 "%s,{\"role\":\"assistant\",\"content\":\"%s\"},{\"role\":\"user\",\"content\":\"And then?\"}]",
			 m1, esc);
		chat_turn(rp, m2, &t2);
		assert_string_equal(t1.backend, t2.backend);
		assert_int_equal(t2.cached_tokens, (t1.prompt_tokens + t1.completion_tokens - 1) / 16 * 16);
		assert_int_equal(t2.predicted, t1.prompt_tokens / 16 * 16);
	}
	/* both figures reach /metrics */
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	double pred = 0, real = 0, mx, mn;
	gauge_stats(m.data, "prefixlb_predicted_cached_tokens_total", &pred, &mx, &mn);
	gauge_stats(m.data, "prefixlb_realized_cached_tokens_total", &real, &mx, &mn);
	assert_true(pred > 0 && real > pred);
	assert_non_null(strstr(m.data, "prefixlb_policy_index_entries{policy=\"lowest-ttft\",backend=\"\"}"));
	buf_free(&m);
	assert_int_equal(it_stop(r), 0);
}

/* A burst of 32 requests at once sharing a ~2,200-token system prompt, through
 * lowest-ttft. With one-line questions, the prompt's holder serves them all
 * better than a cold replica could (a miss there prefills the whole preamble,
 * and the questions add almost nothing to the holder's queue): they stay on
 * at most 2 replicas (the guard's bound makes a second holder). With ~500-token
 * questions of their own, the holder's queue soon costs more than a cold
 * prefill: the burst spreads to 3 or more. */
static int shared_prefix_burst(const char *preamble, int long_questions, int *counts)
{
	static char question[2600];
	size_t ql = 0;
	for (int i = 0; long_questions && ql + 60 < sizeof question - 100; i++)
		ql += (size_t)snprintf(question + ql, sizeof question - ql, "detail %d of my long question, ", i);
	question[ql] = 0;
	const char *extra[] = {"--policy", "lowest-ttft", NULL};
	int rp;
	pid_t r = router(eports, 4, extra, &rp);
	int fds[32];
	for (int i = 0; i < 32; i++) {
		static char body[40000], req[41000];
		int bl = snprintf(body, sizeof body,
				  "{\"model\":\"" MODEL "\",\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},"
				  "{\"role\":\"user\",\"content\":\"Question %d: %s?\"}],\"max_completion_tokens\":40}",
				  preamble, i, question);
		int rl = snprintf(req, sizeof req,
				  "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
				  "content-length: %d\r\n\r\n%s",
				  bl, body);
		fds[i] = it_connect(rp);
		it_send(fds[i], req, (size_t)rl);
	}
	char names[4][96] = {{0}};
	int used = 0;
	memset(counts, 0, 4 * sizeof *counts);
	for (int i = 0; i < 32; i++) {
		struct buf resp;
		buf_init(&resp, 1 << 20);
		it_read_all(fds[i], &resp, 60);
		close(fds[i]);
		char be[96];
		assert_non_null(backend_of(&resp, be, sizeof be));
		int k;
		for (k = 0; k < used && strcmp(names[k], be); k++)
			;
		if (k == used)
			snprintf(names[used++], sizeof names[0], "%s", be);
		counts[k]++;
		buf_free(&resp);
	}
	assert_int_equal(it_stop(r), 0);
	return used;
}

static void test_shared_prefix_spreads(void **state)
{
	(void)state;
	static char preamble[9000];
	size_t pl = 0;
	for (int i = 0; pl + 80 < sizeof preamble - 200; i++)
		pl += (size_t)snprintf(preamble + pl, sizeof preamble - pl, "Rule %d: answer politely and briefly. ", i);
	int c[4];
	int light = shared_prefix_burst(preamble, 0, c);
	fprintf(stderr, "    one-line questions: 32 requests sharing a prefix went to %d replicas (%d/%d/%d/%d)\n",
		light, c[0], c[1], c[2], c[3]);
	int heavy = shared_prefix_burst(preamble, 1, c);
	fprintf(stderr, "    long questions: 32 requests sharing a prefix went to %d replicas (%d/%d/%d/%d)\n", heavy,
		c[0], c[1], c[2], c[3]);
	assert_true(light <= 2);
	assert_true(heavy >= 3);
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

/* 40 clients ask for 16,000-token streams (~3.5 MB each) from an engine
 * running flat out and never read a byte (a 4 KiB receive buffer each): the
 * router pauses their backend transfers, its memory stays bounded (<= 40 x
 * 256 KiB of queue plus a little), and when the clients go every request ends.
 * (The engine has generated everything by then, so there is nothing to abort
 * there: cancellation of live upstream requests is test_storm_counters_zero's.)
 * Note: loopback send buffers grow to 4 MB (tcp_wmem), so a slower stream is
 * absorbed by the kernel before the router's own queue ever fills. */
static void test_never_reading_clients(void **state)
{
	(void)state;
	int fast[2], nf, rp;
	const char *eargs[] = {"engine", "--replicas", "2", "--time-scale", "1000000", NULL};
	pid_t fe = it_spawn(eargs, fast, &nf);
	assert_true(fe > 0 && nf == 2);
	pid_t r = router(fast, 2, NULL, &rp);
	long rss0 = rss_kb(r);
	enum { N = 40 };
	int fds[N];
	char body[256], req[512];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"hi\",\"max_tokens\":16000,\"stream\":true}", MODEL);
	snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
		 strlen(body), body);
	for (int i = 0; i < N; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		int small = 4096;
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rp)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
		it_send(fds[i], req, strlen(req));
	}
	struct buf m;
	buf_init(&m, 1 << 22);
	double paused = 0, peak = 0;
	long rss_max = rss0;
	for (int k = 0; k < 80 && (k < 10 || peak < N / 2); k++) { /* 1 to 8 s */
		usleep(100000);
		long kb = rss_kb(r);
		rss_max = kb > rss_max ? kb : rss_max;
		buf_reset(&m);
		it_request(rp, "GET", "/metrics", NULL, &m, 5);
		paused = it_metric(m.data, "prefixlb_paused_streams");
		peak = paused > peak ? paused : peak;
	}
	double in_flight = it_metric(m.data, "prefixlb_in_flight");
	fprintf(stderr, "    %d clients not reading: %g streams paused (peak %g), %g in flight, router RSS %.1f -> %.1f MB\n",
		N, paused, peak, in_flight, rss0 / 1024.0, rss_max / 1024.0);
	assert_true(peak >= N / 2);
	assert_true(rss_max - rss0 < N * 320 + 16 * 1024);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	assert_int_equal(wait_zero(rp, 10), 0);
	buf_reset(&m);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	fprintf(stderr, "    after they left: %g paused, %g in flight, %g client disconnects\n",
		it_metric(m.data, "prefixlb_paused_streams"), it_metric(m.data, "prefixlb_in_flight"),
		it_metric(m.data, "prefixlb_client_disconnects_total"));
	assert_true(it_metric(m.data, "prefixlb_paused_streams") == 0);
	assert_true(it_metric(m.data, "prefixlb_client_disconnects_total") >= N);
	assert_int_equal(it_stop(r), 0);
	assert_int_equal(it_stop(fe), 0);
	buf_free(&m);
}

/* A killed backend: its requests are retried on another, it is ejected, and
 * re-admitted when it comes back; 503s are retried too. */
static void test_dead_backend_retry_and_readmit(void **state)
{
	(void)state;
	int p503;
	pid_t f503 = it_fake_server(IT_503, &p503);
	/* a second engine that we can kill */
	const char *args[] = {"engine", "--replicas", "1", "--time-scale", "20", NULL};
	int bp[1], nb;
	pid_t victim = it_spawn(args, bp, &nb);
	assert_true(victim > 0);
	int ports[3] = {eports[0], bp[0], p503};
	const char *extra[] = {"--health-interval-ms", "200", "--unhealthy-threshold", "2", "--healthy-threshold", "1",
			       "--retries", "2", NULL};
	int rp;
	pid_t r = router(ports, 3, extra, &rp);
	it_kill(victim);
	/* every request succeeds: connect errors and 503s are retried elsewhere */
	struct buf resp;
	buf_init(&resp, 1 << 20);
	char name_b[64];
	snprintf(name_b, sizeof name_b, "127.0.0.1:%d", bp[0]);
	for (int i = 0; i < 30; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"User: key %d\",\"max_tokens\":2}", MODEL, i);
		assert_int_equal(it_request(rp, "POST", "/v1/completions", body, &resp, 10), 200);
		char be[64];
		backend_of(&resp, be, sizeof be);
		assert_string_not_equal(be, name_b);
	}
	/* ejected within a few health intervals */
	char series[128];
	snprintf(series, sizeof series, "prefixlb_backend_healthy{backend=\"%s\"}", name_b);
	double end = it_now() + 3;
	struct buf m;
	buf_init(&m, 1 << 22);
	double h = 1;
	while (it_now() < end && h != 0) {
		it_request(rp, "GET", "/metrics", NULL, &m, 5);
		const char *s = strstr(m.data, series);
		h = s ? atof(s + strlen(series)) : -1;
		usleep(50000);
	}
	assert_true(h == 0);
	assert_true(it_metric(m.data, "prefixlb_retries_total") > 0);
	/* back on the same port: re-admitted */
	char portarg[16];
	snprintf(portarg, sizeof portarg, "%d", bp[0]);
	pid_t back = fork();
	if (back == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(it_bin(), it_bin(), "engine", "--replicas", "1", "--time-scale", "20", "--port", portarg, (char *)NULL);
		_exit(127);
	}
	end = it_now() + 5;
	while (it_now() < end && h != 1) {
		it_request(rp, "GET", "/metrics", NULL, &m, 5);
		const char *s = strstr(m.data, series);
		h = s ? atof(s + strlen(series)) : -1;
		usleep(50000);
	}
	assert_true(h == 1);
	assert_int_equal(wait_zero(rp, 5), 0);
	assert_int_equal(it_stop(r), 0);
	it_stop(back);
	it_kill(f503);
	buf_free(&m);
	buf_free(&resp);
}

/* Requests the engine fleet aborted because their client (the router) left. */
static double engine_aborted(void)
{
	struct buf m;
	buf_init(&m, 1 << 22);
	double sum = 0;
	for (int i = 0; i < n_eports; i++) {
		buf_reset(&m);
		it_request(eports[i], "GET", "/metrics", NULL, &m, 5);
		sum += it_metric(m.data ? m.data : "", "prefixlb_engine_requests_aborted_total");
	}
	buf_free(&m);
	return sum;
}

/* A storm: clients leaving at every point, some requests to a dead backend;
 * afterwards every in-flight counter is back at zero. */
static void test_storm_counters_zero(void **state)
{
	(void)state;
	int hp;
	pid_t hang = it_fake_server(IT_HANG, &hp);
	int ports[5] = {eports[0], eports[1], eports[2], eports[3], hp};
	const char *extra[] = {"--first-byte-timeout-ms", "500", "--health-interval-ms", "100000", NULL};
	int rp;
	pid_t r = router(ports, 5, extra, &rp);
	double aborted0 = engine_aborted();
	int fds[200];
	for (int i = 0; i < 200; i++) {
		char body[256], req[512];
		snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"User: storm %d\",\"max_tokens\":%d,\"stream\":%s}",
			 MODEL, i, i % 5 == 3 ? 2000 : 5 + i % 50, i % 3 ? "true" : "false");
		snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(body), body);
		fds[i] = it_connect(rp);
		int mode = i % 5;
		if (mode == 0) /* leaves during the head */
			it_send(fds[i], req, 20);
		else if (mode == 1) /* leaves during the body */
			it_send(fds[i], req, strlen(req) - 5);
		else
			it_send(fds[i], req, strlen(req));
	}
	usleep(100000);
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 200; i++) {
		int mode = i % 5;
		if (mode == 3) { /* leaves mid-stream (or before the answer) */
			buf_reset(&b);
			it_read_until(fds[i], &b, "data:", 0.2);
		} else if (mode == 4) { /* reads to the end */
			buf_reset(&b);
			it_read_until(fds[i], &b, "\r\n\r\n", 3);
		}
		close(fds[i]);
	}
	assert_int_equal(wait_zero(rp, 10), 0);
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	fprintf(stderr, "    storm: %g client disconnects, %g timeouts, in flight now %g\n",
		it_metric(m.data, "prefixlb_client_disconnects_total"), it_metric(m.data, "prefixlb_timeouts_total"),
		in_flight_total(rp));
	assert_true(it_metric(m.data, "prefixlb_client_disconnects_total") >= 10);
	/* the 40 that left mid-stream asked for 2,000 tokens (~2.5 s): their upstream
	 * requests were cancelled, so the engine aborted those it had */
	double aborted = engine_aborted() - aborted0;
	fprintf(stderr, "    storm: the engine aborted %g requests\n", aborted);
	assert_true(aborted >= 20);
	assert_int_equal(it_stop(r), 0);
	it_kill(hang);
	buf_free(&m);
	buf_free(&b);
}

/* Number of lines of the file at path that contain needle. */
static int log_count(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Waits (<= timeout s) until the log has more than `had` lines with needle. */
static int log_wait(const char *path, const char *needle, int had, double timeout)
{
	for (double end = it_now() + timeout; it_now() < end; usleep(10000))
		if (log_count(path, needle) > had)
			return 0;
	fprintf(stderr, "no new \"%s\" in %s within %.0f s\n", needle, path, timeout);
	return -1;
}

/* SIGTERM with 50 streams in flight: all finish, new connections are refused, exit 0. */
static void test_drain(void **state)
{
	(void)state;
	int rp;
	char log[64];
	snprintf(log, sizeof log, "/tmp/prefixlb-it-%d.drain.log", getpid());
	pid_t r = router_log(eports, 4, NULL, &rp, log);
	enum { N = 50 };
	int fd[N];
	struct buf b[N];
	for (int i = 0; i < N; i++) {
		char body[256], req[512];
		snprintf(body, sizeof body,
			 "{\"model\":\"%s\",\"prompt\":\"User: drain me %d\",\"max_tokens\":400,\"stream\":true}", MODEL, i);
		snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(body), body);
		fd[i] = it_connect(rp);
		it_send(fd[i], req, strlen(req));
		buf_init(&b[i], 1 << 20);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(it_read_until(fd[i], &b[i], "data: {", 5), 0);
	kill(r, SIGTERM); /* 50 streams in flight (400 tokens: ~0.5 s at time scale 20) */
	/* the router has stopped listening once it says it drains: from then on,
	 * and while the streams still run, new connections are refused */
	assert_int_equal(log_wait(log, "SIGTERM, draining", 0, 10), 0);
	assert_int_equal(it_connect(rp), -1); /* refused */
	int done = 0;
	for (int i = 0; i < N; i++) {
		done += it_read_until(fd[i], &b[i], "data: [DONE]", 10) == 0;
		close(fd[i]);
		buf_free(&b[i]);
	}
	fprintf(stderr, "    drain: %d of %d streams in flight at SIGTERM finished\n", done, N);
	assert_int_equal(done, N);
	int st = -1;
	double end = it_now() + 5;
	while (it_now() < end && waitpid(r, &st, WNOHANG) != r)
		usleep(10000);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	unlink(log);
}

/* n requests with the same prompt: how many distinct backends answered
 * (x-prefixlb-backend); names[] gets them. */
static int same_prompt_backends(int rp, int n, char names[][64])
{
	struct buf resp;
	buf_init(&resp, 1 << 20);
	char body[512];
	snprintf(body, sizeof body,
		 "{\"model\":\"%s\",\"prompt\":\"User: the same conversation, sent again and again; a first message "
		 "long enough to fill the whole routing key of the prefix-hash policy.\",\"max_tokens\":2}",
		 MODEL);
	int distinct = 0;
	for (int i = 0; i < n; i++) {
		char be[64];
		assert_int_equal(it_request(rp, "POST", "/v1/completions", body, &resp, 10), 200);
		assert_non_null(backend_of(&resp, be, sizeof be));
		int seen = 0;
		for (int k = 0; k < distinct; k++)
			seen |= strcmp(names[k], be) == 0;
		if (!seen)
			snprintf(names[distinct++], 64, "%s", be);
	}
	buf_free(&resp);
	return distinct;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* SIGHUP reloads the config file: backends and policy change in place, seen
 * in behaviour. prefix-hash sends one prompt to one backend every time;
 * after a reload to round-robin the same prompt goes round the backends. A
 * config that fails to load (unknown policy, bad backend) changes nothing:
 * the prompt still goes to its one backend. */
static void test_reload(void **state)
{
	(void)state;
	char cfg[64], log[64], text[1024];
	snprintf(cfg, sizeof cfg, "/tmp/prefixlb-it-%d.conf", getpid());
	snprintf(log, sizeof log, "/tmp/prefixlb-it-%d.route.log", getpid());
	snprintf(text, sizeof text,
		 "# test config\npolicy = prefix-hash\nbackend = http://127.0.0.1:%d\nbackend = http://127.0.0.1:%d\n"
		 "backend = http://127.0.0.1:%d\n",
		 eports[0], eports[1], eports[2]);
	write_file(cfg, text);
	const char *extra[] = {"--config", cfg, NULL};
	int rp;
	pid_t r = router_log(NULL, 0, extra, &rp, log);
	assert_true(r > 0);
	char names[8][64], sticky[64];
	assert_int_equal(same_prompt_backends(rp, 8, names), 1); /* prefix-hash: one backend */
	snprintf(sticky, sizeof sticky, "%s", names[0]);

	/* configs that fail to load keep the running one */
	const char *bad[] = {"policy = no-such-policy\nbackend = http://127.0.0.1:%d\n",
			     "policy = round-robin\nbackend = http://127.0.0.1:%d\nbackend = ftp://nowhere\n",
			     "policy = round-robin\nbackend = http://127.0.0.1:%d\nno-such-option = 1\n"};
	const char *why[] = {"unknown policy 'no-such-policy'", "backend 'ftp://nowhere'", "no-such-option"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(text, sizeof text, bad[i], eports[3]);
		write_file(cfg, text);
		int had = log_count(log, "keeping the running configuration"), said = log_count(log, why[i]);
		int reloaded = log_count(log, "configuration reloaded");
		kill(r, SIGHUP);
		assert_int_equal(log_wait(log, "keeping the running configuration", had, 10), 0);
		assert_int_equal(log_count(log, why[i]), said + 1);
		assert_int_equal(log_count(log, "configuration reloaded"), reloaded);
		assert_int_equal(same_prompt_backends(rp, 8, names), 1);
		assert_string_equal(names[0], sticky);
	}

	/* round-robin over eports[1..3]: eports[0] removed, eports[3] added */
	snprintf(text, sizeof text,
		 "policy = round-robin\nbackend = http://127.0.0.1:%d models=%s\nbackend = http://127.0.0.1:%d\n"
		 "backend = http://127.0.0.1:%d\n",
		 eports[1], MODEL, eports[2], eports[3]);
	write_file(cfg, text);
	int had = log_count(log, "configuration reloaded (policy round-robin, 3 static backends)");
	kill(r, SIGHUP);
	assert_int_equal(log_wait(log, "configuration reloaded (policy round-robin, 3 static backends)", had, 10), 0);
	struct buf m;
	buf_init(&m, 1 << 22);
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	char a[96], c[96];
	snprintf(a, sizeof a, "prefixlb_backend_healthy{backend=\"127.0.0.1:%d\"}", eports[3]);
	snprintf(c, sizeof c, "prefixlb_backend_healthy{backend=\"127.0.0.1:%d\"}", eports[0]);
	assert_non_null(strstr(m.data, a));
	assert_null(strstr(m.data, c));
	assert_int_equal(same_prompt_backends(rp, 9, names), 3); /* the same prompt, now round the three */
	for (int k = 0; k < 3; k++) {
		snprintf(c, sizeof c, "127.0.0.1:%d", eports[0]);
		assert_string_not_equal(names[k], c);
	}
	it_request(rp, "GET", "/metrics", NULL, &m, 5);
	assert_non_null(strstr(m.data, "policy=\"round-robin\""));
	assert_int_equal(it_stop(r), 0);
	unlink(cfg);
	unlink(log);
	buf_free(&m);
}

/* Starts a router on a config file of backend lines (NULL-terminated). */
static pid_t router_conf(const char *path, const char *const *lines, int *rp)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	for (int i = 0; lines[i]; i++)
		fprintf(f, "%s\n", lines[i]);
	fclose(f);
	const char *extra[] = {"--config", path, NULL};
	return router(NULL, 0, extra, rp);
}

/* A request without "model": served by the pool when the backends serve
 * exactly one model (as vLLM serving one model accepts it), 400 when they
 * serve several. */
static void test_model_optional(void **state)
{
	(void)state;
	char cfg[64], one_a[128], one_b[128], other[128], ep[32], got[96];
	snprintf(cfg, sizeof cfg, "/tmp/prefixlb-it-%d-models.conf", getpid());
	snprintf(one_a, sizeof one_a, "backend = http://127.0.0.1:%d models=%s", eports[2], MODEL);
	snprintf(one_b, sizeof one_b, "backend = http://127.0.0.1:%d models=%s", eports[3], MODEL);
	snprintf(other, sizeof other, "backend = http://127.0.0.1:%d models=other-model", eports[0]);
	struct buf r, b;
	buf_init(&r, 1 << 20);
	buf_init(&b, 1 << 20);

	/* one model, on one backend: it serves the request */
	const char *lines1[] = {one_a, NULL};
	int rp;
	pid_t pr = router_conf(cfg, lines1, &rp);
	assert_true(pr > 0);
	assert_int_equal(it_request(rp, "POST", "/v1/completions", "{\"prompt\":\"no model\",\"max_tokens\":2}", &r, 10),
			 200);
	snprintf(ep, sizeof ep, "127.0.0.1:%d", eports[2]);
	assert_non_null(backend_of(&r, got, sizeof got));
	assert_string_equal(got, ep);
	it_body(&r, &b);
	assert_non_null(strstr(b.data, "\"model\":\"" MODEL "\""));
	assert_non_null(strstr(b.data, "\"completion_tokens\":2"));
	assert_int_equal(it_request(rp, "POST", "/v1/chat/completions",
				    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1}", &r, 10),
			 200);
	assert_int_equal(it_stop(pr), 0);

	/* one model on two backends: still one model */
	const char *lines2[] = {one_a, one_b, NULL};
	pr = router_conf(cfg, lines2, &rp);
	assert_true(pr > 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(
			it_request(rp, "POST", "/v1/completions", "{\"prompt\":\"no model either\",\"max_tokens\":1}", &r, 10),
			200);
		assert_non_null(backend_of(&r, got, sizeof got));
		char ep3[32];
		snprintf(ep3, sizeof ep3, "127.0.0.1:%d", eports[3]);
		assert_true(strcmp(got, ep) == 0 || strcmp(got, ep3) == 0);
	}
	assert_int_equal(it_stop(pr), 0);

	/* two models: which one is meant? 400, in OpenAI's error shape */
	const char *lines3[] = {one_a, other, NULL};
	pr = router_conf(cfg, lines3, &rp);
	assert_true(pr > 0);
	assert_int_equal(it_request(rp, "POST", "/v1/completions", "{\"prompt\":\"no model\",\"max_tokens\":2}", &r, 10),
			 400);
	it_body(&r, &b);
	assert_non_null(strstr(b.data, "{\"error\":{\"message\":\"you must provide a model parameter ("));
	assert_non_null(strstr(b.data, "\"type\":\"invalid_request_error\",\"param\":null,\"code\":400}}"));
	/* with a model it is served */
	assert_int_equal(it_request(rp, "POST", "/v1/completions",
				    "{\"model\":\"" MODEL "\",\"prompt\":\"a model\",\"max_tokens\":1}", &r, 10),
			 200);
	assert_int_equal(it_stop(pr), 0);
	unlink(cfg);
	buf_free(&r);
	buf_free(&b);
}

/* Slowloris: clients that trickle their head are answered 408 and dropped at
 * the client timeout; an idle keep-alive connection is closed quietly. */
static void test_slowloris(void **state)
{
	(void)state;
	int rp;
	const char *extra[] = {"--client-timeout-ms", "400", "--keepalive-timeout-ms", "400", NULL};
	pid_t r = router(eports, 4, extra, &rp);
	int idle = it_connect(rp); /* sends nothing */
	assert_true(idle >= 0);
	int fds[100];
	for (int i = 0; i < 100; i++) {
		fds[i] = it_connect(rp);
		assert_true(fds[i] >= 0);
		it_send(fds[i], "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncont", 44);
	}
	double t0 = it_now();
	int got408 = 0;
	struct buf b;
	buf_init(&b, 1 << 16);
	for (int i = 0; i < 100; i++) {
		it_send(fds[i], "e", 1); /* one more byte: still incomplete */
		buf_reset(&b);
		it_read_all(fds[i], &b, 3);
		got408 += b.len > 12 && atoi(b.data + 9) == 408;
		close(fds[i]);
	}
	buf_reset(&b);
	int idle_rc = it_read_all(idle, &b, 10); /* closed by the router, quietly */
	if (idle_rc || b.len)
		fprintf(stderr, "idle connection: rc %d, %zu bytes: %.80s\n", idle_rc, b.len, b.data ? b.data : "");
	assert_int_equal(idle_rc, 0);
	assert_int_equal(b.len, 0);
	close(idle);
	fprintf(stderr, "    slowloris: %d of 100 answered 408, all closed within %.2f s\n", got408, it_now() - t0);
	assert_int_equal(got408, 100);
	assert_true(it_now() - t0 < 10);
	/* and the router still serves */
	assert_int_equal(it_request(rp, "GET", "/health", NULL, &b, 5), 200);
	assert_int_equal(it_stop(r), 0);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_hash_sticks_and_spreads),
		cmocka_unit_test(test_least_load_evens),
		cmocka_unit_test(test_bounded_load_spills),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_broken_backends),
		cmocka_unit_test(test_slow_backend), cmocka_unit_test(test_done_split_then_close), cmocka_unit_test(test_chat_second_turn_hits_answer), cmocka_unit_test(test_lowest_ttft_conversation), cmocka_unit_test(test_shared_prefix_spreads),
		cmocka_unit_test(test_never_reading_clients),
		cmocka_unit_test(test_dead_backend_retry_and_readmit),
		cmocka_unit_test(test_storm_counters_zero),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_model_optional),
		cmocka_unit_test(test_slowloris),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
