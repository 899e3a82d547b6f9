/* openai.c: parsing of OpenAI-style request bodies; see openai.h. */
#include "openai.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(struct oai_req *r, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct oai_req *r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	oai_req_free(r);
	return -1;
}

void oai_req_free(struct oai_req *r)
{
	json_decref(r->root);
	free(r->prompt_ids);
	free(r->msgs);
	buf_free(&r->arena);
	memset(r, 0, sizeof *r);
}

/* Integer field: absent -> dflt; present must be an integer (or null). */
static int get_long(json_t *o, const char *k, long dflt, long *out)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v))
		return -1;
	*out = (long)json_integer_value(v);
	return 0;
}

static int get_bool(json_t *o, const char *k, int *out)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (!json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

/* Message content: a string, or an array of parts whose text parts are
 * joined with "\n" (what vLLM's chat utils do). Stored in the arena. */
static int content_text(json_t *c, struct buf *arena, size_t *off, size_t *len)
{
	*off = arena->len;
	if (!c || json_is_null(c)) {
		*len = 0;
		return 0;
	}
	if (json_is_string(c)) {
		if (buf_append(arena, json_string_value(c), json_string_length(c)))
			return -1;
	} else if (json_is_array(c)) {
		size_t i, n = 0;
		json_t *part;
		json_array_foreach(c, i, part) {
			const char *type = json_string_value(json_object_get(part, "type"));
			json_t *text = json_object_get(part, "text");
			if (!json_is_object(part) || !type)
				return -1;
			if (strcmp(type, "text") != 0)
				continue; /* images etc. carry no text to cache */
			if (!json_is_string(text))
				return -1;
			if ((n++ && buf_putc(arena, '\n')) || buf_append(arena, json_string_value(text), json_string_length(text)))
				return -1;
		}
	} else {
		return -1;
	}
	*len = arena->len - *off;
	return 0;
}

int oai_parse(const char *body, size_t len, int chat, size_t max_msgs, struct oai_req *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->arena, (size_t)1 << 30);
	r->chat = chat;
	json_error_t je;
	r->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!r->root)
		return bad(r, err, errlen, "invalid JSON in request body at line %d column %d: %s", je.line, je.column,
			   je.text);
	if (!json_is_object(r->root))
		return bad(r, err, errlen, "request body must be a JSON object");
	json_t *model = json_object_get(r->root, "model");
	if (model && !json_is_null(model)) {
		if (!json_is_string(model))
			return bad(r, err, errlen, "'model' must be a string");
		r->model = json_string_value(model);
	}
	if (get_bool(r->root, "stream", &r->stream))
		return bad(r, err, errlen, "'stream' must be a boolean");
	json_t *so = json_object_get(r->root, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so) || get_bool(so, "include_usage", &r->include_usage))
			return bad(r, err, errlen, "'stream_options' must be an object with a boolean include_usage");
	}
	long mt, mct;
	if (get_long(r->root, "max_tokens", -1, &mt))
		return bad(r, err, errlen, "'max_tokens' must be an integer");
	if (chat && get_long(r->root, "max_completion_tokens", -1, &mct))
		return bad(r, err, errlen, "'max_completion_tokens' must be an integer");
	r->max_tokens = chat && mct != -1 ? mct : mt;
	if (get_long(r->root, "n", 1, &r->n))
		return bad(r, err, errlen, "'n' must be an integer");

	if (!chat) {
		json_t *p = json_object_get(r->root, "prompt");
		if (!p)
			return bad(r, err, errlen, "'prompt' is required");
		if (json_is_string(p)) {
			r->prompt = json_string_value(p);
			r->prompt_len = json_string_length(p);
		} else if (json_is_array(p) && json_array_size(p) > 0) {
			json_t *first = json_array_get(p, 0);
			if (json_is_string(first)) {
				if (json_array_size(p) > 1)
					return bad(r, err, errlen, "batched prompts (a list of several strings) are not supported");
				r->prompt = json_string_value(first);
				r->prompt_len = json_string_length(first);
			} else {
				size_t n = json_array_size(p), i;
				json_t *v;
				r->prompt_ids = malloc(n * sizeof *r->prompt_ids);
				if (!r->prompt_ids)
					return bad(r, err, errlen, "out of memory");
				json_array_foreach(p, i, v) {
					if (!json_is_integer(v) || json_integer_value(v) < 0 ||
					    json_integer_value(v) > 0xFFFFFFF)
						return bad(r, err, errlen, "'prompt' must be a string, a list of strings or a list of token ids");
					r->prompt_ids[i] = (uint32_t)json_integer_value(v);
				}
				r->n_prompt_ids = n;
			}
		} else {
			return bad(r, err, errlen, "'prompt' must be a string, a list of strings or a list of token ids");
		}
		return 0;
	}

	json_t *msgs = json_object_get(r->root, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return bad(r, err, errlen, "'messages' must be a non-empty list");
	size_t n = json_array_size(msgs), i;
	if (n > max_msgs)
		return bad(r, err, errlen, "too many messages: %zu (at most %zu)", n, max_msgs);
	r->msgs = calloc(n, sizeof *r->msgs);
	size_t *offs = calloc(n, sizeof *offs);
	if (!r->msgs || !offs) {
		free(offs);
		return bad(r, err, errlen, "out of memory");
	}
	json_t *m;
	json_array_foreach(msgs, i, m) {
		json_t *role = json_object_get(m, "role");
		size_t off, l;
		if (!json_is_object(m) || !json_is_string(role) ||
		    content_text(json_object_get(m, "content"), &r->arena, &off, &l)) {
			free(offs);
			return bad(r, err, errlen, "messages[%zu] must have a string 'role' and text 'content'", i);
		}
		r->msgs[i].role = json_string_value(role);
		r->msgs[i].role_len = json_string_length(role);
		offs[i] = off;
		r->msgs[i].content_len = l;
	}
	/* the arena may have moved while growing: resolve offsets last */
	for (i = 0; i < n; i++)
		r->msgs[i].content = r->arena.data ? r->arena.data + offs[i] : "";
	free(offs);
	r->n_msgs = n;
	return 0;
}

const char *oai_prefix_text(const struct oai_req *r, size_t *len)
{
	*len = 0;
	if (!r->chat) {
		if (!r->prompt)
			return NULL;
		*len = r->prompt_len;
		return r->prompt;
	}
	for (size_t i = 0; i < r->n_msgs; i++) {
		if (r->msgs[i].role_len == 4 && memcmp(r->msgs[i].role, "user", 4) == 0) {
			*len = r->msgs[i].content_len;
			return r->msgs[i].content;
		}
	}
	return NULL;
}
