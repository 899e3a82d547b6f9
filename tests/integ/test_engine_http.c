/* test_engine_http.c: `prefixlb engine` over real HTTP on loopback.
 * A 2-replica engine at time scale 10 is started once for the group and
 * stopped by PID (SIGTERM, it must exit 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

static pid_t pid;
static int ports[8], nports;

static int setup(void **state)
{
	(void)state;
	const char *args[] = {"engine", "--replicas", "2", "--time-scale", "10", "--max-body", "1048576", NULL};
	pid = it_spawn(args, ports, &nports);
	return pid > 0 && nports == 2 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return it_stop(pid) == 0 ? 0 : -1;
}

static void test_health_models(void **state)
{
	(void)state;
	struct buf r;
	buf_init(&r, 1 << 20);
	assert_int_equal(it_request(ports[0], "GET", "/health", NULL, &r, 5), 200);
	assert_int_equal(it_request(ports[1], "GET", "/v1/models", NULL, &r, 5), 200);
	assert_non_null(strstr(r.data, "\"id\":\"llama-3.1-8b-instruct-fp8-l4\""));
	assert_non_null(strstr(r.data, "\"max_model_len\":16384"));
	buf_free(&r);
}

static void test_completion(void **state)
{
	(void)state;
	struct buf r, b;
	buf_init(&r, 1 << 20);
	buf_init(&b, 1 << 20);
	/* "Hello world!" is 3 tokens, + BOS */
	assert_int_equal(it_request(ports[0], "POST", "/v1/completions",
				    "{\"model\":\"llama-3.1-8b-instruct-fp8-l4\",\"prompt\":\"Hello world!\",\"max_tokens\":7}",
				    &r, 10),
			 200);
	it_body(&r, &b);
	assert_non_null(strstr(b.data, "\"object\":\"text_completion\""));
	assert_non_null(strstr(b.data, "\"prompt_tokens\":4,\"total_tokens\":11,\"completion_tokens\":7"));
	assert_non_null(strstr(b.data, "\"finish_reason\":\"length\""));
	assert_non_null(strstr(b.data, "\"cached_tokens\":0"));
	/* token-id prompts are taken as they are */
	assert_int_equal(it_request(ports[0], "POST", "/v1/completions", "{\"prompt\":[9906,1917,0],\"max_tokens\":2}", &r, 10),
			 200);
	assert_non_null(strstr(r.data, "\"prompt_tokens\":3,"));
	buf_free(&r);
	buf_free(&b);
}

