/* tokenizer.c: byte-level BPE as Hugging Face `tokenizers` does it.
 *
 * Data layout (all built once in tok_load, read-only afterwards):
 *   - every token's raw bytes live in one blob; piece_off/piece_len index it
 *     (the byte-level "Ġ" alphabet of tokenizer.json is decoded at load time,
 *     so encoding never maps bytes to code points and back);
 *   - vocab_tab: open-addressing hash table (XXH3 of the raw bytes -> id + 1);
 *   - pair_tab: open-addressing table (left id, right id) -> (rank, merged id);
 *   - added tokens (specials): a hash by text plus the set of their lengths and
 *     first bytes, so the scan for them costs one table lookup per candidate.
 * Encoding allocates its scratch per call (ids, BPE heap, PCRE2 match data),
 * which is what makes a loaded tokenizer safe to share between threads. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "mem.h"
#include "tokenizer.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "jscan.h"
#include "utf8.h"

/* The GPT-2 regex, used when the pre-tokenizer is a ByteLevel with use_regex. */
static const char gpt2_regex[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct pslot {
	uint64_t key; /* (left << 32 | right) + 1, 0 = empty */
	uint32_t rank, merged;
};

struct vslot {
	uint32_t fp, id1, off, len; /* hash >> 32, id + 1, bytes in blob */
};

struct special {
	uint32_t off, len; /* into blob */
	uint32_t id;
};

struct tok {
	pcre2_code *re;
	int jit;
	int ignore_merges;
	long bos;

	char *blob;
	size_t blob_len;
	uint32_t n_ids;      /* highest id + 1 */
	uint32_t *piece_off; /* per id; UINT32_MAX when the id is unused */
	uint32_t *piece_len;

	struct vslot *vocab_tab; /* id1 == 0: empty */
	size_t vocab_mask;

	struct pslot *pairs;
	size_t pair_mask, n_pairs;

	uint32_t byte_id[256];

	struct special *specials;
	size_t n_specials;
	uint32_t *special_tab; /* index + 1 into specials */
	size_t special_mask;
	uint32_t special_lens[64]; /* distinct lengths, longest first */
	size_t n_special_lens;
	uint8_t special_first[256];
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 16;
	while (c < n)
		c <<= 1;
	return c;
}

static uint64_t pair_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

/* ---- byte-level alphabet ------------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others
 * are shifted to U+0100 and up in byte order. Fills cp -> byte (-1 = none). */
static void byte_level_table(int16_t cp_to_byte[324])
{
	for (int i = 0; i < 324; i++)
		cp_to_byte[i] = -1;
	int n = 0;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
		if (printable)
			cp_to_byte[b] = (int16_t)b;
		else
			cp_to_byte[256 + n++] = (int16_t)b;
	}
}

/* Decodes a byte-level token string into raw bytes appended to blob. */
static int byte_level_decode(const int16_t *map, const char *s, size_t n, struct buf *blob)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t l = utf8_decode(u + i, n - i, &cp);
		if (!l || cp >= 324 || map[cp] < 0)
			return TOK_EINVAL;
		char b = (char)map[cp];
		if (buf_append(blob, &b, 1))
			return TOK_ENOMEM;
		i += l;
	}
	return 0;
}

/* ---- tables ------------------------------------------------------------- */

/* A slot holds the key's bytes by reference with a 32-bit fingerprint, so a
 * lookup costs one cache miss in the table and one in the blob. */
static long vocab_find(const struct tok *t, const char *s, size_t n)
{
	if (!t->vocab_tab)
		return -1;
	uint64_t h = XXH3_64bits(s, n);
	uint32_t fp = (uint32_t)(h >> 32);
	size_t i = (size_t)h & t->vocab_mask;
	for (;;) {
		const struct vslot *v = &t->vocab_tab[i];
		if (!v->id1)
			return -1;
		if (v->fp == fp && v->len == n && memcmp(t->blob + v->off, s, n) == 0)
			return (long)v->id1 - 1;
		i = (i + 1) & t->vocab_mask;
	}
}

