/* engine.c: `prefixlb engine`, a fleet of simulated vLLM replicas behind an
 * OpenAI-compatible HTTP API, all on one libuv loop: a shell. Options (every
 * profile field is a flag too), profile files, the fleet's start and stop;
 * replica i listens on port+i and is src/net/replica.c's. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "../core/mem.h"
#include "../core/chat.h"
#include "../core/engine.h"
#include "../core/err.h"
#include "../core/hist.h"
#include "../core/prompt.h"
#include "../core/tokenizer.h"
#include "../net/kvpub.h"
#include "../net/replica.h"
#include "../proto/kvevents.h"
#include <zmq.h>
#include "../proto/openai.h"
#include "cmd.h"
#include "opts.h"

#define DEFAULT_MODEL "llama-3.1-8b-instruct-fp8-l4"

/* ---- profile files ------------------------------------------------------- */

/* "key = value" lines, '#' comments; "base = NAME" starts from a named profile. */
static int load_profile_file(const char *path, struct engine_profile *p)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	if (cmd_read_file(path, b.max, &b)) {
		buf_free(&b);
		return -1;
	}
	int line = 0, rc = 0;
	char *save = NULL;
	for (char *l = strtok_r(b.data ? b.data : "", "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		char *h = strchr(l, '#');
		if (h)
			*h = '\0';
		char *eq = strchr(l, '=');
		char *k = l;
		while (*k == ' ' || *k == '\t')
			k++;
		if (!*k || *k == '\r')
			continue;
		if (!eq) {
			fprintf(stderr, "prefixlb engine: %s:%d: expected key = value\n", path, line);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *v = eq + 1, *e;
		for (e = eq - 1; e >= k && (*e == ' ' || *e == '\t'); e--)
			*e = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		for (e = v + strlen(v) - 1; e >= v && (*e == ' ' || *e == '\t' || *e == '\r'); e--)
			*e = '\0';
		if (!strcmp(k, "base") || !strcmp(k, "name")) {
			const struct engine_profile *bp = engine_profile_find(v);
			if (!strcmp(k, "base")) {
				if (!bp) {
					fprintf(stderr, "prefixlb engine: %s:%d: unknown profile '%s'\n", path, line, v);
					rc = -1;
					break;
				}
				*p = *bp;
			}
			if (!strcmp(k, "name"))
				snprintf(p->name, sizeof p->name, "%s", v);
			continue;
		}
		int r = engine_profile_set(p, k, v);
		if (r) {
			fprintf(stderr, "prefixlb engine: %s:%d: %s '%s'\n", path, line,
				r == -1 ? "unknown key" : "bad value for", k);
			rc = -1;
			break;
		}
	}
	buf_free(&b);
	return rc;
}

/* ---- main ---------------------------------------------------------------- */

static void close_timer(uv_handle_t *h)
{
	(void)h;
}

static void shutdown_fleet(struct fleet *f)
{
	if (f->stopping)
		return;
	f->stopping = 1;
	for (int i = 0; i < f->n_init; i++) {
		if (f->reps[i].srv)
			http_server_close(f->reps[i].srv);
		f->reps[i].srv = NULL;
		uv_timer_stop(&f->reps[i].timer);
		uv_close((uv_handle_t *)&f->reps[i].timer, close_timer);
		kvpub_close(f->reps[i].kv);
		f->reps[i].kv = NULL;
	}
	uv_close((uv_handle_t *)&f->sigint, NULL);
	uv_close((uv_handle_t *)&f->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int sig)
{
	(void)sig;
	shutdown_fleet(s->data);
}

struct engine_opts {
	struct engine_profile *prof;
	int profile_set_by_flag;
};

/* Any profile field is also a flag: --kv-capacity-tokens 150000. */
static int profile_flag(void *ctx, const char *name, const char *value)
{
	struct engine_opts *o = ctx;
	struct engine_profile tmp = *o->prof;
	int r = engine_profile_set(&tmp, name, value ? value : "");
	if (r == -1)
		return -1;
	if (r == -2) {
		fprintf(stderr, "prefixlb engine: --%s: bad value '%s'\n", name, value ? value : "");
		return -2;
	}
	*o->prof = tmp;
	return 1;
}

static const char engine_usage[] =
	"usage: prefixlb engine [--port 9000] [--replicas 8] [--host 127.0.0.1] [--profile l4-llama3.1-8b]\n"
	"                       [--time-scale 1] [--served-model-name NAME] [--PROFILE-FIELD VALUE ...]\n"
	"  A fleet of simulated vLLM replicas: replica i serves the OpenAI API on port+i\n"
	"  (POST /v1/completions, /v1/chat/completions; GET /v1/models, /health, /metrics).\n"
	"  --profile takes a profile name or a file of 'key = value' lines ('base = NAME' first).\n"
	"  Every profile field below is also a flag (--kv-capacity-tokens 150000).\n"
	"  --kv-events-config takes vLLM's JSON; replica i publishes on the endpoint's port + i and\n"
	"  answers replays on the replay endpoint's port + i (docs/engine.md, 'KV events').\n";

/* "1,5,9" -> seqs. -1 on a bad list. */
static int parse_seqs(const char *s, uint64_t *v, size_t max, size_t *n)
{
	*n = 0;
	while (s && *s) {
		char *end;
		unsigned long long x = strtoull(s, &end, 10);
		if (end == s || (*end && *end != ',') || *n == max)
			return -1;
		v[(*n)++] = x;
		s = *end ? end + 1 : end;
	}
	return 0;
}

/* --kv-events-*: a publisher per replica. The ports file then says
 * "HTTP PUB REPLAY" per replica. 0 or -1 (with a message). */
static int kv_setup(struct fleet *f, void **zctx, const char *json, const char *encoding, const char *drop,
		    long mute_after, int bind)
{
	struct kvevents_cfg c;
	char err[400];
	uint64_t seqs[64];
	size_t n_seqs;
	if (kvevents_parse_config(json, &c, err, sizeof err)) {
		fprintf(stderr, "prefixlb engine: --%s\n", err);
		return -1;
	}
	if (strcmp(encoding, "map") && strcmp(encoding, "array")) {
		fprintf(stderr, "prefixlb engine: --kv-events-encoding %s: map (vLLM since 2026) or array (before)\n", encoding);
		return -1;
	}
	if (parse_seqs(drop, seqs, 64, &n_seqs)) {
		fprintf(stderr, "prefixlb engine: --kv-events-test-drop %s: up to 64 numbers, comma-separated\n", drop);
		return -1;
	}
	if (!c.enable || !strcmp(c.publisher, "null"))
		return 0;
	*zctx = zmq_ctx_new();
	struct kvpub_test t = {seqs, n_seqs, (uint64_t)mute_after, bind};
	for (int i = 0; i < f->n; i++) {
		struct replica *rep = &f->reps[i];
		rep->kv = kvpub_new(f->loop, *zctx, &c, i, !strcmp(encoding, "array") ? KVEVENTS_ARRAY : KVEVENTS_MAP, &t,
				    err, sizeof err);
		if (!rep->kv) {
			fprintf(stderr, "prefixlb engine: replica %d: %s\n", i, err);
			return -1;
		}
		engine_set_kv_events(rep->e, replica_on_kv, rep);
	}
	return 0;
}

int cmd_engine(int argc, char **argv)
{
	long port = 9000, replicas = 8, max_body = 8 << 20, max_head = 64 << 10, max_msgs = 10000, max_prompts = 1024;
	double time_scale = 1;
	const char *host = "127.0.0.1", *profile = "l4-llama3.1-8b", *model = DEFAULT_MODEL, *tokenizer = NULL,
		   *ports_file = NULL, *template = "llama-3.1", *kv_json = NULL, *kv_enc = "map", *kv_drop = "";
	long kv_mute = 0;
	int kv_bind = 0;
	void *zctx = NULL;
	struct opt_list params = {0};
	const struct opt tab[] = {
		{"port", OPT_INT, &port, "first port (replica i listens on port+i; 0: the kernel picks)", 0, 65535},
		{"replicas", OPT_INT, &replicas, "number of replicas", 1, 4096},
		{"host", OPT_STR, &host, "address to bind", 0, 0},
		{"profile", OPT_STR, &profile, "timing profile: a name or a file", 0, 0},
		{"time-scale", OPT_DBL, &time_scale, "simulated seconds per real second", 1e-3, 1e6},
		{"served-model-name", OPT_STR, &model, "model name in the API", 0, 0},
		{"chat-template", OPT_STR, &template, "llama-3.1 (the seed's model) | llama-3: how chat is rendered", 0, 0},
		{"tokenizer", OPT_STR, &tokenizer, "tokenizer.json (default data/tokenizer.json)", 0, 0},
		{"max-body", OPT_INT, &max_body, "largest request body in bytes (413 above)", 1024, 1L << 30},
		{"max-header", OPT_INT, &max_head, "largest request head in bytes (431 above)", 1024, 1 << 24},
		{"max-messages", OPT_INT, &max_msgs, "most chat messages in one request", 1, 1e7},
		{"max-prompts", OPT_INT, &max_prompts, "most prompts in one batched completion (400 above)", 1, 1e6},
		{"param", OPT_LIST, &params, "KEY=VALUE: set one profile field (repeatable)", 0, 0},
		{"ports-file", OPT_STR, &ports_file, "write the bound ports here, one line per replica", 0, 0},
		{"kv-events-config", OPT_STR, &kv_json, "vLLM's KV events JSON ({\"enable_kv_cache_events\":true,...})", 0, 0},
		{"kv-events-encoding", OPT_STR, &kv_enc, "map (vLLM since 2026) | array (vLLM before): how events are encoded", 0, 0},
		{"kv-events-bind", OPT_BOOL, &kv_bind,
		 "bind the KV event endpoint even without '*' (vLLM connects to it then: a collector's address)", 0, 0},
		{"kv-events-test-drop", OPT_STR, &kv_drop, "tests: batch numbers N,M.. kept for replay but not published", 0, 0},
		{"kv-events-test-mute-after", OPT_INT, &kv_mute, "tests: close the PUB socket after N batches (0: never)", 0, 1e12},
		{0},
	};
	/* the profile must be known before field flags apply: find --profile first */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--profile") && i + 1 < argc)
			profile = argv[i + 1];
		else if (!strncmp(argv[i], "--profile=", 10))
			profile = argv[i] + 10;
	}
	struct engine_profile prof;
	const struct engine_profile *named = engine_profile_find(profile);
	if (named) {
		prof = *named;
	} else {
		FILE *probe = fopen(profile, "rb");
		if (!probe) { /* neither a profile's name nor a file we can read */
			fprintf(stderr, "prefixlb engine: unknown profile '%s' (known: ", profile);
			for (size_t i = 0; engine_profile_at(i); i++)
				fprintf(stderr, "%s%s", i ? ", " : "", engine_profile_at(i)->name);
			fprintf(stderr, "; or a file of key = value lines)\n");
			return 2;
		}
		fclose(probe);
		prof = *engine_profile_find("l4-llama3.1-8b");
		if (load_profile_file(profile, &prof))
			return 2;
	}
	struct engine_opts eo = {&prof, 0};
	int pr = opts_parse("engine", engine_usage, tab, argc, argv, profile_flag, &eo);
	if (pr == 1) {
		char desc[4096];
		engine_profile_describe(&prof, desc, sizeof desc);
		printf("\nprofile fields (values of %s):\n%s\nprofiles:", prof.name, desc);
		for (size_t i = 0; engine_profile_at(i); i++)
			printf(" %s", engine_profile_at(i)->name);
		printf("\n");
		return 0;
	}
	if (pr < 0)
		return 2;
	for (size_t i = 0; i < params.n; i++) {
		char *eq = strchr(params.v[i], '=');
		if (!eq) {
			fprintf(stderr, "prefixlb engine: --param %s: expected KEY=VALUE\n", params.v[i]);
			opt_list_free(&params);
			return 2;
		}
		*eq = '\0';
		int r = engine_profile_set(&prof, params.v[i], eq + 1);
		if (r) {
			fprintf(stderr, "prefixlb engine: --param %s: %s\n", params.v[i],
				r == -1 ? "unknown profile field" : "bad value");
			opt_list_free(&params);
			return 2;
		}
	}
	opt_list_free(&params);
	char perr[256];
	if (engine_profile_check(&prof, perr, sizeof perr)) {
		fprintf(stderr, "prefixlb engine: %s\n", perr);
		return 2;
	}
	if (port && port + replicas - 1 > 65535) {
		fprintf(stderr, "prefixlb engine: ports %ld..%ld are out of range\n", port, port + replicas - 1);
		return 2;
	}
	enum chat_template tpl;
	if (chat_template_find(template, &tpl)) {
		fprintf(stderr, "prefixlb engine: --chat-template %s: llama-3.1 or llama-3\n", template);
		return 2;
	}
	cmd_raise_nofile();
	signal(SIGPIPE, SIG_IGN);

	struct fleet f = {0};
	f.tpl = tpl;
	f.loop = uv_default_loop();
	f.prof = prof;
	f.time_scale = time_scale;
	f.model = model;
	f.max_body = max_body;
	f.max_msgs = max_msgs;
	f.max_prompts = max_prompts;
	f.created = (long)time(NULL);
	f.tok = cmd_load_tokenizer(tokenizer);
	if (!f.tok)
		return 1;
	f.pc = prompt_cache_new(f.tok, (size_t)1 << 22);
	struct tok_ids filler = {0};
	tok_encode(f.tok, engine_filler_text, strlen(engine_filler_text), 0, &filler);
	f.n = (int)replicas;
	f.reps = plb_calloc((size_t)replicas, sizeof *f.reps);
	int rc = 0;
	struct buf ports;
	buf_init(&ports, 1 << 20);
	for (int i = 0; i < f.n && !rc; i++) {
		struct replica *rep = &f.reps[i];
		f.prof = prof;
		replica_init(&f, i, filler.v, filler.n);
		f.n_init = i + 1;
		struct http_server_cfg cfg = {
			.host = host,
			.port = port ? (int)(port + i) : 0,
			.max_head = (size_t)max_head,
			.max_body = (size_t)max_body,
			.on_request = replica_on_request,
			.on_abort = replica_on_abort,
			.error_body = oai_error_body,
			.ud = rep,
		};
		char err[256];
		if (!rep->e) {
			fprintf(stderr, "prefixlb engine: replica %d: out of memory for a KV cache of %ld blocks\n", i,
				prof.kv_capacity_tokens / prof.block_size);
			rc = 1;
			break;
		}
		rep->srv = http_server_new(f.loop, &cfg, err, sizeof err);
		if (!rep->srv) {
			fprintf(stderr, "prefixlb engine: replica %d: %s\n", i, err);
			rc = 1;
			break;
		}
	}
	if (!rc && kv_json && kv_setup(&f, &zctx, kv_json, kv_enc, kv_drop, kv_mute, kv_bind))
		rc = 2;
	for (int i = 0; i < f.n && !rc; i++) {
		int pp = 0, rp = 0;
		if (f.reps[i].kv) {
			kvpub_ports(f.reps[i].kv, &pp, &rp);
			buf_printf(&ports, "%d %d %d\n", http_server_port(f.reps[i].srv), pp, rp);
		} else {
			buf_printf(&ports, "%d\n", http_server_port(f.reps[i].srv));
		}
	}
	if (!rc) {
		if (ports_file) {
			if (cmd_write_file_atomic(ports_file, ports.data, ports.len)) {
				fprintf(stderr, "prefixlb engine: %s: cannot write\n", ports_file);
				rc = 1;
			}
		}
		fprintf(stderr, "prefixlb engine: %d replica%s of %s (KV %ld tokens) serving '%s' on %s ports %d..%d, time scale %g\n",
			f.n, f.n == 1 ? "" : "s", prof.name, prof.kv_capacity_tokens, model, host,
			http_server_port(f.reps[0].srv), http_server_port(f.reps[f.n - 1].srv), time_scale);
	}
	buf_free(&ports);
	uv_signal_init(f.loop, &f.sigint);
	uv_signal_init(f.loop, &f.sigterm);
	f.sigint.data = f.sigterm.data = &f;
	uv_signal_start(&f.sigint, on_signal, SIGINT);
	uv_signal_start(&f.sigterm, on_signal, SIGTERM);
	f.t0 = uv_hrtime();
	if (rc)
		shutdown_fleet(&f);
	uv_run(f.loop, UV_RUN_DEFAULT);
	for (int i = 0; i < f.n; i++)
		engine_free(f.reps[i].e);
	free(f.reps);
	tok_ids_free(&filler);
	prompt_cache_free(f.pc);
	tok_free(f.tok);
	uv_loop_close(f.loop);
	if (zctx)
		zmq_ctx_term(zctx); /* every socket closed with linger 0: returns at once */
	return rc;
}
