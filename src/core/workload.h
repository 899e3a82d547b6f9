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

/* A synthetic data set: message lengths (in words ~ tokens) drawn lognormal. */
struct wl_gen {
	size_t conversations;
	size_t min_messages, max_messages; /* even counts, inclusive */
	double user_median, user_sigma;    /* tokens */
	double assistant_median, assistant_sigma;
	size_t shared_prefix_tokens; /* preset shared-system: a preamble every conversation starts with */
	double hot_fraction;         /* preset hot: this share of conversations copies one of hot_count */
	size_t hot_count;
	size_t rag_doc_tokens;       /* preset rag: first message = one of rag_docs documents + question */
	size_t rag_docs;
	uint64_t seed;
};

/* Fills g with the preset's parameters: "seed" (default), "shared-system",
 * "hot", "rag". Returns -1 for an unknown name. */
int wl_preset(const char *name, struct wl_gen *g);
int wl_generate(const struct wl_gen *g, struct wl_dataset *d);

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

struct tok;

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
