/* dataset.c: `prefixlb dataset`, a synthetic ShareGPT-style data set and its
 * statistics under the seed's fork-mode sampling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "../core/tokenizer.h"
#include "../core/workload.h"
#include "cmd.h"
#include "opts.h"

static const char usage[] =
	"usage: prefixlb dataset --out FILE [--preset seed|shared-system|hot|rag] [--conversations N]\n"
	"                        [--min-messages 16] [--seed S] [...]\n"
	"  Writes a deterministic synthetic data set in ShareGPT's schema and prints its statistics,\n"
	"  including what `prefixlb bench --multi-turn-mode fork` would send from it.\n"
	"  --stats FILE prints the statistics of an existing ShareGPT file instead.\n";

static int cmp_sz(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* Statistics of a data set; with a tokenizer, in tokens as the fork counts them. */
static void print_stats(const struct wl_dataset *d, struct tok *t, long max_pairs, long num_prompts)
{
	size_t msgs = 0, nu = 0, na = 0;
	size_t *ul = NULL, *al = NULL;
	for (size_t i = 0; i < d->n; i++)
		msgs += d->convs[i].n;
	ul = plb_calloc(msgs + 1, sizeof *ul);
	al = plb_calloc(msgs + 1, sizeof *al);
	for (size_t i = 0; i < d->n; i++)
		for (size_t k = 0; k < d->convs[i].n; k++) {
			const struct wl_msg *m = &d->convs[i].msgs[k];
			size_t len = t ? (size_t)tok_count(t, m->text, m->len, 0) : m->len;
			if (k % 2 == 0)
				ul[nu++] = len;
			else
				al[na++] = len;
		}
	qsort(ul, nu, sizeof *ul, cmp_sz);
	qsort(al, na, sizeof *al, cmp_sz);
	double su = 0, sa = 0;
	for (size_t i = 0; i < nu; i++)
		su += (double)ul[i];
	for (size_t i = 0; i < na; i++)
		sa += (double)al[i];
	const char *unit = t ? "tokens" : "bytes";
	printf("conversations:                 %zu\n", d->n);
	printf("messages per conversation:     %.1f\n", d->n ? (double)msgs / (double)d->n : 0);
	printf("user message %s:         mean %.1f, median %zu\n", unit, nu ? su / nu : 0, nu ? ul[nu / 2] : 0);
	printf("assistant message %s:    mean %.1f, median %zu\n", unit, na ? sa / na : 0, na ? al[na / 2] : 0);
	free(ul);
	free(al);
	if (!t)
		return;
	struct wl_pair *p;
	size_t np;
	if (wl_fork_pairs(d, (size_t)max_pairs, &p, &np))
		return;
	double in = 0, out = 0;
	size_t kept = 0, convs = 0, last = (size_t)-1;
	for (size_t i = 0; i < np; i++) {
		long pl = tok_count(t, p[i].prompt, p[i].prompt_len, TOK_BOS);
		long ol = tok_count(t, p[i].completion, p[i].completion_len, TOK_BOS);
		if (pl < 4 || ol < 4 || pl > 8192)
			continue; /* the fork's filters */
		kept++;
		in += (double)pl;
		out += (double)ol;
		if (p[i].conv != last) {
			convs++;
			last = p[i].conv;
		}
	}
	wl_pairs_free(p, np);
	printf("fork mode, --max-conversations %ld: %zu pairs kept from %zu conversations\n", max_pairs, kept, convs);
	if (kept) {
		printf("  per request: %.0f input tokens, %.0f output tokens (BOS counted, as the seed)\n", in / kept,
		       out / kept);
		printf("  --num-prompts %ld: about %.0f input and %.0f output tokens in all (seed: 6656338 / 608447)\n",
		       num_prompts, in / kept * (double)num_prompts, out / kept * (double)num_prompts);
	}
}

