/* testutil.h: helpers shared by the unit tests (header-only, tests only). */
#ifndef PREFIXLB_TESTUTIL_H
#define PREFIXLB_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/tokenizer.h"

/* Loads data/tokenizer.json (or $PREFIXLB_TOKENIZER); tests run from the repo root. */
static inline struct tok *test_tokenizer(void)
{
	const char *path = getenv("PREFIXLB_TOKENIZER");
	if (!path)
		path = "data/tokenizer.json";
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: missing (run scripts/setup)\n", path);
		return NULL;
	}
	struct buf b;
	buf_init(&b, 1u << 30);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	struct tok *t = NULL;
	char err[256];
	if (tok_load(&t, b.data, b.len, err, sizeof err))
		fprintf(stderr, "%s: %s\n", path, err);
	buf_free(&b);
	return t;
}

/* A tokenizer shared by a group of tests: static struct tok *NAME, loaded by
 * setup() and freed by teardown() (cmocka group fixtures). */
#define TEST_TOKENIZER_FIXTURE(NAME)             \
	static struct tok *NAME;                 \
	static int setup(void **state)           \
	{                                        \
		(void)state;                     \
		NAME = test_tokenizer();         \
		return NAME ? 0 : -1;            \
	}                                        \
	static int teardown(void **state)        \
	{                                        \
		(void)state;                     \
		tok_free(NAME);                  \
		return 0;                        \
	}

#endif
