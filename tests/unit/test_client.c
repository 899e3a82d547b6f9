/* test_client.c: the benchmark client's state machine (src/core/client.c),
 * driven by a fake server in virtual time: every request sent gets its first
 * token FIRST_NS later, then one every GAP_NS until max_tokens. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/client.h"
#include "core/prompt.h"
#include "core/tokenizer.h"
#include "testutil.h"

#define MS 1000000ull
#define FIRST_NS (10 * MS)
#define GAP_NS (5 * MS)

struct live {
	struct client_req *r;
	uint64_t next; /* next token time */
	uint32_t sent_tokens;
	int cancelled;
};

struct fake {
	struct client *c;
	struct live v[4096];
	size_t n;
	size_t sends, cancels, max_in_flight, in_flight;
	uint64_t send_t[4096]; /* per record idx: when it was sent */
	uint64_t now;
	struct buf body;
};

static void f_send(void *ctx, struct client_req *r, uint64_t now)
{
	struct fake *f = ctx;
	f->sends++;
	if (++f->in_flight > f->max_in_flight)
		f->max_in_flight = f->in_flight;
	f->send_t[r->idx] = now;
	f->v[f->n] = (struct live){r, now + FIRST_NS, 0, 0};
	r->drv = &f->v[f->n++];
	buf_reset(&f->body);
	assert_int_equal(client_body(f->c, r, &f->body), 0);
}

static void f_cancel(void *ctx, struct client_req *r, uint64_t now)
{
	(void)now;
	struct fake *f = ctx;
	struct live *l = r->drv;
	l->cancelled = 1;
	f->cancels++;
	f->in_flight--;
}

static const struct client_ops ops = {f_send, f_cancel};

/* Runs the client to its end; returns the end time. */
static uint64_t drive(struct fake *f)
{
	uint64_t now = 0;
	client_advance(f->c, 0);
	for (int guard = 0; guard < 1000000 && !client_done(f->c); guard++) {
		uint64_t t = client_next_event(f->c);
		struct live *best = NULL;
		for (size_t i = 0; i < f->n; i++)
			if (!f->v[i].cancelled && f->v[i].r && (!best || f->v[i].next < best->next))
				best = &f->v[i];
		if (best && best->next <= t) {
			now = best->next;
			uint32_t tok = 42;
			client_on_chunk(f->c, best->r, now, "x", 1, &tok, 1);
			if (++best->sent_tokens == best->r->max_tokens) {
				struct client_req *r = best->r;
				best->r = NULL;
				f->in_flight--;
				client_on_usage(f->c, r, (long)r->max_tokens, 7);
				client_on_end(f->c, r, now, NULL, NULL);
			} else {
				best->next = now + GAP_NS;
			}
			continue;
		}
		assert_true(t != UINT64_MAX);
		now = t;
		client_advance(f->c, now);
	}
	assert_true(client_done(f->c));
	return now;
}

static struct wl_request items[4] = {
	{"alpha", 5, 10, 4, 0, 1},
	{"beta beta", 9, 20, 6, 1, 1},
	{"gamma", 5, 30, 8, 2, 1},
	{"delta", 5, 40, 3, 3, 1},
};
static size_t order[4] = {2, 0, 3, 1};

static struct client_cfg base(const struct wl_plan *p)
{
	return (struct client_cfg){.mode = CLIENT_LIST, .plan = p, .request_rate = INFINITY, .burstiness = 1,
				   .seed = 1, .model = "m"};
}