static void test_stream_framing(void **state)
{
	(void)state;
	struct buf r, b;
	buf_init(&r, 1 << 20);
	buf_init(&b, 1 << 20);
	assert_int_equal(it_request(ports[1], "POST", "/v1/completions",
				    "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"stream\":true,"
				    "\"stream_options\":{\"include_usage\":true}}",
				    &r, 10),
			 200);
	assert_non_null(strcasestr(r.data, "content-type: text/event-stream"));
	assert_non_null(strcasestr(r.data, "transfer-encoding: chunked"));
	it_body(&r, &b);
	/* one event per token, a usage event with no choices, then [DONE] */
	assert_int_equal(it_count(b.data, "data: {"), 13);
	assert_int_equal(it_count(b.data, "\"text\":\""), 12);
	assert_int_equal(it_count(b.data, "\"finish_reason\":\"length\""), 1);
	assert_non_null(strstr(b.data, "\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"total_tokens\":17,\"completion_tokens\":12"));
	size_t dl = strlen("data: [DONE]\n\n");
	assert_true(b.len > dl && memcmp(b.data + b.len - dl, "data: [DONE]\n\n", dl) == 0);
	/* every event is "data: ...\n\n" */
	assert_int_equal(it_count(b.data, "\n\n"), 14);

	/* chat: role chunk first, then content deltas */
	assert_int_equal(it_request(ports[1], "POST", "/v1/chat/completions",
				    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
				    "\"content\":[{\"type\":\"text\",\"text\":\"Hello world!\"}]}],\"max_tokens\":3,"
				    "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
				    &r, 10),
			 200);
	it_body(&r, &b);
	const char *role = strstr(b.data, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
	const char *first = strstr(b.data, "\"delta\":{\"content\":");
	assert_non_null(role);
	assert_non_null(first);
	assert_true(role < first);
	assert_int_equal(it_count(b.data, "\"delta\":{\"content\":"), 3);
	assert_non_null(strstr(b.data, "\"object\":\"chat.completion.chunk\""));
	assert_non_null(strstr(b.data, "\"completion_tokens\":3"));
	buf_free(&r);
	buf_free(&b);
}

/* Time to first byte of the body for a streamed request. */
static double ttft(int port, const char *body, struct buf *resp)
{
	int fd = it_connect(port);
	struct buf req;
	buf_init(&req, 1 << 22);
	buf_printf(&req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %zu\r\n\r\n%s",
		   strlen(body), body);
	double t0 = it_now();
	it_send(fd, req.data, req.len);
	buf_reset(resp);
	it_read_until(fd, resp, "data: {", 20);
	double t = it_now() - t0;
	it_read_all(fd, resp, 20);
	close(fd);
	buf_free(&req);
	return t;
}

static void test_cache_hit_ttft(void **state)
{
	(void)state;
	struct buf body, r, m1, m2;
	buf_init(&body, 1 << 22);
	buf_init(&r, 1 << 22);
	buf_init(&m1, 1 << 20);
	buf_init(&m2, 1 << 20);
	assert_int_equal(it_request(ports[0], "GET", "/metrics", NULL, &m1, 5), 200);
	buf_puts(&body, "{\"prompt\":\"");
	for (int i = 0; i < 300; i++)
		buf_printf(&body, "Sentence number %d of a long shared document that fills many KV blocks. ", i);
	buf_puts(&body, "\",\"max_tokens\":2,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
	double cold = ttft(ports[0], body.data, &r);
	assert_non_null(strstr(r.data, "\"cached_tokens\":0}"));
	double warm = ttft(ports[0], body.data, &r);
	const char *c = strstr(r.data, "\"cached_tokens\":");
	assert_non_null(c);
	long cached = atol(c + 16);
	fprintf(stderr, "    cold TTFT %.1f ms, warm TTFT %.1f ms (real, time scale 10), cached %ld tokens\n",
		cold * 1e3, warm * 1e3, cached);
	assert_true(cached > 4000);
	assert_true(warm < cold / 3);
	/* metrics moved accordingly */
	assert_int_equal(it_request(ports[0], "GET", "/metrics", NULL, &m2, 5), 200);
	const char *hits = "vllm:prefix_cache_hits_total";
	assert_true(it_metric(m2.data, hits) - it_metric(m1.data, hits) == (double)cached);
	assert_true(it_metric(m2.data, "vllm:generation_tokens_total") - it_metric(m1.data, "vllm:generation_tokens_total") ==
		    4);
	assert_true(it_metric(m2.data, "vllm:time_to_first_token_seconds_count") -
			    it_metric(m1.data, "vllm:time_to_first_token_seconds_count") ==
		    2);
	assert_true(it_metric(m2.data, "vllm:num_requests_running") == 0);
	buf_free(&body);
	buf_free(&r);
	buf_free(&m1);
	buf_free(&m2);
}

static void expect_error(int port, const char *method, const char *path, const char *body, int status,
			 const char *fragment)
{
	struct buf r;
	buf_init(&r, 1 << 22);
	int st = it_request(port, method, path, body, &r, 10);
	if (st != status || (fragment && !strstr(r.data, fragment)))
		fprintf(stderr, "%s %s -> %d\n%s\n", method, path, st, r.data ? r.data : "");
	assert_int_equal(st, status);
	if (fragment)
		assert_non_null(strstr(r.data, fragment));
	buf_free(&r);
}

static void test_errors(void **state)
{
	(void)state;
	int p = ports[1];
	/* OpenAI's error shape (the openai SDK reads error.message) */
	expect_error(p, "POST", "/v1/completions", "{\"prompt\": ", 400,
		     "{\"error\":{\"message\":\"invalid JSON in request body");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\": ", 400,
		     "\"type\":\"invalid_request_error\",\"param\":null,\"code\":400}}");
	expect_error(p, "POST", "/v1/completions", "[1,2]", 400, "JSON object");
	expect_error(p, "POST", "/v1/completions", "{\"max_tokens\":3}", 400, "'prompt' is required");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":0}", 400, "max_tokens");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":\"5\"}", 400, "'max_tokens'");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":20000}", 400,
		     "maximum context length is 16384");
	expect_error(p, "POST", "/v1/chat/completions", "{\"messages\":[]}", 400, "'messages'");
	expect_error(p, "POST", "/v1/chat/completions", "{\"messages\":[{\"content\":\"x\"}]}", 400, "messages[0]");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":\"x\",\"model\":\"other\"}", 404, "does not exist");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":\"x\",\"model\":\"other\"}", 404,
		     "{\"error\":{\"message\":\"The model `other` does not exist.\",\"type\":\"invalid_request_error\"");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":[200000]}", 400, "out of vocabulary");
	expect_error(p, "GET", "/v1/nothing", NULL, 404, "Not Found");
	expect_error(p, "GET", "/v1/completions", NULL, 405, "Method Not Allowed");
	/* a prompt longer than max_model_len */
	struct buf big;
	buf_init(&big, 1 << 22);
	buf_puts(&big, "{\"prompt\":\"");
	for (int i = 0; i < 17000; i++)
		buf_puts(&big, " x");
	buf_puts(&big, "\",\"max_tokens\":1}");
	expect_error(p, "POST", "/v1/completions", big.data, 400, "maximum context length");
	/* larger than --max-body: 413 */
	buf_reset(&big);
	buf_puts(&big, "{\"prompt\":\"");
	while (big.len < 1100000)
		buf_puts(&big, "aaaaaaaaaaaaaaaa");
	buf_puts(&big, "\"}");
	expect_error(p, "POST", "/v1/completions", big.data, 413, "too large");
	buf_free(&big);
	/* still serving */
	expect_error(p, "GET", "/health", NULL, 200, NULL);
}

