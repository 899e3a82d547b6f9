/* workload.h: conversations data sets (ShareGPT schema) and how the seed's
 * client turns them into requests. Pure: JSON text in, structs out.
 *
 * ShareGPT: [{"id": ..., "conversations": [{"from": "human"|"gpt", "value": ...}, ...]}, ...]
 * (the {"role", "content"} spelling is read too).
 *
 * Fork mode (KubeAI's fork of benchmark_serving.py, docs/seed.md section 2):
 * for each conversation, for i = 1, 3, 5, ...: prompt = the first i messages
 * rendered by POSITION as "User: <text>\n" / "Assistant: <text>\n", completion =
 * message i; the first max_pairs pairs in file order are kept. */
#ifndef PREFIXLB_WORKLOAD_H
#define PREFIXLB_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "rng.h"

struct tok;

struct wl_msg {
	char *text; /* owned, NUL-terminated */
	size_t len;
	int user; /* 1: human/user/system side, 0: gpt/assistant */
};

struct wl_conv {
	char *id;
	struct wl_msg *msgs;
	size_t n;
};

struct wl_dataset {
	struct wl_conv *convs;
	size_t n;
};

/* Parses a ShareGPT file. On error returns -1 with "line:col: what" (or the
 * entry index) in err. Entries without a message list are skipped. */
int wl_parse_sharegpt(const char *json, size_t len, struct wl_dataset *d, char *err, size_t errlen);
void wl_free(struct wl_dataset *d);
/* Writes d as ShareGPT JSON (from/value form). */
int wl_write_sharegpt(const struct wl_dataset *d, struct buf *out);

/* A distribution of whole numbers, for the generator's turn counts and
 * message lengths (vLLM's benchmarks/multi_turn offers the same kinds). Every
 * draw is an integer in [min, max]:
 *   uniform    each of min..max equally likely (p1, p2 unused)
 *   constant   always min (= max)
 *   lognormal  median p1, sigma p2, rounded, clamped to [min, max]
 *   poisson    mean p1, clamped
 *   zipf       P(k) ~ k^-p1 for k >= 1 (p1 > 1), clamped
 * Clamping puts the mass beyond a bound ON the bound (vLLM clips the same way). */
enum wl_dist_kind { WL_UNIFORM, WL_CONSTANT, WL_LOGNORMAL, WL_POISSON, WL_ZIPF };

struct wl_dist {
	enum wl_dist_kind kind;
	double p1, p2;
	long min, max;
};

#define WL_DIST_LIMIT 100000L /* no bound may exceed it (turns, tokens) */

/* Parses "uniform:MIN:MAX", "constant:N", "lognormal:MEDIAN:SIGMA[:MIN:MAX]",
 * "poisson:MEAN[:MIN:MAX]" or "zipf:S[:MIN:MAX]"; omitted bounds are
 * [1, def_max]. Bounds are whole numbers in [1, WL_DIST_LIMIT]. Returns 0, or
 * -1 with the problem in err. */
int wl_dist_parse(const char *spec, long def_max, struct wl_dist *d, char *err, size_t errlen);
/* Writes the spec back in the form wl_dist_parse reads (bounds always shown). */
void wl_dist_format(const struct wl_dist *d, char *out, size_t n);
/* One draw from d with the caller's generator. */
long wl_dist_draw(const struct wl_dist *d, struct rng *r);

/* A synthetic data set: conversations of `turns` user turns, each a user
 * message and its answer, of lengths in tokens (one word ~ one token). */
struct wl_gen {
	size_t conversations;
	struct wl_dist turns;          /* user turns per conversation */
	struct wl_dist user_tokens;    /* length of a user message */
	struct wl_dist assistant_tokens;
	size_t shared_prefix_tokens; /* preset shared-system: a preamble every conversation starts with */
	double hot_fraction;         /* preset hot: this share of conversations copies one of hot_count */
	size_t hot_count;
	size_t rag_doc_tokens;       /* preset rag: first message = one of rag_docs documents + question */
	size_t rag_docs;
	uint64_t seed;
};

/* The presets' names, for messages: "seed, shared-system, hot, rag, chat". */
extern const char wl_preset_names[];

/* Fills g with the preset's parameters: "seed" (default; 8-15 turns, the
 * seed's lengths), "shared-system", "hot", "rag", "chat" (closed-loop chat
 * sessions: 2-20 turns, median 5; user median 40, assistant median 200
 * tokens; 2,000 conversations). Returns -1 for an unknown name. */
int wl_preset(const char *name, struct wl_gen *g);
int wl_generate(const struct wl_gen *g, struct wl_dataset *d);

/* ---- filters and statistics (of generated or real files) ----------------- */

