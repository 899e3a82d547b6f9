/* openai.c: parsing of OpenAI-style request bodies; see openai.h. */
#include "../core/mem.h"
#include "openai.h"

#include "../core/jscan.h"
#include "../core/utf8.h"

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

static const char *error_type(int status)
{
	if (status == 429)
		return "rate_limit_error";
	if (status == 504)
		return "timeout";
	return status >= 500 ? "server_error" : "invalid_request_error";
}

void oai_error_body(int status, const char *msg, struct buf *out, const char **ctype)
{
	buf_puts(out, "{\"error\":{\"message\":\"");
	buf_json_escape(out, msg, strlen(msg));
	buf_printf(out, "\",\"type\":\"%s\",\"param\":null,\"code\":%d}}", error_type(status), status);
	*ctype = "application/json";
}

void oai_req_free(struct oai_req *r)
{
	json_decref(r->root);
	free(r->prompts);
	free(r->id_store);
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
 * joined with sep: "\n" for the chat template (what vLLM's chat utils do), ""
 * for the routing key (KubeAI's rule, see route_message). Stored in the arena. */
static int content_text(json_t *c, struct buf *arena, const char *sep, size_t *off, size_t *len)
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
			if ((n++ && buf_puts(arena, sep)) || buf_append(arena, json_string_value(text), json_string_length(text)))
				return -1;
		}
	} else {
		return -1;
	}
	*len = arena->len - *off;
	return 0;
}

/* A token id list (json array of integers in range) into ids[0..n). */
static int get_ids(json_t *a, uint32_t *ids)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0xFFFFFFF)
			return -1;
		ids[i] = (uint32_t)json_integer_value(v);
	}
	return 0;
}

/* "prompt": a string, [token ids], [strings] or [[token ids]]. */
static int parse_prompts(struct oai_req *r, json_t *p, size_t max_items, char *err, size_t errlen)
{
	static const char what[] = "'prompt' must be a string, a list of strings, a list of token ids or a list of "
				   "lists of token ids";
	size_t n = 1, n_ids = 0, i;
	json_t *v, *first = json_is_array(p) ? json_array_get(p, 0) : NULL;
	int batch = first && (json_is_string(first) || json_is_array(first));
	if (json_is_string(p)) {
	} else if (!json_is_array(p) || !first) {
		return bad(r, err, errlen, "%s", what);
	} else if (batch) {
		n = json_array_size(p);
		if (n > max_items)
			return bad(r, err, errlen, "too many prompts in the batch: %zu (at most %zu)", n, max_items);
		json_array_foreach(p, i, v) {
			if (json_is_string(first) ? !json_is_string(v) : !json_is_array(v))
				return bad(r, err, errlen, "%s", what);
			if (json_is_array(v))
				n_ids += json_array_size(v);
		}
	} else {
		n_ids = json_array_size(p);
	}
	r->prompts = plb_calloc(n, sizeof *r->prompts);
	r->id_store = plb_malloc((n_ids ? n_ids : 1) * sizeof *r->id_store);
	if (!r->prompts || !r->id_store)
		return bad(r, err, errlen, "out of memory");
	r->n_prompts = n;
	size_t off = 0;
	for (i = 0; i < n; i++) {
		struct oai_prompt *q = &r->prompts[i];
		v = json_is_string(p) ? p : batch ? json_array_get(p, i) : p;
		if (json_is_string(v)) {
			q->text = json_string_value(v);
			q->len = json_string_length(v);
		} else {
			if (get_ids(v, r->id_store + off))
				return bad(r, err, errlen, "%s", what);
			q->ids = r->id_store + off;
			q->n_ids = json_array_size(v);
			off += q->n_ids;
		}
	}
	r->prompt = r->prompts[0].text;
	r->prompt_len = r->prompts[0].len;
	r->prompt_ids = r->prompts[0].ids ? r->id_store : NULL;
	r->n_prompt_ids = r->prompts[0].n_ids;
	return 0;
}

