/* kvevents.c: vLLM KV events <-> msgpack; see kvevents.h for the format.
 *
 * The decoder is a cursor over the bytes (no tree): each reader checks the
 * type byte and that the bytes it needs are there, and says what it expected
 * and what it found, at which offset. Arrays of hashes and tokens go into the
 * decoder's scratch as offsets while parsing (the scratch may move as it
 * grows) and become pointers at the end. */
#include "kvevents.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"

#define MAX_DEPTH 32

/* ---- encoding -------------------------------------------------------------- */

static int put(void *data, const char *p, size_t n)
{
	return buf_append(data, p, n) ? -1 : 0;
}

static int pk_str(msgpack_packer *pk, const char *s)
{
	return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int pk_kstr(msgpack_packer *pk, struct kv_str s)
{
	return s.p ? msgpack_pack_str_with_body(pk, s.p, s.n) : msgpack_pack_nil(pk);
}

static int pk_hashes(msgpack_packer *pk, const struct kv_event *e)
{
	int rc = msgpack_pack_array(pk, e->n_hashes);
	for (size_t i = 0; i < e->n_hashes && !rc; i++)
		rc = msgpack_pack_uint64(pk, e->hashes[i]);
	return rc;
}

static int pk_opt_int(msgpack_packer *pk, int has, int64_t v)
{
	return has ? msgpack_pack_int64(pk, v) : msgpack_pack_nil(pk);
}

/* One event. Field order is the struct's declaration order (msgspec writes
 * fields in that order, the tag first); a map leaves out fields whose value is
 * their default (None): extra_keys is always a list (one nil per block, what
 * vLLM sends for plain text blocks), so it stays. */
static int pk_event(msgpack_packer *pk, const struct kv_event *e, enum kvevents_enc enc)
{
	int map = enc == KVEVENTS_MAP, rc = 0;
#define KEY(k) (map ? pk_str(pk, k) : 0)
	switch (e->type) {
	case KV_BLOCK_STORED: {
		size_t n = 11 - (map && e->group_idx < 0) - (map && !e->spec_kind.p);
		rc = map ? msgpack_pack_map(pk, n) : msgpack_pack_array(pk, 12);
		rc = rc || KEY("type") || pk_str(pk, "BlockStored");
		rc = rc || KEY("block_hashes") || pk_hashes(pk, e);
		rc = rc || KEY("parent_block_hash") || (e->has_parent ? msgpack_pack_uint64(pk, e->parent) : msgpack_pack_nil(pk));
		rc = rc || KEY("token_ids") || msgpack_pack_array(pk, e->n_tokens);
		for (size_t i = 0; i < e->n_tokens && !rc; i++)
			rc = msgpack_pack_uint32(pk, e->tokens[i]);
		rc = rc || KEY("block_size") || msgpack_pack_uint32(pk, e->block_size);
		rc = rc || KEY("lora_id") || pk_opt_int(pk, e->has_lora_id, e->lora_id);
		rc = rc || KEY("medium") || pk_kstr(pk, e->medium);
		rc = rc || KEY("lora_name") || pk_kstr(pk, e->lora_name);
		rc = rc || KEY("extra_keys") || msgpack_pack_array(pk, e->n_hashes);
		for (size_t i = 0; i < e->n_hashes && !rc; i++)
			rc = msgpack_pack_nil(pk);
		if (!map || e->group_idx >= 0)
			rc = rc || KEY("group_idx") || pk_opt_int(pk, e->group_idx >= 0, e->group_idx);
		if (!map || e->spec_kind.p)
			rc = rc || KEY("kv_cache_spec_kind") || pk_kstr(pk, e->spec_kind);
		if (!map) /* kv_cache_spec_sliding_window: None */
			rc = rc || msgpack_pack_nil(pk);
		break;
	}
	case KV_BLOCK_REMOVED:
		rc = map ? msgpack_pack_map(pk, 3 + (e->group_idx >= 0)) : msgpack_pack_array(pk, 4);
		rc = rc || KEY("type") || pk_str(pk, "BlockRemoved");
		rc = rc || KEY("block_hashes") || pk_hashes(pk, e);
		rc = rc || KEY("medium") || pk_kstr(pk, e->medium);
		if (!map || e->group_idx >= 0)
			rc = rc || KEY("group_idx") || pk_opt_int(pk, e->group_idx >= 0, e->group_idx);
		break;
	case KV_ALL_CLEARED:
		rc = map ? msgpack_pack_map(pk, 1) : msgpack_pack_array(pk, 1);
		rc = rc || KEY("type") || pk_str(pk, "AllBlocksCleared");
		break;
	default:
		return -1;
	}
#undef KEY
	return rc ? -1 : 0;
}

int kvevents_encode(struct buf *out, const struct kv_batch *b, enum kvevents_enc enc)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, put);
	int rc = msgpack_pack_array(&pk, 3) || msgpack_pack_double(&pk, b->ts) || msgpack_pack_array(&pk, b->n_events);
	for (size_t i = 0; i < b->n_events && !rc; i++)
		rc = pk_event(&pk, &b->events[i], enc);
	rc = rc || pk_opt_int(&pk, b->has_dp_rank, b->dp_rank);
	return rc ? -1 : 0;
}