/* Rate inf, no semaphore: all at once, in the plan's order, cycled. */
static void test_list_all_at_once(void **state)
{
	(void)state;
	struct wl_plan p = {items, 4, order, 4, 10};
	struct client_cfg cfg = base(&p);
	struct fake *f = calloc(1, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	drive(f);
	assert_int_equal(f->sends, 10);
	assert_int_equal(f->max_in_flight, 10);
	assert_int_equal(client_n_recs(f->c), 10);
	for (size_t i = 0; i < 10; i++) {
		const struct client_rec *r = client_rec(f->c, i);
		const struct wl_request *w = &items[order[i % 4]];
		assert_int_equal(r->conv, w->conv);
		assert_int_equal(r->r.prompt_len, w->prompt_tokens);
		assert_int_equal(r->r.output_len, w->max_tokens);
		assert_true(r->r.success);
		assert_int_equal(r->r.n_itl, (size_t)w->max_tokens - 1);
		assert_float_equal(r->r.ttft, FIRST_NS / 1e9, 1e-12);
		assert_float_equal(r->r.latency, (FIRST_NS + GAP_NS * (w->max_tokens - 1)) / 1e9, 1e-12);
		assert_int_equal(r->r.cached_tokens, 7);
	}
	/* the body of the last request sent (the 10th: order[1] = alpha): completions, vLLM's fields */
	assert_non_null(strstr(f->body.data, "{\"model\":\"m\",\"prompt\":\"alpha\",\"temperature\":0.0,\"best_of\":1,"));
	assert_non_null(strstr(f->body.data, "\"max_tokens\":4,\"stream\":true"));
	assert_non_null(strstr(f->body.data, "\"stream_options\":{\"include_usage\":true}"));
	struct bench_metrics m;
	double pct[] = {99};
	assert_int_equal(client_metrics(f->c, 0, pct, 1, NULL, &m), 0);
	assert_int_equal(m.completed, 10);
	client_free(f->c);
	buf_free(&f->body);
	free(f);
}

/* The semaphore: at most 2 in flight; a request's clock starts when it gets
 * through, so queueing is not in its TTFT; with 1, requests never overlap. */
static void test_semaphore_and_lag(void **state)
{
	(void)state;
	struct wl_plan p = {items, 4, order, 4, 8};
	for (long mc = 1; mc <= 2; mc++) {
		struct client_cfg cfg = base(&p);
		cfg.max_concurrency = mc;
		cfg.lag_ms = 3;
		struct fake *f = calloc(1, sizeof *f);
		buf_init(&f->body, 1 << 20);
		f->c = client_new(&cfg, &ops, f);
		drive(f);
		assert_int_equal((long)f->max_in_flight, mc);
		for (size_t i = 0; i < 8; i++) {
			const struct client_rec *r = client_rec(f->c, i);
			/* sent lag_ms after the clock started, and the lag counts in TTFT */
			assert_int_equal(f->send_t[i], r->t0 + 3 * MS);
			assert_float_equal(r->r.ttft, (3 * MS + FIRST_NS) / 1e9, 1e-12);
			if (mc == 1 && i)
				assert_true(r->t0 >= client_rec(f->c, i - 1)->t0 +
							      (uint64_t)(client_rec(f->c, i - 1)->r.latency * 1e9 + 0.5));
		}
		struct client_stats st;
		client_get_stats(f->c, &st);
		assert_true(st.sem_wait_max_s > 0);
		client_free(f->c);
		buf_free(&f->body);
		free(f);
	}
}

/* Paced arrivals: the floor alone gives exactly one release per floor. */
static void test_floor_and_rate(void **state)
{
	(void)state;
	struct wl_plan p = {items, 4, order, 4, 50};
	struct client_cfg cfg = base(&p);
	cfg.dispatch_floor_ms = 7.7;
	struct fake *f = calloc(1, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	drive(f);
	for (size_t i = 1; i < 50; i++)
		assert_int_equal(client_rec(f->c, i)->t0 - client_rec(f->c, i - 1)->t0, (uint64_t)(7.7 * MS));
	client_free(f->c);
	/* a Poisson rate of 100/s over 2,000 requests: mean gap 10 ms (+-5%) */
	struct wl_plan p2 = {items, 4, order, 4, 2000};
	cfg = base(&p2);
	cfg.request_rate = 100;
	buf_free(&f->body);
	memset(f, 0, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	drive(f);
	double mean = (double)(client_rec(f->c, 1999)->t0 - client_rec(f->c, 0)->t0) / 1999 / 1e6;
	fprintf(stderr, "    mean gap at 100 req/s: %.2f ms\n", mean);
	assert_true(mean > 9.5 && mean < 10.5);
	client_free(f->c);
	buf_free(&f->body);
	free(f);
}

/* A timeout abandons requests still running: the driver is told to cancel,
 * they count apart and not in the metrics. The cap bounds max_tokens. */
static void test_timeout_and_cap(void **state)
{
	(void)state;
	struct wl_plan p = {items, 4, order, 4, 4};
	struct client_cfg cfg = base(&p);
	cfg.timeout_s = (FIRST_NS + 4.5 * GAP_NS) / 1e9; /* requests of more than 5 tokens time out */
	struct fake *f = calloc(1, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	drive(f);
	struct client_stats st;
	client_get_stats(f->c, &st);
	assert_int_equal(st.timed_out, 2); /* gamma (8) and beta (6) */
	assert_int_equal(f->cancels, 2);
	struct bench_metrics m;
	double pct[] = {99};
	client_metrics(f->c, 0, pct, 1, NULL, &m);
	assert_int_equal(m.completed, 2);
	assert_int_equal(m.failed, 0);
	client_free(f->c);
	cfg = base(&p);
	cfg.max_output_tokens = 5;
	buf_free(&f->body);
	memset(f, 0, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	drive(f);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(client_rec(f->c, i)->r.output_len, items[order[i]].max_tokens < 5 ? items[order[i]].max_tokens : 5);
	client_free(f->c);
	buf_free(&f->body);
	free(f);
}

/* Sessions as a closed loop: 2 client threads over 3 conversations; each turn
 * carries the history with the model's own answers as chat messages; the
 * next conversation starts when a thread is free. */
static void test_sessions_closed_loop(void **state)
{
	(void)state;
	struct tok *t = test_tokenizer();
	assert_non_null(t);
	struct prompt_cache *pc = prompt_cache_new(t, 1 << 20);
	static struct wl_msg msgs[3][4] = {
		{{"hi one", 6, 1}, {"answer one is long", 18, 0}, {"more one", 8, 1}, {"done", 4, 0}},
		{{"hi two", 6, 1}, {"answer two", 10, 0}, {"more two", 8, 1}, {"done", 4, 0}},
		{{"hi three", 8, 1}, {"a3", 2, 0}, {"m3", 2, 1}, {"d3", 2, 0}},
	};
	struct wl_conv convs[3] = {{"a", msgs[0], 4}, {"b", msgs[1], 4}, {"c", msgs[2], 4}};
	struct wl_dataset ds = {convs, 3};
	struct client_cfg cfg = {.mode = CLIENT_SESSIONS, .ds = &ds, .tok = t, .pc = pc, .tpl = CHAT_LLAMA31,
				 .request_rate = INFINITY, .max_concurrency = 2, .burstiness = 1, .think_s = 0.002,
				 .model = "m"};
	struct fake *f = calloc(1, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	drive(f);
	assert_int_equal(client_n_recs(f->c), 6);
	assert_int_equal(f->max_in_flight, 2);
	/* the last body is conversation 3's second turn: 3 messages, its answer "x" x max_tokens */
	assert_non_null(strstr(f->body.data, "\"messages\":[{\"role\":\"user\",\"content\":\"hi three\"},"
					     "{\"role\":\"assistant\",\"content\":\"x"));
	assert_non_null(strstr(f->body.data, "{\"role\":\"user\",\"content\":\"m3\"}]"));
	struct client_stats st;
	client_get_stats(f->c, &st);
	assert_int_equal(st.sessions_done, 3);
	/* conversation 3 started only when a thread was free, and each second turn
	 * after its first ended + the think time */
	uint64_t end0 = UINT64_MAX;
	for (size_t i = 0; i < 6; i++) {
		const struct client_rec *r = client_rec(f->c, i);
		uint64_t e = r->t0 + (uint64_t)(r->r.latency * 1e9 + 0.5);
		if (r->conv != 2 && e < end0)
			end0 = e;
		if (r->turn == 2)
			for (size_t k = 0; k < i; k++)
				if (client_rec(f->c, k)->conv == r->conv)
					assert_true(r->t0 >= client_rec(f->c, k)->t0 + 2 * MS);
		/* prompt tokens: the rendered chat, counted by the prompt builder */
		assert_true(r->r.prompt_len > 30);
	}
	for (size_t i = 0; i < 6; i++)
		if (client_rec(f->c, i)->conv == 2 && client_rec(f->c, i)->turn == 0)
			assert_true(client_rec(f->c, i)->t0 >= end0);
	client_free(f->c);
	buf_free(&f->body);
	free(f);
	prompt_cache_free(pc);
	tok_free(t);
}

/* Interrupt: everything alive is cancelled, queued requests never count. */
static void test_interrupt(void **state)
{
	(void)state;
	struct wl_plan p = {items, 4, order, 4, 20};
	struct client_cfg cfg = base(&p);
	cfg.max_concurrency = 3;
	struct fake *f = calloc(1, sizeof *f);
	buf_init(&f->body, 1 << 20);
	f->c = client_new(&cfg, &ops, f);
	client_advance(f->c, 0);
	assert_int_equal(f->sends, 3);
	client_interrupt(f->c, 1 * MS, "interrupted");
	assert_int_equal(f->cancels, 3);
	assert_true(client_done(f->c));
	struct bench_metrics m;
	double pct[] = {99};
	client_metrics(f->c, 1, pct, 1, NULL, &m);
	assert_int_equal(m.completed, 0);
	assert_int_equal(m.failed, 3);
	long n;
	assert_string_equal(client_reason(f->c, 0, &n, NULL), "interrupted");
	assert_int_equal(n, 3);
	client_free(f->c);
	buf_free(&f->body);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_all_at_once), cmocka_unit_test(test_semaphore_and_lag),
		cmocka_unit_test(test_floor_and_rate),	  cmocka_unit_test(test_timeout_and_cap),
		cmocka_unit_test(test_sessions_closed_loop), cmocka_unit_test(test_interrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