int oai_parse(const char *body, size_t len, int chat, size_t max_items, struct oai_req *r, char *err,
	      size_t errlen)
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
		return parse_prompts(r, p, max_items, err, errlen);
	}

	json_t *msgs = json_object_get(r->root, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return bad(r, err, errlen, "'messages' must be a non-empty list");
	size_t n = json_array_size(msgs), i;
	if (n > max_items)
		return bad(r, err, errlen, "too many messages: %zu (at most %zu)", n, max_items);
	r->msgs = plb_calloc(n, sizeof *r->msgs);
	size_t *offs = plb_calloc(n, sizeof *offs);
	if (!r->msgs || !offs) {
		free(offs);
		return bad(r, err, errlen, "out of memory");
	}
	json_t *m;
	size_t key_off = 0;
	int has_key = 0;
	json_array_foreach(msgs, i, m) {
		json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
		size_t off, l;
		if (!json_is_object(m) || !json_is_string(role) || content_text(content, &r->arena, "\n", &off, &l)) {
			free(offs);
			return bad(r, err, errlen, "messages[%zu] must have a string 'role' and text 'content'", i);
		}
		r->msgs[i].role = json_string_value(role);
		r->msgs[i].role_len = json_string_length(role);
		offs[i] = off;
		r->msgs[i].content_len = l;
		if (!has_key && r->msgs[i].role_len == 4 && memcmp(r->msgs[i].role, "user", 4) == 0) {
			has_key = 1; /* the routing key: parts joined with "" (oai_prefix_text) */
			key_off = off;
			r->key_len = l;
			if (json_is_array(content) && content_text(content, &r->arena, "", &key_off, &r->key_len)) {
				free(offs);
				return bad(r, err, errlen, "out of memory");
			}
		}
	}
	/* the arena may have moved while growing: resolve offsets last */
	for (i = 0; i < n; i++)
		r->msgs[i].content = r->arena.data ? r->arena.data + offs[i] : "";
	if (has_key)
		r->key = r->arena.data ? r->arena.data + key_off : "";
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
	*len = r->key_len;
	return r->key;
}

void oai_route_free(struct oai_route *r)
{
	free(r->model);
	buf_free(&r->key);
	r->model = NULL;
}

static int key_is(const struct buf *k, const char *lit)
{
	size_t n = strlen(lit);
	return k->len == n && memcmp(k->data, lit, n) == 0;
}

/* One chat message object at p: if it is the first "user" message, its text
 * goes to out->key. Returns the end of the object or NULL. */
static const char *route_message(const char *p, const char *end, struct oai_route *out, size_t key_bytes)
{
	struct buf k, role;
	buf_init(&k, 256);
	buf_init(&role, 64);
	const char *content = NULL, *q = jscan_ws(p, end);
	if (q >= end || *q != '{')
		goto bad;
	q = jscan_ws(q + 1, end);
	if (q < end && *q == '}') {
		q++;
		goto done;
	}
	for (;;) {
		buf_reset(&k);
		q = jscan_string_lim(jscan_ws(q, end), end, &k, 255);
		if (!q || (q = jscan_ws(q, end)) >= end || *q != ':')
			goto bad;
		const char *v = jscan_ws(q + 1, end);
		if (key_is(&k, "role") && v < end && *v == '"') {
			buf_reset(&role);
			q = jscan_string_lim(v, end, &role, 63);
		} else {
			if (key_is(&k, "content"))
				content = v;
			q = jscan_skip(v, end);
		}
		if (!q || (q = jscan_ws(q, end)) >= end)
			goto bad;
		if (*q == '}') {
			q++;
			break;
		}
		if (*q++ != ',')
			goto bad;
	}
done:
	/* the FIRST user message is the key, even without content (key "") */
	if (!out->has_key && key_is(&role, "user")) {
		out->has_key = 1;
		if (content && *content == '"') {
			jscan_string_lim(content, end, &out->key, key_bytes);
		} else if (content && *content == '[') {
			/* text parts joined with nothing between them, as KubeAI's
			 * ChatCompletionRequest.Prefix (substratusai/kubeai,
			 * api/openai/v1/chat_completion.go: s += m.Content.Array[i].Text)
			 * does; the engine renders the same parts joined with "\n". */
			const char *c = jscan_ws(content + 1, end);
			while (c < end && *c != ']') {
				const char *ts = NULL, *ps = c;
				int is_text = 0;
				const char *pe = jscan_skip(ps, end);
				if (!pe)
					break;
				const char *vs;
				struct buf t;
				buf_init(&t, 64);
				if (*ps == '{' && jscan_member(ps, pe, "type", &vs, NULL) == 0 && jscan_string_lim(vs, pe, &t, 63))
					is_text = key_is(&t, "text");
				buf_free(&t);
				if (is_text && jscan_member(ps, pe, "text", &ts, NULL) == 0 && *ts == '"')
					jscan_string_lim(ts, pe, &out->key, key_bytes);
				c = jscan_ws(pe, end);
				if (c < end && *c == ',')
					c = jscan_ws(c + 1, end);
			}
		}
	}
	buf_free(&k);
	buf_free(&role);
	return q;
bad:
	buf_free(&k);
	buf_free(&role);
	return NULL;
}