/* ---- the cursor -------------------------------------------------------------- */

struct rd {
	const uint8_t *start, *p, *end;
	char *err;
	size_t errlen;
	const char *what; /* the field being read, for messages */
};

static int fail(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct rd *r, const char *fmt, ...)
{
	if (r->err && r->errlen && !r->err[0]) {
		int k = snprintf(r->err, r->errlen, "byte %zu: %s: ", (size_t)(r->p - r->start), r->what ? r->what : "batch");
		if (k >= 0 && (size_t)k < r->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(r->err + k, r->errlen - (size_t)k, fmt, ap);
			va_end(ap);
		}
	}
	return -1;
}

static const char *tname(int c)
{
	if (c < 0)
		return "the end of the payload";
	if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
		return "an integer";
	if (c <= 0x8f || c == 0xde || c == 0xdf)
		return "a map";
	if (c <= 0x9f || c == 0xdc || c == 0xdd)
		return "an array";
	if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
		return "a string";
	switch (c) {
	case 0xc0: return "nil";
	case 0xc1: return "the never-used byte 0xc1";
	case 0xc2: case 0xc3: return "a boolean";
	case 0xc4: case 0xc5: case 0xc6: return "bytes";
	case 0xca: case 0xcb: return "a float";
	default: return "an extension";
	}
}

static int peek(const struct rd *r)
{
	return r->p < r->end ? *r->p : -1;
}

static int need(struct rd *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return fail(r, "truncated (%zu more bytes needed, %zu left)", n, (size_t)(r->end - r->p));
	return 0;
}

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Reads a big-endian length of n bytes after the type byte. */
static int len_after(struct rd *r, int n, uint64_t *v)
{
	if (need(r, 1 + (size_t)n))
		return -1;
	*v = be(r->p + 1, n);
	r->p += 1 + n;
	return 0;
}

static int rd_nil(struct rd *r)
{
	if (peek(r) == 0xc0) {
		r->p++;
		return 1;
	}
	return 0;
}

/* A container header; its count must fit in the bytes left (each element
 * takes at least `min` bytes), so no count can make us allocate more than the
 * payload justifies. */
static int rd_container(struct rd *r, int want_map, size_t *n)
{
	int c = peek(r);
	uint64_t v;
	if (!want_map && c >= 0x90 && c <= 0x9f) {
		v = (uint64_t)(c & 0x0f);
		r->p++;
	} else if (want_map && c >= 0x80 && c <= 0x8f) {
		v = (uint64_t)(c & 0x0f);
		r->p++;
	} else if (c == (want_map ? 0xde : 0xdc)) {
		if (len_after(r, 2, &v))
			return -1;
	} else if (c == (want_map ? 0xdf : 0xdd)) {
		if (len_after(r, 4, &v))
			return -1;
	} else {
		return fail(r, "expected %s, got %s", want_map ? "a map" : "an array", tname(c));
	}
	uint64_t min = want_map ? 2 : 1;
	if (v > (uint64_t)(r->end - r->p) / min)
		return fail(r, "%s of %llu entries in %zu bytes", want_map ? "map" : "array", (unsigned long long)v,
			    (size_t)(r->end - r->p));
	*n = (size_t)v;
	return 0;
}

