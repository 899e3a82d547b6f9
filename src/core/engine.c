/* engine.c: a simulated vLLM V1 replica; see engine.h for the model.
 *
 * Invariants (checked by the unit tests and by engine__check in debug runs):
 * - every block is either in the free queue (ref == 0) or held by >= 1 request;
 * - a block with has_hash is in the cache map under that hash, and the map holds
 *   nothing else (one block per hash: a second copy of a cached hash stays
 *   unregistered, as vLLM's allocator would only dedupe on the next lookup);
 * - a request is in exactly one of: pending (arrival delay), waiting, running. */
#include "mem.h"
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NS_PER_MS 1000000.0

const char engine_filler_text[] =
	"The quick brown fox jumps over the lazy dog while the old man watches from a small house near the river"
	" and the children play in the green field under a bright summer sky";

/* ---- profiles ------------------------------------------------------------ */

/* Calibrated on the seed's 8 x L4 runs (docs/seed.md section 5). */
static const struct engine_profile profiles[] = {
	{
		.name = "l4-llama3.1-8b",
		.step_base_ms = 12,
		.min_forward_ms = 36,
		.per_token_ms = 0.26,
		.decode_ctx_ms = 0.00026,
		.prefill_attn_ms = 8.7e-6,
		.per_seq_ms = 0.1,
		.request_overhead_ms = 5,
		.token_overhead_ms = 1,
		.kv_capacity_tokens = 75000,
		.block_size = 16,
		.max_num_batched_tokens = 16384,
		.max_num_seqs = 256,
		.max_model_len = 16384,
		.preallocate_blocks = 4,
	},
	/* Derived from the L4 profile by the hardware ratios (docs/engine.md):
	 * A100-80GB SXM, bf16 weights and KV: 2.04 TB/s, 312 dense TFLOPS. */
	{
		.name = "a100-llama3.1-8b",
		.step_base_ms = 8,
		.min_forward_ms = 9,
		.per_token_ms = 0.2,
		.decode_ctx_ms = 0.000075,
		.prefill_attn_ms = 6.7e-6,
		.per_seq_ms = 0.07,
		.request_overhead_ms = 4,
		.token_overhead_ms = 1,
		.kv_capacity_tokens = 400000,
		.block_size = 16,
		.max_num_batched_tokens = 16384,
		.max_num_seqs = 256,
		.max_model_len = 16384,
		.preallocate_blocks = 4,
	},
	/* H100-80GB SXM, bf16: 3.35 TB/s, 989 dense TFLOPS. */
	{
		.name = "h100-llama3.1-8b",
		.step_base_ms = 6,
		.min_forward_ms = 5.5,
		.per_token_ms = 0.065,
		.decode_ctx_ms = 0.000047,
		.prefill_attn_ms = 2.2e-6,
		.per_seq_ms = 0.05,
		.request_overhead_ms = 3,
		.token_overhead_ms = 1,
		.kv_capacity_tokens = 430000,
		.block_size = 16,
		.max_num_batched_tokens = 16384,
		.max_num_seqs = 256,
		.max_model_len = 16384,
		.preallocate_blocks = 4,
	},
};

const struct engine_profile *engine_profile_find(const char *name)
{
	for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

const struct engine_profile *engine_profile_at(size_t i)
{
	return i < sizeof profiles / sizeof profiles[0] ? &profiles[i] : NULL;
}

struct field {
	const char *name;
	size_t off;
	int is_long;
	double min, max;
	const char *help;
};

#define FD(n, h, lo, hi) {#n, offsetof(struct engine_profile, n), 0, lo, hi, h}
#define FL(n, h, lo, hi) {#n, offsetof(struct engine_profile, n), 1, lo, hi, h}
static const struct field fields[] = {
	FD(step_base_ms, "fixed cost of every step (ms)", 0, 1e6),
	FD(min_forward_ms, "floor of the forward pass, weights read once (ms)", 0, 1e6),
	FD(per_token_ms, "forward cost per scheduled token (ms)", 0, 1e6),
	FD(decode_ctx_ms, "attention cost per context token of each decode (ms)", 0, 1e6),
	FD(prefill_attn_ms, "attention cost per chunk*(context+chunk/2) of prefill (ms)", 0, 1e6),
	FD(per_seq_ms, "cost per request in the step (ms)", 0, 1e6),
	FD(request_overhead_ms, "delay from request to scheduler (ms)", 0, 1e6),
	FD(token_overhead_ms, "delay from token to client (ms)", 0, 1e6),
	FL(kv_capacity_tokens, "KV cache capacity (tokens)", 16, 1e10),
	FL(block_size, "tokens per KV block", 1, 1024),
	FL(max_num_batched_tokens, "token budget of one step", 1, 1e9),
	FL(max_num_seqs, "most requests running at once", 1, 1e6),
	FL(max_model_len, "longest prompt + output (tokens)", 2, 1e9),
	FL(preallocate_blocks, "spare blocks taken with each allocation", 0, 1024),
};

int engine_profile_set(struct engine_profile *p, const char *name, const char *value)
{
	char key[64];
	size_t n = strlen(name);
	if (n >= sizeof key)
		return -1;
	for (size_t i = 0; i <= n; i++)
		key[i] = name[i] == '-' ? '_' : name[i];
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		if (strcmp(fields[i].name, key) != 0)
			continue;
		char *end;
		double v = strtod(value, &end);
		if (end == value || *end || v != v || v < fields[i].min || v > fields[i].max)
			return -2;
		if (fields[i].is_long) {
			if (v != (double)(long)v)
				return -2;
			*(long *)((char *)p + fields[i].off) = (long)v;
		} else {
			*(double *)((char *)p + fields[i].off) = v;
		}
		return 0;
	}
	return -1;
}

