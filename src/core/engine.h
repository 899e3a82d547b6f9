/* engine.h: one simulated vLLM V1 replica (scheduler + paged KV cache with
 * prefix caching + a calibrated step-time model), as a pure state machine.
 *
 * The model never reads a clock and never sleeps: the caller passes `now`
 * (nanoseconds on any monotonic time line) to engine_add/engine_advance and asks
 * engine_next_event() when something will happen next. The HTTP shell drives it
 * from a libuv timer in scaled real time; the lab's simulator drives the same
 * code in virtual time.
 *
 * Behaviour follows vLLM 0.7's V1 engine (docs/seed.md sections 4-5):
 * - KV cache of blocks (16 tokens); full blocks are hashed as a chain
 *   hash(parent, tokens) and registered as cached when allocated; a prefix hit is
 *   the longest run of cached full blocks from the start; a full-prompt hit still
 *   recomputes the last block; each allocation preallocates up to 4 spare blocks.
 * - Freed blocks go to an LRU free queue, a request's tail blocks first; taking a
 *   block from the queue drops its hash from the cache.
 * - Each step: running requests FCFS get min(remaining, budget) tokens (chunked
 *   prefill); when blocks run out the newest running request is preempted
 *   (recompute: blocks freed, back to the head of waiting). Only if nothing was
 *   preempted, waiting requests are admitted FCFS while budget > 0 and running <
 *   max_num_seqs, stopping at the first that does not fit (head-of-line blocking).
 * - The first token is emitted at the end of the step that completes the prompt,
 *   then one token per step, until max_tokens.
 * Cost: a step is O(running + admitted + blocks allocated); memory is
 * O(num_blocks + tokens of live requests). */
#ifndef PREFIXLB_ENGINE_H
#define PREFIXLB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "kvevent.h"

/* The step-time model and capacities of one replica. Times in milliseconds.
 * step_ms = step_base_ms + max(min_forward_ms, per_token_ms * N)
 *         + decode_ctx_ms * sum(decode context lengths)
 *         + prefill_attn_ms * sum(chunk * (context_before + chunk / 2))
 *         + per_seq_ms * B                 (N tokens, B requests in the step) */
struct engine_profile {
	char name[64];
	double step_base_ms;
	double min_forward_ms;
	double per_token_ms;
	double decode_ctx_ms;
	double prefill_attn_ms;
	double per_seq_ms;
	double request_overhead_ms; /* request accepted -> visible to the scheduler */
	double token_overhead_ms;   /* token computed -> handed to the client */
	long kv_capacity_tokens;
	long block_size;
	long max_num_batched_tokens;
	long max_num_seqs;
	long max_model_len;
	long preallocate_blocks;
};

/* Named profiles: "l4-llama3.1-8b" (default), "a100-llama3.1-8b", "h100-llama3.1-8b". */
const struct engine_profile *engine_profile_find(const char *name);
const struct engine_profile *engine_profile_at(size_t i); /* NULL past the end */
/* Sets one field by name ("kv_capacity_tokens", "step_base_ms", ...; '-' may
 * stand for '_'). Returns 0, -1 for an unknown name, -2 for a bad value. */
int engine_profile_set(struct engine_profile *p, const char *name, const char *value);
/* The largest KV cache of one replica, in blocks (kv_capacity_tokens /
 * block_size): block indices are 32-bit, and a replica this big already takes
 * ~800 MB (24 bytes per block plus a cache map of 2 x 12 bytes per block). */
#define ENGINE_MAX_BLOCKS (1L << 24)
/* Checks what one field at a time cannot: the KV cache holds 1 to
 * ENGINE_MAX_BLOCKS blocks. Returns 0, or -1 with a message naming the field
 * and its limit in err ("kv_capacity_tokens: at most N with block_size B"). */
int engine_profile_check(const struct engine_profile *p, char *err, size_t errlen);
/* Writes a short description of every field (name, value) to out (for --help). */
size_t engine_profile_describe(const struct engine_profile *p, char *out, size_t cap);

enum engine_event_kind {
	ENGINE_TOKEN,    /* one output token (the last one also sets finished) */
	ENGINE_ABORTED,  /* the request was aborted (only for engine_abort on a live request) */
};