static void vocab_insert(struct tok *t, uint32_t id)
{
	const char *s = t->blob + t->piece_off[id];
	size_t n = t->piece_len[id];
	if (vocab_find(t, s, n) >= 0)
		return; /* duplicate bytes: the first id wins, as in HF */
	uint64_t h = XXH3_64bits(s, n);
	size_t i = (size_t)h & t->vocab_mask;
	while (t->vocab_tab[i].id1)
		i = (i + 1) & t->vocab_mask;
	t->vocab_tab[i] = (struct vslot){(uint32_t)(h >> 32), id + 1, t->piece_off[id], (uint32_t)n};
}

static const struct pslot *pair_find(const struct tok *t, uint32_t a, uint32_t b)
{
	uint64_t key = (((uint64_t)a << 32) | b) + 1;
	size_t i = (size_t)pair_hash(key) & t->pair_mask;
	for (;;) {
		const struct pslot *ps = &t->pairs[i];
		if (!ps->key)
			return NULL;
		if (ps->key == key)
			return ps;
		i = (i + 1) & t->pair_mask;
	}
}

static void pair_put(struct pslot *tab, size_t mask, struct pslot v)
{
	size_t i = (size_t)pair_hash(v.key) & mask;
	while (tab[i].key) {
		if (tab[i].key == v.key)
			return; /* keep the lowest rank */
		i = (i + 1) & mask;
	}
	tab[i] = v;
}

/* Inserts a merge; the table doubles at half full. */
static int pair_insert(struct tok *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged)
{
	if ((t->n_pairs + 1) * 2 > t->pair_mask + 1 || !t->pairs) {
		size_t cap = t->pairs ? (t->pair_mask + 1) * 2 : 1 << 16;
		struct pslot *n = plb_calloc(cap, sizeof *n);
		if (!n)
			return TOK_ENOMEM;
		for (size_t i = 0; t->pairs && i <= t->pair_mask; i++)
			if (t->pairs[i].key)
				pair_put(n, cap - 1, t->pairs[i]);
		free(t->pairs);
		t->pairs = n;
		t->pair_mask = cap - 1;
	}
	t->n_pairs++;
	pair_put(t->pairs, t->pair_mask, (struct pslot){(((uint64_t)a << 32) | b) + 1, rank, merged});
	return 0;
}

static long special_find(const struct tok *t, const char *s, size_t n)
{
	if (!t->special_tab)
		return -1;
	size_t i = (size_t)XXH3_64bits(s, n) & t->special_mask;
	for (;;) {
		uint32_t v = t->special_tab[i];
		if (!v)
			return -1;
		const struct special *sp = &t->specials[v - 1];
		if (sp->len == n && memcmp(t->blob + sp->off, s, n) == 0)
			return (long)(v - 1);
		i = (i + 1) & t->special_mask;
	}
}

/* ---- loading ------------------------------------------------------------ */

static const char *find_regex(json_t *pre, int *use_gpt2, char *err, size_t errlen, int *rc)
{
	*rc = 0;
	if (!pre || json_is_null(pre)) {
		*rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: no pre_tokenizer (only byte-level BPE is supported)");
		return NULL;
	}
	const char *type = json_string_value(json_object_get(pre, "type"));
	if (type && strcmp(type, "Sequence") == 0) {
		json_t *list = json_object_get(pre, "pretokenizers");
		size_t i;
		json_t *p;
		const char *found = NULL;
		json_array_foreach(list, i, p) {
			const char *pt = json_string_value(json_object_get(p, "type"));
			if (pt && strcmp(pt, "Split") == 0 && !found) {
				found = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
				const char *beh = json_string_value(json_object_get(p, "behavior"));
				if (!found || (beh && strcmp(beh, "Isolated") != 0) ||
				    json_is_true(json_object_get(p, "invert"))) {
					*rc = fail(err, errlen, TOK_EINVAL,
						   "tokenizer.json: pre_tokenizer Split must be a Regex with behavior Isolated");
					return NULL;
				}
			} else if (pt && strcmp(pt, "ByteLevel") == 0) {
				if (!found && json_is_true(json_object_get(p, "use_regex")))
					*use_gpt2 = 1;
			} else {
				*rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: unsupported pre_tokenizer %s",
					   pt ? pt : "(no type)");
				return NULL;
			}
		}
		if (found)
			return found;
		if (*use_gpt2)
			return gpt2_regex;
	} else if (type && strcmp(type, "ByteLevel") == 0) {
		*use_gpt2 = 1;
		return gpt2_regex;
	}
	*rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: unsupported pre_tokenizer %s", type ? type : "(no type)");
	return NULL;
}

