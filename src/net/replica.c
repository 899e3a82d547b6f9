/* replica.c: simulated vLLM replicas behind the OpenAI API; see replica.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/mem.h"
#include "../core/err.h"
#include "../proto/openai.h"
#include "../proto/orca.h"
#include "replica.h"
#include "kvpub.h"

/* One HTTP request (a parent) owns one model request per prompt: a batched
 * completion ("prompt": ["a", "b"]) is n requests in the model, each with its
 * own prefix-cache lookup, as vLLM serves it. The response ends when the last
 * one ends; a client that leaves aborts all that are still live. */
struct esub {
	struct ereq *parent;
	uint64_t id; /* in the model */
	uint32_t index; /* the choice's index */
	uint32_t max_tokens, prompt_tokens, cached_tokens, n_out;
	int live; /* in the model, its last token not yet handled */
	struct buf text; /* non-streamed: the generated text */
};

struct ereq {
	struct replica *rep;
	struct http_conn *conn;
	int chat, stream, include_usage;
	enum orca_format orca; /* the client asked for in-band load (endpoint-load-metrics-format) */
	uint64_t arrival;
	char rid[48];
	size_t n_subs, n_live;
	struct esub *subs;
};

static const double ttft_buckets[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
				      1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double e2e_buckets[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
				     120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

static uint64_t sim_now(const struct fleet *f)
{
	return (uint64_t)((double)(uv_hrtime() - f->t0) * f->time_scale);
}

/* ---- responses ----------------------------------------------------------- */

static void respond_error(struct http_conn *c, int status, const char *msg)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	const char *ctype;
	oai_error_body(status, msg, &b, &ctype);
	http_respond(c, status, ctype, NULL, b.data, b.len);
	buf_free(&b);
}

static void respond_detail(struct http_conn *c, int status, const char *detail, const char *extra)
{
	char body[128];
	int n = snprintf(body, sizeof body, "{\"detail\":\"%s\"}", detail);
	http_respond(c, status, "application/json", extra, body, (size_t)n);
}

/* Usage summed over the prompts of the request. */
static void usage_json(struct buf *b, const struct ereq *r)
{
	uint64_t prompt = 0, out = 0, cached = 0;
	for (size_t i = 0; i < r->n_subs; i++) {
		prompt += r->subs[i].prompt_tokens;
		out += r->subs[i].n_out;
		cached += r->subs[i].cached_tokens;
	}
	buf_printf(b,
		   "\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu,\"completion_tokens\":%llu,"
		   "\"prompt_tokens_details\":{\"cached_tokens\":%llu}}",
		   (unsigned long long)prompt, (unsigned long long)(prompt + out), (unsigned long long)out,
		   (unsigned long long)cached);
}

static void chunk_head(struct buf *b, const struct ereq *r)
{
	buf_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"", r->rid,
		   r->chat ? "chat.completion.chunk" : "text_completion", r->rep->f->created);
	buf_json_escape(b, r->rep->f->model, strlen(r->rep->f->model));
	buf_puts(b, "\",");
}

/* The replica's load as an endpoint-load-metrics header line (vLLM's named
 * metrics, plus the running count), in the format asked for; "" for none.
 * Read when the response head goes out: at once for a stream, at the end for
 * a whole answer (vLLM sends it only then). */
static void load_header(const struct replica *rep, enum orca_format f, struct buf *h)
{
	if (f == ORCA_NONE)
		return;
	struct engine_stats st;
	engine_get_stats(rep->e, &st);
	struct orca_load l = {.have = ORCA_HAVE_KV | ORCA_HAVE_WAITING | ORCA_HAVE_RUNNING,
			      .kv_usage = st.blocks_total ? (double)st.blocks_used / st.blocks_total : 0,
			      .waiting = st.waiting,
			      .running = st.running};
	buf_puts(h, ORCA_RESPONSE_HEADER ": ");
	orca_write(h, f, &l);
	buf_puts(h, "\r\n");
}

static void ereq_free(struct ereq *r)
{
	for (size_t i = 0; i < r->n_subs; i++)
		buf_free(&r->subs[i].text);
	free(r->subs);
	free(r);
}

/* A new parent with n prompts (NULL when out of memory). */
static struct ereq *ereq_new(size_t n)
{
	struct ereq *r = plb_calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->subs = plb_calloc(n, sizeof *r->subs);
	if (!r->subs) {
		free(r);
		return NULL;
	}
	r->n_subs = n;
	for (size_t i = 0; i < n; i++) {
		r->subs[i].parent = r;
		r->subs[i].index = (uint32_t)i;
		buf_init(&r->subs[i].text, (size_t)1 << 30);
	}
	return r;
}

