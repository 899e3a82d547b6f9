/* tokenizer.h: an exact byte-level BPE tokenizer for Hugging Face tokenizer.json
 * files (Llama 3 and other GPT-2-style vocabularies).
 *
 * Load once with tok_load(); after that a struct tok is read-only and every
 * function below may be called from any number of threads at once.
 *
 * Encoding follows Hugging Face `tokenizers` step by step:
 *   1. added tokens (<|eot_id|> ...) are matched as whole tokens first,
 *      leftmost-longest, and never pass through the regex;
 *   2. the rest is split with the pre-tokenizer regex (PCRE2, UTF + UCP, JIT);
 *   3. each piece is looked up whole when the model sets `ignore_merges`,
 *      otherwise (or when absent) merged by BPE rank, lowest rank first and
 *      leftmost first on equal rank (a heap: O(k log k) for a k-byte piece).
 * Invalid UTF-8 input never fails: each maximal invalid subpart is replaced by
 * U+FFFD first, as a Python server decoding the request with errors="replace"
 * would (HF's Rust API cannot take invalid UTF-8 at all). */
#ifndef PREFIXLB_TOKENIZER_H
#define PREFIXLB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tok;

/* A growable array of token ids; zero-initialise, free with tok_ids_free. */
struct tok_ids {
	uint32_t *v;
	size_t n, cap;
};

enum {
	TOK_BOS = 1 << 0,        /* prepend the BOS token (<|begin_of_text|>) */
	TOK_NO_SPECIAL = 1 << 1, /* treat added-token text as plain text */
};

#define TOK_EINVAL (-22)
#define TOK_ENOMEM (-12)

/* Builds a tokenizer from the bytes of a tokenizer.json. On error returns
 * TOK_EINVAL or TOK_ENOMEM and writes a message naming the problem to err. */
int tok_load(struct tok **out, const char *json, size_t len, char *err, size_t errlen);
void tok_free(struct tok *t);

/* Appends the ids of text s[0..n) to out. Returns 0 or TOK_ENOMEM. */
int tok_encode(const struct tok *t, const char *s, size_t n, unsigned flags, struct tok_ids *out);
/* Number of tokens tok_encode would produce, or a negative error. */
long tok_count(const struct tok *t, const char *s, size_t n, unsigned flags);
/* Appends the bytes of ids to out (added tokens as their text). Unknown ids
 * are skipped. The result may end in a partial UTF-8 sequence. */
int tok_decode(const struct tok *t, const uint32_t *ids, size_t n, struct buf *out);
/* The bytes of one token (borrowed; not NUL-terminated), or NULL if unknown. */
const char *tok_piece(const struct tok *t, uint32_t id, size_t *len);
/* Id of a token given by its exact text (raw bytes or added token), or -1. */
long tok_id(const struct tok *t, const char *s, size_t n);
uint32_t tok_vocab_size(const struct tok *t); /* highest id + 1 */
long tok_bos_id(const struct tok *t);         /* -1 if none */

void tok_ids_free(struct tok_ids *ids);
int tok_ids_push(struct tok_ids *ids, uint32_t id);

#endif
