/* chat.c: Llama 3 chat template (tokenizer_config.json of Llama 3 / 3.1). */
#include "chat.h"

#include "utf8.h"

int chat_render(const struct chat_msg *msgs, size_t n, int add_generation_prompt, struct buf *out)
{
	int rc = buf_puts(out, "<|begin_of_text|>");
	for (size_t i = 0; i < n && !rc; i++) {
		size_t a, l;
		utf8_strip(msgs[i].content, msgs[i].content_len, &a, &l);
		rc = buf_puts(out, "<|start_header_id|>");
		if (!rc)
			rc = buf_append(out, msgs[i].role, msgs[i].role_len);
		if (!rc)
			rc = buf_puts(out, "<|end_header_id|>\n\n");
		if (!rc)
			rc = buf_append(out, msgs[i].content + a, l);
		if (!rc)
			rc = buf_puts(out, "<|eot_id|>");
	}
	if (!rc && add_generation_prompt)
		rc = buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return rc;
}
