/* test_kvevents.c: vLLM's KV event payloads (src/proto/kvevents.c).
 *
 * The golden payloads below are written by hand from two sources, not from our
 * encoder: the field order and options of vLLM's structs (vllm@b4e69e0a for
 * the array form, vllm@0181ea31 for the tagged maps; the batch stays the
 * positional [ts, events, data_parallel_rank], as captured from vLLM 0.26 in
 * volcano-sh/kthena#1535) and the msgpack spec's smallest encodings, which is
 * what msgspec writes: positive fixint / uint8 0xcc / uint16 0xcd / uint32
 * 0xce / uint64 0xcf, negative fixint, fixstr 0xa0|len, str8 0xd9, fixarray
 * 0x90|n, fixmap 0x80|n, nil 0xc0, float64 0xcb for a Python float.
 * The same batch in both: ts 1.5, one BlockStored of 2 blocks of 2 tokens
 * (hashes 1 and 2^64-1, no parent, tokens 1 2 128 65536, medium "GPU",
 * group_idx 0, kv_cache_spec_kind "full_attention"), data_parallel_rank 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "proto/kvevents.h"

/* the MAP form (vLLM since PR #42892) */
static const uint8_t golden_map[] = {
	0x93,                                                 /* [ts, events, rank] */
	0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,                   /* 1.5 */
	0x91,                                                 /* events: 1 */
	0x8b,                                                 /* map of 11 (sliding window: None, left out) */
	0xa4, 't', 'y', 'p', 'e',                             /* "type" */
	0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd',
	0xac, 'b', 'l', 'o', 'c', 'k', '_', 'h', 'a', 's', 'h', 'e', 's',
	0x92, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* [1, 2^64-1] */
	0xb1, 'p', 'a', 'r', 'e', 'n', 't', '_', 'b', 'l', 'o', 'c', 'k', '_', 'h', 'a', 's', 'h',
	0xc0,                                                 /* None */
	0xa9, 't', 'o', 'k', 'e', 'n', '_', 'i', 'd', 's',
	0x94, 0x01, 0x02, 0xcc, 0x80, 0xce, 0x00, 0x01, 0x00, 0x00, /* [1, 2, 128, 65536] */
	0xaa, 'b', 'l', 'o', 'c', 'k', '_', 's', 'i', 'z', 'e', 0x02,
	0xa7, 'l', 'o', 'r', 'a', '_', 'i', 'd', 0xc0,
	0xa6, 'm', 'e', 'd', 'i', 'u', 'm', 0xa3, 'G', 'P', 'U',
	0xa9, 'l', 'o', 'r', 'a', '_', 'n', 'a', 'm', 'e', 0xc0,
	0xaa, 'e', 'x', 't', 'r', 'a', '_', 'k', 'e', 'y', 's', 0x92, 0xc0, 0xc0, /* [None, None] */
	0xa9, 'g', 'r', 'o', 'u', 'p', '_', 'i', 'd', 'x', 0x00,
	0xb2, 'k', 'v', '_', 'c', 'a', 'c', 'h', 'e', '_', 's', 'p', 'e', 'c', '_', 'k', 'i', 'n', 'd',
	0xae, 'f', 'u', 'l', 'l', '_', 'a', 't', 't', 'e', 'n', 't', 'i', 'o', 'n',
	0x00,                                                 /* data_parallel_rank 0 */
};

/* the ARRAY form (vLLM before): every field, in declaration order */
static const uint8_t golden_array[] = {
	0x93, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x91,
	0x9c,                                                 /* array of 12: tag + 11 fields */
	0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd',
	0x92, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xc0,                                                 /* parent */
	0x94, 0x01, 0x02, 0xcc, 0x80, 0xce, 0x00, 0x01, 0x00, 0x00,
	0x02,                                                 /* block_size */
	0xc0,                                                 /* lora_id */
	0xa3, 'G', 'P', 'U',                                  /* medium */
	0xc0,                                                 /* lora_name */
	0x92, 0xc0, 0xc0,                                     /* extra_keys */
	0x00,                                                 /* group_idx */
	0xae, 'f', 'u', 'l', 'l', '_', 'a', 't', 't', 'e', 'n', 't', 'i', 'o', 'n',
	0xc0,                                                 /* kv_cache_spec_sliding_window */
	0x00,
};

static const uint64_t g_hashes[] = {1, UINT64_MAX};
static const uint32_t g_tokens[] = {1, 2, 128, 65536};