/* Aborts the request's live prompts in the model (client gone, or a batch
 * that could not be queued whole); returns how many were live. */
static uint64_t abort_live(struct ereq *r)
{
	uint64_t n = 0;
	for (size_t i = 0; i < r->n_subs; i++) {
		if (r->subs[i].live) {
			engine_abort(r->rep->e, r->subs[i].id);
			r->subs[i].live = 0;
			n++;
		}
	}
	r->n_live = 0;
	return n;
}

/* The last prompt of r has produced its last token: the response ends. */
static void finish_request(struct ereq *r)
{
	struct replica *rep = r->rep;
	struct buf b;
	buf_init(&b, (size_t)1 << 30);
	if (r->stream) {
		if (r->include_usage) {
			chunk_head(&b, r);
			buf_puts(&b, "\"choices\":[],");
			usage_json(&b, r);
			buf_puts(&b, "}\n\n");
		}
		buf_puts(&b, "data: [DONE]\n\n");
		/* detach first: if the write fails, on_abort sees no request */
		struct http_conn *c = r->conn;
		http_conn_set_ctx(c, NULL);
		if (http_stream_write(c, b.data, b.len) == 0)
			http_stream_end(c);
		ereq_free(r);
	} else {
		buf_printf(&b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"", r->rid,
			   r->chat ? "chat.completion" : "text_completion", rep->f->created);
		buf_json_escape(&b, rep->f->model, strlen(rep->f->model));
		buf_puts(&b, "\",\"choices\":[");
		for (size_t i = 0; i < r->n_subs; i++) {
			const struct esub *q = &r->subs[i];
			buf_printf(&b, "%s{\"index\":%u,", i ? "," : "", q->index);
			if (r->chat) {
				buf_puts(&b, "\"message\":{\"role\":\"assistant\",\"content\":\"");
				buf_json_escape(&b, q->text.data ? q->text.data : "", q->text.len);
				buf_puts(&b, "\",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null}");
			} else {
				buf_puts(&b, "\"text\":\"");
				buf_json_escape(&b, q->text.data ? q->text.data : "", q->text.len);
				buf_puts(&b, "\",\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null,\"prompt_logprobs\":null}");
			}
		}
		buf_puts(&b, "],");
		usage_json(&b, r);
		buf_puts(&b, "}");
		struct http_conn *c = r->conn;
		struct buf h;
		buf_init(&h, 1 << 14);
		load_header(rep, r->orca, &h);
		http_conn_set_ctx(c, NULL);
		ereq_free(r);
		http_respond(c, 200, "application/json", h.len ? h.data : NULL, b.data, b.len);
		buf_free(&h);
	}
	buf_free(&b);
}

static void on_model_event(void *ctx, const struct engine_event *ev)
{
	(void)ctx;
	struct esub *q = ev->user;
	struct ereq *r = q->parent;
	struct replica *rep = r->rep;
	size_t plen = 0;
	const char *piece = tok_piece(rep->f->tok, ev->token, &plen);
	if (!piece)
		piece = "";
	q->n_out = ev->index + 1;
	q->prompt_tokens = ev->prompt_tokens;
	q->cached_tokens = ev->cached_tokens;
	if (ev->index == 0)
		hist_observe(&rep->ttft, (double)(ev->time - r->arrival) / 1e9);
	if (r->stream) {
		/* each prompt's chunks as they come, interleaved, each with its index */
		struct buf b;
		buf_init(&b, 1 << 20);
		if (r->chat && ev->index == 0) {
			chunk_head(&b, r);
			buf_printf(&b, "\"choices\":[{\"index\":%u,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
				       "\"logprobs\":null,\"finish_reason\":null}]}\n\n", q->index);
		}
		chunk_head(&b, r);
		const char *fin = ev->finished ? "\"length\"" : "null";
		if (r->chat) {
			buf_printf(&b, "\"choices\":[{\"index\":%u,\"delta\":{\"content\":\"", q->index);
			buf_json_escape(&b, piece, plen);
			buf_printf(&b, "\"},\"logprobs\":null,\"finish_reason\":%s%s}]}\n\n", fin,
				   ev->finished ? ",\"stop_reason\":null" : "");
		} else {
			buf_printf(&b, "\"choices\":[{\"index\":%u,\"text\":\"", q->index);
			buf_json_escape(&b, piece, plen);
			buf_printf(&b, "\",\"logprobs\":null,\"finish_reason\":%s,\"stop_reason\":null}]}\n\n", fin);
		}
		int rc = http_stream_write(r->conn, b.data, b.len);
		buf_free(&b);
		if (rc)
			return; /* closed: on_abort has aborted every live prompt and freed r */
	} else {
		buf_append(&q->text, piece, plen);
	}
	if (ev->finished) {
		hist_observe(&rep->e2e, (double)(ev->time - r->arrival) / 1e9);
		rep->ok++;
		q->live = 0;
		if (--r->n_live == 0)
			finish_request(r);
	}
}

