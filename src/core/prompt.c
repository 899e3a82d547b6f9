/* prompt.c: chat prompts to token ids with a cache of pieces; see prompt.h.
 *
 * The table is open addressing (linear probing, backward-shift deletion)
 * from the 64-bit piece hash to an entry; entries form an LRU list. */
#include "prompt.h"

#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "err.h"
#include "mem.h"

struct entry {
	uint64_t h;
	size_t len;
	uint32_t *ids;
	uint32_t n;
	int32_t prev, next; /* LRU: head = most recent */
};

struct prompt_cache {
	const struct tok *t;
	size_t max_tokens, tokens;
	struct entry *e;
	size_t n_e, cap_e;
	int32_t free_e; /* free entries, linked through next */
	int32_t head, tail;
	int32_t *slots; /* entry index + 1, 0 = empty */
	size_t mask;
	struct tok_ids tmp;
	struct buf join;
	struct prompt_cache_stats st;
};

struct prompt_cache *prompt_cache_new(const struct tok *t, size_t max_tokens)
{
	struct prompt_cache *pc = plb_calloc(1, sizeof *pc);
	pc->t = t;
	pc->max_tokens = max_tokens ? max_tokens : 1;
	pc->mask = 1023;
	pc->slots = plb_calloc(pc->mask + 1, sizeof *pc->slots);
	pc->free_e = pc->head = pc->tail = -1;
	buf_init(&pc->join, (size_t)1 << 30);
	return pc;
}

void prompt_cache_free(struct prompt_cache *pc)
{
	if (!pc)
		return;
	for (size_t i = 0; i < pc->n_e; i++)
		free(pc->e[i].ids);
	free(pc->e);
	free(pc->slots);
	tok_ids_free(&pc->tmp);
	buf_free(&pc->join);
	free(pc);
}

void prompt_cache_stats(const struct prompt_cache *pc, struct prompt_cache_stats *st)
{
	*st = pc->st;
	st->tokens = pc->tokens;
}

static void lru_unlink(struct prompt_cache *pc, int32_t i)
{
	struct entry *e = &pc->e[i];
	if (e->prev >= 0)
		pc->e[e->prev].next = e->next;
	else
		pc->head = e->next;
	if (e->next >= 0)
		pc->e[e->next].prev = e->prev;
	else
		pc->tail = e->prev;
	e->prev = e->next = -1;
}

static void lru_front(struct prompt_cache *pc, int32_t i)
{
	struct entry *e = &pc->e[i];
	e->prev = -1;
	e->next = pc->head;
	if (pc->head >= 0)
		pc->e[pc->head].prev = i;
	else
		pc->tail = i;
	pc->head = i;
}

static size_t home(const struct prompt_cache *pc, uint64_t h)
{
	return (size_t)(h ^ (h >> 31)) & pc->mask;
}

static int32_t find(const struct prompt_cache *pc, uint64_t h, size_t len)
{
	for (size_t s = home(pc, h);; s = (s + 1) & pc->mask) {
		int32_t v = pc->slots[s];
		if (!v)
			return -1;
		if (pc->e[v - 1].h == h && pc->e[v - 1].len == len)
			return v - 1;
	}
}