struct engine_event {
	enum engine_event_kind kind;
	uint64_t req_id;
	void *user;
	uint64_t time;        /* when the client gets it (ns) */
	uint32_t token;       /* ENGINE_TOKEN */
	uint32_t index;       /* 0-based output position */
	int finished;
	uint32_t prompt_tokens;
	uint32_t cached_tokens; /* prefix-cache hit at first admission */
};

typedef void (*engine_event_cb)(void *ctx, const struct engine_event *ev);

struct engine_stats {
	uint64_t requests_added, requests_finished, requests_aborted;
	uint64_t prefix_queries, prefix_hits; /* tokens */
	uint64_t prompt_tokens, generation_tokens;
	uint64_t preemptions, steps;
	uint32_t running, waiting;
	uint32_t blocks_total, blocks_used; /* used = held by a request */
	double busy_ms;
};

struct engine;

/* The text the simulated model "generates" (tokenized by the caller into the
 * filler ids): real English words, one token each, so every token decodes to
 * whole UTF-8 and an answer's text tokenizes back to the same ids. Every
 * answer starts with the first token (no leading space), then cycles through
 * the others from an offset drawn from the prompt. */
extern const char engine_filler_text[];

/* filler: the token ids generated text is drawn from (copied); n_filler >= 1.
 * Returns NULL when the profile fails engine_profile_check or memory runs out
 * (nothing is leaked). */
struct engine *engine_new(const struct engine_profile *p, const uint32_t *filler, size_t n_filler);
void engine_free(struct engine *e);

/* Adds a request at time now. The prompt is copied. Returns 0 and the id, or
 * -1 when the prompt is empty or prompt + max_tokens exceeds max_model_len. */
int engine_add(struct engine *e, uint64_t now, const uint32_t *prompt, size_t n, uint32_t max_tokens, void *user,
	       uint64_t *req_id);
/* The same without copying the prompt: the caller keeps prompt[0..n) alive
 * and unchanged until the request's last event (or engine_abort). The
 * simulator's way: its prompts live for the whole run. */
int engine_add_ref(struct engine *e, uint64_t now, const uint32_t *prompt, size_t n, uint32_t max_tokens, void *user,
		   uint64_t *req_id);
/* Aborts a live request (client went away): frees its blocks at once. No
 * event is emitted for it afterwards. Returns 0, or -1 if it is not live. */
int engine_abort(struct engine *e, uint64_t req_id);
/* Time of the next internal event, or UINT64_MAX when idle. */
uint64_t engine_next_event(const struct engine *e);
/* Runs everything due at or before now, in time order, calling cb for each event. */
void engine_advance(struct engine *e, uint64_t now, engine_event_cb cb, void *ctx);
void engine_get_stats(const struct engine *e, struct engine_stats *st);
const struct engine_profile *engine_get_profile(const struct engine *e);

/* KV cache events, as vLLM publishes them (kvevent.h): BlockStored when full
 * blocks are registered as cached (a second copy of a cached block is not:
 * this cache keeps one block per hash, where vLLM's keeps and announces both),
 * BlockRemoved when a cached block is evicted,
 * AllBlocksCleared on engine_reset_prefix_cache. Blocks are named by the
 * engine's own chained hashes (XXH3 of the parent's hash and the tokens);
 * BlockStored carries the parent's hash, the tokens and the block size,
 * medium "GPU", group_idx 0, kv_cache_spec_kind "full_attention" (vLLM 0.26's
 * values for a plain model). Events are collected during a scheduler step and
 * handed over as one batch when the step is scheduled (vLLM's scheduler
 * publishes its KVEventBatch in schedule()): cb(ctx, now, events, n), the
 * arrays valid during the call. NULL cb: no events (and no cost). */
typedef void (*engine_kv_cb)(void *ctx, uint64_t now, const struct kv_event *ev, size_t n);
void engine_set_kv_events(struct engine *e, engine_kv_cb cb, void *ctx);
/* vLLM's reset_prefix_cache: forgets every cached block, emitting
 * AllBlocksCleared (at once, a batch of its own). Refused (-1, nothing done)
 * while a request holds blocks, as vLLM refuses it. */
int engine_reset_prefix_cache(struct engine *e, uint64_t now);

/* Step time in ms for a step with the given aggregates (exposed for tests). */
double engine_step_ms(const struct engine_profile *p, long n_tokens, long n_seqs, double decode_ctx_sum,
		      double prefill_work);

#endif