int oai_route_info(const char *body, size_t len, int kind, size_t key_bytes, struct oai_route *out, char *err,
		   size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->max_tokens = -1;
	buf_init(&out->key, key_bytes + 8);
	const char *end = body + len, *p = jscan_ws(body, end);
	int seen_mct = 0; /* max_completion_tokens wins over max_tokens */
	struct buf k, model;
	buf_init(&k, 256);
	buf_init(&model, 1024);
	int seen_model = 0, seen_main = 0;
	const char *why = "invalid JSON in request body";
	if (utf8_valid_prefix(body, len) != len) {
		why = "request body is not valid UTF-8";
		goto bad;
	}
	if (p >= end || *p != '{') {
		why = "request body must be a JSON object";
		goto bad;
	}
	p = jscan_ws(p + 1, end);
	if (p < end && *p == '}') {
		p++;
		goto tail;
	}
	for (;;) {
		buf_reset(&k);
		p = jscan_string_lim(jscan_ws(p, end), end, &k, 255);
		if (!p || (p = jscan_ws(p, end)) >= end || *p != ':')
			goto bad;
		const char *v = jscan_ws(p + 1, end);
		if (key_is(&k, "model")) {
			if (seen_model++) {
				why = "duplicate key 'model'";
				goto bad;
			}
			if (v < end && *v == '"') {
				p = jscan_string_lim(v, end, &model, 1023);
			} else if (v < end && *v == 'n') {
				p = jscan_skip(v, end);
			} else {
				if (v < end && jscan_skip(v, end))
					why = "'model' must be a string";
				goto bad;
			}
		} else if (kind == OAI_COMPLETIONS && key_is(&k, "prompt")) {
			if (seen_main++) {
				why = "duplicate key 'prompt'";
				goto bad;
			}
			p = jscan_skip(v, end);
			out->main_v = v;
			out->main_e = p;
			const char *s = v;
			if (p && *s == '[')
				s = jscan_ws(s + 1, end);
			if (p && s < end && *s == '"') {
				out->has_key = 1;
				jscan_string_lim(s, end, &out->key, key_bytes);
			}
		} else if (kind == OAI_CHAT && key_is(&k, "messages")) {
			if (seen_main++) {
				why = "duplicate key 'messages'";
				goto bad;
			}
			p = jscan_skip(v, end); /* validates the whole list */
			out->main_v = v;
			out->main_e = p;
			if (p && *v == '[') {
				const char *m = jscan_ws(v + 1, end);
				while (m && m < p - 1 && *m != ']') {
					out->n_messages++;
					m = route_message(m, p, out, key_bytes);
					m = m ? jscan_ws(m, end) : NULL;
					if (m && *m == ',')
						m = jscan_ws(m + 1, end);
				}
			}
		} else {
			int mct = key_is(&k, "max_completion_tokens");
			p = jscan_skip(v, end);
			long long mt;
			if (p && (mct || (!seen_mct && key_is(&k, "max_tokens"))) && jscan_int(v, p, &mt) && mt >= 0) {
				out->max_tokens = (long)mt;
				seen_mct |= mct;
			}
		}
		if (!p || (p = jscan_ws(p, end)) >= end)
			goto bad;
		if (*p == '}') {
			p++;
			break;
		}
		if (*p++ != ',')
			goto bad;
	}
tail:
	if (jscan_ws(p, end) != end)
		goto bad;
	if (seen_model && model.data)
		out->model = plb_strdup(model.data);
	buf_free(&k);
	buf_free(&model);
	return 0;
bad:
	buf_free(&k);
	buf_free(&model);
	if (kind == OAI_OTHER) { /* not ours to judge: forward as it is */
		buf_reset(&out->key);
		out->has_key = 0;
		return 0;
	}
	snprintf(err, errlen, "%s%s", why, p ? "" : "");
	oai_route_free(out);
	return -1;
}

int oai_stream_event(const char *p, size_t n, struct buf *text, struct oai_event *ev)
{
	const char *end = p + n, *vs, *ve;
	ev->has_choices = 0;
	ev->completion_tokens = ev->cached_tokens = -1;
	const char *q = jscan_ws(p, end);
	if (q >= end || *q != '{')
		return -1;
	if (jscan_member(p, end, "choices", &vs, &ve) == 0 && *vs == '[' && *jscan_ws(vs + 1, ve) != ']') {
		ev->has_choices = 1;
		const char *c0 = jscan_ws(vs + 1, ve), *tx;
		const char *ce = jscan_skip(c0, ve);
		if (ce && text) {
			const char *ds, *de;
			if (jscan_member(c0, ce, "text", &tx, NULL) == 0 && *tx == '"')
				jscan_string(tx, ce, text);
			else if (jscan_member(c0, ce, "delta", &ds, &de) == 0 &&
				 jscan_member(ds, de, "content", &tx, NULL) == 0 && *tx == '"')
				jscan_string(tx, de, text);
		}
	}
	if (jscan_member(p, end, "usage", &vs, &ve) == 0 && *vs == '{') {
		const char *v, *d, *de;
		long long x;
		if (jscan_member(vs, ve, "completion_tokens", &v, NULL) == 0 && jscan_int(v, ve, &x))
			ev->completion_tokens = (long)x;
		if (jscan_member(vs, ve, "prompt_tokens_details", &d, &de) == 0 && *d == '{' &&
		    jscan_member(d, de, "cached_tokens", &v, NULL) == 0 && jscan_int(v, de, &x))
			ev->cached_tokens = (long)x;
	}
	return 0;
}