int engine_profile_check(const struct engine_profile *p, char *err, size_t errlen)
{
	if (p->block_size < 1 || p->block_size > 1024) {
		snprintf(err, errlen, "block_size: must be 1 to 1024, not %ld", p->block_size);
		return -1;
	}
	if (p->kv_capacity_tokens < p->block_size) {
		snprintf(err, errlen, "kv_capacity_tokens: at least block_size (%ld), not %ld", p->block_size,
			 p->kv_capacity_tokens);
		return -1;
	}
	if (p->kv_capacity_tokens / p->block_size > ENGINE_MAX_BLOCKS) {
		snprintf(err, errlen, "kv_capacity_tokens: at most %ld with block_size %ld (%ld blocks), not %ld",
			 ENGINE_MAX_BLOCKS * p->block_size, p->block_size, ENGINE_MAX_BLOCKS, p->kv_capacity_tokens);
		return -1;
	}
	return 0;
}

size_t engine_profile_describe(const struct engine_profile *p, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const char *f = (const char *)p + fields[i].off;
		int w = fields[i].is_long
				? snprintf(out + n, n < cap ? cap - n : 0, "  %-24s %-10ld %s\n", fields[i].name,
					   *(const long *)f, fields[i].help)
				: snprintf(out + n, n < cap ? cap - n : 0, "  %-24s %-10g %s\n", fields[i].name,
					   *(const double *)f, fields[i].help);
		if (w > 0)
			n += (size_t)w;
	}
	return n;
}

double engine_step_ms(const struct engine_profile *p, long n_tokens, long n_seqs, double decode_ctx_sum,
		      double prefill_work)
{
	double fwd = p->per_token_ms * (double)n_tokens;
	if (fwd < p->min_forward_ms)
		fwd = p->min_forward_ms;
	return p->step_base_ms + fwd + p->decode_ctx_ms * decode_ctx_sum + p->prefill_attn_ms * prefill_work +
	       p->per_seq_ms * (double)n_seqs;
}

/* ---- state --------------------------------------------------------------- */

struct block {
	uint64_t hash;
	uint32_t ref;
	int32_t prev, next; /* free queue links, -1 at the ends */
	uint8_t has_hash, in_free;
	uint8_t announced; /* a BlockStored went out for hash (KV events on) */
};

enum rstate { R_PENDING, R_WAITING, R_RUNNING, R_ZOMBIE };

struct ereq {
	uint64_t id;
	void *user;
	enum rstate state;
	const uint32_t *prompt; /* owned when own_prompt */
	int own_prompt;
	uint32_t n_prompt, max_tokens, n_out;
	uint32_t seed;
	uint32_t num_computed;
	uint32_t *blocks;
	uint32_t n_blocks, cap_blocks;
	uint32_t n_cached_blocks;
	uint64_t *hashes;
	uint32_t n_hashes, cap_hashes;
	uint32_t cached_tokens;
	int admitted;
	int in_step;
	uint64_t ready;
	struct ereq *next, *prev; /* pending or waiting list */
	uint32_t slot;
};

/* Request ids are gen << 32 | slot, so a stale id never finds a reused slot. */
struct rslot {
	struct ereq *r;
	uint32_t gen;
	int32_t free_next;
};

struct rlist {
	struct ereq *head, *tail;
	uint32_t n;
};

struct sched {
	struct ereq *r;
	uint32_t n_new;
};

struct delivery {
	struct engine_event ev;
	int cancelled;
};

struct engine {
	struct engine_profile p;
	uint32_t *filler;
	size_t n_filler;

	struct block *blocks;
	uint32_t n_blocks, n_free;
	int32_t free_head, free_tail;
	uint32_t max_blocks_per_req;