static struct kv_event golden_event(void)
{
	return (struct kv_event){
		.type = KV_BLOCK_STORED,
		.hashes = g_hashes,
		.n_hashes = 2,
		.tokens = g_tokens,
		.n_tokens = 4,
		.block_size = 2,
		.medium = {"GPU", 3},
		.spec_kind = {"full_attention", 14},
		.group_idx = 0,
	};
}

static void check_golden(const struct kv_batch *b)
{
	assert_true(b->ts == 1.5);
	assert_int_equal(b->n_events, 1);
	assert_true(b->has_dp_rank);
	assert_int_equal(b->dp_rank, 0);
	const struct kv_event *e = &b->events[0];
	assert_int_equal(e->type, KV_BLOCK_STORED);
	assert_int_equal(e->n_hashes, 2);
	assert_true(e->hashes[0] == 1 && e->hashes[1] == UINT64_MAX);
	assert_false(e->has_parent);
	assert_int_equal(e->n_tokens, 4);
	assert_memory_equal(e->tokens, g_tokens, sizeof g_tokens);
	assert_int_equal(e->block_size, 2);
	assert_false(e->has_lora_id);
	assert_int_equal(e->medium.n, 3);
	assert_memory_equal(e->medium.p, "GPU", 3);
	assert_null(e->lora_name.p);
	assert_int_equal(e->group_idx, 0);
	assert_int_equal(e->spec_kind.n, 14);
}

static void test_golden_encode(void **state)
{
	(void)state;
	struct kv_event ev = golden_event();
	struct kv_batch b = {.ts = 1.5, .has_dp_rank = 1, .dp_rank = 0, .events = &ev, .n_events = 1};
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(kvevents_encode(&out, &b, KVEVENTS_MAP), 0);
	assert_int_equal(out.len, sizeof golden_map);
	assert_memory_equal(out.data, golden_map, sizeof golden_map);
	buf_reset(&out);
	assert_int_equal(kvevents_encode(&out, &b, KVEVENTS_ARRAY), 0);
	assert_int_equal(out.len, sizeof golden_array);
	assert_memory_equal(out.data, golden_array, sizeof golden_array);
	/* a ceiling too low: an error, not a crash */
	struct buf small;
	buf_init(&small, 10);
	assert_int_equal(kvevents_encode(&small, &b, KVEVENTS_MAP), -1);
	buf_free(&small);
	buf_free(&out);
}

static void test_golden_decode(void **state)
{
	(void)state;
	struct kvevents_dec d;
	kvevents_dec_init(&d);
	struct kv_batch b;
	char err[200];
	int saw_map = -1;
	assert_int_equal(kvevents_decode(&d, golden_map, sizeof golden_map, &b, &saw_map, err, sizeof err), 0);
	assert_int_equal(saw_map, 1);
	check_golden(&b);
	assert_int_equal(kvevents_decode(&d, golden_array, sizeof golden_array, &b, &saw_map, err, sizeof err), 0);
	assert_int_equal(saw_map, 0);
	check_golden(&b);
	/* every strict prefix is an error with a message, never a crash */
	for (size_t n = 0; n < sizeof golden_map; n++) {
		err[0] = '\0';
		assert_int_equal(kvevents_decode(&d, golden_map, n, &b, NULL, err, sizeof err), -1);
		assert_true(strncmp(err, "byte ", 5) == 0);
	}
	for (size_t n = 0; n < sizeof golden_array; n++)
		assert_int_equal(kvevents_decode(&d, golden_array, n, &b, NULL, err, sizeof err), -1);
	kvevents_dec_free(&d);
}

