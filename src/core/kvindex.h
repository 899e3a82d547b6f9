/* kvindex.h: the precise prefix index, fed by the engines' KV events (vLLM's
 * BlockStored / BlockRemoved / AllBlocksCleared, kvevent.h), with the
 * decisions about their sequence numbers and freshness. Pure: the router's
 * subscriber (net/kvsub.c) and the lab (core/sim.c) drive it alike.
 *
 * Hashes. An engine names its blocks with its own chained hashes (vLLM: sha256
 * or Python's hash of (parent, tokens, extra keys), per engine settings). We
 * don't reproduce them: a BlockStored carries its blocks' tokens and its
 * parent's engine hash, so each engine block is mapped to OUR chain hash of
 * the same tokens (pindex_chain_next from the parent's, seeded by the
 * backend's model, or the event's lora_name), the one the policies compute for
 * a request (lb__hash_blocks). A map (backend, engine hash) -> (our hash,
 * copies) turns later removals back; a store whose parent we never saw is
 * counted (orphans) and skipped. Blocks must be the router's block size
 * (block-tokens = the engine's block_size), else counted (incompatible).
 * Events of other KV cache groups (group_idx > 0, hybrid models) or tiers
 * (medium other than GPU) are ignored, as Dynamo's router ignores them.
 *
 * Sequence numbers (per backend; vLLM's publisher counts from 0 per process):
 *   - in order: apply;
 *   - a gap: hold what comes next and replay from the first missing number;
 *     replayed batches fill it; when the replay ends the held ones follow.
 *     A gap still there after two replays (the engine's buffer no longer has
 *     them), or a replay that times out, is unrecoverable: the backend's
 *     entries are dropped (removals may have been lost) and the stream goes
 *     on from there;
 *   - going backwards: the publisher restarted (its cache is new): entries
 *     dropped, and its history replayed from 0;
 *   - the first message of a stream, or the first connection: replay from 0
 *     to learn what was stored before we listened;
 *   - a reconnection: replay from the last batch we have; a publisher that no
 *     longer has it restarted (entries dropped, its history replayed).
 * AllBlocksCleared drops the backend's entries too.
 *
 * Freshness: a backend's precise view is used only while fresh. It goes
 * stale when its transport has been disconnected for max_age, or when at
 * least stale_requests requests of a block or more were routed to it since
 * its last message and the first of them is max_age old (a live engine that
 * computes prompts publishes stores). Stale backends fall back to what the
 * policy recorded at routing time (its approximate index).
 *
 * Pending: the events lag the routing (a request routed now is scheduled,
 * then published, then received), so blocks routed within pending_ns count
 * as held too: a fresh backend's match is max(precise, pending).
 *
 * Cost: apply O(blocks) hash lookups; match O(blocks + backends). Memory ~48
 * bytes per known engine block plus the pindex's ~80 per entry, bounded by
 * max_per_backend (past it the backend is dropped: it means missed removals). */
#ifndef PREFIXLB_KVINDEX_H
#define PREFIXLB_KVINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "kvevent.h"

struct kvindex_cfg {
	size_t block_tokens;        /* the policies' token block (16) */
	size_t max_per_backend;     /* engine blocks known per backend */
	uint64_t max_age_ns;        /* staleness */
	uint32_t stale_requests;    /* requests without an event before silence counts */
	uint64_t pending_ns;        /* routing-time records count this long (0: off) */
	uint64_t replay_timeout_ns; /* a replay not ended by then has failed */
};

void kvindex_cfg_default(struct kvindex_cfg *c);

struct kvindex;

struct kvindex *kvindex_new(const struct kvindex_cfg *c);
void kvindex_free(struct kvindex *kx);
const struct kvindex_cfg *kvindex_get_cfg(const struct kvindex *kx);

/* ep (an lb endpoint slot) has an event stream from now on; model seeds its
 * chain hashes (NULL: the router's default pool, seed 0). Attaching an
 * attached ep with another model drops what it knew. */
