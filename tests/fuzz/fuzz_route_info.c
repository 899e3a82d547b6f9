/* fuzz_route_info.c: what the router reads from a body (model + routing key,
 * without a tree) against what jansson reads (oai_parse): when the tree-less
 * reader accepts a chat or completions body that jansson also accepts, they
 * agree on the model. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int kind = data[0] % 3;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	struct oai_route r;
	char err[256];
	int a = oai_route_info(body, len, kind, 400, &r, err, sizeof err);
	if (kind != OAI_OTHER) {
		struct oai_req q;
		int b = oai_parse(body, len, kind == OAI_CHAT, 100000, &q, err, sizeof err);
		if (a == 0 && b == 0) {
			assert((r.model == NULL) == (q.model == NULL));
			if (r.model && strlen(q.model) < 1000)
				assert(strcmp(r.model, q.model) == 0);
		}
		if (b == 0)
			oai_req_free(&q);
	}
	if (a == 0)
		oai_route_free(&r);
	return 0;
}