static int raw_status(int port, const char *bytes)
{
	int fd = it_connect(port);
	struct buf r;
	buf_init(&r, 1 << 20);
	it_send(fd, bytes, strlen(bytes));
	it_read_all(fd, &r, 5);
	close(fd);
	int st = r.len > 12 ? atoi(r.data + 9) : -1;
	buf_free(&r);
	return st;
}

static void test_bad_http(void **state)
{
	(void)state;
	int p = ports[0];
	assert_int_equal(raw_status(p, "GARBAGE\r\n\r\n"), 400);
	assert_int_equal(raw_status(p, "GET /health HTTP/1.1\nhost: x\n\n"), 400);
	assert_int_equal(raw_status(p, "GET /health HTTP/1.1\r\n\r\n"), 400); /* no Host */
	assert_int_equal(raw_status(p, "GET /health HTTP/2.0\r\nhost: x\r\n\r\n"), 505);
	assert_int_equal(raw_status(p, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
				       "transfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
			 400);
	assert_int_equal(raw_status(p, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
				       "content-length: 4\r\n\r\nabcd"),
			 400);
	assert_int_equal(raw_status(p, "GET /health HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n"), 400);
	/* chunked request bodies are accepted */
	assert_int_equal(raw_status(p, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
				       "connection: close\r\n\r\n"
				       "f\r\n{\"prompt\":\"Hi\",\r\n10\r\n\"max_tokens\":1} \r\n0\r\n\r\n"),
			 200);
	/* keep-alive: two requests on one connection, answered in order */
	int fd = it_connect(p);
	const char *two = "GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
	it_send(fd, two, strlen(two));
	struct buf r;
	buf_init(&r, 1 << 20);
	it_read_all(fd, &r, 5);
	close(fd);
	assert_int_equal(it_count(r.data, "HTTP/1.1 200 OK"), 2);
	assert_non_null(strstr(r.data, "\"object\":\"list\""));
	buf_free(&r);
}

/* A client that goes away mid-stream: the request is aborted in the model and
 * its KV blocks are freed at once. */
static void test_disconnect_aborts(void **state)
{
	(void)state;
	int p = ports[1];
	struct buf m, r;
	buf_init(&m, 1 << 20);
	buf_init(&r, 1 << 20);
	it_request(p, "GET", "/metrics", NULL, &m, 5);
	double aborted0 = it_metric(m.data, "prefixlb_engine_requests_aborted_total");
	for (int k = 0; k < 5; k++) {
		int fd = it_connect(p);
		const char *body = "{\"prompt\":\"Tell me a long story about a dragon.\",\"max_tokens\":5000,\"stream\":true}";
		char req[512];
		snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(body), body);
		it_send(fd, req, strlen(req));
		buf_reset(&r);
		if (k % 2 == 0)
			assert_int_equal(it_read_until(fd, &r, "data: {", 10), 0); /* mid-stream */
		close(fd);
	}
	double end = it_now() + 5;
	double aborted = 0, running = -1, usage = -1;
	while (it_now() < end) {
		it_request(p, "GET", "/metrics", NULL, &m, 5);
		aborted = it_metric(m.data, "prefixlb_engine_requests_aborted_total");
		running = it_metric(m.data, "vllm:num_requests_running") + it_metric(m.data, "vllm:num_requests_waiting");
		usage = it_metric(m.data, "vllm:kv_cache_usage_perc");
		if (aborted - aborted0 == 5 && running == 0 && usage == 0)
			break;
		usleep(50000);
	}
	assert_true(aborted - aborted0 == 5);
	assert_true(running == 0);
	assert_true(usage == 0);
	buf_free(&m);
	buf_free(&r);
}