/* Line number of byte off in the document, for error messages. */
static int line_of(const char *json, size_t off)
{
	int line = 1;
	for (size_t i = 0; i < off; i++)
		line += json[i] == '\n';
	return line;
}

struct vent {
	uint32_t id, off, len;
};

/* model.vocab: {"token": id, ...} scanned straight into the blob. */
static int scan_vocab(const char *json, const char *p, const char *end, const int16_t *map, struct buf *blob,
		      struct vent **ents, size_t *n_ents, char *err, size_t errlen)
{
	struct buf key;
	buf_init(&key, 1 << 16);
	size_t cap = 0;
	int rc = 0;
	p = jscan_ws(p + 1, end);
	if (p < end && *p == '}')
		goto out;
	for (;;) {
		buf_reset(&key);
		const char *at = jscan_ws(p, end);
		long long id = -1;
		p = jscan_string(at, end, &key);
		if (p)
			p = jscan_ws(p, end);
		if (p && p < end && *p == ':')
			p = jscan_int(jscan_ws(p + 1, end), end, &id);
		else
			p = NULL;
		if (!p || id < 0 || id >= (1 << 24)) {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d: model.vocab: expected \"token\": id",
				  line_of(json, (size_t)(at - json)));
			goto out;
		}
		size_t off = blob->len;
		if (byte_level_decode(map, key.data ? key.data : "", key.len, blob)) {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d: vocab entry \"%s\" is not byte-level text",
				  line_of(json, (size_t)(at - json)), key.data ? key.data : "");
			goto out;
		}
		if (*n_ents == cap) {
			cap = cap ? cap * 2 : 1024;
			struct vent *e = plb_realloc(*ents, cap * sizeof *e);
			if (!e) {
				rc = TOK_ENOMEM;
				goto out;
			}
			*ents = e;
		}
		(*ents)[(*n_ents)++] = (struct vent){(uint32_t)id, (uint32_t)off, (uint32_t)(blob->len - off)};
		p = jscan_ws(p, end);
		if (p < end && *p == '}')
			break;
		if (p >= end || *p != ',') {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d: model.vocab: expected , or }",
				  line_of(json, (size_t)(p - json)));
			goto out;
		}
		p++;
	}
out:
	buf_free(&key);
	return rc;
}

/* model.merges: ["left right", ...] or [["left", "right"], ...], rank = index. */
static int scan_merges(struct tok *t, const char *json, const char *p, const char *end, const int16_t *map,
		       char *err, size_t errlen)
{
	struct buf txt, raw;
	buf_init(&txt, 1 << 16);
	buf_init(&raw, 1 << 16);
	int rc = 0;
	uint32_t rank = 0;
	p = jscan_ws(p + 1, end);
	if (p < end && *p == ']')
		goto out;
	for (;;) {
		const char *at = jscan_ws(p, end);
		size_t split = 0;
		buf_reset(&txt);
		if (at < end && *at == '[') { /* ["a", "b"] */
			p = jscan_string(jscan_ws(at + 1, end), end, &txt);
			split = txt.len;
			if (p)
				p = jscan_ws(p, end);
			if (p && p < end && *p == ',')
				p = jscan_string(jscan_ws(p + 1, end), end, &txt);
			else
				p = NULL;
			if (p)
				p = jscan_ws(p, end);
			if (p && p < end && *p == ']')
				p++;
			else
				p = NULL;
		} else {
			p = jscan_string(at, end, &txt);
			const char *sp = p ? memchr(txt.data ? txt.data : "", ' ', txt.len) : NULL;
			if (sp) {
				split = (size_t)(sp - txt.data);
				memmove(txt.data + split, txt.data + split + 1, txt.len - split - 1);
				txt.len--;
			}
		}
		long ida = -1, idb = -1, idm = -1;
		if (p && split > 0 && split < txt.len) {
			buf_reset(&raw);
			if (byte_level_decode(map, txt.data, split, &raw) == 0)
				ida = vocab_find(t, raw.data, raw.len);
			size_t rsplit = raw.len;
			if (ida >= 0 && byte_level_decode(map, txt.data + split, txt.len - split, &raw) == 0) {
				idb = vocab_find(t, raw.data + rsplit, raw.len - rsplit);
				idm = vocab_find(t, raw.data, raw.len);
			}
		}
		if (!p || split == 0 || split >= txt.len) {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d: merges[%u] is not \"left right\"",
				  line_of(json, (size_t)(at - json)), rank);
			goto out;
		}
		if (ida < 0 || idb < 0 || idm < 0) {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d: merges[%u] names a token not in vocab",
				  line_of(json, (size_t)(at - json)), rank);
			goto out;
		}
		if (pair_insert(t, (uint32_t)ida, (uint32_t)idb, rank++, (uint32_t)idm)) {
			rc = TOK_ENOMEM;
			goto out;
		}
		p = jscan_ws(p, end);
		if (p < end && *p == ']')
			break;
		if (p >= end || *p != ',') {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d: model.merges: expected , or ]",
				  line_of(json, (size_t)(p - json)));
			goto out;
		}
		p++;
	}