/* Unicode characters (code points, as Python's len) of UTF-8 text. */
size_t wl_chars(const char *text, size_t len);
/* User turns of a conversation: its messages from the user side (human, user,
 * system, ...; everything the parser does not read as the assistant). */
size_t wl_user_turns(const struct wl_conv *c);

/* A max of 0 is no bound. The tests judge each conversation as it was read;
 * then kept conversations longer than max_turns user turns are cut before
 * their (max_turns + 1)-th user message (they end with that turn's answer). */
struct wl_filter {
	size_t min_user_turns, max_user_turns;
	size_t min_user_chars, max_user_chars; /* total user characters of a conversation */
	size_t max_turns;                      /* 0: not cut */
};

/* What wl_filter did: each dropped conversation is counted under the first
 * test it failed, in the order of the fields. */
struct wl_filter_report {
	size_t in, kept;
	size_t few_turns, many_turns, few_chars, many_chars;
	size_t cut; /* kept, and cut to max_turns */
};

/* Keeps the conversations that pass f, in their order, freeing the others.
 * Returns 0. */
int wl_filter(struct wl_dataset *d, const struct wl_filter *f, struct wl_filter_report *r);

/* A sample summarised; percentiles by linear interpolation (numpy's default,
 * so they read like vLLM's and pandas' figures). All 0 when n is 0. */
struct wl_summary {
	size_t n;
	double mean, min, max, p10, p50, p90, p99;
};

#define WL_TURN_BINS 18
struct wl_turn_bin {
	size_t lo, hi; /* inclusive; hi SIZE_MAX: no upper bound */
	size_t count;
};

struct wl_stats {
	size_t conversations, messages;
	struct wl_summary turns; /* user turns per conversation */
	/* 0, 1, ..., 10, 11-12, 13-15, 16-20, 21-30, 31-50, 51-100, 101+ */
	struct wl_turn_bin hist[WL_TURN_BINS];
	struct wl_summary user_chars, assistant_chars;   /* per message, by role */
	struct wl_summary user_tokens, assistant_tokens; /* per message, no BOS; n = 0 without a tokenizer */
	struct wl_summary conv_user_chars;               /* total user characters per conversation */
	/* fork mode (with a tokenizer): the pairs of the first max_pairs that pass
	 * the fork's filters, how many conversations they come from, and their mean
	 * input and output tokens (BOS counted, as the seed's client counts) */
	size_t fork_max_pairs, fork_pairs, fork_convs;
	double fork_in, fork_out;
};

/* The statistics of d; t may be NULL (no token figures, no fork figures).
 * Returns 0. */
int wl_stats(const struct wl_dataset *d, const struct tok *t, size_t max_pairs, struct wl_stats *s);

struct wl_pair {
	char *prompt; /* owned */
	size_t prompt_len;
	const char *completion; /* borrowed from the data set */
	size_t completion_len;
	size_t conv; /* index of its conversation */
	size_t turn; /* i */
};

/* The fork's pairs: the first max_pairs in file order (0: all). */
int wl_fork_pairs(const struct wl_dataset *d, size_t max_pairs, struct wl_pair **out, size_t *n);
void wl_pairs_free(struct wl_pair *p, size_t n);

/* One distinct request of a benchmark run (the completions prompt). */
struct wl_request {
	char *prompt; /* owned */
	size_t prompt_len;
	long prompt_tokens; /* BOS counted, as the seed's client counts */
	long max_tokens;    /* the reference completion's token count (BOS counted) */
	size_t conv, turn;
};

/* A list workload as it is consumed: request k of the run is
 * items[order[k % n_order]], k < num. Memory is O(distinct prompts), not
 * O(requests): 1M requests over the seed's 800 prompts cost 800 prompts. */
struct wl_plan {
	struct wl_request *items;
	size_t n_items;
	size_t *order;
	size_t n_order;
	size_t num;
};

static inline const struct wl_request *wl_plan_at(const struct wl_plan *p, size_t k)
{
	return &p->items[p->order[k % p->n_order]];
}

/* Fork mode: the first max_pairs pairs, filtered (prompt < 4 or output < 4 or
 * prompt > 8192 tokens dropped), shuffled once with seed, cycled to num.
 * Returns 0 (num 0 when nothing survives the filters) or -1. */
int wl_fork_plan(const struct wl_dataset *d, const struct tok *t, size_t max_pairs, size_t num, uint64_t seed,
		 struct wl_plan *out);
/* Upstream vLLM's ShareGPT sampling: conversations with >= 2 messages in a
 * shuffled order, prompt = message 0, completion = message 1; dropped when
 * prompt or output < 4 tokens, prompt > 1024 or prompt + output > 2048. At
 * most num, no cycling. */
int wl_single_plan(const struct wl_dataset *d, const struct tok *t, size_t num, uint64_t seed, struct wl_plan *out);
void wl_plan_free(struct wl_plan *p);

#endif