/* Any integer as (negative?, magnitude-or-value). */
static int rd_integer(struct rd *r, int64_t *sv, uint64_t *uv, int *neg)
{
	int c = peek(r);
	uint64_t v;
	*neg = 0;
	if (c >= 0 && c <= 0x7f) {
		r->p++;
		*uv = (uint64_t)c;
		return 0;
	}
	if (c >= 0xe0) {
		r->p++;
		*neg = 1;
		*sv = (int64_t)(int8_t)c;
		return 0;
	}
	if (c >= 0xcc && c <= 0xcf) {
		if (len_after(r, 1 << (c - 0xcc), &v))
			return -1;
		*uv = v;
		return 0;
	}
	if (c >= 0xd0 && c <= 0xd3) {
		int n = 1 << (c - 0xd0);
		if (len_after(r, n, &v))
			return -1;
		int64_t s = n == 8 ? (int64_t)v : (int64_t)(v << (64 - 8 * n)) >> (64 - 8 * n);
		if (s >= 0) {
			*uv = (uint64_t)s;
		} else {
			*neg = 1;
			*sv = s;
		}
		return 0;
	}
	return fail(r, "expected an integer, got %s", tname(c));
}

static int rd_uint(struct rd *r, uint64_t max, uint64_t *out)
{
	int64_t s;
	uint64_t u;
	int neg;
	const uint8_t *at = r->p;
	if (rd_integer(r, &s, &u, &neg))
		return -1;
	if (neg || u > max) {
		r->p = at;
		return neg ? fail(r, "negative (%lld)", (long long)s)
			   : fail(r, "%llu is out of range (at most %llu)", (unsigned long long)u, (unsigned long long)max);
	}
	*out = u;
	return 0;
}

static int rd_int(struct rd *r, int64_t *out)
{
	int64_t s;
	uint64_t u;
	int neg;
	const uint8_t *at = r->p;
	if (rd_integer(r, &s, &u, &neg))
		return -1;
	if (!neg && u > (uint64_t)INT64_MAX) {
		r->p = at;
		return fail(r, "%llu is out of range", (unsigned long long)u);
	}
	*out = neg ? s : (int64_t)u;
	return 0;
}

static int rd_str(struct rd *r, struct kv_str *s)
{
	int c = peek(r);
	uint64_t v;
	if (c >= 0xa0 && c <= 0xbf) {
		v = (uint64_t)(c & 0x1f);
		r->p++;
	} else if (c >= 0xd9 && c <= 0xdb) {
		if (len_after(r, 1 << (c - 0xd9), &v))
			return -1;
	} else {
		return fail(r, "expected a string, got %s", tname(c));
	}
	if (v > (uint64_t)(r->end - r->p))
		return fail(r, "string of %llu bytes, %zu left", (unsigned long long)v, (size_t)(r->end - r->p));
	s->p = (const char *)r->p;
	s->n = (size_t)v;
	r->p += v;
	return 0;
}

static int rd_opt_str(struct rd *r, struct kv_str *s)
{
	*s = (struct kv_str){0};
	return rd_nil(r) ? 0 : rd_str(r, s);
}

/* A block hash: an int (vLLM's default; negative ones are int64 seen as
 * unsigned, as Dynamo reads them) or bytes (the last 8, big-endian). */
