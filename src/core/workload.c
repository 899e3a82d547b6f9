/* workload.c: ShareGPT data sets, the synthetic generator and fork pairs. */
#include "workload.h"

#include "mem.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wl_free(struct wl_dataset *d)
{
	for (size_t i = 0; i < d->n; i++) {
		for (size_t k = 0; k < d->convs[i].n; k++)
			free(d->convs[i].msgs[k].text);
		free(d->convs[i].msgs);
		free(d->convs[i].id);
	}
	free(d->convs);
	d->convs = NULL;
	d->n = 0;
}

int wl_parse_sharegpt(const char *json, size_t len, struct wl_dataset *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	if (!root) {
		snprintf(err, errlen, "%d:%d: %s", je.line, je.column, je.text);
		return -1;
	}
	if (!json_is_array(root)) {
		snprintf(err, errlen, "1:1: expected a list of conversations");
		json_decref(root);
		return -1;
	}
	size_t n = json_array_size(root), i;
	d->convs = plb_calloc(n ? n : 1, sizeof *d->convs);
	if (!d->convs) {
		json_decref(root);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_t *e;
	json_array_foreach(root, i, e) {
		json_t *msgs = json_object_get(e, "conversations");
		if (!msgs)
			msgs = json_object_get(e, "messages");
		if (!json_is_array(msgs))
			continue;
		struct wl_conv *c = &d->convs[d->n];
		size_t m = json_array_size(msgs), k;
		c->msgs = plb_calloc(m ? m : 1, sizeof *c->msgs);
		json_t *id = json_object_get(e, "id");
		char idbuf[32];
		snprintf(idbuf, sizeof idbuf, "%zu", i);
		c->id = plb_strdup(json_is_string(id) ? json_string_value(id) : idbuf);
		json_t *msg;
		json_array_foreach(msgs, k, msg) {
			json_t *from = json_object_get(msg, "from"), *val = json_object_get(msg, "value");
			if (!from)
				from = json_object_get(msg, "role");
			if (!val)
				val = json_object_get(msg, "content");
			if (!json_is_string(val)) {
				snprintf(err, errlen, "entry %zu, message %zu: no text value", i, k);
				d->n++;
				wl_free(d);
				json_decref(root);
				return -1;
			}
			const char *f = json_string_value(from);
			c->msgs[c->n].text = plb_strndup(json_string_value(val), json_string_length(val));
			c->msgs[c->n].len = json_string_length(val);
			c->msgs[c->n].user = !f || (strcmp(f, "gpt") != 0 && strcmp(f, "assistant") != 0 &&
						    strcmp(f, "chatgpt") != 0 && strcmp(f, "bard") != 0);
			c->n++;
		}
		d->n++;
	}
	json_decref(root);
	return 0;
}

int wl_write_sharegpt(const struct wl_dataset *d, struct buf *out)
{
	int rc = buf_putc(out, '[');
	for (size_t i = 0; i < d->n && !rc; i++) {
		const struct wl_conv *c = &d->convs[i];
		rc = buf_printf(out, "%s\n{\"id\": \"", i ? "," : "");
		if (!rc)
			rc = buf_json_escape(out, c->id, strlen(c->id));
		if (!rc)
			rc = buf_puts(out, "\", \"conversations\": [");
		for (size_t k = 0; k < c->n && !rc; k++) {
			rc = buf_printf(out, "%s{\"from\": \"%s\", \"value\": \"", k ? ", " : "", c->msgs[k].user ? "human" : "gpt");
			if (!rc)
				rc = buf_json_escape(out, c->msgs[k].text, c->msgs[k].len);
			if (!rc)
				rc = buf_puts(out, "\"}");
		}
		if (!rc)
			rc = buf_puts(out, "]}");
	}
	if (!rc)
		rc = buf_puts(out, "\n]\n");
	return rc;
}

/* ---- generator ----------------------------------------------------------- */

/* Common English words, each one Llama 3 token with its leading space. */
static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
	"he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
	"their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
	"who", "so", "no", "she", "other", "its", "may", "these", "about", "than", "then", "them", "two", "time",
	"some", "could", "into", "first", "only", "new", "also", "what", "any", "out", "like", "over", "such",
	"our", "many", "most", "made", "after", "should", "used", "where", "people", "because", "through", "work",
	"well", "each", "very", "how", "make", "way", "even", "between", "system", "number", "part", "water",
	"world", "year", "state", "long", "small", "large", "great", "good", "high", "old", "little", "own",
	"right", "same", "different", "important", "public", "best", "city", "house", "place", "point", "home",
	"line", "school", "name", "book", "group", "problem", "question", "answer", "model", "data", "result",
	"light", "power", "road", "river", "music", "money", "market", "company", "family", "report", "story",
	"change", "level", "value", "plan", "idea", "system", "program", "service", "process", "example",
	"reason", "table", "field", "form", "game", "team", "side", "price", "paper", "energy", "food", "health",
	"code", "function", "server", "request", "memory", "cache", "network", "client", "file", "list", "test",
	"think", "know", "take", "see", "come", "give", "find", "tell", "ask", "seem", "feel", "try", "leave",
	"call", "keep", "begin", "help", "show", "hear", "play", "run", "move", "live", "hold", "bring", "write",
	"read", "learn", "grow", "open", "walk", "build", "send", "pay", "meet", "include", "continue", "set",
	"quickly", "really", "always", "often", "never", "still", "already", "perhaps", "together", "usually",
};

