/* chat.h: chat templates, rendered as vLLM renders a /v1/chat/completions
 * request (the model's tokenizer_config.json chat_template through Jinja)
 * before tokenizing it.
 *
 * llama-3 (Meta-Llama-3-*-Instruct):
 *   <|begin_of_text|>
 *   for each message: <|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>
 *   then (add_generation_prompt): <|start_header_id|>assistant<|end_header_id|>\n\n
 * llama-3.1 (Llama-3.1-*-Instruct, the seed's model; without tools):
 *   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n
 *   Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{system message|trim}<|eot_id|>
 *   (a first "system" message supplies the system message and leaves the list;
 *   without one the block is still there, with an empty message), then the
 *   messages and the generation prompt as llama-3. "26 Jul 2024" is the
 *   template's default date_string, which vLLM does not override.
 * `trim` is Jinja's filter, i.e. Python's str.strip() (Unicode white space).
 *
 * A rendering is a sequence of pieces: special tokens (given by their text)
 * and text runs. Text runs never contain a template's special token, so
 * tokenizing the pieces one by one gives the ids of tokenizing the whole
 * text (added tokens are split out before the pre-tokenizer): prompt.c
 * caches the ids of each text run, which makes a long chat history cheap. */
#ifndef PREFIXLB_CHAT_H
#define PREFIXLB_CHAT_H

#include <stddef.h>

#include "buf.h"

struct chat_msg {
	const char *role;
	size_t role_len;
	const char *content;
	size_t content_len;
};

enum chat_template { CHAT_LLAMA3, CHAT_LLAMA31 };

/* "llama-3" or "llama-3.1"; -1 if unknown. */
int chat_template_find(const char *name, enum chat_template *t);
const char *chat_template_name(enum chat_template t);

/* One piece: a special token (its text in a) or a text run a + b (two parts:
 * the template's own prefix and the message's content). Return 0 to go on. */
typedef int (*chat_piece_cb)(void *ctx, int special, const char *a, size_t na, const char *b, size_t nb);

/* Walks the rendering of msgs[0..n) piece by piece. Returns 0 or the first
 * non-zero value of cb. */
int chat_pieces(enum chat_template t, const struct chat_msg *msgs, size_t n, int add_generation_prompt,
		chat_piece_cb cb, void *ctx);
/* Appends the rendered conversation (the template's text) to out. Returns 0
 * or a BUF_* error. */
int chat_render_t(enum chat_template t, const struct chat_msg *msgs, size_t n, int add_generation_prompt,
		  struct buf *out);
/* chat_render_t with llama-3. */
int chat_render(const struct chat_msg *msgs, size_t n, int add_generation_prompt, struct buf *out);

#endif