static int rd_hash(struct rd *r, uint64_t *h)
{
	int c = peek(r);
	if (c >= 0xc4 && c <= 0xc6) {
		uint64_t v;
		if (len_after(r, 1 << (c - 0xc4), &v))
			return -1;
		if (v == 0 || v > 64)
			return fail(r, "a hash of %llu bytes (1 to 64 expected)", (unsigned long long)v);
		if (v > (uint64_t)(r->end - r->p))
			return fail(r, "truncated hash");
		size_t k = v < 8 ? (size_t)v : 8;
		*h = be(r->p + v - k, (int)k);
		r->p += v;
		return 0;
	}
	int64_t s;
	uint64_t u;
	int neg;
	if (rd_integer(r, &s, &u, &neg))
		return -1;
	*h = neg ? (uint64_t)s : u;
	return 0;
}

static int rd_double(struct rd *r, double *d)
{
	int c = peek(r);
	uint64_t v;
	if (c == 0xca) {
		if (len_after(r, 4, &v))
			return -1;
		uint32_t w = (uint32_t)v;
		float f;
		memcpy(&f, &w, 4);
		*d = f;
		return 0;
	}
	if (c == 0xcb) {
		if (len_after(r, 8, &v))
			return -1;
		memcpy(d, &v, 8);
		return 0;
	}
	int64_t s;
	uint64_t u;
	int neg;
	if (rd_integer(r, &s, &u, &neg))
		return fail(r, "expected a number");
	*d = neg ? (double)s : (double)u;
	return 0;
}

/* Skips one well-formed value of any type. */
static int rd_skip(struct rd *r, int depth)
{
	int c = peek(r);
	uint64_t v;
	size_t n;
	if (depth > MAX_DEPTH)
		return fail(r, "nested deeper than %d", MAX_DEPTH);
	if (c < 0)
		return need(r, 1);
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
		r->p++;
		return 0;
	}
	if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf) {
		if (rd_container(r, 1, &n))
			return -1;
		for (size_t i = 0; i < 2 * n; i++)
			if (rd_skip(r, depth + 1))
				return -1;
		return 0;
	}
	if ((c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd) {
		if (rd_container(r, 0, &n))
			return -1;
		for (size_t i = 0; i < n; i++)
			if (rd_skip(r, depth + 1))
				return -1;
		return 0;
	}
	size_t len;
	if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)) {
		struct kv_str s;
		return rd_str(r, &s);
	}
	if (c >= 0xcc && c <= 0xd3) {
		int64_t s;
		uint64_t u;
		int neg;
		return rd_integer(r, &s, &u, &neg);
	}
	switch (c) {
	case 0xc4: case 0xc5: case 0xc6:
		if (len_after(r, 1 << (c - 0xc4), &v))
			return -1;
		len = (size_t)v;
		break;
	case 0xc7: case 0xc8: case 0xc9:
		if (len_after(r, 1 << (c - 0xc7), &v))
			return -1;
		len = (size_t)v + 1; /* the type byte */
		if (v > (uint64_t)(r->end - r->p))
			return fail(r, "truncated extension");
		break;
	case 0xca: len = 4; r->p++; break;
	case 0xcb: len = 8; r->p++; break;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		len = 1 + ((size_t)1 << (c - 0xd4));
		r->p++;
		break;
	default:
		return fail(r, "invalid byte 0x%02x", c);
	}
	if (need(r, len))
		return -1;
	r->p += len;
	return 0;
}

/* ---- decoding ---------------------------------------------------------------- */

/* Scratch while parsing: positions instead of pointers. */
struct pev {
	struct kv_event e;
	size_t h_off, t_off;
};

struct dctx {
	struct kvevents_dec *d;
	size_t n_h, n_t;
	int saw_map;
};

static void grow(void **v, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	*v = plb_realloc(*v, c * size);
	*cap = c;
}

static int rd_hashes(struct rd *r, struct dctx *x, struct pev *pe)
{
	size_t n;
	if (rd_container(r, 0, &n))
		return -1;
	grow((void **)&x->d->h, &x->d->cap_h, x->n_h + n, sizeof *x->d->h);
	pe->h_off = x->n_h;
	for (size_t i = 0; i < n; i++)
		if (rd_hash(r, &x->d->h[x->n_h + i]))
			return -1;
	x->n_h += n;
	pe->e.n_hashes = n;
	return 0;
}