out:
	buf_free(&txt);
	buf_free(&raw);
	return rc;
}

static int add_specials(struct tok *t, json_t *added, char *err, size_t errlen)
{
	size_t ns = json_array_size(added), ai;
	json_t *a;
	if (!ns)
		return 0;
	t->specials = plb_calloc(ns, sizeof *t->specials);
	t->special_mask = pow2_at_least(ns * 2) - 1;
	t->special_tab = plb_calloc(t->special_mask + 1, sizeof(uint32_t));
	if (!t->specials || !t->special_tab)
		return TOK_ENOMEM;
	json_array_foreach(added, ai, a) {
		uint32_t id = (uint32_t)json_integer_value(json_object_get(a, "id"));
		struct special *sp = &t->specials[t->n_specials];
		sp->id = id;
		sp->off = t->piece_off[id];
		sp->len = t->piece_len[id];
		if (special_find(t, t->blob + sp->off, sp->len) >= 0)
			continue;
		size_t i = (size_t)XXH3_64bits(t->blob + sp->off, sp->len) & t->special_mask;
		while (t->special_tab[i])
			i = (i + 1) & t->special_mask;
		t->special_tab[i] = (uint32_t)(++t->n_specials);
		t->special_first[(unsigned char)t->blob[sp->off]] = 1;
		size_t k;
		for (k = 0; k < t->n_special_lens && t->special_lens[k] != sp->len; k++)
			;
		if (k == t->n_special_lens) {
			if (k == sizeof t->special_lens / sizeof t->special_lens[0])
				return fail(err, errlen, TOK_EINVAL, "tokenizer.json: too many distinct added-token lengths");
			t->special_lens[t->n_special_lens++] = sp->len;
		}
	}
	/* longest first, so the scan is leftmost-longest */
	for (size_t i = 1; i < t->n_special_lens; i++)
		for (size_t j = i; j > 0 && t->special_lens[j] > t->special_lens[j - 1]; j--) {
			uint32_t x = t->special_lens[j];
			t->special_lens[j] = t->special_lens[j - 1];
			t->special_lens[j - 1] = x;
		}
	return 0;
}

/* One walk over the members of model: the spans of vocab and merges. */
static int find_vocab_merges(const char *p, const char *end, const char **vs, const char **ve, const char **gs,
			     const char **ge)
{
	p = jscan_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p++;
	for (;;) {
		p = jscan_ws(p, end);
		const char *ks = p;
		p = jscan_string(p, end, NULL);
		if (!p)
			return -1;
		size_t kl = (size_t)(p - ks);
		p = jscan_ws(p, end);
		if (p >= end || *p != ':')
			return -1;
		const char *v = jscan_ws(p + 1, end);
		p = jscan_skip(v, end);
		if (!p)
			return -1;
		if (kl == 7 && memcmp(ks, "\"vocab\"", 7) == 0 && *v == '{') {
			*vs = v;
			*ve = p;
		} else if (kl == 8 && memcmp(ks, "\"merges\"", 8) == 0 && *v == '[') {
			*gs = v;
			*ge = p;
		}
		p = jscan_ws(p, end);
		if (p < end && *p == '}')
			return *vs && *gs ? 0 : -1;
		if (p >= end || *p != ',')
			return -1;
		p++;
	}
}

