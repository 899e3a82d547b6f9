/* fuzz_orca.c: the in-band load report parser (endpoint-load-metrics, TEXT and
 * JSON). Whatever it accepts must have its fields in range, and the engine's
 * writer must give a report that reads back to the same fields, in both forms. */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/orca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct orca_load l;
	char err[200];
	if (orca_parse((const char *)data, size, &l, err, sizeof err) != 0) {
		assert(err[0] && l.have == 0);
		return 0;
	}
	assert(!(l.have & ORCA_HAVE_KV) || (l.kv_usage >= 0 && l.kv_usage <= 1));
	assert(!(l.have & ORCA_HAVE_WAITING) || (l.waiting >= 0 && isfinite(l.waiting)));
	assert(!(l.have & ORCA_HAVE_RUNNING) || (l.running >= 0 && isfinite(l.running)));
	unsigned known = l.have & (ORCA_HAVE_KV | ORCA_HAVE_WAITING | ORCA_HAVE_RUNNING);
	for (int f = ORCA_TEXT; f <= ORCA_JSON; f++) {
		struct buf b;
		buf_init(&b, 1 << 12);
		orca_write(&b, (enum orca_format)f, &l);
		struct orca_load r;
		assert(orca_parse(b.data, b.len, &r, err, sizeof err) == 0);
		assert(r.have == known);
		assert(!(known & ORCA_HAVE_KV) || r.kv_usage == l.kv_usage);
		assert(!(known & ORCA_HAVE_WAITING) || r.waiting == l.waiting);
		assert(!(known & ORCA_HAVE_RUNNING) || r.running == l.running);
		buf_free(&b);
	}
	return 0;
}