static void on_tick(uv_timer_t *t);

static void arm(struct replica *rep)
{
	struct fleet *f = rep->f;
	uint64_t next = engine_next_event(rep->e);
	if (next == UINT64_MAX || f->stopping) {
		uv_timer_stop(&rep->timer);
		return;
	}
	uint64_t now = sim_now(f);
	double real_ns = next > now ? (double)(next - now) / f->time_scale : 0;
	uint64_t ms = (uint64_t)((real_ns + 999999.0) / 1e6);
	uv_timer_start(&rep->timer, on_tick, ms, 0);
}

static void on_tick(uv_timer_t *t)
{
	struct replica *rep = t->data;
	engine_advance(rep->e, sim_now(rep->f), on_model_event, rep);
	arm(rep);
}

/* ---- HTTP handlers ------------------------------------------------------- */

void replica_on_abort(struct http_conn *c, void *req_ctx, void *ud)
{
	(void)c;
	struct replica *rep = ud;
	struct ereq *r = req_ctx;
	if (!r)
		return;
	rep->aborted += abort_live(r);
	ereq_free(r);
	arm(rep);
}

static void handle_metrics(struct replica *rep, struct http_conn *c)
{
	struct fleet *f = rep->f;
	struct engine_stats st;
	engine_get_stats(rep->e, &st);
	char lab[256];
	snprintf(lab, sizeof lab, "model_name=\"%s\"", f->model);
	struct buf b;
	buf_init(&b, 1 << 20);
	double usage = st.blocks_total ? (double)st.blocks_used / st.blocks_total : 0;
	metric_format(&b, "vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", lab,
		      st.running);
	metric_format(&b, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", lab,
		      st.waiting);
	metric_format(&b, "vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", lab,
		      usage);
	metric_format(&b, "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", lab, usage);
	metric_format(&b, "vllm:prefix_cache_queries_total", "counter",
		      "Prefix cache queries, in terms of number of queried tokens.", lab, (double)st.prefix_queries);
	metric_format(&b, "vllm:prefix_cache_hits_total", "counter",
		      "Prefix cache hits, in terms of number of cached tokens.", lab, (double)st.prefix_hits);
	metric_format(&b, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", lab,
		      (double)st.prompt_tokens);
	metric_format(&b, "vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", lab,
		      (double)st.generation_tokens);
	metric_format(&b, "vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine.",
		      lab, (double)st.preemptions);
	char lab2[300];
	snprintf(lab2, sizeof lab2, "%s,finished_reason=\"length\"", lab);
	metric_format(&b, "vllm:request_success_total", "counter", "Count of successfully processed requests.", lab2,
		      (double)rep->ok);
	hist_format(&rep->ttft, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
		    lab, &b);
	hist_format(&rep->e2e, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
		    lab, &b);
	metric_format(&b, "prefixlb_engine_requests_aborted_total", "counter",
		      "Requests aborted because the client went away.", lab, (double)rep->aborted);
	metric_format(&b, "prefixlb_engine_requests_rejected_total", "counter", "Requests answered with an error.",
		      lab, (double)rep->rejected);
	metric_format(&b, "prefixlb_engine_steps_total", "counter", "Scheduler steps run.", lab, (double)st.steps);
	metric_format(&b, "prefixlb_engine_busy_seconds_total", "counter", "Simulated time spent in steps.", lab,
		      st.busy_ms / 1e3);
	http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
	buf_free(&b);
}

static void handle_models(struct replica *rep, struct http_conn *c)
{
	struct fleet *f = rep->f;
	struct buf b;
	buf_init(&b, 1 << 16);
	buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":\"");
	buf_json_escape(&b, f->model, strlen(f->model));
	buf_printf(&b, "\",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"prefixlb\",\"root\":\"", f->created);
	buf_json_escape(&b, f->model, strlen(f->model));
	buf_printf(&b, "\",\"parent\":null,\"max_model_len\":%ld}]}", f->prof.max_model_len);
	http_respond(c, 200, "application/json", NULL, b.data, b.len);
	buf_free(&b);
}