/* Appends about `tokens` tokens of sentences (one word or mark = one token). */
static int prose(struct rng *r, size_t tokens, struct buf *out)
{
	size_t n = sizeof words / sizeof *words, t = 0;
	int rc = 0;
	while (t < tokens && !rc) {
		size_t len = 4 + (size_t)rng_below(r, 14);
		for (size_t w = 0; w < len && t < tokens && !rc; w++, t++) {
			const char *word = words[rng_below(r, n)];
			if (out->len)
				rc = buf_putc(out, ' ');
			if (!rc && w == 0) {
				char up = (char)(word[0] - 32);
				rc = buf_append(out, &up, 1);
				if (!rc)
					rc = buf_puts(out, word + 1);
			} else if (!rc) {
				rc = buf_puts(out, word);
			}
			if (!rc && w + 1 < len && rng_below(r, 9) == 0 && t + 1 < tokens) {
				rc = buf_putc(out, ',');
				t++;
			}
		}
		if (!rc) {
			rc = buf_putc(out, rng_below(r, 6) ? '.' : '?');
			t++;
		}
	}
	return rc;
}

int wl_preset(const char *name, struct wl_gen *g)
{
	memset(g, 0, sizeof *g);
	g->conversations = 1000;
	g->min_messages = 16;
	g->max_messages = 30;
	g->user_median = 33;
	g->user_sigma = 1.2;
	g->assistant_median = 57;
	g->assistant_sigma = 0.7;
	g->hot_count = 4;
	g->rag_docs = 20;
	g->seed = 12345;
	if (!strcmp(name, "seed"))
		return 0;
	if (!strcmp(name, "shared-system")) {
		g->shared_prefix_tokens = 1000;
		return 0;
	}
	if (!strcmp(name, "hot")) {
		g->hot_fraction = 0.8;
		return 0;
	}
	if (!strcmp(name, "rag")) {
		g->rag_doc_tokens = 3000;
		g->min_messages = 4;
		g->max_messages = 10;
		return 0;
	}
	return -1;
}

static size_t draw_len(struct rng *r, double median, double sigma)
{
	double v = rng_lognormal(r, median, sigma);
	if (v < 1)
		v = 1;
	if (v > 8000)
		v = 8000;
	return (size_t)lround(v);
}

