/* dataset.c: `prefixlb dataset`: a synthetic ShareGPT-style data set, or a
 * real ShareGPT file read with --input, filtered and cut, written with --out;
 * then its statistics (core/workload.c's wl_stats) and what the seed's
 * fork-mode sampling makes of it. Only flags, files and printing live here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mem.h"
#include "../core/tokenizer.h"
#include "../core/workload.h"
#include "cmd.h"
#include "opts.h"

static const char usage[] =
	"usage: prefixlb dataset --out FILE [--preset seed|shared-system|hot|rag|chat] [--conversations N]\n"
	"                        [--seed S] [--turns DIST] [--user-tokens DIST] [--assistant-tokens DIST] [filters]\n"
	"       prefixlb dataset --input FILE [--out FILE] [filters]\n"
	"       prefixlb dataset --stats FILE [filters]\n"
	"  Writes a deterministic synthetic data set in ShareGPT's schema (or filters and cuts a real one read\n"
	"  with --input) and prints its statistics, including what `prefixlb bench --multi-turn-mode fork`\n"
	"  would send from it. --stats FILE prints the statistics of a ShareGPT file and writes nothing.\n"
	"  DIST, a distribution of whole numbers, each draw clamped to [MIN, MAX]:\n"
	"    uniform:MIN:MAX | constant:N | lognormal:MEDIAN:SIGMA[:MIN:MAX] | poisson:MEAN[:MIN:MAX]\n"
	"    | zipf:S[:MIN:MAX] (S > 1); bounds left out are [1, 100] for turns, [1, 8000] for tokens.\n"
	"    A user turn is a user message and its answer; lengths are in tokens (a word is a token).\n"
	"  Filters (generated or read): conversations are kept when their user turns and total user\n"
	"  characters (as read) are within the bounds; the kept ones are then cut to --max-turns user turns.\n"
	"  0 means no bound. The older --min-messages M --max-messages N mean --turns uniform:M/2:N/2.\n";

#define TURNS_MAX 100   /* default upper bound of --turns */
#define TOKENS_MAX 8000 /* of --user-tokens, --assistant-tokens */

/* --- printing ------------------------------------------------------------ */

static void put(const char *name, double v, int first)
{
	printf(fabs(v - round(v)) < 0.05 ? "%s%s %.0f" : "%s%s %.1f", first ? "" : ", ", name, v);
}

/* which: a = mean, m = median, 1 = p10, 9 = p90, 2 = p99, < = min, > = max */
static void line(const char *label, const struct wl_summary *s, const char *which)
{
	printf("%-31s", label);
	if (!s->n) {
		puts("none");
		return;
	}
	for (const char *w = which; *w; w++) {
		int first = w == which;
		switch (*w) {
		case 'a': printf("%smean %.1f", first ? "" : ", ", s->mean); break;
		case 'm': put("median", s->p50, first); break;
		case '1': put("p10", s->p10, first); break;
		case '9': put("p90", s->p90, first); break;
		case '2': put("p99", s->p99, first); break;
		case '<': put("min", s->min, first); break;
		case '>': put("max", s->max, first); break;
		}
	}
	putchar('\n');
}