static void reject(struct replica *rep, struct http_conn *c, int status, const char *msg)
{
	rep->rejected++;
	respond_error(c, status, msg);
}

/* The token ids of prompt i of q (chat: the rendered messages) into ids.
 * Returns 0, or the status to answer (400, 500) with a message in err. */
static int prompt_tokens(const struct fleet *f, const struct oai_req *q, size_t i, struct tok_ids *ids, char *err,
		      size_t errlen)
{
	int rc = 0;
	if (q->chat) {
		rc = prompt_chat(f->pc, f->tpl, q->msgs, q->n_msgs, 1, ids);
		if (rc == PLB_EINVAL) {
			snprintf(err, errlen, "the chat template needs special tokens this tokenizer lacks");
			return 400;
		}
	} else if (q->prompts[i].ids) {
		const struct oai_prompt *p = &q->prompts[i];
		for (size_t k = 0; k < p->n_ids && !rc; k++) {
			if (p->ids[k] >= tok_vocab_size(f->tok)) {
				snprintf(err, errlen, "token id %u is out of vocabulary", p->ids[k]);
				return 400;
			}
			rc = tok_ids_push(ids, p->ids[k]);
		}
	} else {
		rc = tok_encode(f->tok, q->prompts[i].text, q->prompts[i].len, TOK_BOS, ids);
	}
	if (rc)
		snprintf(err, errlen, "out of memory");
	return rc ? 500 : 0;
}

/* max_tokens of a prompt of n tokens: as asked, else what vLLM defaults to
 * (chat: the rest of the context; completions: 16). */
static long max_tokens_for(const struct oai_req *q, long max_len, size_t n)
{
	if (q->max_tokens != -1)
		return q->max_tokens;
	return q->chat ? max_len - (long)n : 16;
}