/* ---- batched completions ("prompt": a list) ------------------------------ */

#define BATCH3 "[\"Hello world!\",\"Once upon a time\",\"The quick brown fox\"]"
static const int batch3_tokens[] = {4, 5, 5}; /* with BOS */

/* The body of a 200 response as JSON (owned), or NULL. */
static json_t *post_json(int port, const char *body)
{
	struct buf r, b;
	buf_init(&r, 1 << 22);
	buf_init(&b, 1 << 22);
	int st = it_request(port, "POST", "/v1/completions", body, &r, 20);
	it_body(&r, &b);
	json_t *j = st == 200 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
	if (!j)
		fprintf(stderr, "-> %d %s\n", st, b.data ? b.data : "");
	buf_free(&r);
	buf_free(&b);
	return j;
}

static long usage_of(json_t *j, const char *k)
{
	return (long)json_integer_value(json_object_get(json_object_get(j, "usage"), k));
}

/* One choice per prompt, ordered by index; each choice is what the same
 * prompt alone gets (the same text: same prompt, same filler draw, same
 * number of tokens); usage is the sum over the prompts. */
static void test_batch(void **state)
{
	(void)state;
	json_t *j = post_json(ports[0], "{\"prompt\":" BATCH3 ",\"max_tokens\":6}");
	assert_non_null(j);
	json_t *choices = json_object_get(j, "choices");
	assert_int_equal(json_array_size(choices), 3);
	const char *texts[] = {"Hello world!", "Once upon a time", "The quick brown fox"};
	long prompt_sum = 0;
	for (size_t i = 0; i < 3; i++) {
		json_t *ch = json_array_get(choices, i);
		assert_int_equal(json_integer_value(json_object_get(ch, "index")), (json_int_t)i);
		assert_string_equal(json_string_value(json_object_get(ch, "finish_reason")), "length");
		char one[256];
		snprintf(one, sizeof one, "{\"prompt\":\"%s\",\"max_tokens\":6}", texts[i]);
		json_t *alone = post_json(ports[1], one);
		assert_non_null(alone);
		assert_int_equal(usage_of(alone, "completion_tokens"), 6);
		assert_int_equal(usage_of(alone, "prompt_tokens"), batch3_tokens[i]);
		assert_string_equal(json_string_value(json_object_get(ch, "text")),
				    json_string_value(json_object_get(json_array_get(json_object_get(alone, "choices"), 0),
								      "text")));
		json_decref(alone);
		prompt_sum += batch3_tokens[i];
	}
	assert_int_equal(usage_of(j, "prompt_tokens"), prompt_sum);
	assert_int_equal(usage_of(j, "completion_tokens"), 18);
	assert_int_equal(usage_of(j, "total_tokens"), prompt_sum + 18);
	json_decref(j);

	/* a list of token-id lists */
	j = post_json(ports[0], "{\"prompt\":[[9906,1917,0],[9906],[1,2,3,4,5,6,7]],\"max_tokens\":2}");
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "choices")), 3);
	assert_int_equal(usage_of(j, "prompt_tokens"), 3 + 1 + 7);
	assert_int_equal(usage_of(j, "completion_tokens"), 6);
	json_decref(j);

	/* each prompt is its own request in the model, with its own cache lookup:
	 * a prompt of 40 full blocks, then a batch of it and a stranger */
	struct buf big, body;
	buf_init(&big, 1 << 20);
	buf_init(&body, 1 << 20);
	for (int i = 0; i < 120; i++)
		buf_printf(&big, "Sentence %d of a shared document for the batch test. ", i);
	buf_printf(&body, "{\"prompt\":\"%s\",\"max_tokens\":1}", big.data);
	j = post_json(ports[0], body.data);
	assert_non_null(j);
	json_decref(j);
	buf_reset(&body);
	buf_printf(&body, "{\"prompt\":[\"Unrelated words here.\",\"%s\"],\"max_tokens\":1}", big.data);
	j = post_json(ports[0], body.data);
	assert_non_null(j);
	long cached = (long)json_integer_value(
		json_object_get(json_object_get(json_object_get(j, "usage"), "prompt_tokens_details"), "cached_tokens"));
	assert_true(cached >= 16 * 40);
	assert_true(cached < usage_of(j, "prompt_tokens") - 5);
	json_decref(j);
	buf_free(&big);
	buf_free(&body);
}

