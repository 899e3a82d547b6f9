/* chat.h: the Llama 3 chat template, rendered as vLLM renders it before
 * tokenizing a /v1/chat/completions request:
 *
 *   <|begin_of_text|>
 *   for each message: <|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>
 *   then (add_generation_prompt): <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 * `trim` is Jinja's filter, i.e. Python's str.strip() (Unicode white space). */
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

/* Appends the rendered conversation to out. Returns 0 or a BUF_* error. */
int chat_render(const struct chat_msg *msgs, size_t n, int add_generation_prompt, struct buf *out);

#endif