/* Older and odder shapes vLLM and its peers send. */
static void test_decode_variants(void **state)
{
	(void)state;
	struct kvevents_dec d;
	kvevents_dec_init(&d);
	struct kv_batch b;
	char err[200];
	/* vLLM 0.9 (vllm@b4e69e0a): [ts, events] only, BlockStored of 6 fields,
	 * BlockRemoved of 2, AllBlocksCleared; parent as an int */
	static const uint8_t old[] = {
		0x92, 0x05, 0x93,
		0x96, 0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd', 0x91, 0x07, 0x2a, 0x91, 0x09, 0x01, 0xc0,
		0x92, 0xac, 'B', 'l', 'o', 'c', 'k', 'R', 'e', 'm', 'o', 'v', 'e', 'd', 0x91, 0xff,
		0x91, 0xb0, 'A', 'l', 'l', 'B', 'l', 'o', 'c', 'k', 's', 'C', 'l', 'e', 'a', 'r', 'e', 'd',
	};
	assert_int_equal(kvevents_decode(&d, old, sizeof old, &b, NULL, err, sizeof err), 0);
	assert_true(b.ts == 5.0);
	assert_false(b.has_dp_rank);
	assert_int_equal(b.n_events, 3);
	assert_true(b.events[0].has_parent && b.events[0].parent == 42);
	assert_int_equal(b.events[0].tokens[0], 9);
	assert_int_equal(b.events[1].type, KV_BLOCK_REMOVED);
	assert_true(b.events[1].hashes[0] == UINT64_MAX); /* -1: an int64 seen as unsigned */
	assert_int_equal(b.events[2].type, KV_ALL_CLEARED);
	/* a batch map, keys in any order, unknown keys skipped, bytes hashes (last
	 * 8 bytes big-endian), a map event with "type" last, extra keys */
	static const uint8_t odd[] = {
		0x84, 0xa5, 'o', 't', 'h', 'e', 'r', 0x92, 0xc3, 0xa1, 'x',
		0xa6, 'e', 'v', 'e', 'n', 't', 's', 0x91,
		0x84, 0xac, 'b', 'l', 'o', 'c', 'k', '_', 'h', 'a', 's', 'h', 'e', 's',
		0x91, 0xc4, 0x0a, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
		0xa6, 'm', 'e', 'd', 'i', 'u', 'm', 0xc0,
		0xa3, 'n', 'e', 'w', 0x81, 0xa1, 'a', 0x90,
		0xa4, 't', 'y', 'p', 'e', 0xac, 'B', 'l', 'o', 'c', 'k', 'R', 'e', 'm', 'o', 'v', 'e', 'd',
		0xa2, 't', 's', 0xca, 0x40, 0x00, 0x00, 0x00, /* float32 2.0 */
		0xb2, 'd', 'a', 't', 'a', '_', 'p', 'a', 'r', 'a', 'l', 'l', 'e', 'l', '_', 'r', 'a', 'n', 'k', 0x03,
	};
	int saw_map = 0;
	assert_int_equal(kvevents_decode(&d, odd, sizeof odd, &b, &saw_map, err, sizeof err), 0);
	assert_true(b.ts == 2.0 && b.has_dp_rank && b.dp_rank == 3 && saw_map);
	assert_int_equal(b.events[0].type, KV_BLOCK_REMOVED);
	assert_true(b.events[0].hashes[0] == 0x0102030405060708ULL);
	assert_null(b.events[0].medium.p);
	kvevents_dec_free(&d);
}

static void expect_error(const uint8_t *p, size_t n, const char *needle)
{
	struct kvevents_dec d;
	kvevents_dec_init(&d);
	struct kv_batch b;
	char err[200] = "";
	int rc = kvevents_decode(&d, p, n, &b, NULL, err, sizeof err);
	if (rc != -1 || !strstr(err, needle))
		fail_msg("expected an error with '%s', got %d '%s'", needle, rc, err);
	kvevents_dec_free(&d);
}