int oai_error_message(const char *body, size_t len, char *out, size_t cap)
{
	const char *end = body + len, *vs, *ve, *m = NULL;
	if (!cap)
		return 0;
	if (jscan_member(body, end, "error", &vs, &ve) == 0 && *vs == '{' &&
	    jscan_member(vs, ve, "message", &m, NULL) == 0 && *m == '"')
		;
	else if (jscan_member(body, end, "message", &m, NULL) == 0 && *m == '"')
		;
	else if (jscan_member(body, end, "detail", &m, NULL) == 0 && *m == '"')
		;
	else
		return 0;
	struct buf b;
	buf_init(&b, cap - 1);
	jscan_string_lim(m, end, &b, cap - 1);
	snprintf(out, cap, "%s", b.data ? b.data : "");
	buf_free(&b);
	return 1;
}

void oai_fullprompt_free(struct oai_fullprompt *p)
{
	buf_free(&p->arena);
	free(p->msgs);
	memset(p, 0, sizeof *p);
}

/* Content at c (a string, a list of parts, or anything else: "") appended to arena. */
static void content_into(const char *c, const char *end, struct buf *arena)
{
	if (*c == '"') {
		jscan_string(c, end, arena);
		return;
	}
	if (*c != '[')
		return;
	const char *q = jscan_ws(c + 1, end);
	int parts = 0;
	while (q < end && *q != ']') {
		const char *pe = jscan_skip(q, end), *vs, *ts;
		if (!pe)
			return;
		struct buf t;
		buf_init(&t, 64);
		int is_text = *q == '{' && jscan_member(q, pe, "type", &vs, NULL) == 0 && jscan_string_lim(vs, pe, &t, 63) &&
			      t.len == 4 && !memcmp(t.data, "text", 4);
		buf_free(&t);
		if (is_text && jscan_member(q, pe, "text", &ts, NULL) == 0 && *ts == '"') {
			if (parts++)
				buf_putc(arena, '\n');
			jscan_string(ts, pe, arena);
		}
		q = jscan_ws(pe, end);
		if (q < end && *q == ',')
			q = jscan_ws(q + 1, end);
	}
}

int oai_route_prompt(const struct oai_route *ri, int kind, size_t max_msgs, struct oai_fullprompt *out)
{
	memset(out, 0, sizeof *out);
	const char *vs = ri->main_v, *ve = ri->main_e;
	buf_init(&out->arena, vs ? (size_t)(ve - vs) + 64 : 64);
	out->max_tokens = ri->max_tokens;
	if (!vs)
		return -1;
	if (kind == OAI_COMPLETIONS) {
		if (*vs == '[')
			vs = jscan_ws(vs + 1, ve);
		if (*vs != '"')
			return -1;
		jscan_string(vs, ve, &out->arena);
		out->text = out->arena.data ? out->arena.data : "";
		out->text_len = out->arena.len;
		return 0;
	}
	if (kind != OAI_CHAT || *vs != '[')
		return -1;
	size_t cap = 16, *offs = plb_malloc(cap * 4 * sizeof *offs); /* role off, role len, content off, len */
	size_t n = 0;
	const char *m = jscan_ws(vs + 1, ve);
	while (m < ve && *m != ']' && n < max_msgs) {
		const char *me = jscan_skip(m, ve), *r, *c;
		if (!me || *m != '{')
			break;
		if (n == cap) {
			cap *= 2;
			offs = plb_realloc(offs, cap * 4 * sizeof *offs);
		}
		size_t ro = out->arena.len;
		if (jscan_member(m, me, "role", &r, NULL) == 0 && *r == '"')
			jscan_string_lim(r, me, &out->arena, ro + 64);
		size_t co = out->arena.len;
		if (jscan_member(m, me, "content", &c, NULL) == 0)
			content_into(c, me, &out->arena);
		offs[4 * n] = ro;
		offs[4 * n + 1] = co - ro;
		offs[4 * n + 2] = co;
		offs[4 * n + 3] = out->arena.len - co;
		n++;
		m = jscan_ws(me, ve);
		if (m < ve && *m == ',')
			m = jscan_ws(m + 1, ve);
	}
	out->msgs = plb_calloc(n + 1, sizeof *out->msgs);
	const char *a = out->arena.data ? out->arena.data : "";
	for (size_t i = 0; i < n; i++)
		out->msgs[i] = (struct chat_msg){a + offs[4 * i], offs[4 * i + 1], a + offs[4 * i + 2], offs[4 * i + 3]};
	out->n_msgs = n;
	free(offs);
	return 0;
}