/* Loading is split for speed: jscan finds model.vocab and model.merges and
 * scans them in place; jansson parses the rest of the document with those two
 * values cut out (a few KB instead of 9 MB). */
int tok_load(struct tok **out, const char *json, size_t len, char *err, size_t errlen)
{
	int rc = 0;
	const char *end = json + len;
	const char *ms, *vs = NULL, *ve = NULL, *gs = NULL, *ge = NULL;
	struct buf blob, small;
	buf_init(&blob, (size_t)1 << 31);
	buf_init(&small, (size_t)1 << 30);
	struct vent *ents = NULL;
	size_t n_ents = 0;
	json_t *root = NULL;
	json_error_t jerr;
	struct tok *t = plb_calloc(1, sizeof *t);
	if (!t) {
		rc = TOK_ENOMEM;
		goto fail;
	}
	t->bos = -1;

	/* 1. cut the two big values out; a malformed document goes to jansson whole
	 *    so the error names its line and column */
	int cut = jscan_member(json, end, "model", &ms, NULL) == 0 && find_vocab_merges(ms, end, &vs, &ve, &gs, &ge) == 0;
	if (cut) {
		const char *a = vs < gs ? vs : gs, *ae = vs < gs ? ve : ge;
		const char *b = vs < gs ? gs : vs, *be = vs < gs ? ge : ve;
		if (buf_append(&small, json, (size_t)(a - json)) || buf_append(&small, a == vs ? "{}" : "[]", 2) ||
		    buf_append(&small, ae, (size_t)(b - ae)) || buf_append(&small, b == vs ? "{}" : "[]", 2) ||
		    buf_append(&small, be, (size_t)(end - be))) {
			rc = TOK_ENOMEM;
			goto fail;
		}
		root = json_loadb(small.data, small.len, 0, &jerr);
	} else {
		root = json_loadb(json, len, 0, &jerr);
	}
	if (!root) {
		rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json:%d:%d: %s", jerr.line, jerr.column, jerr.text);
		goto fail;
	}
	json_t *model = json_object_get(root, "model");
	const char *mtype = json_string_value(json_object_get(model, "type"));
	if (!mtype || strcmp(mtype, "BPE") != 0) {
		rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: model.type is %s, only BPE is supported",
			  mtype ? mtype : "missing");
		goto fail;
	}
	if (!cut) {
		rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: model.vocab (object) and model.merges (array) are required");
		goto fail;
	}
	t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
	json_t *added = json_object_get(root, "added_tokens");

	/* 2. pre-tokenizer regex */
	int use_gpt2 = 0;
	const char *pattern = find_regex(json_object_get(root, "pre_tokenizer"), &use_gpt2, err, errlen, &rc);
	if (!pattern)
		goto fail;
	int perr;
	PCRE2_SIZE eoff;
	t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &perr, &eoff, NULL);
	if (!t->re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(perr, msg, sizeof msg);
		rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: pre-tokenizer regex at offset %zu: %s", (size_t)eoff,
			  (char *)msg);
		goto fail;
	}
	t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;

	/* 3. vocabulary, then added tokens, into one blob indexed by id */
	int16_t map[324];
	byte_level_table(map);
	if ((rc = scan_vocab(json, vs, ve, map, &blob, &ents, &n_ents, err, errlen)))
		goto fail;
	uint32_t n_ids = 0;
	for (size_t i = 0; i < n_ents; i++)
		if (ents[i].id + 1 > n_ids)
			n_ids = ents[i].id + 1;
	size_t ai;
	json_t *a;
	json_array_foreach(added, ai, a) {
		json_t *idv = json_object_get(a, "id"), *c = json_object_get(a, "content");
		json_int_t id = json_integer_value(idv);
		if (!json_is_integer(idv) || id < 0 || id >= (1 << 24) || !json_is_string(c) || !json_string_length(c)) {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: added_tokens[%zu] needs an id and a content", ai);
			goto fail;
		}
		if ((uint32_t)id + 1 > n_ids)
			n_ids = (uint32_t)id + 1;
	}
	t->n_ids = n_ids;
	t->piece_off = plb_malloc(sizeof(uint32_t) * (n_ids ? n_ids : 1));
	t->piece_len = plb_calloc(n_ids ? n_ids : 1, sizeof(uint32_t));
	if (!t->piece_off || !t->piece_len) {
		rc = TOK_ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < n_ids; i++)
		t->piece_off[i] = UINT32_MAX;
	for (size_t i = 0; i < n_ents; i++) {
		t->piece_off[ents[i].id] = ents[i].off;
		t->piece_len[ents[i].id] = ents[i].len;
	}
	json_array_foreach(added, ai, a) {
		uint32_t id = (uint32_t)json_integer_value(json_object_get(a, "id"));
		json_t *c = json_object_get(a, "content");
		size_t off = blob.len;
		if (buf_append(&blob, json_string_value(c), json_string_length(c))) {
			rc = TOK_ENOMEM;
			goto fail;
		}
		t->piece_off[id] = (uint32_t)off;
		t->piece_len[id] = (uint32_t)(blob.len - off);
	}
	t->blob_len = blob.len;
	t->blob = buf_steal(&blob, NULL);
	if (!t->blob) {
		rc = TOK_ENOMEM;
		goto fail;
	}

	/* 4. vocab hash (model vocabulary only; added tokens are found by the scan) */
	t->vocab_mask = pow2_at_least(n_ents * 2) - 1;
	t->vocab_tab = plb_calloc(t->vocab_mask + 1, sizeof(struct vslot));
	if (!t->vocab_tab) {
		rc = TOK_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n_ents; i++)
		vocab_insert(t, ents[i].id);
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		long id = vocab_find(t, &c, 1);
		if (id < 0) {
			rc = fail(err, errlen, TOK_EINVAL, "tokenizer.json: byte 0x%02x has no token", b);
			goto fail;
		}
		t->byte_id[b] = (uint32_t)id;
	}

	/* 5. merges */
	if ((rc = scan_merges(t, json, gs, ge, map, err, errlen)))
		goto fail;

	/* 6. added tokens: whole-token matches before the regex */
	if ((rc = add_specials(t, added, err, errlen)))
		goto fail;
	t->bos = tok_id(t, "<|begin_of_text|>", 17);
	if (t->bos < 0)
		t->bos = tok_id(t, "<s>", 3);
	json_decref(root);
	buf_free(&small);
	free(ents);
	*out = t;
	return 0;