static void test_decode_errors(void **state)
{
	(void)state;
	uint8_t m[sizeof golden_map + 8];
	memcpy(m, golden_map, sizeof golden_map);
	/* block_size as a string */
	size_t at = 0;
	for (size_t i = 0; i + 10 < sizeof golden_map; i++)
		if (!memcmp(golden_map + i, "block_size", 10))
			at = i + 10;
	m[at] = 0xa0; /* "" */
	expect_error(m, sizeof golden_map, "block_size: expected an integer, got a string");
	/* tokens that don't fill the blocks */
	memcpy(m, golden_map, sizeof golden_map);
	m[at] = 0x03;
	expect_error(m, sizeof golden_map, "4 token ids for 2 blocks of 3");
	/* trailing bytes */
	memcpy(m, golden_map, sizeof golden_map);
	m[sizeof golden_map] = 0xc0;
	expect_error(m, sizeof golden_map + 1, "1 bytes after the batch");
	static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00};
	expect_error(huge, sizeof huge, "array of 4294967295 entries in 1 bytes");
	static const uint8_t tag[] = {0x92, 0x00, 0x91, 0x91, 0xa3, 'F', 'o', 'o'};
	expect_error(tag, sizeof tag, "unknown event type 'Foo'");
	static const uint8_t notype[] = {0x92, 0x00, 0x91, 0x81, 0xa1, 'a', 0x00};
	expect_error(notype, sizeof notype, "without \"type\"");
	static const uint8_t dup[] = {0x92, 0x00, 0x91, 0x83, 0xa4, 't', 'y', 'p', 'e', 0xac, 'B', 'l', 'o', 'c', 'k',
				      'R', 'e', 'm', 'o', 'v', 'e', 'd', 0xa6, 'm', 'e', 'd', 'i', 'u', 'm', 0xc0,
				      0xa6, 'm', 'e', 'd', 'i', 'u', 'm', 0xc0};
	expect_error(dup, sizeof dup, "duplicate key");
	static const uint8_t missing[] = {0x92, 0x00, 0x91, 0x91, 0xac, 'B', 'l', 'o', 'c', 'k', 'R', 'e', 'm', 'o',
					  'v', 'e', 'd'};
	expect_error(missing, sizeof missing, "missing block_hashes");
	static const uint8_t c1[] = {0x92, 0x00, 0x91, 0x92, 0xb0, 'A', 'l', 'l', 'B', 'l', 'o', 'c', 'k', 's', 'C',
				     'l', 'e', 'a', 'r', 'e', 'd', 0xc1};
	expect_error(c1, sizeof c1, "invalid byte 0xc1");
	static const uint8_t neg_tok[] = {0x92, 0x00, 0x91, 0x95, 0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r',
					  'e', 'd', 0x91, 0x01, 0xc0, 0x91, 0xff, 0x01};
	expect_error(neg_tok, sizeof neg_tok, "token_ids: negative");
	/* extra_keys nested 40 deep */
	uint8_t deep[80] = {0x92, 0x00, 0x91, 0x9a, 0xab, 'B', 'l', 'o', 'c', 'k', 'S', 't', 'o', 'r', 'e', 'd',
			    0x90, 0xc0, 0x90, 0x01, 0xc0, 0xc0, 0xc0};
	size_t k = 23;
	for (int i = 0; i < 40; i++)
		deep[k++] = 0x91;
	deep[k++] = 0xc0;
	expect_error(deep, k, "nested deeper than 32");
	static const uint8_t scalar[] = {0x07};
	expect_error(scalar, sizeof scalar, "expected an array, got an integer");
}

static void test_round_trip(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 7);
	struct kvevents_dec d;
	kvevents_dec_init(&d);
	struct buf out;
	buf_init(&out, 1 << 24);
	for (int it = 0; it < 300; it++) {
		struct kv_event ev[6];
		uint64_t hs[6][8];
		uint32_t ts[6][8 * 16];
		size_t ne = rng_next(&r) % 6;
		for (size_t i = 0; i < ne; i++) {
			struct kv_event *e = &ev[i];
			memset(e, 0, sizeof *e);
			e->type = (enum kv_event_type)(1 + rng_next(&r) % 3);
			e->group_idx = (int64_t)(rng_next(&r) % 3) - 1;
			if (e->type == KV_ALL_CLEARED) {
				e->group_idx = -1;
				continue;
			}
			e->n_hashes = rng_next(&r) % 8;
			for (size_t j = 0; j < e->n_hashes; j++)
				hs[i][j] = rng_next(&r) >> (rng_next(&r) % 64);
			e->hashes = hs[i];
			e->medium = rng_next(&r) % 2 ? (struct kv_str){"GPU", 3} : (struct kv_str){0};
			if (e->type == KV_BLOCK_STORED) {
				e->block_size = 1 + (uint32_t)(rng_next(&r) % 16);
				e->n_tokens = e->n_hashes * e->block_size;
				for (size_t j = 0; j < e->n_tokens; j++)
					ts[i][j] = (uint32_t)(rng_next(&r) >> (rng_next(&r) % 64));
				e->tokens = ts[i];
				e->has_parent = (int)(rng_next(&r) % 2);
				e->parent = rng_next(&r);
				e->has_lora_id = (int)(rng_next(&r) % 2);
				e->lora_id = (int64_t)(rng_next(&r) % 1000) - 500;
				e->lora_name = rng_next(&r) % 2 ? (struct kv_str){"an-adapter-with-a-long-name-over-31", 35}
								 : (struct kv_str){0};
				e->spec_kind = rng_next(&r) % 2 ? (struct kv_str){"full_attention", 14} : (struct kv_str){0};
			}
		}
		struct kv_batch b = {.ts = (double)(rng_next(&r) % 1000000) / 7.0, .has_dp_rank = (int)(rng_next(&r) % 2),
				     .dp_rank = 2, .events = ev, .n_events = ne};
		for (int enc = 0; enc < 2; enc++) {
			buf_reset(&out);
			assert_int_equal(kvevents_encode(&out, &b, (enum kvevents_enc)enc), 0);
			struct kv_batch g;
			char err[200];
			if (kvevents_decode(&d, out.data, out.len, &g, NULL, err, sizeof err))
				fail_msg("%s", err);
			assert_true(g.ts == b.ts && g.has_dp_rank == b.has_dp_rank && g.n_events == ne);
			for (size_t i = 0; i < ne; i++) {
				const struct kv_event *x = &ev[i], *y = &g.events[i];
				assert_int_equal(x->type, y->type);
				assert_int_equal(x->group_idx, y->group_idx);
				if (x->type == KV_ALL_CLEARED)
					continue;
				assert_int_equal(x->n_hashes, y->n_hashes);
				if (x->n_hashes)
					assert_memory_equal(x->hashes, y->hashes, x->n_hashes * 8);
				assert_int_equal(x->medium.p != NULL, y->medium.p != NULL);
				if (x->type == KV_BLOCK_STORED) {
					assert_int_equal(x->n_tokens, y->n_tokens);
					if (x->n_tokens)
						assert_memory_equal(x->tokens, y->tokens, x->n_tokens * 4);
					assert_int_equal(x->block_size, y->block_size);
					assert_int_equal(x->has_parent, y->has_parent);
					if (x->has_parent)
						assert_true(x->parent == y->parent);
					assert_int_equal(x->has_lora_id, y->has_lora_id);
					if (x->has_lora_id)
						assert_int_equal(x->lora_id, y->lora_id);
					assert_int_equal(x->lora_name.n, y->lora_name.n);
					assert_int_equal(x->spec_kind.n, y->spec_kind.n);
				}
			}
		}
	}
	buf_free(&out);
	kvevents_dec_free(&d);
}