int wl_generate(const struct wl_gen *g, struct wl_dataset *d)
{
	memset(d, 0, sizeof *d);
	struct rng r;
	rng_seed(&r, g->seed);
	d->convs = plb_calloc(g->conversations ? g->conversations : 1, sizeof *d->convs);
	if (!d->convs)
		return -1;
	struct buf b, shared;
	buf_init(&b, (size_t)1 << 28);
	buf_init(&shared, (size_t)1 << 28);
	if (g->shared_prefix_tokens) {
		struct rng rs;
		rng_seed(&rs, g->seed ^ 0xabcdef);
		prose(&rs, g->shared_prefix_tokens, &shared);
	}
	size_t lo = g->min_messages / 2, hi = g->max_messages / 2;
	if (lo < 1)
		lo = 1;
	if (hi < lo)
		hi = lo;
	for (size_t i = 0; i < g->conversations; i++) {
		struct wl_conv *c = &d->convs[i];
		char id[48];
		snprintf(id, sizeof id, "synthetic-%zu", i);
		c->id = plb_strdup(id);
		/* hot: copy an earlier hot conversation verbatim */
		if (g->hot_fraction > 0 && i >= g->hot_count && rng_uniform(&r) < g->hot_fraction) {
			const struct wl_conv *src = &d->convs[rng_below(&r, g->hot_count)];
			c->msgs = plb_calloc(src->n, sizeof *c->msgs);
			for (size_t k = 0; k < src->n; k++) {
				c->msgs[k] = src->msgs[k];
				c->msgs[k].text = plb_strdup(src->msgs[k].text);
			}
			c->n = src->n;
			continue;
		}
		size_t pairs = lo + (size_t)rng_below(&r, hi - lo + 1);
		c->msgs = plb_calloc(pairs * 2, sizeof *c->msgs);
		for (size_t k = 0; k < pairs * 2; k++) {
			int user = k % 2 == 0;
			buf_reset(&b);
			if (k == 0 && shared.len) {
				buf_append(&b, shared.data, shared.len);
				buf_puts(&b, "\n\n");
			}
			if (k == 0 && g->rag_doc_tokens) {
				/* one of rag_docs documents, drawn like a retriever's top hit */
				struct rng rd;
				rng_seed(&rd, g->seed * 31 + rng_below(&r, g->rag_docs ? g->rag_docs : 1));
				buf_puts(&b, "Context document:\n");
				prose(&rd, draw_len(&rd, (double)g->rag_doc_tokens, 0.3), &b);
				buf_puts(&b, "\n\nQuestion: ");
			}
			size_t t = user ? draw_len(&r, g->user_median, g->user_sigma)
					: draw_len(&r, g->assistant_median, g->assistant_sigma);
			struct buf m;
			buf_init(&m, (size_t)1 << 28);
			prose(&r, t, &m);
			buf_append(&b, m.data ? m.data : "", m.len);
			buf_free(&m);
			c->msgs[k].text = plb_strndup(b.data ? b.data : "", b.len);
			c->msgs[k].len = b.len;
			c->msgs[k].user = user;
		}
		c->n = pairs * 2;
	}
	d->n = g->conversations;
	buf_free(&b);
	buf_free(&shared);
	return 0;
}

/* ---- fork pairs ---------------------------------------------------------- */

void wl_pairs_free(struct wl_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].prompt);
	free(p);
}

int wl_fork_pairs(const struct wl_dataset *d, size_t max_pairs, struct wl_pair **out, size_t *n)
{
	size_t cap = 64, k = 0;
	struct wl_pair *v = plb_malloc(cap * sizeof *v);
	struct buf b;
	buf_init(&b, (size_t)1 << 30);
	if (!v)
		return -1;
	for (size_t c = 0; c < d->n && (!max_pairs || k < max_pairs); c++) {
		const struct wl_conv *cv = &d->convs[c];
		buf_reset(&b);
		for (size_t i = 0; i < cv->n; i++) {
			if (i % 2 == 1) { /* messages[0..i) is the prompt, message i the completion */
				if (max_pairs && k >= max_pairs)
					break;
				if (k == cap) {
					cap *= 2;
					struct wl_pair *nv = plb_realloc(v, cap * sizeof *v);
					if (!nv) {
						wl_pairs_free(v, k);
						buf_free(&b);
						return -1;
					}
					v = nv;
				}
				v[k].prompt = plb_strndup(b.data ? b.data : "", b.len);
				v[k].prompt_len = b.len;
				v[k].completion = cv->msgs[i].text;
				v[k].completion_len = cv->msgs[i].len;
				v[k].conv = c;
				v[k].turn = i;
				k++;
			}
			buf_puts(&b, i % 2 == 0 ? "User: " : "Assistant: ");
			buf_append(&b, cv->msgs[i].text, cv->msgs[i].len);
			buf_putc(&b, '\n');
		}
	}
	buf_free(&b);
	*out = v;
	*n = k;
	return 0;
}