void kvindex_attach(struct kvindex *kx, int ep, const char *model, uint64_t now);
/* Forgets ep entirely (its slot left or was reused). */
void kvindex_detach(struct kvindex *kx, int ep);
int kvindex_attached(const struct kvindex *kx, int ep);

/* What to do with a message (the caller holds the payload on HOLD/REPLAY). */
enum kvseq {
	KVSEQ_APPLY,  /* apply it now (kvindex_apply) */
	KVSEQ_HOLD,   /* a replay is running: keep it, offer it again after the replay */
	KVSEQ_REPLAY, /* keep it and ask the replay socket for *from onwards */
	KVSEQ_SKIP,   /* drop it (already seen, or no replay running) */
};
/* A message from the PUB socket. */
enum kvseq kvindex_live(struct kvindex *kx, int ep, uint64_t seq, uint64_t now, uint64_t *from);
/* A held message offered again after the replay: as kvindex_live, except that
 * one the replay already brought is skipped (not taken for a restart). */
enum kvseq kvindex_held(struct kvindex *kx, int ep, uint64_t seq, uint64_t now, uint64_t *from);
/* A batch from the replay socket. */
enum kvseq kvindex_replayed(struct kvindex *kx, int ep, uint64_t seq, uint64_t now);
/* The replay's end marker, or its failure (the caller then offers the held
 * messages again through kvindex_held). Returns 1 with *from when another
 * replay must be asked first: a reconnection's replay found the publisher
 * restarted (its entries are dropped; its history is asked from 0). */
int kvindex_replay_end(struct kvindex *kx, int ep, uint64_t now, uint64_t *from);
/* 1 when ep's replay has run past replay_timeout (it is then over: reset the
 * replay socket, offer the held messages). */
int kvindex_replay_expired(struct kvindex *kx, int ep, uint64_t now);
/* The transport's state (ZMQ monitor: connected or not). Returns 1 with *from
 * when a replay should be asked now (first connection: what came before;
 * reconnection: what was missed). */
int kvindex_transport(struct kvindex *kx, int ep, int connected, uint64_t now, uint64_t *from);
/* A batch's events into the index (after APPLY). */
void kvindex_apply(struct kvindex *kx, int ep, const struct kv_batch *b, uint64_t now);
/* A message the caller could not decode (counted; the stream goes on). */
void kvindex_bad_message(struct kvindex *kx, int ep);

/* ---- the routing side ------------------------------------------------------ */

/* A request of prompt_tokens was placed on ep (staleness by silence). */
void kvindex_note_request(struct kvindex *kx, int ep, uint32_t prompt_tokens, uint64_t now);
/* Its blocks (our chain hashes): pending until the events confirm them. */
void kvindex_note_routed(struct kvindex *kx, int ep, const uint64_t *h, size_t n, uint64_t now);
int kvindex_fresh(const struct kvindex *kx, int ep, uint64_t now);
/* For every fresh backend: visit(ctx, ep, leading blocks of h it holds), 0
 * included. Stale and unattached backends are not visited (the caller uses
 * its own view for them). Returns the number visited. */
size_t kvindex_match(struct kvindex *kx, const uint64_t *h, size_t n, uint64_t now,
		     void (*visit)(void *ctx, int ep, size_t blocks), void *ctx);

struct kvindex_stats {
	int connected, fresh, replaying;
	size_t blocks;            /* engine blocks known */
	uint64_t batches, events; /* applied */
	uint64_t stored, removed, cleared;
	uint64_t gaps, replays, replayed, unrecovered, restarts, replay_timeouts;
	uint64_t orphans, incompatible, ignored, overflows, bad_messages;
	uint64_t lookups_precise, lookups_fallback;
	uint64_t last_message_at; /* 0: never */
};
/* ep's figures; -1 when it is not attached. */
int kvindex_stats(const struct kvindex *kx, int ep, uint64_t now, struct kvindex_stats *st);

#endif
