/* workload.c: ShareGPT data sets, the synthetic generator, filters and
 * statistics of data sets, and the fork and single plans.
 *
 * The generator draws, per conversation, a number of user turns and per
 * message a length in tokens from struct wl_dist (uniform, constant,
 * lognormal, poisson, zipf; integers clamped to [min, max]) and writes that
 * many real words (each one Llama 3 token). A fixed seed gives the same bytes;
 * the presets' draws are made in the same order and with the same calls as
 * before the distributions existed, so their data sets are unchanged (the
 * unit test pins their hashes). Filters and statistics are plain functions of
 * a data set, read from a file or generated: the command only prints them. */
#include "workload.h"

#include "mem.h"
#include "stats.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conv_free(struct wl_conv *c)
{
	for (size_t k = 0; k < c->n; k++)
		free(c->msgs[k].text);
	free(c->msgs);
	free(c->id);
}

void wl_free(struct wl_dataset *d)
{
	for (size_t i = 0; i < d->n; i++)
		conv_free(&d->convs[i]);
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

/* ---- distributions -------------------------------------------------------- */

static const struct {
	const char *name;
	enum wl_dist_kind kind;
	int params;       /* shape parameters before the optional bounds */
	const char *form; /* for messages */
} dist_kinds[] = {
	{"uniform", WL_UNIFORM, 0, "uniform:MIN:MAX"},
	{"constant", WL_CONSTANT, 0, "constant:N"},
	{"lognormal", WL_LOGNORMAL, 2, "lognormal:MEDIAN:SIGMA[:MIN:MAX]"},
	{"poisson", WL_POISSON, 1, "poisson:MEAN[:MIN:MAX]"},
	{"zipf", WL_ZIPF, 1, "zipf:S[:MIN:MAX]"},
};

static int bound(double v)
{
	return v >= 1 && v <= (double)WL_DIST_LIMIT && v == floor(v);
}

int wl_dist_parse(const char *spec, long def_max, struct wl_dist *d, char *err, size_t errlen)
{
	char name[16];
	size_t nl = strcspn(spec, ":");
	double v[5];
	int n = 0;
	memset(d, 0, sizeof *d);
	size_t k = 0, nk = sizeof dist_kinds / sizeof *dist_kinds;
	if (nl < sizeof name) {
		memcpy(name, spec, nl);
		name[nl] = '\0';
		while (k < nk && strcmp(dist_kinds[k].name, name) != 0)
			k++;
	} else {
		k = nk;
	}
	if (k == nk) {
		snprintf(err, errlen, "'%s': unknown distribution (uniform, constant, lognormal, poisson, zipf)", spec);
		return -1;
	}
	const char *form = dist_kinds[k].form;
	for (const char *c = spec + nl; *c == ':'; n++) {
		char *end;
		if (n == 5)
			goto bad;
		v[n] = strtod(c + 1, &end);
		if (end == c + 1 || !isfinite(v[n]) || (*end && *end != ':'))
			goto bad;
		c = end;
	}
	d->kind = dist_kinds[k].kind;
	int np = dist_kinds[k].params;
	if (d->kind == WL_UNIFORM || d->kind == WL_CONSTANT) {
		if (n != (d->kind == WL_UNIFORM ? 2 : 1))
			goto bad;
		if (!bound(v[0]) || !bound(v[n - 1]))
			goto range;
		d->min = (long)v[0];
		d->max = (long)v[n - 1];
	} else {
		if (n != np && n != np + 2)
			goto bad;
		d->p1 = v[0];
		d->p2 = np > 1 ? v[1] : 0;
		d->min = 1;
		d->max = def_max;
		if (n == np + 2) {
			if (!bound(v[np]) || !bound(v[np + 1]))
				goto range;
			d->min = (long)v[np];
			d->max = (long)v[np + 1];
		}
		if ((d->kind == WL_LOGNORMAL && (!(d->p1 > 0) || d->p1 > WL_DIST_LIMIT || d->p2 < 0 || d->p2 > 10)) ||
		    (d->kind == WL_POISSON && (!(d->p1 > 0) || d->p1 > WL_DIST_LIMIT)) ||
		    (d->kind == WL_ZIPF && (!(d->p1 > 1) || d->p1 > 100))) {
			snprintf(err, errlen,
				 "'%s': %s", spec,
				 d->kind == WL_LOGNORMAL ? "MEDIAN must be in (0, 100000], SIGMA in [0, 10]"
				 : d->kind == WL_POISSON ? "MEAN must be in (0, 100000]"
							 : "S must be in (1, 100]");
			return -1;
		}
	}
	if (d->min > d->max) {
		snprintf(err, errlen, "'%s': MIN %ld > MAX %ld", spec, d->min, d->max);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "'%s': expected %s", spec, form);
	return -1;
range:
	snprintf(err, errlen, "'%s': bounds must be whole numbers in [1, %ld]", spec, WL_DIST_LIMIT);
	return -1;
}

void wl_dist_format(const struct wl_dist *d, char *out, size_t n)
{
	switch (d->kind) {
	case WL_UNIFORM: snprintf(out, n, "uniform:%ld:%ld", d->min, d->max); break;
	case WL_CONSTANT: snprintf(out, n, "constant:%ld", d->min); break;
	case WL_LOGNORMAL: snprintf(out, n, "lognormal:%.10g:%.10g:%ld:%ld", d->p1, d->p2, d->min, d->max); break;
	case WL_POISSON: snprintf(out, n, "poisson:%.10g:%ld:%ld", d->p1, d->min, d->max); break;
	case WL_ZIPF: snprintf(out, n, "zipf:%.10g:%ld:%ld", d->p1, d->min, d->max); break;
	default: snprintf(out, n, "?"); break;
	}
}

/* Knuth's product of uniforms, in slices of mean <= 30 (exp(-mean) stays
 * representable; a sum of Poisson draws is a Poisson draw). O(mean). */
static double poisson(struct rng *r, double mean)
{
	double k = 0;
	while (mean > 0) {
		double m = mean < 30 ? mean : 30, l = exp(-m), p = 1;
		mean -= m;
		for (;;) {
			p *= rng_uniform(r);
			if (p <= l)
				break;
			k++;
		}
	}
	return k;
}

/* Devroye's rejection method for the Zipf law (Non-Uniform Random Variate
 * Generation, X.6.1; numpy's too), s > 1. Draws beyond 1e15 are returned as
 * they are: the caller clamps them to its max. */
static double zipf(struct rng *r, double s)
{
	double am1 = s - 1.0, b = pow(2.0, am1);
	for (;;) {
		double u = 1.0 - rng_uniform(r), v = rng_uniform(r);
		double x = floor(pow(u, -1.0 / am1));
		if (x > 1e15)
			return x;
		double t = pow(1.0 + 1.0 / x, am1);
		if (v * x * (t - 1.0) / (b - 1.0) <= t / b)
			return x;
	}
}

long wl_dist_draw(const struct wl_dist *d, struct rng *r)
{
	double v;
	if (d->kind == WL_CONSTANT || d->max < d->min)
		return d->min;
	switch (d->kind) { /* a draw is made even when min == max: the same seed, the same sequence */
	case WL_UNIFORM: return d->min + (long)rng_below(r, (uint64_t)(d->max - d->min + 1));
	case WL_LOGNORMAL: v = rng_lognormal(r, d->p1, d->p2); break;
	case WL_POISSON: v = poisson(r, d->p1); break;
	case WL_ZIPF: v = zipf(r, d->p1); break;
	default: return d->min;
	}
	if (!(v >= (double)d->min)) /* NaN too */
		v = (double)d->min;
	if (v > (double)d->max)
		v = (double)d->max;
	return lround(v);
}

/* ---- presets and the generator ------------------------------------------ */

const char wl_preset_names[] = "seed, shared-system, hot, rag, chat";

int wl_preset(const char *name, struct wl_gen *g)
{
	memset(g, 0, sizeof *g);
	g->conversations = 1000;
	g->turns = (struct wl_dist){WL_UNIFORM, 0, 0, 8, 15}; /* 16-30 messages */
	g->user_tokens = (struct wl_dist){WL_LOGNORMAL, 33, 1.2, 1, 8000};
	g->assistant_tokens = (struct wl_dist){WL_LOGNORMAL, 57, 0.7, 1, 8000};
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
		g->turns = (struct wl_dist){WL_UNIFORM, 0, 0, 2, 5};
		return 0;
	}
	if (!strcmp(name, "chat")) {
		/* a ShareGPT multi-turn set as a chat benchmark filters it: 2-20 user
		 * turns (median 5, ~12% at 2, ~1% at 20), short questions, long answers */
		g->conversations = 2000;
		g->turns = (struct wl_dist){WL_LOGNORMAL, 5, 0.6, 2, 20};
		g->user_tokens = (struct wl_dist){WL_LOGNORMAL, 40, 1.0, 1, 8000};
		g->assistant_tokens = (struct wl_dist){WL_LOGNORMAL, 200, 0.7, 1, 8000};
		return 0;
	}
	return -1;
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
		long turns = wl_dist_draw(&g->turns, &r);
		size_t pairs = turns < 1 ? 1 : (size_t)turns;
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
				const struct wl_dist doc = {WL_LOGNORMAL, (double)g->rag_doc_tokens, 0.3, 1, 8000};
				buf_puts(&b, "Context document:\n");
				prose(&rd, (size_t)wl_dist_draw(&doc, &rd), &b);
				buf_puts(&b, "\n\nQuestion: ");
			}
			long t = wl_dist_draw(user ? &g->user_tokens : &g->assistant_tokens, &r);
			struct buf m;
			buf_init(&m, (size_t)1 << 28);
			prose(&r, t < 0 ? 0 : (size_t)t, &m);
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

