/* fuzz_kvevents.c: vLLM KV event payloads (proto/kvevents.c). Any input must
 * decode or fail with a message, never crash, hang or allocate past a small
 * multiple of its size; whatever decodes must encode (both encodings) and
 * decode again to the same events. Seeds: tests/fuzz/corpus/kvevents (the
 * golden payloads of tests/unit/test_kvevents.c, both encodings). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/kvevents.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvevents_dec d, d2;
	kvevents_dec_init(&d);
	kvevents_dec_init(&d2);
	struct kv_batch b, c;
	char err[256];
	if (kvevents_decode(&d, data, size, &b, NULL, err, sizeof err) == 0) {
		for (int enc = 0; enc < 2; enc++) {
			struct buf out;
			buf_init(&out, 64u << 20);
			assert(kvevents_encode(&out, &b, (enum kvevents_enc)enc) == 0);
			assert(kvevents_decode(&d2, out.data, out.len, &c, NULL, err, sizeof err) == 0);
			assert(c.n_events == b.n_events && c.has_dp_rank == b.has_dp_rank);
			for (size_t i = 0; i < b.n_events; i++) {
				assert(c.events[i].type == b.events[i].type);
				if (b.events[i].type == KV_ALL_CLEARED)
					continue;
				assert(c.events[i].n_hashes == b.events[i].n_hashes);
				assert(!b.events[i].n_hashes ||
				       !memcmp(c.events[i].hashes, b.events[i].hashes, 8 * b.events[i].n_hashes));
				assert(c.events[i].n_tokens == b.events[i].n_tokens);
			}
			buf_free(&out);
		}
	} else {
		assert(err[0]);
	}
	kvevents_dec_free(&d);
	kvevents_dec_free(&d2);
	return 0;
}
