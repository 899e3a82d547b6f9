/* fuzz_route_info.c: what the router reads from a body (model + routing key,
 * without a tree) against what jansson reads (oai_parse + oai_prefix_text):
 * when the tree-less reader accepts a chat or completions body that jansson
 * also accepts, they agree on the model, on the number of messages, on
 * whether there is a routing key, and on the key itself: the router's key is
 * exactly the first key_bytes bytes of jansson's text, so the router's hash
 * input (the first key_bytes/4 code points, lb_key) is the same text too.
 *
 * Input: byte 0 picks the kind (byte % 3) and key_bytes (400, the router's
 * 100 code points x 4, when byte < 3, else byte / 3: small limits exercise
 * the cut inside and between content parts); the rest is the body. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/utf8.h"
#include "proto/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int kind = data[0] % 3;
	size_t key_bytes = data[0] < 3 ? 400 : data[0] / 3;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	struct oai_route r;
	char err[256];
	int a = oai_route_info(body, len, kind, key_bytes, &r, err, sizeof err);
	if (kind != OAI_OTHER) {
		struct oai_req q;
		int b = oai_parse(body, len, kind == OAI_CHAT, 100000, &q, err, sizeof err);
		if (a == 0 && b == 0) {
			assert((r.model == NULL) == (q.model == NULL));
			if (r.model && strlen(q.model) < 1000)
				assert(strcmp(r.model, q.model) == 0);
			if (kind == OAI_CHAT)
				assert(r.n_messages == q.n_msgs);
			size_t tl;
			const char *t = oai_prefix_text(&q, &tl);
			assert(r.has_key == (t != NULL));
			if (!t)
				assert(r.key.len == 0);
			if (t) {
				size_t want = tl < key_bytes ? tl : key_bytes;
				assert(r.key.len == want);
				assert(want == 0 || memcmp(r.key.data, t, want) == 0);
				size_t cps = key_bytes / 4;
				size_t kn = utf8_prefix_bytes(r.key.data ? r.key.data : "", r.key.len, cps);
				assert(kn == utf8_prefix_bytes(t, tl, cps));
			}
		}
		if (b == 0)
			oai_req_free(&q);
	}
	if (a == 0)
		oai_route_free(&r);
	return 0;
}