static void print_stats(const struct wl_stats *s, long num_prompts)
{
	printf("conversations:                 %zu\n", s->conversations);
	printf("messages per conversation:     mean %.1f\n",
	       s->conversations ? (double)s->messages / (double)s->conversations : 0);
	line("user turns per conversation:", &s->turns, "am19<>");
	size_t first = WL_TURN_BINS, last = 0, top = 1;
	for (size_t b = 0; b < WL_TURN_BINS; b++)
		if (s->hist[b].count) {
			first = first < b ? first : b;
			last = b;
			top = top > s->hist[b].count ? top : s->hist[b].count;
		}
	for (size_t b = first; b <= last && first < WL_TURN_BINS; b++) {
		const struct wl_turn_bin *h = &s->hist[b];
		char range[48], bar[41];
		if (h->hi == SIZE_MAX)
			snprintf(range, sizeof range, "%zu+", h->lo);
		else if (h->hi > h->lo)
			snprintf(range, sizeof range, "%zu-%zu", h->lo, h->hi);
		else
			snprintf(range, sizeof range, "%zu", h->lo);
		size_t w = (h->count * 40 + top - 1) / top;
		memset(bar, '#', w);
		bar[w] = '\0';
		printf("  %-9s %7zu %5.1f%%  %s\n", range, h->count, 100.0 * (double)h->count / (double)s->conversations,
		       bar);
	}
	line("user message chars:", &s->user_chars, "am192");
	line("assistant message chars:", &s->assistant_chars, "am192");
	if (s->user_tokens.n || s->assistant_tokens.n) {
		line("user message tokens:", &s->user_tokens, "am192");
		line("assistant message tokens:", &s->assistant_tokens, "am192");
	}
	line("user chars per conversation:", &s->conv_user_chars, "am9");
	if (!s->fork_max_pairs)
		return;
	printf("fork mode, --max-conversations %zu: %zu pairs kept from %zu conversations\n", s->fork_max_pairs,
	       s->fork_pairs, s->fork_convs);
	if (s->fork_pairs) {
		printf("  per request: %.0f input tokens, %.0f output tokens (BOS counted, as the seed)\n", s->fork_in,
		       s->fork_out);
		printf("  --num-prompts %ld: about %.0f input and %.0f output tokens in all (seed: 6656338 / 608447)\n",
		       num_prompts, s->fork_in * (double)num_prompts, s->fork_out * (double)num_prompts);
	}
}

static void print_filter(const struct wl_filter *f, const struct wl_filter_report *r)
{
	printf("filter:                        %zu of %zu conversations kept\n", r->kept, r->in);
	if (f->min_user_turns)
		printf("  dropped, fewer than %zu user turns: %zu\n", f->min_user_turns, r->few_turns);
	if (f->max_user_turns)
		printf("  dropped, more than %zu user turns: %zu\n", f->max_user_turns, r->many_turns);
	if (f->min_user_chars)
		printf("  dropped, fewer than %zu user characters: %zu\n", f->min_user_chars, r->few_chars);
	if (f->max_user_chars)
		printf("  dropped, more than %zu user characters: %zu\n", f->max_user_chars, r->many_chars);
	if (f->max_turns)
		printf("  cut to %zu user turns: %zu\n", f->max_turns, r->cut);
}

/* --- flags --------------------------------------------------------------- */

static int dist_arg(const char *flag, const char *spec, long def_max, struct wl_dist *d)
{
	char err[160];
	if (!wl_dist_parse(spec, def_max, d, err, sizeof err))
		return 0;
	fprintf(stderr, "prefixlb dataset: --%s %s\n", flag, err);
	return -1;
}

/* The older spellings: NULL when not given. */
static int num_arg(const char *flag, const char *s, double lo, double hi, double *out)
{
	char *end;
	if (!s)
		return 0;
	double v = strtod(s, &end);
	if (end != s && !*end && v >= lo && v <= hi) {
		*out = v;
		return 0;
	}
	fprintf(stderr, "prefixlb dataset: --%s: '%s' is not a number in [%g, %g]\n", flag, s, lo, hi);
	return -1;
}

struct legacy {
	const char *min_m, *max_m, *um, *us, *am, *as;
};

/* Applies --min-messages ... --assistant-sigma to g. Returns 0 or -1. */
static int legacy_apply(const struct legacy *l, struct wl_gen *g)
{
	double v;
	if (l->min_m || l->max_m) {
		g->turns.kind = WL_UNIFORM;
		if (num_arg("min-messages", l->min_m, 2, 10000, &v))
			return -1;
		g->turns.min = l->min_m ? (long)v / 2 : g->turns.min;
		if (num_arg("max-messages", l->max_m, 2, 10000, &v))
			return -1;
		g->turns.max = l->max_m ? (long)v / 2 : g->turns.max;
		if (g->turns.min > g->turns.max) {
			fprintf(stderr, "prefixlb dataset: --min-messages > --max-messages\n");
			return -1;
		}
	}
	struct {
		const char *m, *s;
		struct wl_dist *d;
	} len[2] = {{l->um, l->us, &g->user_tokens}, {l->am, l->as, &g->assistant_tokens}};
	for (int i = 0; i < 2; i++) {
		if (!len[i].m && !len[i].s)
			continue;
		if (len[i].d->kind != WL_LOGNORMAL) {
			fprintf(stderr, "prefixlb dataset: --%s-median/--%s-sigma need a lognormal length\n",
				i ? "assistant" : "user", i ? "assistant" : "user");
			return -1;
		}
		if (num_arg(i ? "assistant-median" : "user-median", len[i].m, 1, 100000, &len[i].d->p1) ||
		    num_arg(i ? "assistant-sigma" : "user-sigma", len[i].s, 0, 10, &len[i].d->p2))
			return -1;
	}
	return 0;
}

