/* prompt.h: a request's prompt as the engine feeds it to the model: token
 * ids. Chat messages are rendered with the served model's template (chat.h)
 * and tokenized piece by piece through a cache of the pieces' ids; a
 * completions prompt is tokenized with BOS, as vLLM does.
 *
 * One implementation for three users, so they agree to the token: the engine
 * server (the ids it schedules), the lab's simulator (the same, in virtual
 * time) and the router's token-block prefix index (the blocks it predicts).
 *
 * The cache: in a chat, every turn repeats the whole history, and each
 * message is one text piece between special tokens, so after the first turn
 * only the new messages are tokenized. Entries are keyed by a 64-bit hash of
 * the piece and its length and evicted least recently used past max_tokens
 * ids in all. Cost: O(pieces) hash lookups per prompt plus the tokenizer on
 * the pieces not cached. Not thread-safe: one cache per thread. */
#ifndef PREFIXLB_PROMPT_H
#define PREFIXLB_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "tokenizer.h"

struct prompt_cache;

/* t is borrowed (must outlive the cache). max_tokens bounds the ids kept. */
struct prompt_cache *prompt_cache_new(const struct tok *t, size_t max_tokens);
void prompt_cache_free(struct prompt_cache *pc);

/* Appends the ids of the rendered conversation to out. Returns 0, or
 * PLB_EINVAL when the tokenizer lacks the template's special tokens. */
int prompt_chat(struct prompt_cache *pc, enum chat_template tpl, const struct chat_msg *msgs, size_t n,
		int add_generation_prompt, struct tok_ids *out);

struct prompt_cache_stats {
	uint64_t hits, misses, evictions;
	size_t entries, tokens;
};
void prompt_cache_stats(const struct prompt_cache *pc, struct prompt_cache_stats *st);

#endif