fail:
	buf_free(&blob);
	buf_free(&small);
	free(ents);
	json_decref(root);
	tok_free(t);
	if (rc == TOK_ENOMEM)
		fail(err, errlen, rc, "out of memory loading tokenizer.json");
	*out = NULL;
	return rc;
}

void tok_free(struct tok *t)
{
	if (!t)
		return;
	pcre2_code_free(t->re);
	free(t->blob);
	free(t->piece_off);
	free(t->piece_len);
	free(t->vocab_tab);
	free(t->pairs);
	free(t->specials);
	free(t->special_tab);
	free(t);
}

/* ---- encoding ----------------------------------------------------------- */

void tok_ids_free(struct tok_ids *ids)
{
	free(ids->v);
	ids->v = NULL;
	ids->n = ids->cap = 0;
}

int tok_ids_push(struct tok_ids *ids, uint32_t id)
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 64;
		uint32_t *v = plb_realloc(ids->v, cap * sizeof *v);
		if (!v)
			return TOK_ENOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

struct sym {
	uint32_t id;
	int32_t prev, next; /* -1 at the ends */
};

struct cand {
	uint32_t rank, pos, left, right;
};

/* Scratch for one encode call; owned by the caller's stack frame. */
struct scratch {
	struct sym *syms;
	struct cand *heap;
	size_t cap_syms, cap_heap, n_heap;
	pcre2_match_data *md;
};