static int read_dataset(const char *path, struct wl_dataset *d)
{
	struct buf b;
	char err[256];
	buf_init(&b, (size_t)1 << 32);
	int rc = cmd_read_file(path, b.max, &b);
	if (!rc && (rc = wl_parse_sharegpt(b.data ? b.data : "", b.len, d, err, sizeof err)))
		fprintf(stderr, "prefixlb dataset: %s:%s\n", path, err);
	buf_free(&b);
	return rc;
}

int cmd_dataset(int argc, char **argv)
{
	const char *out = NULL, *preset = "seed", *tokenizer = NULL, *stats = NULL, *input = NULL;
	struct wl_gen g;
	/* the preset first, so explicit flags override it */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--preset"))
			preset = argv[i + 1];
	if (wl_preset(preset, &g)) {
		fprintf(stderr, "prefixlb dataset: unknown preset '%s' (%s)\n", preset, wl_preset_names);
		return 2;
	}
	char def_turns[96], def_user[96], def_asst[96];
	wl_dist_format(&g.turns, def_turns, sizeof def_turns);
	wl_dist_format(&g.user_tokens, def_user, sizeof def_user);
	wl_dist_format(&g.assistant_tokens, def_asst, sizeof def_asst);
	const char *turns = def_turns, *user = def_user, *asst = def_asst;
	long conversations = (long)g.conversations, seed = (long)g.seed, max_conv = 800, num_prompts = 8000;
	long min_ut = 0, max_ut = 0, min_uc = 0, max_uc = 0, max_turns = 0;
	struct legacy l = {0};
	const struct opt tab[] = {
		{"out", OPT_STR, &out, "file to write (ShareGPT JSON, from/value)", 0, 0},
		{"input", OPT_STR, &input, "read this ShareGPT file instead of generating (filter, cut, --out)", 0, 0},
		{"stats", OPT_STR, &stats, "print the statistics of a ShareGPT file; writes nothing", 0, 0},
		{"preset", OPT_STR, &preset, "seed | shared-system | hot | rag | chat", 0, 0},
		{"conversations", OPT_INT, &conversations, "number of conversations to generate", 1, 10000000},
		{"seed", OPT_INT, &seed, "random seed", 0, 0},
		{"turns", OPT_STR, &turns, "DIST of user turns per conversation", 0, 0},
		{"user-tokens", OPT_STR, &user, "DIST of user message lengths (tokens)", 0, 0},
		{"assistant-tokens", OPT_STR, &asst, "DIST of assistant message lengths (tokens)", 0, 0},
		{"min-user-turns", OPT_INT, &min_ut, "filter: fewest user turns a kept conversation has", 0, 1e9},
		{"max-user-turns", OPT_INT, &max_ut, "filter: most user turns (0: no bound)", 0, 1e9},
		{"min-user-chars", OPT_INT, &min_uc, "filter: fewest user characters in all", 0, 1e12},
		{"max-user-chars", OPT_INT, &max_uc, "filter: most user characters in all (0: no bound)", 0, 1e12},
		{"max-turns", OPT_INT, &max_turns, "cut kept conversations to this many user turns (0: no cut)", 0, 1e9},
		{"tokenizer", OPT_STR, &tokenizer, "tokenizer.json for the statistics", 0, 0},
		{"max-conversations", OPT_INT, &max_conv, "statistics: fork mode's pair limit", 1, 100000000},
		{"num-prompts", OPT_INT, &num_prompts, "statistics: fork mode's request count", 1, 100000000},
		{"min-messages", OPT_STR, &l.min_m, "older spelling: --turns uniform:M/2:..., M even", 0, 0},
		{"max-messages", OPT_STR, &l.max_m, "older spelling: --turns uniform:...:N/2", 0, 0},
		{"user-median", OPT_STR, &l.um, "older spelling: the MEDIAN of a lognormal --user-tokens", 0, 0},
		{"user-sigma", OPT_STR, &l.us, "older spelling: its SIGMA", 0, 0},
		{"assistant-median", OPT_STR, &l.am, "older spelling: the MEDIAN of a lognormal --assistant-tokens", 0, 0},
		{"assistant-sigma", OPT_STR, &l.as, "older spelling: its SIGMA", 0, 0},
		{0},
	};
	int pr = opts_parse("dataset", usage, tab, argc, argv, NULL, NULL);
	if (pr)
		return pr == 1 ? 0 : 2;
	const char *src = input ? input : stats;
	int shaped = turns != def_turns || user != def_user || asst != def_asst || l.min_m || l.max_m || l.um ||
		     l.us || l.am || l.as;
	if ((input && stats) || (stats && out)) {
		fprintf(stderr, "prefixlb dataset: --stats FILE writes nothing; to filter a file into another use "
				"--input FILE --out FILE\n");
		return 2;
	}
	if (!out && !src) {
		fprintf(stderr, "prefixlb dataset: --out FILE is required (or --input FILE, --stats FILE)\n");
		return 2;
	}
	if (src && shaped) {
		fprintf(stderr, "prefixlb dataset: --turns, --user-tokens, --assistant-tokens shape generated data "
				"sets; a file is shaped by the filters\n");
		return 2;
	}
	if ((turns != def_turns && (l.min_m || l.max_m)) || (user != def_user && (l.um || l.us)) ||
	    (asst != def_asst && (l.am || l.as))) {
		fprintf(stderr, "prefixlb dataset: give a distribution once (--turns or --min/max-messages, "
				"--user-tokens or --user-median/sigma, ...)\n");
		return 2;
	}
	if (dist_arg("turns", turns, TURNS_MAX, &g.turns) || dist_arg("user-tokens", user, TOKENS_MAX, &g.user_tokens) ||
	    dist_arg("assistant-tokens", asst, TOKENS_MAX, &g.assistant_tokens) || legacy_apply(&l, &g))
		return 2;
	struct wl_filter f = {.min_user_turns = (size_t)min_ut, .max_user_turns = (size_t)max_ut,
			      .min_user_chars = (size_t)min_uc, .max_user_chars = (size_t)max_uc,
			      .max_turns = (size_t)max_turns};
	if ((max_ut && min_ut > max_ut) || (max_uc && min_uc > max_uc)) {
		fprintf(stderr, "prefixlb dataset: a filter's min is above its max\n");
		return 2;
	}

	struct wl_dataset d;
	if (src) {
		if (read_dataset(src, &d))
			return 1;
	} else {
		g.conversations = (size_t)conversations;
		g.seed = (uint64_t)seed;
		if (wl_generate(&g, &d)) {
			fprintf(stderr, "prefixlb dataset: out of memory\n");
			return 1;
		}
	}
	struct wl_filter_report fr;
	wl_filter(&d, &f, &fr);
	if (min_ut || max_ut || min_uc || max_uc || max_turns)
		print_filter(&f, &fr);
	if (out) {
		struct buf b;
		buf_init(&b, (size_t)1 << 34);
		int bad = wl_write_sharegpt(&d, &b) || cmd_write_file_atomic(out, b.data ? b.data : "", b.len);
		buf_free(&b);
		if (bad) {
			fprintf(stderr, "prefixlb dataset: %s: cannot write\n", out);
			wl_free(&d);
			return 1;
		}
		if (src) {
			printf("wrote %s (from %s)\n", out, src);
		} else {
			char t[96], u[96], a[96];
			wl_dist_format(&g.turns, t, sizeof t);
			wl_dist_format(&g.user_tokens, u, sizeof u);
			wl_dist_format(&g.assistant_tokens, a, sizeof a);
			printf("wrote %s (preset %s, seed %ld; turns %s, user tokens %s, assistant tokens %s)\n", out,
			       preset, seed, t, u, a);
		}
	}
	struct tok *t = cmd_load_tokenizer(tokenizer);
	struct wl_stats st;
	wl_stats(&d, t, (size_t)max_conv, &st);
	print_stats(&st, num_prompts);
	tok_free(t);
	wl_free(&d);
	return 0;
}