	/* cache map: hash -> block index + 1 (0 = empty), linear probing */
	uint64_t *map_keys;
	uint32_t *map_vals;
	size_t map_mask;

	struct rslot *slots;
	uint32_t n_slots, cap_slots;
	int32_t free_slot;

	struct rlist pending, waiting;
	struct ereq **running;
	uint32_t n_running;

	int busy;
	uint64_t step_end;
	struct sched *step;
	uint32_t n_step;

	struct delivery *dq; /* ring buffer of deliveries, ordered by time */
	size_t dq_head, dq_len, dq_cap;

	uint32_t *scratch;
	struct engine_stats st;

	/* KV events of the step being scheduled (offsets: the pools grow) */
	engine_kv_cb kv_cb;
	void *kv_ctx;
	struct kvq_ev {
		enum kv_event_type type;
		size_t h_off, n_h, t_off, n_t;
		int has_parent;
		uint64_t parent;
	} *kvq;
	size_t kvq_n, kvq_cap;
	uint64_t *kvq_h;
	size_t kvq_nh, kvq_caph;
	uint32_t *kvq_t;
	size_t kvq_nt, kvq_capt;
	struct kv_event *kv_out;
	size_t kv_out_cap;
};

/* ---- KV events ------------------------------------------------------------ */

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	*cap = c;
	return plb_realloc(p, c * size);
}

static struct kvq_ev *kv_push(struct engine *e, enum kv_event_type t)
{
	e->kvq = grow(e->kvq, &e->kvq_cap, e->kvq_n + 1, sizeof *e->kvq);
	struct kvq_ev *q = &e->kvq[e->kvq_n++];
	*q = (struct kvq_ev){.type = t, .h_off = e->kvq_nh, .t_off = e->kvq_nt};
	return q;
}

static void kv_hash(struct engine *e, struct kvq_ev *q, uint64_t h)
{
	e->kvq_h = grow(e->kvq_h, &e->kvq_caph, e->kvq_nh + 1, sizeof *e->kvq_h);
	e->kvq_h[e->kvq_nh++] = h;
	q->n_h++;
}

/* Evicted: one BlockRemoved per block, as vLLM's _maybe_evict_cached_block. */
static void kv_removed(struct engine *e, uint64_t h)
{
	kv_hash(e, kv_push(e, KV_BLOCK_REMOVED), h);
}

static void kv_flush(struct engine *e, uint64_t now)
{
	if (!e->kvq_n)
		return;
	e->kv_out = grow(e->kv_out, &e->kv_out_cap, e->kvq_n, sizeof *e->kv_out);
	for (size_t i = 0; i < e->kvq_n; i++) {
		const struct kvq_ev *q = &e->kvq[i];
		e->kv_out[i] = (struct kv_event){
			.type = q->type,
			.hashes = q->n_h ? e->kvq_h + q->h_off : NULL,
			.n_hashes = q->n_h,
			.has_parent = q->has_parent,
			.parent = q->parent,
			.tokens = q->n_t ? e->kvq_t + q->t_off : NULL,
			.n_tokens = q->n_t,
			.block_size = (uint32_t)e->p.block_size,
			.medium = q->type == KV_ALL_CLEARED ? (struct kv_str){0} : (struct kv_str){"GPU", 3},
			.group_idx = q->type == KV_ALL_CLEARED ? -1 : 0,
			.spec_kind = q->type == KV_BLOCK_STORED ? (struct kv_str){"full_attention", 14} : (struct kv_str){0},
		};
	}
	size_t n = e->kvq_n;
	e->kvq_n = e->kvq_nh = e->kvq_nt = 0;
	e->kv_cb(e->kv_ctx, now, e->kv_out, n);
}

/* ---- lists --------------------------------------------------------------- */