static int cand_less(const struct cand *a, const struct cand *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(struct scratch *sc, struct cand c)
{
	if (sc->n_heap == sc->cap_heap) {
		size_t cap = sc->cap_heap ? sc->cap_heap * 2 : 64;
		struct cand *h = plb_realloc(sc->heap, cap * sizeof *h);
		if (!h)
			return TOK_ENOMEM;
		sc->heap = h;
		sc->cap_heap = cap;
	}
	size_t i = sc->n_heap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!cand_less(&c, &sc->heap[p]))
			break;
		sc->heap[i] = sc->heap[p];
		i = p;
	}
	sc->heap[i] = c;
	return 0;
}

static struct cand heap_pop(struct scratch *sc)
{
	struct cand top = sc->heap[0];
	struct cand last = sc->heap[--sc->n_heap];
	size_t i = 0, n = sc->n_heap;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct cand *best = &last;
		if (l < n && cand_less(&sc->heap[l], best)) {
			m = l;
			best = &sc->heap[l];
		}
		if (r < n && cand_less(&sc->heap[r], best))
			m = r;
		if (m == i)
			break;
		sc->heap[i] = sc->heap[m];
		i = m;
	}
	if (n)
		sc->heap[i] = last;
	return top;
}

static int push_pair(const struct tok *t, struct scratch *sc, int32_t pos)
{
	if (pos < 0)
		return 0;
	int32_t nx = sc->syms[pos].next;
	if (nx < 0)
		return 0;
	const struct pslot *pv = pair_find(t, sc->syms[pos].id, sc->syms[nx].id);
	if (!pv)
		return 0;
	struct cand c = {pv->rank, (uint32_t)pos, sc->syms[pos].id, sc->syms[nx].id};
	return heap_push(sc, c);
}

/* BPE over one pre-tokenized piece (raw bytes). */
static int bpe_piece(const struct tok *t, struct scratch *sc, const unsigned char *p, size_t n,
		     struct tok_ids *out)
{
	if (n > sc->cap_syms) {
		struct sym *s = plb_realloc(sc->syms, n * sizeof *s);
		if (!s)
			return TOK_ENOMEM;
		sc->syms = s;
		sc->cap_syms = n;
	}
	struct sym *sy = sc->syms;
	for (size_t i = 0; i < n; i++) {
		sy[i].id = t->byte_id[p[i]];
		sy[i].prev = (int32_t)i - 1;
		sy[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
	}
	sc->n_heap = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (push_pair(t, sc, (int32_t)i))
			return TOK_ENOMEM;
	while (sc->n_heap) {
		struct cand c = heap_pop(sc);
		struct sym *s = &sy[c.pos];
		if (s->id != c.left || s->next < 0 || sy[s->next].id != c.right)
			continue; /* stale: one side was merged away since */
		const struct pslot *pv = pair_find(t, c.left, c.right);
		int32_t nx = s->next;
		s->id = pv->merged;
		s->next = sy[nx].next;
		if (s->next >= 0)
			sy[s->next].prev = (int32_t)c.pos;
		sy[nx].id = UINT32_MAX; /* dead */
		sy[nx].next = -1;
		if (push_pair(t, sc, s->prev) || push_pair(t, sc, (int32_t)c.pos))
			return TOK_ENOMEM;
	}
	for (int32_t i = 0; i >= 0; i = sy[i].next)
		if (tok_ids_push(out, sy[i].id))
			return TOK_ENOMEM;
	return 0;
}

static int encode_piece(const struct tok *t, struct scratch *sc, const char *p, size_t n, struct tok_ids *out)
{
	if (n == 0)
		return 0;
	if (n == 1)
		return tok_ids_push(out, t->byte_id[(unsigned char)p[0]]);
	if (t->ignore_merges) {
		long id = vocab_find(t, p, n);
		if (id >= 0)
			return tok_ids_push(out, (uint32_t)id);
	}
	return bpe_piece(t, sc, (const unsigned char *)p, n, out);
}

/* Regex split of a segment that holds no added token. */
static int encode_segment(const struct tok *t, struct scratch *sc, const char *s, size_t n, struct tok_ids *out)
{
	size_t off = 0;
	while (off < n) {
		int r = t->jit ? pcre2_jit_match(t->re, (PCRE2_SPTR)s, n, off, 0, sc->md, NULL)
			       : pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, sc->md, NULL);
		if (r < 0) /* no more matches: the rest is one isolated piece */
			return encode_piece(t, sc, s + off, n - off, out);
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
		size_t a = ov[0], b = ov[1];
		if (a > off) {
			int rc = encode_piece(t, sc, s + off, a - off, out);
			if (rc)
				return rc;
		}
		if (b == a) { /* empty match: step one code point */
			size_t step = utf8_prefix_bytes(s + a, n - a, 1);
			int rc = encode_piece(t, sc, s + a, step, out);
			if (rc)
				return rc;
			off = a + step;
			continue;
		}
		int rc = encode_piece(t, sc, s + a, b - a, out);
		if (rc)
			return rc;
		off = b;
	}
	return 0;
}