static void test_seq_and_config(void **state)
{
	(void)state;
	uint8_t s[8];
	uint64_t v;
	kvevents_put_seq(s, 0x0102030405060708ULL);
	assert_int_equal(s[0], 1);
	assert_int_equal(s[7], 8);
	assert_int_equal(kvevents_get_seq(s, 8, &v), 0);
	assert_true(v == 0x0102030405060708ULL);
	assert_int_equal(kvevents_get_seq(s, 7, &v), -1);
	static const uint8_t end[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	kvevents_get_seq(end, 8, &v);
	assert_true(v == KVEVENTS_REPLAY_END);

	struct kvevents_cfg c;
	char err[300];
	assert_int_equal(kvevents_parse_config("{\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://"
					       "*:5557\",\"replay_endpoint\":\"tcp://*:5558\",\"topic\":\"kv-events\"}",
					       &c, err, sizeof err),
			 0);
	assert_true(c.enable);
	assert_string_equal(c.publisher, "zmq");
	assert_string_equal(c.endpoint, "tcp://*:5557");
	assert_string_equal(c.replay, "tcp://*:5558");
	assert_string_equal(c.topic, "kv-events");
	assert_int_equal(c.buffer_steps, 10000);
	assert_int_equal(kvevents_parse_config("{\"enable_kv_cache_events\":true,\"bogus\":1}", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "unknown key 'bogus'"));
	assert_int_equal(kvevents_parse_config("{\"publisher\":\"nats\"}", &c, err, sizeof err), -1);
	assert_int_equal(kvevents_parse_config("{\"hwm\":0}", &c, err, sizeof err), -1);
	assert_int_equal(kvevents_parse_config("[1]", &c, err, sizeof err), -1);
	assert_int_equal(kvevents_parse_config("{", &c, err, sizeof err), -1);
	char ep[64];
	assert_int_equal(kvevents_offset_endpoint("tcp://*:5557", 3, ep, sizeof ep), 0);
	assert_string_equal(ep, "tcp://*:5560");
	assert_int_equal(kvevents_offset_endpoint("tcp://*:5557", 0, ep, sizeof ep), 0);
	assert_string_equal(ep, "tcp://*:5557");
	assert_int_equal(kvevents_offset_endpoint("inproc://kv", 2, ep, sizeof ep), 0);
	assert_string_equal(ep, "inproc://kv_dp2");
	assert_int_equal(kvevents_offset_endpoint("tcp://*:65535", 1, ep, sizeof ep), -1);
	assert_int_equal(kvevents_offset_endpoint("tcp://*:x", 1, ep, sizeof ep), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_encode),  cmocka_unit_test(test_golden_decode),
		cmocka_unit_test(test_decode_variants), cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_seq_and_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