static int rd_tokens(struct rd *r, struct dctx *x, struct pev *pe)
{
	size_t n;
	if (rd_container(r, 0, &n))
		return -1;
	grow((void **)&x->d->t, &x->d->cap_t, x->n_t + n, sizeof *x->d->t);
	pe->t_off = x->n_t;
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		if (rd_uint(r, UINT32_MAX, &v))
			return -1;
		x->d->t[x->n_t + i] = (uint32_t)v;
	}
	x->n_t += n;
	pe->e.n_tokens = n;
	return 0;
}

enum field {
	F_HASHES, F_PARENT, F_TOKENS, F_BSIZE, F_LORA_ID, F_MEDIUM, F_LORA_NAME, F_EXTRA, F_GROUP, F_KIND, F_WINDOW,
	F_OTHER,
};

/* Positions of fields in the array encoding, per event type (after the tag). */
static const enum field stored_pos[] = {F_HASHES, F_PARENT, F_TOKENS, F_BSIZE, F_LORA_ID, F_MEDIUM,
					F_LORA_NAME, F_EXTRA, F_GROUP, F_KIND, F_WINDOW};
static const enum field removed_pos[] = {F_HASHES, F_MEDIUM, F_GROUP};

static const char *const field_names[] = {
	"block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium",
	"lora_name", "extra_keys", "group_idx", "kv_cache_spec_kind", "kv_cache_spec_sliding_window",
};

static enum field field_of(struct kv_str k)
{
	for (int f = 0; f < F_OTHER; f++)
		if (strlen(field_names[f]) == k.n && !memcmp(field_names[f], k.p, k.n))
			return (enum field)f;
	return F_OTHER;
}

static int rd_field(struct rd *r, struct dctx *x, struct pev *pe, enum field f)
{
	struct kv_event *e = &pe->e;
	uint64_t u;
	int64_t s;
	r->what = f < F_OTHER ? field_names[f] : "unknown field";
	switch (f) {
	case F_HASHES: return rd_hashes(r, x, pe);
	case F_PARENT:
		e->has_parent = !rd_nil(r);
		return e->has_parent ? rd_hash(r, &e->parent) : 0;
	case F_TOKENS: return rd_tokens(r, x, pe);
	case F_BSIZE:
		if (rd_uint(r, 1 << 20, &u))
			return -1;
		if (!u)
			return fail(r, "must be at least 1");
		e->block_size = (uint32_t)u;
		return 0;
	case F_LORA_ID:
		e->has_lora_id = !rd_nil(r);
		return e->has_lora_id ? rd_int(r, &e->lora_id) : 0;
	case F_MEDIUM: return rd_opt_str(r, &e->medium);
	case F_LORA_NAME: return rd_opt_str(r, &e->lora_name);
	case F_KIND: return rd_opt_str(r, &e->spec_kind);
	case F_GROUP:
		if (rd_nil(r))
			return 0;
		if (rd_uint(r, INT32_MAX, &u))
			return -1;
		e->group_idx = (int64_t)u;
		return 0;
	case F_WINDOW:
		return rd_nil(r) ? 0 : rd_int(r, &s);
	case F_EXTRA:
	case F_OTHER:
	default:
		return rd_skip(r, 2);
	}
}

static int type_of(struct rd *r, struct kv_str tag, enum kv_event_type *t)
{
	static const char *const names[] = {NULL, "BlockStored", "BlockRemoved", "AllBlocksCleared"};
	for (int i = 1; i <= 3; i++)
		if (strlen(names[i]) == tag.n && !memcmp(names[i], tag.p, tag.n)) {
			*t = (enum kv_event_type)i;
			return 0;
		}
	return fail(r, "unknown event type '%.*s'", (int)(tag.n > 40 ? 40 : tag.n), tag.p);
}