/* Finds the leftmost-longest added token at or after from; returns its start
 * or n when none, with its index in *which. */
static size_t next_special(const struct tok *t, const char *s, size_t n, size_t from, long *which)
{
	for (size_t i = from; i < n; i++) {
		if (!t->special_first[(unsigned char)s[i]])
			continue;
		for (size_t k = 0; k < t->n_special_lens; k++) {
			size_t l = t->special_lens[k];
			if (l > n - i)
				continue;
			long w = special_find(t, s + i, l);
			if (w >= 0) {
				*which = w;
				return i;
			}
		}
	}
	return n;
}

int tok_encode(const struct tok *t, const char *s, size_t n, unsigned flags, struct tok_ids *out)
{
	int rc = 0;
	struct buf clean;
	buf_init(&clean, (size_t)-1 / 2);
	struct scratch sc = {0};
	if (utf8_valid_prefix(s, n) != n) {
		if (utf8_sanitize(s, n, &clean))
			return TOK_ENOMEM;
		s = clean.data;
		n = clean.len;
	}
	sc.md = pcre2_match_data_create(1, NULL);
	if (!sc.md) {
		rc = TOK_ENOMEM;
		goto out;
	}
	if ((flags & TOK_BOS) && t->bos >= 0 && (rc = tok_ids_push(out, (uint32_t)t->bos)))
		goto out;
	size_t off = 0;
	while (off < n) {
		long which = -1;
		size_t at = (flags & TOK_NO_SPECIAL) || !t->n_specials ? n : next_special(t, s, n, off, &which);
		if (at > off && (rc = encode_segment(t, &sc, s + off, at - off, out)))
			goto out;
		if (at >= n)
			break;
		if ((rc = tok_ids_push(out, t->specials[which].id)))
			goto out;
		off = at + t->specials[which].len;
	}
out:
	pcre2_match_data_free(sc.md);
	free(sc.syms);
	free(sc.heap);
	buf_free(&clean);
	return rc;
}

long tok_count(const struct tok *t, const char *s, size_t n, unsigned flags)
{
	struct tok_ids ids = {0};
	int rc = tok_encode(t, s, n, flags, &ids);
	long c = rc ? rc : (long)ids.n;
	tok_ids_free(&ids);
	return c;
}

int tok_decode(const struct tok *t, const uint32_t *ids, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		size_t l;
		const char *p = tok_piece(t, ids[i], &l);
		if (p && buf_append(out, p, l))
			return TOK_ENOMEM;
	}
	return 0;
}

const char *tok_piece(const struct tok *t, uint32_t id, size_t *len)
{
	if (id >= t->n_ids || t->piece_off[id] == UINT32_MAX)
		return NULL;
	*len = t->piece_len[id];
	return t->blob + t->piece_off[id];
}

long tok_id(const struct tok *t, const char *s, size_t n)
{
	long w = special_find(t, s, n);
	if (w >= 0)
		return t->specials[w].id;
	return vocab_find(t, s, n);
}

uint32_t tok_vocab_size(const struct tok *t)
{
	return t->n_ids;
}

long tok_bos_id(const struct tok *t)
{
	return t->bos;
}