/* Streamed: every prompt's chunks as they are produced, interleaved, each with
 * its choices[0].index; one usage chunk at the end; then [DONE]. */
static void test_batch_stream(void **state)
{
	(void)state;
	struct buf r, b;
	buf_init(&r, 1 << 22);
	buf_init(&b, 1 << 22);
	assert_int_equal(it_request(ports[1], "POST", "/v1/completions",
				    "{\"prompt\":" BATCH3 ",\"max_tokens\":8,\"stream\":true,"
				    "\"stream_options\":{\"include_usage\":true}}",
				    &r, 20),
			 200);
	it_body(&r, &b);
	int tokens[3] = {0}, finished[3] = {0}, usage_events = 0, events = 0;
	int first_of_2 = -1, last_of_0 = -1;
	const char *p = b.data;
	json_t *usage = NULL;
	while ((p = strstr(p, "data: {"))) {
		const char *e = strstr(p, "\n\n");
		assert_non_null(e);
		json_t *ev = json_loadb(p + 6, (size_t)(e - p - 6), 0, NULL);
		assert_non_null(ev);
		json_t *ch = json_object_get(ev, "choices");
		if (json_array_size(ch) == 0) {
			usage_events++;
			assert_null(usage);
			usage = json_incref(json_object_get(ev, "usage"));
			assert_int_equal(it_count(e, "data: {"), 0); /* the last event before [DONE] */
		} else {
			assert_int_equal(json_array_size(ch), 1);
			json_t *c0 = json_array_get(ch, 0);
			json_int_t idx = json_integer_value(json_object_get(c0, "index"));
			assert_true(idx >= 0 && idx < 3);
			tokens[idx]++;
			if (json_is_string(json_object_get(c0, "finish_reason")))
				finished[idx]++;
			if (idx == 2 && first_of_2 < 0)
				first_of_2 = events;
			if (idx == 0)
				last_of_0 = events;
		}
		events++;
		json_decref(ev);
		p = e;
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(tokens[i], 8);
		assert_int_equal(finished[i], 1);
	}
	assert_true(first_of_2 < last_of_0); /* produced together, not one after the other */
	assert_int_equal(usage_events, 1);
	assert_non_null(usage);
	assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 14);
	assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 24);
	json_decref(usage);
	size_t dl = strlen("data: [DONE]\n\n");
	assert_true(b.len > dl && memcmp(b.data + b.len - dl, "data: [DONE]\n\n", dl) == 0);
	assert_int_equal(it_count(b.data, "[DONE]"), 1);
	buf_free(&r);
	buf_free(&b);
}