static void handle_generate(struct replica *rep, struct http_conn *c, int chat, const char *body, size_t len,
			    enum orca_format orca)
{
	struct fleet *f = rep->f;
	struct oai_req q;
	char err[512];
	if (oai_parse(body, len, chat, chat ? (size_t)f->max_msgs : (size_t)f->max_prompts, &q, err, sizeof err)) {
		reject(rep, c, 400, err);
		return;
	}
	size_t n = chat ? 1 : q.n_prompts, n_alloc = 0;
	struct tok_ids *ids = plb_calloc(n, sizeof *ids);
	struct ereq *r = NULL;
	if (!ids) {
		reject(rep, c, 500, "out of memory");
		goto out;
	}
	n_alloc = n;
	if (q.model && strcmp(q.model, f->model) != 0) {
		snprintf(err, sizeof err, "The model `%s` does not exist.", q.model);
		reject(rep, c, 404, err);
		goto out;
	}
	if (q.n != 1) {
		reject(rep, c, 400, "only n=1 is supported");
		goto out;
	}
	/* every prompt is checked before any reaches the model: an error is a
	 * 400 for the whole request, as in vLLM */
	long max_len = f->prof.max_model_len;
	for (size_t i = 0; i < n; i++) {
		int st = prompt_tokens(f, &q, i, &ids[i], err, sizeof err);
		if (st) {
			reject(rep, c, st, err);
			goto out;
		}
		long max_tokens = max_tokens_for(&q, max_len, ids[i].n);
		if (ids[i].n == 0) {
			reject(rep, c, 400, "The prompt is empty.");
			goto out;
		}
		if ((long)ids[i].n >= max_len || (q.max_tokens != -1 && max_tokens < 1) ||
		    (long)ids[i].n + max_tokens > max_len) {
			if (q.max_tokens != -1 && max_tokens < 1)
				snprintf(err, sizeof err, "max_tokens must be at least 1, got %ld.", max_tokens);
			else
				snprintf(err, sizeof err,
					 "This model's maximum context length is %ld tokens. However, you requested %ld tokens "
					 "(%zu in the %s, %ld in the completion). Please reduce the length of the %s or "
					 "completion.",
					 max_len, (long)ids[i].n + (max_tokens > 0 ? max_tokens : 0), ids[i].n,
					 chat ? "messages" : "prompt", max_tokens > 0 ? max_tokens : 0,
					 chat ? "messages" : "prompt");
			reject(rep, c, 400, err);
			goto out;
		}
	}
	r = ereq_new(n);
	if (!r) {
		reject(rep, c, 500, "out of memory");
		goto out;
	}
	r->rep = rep;
	r->conn = c;
	r->chat = chat;
	r->stream = q.stream;
	r->include_usage = q.include_usage;
	r->orca = orca;
	snprintf(r->rid, sizeof r->rid, "%s-%016llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)++f->next_id);
	uint64_t now = sim_now(f);
	engine_advance(rep->e, now, on_model_event, rep);
	r->arrival = now;
	for (size_t i = 0; i < n; i++) {
		struct esub *sq = &r->subs[i];
		sq->max_tokens = (uint32_t)max_tokens_for(&q, max_len, ids[i].n);
		sq->prompt_tokens = (uint32_t)ids[i].n;
		if (engine_add(rep->e, now, ids[i].v, ids[i].n, sq->max_tokens, sq, &sq->id)) {
			abort_live(r); /* all or nothing */
			ereq_free(r);
			r = NULL;
			reject(rep, c, 400, "The request does not fit in the KV cache of this replica.");
			goto out;
		}
		sq->live = 1;
		r->n_live++;
	}
	http_conn_set_ctx(c, r);
	if (r->stream) {
		struct buf h;
		buf_init(&h, 1 << 14);
		load_header(rep, orca, &h);
		http_stream_begin(c, 200, "text/event-stream; charset=utf-8", h.len ? h.data : NULL);
		buf_free(&h);
	}
	arm(rep);
out:
	for (size_t i = 0; i < n_alloc; i++)
		tok_ids_free(&ids[i]);
	free(ids);
	oai_req_free(&q);
}

static enum orca_format orca_asked(const struct http_msg *m)
{
	const struct http_header *h = http_find(m, ORCA_REQUEST_HEADER);
	return h ? orca_format_parse(h->value, h->value_len) : ORCA_NONE;
}

void replica_on_request(struct http_conn *c, const struct http_msg *m, const char *body, size_t len, void *ud)
{
	struct replica *rep = ud;
	int gen_c = http_path_is(m, "/v1/completions"), gen_chat = http_path_is(m, "/v1/chat/completions");
	if (gen_c || gen_chat) {
		if (!http_method_is(m, "POST"))
			respond_detail(c, 405, "Method Not Allowed", "allow: POST\r\n");
		else
			handle_generate(rep, c, gen_chat, body, len, orca_asked(m));
		return;
	}
	int get = http_method_is(m, "GET") || http_method_is(m, "HEAD");
	if (http_path_is(m, "/health") || http_path_is(m, "/ping")) {
		if (get)
			http_respond(c, 200, NULL, NULL, "", 0);
		else
			respond_detail(c, 405, "Method Not Allowed", "allow: GET\r\n");
	} else if (http_path_is(m, "/v1/models")) {
		if (get)
			handle_models(rep, c);
		else
			respond_detail(c, 405, "Method Not Allowed", "allow: GET\r\n");
	} else if (http_path_is(m, "/metrics")) {
		if (get)
			handle_metrics(rep, c);
		else
			respond_detail(c, 405, "Method Not Allowed", "allow: GET\r\n");
	} else if (http_path_is(m, "/reset_prefix_cache")) {
		if (!http_method_is(m, "POST")) {
			respond_detail(c, 405, "Method Not Allowed", "allow: POST\r\n");
		} else {
			engine_advance(rep->e, sim_now(rep->f), on_model_event, rep);
			if (engine_reset_prefix_cache(rep->e, sim_now(rep->f)))
				respond_error(c, 409, "the prefix cache cannot be reset while requests hold blocks");
			else
				http_respond(c, 200, NULL, NULL, "", 0);
			arm(rep);
		}
	} else if (http_path_is(m, "/version")) {
		http_respond(c, 200, "application/json", NULL, "{\"version\":\"prefixlb-engine\"}", 29);
	} else {
		respond_detail(c, 404, "Not Found", NULL);
	}
}


void replica_on_kv(void *ctx, uint64_t now, const struct kv_event *ev, size_t n)
{
	(void)now;
	struct replica *rep = ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (rep->kv)
		kvpub_publish(rep->kv, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, ev, n);
}

int replica_init(struct fleet *f, int i, const uint32_t *filler, size_t n_filler)
{
	struct replica *rep = &f->reps[i];
	rep->f = f;
	rep->idx = i;
	rep->e = engine_new(&f->prof, filler, n_filler);
	hist_init(&rep->ttft, ttft_buckets, sizeof ttft_buckets / sizeof *ttft_buckets);
	hist_init(&rep->e2e, e2e_buckets, sizeof e2e_buckets / sizeof *e2e_buckets);
	uv_timer_init(f->loop, &rep->timer);
	rep->timer.data = rep;
	return rep->e ? 0 : -1;
}
