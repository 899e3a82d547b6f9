/* kvevent.h: an engine's KV cache events, as vLLM publishes them
 * (vllm/distributed/kv_events.py: KVEventBatch of BlockStored, BlockRemoved,
 * AllBlocksCleared). One plain-struct vocabulary shared by everyone who
 * touches them: the simulated engine emits them (core/engine.c), the wire
 * codec turns them into vLLM's msgpack and back (proto/kvevents.c), the
 * router's precise index and the lab consume them (core/kvindex.c).
 *
 * Everything is borrowed: pointers stay valid as long as their producer says
 * (the engine: during its callback; the decoder: until its next call, and the
 * strings until the payload bytes go). Header only. */
#ifndef PREFIXLB_KVEVENT_H
#define PREFIXLB_KVEVENT_H

#include <stddef.h>
#include <stdint.h>

enum kv_event_type {
	KV_BLOCK_STORED = 1,  /* blocks became cached (full blocks, hashed as a chain) */
	KV_BLOCK_REMOVED = 2, /* blocks were evicted */
	KV_ALL_CLEARED = 3,   /* the whole prefix cache was reset */
};

/* A msgpack string, not NUL-terminated; p == NULL means nil / absent. */
struct kv_str {
	const char *p;
	size_t n;
};

struct kv_event {
	enum kv_event_type type;
	/* STORED and REMOVED: the engine's block hashes. vLLM sends ints (the low
	 * 64 bits of its digest, the default) or bytes (the whole digest); bytes
	 * become their last 8 bytes read big-endian, which is the int vLLM would
	 * have sent (and what llm-d's kv-cache manager does). */
	const uint64_t *hashes;
	size_t n_hashes;
	/* STORED: the block before the first one here (none: a prompt's start). */
	int has_parent;
	uint64_t parent;
	/* STORED: the tokens of these blocks, n_hashes * block_size of them. */
	const uint32_t *tokens;
	size_t n_tokens;
	uint32_t block_size;
	/* optional fields (vLLM: lora_id, medium, lora_name, group_idx,
	 * kv_cache_spec_kind); group_idx -1 = absent */
	int has_lora_id;
	int64_t lora_id;
	struct kv_str medium, lora_name, spec_kind;
	int64_t group_idx;
};

struct kv_batch {
	double ts; /* the engine's wall clock (seconds since the epoch) */
	int has_dp_rank;
	int64_t dp_rank;
	const struct kv_event *events;
	size_t n_events;
};

#endif