static void slot_del(struct prompt_cache *pc, int32_t idx)
{
	size_t i = home(pc, pc->e[idx].h);
	while (pc->slots[i] != idx + 1)
		i = (i + 1) & pc->mask;
	for (size_t j = i;;) {
		pc->slots[i] = 0;
		for (;;) {
			j = (j + 1) & pc->mask;
			if (!pc->slots[j])
				return;
			size_t k = home(pc, pc->e[pc->slots[j] - 1].h);
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		pc->slots[i] = pc->slots[j];
		i = j;
	}
}

static void slot_put(struct prompt_cache *pc, int32_t idx)
{
	size_t s = home(pc, pc->e[idx].h);
	while (pc->slots[s])
		s = (s + 1) & pc->mask;
	pc->slots[s] = idx + 1;
}

static void evict_one(struct prompt_cache *pc)
{
	int32_t i = pc->tail;
	lru_unlink(pc, i);
	slot_del(pc, i);
	pc->tokens -= pc->e[i].n;
	free(pc->e[i].ids);
	pc->e[i].ids = NULL;
	pc->e[i].next = pc->free_e;
	pc->free_e = i;
	pc->st.entries--;
	pc->st.evictions++;
}

static void grow_slots(struct prompt_cache *pc)
{
	size_t cap = (pc->mask + 1) * 2;
	free(pc->slots);
	pc->slots = plb_calloc(cap, sizeof *pc->slots);
	pc->mask = cap - 1;
	for (int32_t i = pc->head; i >= 0; i = pc->e[i].next)
		slot_put(pc, i);
}

/* The ids of text piece a + b, appended to out. */
static int text_ids(struct prompt_cache *pc, const char *a, size_t na, const char *b, size_t nb, struct tok_ids *out)
{
	XXH3_state_t s;
	XXH3_64bits_reset(&s);
	XXH3_64bits_update(&s, a, na);
	if (nb)
		XXH3_64bits_update(&s, b, nb);
	uint64_t h = XXH3_64bits_digest(&s);
	size_t len = na + nb;
	int32_t i = find(pc, h, len);
	if (i < 0) {
		pc->st.misses++;
		const char *txt = a;
		if (nb) {
			buf_reset(&pc->join);
			if (buf_append(&pc->join, a, na) || buf_append(&pc->join, b, nb))
				return PLB_ETOOBIG;
			txt = pc->join.data;
		}
		pc->tmp.n = 0;
		if (tok_encode(pc->t, txt, len, 0, &pc->tmp))
			return PLB_ENOMEM;
		while (pc->head >= 0 && pc->tokens + pc->tmp.n > pc->max_tokens)
			evict_one(pc);
		if (pc->free_e >= 0) {
			i = pc->free_e;
			pc->free_e = pc->e[i].next;
		} else {
			if (pc->n_e == pc->cap_e) {
				pc->cap_e = pc->cap_e ? pc->cap_e * 2 : 256;
				pc->e = plb_realloc(pc->e, pc->cap_e * sizeof *pc->e);
			}
			i = (int32_t)pc->n_e++;
		}
		struct entry *e = &pc->e[i];
		e->h = h;
		e->len = len;
		e->n = (uint32_t)pc->tmp.n;
		e->ids = plb_malloc((pc->tmp.n ? pc->tmp.n : 1) * sizeof *e->ids);
		memcpy(e->ids, pc->tmp.v, pc->tmp.n * sizeof *e->ids);
		pc->tokens += e->n;
		pc->st.entries++;
		if ((pc->st.entries + 1) * 2 > pc->mask + 1)
			grow_slots(pc);
		slot_put(pc, i);
		lru_front(pc, i);
	} else {
		pc->st.hits++;
		if (pc->head != i) {
			lru_unlink(pc, i);
			lru_front(pc, i);
		}
	}
	const struct entry *e = &pc->e[i];
	for (uint32_t k = 0; k < e->n; k++)
		if (tok_ids_push(out, e->ids[k]))
			return PLB_ENOMEM;
	return 0;
}

struct walk {
	struct prompt_cache *pc;
	struct tok_ids *out;
};

static int piece(void *ctx, int special, const char *a, size_t na, const char *b, size_t nb)
{
	struct walk *w = ctx;
	if (!special)
		return text_ids(w->pc, a, na, b, nb, w->out);
	long id = tok_id(w->pc->t, a, na);
	if (id < 0)
		return PLB_EINVAL;
	return tok_ids_push(w->out, (uint32_t)id) ? PLB_ENOMEM : 0;
}

int prompt_chat(struct prompt_cache *pc, enum chat_template tpl, const struct chat_msg *msgs, size_t n,
		int add_generation_prompt, struct tok_ids *out)
{
	struct walk w = {pc, out};
	return chat_pieces(tpl, msgs, n, add_generation_prompt, piece, &w);
}