static void rl_push_back(struct rlist *l, struct ereq *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void rl_push_front(struct rlist *l, struct ereq *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
	l->n++;
}

static void rl_remove(struct rlist *l, struct ereq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->next = r->prev = NULL;
	l->n--;
}

/* ---- cache map ----------------------------------------------------------- */

static size_t map_slot(uint64_t h, size_t mask)
{
	return (size_t)(h ^ (h >> 29)) & mask;
}

static int32_t map_get(const struct engine *e, uint64_t h)
{
	size_t i = map_slot(h, e->map_mask);
	while (e->map_vals[i]) {
		if (e->map_keys[i] == h)
			return (int32_t)e->map_vals[i] - 1;
		i = (i + 1) & e->map_mask;
	}
	return -1;
}

static void map_put(struct engine *e, uint64_t h, uint32_t block)
{
	size_t i = map_slot(h, e->map_mask);
	while (e->map_vals[i])
		i = (i + 1) & e->map_mask;
	e->map_keys[i] = h;
	e->map_vals[i] = block + 1;
}

/* Deletion with backward shift, so lookups never need tombstones. */
static void map_del(struct engine *e, uint64_t h)
{
	size_t i = map_slot(h, e->map_mask);
	while (e->map_vals[i] && e->map_keys[i] != h)
		i = (i + 1) & e->map_mask;
	if (!e->map_vals[i])
		return;
	size_t j = i;
	for (;;) {
		e->map_vals[i] = 0;
		for (;;) {
			j = (j + 1) & e->map_mask;
			if (!e->map_vals[j])
				return;
			size_t k = map_slot(e->map_keys[j], e->map_mask);
			/* move j back to i unless its home k lies cyclically in (i, j] */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		e->map_keys[i] = e->map_keys[j];
		e->map_vals[i] = e->map_vals[j];
		i = j;
	}
}

/* ---- blocks -------------------------------------------------------------- */

static void fq_remove(struct engine *e, uint32_t b)
{
	struct block *k = &e->blocks[b];
	if (k->prev >= 0)
		e->blocks[k->prev].next = k->next;
	else
		e->free_head = k->next;
	if (k->next >= 0)
		e->blocks[k->next].prev = k->prev;
	else
		e->free_tail = k->prev;
	k->prev = k->next = -1;
	k->in_free = 0;
	e->n_free--;
}

static void fq_append(struct engine *e, uint32_t b)
{
	struct block *k = &e->blocks[b];
	k->next = -1;
	k->prev = e->free_tail;
	if (e->free_tail >= 0)
		e->blocks[e->free_tail].next = (int32_t)b;
	else
		e->free_head = (int32_t)b;
	e->free_tail = (int32_t)b;
	k->in_free = 1;
	e->n_free++;
}

/* Takes the least recently freed block; its cached content is forgotten. */
static uint32_t fq_pop(struct engine *e)
{
	uint32_t b = (uint32_t)e->free_head;
	fq_remove(e, b);
	struct block *k = &e->blocks[b];
	if (k->has_hash) {
		map_del(e, k->hash);
		k->has_hash = 0;
	}
	if (k->announced) {
		kv_removed(e, k->hash);
		k->announced = 0;
	}
	k->ref = 1;
	return b;
}

static int push_block(struct ereq *r, uint32_t b)
{
	if (r->n_blocks == r->cap_blocks) {
		uint32_t cap = r->cap_blocks ? r->cap_blocks * 2 : 16;
		uint32_t *v = plb_realloc(r->blocks, cap * sizeof *v);
		if (!v)
			abort(); /* out of memory in the model: nothing sane to do */
		r->blocks = v;
		r->cap_blocks = cap;
	}
	r->blocks[r->n_blocks++] = b;
	return 0;
}

/* ---- requests ------------------------------------------------------------ */

static uint32_t n_tokens(const struct ereq *r)
{
	return r->n_prompt + r->n_out;
}

static uint32_t token_at(const struct engine *e, const struct ereq *r, uint32_t i)
{
	if (i < r->n_prompt)
		return r->prompt[i];
	/* An answer starts with the filler's first token ("The", no leading
	 * space: a chat template trims the answer when it is sent back, so an
	 * answer must not start with white space, as a model's doesn't), then
	 * cycles through the rest from a per-request offset. */
	uint32_t k = i - r->n_prompt;
	if (k == 0 || e->n_filler < 2)
		return e->filler[0];
	return e->filler[1 + (r->seed + k - 1) % (e->n_filler - 1)];
}

/* Chained hashes of the first `upto` full blocks of the request's tokens. */
static void ensure_hashes(const struct engine *e, struct ereq *r, uint32_t upto)
{
	if (upto <= r->n_hashes)
		return;
	if (upto > r->cap_hashes) {
		uint32_t cap = r->cap_hashes ? r->cap_hashes : 16;
		while (cap < upto)
			cap *= 2;
		uint64_t *v = plb_realloc(r->hashes, cap * sizeof *v);
		if (!v)
			abort();
		r->hashes = v;
		r->cap_hashes = cap;
	}
	uint32_t bs = (uint32_t)e->p.block_size;
	uint32_t tmp[1024];
	for (uint32_t k = r->n_hashes; k < upto; k++) {
		uint64_t parent = k ? r->hashes[k - 1] : 0x9E3779B97F4A7C15ULL;
		const uint32_t *toks;
		if ((k + 1) * bs <= r->n_prompt) {
			toks = r->prompt + k * bs;
		} else {
			for (uint32_t i = 0; i < bs; i++)
				tmp[i] = token_at(e, r, k * bs + i);
			toks = tmp;
		}
		r->hashes[k] = XXH3_64bits_withSeed(toks, bs * sizeof *toks, parent);
	}
	r->n_hashes = upto;
}

static void free_blocks(struct engine *e, struct ereq *r)
{
	/* tail first: the end of a request is evicted before its shared prefix */
	for (uint32_t i = r->n_blocks; i-- > 0;) {
		struct block *k = &e->blocks[r->blocks[i]];
		if (--k->ref == 0)
			fq_append(e, r->blocks[i]);
	}
	r->n_blocks = 0;
	r->n_cached_blocks = 0;
}

/* vLLM's KVCacheManager.allocate_slots: attach `comp` cached blocks, then
 * allocate what num_new more tokens need (+ spare blocks), register the blocks
 * that become full. Returns -1 (changing nothing) when the blocks don't fit. */
static int allocate(struct engine *e, struct ereq *r, uint32_t num_new, const uint32_t *comp, uint32_t n_comp)
{
	uint32_t bs = (uint32_t)e->p.block_size;
	uint32_t need = (r->num_computed + num_new + bs - 1) / bs;
	long new_needed = (long)need - (long)r->n_blocks - (long)n_comp;
	uint32_t evictable = 0;
	for (uint32_t i = 0; i < n_comp; i++)
		evictable += e->blocks[comp[i]].ref == 0;
	if (new_needed > (long)e->n_free - (long)evictable)
		return -1;
	for (uint32_t i = 0; i < n_comp; i++) {
		struct block *k = &e->blocks[comp[i]];
		if (k->ref == 0)
			fq_remove(e, comp[i]);
		k->ref++;
		push_block(r, comp[i]);
	}
	if (n_comp > r->n_cached_blocks)
		r->n_cached_blocks = n_comp;
	if (new_needed > 0) {
		long n = new_needed + e->p.preallocate_blocks;
		if (n > (long)e->n_free)
			n = e->n_free;
		if (n > (long)e->max_blocks_per_req - (long)r->n_blocks)
			n = (long)e->max_blocks_per_req - (long)r->n_blocks;
		for (long i = 0; i < n; i++)
			push_block(r, fq_pop(e));
	}
	uint32_t full = (r->num_computed + num_new) / bs;
	if (full > r->n_cached_blocks) {
		ensure_hashes(e, r, full);
		struct kvq_ev *q = NULL;
		for (uint32_t k = r->n_cached_blocks; k < full; k++) {
			struct block *b = &e->blocks[r->blocks[k]];
			if (b->has_hash || map_get(e, r->hashes[k]) >= 0) {
				q = NULL; /* a second copy: not cached, not announced */
				continue;
			}
			b->hash = r->hashes[k];
			b->has_hash = 1;
			map_put(e, b->hash, r->blocks[k]);
			if (e->kv_cb) {
				if (!q) {
					q = kv_push(e, KV_BLOCK_STORED);
					q->has_parent = k > 0;
					q->parent = k ? r->hashes[k - 1] : 0;
				}
				b->announced = 1;
				kv_hash(e, q, b->hash);
				e->kvq_t = grow(e->kvq_t, &e->kvq_capt, e->kvq_nt + bs, sizeof *e->kvq_t);
				for (uint32_t i = 0; i < bs; i++)
					e->kvq_t[e->kvq_nt++] = token_at(e, r, k * bs + i);
				q->n_t += bs;
			}
		}
		r->n_cached_blocks = full;
	}
	return 0;
}

/* Longest run of cached full blocks from the start, minus the last block on a
 * full hit (the last token must be computed to get logits). */
static uint32_t computed_blocks(struct engine *e, struct ereq *r, uint32_t *out)
{
	uint32_t bs = (uint32_t)e->p.block_size;
	uint32_t nt = n_tokens(r), full = nt / bs, n = 0;
	ensure_hashes(e, r, full);
	while (n < full) {
		int32_t b = map_get(e, r->hashes[n]);
		if (b < 0)
			break;
		out[n++] = (uint32_t)b;
	}
	if (n && n * bs == nt)
		n--;
	return n;
}

static struct ereq *req_get(const struct engine *e, uint64_t id)
{
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32);
	if (slot >= e->n_slots || e->slots[slot].gen != gen)
		return NULL;
	return e->slots[slot].r;
}

static void req_release(struct engine *e, struct ereq *r)
{
	struct rslot *s = &e->slots[r->slot];
	s->r = NULL;
	s->gen++;
	s->free_next = e->free_slot;
	e->free_slot = (int32_t)r->slot;
	if (r->own_prompt)
		free((void *)r->prompt);
	free(r->blocks);
	free(r->hashes);
	free(r);
}

static void running_remove(struct engine *e, struct ereq *r)
{
	for (uint32_t i = 0; i < e->n_running; i++) {
		if (e->running[i] == r) {
			memmove(&e->running[i], &e->running[i + 1], (e->n_running - i - 1) * sizeof *e->running);
			e->n_running--;
			return;
		}
	}
}

/* ---- deliveries ---------------------------------------------------------- */

static void dq_push(struct engine *e, const struct engine_event *ev)
{
	if (e->dq_len == e->dq_cap) {
		size_t cap = e->dq_cap ? e->dq_cap * 2 : 256;
		struct delivery *d = plb_malloc(cap * sizeof *d);
		if (!d)
			abort();
		for (size_t i = 0; i < e->dq_len; i++)
			d[i] = e->dq[(e->dq_head + i) % e->dq_cap];
		free(e->dq);
		e->dq = d;
		e->dq_cap = cap;
		e->dq_head = 0;
	}
	struct delivery *d = &e->dq[(e->dq_head + e->dq_len++) % e->dq_cap];
	d->ev = *ev;
	d->cancelled = 0;
}

/* ---- public -------------------------------------------------------------- */

struct engine *engine_new(const struct engine_profile *p, const uint32_t *filler, size_t n_filler)
{
	char why[160];
	if (!p || !filler || !n_filler || engine_profile_check(p, why, sizeof why))
		return NULL;
	struct engine *e = plb_calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->p = *p;
	e->n_blocks = (uint32_t)(p->kv_capacity_tokens / p->block_size); /* <= ENGINE_MAX_BLOCKS: checked */
	e->max_blocks_per_req = (uint32_t)((p->max_model_len + p->block_size - 1) / p->block_size);
	e->filler = plb_malloc(n_filler * sizeof *filler);
	/* the KV cache's arrays are sized by the profile (up to 2^24 blocks, some
	 * 800 MB): the one place where running out of memory is refused cleanly
	 * rather than fatal (mem.h), so `engine --kv-capacity-tokens` too large for
	 * this machine is an error message, not an abort */
	e->blocks = calloc(e->n_blocks, sizeof *e->blocks);
	size_t cap = 16;
	while (cap < (size_t)e->n_blocks * 2)
		cap <<= 1;
	e->map_mask = cap - 1;
	e->map_keys = calloc(cap, sizeof *e->map_keys);
	e->map_vals = calloc(cap, sizeof *e->map_vals);
	e->running = plb_calloc((size_t)p->max_num_seqs, sizeof *e->running);
	e->step = plb_calloc((size_t)p->max_num_seqs + 1, sizeof *e->step);
	e->scratch = plb_calloc(e->max_blocks_per_req + 1, sizeof *e->scratch);
	if (!e->filler || !e->blocks || !e->map_keys || !e->map_vals || !e->running || !e->step || !e->scratch) {
		engine_free(e);
		return NULL;
	}
	memcpy(e->filler, filler, n_filler * sizeof *filler);
	e->n_filler = n_filler;
	e->free_head = e->free_tail = -1;
	for (uint32_t b = 0; b < e->n_blocks; b++) {
		e->blocks[b].prev = e->blocks[b].next = -1;
		fq_append(e, b);
	}
	e->free_slot = -1;
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	for (uint32_t i = 0; i < e->n_slots; i++)
		if (e->slots[i].r) {
			if (e->slots[i].r->own_prompt)
				free((void *)e->slots[i].r->prompt);
			free(e->slots[i].r->blocks);
			free(e->slots[i].r->hashes);
			free(e->slots[i].r);
		}
	free(e->slots);
	free(e->filler);
	free(e->blocks);
	free(e->map_keys);
	free(e->map_vals);
	free(e->running);
	free(e->step);
	free(e->dq);
	free(e->scratch);
	free(e->kvq);
	free(e->kvq_h);
	free(e->kvq_t);
	free(e->kv_out);
	free(e);
}

static int add(struct engine *e, uint64_t now, const uint32_t *prompt, size_t n, uint32_t max_tokens, void *user,
	       uint64_t *req_id, int borrow)
{
	if (n == 0 || max_tokens == 0 || n + max_tokens > (size_t)e->p.max_model_len)
		return -1;
	/* a request that could never fit in the whole cache would block the queue forever */
	if ((n + max_tokens + (size_t)e->p.block_size - 1) / (size_t)e->p.block_size > e->n_blocks)
		return -1;
	if (e->free_slot < 0) {
		if (e->n_slots == e->cap_slots) {
			uint32_t cap = e->cap_slots ? e->cap_slots * 2 : 64;
			struct rslot *v = plb_realloc(e->slots, cap * sizeof *v);
			if (!v)
				return -1;
			e->slots = v;
			e->cap_slots = cap;
		}
		e->slots[e->n_slots] = (struct rslot){NULL, 1, -1};
		e->free_slot = (int32_t)e->n_slots++;
	}
	struct ereq *r = plb_calloc(1, sizeof *r);
	const uint32_t *copy = prompt;
	if (!borrow) {
		uint32_t *c = plb_malloc(n * sizeof *c);
		memcpy(c, prompt, n * sizeof *c);
		copy = c;
	}
	struct rslot *s = &e->slots[e->free_slot];
	r->slot = (uint32_t)e->free_slot;
	e->free_slot = s->free_next;
	s->r = r;
	r->prompt = copy;
	r->own_prompt = !borrow;
	r->n_prompt = (uint32_t)n;
	r->max_tokens = max_tokens;
	r->user = user;
	r->id = ((uint64_t)s->gen << 32) | r->slot;
	r->seed = (uint32_t)XXH3_64bits(copy, n * sizeof *copy);
	r->ready = now + (uint64_t)(e->p.request_overhead_ms * NS_PER_MS);
	r->state = R_PENDING;
	rl_push_back(&e->pending, r);
	e->st.requests_added++;
	*req_id = r->id;
	return 0;
}

int engine_add(struct engine *e, uint64_t now, const uint32_t *prompt, size_t n, uint32_t max_tokens, void *user,
	       uint64_t *req_id)
{
	return add(e, now, prompt, n, max_tokens, user, req_id, 0);
}

int engine_add_ref(struct engine *e, uint64_t now, const uint32_t *prompt, size_t n, uint32_t max_tokens, void *user,
		   uint64_t *req_id)
{
	return add(e, now, prompt, n, max_tokens, user, req_id, 1);
}

int engine_abort(struct engine *e, uint64_t req_id)
{
	/* Tokens already made but not yet delivered (token_overhead_ms) are
	 * dropped even when the request itself is done: after this call no event
	 * names req_id, so its owner may free what ev.user points at. */
	int undelivered = 0;
	for (size_t i = 0; i < e->dq_len; i++) {
		struct delivery *d = &e->dq[(e->dq_head + i) % e->dq_cap];
		if (d->ev.req_id == req_id && !d->cancelled) {
			d->cancelled = 1;
			undelivered = 1;
		}
	}
	struct ereq *r = req_get(e, req_id);
	if (!r || r->state == R_ZOMBIE) {
		if (undelivered)
			e->st.requests_aborted++;
		return undelivered ? 0 : -1;
	}
	switch (r->state) {
	case R_PENDING: rl_remove(&e->pending, r); break;
	case R_WAITING: rl_remove(&e->waiting, r); break;
	case R_RUNNING: running_remove(e, r); break;
	default: break;
	}
	free_blocks(e, r);
	e->st.requests_aborted++;
	if (r->in_step)
		r->state = R_ZOMBIE; /* the step in flight still points at it */
	else
		req_release(e, r);
	return 0;
}

/* vLLM's Scheduler.schedule(); sets step[] and step_end. */
static void schedule(struct engine *e, uint64_t now)
{
	long budget = e->p.max_num_batched_tokens;
	uint32_t preempted = 0;
	e->n_step = 0;
	for (uint32_t i = 0; i < e->n_running && budget > 0; i++) {
		struct ereq *r = e->running[i];
		uint32_t num_new = n_tokens(r) - r->num_computed;
		if (num_new > budget)
			num_new = (uint32_t)budget;
		int ok = 0;
		for (;;) {
			if (allocate(e, r, num_new, NULL, 0) == 0) {
				ok = 1;
				break;
			}
			struct ereq *v = e->running[--e->n_running];
			free_blocks(e, v);
			v->num_computed = 0;
			v->state = R_WAITING;
			rl_push_front(&e->waiting, v);
			preempted++;
			e->st.preemptions++;
			if (v == r)
				break;
		}
		if (!ok)
			break;
		e->step[e->n_step++] = (struct sched){r, num_new};
		r->in_step = 1;
		budget -= num_new;
	}
	if (!preempted) {
		while (e->waiting.head && budget > 0 && e->n_running < (uint32_t)e->p.max_num_seqs) {
			struct ereq *r = e->waiting.head;
			uint32_t n_comp = computed_blocks(e, r, e->scratch);
			uint32_t comp_tokens = n_comp * (uint32_t)e->p.block_size;
			uint32_t num_new = n_tokens(r) - comp_tokens;
			if (num_new > budget)
				num_new = (uint32_t)budget;
			r->num_computed = comp_tokens;
			if (allocate(e, r, num_new, e->scratch, n_comp)) {
				r->num_computed = 0;
				break; /* head-of-line blocking */
			}
			rl_remove(&e->waiting, r);
			r->state = R_RUNNING;
			e->running[e->n_running++] = r;
			if (!r->admitted) {
				r->admitted = 1;
				r->cached_tokens = comp_tokens;
				e->st.prefix_queries += n_tokens(r);
				e->st.prefix_hits += comp_tokens;
				e->st.prompt_tokens += r->n_prompt;
			}
			e->step[e->n_step++] = (struct sched){r, num_new};
			r->in_step = 1;
			budget -= num_new;
		}
	}
	long n_tok = 0;
	double dctx = 0, pwork = 0;
	for (uint32_t i = 0; i < e->n_step; i++) {
		struct ereq *r = e->step[i].r;
		uint32_t k = e->step[i].n_new;
		n_tok += k;
		if (r->n_out > 0 && k == 1 && r->num_computed + 1 == n_tokens(r))
			dctx += r->num_computed;
		else
			pwork += (double)k * ((double)r->num_computed + (double)k / 2.0);
	}
	double ms = e->n_step ? engine_step_ms(&e->p, n_tok, e->n_step, dctx, pwork) : e->p.step_base_ms;
	if (ms <= 0)
		ms = 1e-3;
	if (e->kv_cb)
		kv_flush(e, now);
	e->busy = 1;
	e->step_end = now + (uint64_t)(ms * NS_PER_MS);
	e->st.steps++;
	e->st.busy_ms += ms;
}

static void finish_step(struct engine *e)
{
	uint64_t t = e->step_end + (uint64_t)(e->p.token_overhead_ms * NS_PER_MS);
	for (uint32_t i = 0; i < e->n_step; i++) {
		struct ereq *r = e->step[i].r;
		r->in_step = 0;
		if (r->state == R_ZOMBIE) {
			req_release(e, r);
			continue;
		}
		if (r->state != R_RUNNING)
			continue; /* preempted later in the same schedule() */
		r->num_computed += e->step[i].n_new;
		if (r->num_computed < n_tokens(r))
			continue; /* chunked prefill not done yet */
		struct engine_event ev = {
			.kind = ENGINE_TOKEN,
			.req_id = r->id,
			.user = r->user,
			.time = t,
			.token = token_at(e, r, n_tokens(r)),
			.index = r->n_out,
			.prompt_tokens = r->n_prompt,
			.cached_tokens = r->cached_tokens,
		};
		r->n_out++;
		e->st.generation_tokens++;
		if (r->n_out >= r->max_tokens) {
			ev.finished = 1;
			running_remove(e, r);
			free_blocks(e, r);
			e->st.requests_finished++;
			req_release(e, r);
		}
		dq_push(e, &ev);
	}
	e->n_step = 0;
	e->busy = 0;
}

uint64_t engine_next_event(const struct engine *e)
{
	uint64_t t = UINT64_MAX;
	if (e->busy)
		t = e->step_end;
	if (e->pending.head && e->pending.head->ready < t)
		t = e->pending.head->ready;
	if (e->dq_len && e->dq[e->dq_head].ev.time < t)
		t = e->dq[e->dq_head].ev.time;
	return t;
}

void engine_advance(struct engine *e, uint64_t now, engine_event_cb cb, void *ctx)
{
	for (;;) {
		uint64_t t = engine_next_event(e);
		if (t > now)
			break;
		/* deliveries due first: they were produced by earlier steps */
		while (e->dq_len && e->dq[e->dq_head].ev.time <= t) {
			struct delivery d = e->dq[e->dq_head];
			e->dq_head = (e->dq_head + 1) % e->dq_cap;
			e->dq_len--;
			if (!d.cancelled && cb)
				cb(ctx, &d.ev);
		}
		if (e->busy && e->step_end <= t)
			finish_step(e);
		while (e->pending.head && e->pending.head->ready <= t) {
			struct ereq *r = e->pending.head;
			rl_remove(&e->pending, r);
			r->state = R_WAITING;
			rl_push_back(&e->waiting, r);
		}
		if (!e->busy && (e->n_running || e->waiting.head))
			schedule(e, t);
	}
}

void engine_get_stats(const struct engine *e, struct engine_stats *st)
{
	*st = e->st;
	st->running = e->n_running;
	st->waiting = e->waiting.n + e->pending.n;
	st->blocks_total = e->n_blocks;
	st->blocks_used = e->n_blocks - e->n_free;
}

void engine_set_kv_events(struct engine *e, engine_kv_cb cb, void *ctx)
{
	e->kv_cb = cb;
	e->kv_ctx = ctx;
}

int engine_reset_prefix_cache(struct engine *e, uint64_t now)
{
	if (e->n_free != e->n_blocks)
		return -1;
	for (uint32_t b = 0; b < e->n_blocks; b++)
		e->blocks[b].has_hash = e->blocks[b].announced = 0;
	memset(e->map_vals, 0, (e->map_mask + 1) * sizeof *e->map_vals);
	if (e->kv_cb) {
		kv_push(e, KV_ALL_CLEARED);
		kv_flush(e, now);
	}
	return 0;
}

const struct engine_profile *engine_get_profile(const struct engine *e)
{
	return &e->p;
}