/* Required fields per type, as a bit set of enum field. */
static unsigned required(enum kv_event_type t)
{
	return t == KV_BLOCK_STORED ? (1u << F_HASHES | 1u << F_TOKENS | 1u << F_BSIZE)
	       : t == KV_BLOCK_REMOVED ? 1u << F_HASHES
				       : 0;
}

static int check_event(struct rd *r, struct pev *pe, unsigned seen)
{
	unsigned miss = required(pe->e.type) & ~seen;
	if (miss) {
		for (int f = 0; f < F_OTHER; f++)
			if (miss & (1u << f))
				return fail(r, "missing %s", field_names[f]);
	}
	if (pe->e.type == KV_BLOCK_STORED && pe->e.n_tokens != pe->e.n_hashes * pe->e.block_size)
		return fail(r, "%zu token ids for %zu blocks of %u", pe->e.n_tokens, pe->e.n_hashes, pe->e.block_size);
	return 0;
}

static int rd_event(struct rd *r, struct dctx *x, struct pev *pe)
{
	size_t n;
	memset(pe, 0, sizeof *pe);
	pe->e.group_idx = -1;
	int c = peek(r);
	unsigned seen = 0;
	if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf) { /* a map tagged by "type" */
		x->saw_map = 1;
		if (rd_container(r, 1, &n))
			return -1;
		const uint8_t *body = r->p;
		int have_type = 0;
		/* the tag first (msgspec writes it first, but a map has no order) */
		for (size_t i = 0; i < n; i++) {
			struct kv_str k;
			r->what = "event key";
			if (rd_str(r, &k))
				return -1;
			if (k.n == 4 && !memcmp(k.p, "type", 4)) {
				struct kv_str tag;
				r->what = "type";
				if (have_type)
					return fail(r, "duplicate key 'type'");
				if (rd_str(r, &tag) || type_of(r, tag, &pe->e.type))
					return -1;
				have_type = 1;
			} else if (rd_skip(r, 2)) {
				return -1;
			}
		}
		if (!have_type)
			return fail(r, "an event map without \"type\"");
		const uint8_t *after = r->p;
		r->p = body;
		for (size_t i = 0; i < n; i++) {
			struct kv_str k;
			if (rd_str(r, &k))
				return -1;
			enum field f = field_of(k);
			if (k.n == 4 && !memcmp(k.p, "type", 4)) {
				rd_skip(r, 2);
				continue;
			}
			if (f != F_OTHER && (seen & (1u << f))) {
				r->what = field_names[f];
				return fail(r, "duplicate key");
			}
			if (f != F_OTHER)
				seen |= 1u << f;
			if (rd_field(r, x, pe, f))
				return -1;
		}
		r->p = after;
		r->what = "event";
		return check_event(r, pe, seen);
	}
	if (rd_container(r, 0, &n))
		return -1;
	struct kv_str tag;
	r->what = "event tag";
	if (n < 1)
		return fail(r, "an empty event array (no tag)");
	if (rd_str(r, &tag) || type_of(r, tag, &pe->e.type))
		return -1;
	const enum field *pos = pe->e.type == KV_BLOCK_STORED ? stored_pos : removed_pos;
	size_t npos = pe->e.type == KV_BLOCK_STORED ? sizeof stored_pos / sizeof *stored_pos
		      : pe->e.type == KV_BLOCK_REMOVED ? sizeof removed_pos / sizeof *removed_pos
						       : 0;
	for (size_t i = 1; i < n; i++) {
		enum field f = i - 1 < npos ? pos[i - 1] : F_OTHER;
		if (f != F_OTHER)
			seen |= 1u << f;
		if (rd_field(r, x, pe, f))
			return -1;
	}
	r->what = "event";
	return check_event(r, pe, seen | (pe->e.type == KV_BLOCK_STORED ? 1u << F_PARENT : 0));
}