static void test_batch_errors(void **state)
{
	(void)state;
	int p = ports[1];
	struct buf m0, m1, body;
	buf_init(&m0, 1 << 20);
	buf_init(&m1, 1 << 20);
	buf_init(&body, 1 << 20);
	assert_int_equal(it_request(p, "GET", "/metrics", NULL, &m0, 5), 200);
	/* one bad prompt fails the whole batch, before anything reaches the model */
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":[[9906],[300000]]}", 400, "out of vocabulary");
	expect_error(p, "POST", "/v1/completions", "{\"prompt\":[\"a\",[1]]}", 400, "'prompt' must be");
	/* the batch limit: --max-prompts, 1024 by default */
	buf_puts(&body, "{\"prompt\":[");
	for (int i = 0; i < 1025; i++)
		buf_printf(&body, "%s\"p\"", i ? "," : "");
	buf_puts(&body, "],\"max_tokens\":1}");
	expect_error(p, "POST", "/v1/completions", body.data, 400, "too many prompts in the batch: 1025 (at most 1024)");
	assert_int_equal(it_request(p, "GET", "/metrics", NULL, &m1, 5), 200);
	const char *added = "vllm:prompt_tokens_total";
	assert_true(it_metric(m1.data, added) == it_metric(m0.data, added));
	buf_free(&m0);
	buf_free(&m1);
	buf_free(&body);
}

/* A client that leaves mid-batch: every prompt still in the model is aborted,
 * its blocks freed; nothing leaks (the ASan run checks the engine at exit). */
static void test_batch_disconnect(void **state)
{
	(void)state;
	int p = ports[1];
	struct buf m, r;
	buf_init(&m, 1 << 20);
	buf_init(&r, 1 << 20);
	it_request(p, "GET", "/metrics", NULL, &m, 5);
	double aborted0 = it_metric(m.data, "prefixlb_engine_requests_aborted_total");
	for (int k = 0; k < 2; k++) {
		int fd = it_connect(p);
		/* streamed (the client leaves mid-stream), then not streamed */
		const char *body = k == 0 ? "{\"prompt\":[\"A long story:\",\"Short.\",\"Another story:\"],\"max_tokens\":4000,"
					    "\"stream\":true}"
					  : "{\"prompt\":[\"A long story:\",\"Another one:\",\"And a third:\"],\"max_tokens\":4000}";
		char req[512];
		snprintf(req, sizeof req, "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %zu\r\n\r\n%s",
			 strlen(body), body);
		it_send(fd, req, strlen(req));
		buf_reset(&r);
		if (k == 0)
			assert_int_equal(it_read_until(fd, &r, "\"index\":2", 10), 0); /* mid-stream */
		else /* wait until the three are running */
			for (double end = it_now() + 10; it_now() < end;) {
				it_request(p, "GET", "/metrics", NULL, &m, 5);
				if (it_metric(m.data, "vllm:num_requests_running") == 3)
					break;
				usleep(20000);
			}
		close(fd);
	}
	double end = it_now() + 5;
	double aborted = 0, running = -1, usage = -1;
	while (it_now() < end) {
		it_request(p, "GET", "/metrics", NULL, &m, 5);
		aborted = it_metric(m.data, "prefixlb_engine_requests_aborted_total");
		running = it_metric(m.data, "vllm:num_requests_running") + it_metric(m.data, "vllm:num_requests_waiting");
		usage = it_metric(m.data, "vllm:kv_cache_usage_perc");
		if (aborted - aborted0 == 6 && running == 0 && usage == 0)
			break;
		usleep(50000);
	}
	fprintf(stderr, "    aborted %g of 6 prompts, %g still in the model, KV usage %g\n", aborted - aborted0, running,
		usage);
	assert_true(aborted - aborted0 == 6);
	assert_true(running == 0);
	assert_true(usage == 0);
	buf_free(&m);
	buf_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_models),  cmocka_unit_test(test_completion),
		cmocka_unit_test(test_stream_framing), cmocka_unit_test(test_cache_hit_ttft),
		cmocka_unit_test(test_errors),         cmocka_unit_test(test_bad_http),
		cmocka_unit_test(test_disconnect_aborts),
		cmocka_unit_test(test_batch),          cmocka_unit_test(test_batch_stream),
		cmocka_unit_test(test_batch_errors),   cmocka_unit_test(test_batch_disconnect),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
