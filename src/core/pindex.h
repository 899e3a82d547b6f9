/* pindex.h: a prefix index of backends: which blocks of prompts each backend
 * (probably) holds in its KV cache, bounded in memory, matched over the whole
 * prompt. The routing policies that look at caches (policy_lowest_ttft.c and
 * the peers' policies) each keep one; the router and the lab fill them the
 * same way.
 *
 * A prompt is cut into blocks, each hashed as a chain: h[i] = hash(h[i-1],
 * block i), so a block's hash names the whole prefix up to it, as vLLM's
 * block hashes do. Blocks are either token blocks (block_size ids, cut by our
 * tokenizer after the chat template, so they line up with the engine's own KV
 * blocks) or character blocks (block_size bytes of the prompt text: no
 * tokenizer on the router's hot path). Only full blocks count.
 *
 * Entries are (block, backend) pairs, recorded when a request is routed there
 * (speculative: the engine will have computed them) or when the engine says
 * so (vLLM KV events). They age out: least recently used first, per backend
 * (max_per_backend) and over all (max_total), and after ttl_ns unused.
 * Within one insert the earlier blocks are the more recent, so a backend's
 * tail blocks go before its shared prefix, as in vLLM's free queue.
 *
 * Cost: insert O(blocks); match O(sum over the matched blocks of how many
 * backends hold each) with one hash lookup per block; memory ~56 bytes per
 * entry plus ~24 per distinct block. Pure (time is passed in). */
#ifndef PREFIXLB_PINDEX_H
#define PREFIXLB_PINDEX_H

#include <stddef.h>
#include <stdint.h>

struct pindex_cfg {
	size_t max_per_backend; /* entries a backend may have (0: no limit but max_total) */
	size_t max_total;       /* entries in all (0: no limit) */
	uint64_t ttl_ns;        /* an entry unused this long goes (0: never) */
};

struct pindex_stats {
	size_t entries, blocks; /* (block, backend) pairs; distinct blocks */
	size_t bytes;           /* memory held */
	uint64_t inserts, evictions, expirations, removals;
};

struct pindex;

struct pindex *pindex_new(const struct pindex_cfg *cfg);
void pindex_free(struct pindex *x);

/* Chained hashes of the full blocks of ids (block ids each) into out (at most
 * max); returns their number. seed separates index namespaces (e.g. models). */
size_t pindex_hash_tokens(const uint32_t *ids, size_t n, size_t block, uint64_t seed, uint64_t *out, size_t max);
/* The chain one block at a time, for who learns blocks one by one (the KV
 * event index): pindex_chain_root(seed) is the parent of a prompt's first
 * block, pindex_chain_next(parent, ids, block) a block's hash; so
 * pindex_hash_tokens(ids, ...)[i] == next(... next(root(seed), ids[0..block)) ...). */
uint64_t pindex_chain_root(uint64_t seed);
uint64_t pindex_chain_next(uint64_t parent, const uint32_t *ids, size_t block);
/* The same over bytes of text. */
size_t pindex_hash_chars(const char *s, size_t len, size_t block, uint64_t seed, uint64_t *out, size_t max);

/* ep holds the blocks h[0..n) (now); they become the most recent. */
void pindex_insert(struct pindex *x, int ep, const uint64_t *h, size_t n, uint64_t now);
/* ep no longer holds these blocks (vLLM's BlockRemoved). */
void pindex_remove(struct pindex *x, int ep, const uint64_t *h, size_t n);
/* ep holds nothing (it left, restarted, or sent AllBlocksCleared). */
void pindex_clear_backend(struct pindex *x, int ep);

/* For every backend that holds h[0], the number of leading blocks it holds
 * without a gap: visit(ctx, ep, blocks). Entries past their ttl are dropped
 * first. Returns the largest match. */
size_t pindex_match(struct pindex *x, const uint64_t *h, size_t n, uint64_t now,
		    void (*visit)(void *ctx, int ep, size_t blocks), void *ctx);
/* Entries ep has now. */
size_t pindex_backend_entries(const struct pindex *x, int ep);
void pindex_get_stats(const struct pindex *x, struct pindex_stats *st);

#endif