/* ---- filters and statistics ---------------------------------------------- */

size_t wl_chars(const char *text, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)text[i] & 0xC0) != 0x80; /* not a continuation byte */
	return n;
}

size_t wl_user_turns(const struct wl_conv *c)
{
	size_t n = 0;
	for (size_t k = 0; k < c->n; k++)
		n += c->msgs[k].user != 0;
	return n;
}

static size_t user_chars(const struct wl_conv *c)
{
	size_t n = 0;
	for (size_t k = 0; k < c->n; k++)
		if (c->msgs[k].user)
			n += wl_chars(c->msgs[k].text, c->msgs[k].len);
	return n;
}

int wl_filter(struct wl_dataset *d, const struct wl_filter *f, struct wl_filter_report *r)
{
	memset(r, 0, sizeof *r);
	r->in = d->n;
	size_t keep = 0;
	for (size_t i = 0; i < d->n; i++) {
		struct wl_conv *c = &d->convs[i];
		size_t turns = wl_user_turns(c), chars = user_chars(c);
		size_t *why = turns < f->min_user_turns			     ? &r->few_turns
			      : f->max_user_turns && turns > f->max_user_turns ? &r->many_turns
			      : chars < f->min_user_chars			     ? &r->few_chars
			      : f->max_user_chars && chars > f->max_user_chars ? &r->many_chars
										 : NULL;
		if (why) {
			(*why)++;
			conv_free(c);
			continue;
		}
		if (f->max_turns && turns > f->max_turns) {
			size_t seen = 0, k = 0;
			for (; k < c->n; k++)
				if (c->msgs[k].user && ++seen > f->max_turns)
					break;
			for (size_t j = k; j < c->n; j++)
				free(c->msgs[j].text);
			c->n = k;
			r->cut++;
		}
		d->convs[keep++] = *c;
	}
	d->n = r->kept = keep;
	return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v[0..n) and summarises it. */
static void summarise(double *v, size_t n, struct wl_summary *s)
{
	memset(s, 0, sizeof *s);
	s->n = n;
	if (!n)
		return;
	qsort(v, n, sizeof *v, cmp_dbl);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	s->mean = sum / (double)n;
	s->min = v[0];
	s->max = v[n - 1];
	s->p10 = stats_percentile(v, n, 10);
	s->p50 = stats_percentile(v, n, 50);
	s->p90 = stats_percentile(v, n, 90);
	s->p99 = stats_percentile(v, n, 99);
}

/* The fork's filters on a pair (wl_fork_plan's and the statistics'). */
static int fork_keeps(long prompt_tokens, long output_tokens)
{
	return prompt_tokens >= 4 && output_tokens >= 4 && prompt_tokens <= 8192;
}

static void fork_stats(const struct wl_dataset *d, const struct tok *t, size_t max_pairs, struct wl_stats *s)
{
	struct wl_pair *p;
	size_t np, last = (size_t)-1;
	s->fork_max_pairs = max_pairs;
	if (wl_fork_pairs(d, max_pairs, &p, &np))
		return;
	double in = 0, out = 0;
	for (size_t i = 0; i < np; i++) {
		long pl = tok_count(t, p[i].prompt, p[i].prompt_len, TOK_BOS);
		long ol = tok_count(t, p[i].completion, p[i].completion_len, TOK_BOS);
		if (!fork_keeps(pl, ol))
			continue;
		s->fork_pairs++;
		in += (double)pl;
		out += (double)ol;
		if (p[i].conv != last) {
			s->fork_convs++;
			last = p[i].conv;
		}
	}
	wl_pairs_free(p, np);
	if (s->fork_pairs) {
		s->fork_in = in / (double)s->fork_pairs;
		s->fork_out = out / (double)s->fork_pairs;
	}
}

int wl_stats(const struct wl_dataset *d, const struct tok *t, size_t max_pairs, struct wl_stats *s)
{
	static const size_t lo[WL_TURN_BINS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 16, 21, 31, 51, 101};
	memset(s, 0, sizeof *s);
	s->conversations = d->n;
	for (size_t i = 0; i < d->n; i++)
		s->messages += d->convs[i].n;
	for (size_t b = 0; b < WL_TURN_BINS; b++) {
		s->hist[b].lo = lo[b];
		s->hist[b].hi = b + 1 < WL_TURN_BINS ? lo[b + 1] - 1 : SIZE_MAX;
	}
	double *turns = plb_malloc((d->n + 1) * sizeof *turns), *cuc = plb_malloc((d->n + 1) * sizeof *cuc);
	double *uc = plb_malloc((s->messages + 1) * sizeof *uc), *ac = plb_malloc((s->messages + 1) * sizeof *ac);
	double *ut = plb_malloc((s->messages + 1) * sizeof *ut), *at = plb_malloc((s->messages + 1) * sizeof *at);
	size_t nu = 0, na = 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct wl_conv *c = &d->convs[i];
		size_t tu = 0, chars = 0;
		for (size_t k = 0; k < c->n; k++) {
			const struct wl_msg *m = &c->msgs[k];
			size_t ch = wl_chars(m->text, m->len);
			double tk = t ? (double)tok_count(t, m->text, m->len, 0) : 0;
			if (m->user) {
				tu++;
				chars += ch;
				uc[nu] = (double)ch;
				ut[nu++] = tk;
			} else {
				ac[na] = (double)ch;
				at[na++] = tk;
			}
		}
		turns[i] = (double)tu;
		cuc[i] = (double)chars;
		size_t b = WL_TURN_BINS - 1;
		while (tu < s->hist[b].lo)
			b--;
		s->hist[b].count++;
	}
	summarise(turns, d->n, &s->turns);
	summarise(cuc, d->n, &s->conv_user_chars);
	summarise(uc, nu, &s->user_chars);
	summarise(ac, na, &s->assistant_chars);
	summarise(ut, t ? nu : 0, &s->user_tokens);
	summarise(at, t ? na : 0, &s->assistant_tokens);
	free(turns);
	free(cuc);
	free(uc);
	free(ac);
	free(ut);
	free(at);
	if (t)
		fork_stats(d, t, max_pairs, s);
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
		if (!fork_keeps(pl, ol))
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