static int rd_events(struct rd *r, struct dctx *x, size_t *n_ev)
{
	size_t n;
	r->what = "events";
	if (rd_container(r, 0, &n))
		return -1;
	grow(&x->d->pev, &x->d->cap_pev, n ? n : 1, sizeof(struct pev));
	grow((void **)&x->d->ev, &x->d->cap_ev, n ? n : 1, sizeof(struct kv_event));
	struct pev *pv = x->d->pev;
	for (size_t i = 0; i < n; i++)
		if (rd_event(r, x, &pv[i]))
			return -1;
	*n_ev = n;
	return 0;
}

void kvevents_dec_init(struct kvevents_dec *d)
{
	memset(d, 0, sizeof *d);
}

void kvevents_dec_free(struct kvevents_dec *d)
{
	free(d->ev);
	free(d->pev);
	free(d->h);
	free(d->t);
	memset(d, 0, sizeof *d);
}

int kvevents_decode(struct kvevents_dec *d, const void *p, size_t n, struct kv_batch *out, int *saw_map, char *err,
		    size_t errlen)
{
	struct rd r = {p, p, (const uint8_t *)p + n, err, errlen, NULL};
	struct dctx x = {d, 0, 0, 0};
	size_t n_ev = 0, cnt;
	if (err && errlen)
		err[0] = '\0';
	memset(out, 0, sizeof *out);
	int c = peek(&r);
	if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf) { /* the batch as a map */
		if (rd_container(&r, 1, &cnt))
			return -1;
		int have_ts = 0, have_ev = 0;
		for (size_t i = 0; i < cnt; i++) {
			struct kv_str k;
			r.what = "batch key";
			if (rd_str(&r, &k))
				return -1;
			r.what = "ts";
			if (k.n == 2 && !memcmp(k.p, "ts", 2)) {
				if (have_ts++ || rd_double(&r, &out->ts))
					return have_ts > 1 ? fail(&r, "duplicate key") : -1;
			} else if (k.n == 6 && !memcmp(k.p, "events", 6)) {
				if (have_ev++)
					return fail(&r, "duplicate key 'events'");
				if (rd_events(&r, &x, &n_ev))
					return -1;
			} else if (k.n == 18 && !memcmp(k.p, "data_parallel_rank", 18)) {
				r.what = "data_parallel_rank";
				out->has_dp_rank = !rd_nil(&r);
				if (out->has_dp_rank && rd_int(&r, &out->dp_rank))
					return -1;
			} else if (rd_skip(&r, 1)) {
				return -1;
			}
		}
		r.what = "batch";
		if (!have_ts || !have_ev)
			return fail(&r, "missing %s", have_ts ? "events" : "ts");
	} else {
		if (rd_container(&r, 0, &cnt))
			return -1;
		r.what = "batch";
		if (cnt < 2)
			return fail(&r, "a batch of %zu fields (ts and events needed)", cnt);
		r.what = "ts";
		if (rd_double(&r, &out->ts) || rd_events(&r, &x, &n_ev))
			return -1;
		if (cnt >= 3) {
			r.what = "data_parallel_rank";
			out->has_dp_rank = !rd_nil(&r);
			if (out->has_dp_rank && rd_int(&r, &out->dp_rank))
				return -1;
		}
		for (size_t i = 3; i < cnt; i++)
			if (rd_skip(&r, 1))
				return -1;
	}
	r.what = "batch";
	if (r.p != r.end)
		return fail(&r, "%zu bytes after the batch", (size_t)(r.end - r.p));
	/* offsets -> pointers, now that the scratch no longer moves */
	const struct pev *pv = d->pev;
	for (size_t i = 0; i < n_ev; i++) {
		d->ev[i] = pv[i].e;
		d->ev[i].hashes = pv[i].e.n_hashes ? d->h + pv[i].h_off : NULL;
		d->ev[i].tokens = pv[i].e.n_tokens ? d->t + pv[i].t_off : NULL;
	}
	out->events = d->ev;
	out->n_events = n_ev;
	if (saw_map)
		*saw_map = x.saw_map;
	return 0;
}

/* ---- sequence frames ----------------------------------------------------------- */

