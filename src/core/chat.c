/* chat.c: the Llama 3 and 3.1 chat templates as pieces; see chat.h. */
#include "chat.h"

#include <string.h>

#include "utf8.h"

static const char BOS[] = "<|begin_of_text|>", SH[] = "<|start_header_id|>", EH[] = "<|end_header_id|>",
		  EOT[] = "<|eot_id|>";
static const char SYS31[] = "\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";

int chat_template_find(const char *name, enum chat_template *t)
{
	if (!strcmp(name, "llama-3") || !strcmp(name, "llama3"))
		*t = CHAT_LLAMA3;
	else if (!strcmp(name, "llama-3.1") || !strcmp(name, "llama3.1"))
		*t = CHAT_LLAMA31;
	else
		return -1;
	return 0;
}

const char *chat_template_name(enum chat_template t)
{
	return t == CHAT_LLAMA31 ? "llama-3.1" : "llama-3";
}

#define SPECIAL(s)                                                  \
	do {                                                        \
		if ((rc = cb(ctx, 1, s, sizeof s - 1, NULL, 0)))    \
			return rc;                                  \
	} while (0)
#define TEXT(a, na, b, nb)                                          \
	do {                                                        \
		if ((rc = cb(ctx, 0, a, na, b, nb)))                \
			return rc;                                  \
	} while (0)

int chat_pieces(enum chat_template t, const struct chat_msg *msgs, size_t n, int add_generation_prompt,
		chat_piece_cb cb, void *ctx)
{
	int rc;
	size_t a, l;
	SPECIAL(BOS);
	if (t == CHAT_LLAMA31) {
		const char *sys = "";
		size_t sl = 0;
		if (n && msgs[0].role_len == 6 && !memcmp(msgs[0].role, "system", 6)) {
			utf8_strip(msgs[0].content, msgs[0].content_len, &a, &l);
			sys = msgs[0].content + a;
			sl = l;
			msgs++;
			n--;
		}
		SPECIAL(SH);
		TEXT("system", 6, NULL, 0);
		SPECIAL(EH);
		TEXT(SYS31, sizeof SYS31 - 1, sys, sl);
		SPECIAL(EOT);
	}
	for (size_t i = 0; i < n; i++) {
		utf8_strip(msgs[i].content, msgs[i].content_len, &a, &l);
		SPECIAL(SH);
		TEXT(msgs[i].role, msgs[i].role_len, NULL, 0);
		SPECIAL(EH);
		TEXT("\n\n", 2, msgs[i].content + a, l);
		SPECIAL(EOT);
	}
	if (add_generation_prompt) {
		SPECIAL(SH);
		TEXT("assistant", 9, NULL, 0);
		SPECIAL(EH);
		TEXT("\n\n", 2, NULL, 0);
	}
	return 0;
}

static int to_buf(void *ctx, int special, const char *a, size_t na, const char *b, size_t nb)
{
	(void)special;
	struct buf *out = ctx;
	int rc = buf_append(out, a, na);
	return rc ? rc : nb ? buf_append(out, b, nb) : 0;
}

int chat_render_t(enum chat_template t, const struct chat_msg *msgs, size_t n, int add_generation_prompt,
		  struct buf *out)
{
	return chat_pieces(t, msgs, n, add_generation_prompt, to_buf, out);
}

int chat_render(const struct chat_msg *msgs, size_t n, int add_generation_prompt, struct buf *out)
{
	return chat_render_t(CHAT_LLAMA3, msgs, n, add_generation_prompt, out);
}
