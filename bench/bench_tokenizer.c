/* bench_tokenizer.c: load time and single-threaded encode speed of the tokenizer.
 * usage: bench_tokenizer TOKENIZER_JSON CORPUS_FILE [REPEATS]
 * Prints load ms (median of 5) and MB/s, tokens/s (median of REPEATS passes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/tokenizer.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int slurp(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	char chunk[1 << 16];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(b, chunk, n);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s TOKENIZER_JSON CORPUS [REPEATS]\n", argv[0]);
		return 2;
	}
	int reps = argc > 3 ? atoi(argv[3]) : 5;
	if (reps < 1)
		reps = 1;
	struct buf js, corpus;
	buf_init(&js, 1u << 30);
	buf_init(&corpus, 1u << 30);
	if (slurp(argv[1], &js) || slurp(argv[2], &corpus))
		return 1;
	double loads[5];
	struct tok *t = NULL;
	char err[256];
	for (int i = 0; i < 5; i++) {
		double t0 = now_s();
		if (tok_load(&t, js.data, js.len, err, sizeof err)) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		loads[i] = (now_s() - t0) * 1e3;
		if (i < 4)
			tok_free(t);
	}
	qsort(loads, 5, sizeof *loads, cmp_d);
	double *secs = calloc((size_t)reps, sizeof *secs);
	size_t ntok = 0;
	for (int r = 0; r < reps; r++) {
		struct tok_ids ids = {0};
		double t0 = now_s();
		/* encode line by line, as a server sees prompts */
		const char *p = corpus.data, *end = corpus.data + corpus.len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *e = nl ? nl + 1 : end;
			tok_encode(t, p, (size_t)(e - p), 0, &ids);
			p = e;
		}
		secs[r] = now_s() - t0;
		ntok = ids.n;
		tok_ids_free(&ids);
	}
	qsort(secs, (size_t)reps, sizeof *secs, cmp_d);
	double s = secs[reps / 2];
	printf("prefixlb  load_ms=%.1f  bytes=%zu tokens=%zu  MB/s=%.2f  tokens/s=%.0f  (median of %d)\n", loads[2],
	       corpus.len, ntok, (double)corpus.len / s / 1e6, (double)ntok / s, reps);
	free(secs);
	tok_free(t);
	buf_free(&js);
	buf_free(&corpus);
	return 0;
}