void kvevents_put_seq(uint8_t out[8], uint64_t seq)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)seq;
		seq >>= 8;
	}
}

int kvevents_get_seq(const void *p, size_t n, uint64_t *seq)
{
	if (n != 8)
		return -1;
	*seq = be(p, 8);
	return 0;
}

/* ---- --kv-events-config ------------------------------------------------------------ */

static int cfg_str(json_t *v, const char *k, char *dst, size_t n, int nullable, char *err, size_t errlen)
{
	if (nullable && json_is_null(v)) {
		dst[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) >= n) {
		snprintf(err, errlen, "kv-events-config: %s: expected a string%s (under %zu bytes)", k,
			 nullable ? " or null" : "", n);
		return -1;
	}
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int kvevents_parse_config(const char *json, struct kvevents_cfg *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	snprintf(c->publisher, sizeof c->publisher, "null");
	snprintf(c->endpoint, sizeof c->endpoint, "tcp://*:5557");
	c->buffer_steps = 10000;
	c->hwm = 100000;
	c->max_queue_size = 100000;
	json_error_t je;
	json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		snprintf(err, errlen, "kv-events-config: %s", o ? "expected a JSON object" : je.text);
		json_decref(o);
		return -1;
	}
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach(o, k, v)
	{
		if (!strcmp(k, "enable_kv_cache_events")) {
			if (!json_is_boolean(v)) {
				snprintf(err, errlen, "kv-events-config: %s: expected true or false", k);
				rc = -1;
			}
			c->enable = json_is_true(v);
		} else if (!strcmp(k, "publisher")) {
			rc = cfg_str(v, k, c->publisher, sizeof c->publisher, 0, err, errlen);
			if (!rc && strcmp(c->publisher, "zmq") && strcmp(c->publisher, "null")) {
				snprintf(err, errlen, "kv-events-config: publisher: 'zmq' or 'null', not '%s'", c->publisher);
				rc = -1;
			}
		} else if (!strcmp(k, "endpoint")) {
			rc = cfg_str(v, k, c->endpoint, sizeof c->endpoint, 0, err, errlen);
		} else if (!strcmp(k, "replay_endpoint")) {
			rc = cfg_str(v, k, c->replay, sizeof c->replay, 1, err, errlen);
		} else if (!strcmp(k, "topic")) {
			rc = cfg_str(v, k, c->topic, sizeof c->topic, 0, err, errlen);
		} else if (!strcmp(k, "buffer_steps") || !strcmp(k, "hwm") || !strcmp(k, "max_queue_size")) {
			long *dst = !strcmp(k, "buffer_steps") ? &c->buffer_steps : !strcmp(k, "hwm") ? &c->hwm : &c->max_queue_size;
			if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000000) {
				snprintf(err, errlen, "kv-events-config: %s: expected an integer from 1 to 100000000", k);
				rc = -1;
			} else {
				*dst = (long)json_integer_value(v);
			}
		} else {
			snprintf(err, errlen,
				 "kv-events-config: unknown key '%s' (enable_kv_cache_events, publisher, endpoint, "
				 "replay_endpoint, buffer_steps, hwm, max_queue_size, topic)",
				 k);
			rc = -1;
		}
		if (rc)
			break;
	}
	json_decref(o);
	return rc;
}

int kvevents_offset_endpoint(const char *ep, int rank, char *out, size_t n)
{
	if (rank == 0 || !ep[0]) {
		return snprintf(out, n, "%s", ep) < (int)n ? 0 : -1;
	}
	if (strstr(ep, "inproc"))
		return snprintf(out, n, "%s_dp%d", ep, rank) < (int)n ? 0 : -1;
	const char *colon = strrchr(ep, ':');
	if (!strstr(ep, "tcp") || !colon)
		return -1;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end || port < 0 || port + rank > 65535)
		return -1;
	return snprintf(out, n, "%.*s:%ld", (int)(colon - ep), ep, port + rank) < (int)n ? 0 : -1;
}
