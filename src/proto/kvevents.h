/* kvevents.h: vLLM's KV cache events on the wire (ZeroMQ frames, msgpack
 * payload), both ways, and its --kv-events-config JSON.
 *
 * Wire format (vllm/distributed/kv_events.py, ZmqEventPublisher): each batch
 * is a 3-frame message [topic, seq as 8 bytes big-endian, payload]; the
 * payload is msgspec's msgpack of KVEventBatch. The replay socket (ROUTER)
 * takes [identity, "", start seq as 8 bytes big-endian] and answers with one
 * [identity, "", seq, payload] per buffered batch with seq >= start, then
 * [identity, "", -1 as 8 bytes, ""] (the end marker).
 *
 * Payload, two encodings (docs/engine.md has the byte-level derivation):
 *  - KVEVENTS_ARRAY, vLLM before PR #42892 (merged 2026-06-09; the structs of
 *    vllm@b4e69e0a "array_like=True"): every event a positional array, the
 *    tag first: ["BlockStored", block_hashes, parent_block_hash, token_ids,
 *    block_size, lora_id, medium, lora_name, extra_keys, group_idx,
 *    kv_cache_spec_kind, kv_cache_spec_sliding_window], ["BlockRemoved",
 *    block_hashes, medium, group_idx], ["AllBlocksCleared"]. msgspec writes
 *    every field of an array_like struct (omit_defaults does not shorten
 *    arrays: msgspec issue #720); older vLLM had fewer trailing fields.
 *  - KVEVENTS_MAP, vLLM since #42892 (vllm@0181ea31): every event a map
 *    tagged by "type", fields by name, defaults (None) left out.
 * In both the batch itself stays the positional [ts, events, data_parallel_rank]
 * (vLLM 0.26-0.28 as captured by its users); a later vLLM source also drops
 * array_like from the batch, so the decoder accepts a batch map
 * {"ts", "events", "data_parallel_rank"} as well.
 *
 * The decoder accepts both encodings, mixed in one batch, unknown map keys and
 * extra trailing positional fields (forward compatibility, as msgspec does),
 * and nothing else: a wrong type, a missing required field, a duplicate key,
 * token_ids not n_hashes x block_size long, a count larger than the bytes
 * left, nesting deeper than 32, bytes after the batch: all are errors with a
 * message naming the byte offset and the field. It never allocates more than
 * a small multiple of the payload's size (msgpack-c's own unpacker allocates
 * count x 24 bytes on an array header before reading it, so a 5-byte input
 * can ask for 96 GB: the decoder is ours; encoding uses msgpack-c's packer). */
#ifndef PREFIXLB_KVEVENTS_H
#define PREFIXLB_KVEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/kvevent.h"

enum kvevents_enc {
	KVEVENTS_MAP = 0,   /* vLLM since 2026 (PR #42892): events as maps tagged by "type" */
	KVEVENTS_ARRAY = 1, /* vLLM before: events as positional arrays */
};

/* The end-of-replay marker's sequence number (-1 as 8 bytes). */
#define KVEVENTS_REPLAY_END UINT64_MAX

/* Appends the msgpack payload of b to out. Returns 0, or -1 when out's
 * ceiling is reached (out is then left with a partial payload: reset it). */
int kvevents_encode(struct buf *out, const struct kv_batch *b, enum kvevents_enc enc);

/* Reusable decoder scratch. */
struct kvevents_dec {
	struct kv_event *ev;
	size_t cap_ev;
	void *pev; /* events while parsing */
	size_t cap_pev;
	uint64_t *h;
	size_t cap_h;
	uint32_t *t;
	size_t cap_t;
};

void kvevents_dec_init(struct kvevents_dec *d);
void kvevents_dec_free(struct kvevents_dec *d);
/* Decodes one payload into *out. The arrays out points to are d's (valid
 * until the next call); the strings point into p. Returns 0, or -1 with
 * "byte N: what" in err. *saw_map (may be NULL) is set to 1 when some event
 * was a map. */
int kvevents_decode(struct kvevents_dec *d, const void *p, size_t n, struct kv_batch *out, int *saw_map, char *err,
		    size_t errlen);

/* Sequence frames: 8 bytes, big-endian. _get returns -1 unless n == 8. */
void kvevents_put_seq(uint8_t out[8], uint64_t seq);
int kvevents_get_seq(const void *p, size_t n, uint64_t *seq);

/* vLLM's --kv-events-config (vllm/config/kv_events.py, KVEventsConfig). */
struct kvevents_cfg {
	int enable;             /* enable_kv_cache_events */
	char publisher[16];     /* "null" or "zmq" */
	char endpoint[256];     /* PUB, default port 5557 on every address (bound) */
	char replay[256];       /* ROUTER (vLLM examples: port 5558), "" = none */
	long buffer_steps;      /* batches kept for replay (10000) */
	long hwm;               /* PUB high-water mark (100000) */
	long max_queue_size;    /* (100000) */
	char topic[256];        /* "" */
};

/* Parses the JSON object; unknown keys and wrong types are errors (vLLM's
 * config is strict too). Defaults as vLLM's. Returns 0 or -1 with err. */
int kvevents_parse_config(const char *json, struct kvevents_cfg *c, char *err, size_t errlen);
/* vLLM's offset_endpoint_port: "tcp://HOST:5557" + rank 1 -> "tcp://HOST:5558";
 * rank 0 unchanged; "inproc://x" -> "inproc://x_dp<rank>". -1 if the port is
 * not a number or goes past 65535. */
int kvevents_offset_endpoint(const char *ep, int rank, char *out, size_t n);

#endif