int cmd_dataset(int argc, char **argv)
{
	const char *out = NULL, *preset = "seed", *tokenizer = NULL, *stats = NULL;
	struct wl_gen g;
	wl_preset("seed", &g);
	/* the preset first, so explicit flags override it */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--preset"))
			preset = argv[i + 1];
	if (wl_preset(preset, &g)) {
		fprintf(stderr, "prefixlb dataset: unknown preset '%s' (seed, shared-system, hot, rag)\n", preset);
		return 2;
	}
	long conversations = (long)g.conversations, min_m = (long)g.min_messages, max_m = (long)g.max_messages;
	long seed = (long)g.seed, max_conv = 800, num_prompts = 8000;
	double um = g.user_median, us = g.user_sigma, am = g.assistant_median, as = g.assistant_sigma;
	const struct opt tab[] = {
		{"out", OPT_STR, &out, "file to write (ShareGPT JSON)", 0, 0},
		{"preset", OPT_STR, &preset, "seed | shared-system | hot | rag", 0, 0},
		{"conversations", OPT_INT, &conversations, "number of conversations", 1, 10000000},
		{"min-messages", OPT_INT, &min_m, "fewest messages per conversation", 2, 10000},
		{"max-messages", OPT_INT, &max_m, "most messages per conversation", 2, 10000},
		{"seed", OPT_INT, &seed, "random seed", 0, 0},
		{"user-median", OPT_DBL, &um, "median user message length (tokens)", 1, 100000},
		{"user-sigma", OPT_DBL, &us, "lognormal sigma of user messages", 0, 10},
		{"assistant-median", OPT_DBL, &am, "median assistant message length (tokens)", 1, 100000},
		{"assistant-sigma", OPT_DBL, &as, "lognormal sigma of assistant messages", 0, 10},
		{"tokenizer", OPT_STR, &tokenizer, "tokenizer.json for the statistics", 0, 0},
		{"max-conversations", OPT_INT, &max_conv, "statistics: fork mode's pair limit", 1, 100000000},
		{"num-prompts", OPT_INT, &num_prompts, "statistics: fork mode's request count", 1, 100000000},
		{"stats", OPT_STR, &stats, "print the statistics of an existing ShareGPT file", 0, 0},
		{0},
	};
	int pr = opts_parse("dataset", usage, tab, argc, argv, NULL, NULL);
	if (pr)
		return pr == 1 ? 0 : 2;
	if (!out && !stats) {
		fprintf(stderr, "prefixlb dataset: --out FILE is required (or --stats FILE)\n");
		return 2;
	}
	if (min_m > max_m) {
		fprintf(stderr, "prefixlb dataset: --min-messages %ld > --max-messages %ld\n", min_m, max_m);
		return 2;
	}
	struct wl_dataset d;
	if (stats) {
		struct buf b;
		buf_init(&b, (size_t)1 << 32);
		if (cmd_read_file(stats, b.max, &b)) {
			buf_free(&b);
			return 1;
		}
		char err[256];
		if (wl_parse_sharegpt(b.data ? b.data : "", b.len, &d, err, sizeof err)) {
			fprintf(stderr, "prefixlb dataset: %s:%s\n", stats, err);
			buf_free(&b);
			return 1;
		}
		buf_free(&b);
	} else {
		g.conversations = (size_t)conversations;
		g.min_messages = (size_t)min_m;
		g.max_messages = (size_t)max_m;
		g.seed = (uint64_t)seed;
		g.user_median = um;
		g.user_sigma = us;
		g.assistant_median = am;
		g.assistant_sigma = as;
		if (wl_generate(&g, &d)) {
			fprintf(stderr, "prefixlb dataset: out of memory\n");
			return 1;
		}
		struct buf b;
		buf_init(&b, (size_t)1 << 34);
		FILE *f = fopen(out, "w");
		if (wl_write_sharegpt(&d, &b) || !f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f)) {
			fprintf(stderr, "prefixlb dataset: %s: cannot write\n", out);
			buf_free(&b);
			wl_free(&d);
			return 1;
		}
		buf_free(&b);
		printf("wrote %s (preset %s, seed %ld)\n", out, preset, seed);
	}
	struct tok *t = cmd_load_tokenizer(tokenizer);
	print_stats(&d, t, max_conv, num_prompts);
	tok_free(t);
	wl_free(&d);
	return 0;
}