void wl_plan_free(struct wl_plan *p)
{
	for (size_t i = 0; i < p->n_items; i++)
		free(p->items[i].prompt);
	free(p->items);
	free(p->order);
	memset(p, 0, sizeof *p);
}

static void shuffle(size_t *idx, size_t n, uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed);
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(&r, i);
		size_t t = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}

int wl_fork_plan(const struct wl_dataset *d, const struct tok *t, size_t max_pairs, size_t num, uint64_t seed,
		 struct wl_plan *out)
{
	struct wl_pair *p;
	size_t np;
	memset(out, 0, sizeof *out);
	if (wl_fork_pairs(d, max_pairs, &p, &np))
		return -1;
	out->items = plb_calloc(np + 1, sizeof *out->items);
	out->order = plb_calloc(np + 1, sizeof *out->order);
	for (size_t i = 0; i < np; i++) {
		long pl = tok_count(t, p[i].prompt, p[i].prompt_len, TOK_BOS);
		long ol = tok_count(t, p[i].completion, p[i].completion_len, TOK_BOS);
		if (pl < 4 || ol < 4 || pl > 8192)
			continue;
		struct wl_request *r = &out->items[out->n_items];
		r->prompt = p[i].prompt; /* taken over */
		p[i].prompt = NULL;
		r->prompt_len = p[i].prompt_len;
		r->prompt_tokens = pl;
		r->max_tokens = ol;
		r->conv = p[i].conv;
		r->turn = p[i].turn;
		out->order[out->n_items] = out->n_items;
		out->n_items++;
	}
	wl_pairs_free(p, np);
	shuffle(out->order, out->n_items, seed);
	out->n_order = out->n_items;
	out->num = out->n_items ? num : 0;
	return 0;
}

int wl_single_plan(const struct wl_dataset *d, const struct tok *t, size_t num, uint64_t seed, struct wl_plan *out)
{
	memset(out, 0, sizeof *out);
	size_t *idx = plb_malloc((d->n + 1) * sizeof *idx), m = 0;
	for (size_t i = 0; i < d->n; i++)
		if (d->convs[i].n >= 2)
			idx[m++] = i;
	shuffle(idx, m, seed);
	size_t cap = num < m ? num : m;
	out->items = plb_calloc(cap + 1, sizeof *out->items);
	out->order = plb_calloc(cap + 1, sizeof *out->order);
	for (size_t j = 0; j < m && out->n_items < num; j++) {
		const struct wl_conv *c = &d->convs[idx[j]];
		long pl = tok_count(t, c->msgs[0].text, c->msgs[0].len, TOK_BOS);
		long ol = tok_count(t, c->msgs[1].text, c->msgs[1].len, TOK_BOS);
		if (pl < 4 || ol < 4 || pl > 1024 || pl + ol > 2048)
			continue;
		struct wl_request *r = &out->items[out->n_items];
		r->prompt = plb_strndup(c->msgs[0].text, c->msgs[0].len);
		r->prompt_len = c->msgs[0].len;
		r->prompt_tokens = pl;
		r->max_tokens = ol;
		r->conv = idx[j];
		r->turn = 1;
		out->order[out->n_items] = out->n_items;
		out->n_items++;
	}
	free(idx);
	out->n_order = out->num = out->n_items;
	return 0;
}
