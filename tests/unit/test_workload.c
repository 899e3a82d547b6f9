/* test_workload.c: data sets, fork-mode pairs, the generator, the RNG. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "core/tokenizer.h"
#include "core/workload.h"
#include "testutil.h"

static const char small[] =
	"[{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"Hi\"},{\"from\":\"gpt\",\"value\":\"Hello!\"},"
	"{\"from\":\"human\",\"value\":\"How are you?\"},{\"from\":\"gpt\",\"value\":\"Fine.\"},"
	"{\"from\":\"human\",\"value\":\"Bye\"}]},"
	"{\"id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"Q1\"},{\"role\":\"assistant\",\"content\":\"A1\"}]},"
	"{\"id\":\"c\"}]";

static void test_parse_and_pairs(void **state)
{
	(void)state;
	struct wl_dataset d;
	char err[128];
	assert_int_equal(wl_parse_sharegpt(small, sizeof small - 1, &d, err, sizeof err), 0);
	assert_int_equal(d.n, 2); /* the entry without messages is skipped */
	assert_int_equal(d.convs[0].n, 5);
	assert_true(d.convs[0].msgs[0].user);
	assert_false(d.convs[0].msgs[1].user);
	assert_false(d.convs[1].msgs[1].user);
	struct wl_pair *p;
	size_t n;
	assert_int_equal(wl_fork_pairs(&d, 0, &p, &n), 0);
	/* conversation a: i = 1, 3; b: i = 1 (the trailing "Bye" has no answer) */
	assert_int_equal(n, 3);
	assert_string_equal(p[0].prompt, "User: Hi\n");
	assert_string_equal(p[0].completion, "Hello!");
	assert_string_equal(p[1].prompt, "User: Hi\nAssistant: Hello!\nUser: How are you?\n");
	assert_string_equal(p[1].completion, "Fine.");
	assert_string_equal(p[2].prompt, "User: Q1\n");
	assert_int_equal(p[2].conv, 1);
	wl_pairs_free(p, n);
	/* the first max_pairs PAIRS in file order, not conversations */
	assert_int_equal(wl_fork_pairs(&d, 2, &p, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(p[1].conv, 0);
	wl_pairs_free(p, n);
	/* write and read back */
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(wl_write_sharegpt(&d, &b), 0);
	struct wl_dataset d2;
	assert_int_equal(wl_parse_sharegpt(b.data, b.len, &d2, err, sizeof err), 0);
	assert_int_equal(d2.n, 2);
	assert_string_equal(d2.convs[0].msgs[2].text, "How are you?");
	wl_free(&d2);
	wl_free(&d);
	buf_free(&b);
	assert_int_equal(wl_parse_sharegpt("[{\"conversations\":[{\"from\":\"human\"}]}]", 38, &d, err, sizeof err), -1);
	assert_non_null(strstr(err, "entry 0"));
	assert_int_equal(wl_parse_sharegpt("[{", 2, &d, err, sizeof err), -1);
	assert_non_null(strstr(err, "1:"));
}

static void test_generator(void **state)
{
	(void)state;
	struct wl_gen g;
	assert_int_equal(wl_preset("seed", &g), 0);
	assert_int_equal(wl_preset("nope", &g), -1);
	wl_preset("seed", &g);
	g.conversations = 300;
	struct wl_dataset a, b;
	assert_int_equal(wl_generate(&g, &a), 0);
	assert_int_equal(wl_generate(&g, &b), 0);
	struct buf x, y;
	buf_init(&x, 1 << 28);
	buf_init(&y, 1 << 28);
	wl_write_sharegpt(&a, &x);
	wl_write_sharegpt(&b, &y);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.data, y.data, x.len); /* deterministic */
	for (size_t i = 0; i < a.n; i++) {
		assert_true(a.convs[i].n >= 16 && a.convs[i].n <= 30 && a.convs[i].n % 2 == 0);
		assert_true(a.convs[i].msgs[0].user && !a.convs[i].msgs[1].user);
	}
	/* fork-mode statistics near the seed's 832 input / 76 output tokens per request */
	struct tok *t = test_tokenizer();
	assert_non_null(t);
	struct wl_pair *p;
	size_t n;
	assert_int_equal(wl_fork_pairs(&a, 800, &p, &n), 0);
	assert_int_equal(n, 800);
	double in = 0, out = 0;
	for (size_t i = 0; i < n; i++) {
		in += (double)tok_count(t, p[i].prompt, p[i].prompt_len, TOK_BOS);
		out += (double)tok_count(t, p[i].completion, p[i].completion_len, TOK_BOS);
	}
	fprintf(stderr, "    fork mode on the seed preset: %.0f input, %.0f output tokens per request\n", in / n, out / n);
	assert_true(fabs(in / n - 832) < 832 * 0.15);
	assert_true(fabs(out / n - 76) < 76 * 0.15);
	/* the assistant's median length is the preset's (57 tokens; words ~ tokens) */
	size_t lens[8000], k = 0;
	for (size_t i = 0; i < a.n && k < 8000; i++)
		for (size_t m = 1; m < a.convs[i].n && k < 8000; m += 2)
			lens[k++] = (size_t)tok_count(t, a.convs[i].msgs[m].text, a.convs[i].msgs[m].len, 0);
	size_t below = 0;
	for (size_t i = 0; i < k; i++)
		below += lens[i] < 57;
	assert_true(below > k * 4 / 10 && below < k * 6 / 10);
	wl_pairs_free(p, n);
	tok_free(t);
	wl_free(&a);
	wl_free(&b);
	buf_free(&x);
	buf_free(&y);
	/* presets: a shared preamble; hot copies; rag documents */
	wl_preset("shared-system", &g);
	g.conversations = 20;
	wl_generate(&g, &a);
	assert_int_equal(memcmp(a.convs[3].msgs[0].text, a.convs[7].msgs[0].text, 2000), 0);
	wl_free(&a);
	wl_preset("hot", &g);
	g.conversations = 100;
	wl_generate(&g, &a);
	size_t copies = 0;
	for (size_t i = 4; i < a.n; i++)
		for (size_t h = 0; h < 4; h++)
			copies += a.convs[i].msgs[0].len == a.convs[h].msgs[0].len &&
				  !strcmp(a.convs[i].msgs[0].text, a.convs[h].msgs[0].text);
	assert_true(copies > 60);
	wl_free(&a);
	wl_preset("rag", &g);
	g.conversations = 10;
	wl_generate(&g, &a);
	assert_true(a.convs[0].msgs[0].len > 8000);
	assert_non_null(strstr(a.convs[0].msgs[0].text, "Question: "));
	wl_free(&a);
}

static void test_rng(void **state)
{
	(void)state;
	struct rng r, r2;
	rng_seed(&r, 7);
	rng_seed(&r2, 7);
	for (int i = 0; i < 100; i++)
		assert_true(rng_next(&r) == rng_next(&r2));
	double se = 0, sg = 0, sn = 0, sn2 = 0;
	int n = 200000, under = 0;
	for (int i = 0; i < n; i++) {
		se += rng_exponential(&r, 2.0);
		sg += rng_gamma(&r, 0.5, 4.0); /* mean 2 */
		double z = rng_normal(&r);
		sn += z;
		sn2 += z * z;
		under += rng_lognormal(&r, 33, 1.2) < 33;
		assert_true(rng_below(&r, 10) < 10);
	}
	assert_true(fabs(se / n - 2.0) < 0.05);
	assert_true(fabs(sg / n - 2.0) < 0.05);
	assert_true(fabs(sn / n) < 0.01);
	assert_true(fabs(sn2 / n - 1.0) < 0.02);
	assert_true(abs(under - n / 2) < n / 100);
}

/* ---- distributions, filters, statistics ----------------------------------- */

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

/* The presets' data sets, byte for byte as before turn and length
 * distributions existed (hashes of `prefixlb dataset` output at ed0d56d). */
static void test_presets_unchanged(void **state)
{
	(void)state;
	static const struct {
		const char *preset;
		size_t conversations; /* 0: the preset's */
		uint64_t hash;
	} want[] = {
		{"seed", 0, 0x7d1eb22b2d0be50bULL},
		{"shared-system", 200, 0x361925420440e037ULL},
		{"hot", 200, 0x2b5e2ac6fdfb2d48ULL},
		{"rag", 200, 0x8bb17f7367165af8ULL},
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		struct wl_gen g;
		struct wl_dataset d;
		struct buf b;
		assert_int_equal(wl_preset(want[i].preset, &g), 0);
		if (want[i].conversations)
			g.conversations = want[i].conversations;
		assert_int_equal(wl_generate(&g, &d), 0);
		buf_init(&b, (size_t)1 << 28);
		assert_int_equal(wl_write_sharegpt(&d, &b), 0);
		uint64_t h = fnv1a(b.data, b.len);
		if (h != want[i].hash)
			fprintf(stderr, "    preset %s: hash 0x%016llx\n", want[i].preset, (unsigned long long)h);
		assert_true(h == want[i].hash);
		buf_free(&b);
		wl_free(&d);
	}
	struct wl_gen g;
	assert_int_equal(wl_preset("chat", &g), 0);
	assert_true(g.conversations >= 2000);
	assert_non_null(strstr(wl_preset_names, "chat"));
}

static void test_dist_parse(void **state)
{
	(void)state;
	struct wl_dist d;
	char err[160], txt[96];
	assert_int_equal(wl_dist_parse("uniform:3:9", 100, &d, err, sizeof err), 0);
	assert_true(d.kind == WL_UNIFORM && d.min == 3 && d.max == 9);
	assert_int_equal(wl_dist_parse("constant:7", 100, &d, err, sizeof err), 0);
	assert_true(d.kind == WL_CONSTANT && d.min == 7 && d.max == 7);
	assert_int_equal(wl_dist_parse("lognormal:5:0.6", 100, &d, err, sizeof err), 0);
	assert_true(d.kind == WL_LOGNORMAL && d.p1 == 5 && d.p2 == 0.6 && d.min == 1 && d.max == 100);
	assert_int_equal(wl_dist_parse("lognormal:5:0.6:2:20", 100, &d, err, sizeof err), 0);
	assert_true(d.min == 2 && d.max == 20);
	wl_dist_format(&d, txt, sizeof txt);
	assert_string_equal(txt, "lognormal:5:0.6:2:20");
	assert_int_equal(wl_dist_parse("poisson:4.5", 8000, &d, err, sizeof err), 0);
	assert_true(d.kind == WL_POISSON && d.p1 == 4.5 && d.max == 8000);
	wl_dist_format(&d, txt, sizeof txt);
	assert_string_equal(txt, "poisson:4.5:1:8000");
	assert_int_equal(wl_dist_parse("zipf:2:1:50", 100, &d, err, sizeof err), 0);
	assert_true(d.kind == WL_ZIPF && d.p1 == 2 && d.max == 50);
	static const struct {
		const char *spec, *says;
	} bad[] = {
		{"normal:5:1", "unknown distribution"},
		{"lognormal:5", "expected lognormal:MEDIAN:SIGMA[:MIN:MAX]"},
		{"lognormal:5:0.6:2", "expected lognormal"},
		{"uniform:9:3", "MIN 9 > MAX 3"},
		{"uniform:0:3", "bounds must be whole numbers"},
		{"uniform:1.5:3", "bounds must be whole numbers"},
		{"constant:5x", "expected constant:N"},
		{"constant:", "expected constant:N"},
		{"constant:200000", "bounds must be"},
		{"zipf:1", "S must be in (1, 100]"},
		{"poisson:0", "MEAN must be"},
		{"lognormal:-3:1", "MEDIAN must be"},
		{"lognormal:nan:1", "expected lognormal"},
		{"uniform:1:2:3:4:5:6", "expected uniform:MIN:MAX"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = '\0';
		assert_int_equal(wl_dist_parse(bad[i].spec, 100, &d, err, sizeof err), -1);
		if (!strstr(err, bad[i].says))
			fprintf(stderr, "    %s: %s\n", bad[i].spec, err);
		assert_non_null(strstr(err, bad[i].says));
	}
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

/* n draws of spec with seed 42, sorted; mean and variance returned. */
static long *draws(const char *spec, long def_max, size_t n, double *mean, double *var)
{
	struct wl_dist d;
	struct rng r;
	char err[160];
	assert_int_equal(wl_dist_parse(spec, def_max, &d, err, sizeof err), 0);
	rng_seed(&r, 42);
	long *v = malloc(n * sizeof *v);
	double s = 0, s2 = 0;
	for (size_t i = 0; i < n; i++) {
		v[i] = wl_dist_draw(&d, &r);
		s += (double)v[i];
		s2 += (double)v[i] * (double)v[i];
	}
	qsort(v, n, sizeof *v, cmp_long);
	*mean = s / (double)n;
	*var = s2 / (double)n - *mean * *mean;
	return v;
}

static size_t count(const long *v, size_t n, long x)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += v[i] == x;
	return c;
}

static void test_dist_draws(void **state)
{
	(void)state;
	const size_t n = 200000;
	double mean, var;
	long *v = draws("uniform:3:9", 100, n, &mean, &var);
	assert_true(v[0] == 3 && v[n - 1] == 9);
	for (long x = 3; x <= 9; x++)
		assert_true(fabs((double)count(v, n, x) / (double)n - 1.0 / 7) < 0.005);
	assert_true(fabs(mean - 6) < 0.02);
	free(v);
	v = draws("constant:7", 100, n, &mean, &var);
	assert_true(v[0] == 7 && v[n - 1] == 7);
	free(v);
	/* lognormal: the median asked, clamped into its bounds */
	v = draws("lognormal:40:1", 8000, n, &mean, &var);
	assert_true(v[n / 2] == 40);
	assert_true(v[0] >= 1 && v[n - 1] <= 8000);
	assert_true(fabs(mean - 40 * exp(0.5)) < 40 * exp(0.5) * 0.02); /* median * e^(sigma^2/2) */
	free(v);
	v = draws("lognormal:5:0.6:2:20", 100, n, &mean, &var);
	assert_true(v[0] == 2 && v[n - 1] == 20 && v[n / 2] == 5);
	/* the mass below 2.5 sits on 2, above 19.5 on 20: Phi(-1.155) = 0.124, 1 - Phi(2.268) = 0.0117 */
	assert_true(fabs((double)count(v, n, 2) / (double)n - 0.124) < 0.004);
	assert_true(fabs((double)count(v, n, 20) / (double)n - 0.0117) < 0.0015);
	free(v);
	/* poisson: mean = variance; a large mean goes through slices */
	v = draws("poisson:4", 100, n, &mean, &var);
	/* clamped to min 1: P(0) = e^-4 moves to 1, so the mean is 4 + p0 and the variance 4 - 7 p0 - p0^2 */
	double p0 = exp(-4);
	assert_true(fabs(mean - (4 + p0)) < 0.03 && fabs(var - (4 - 7 * p0 - p0 * p0)) < 0.05);
	assert_true(fabs((double)count(v, n, 1) / (double)n - 5 * exp(-4)) < 0.003); /* min 1: P(0) + P(1) */
	free(v);
	v = draws("poisson:100", 1000, n, &mean, &var);
	assert_true(fabs(mean - 100) < 0.15 && fabs(var - 100) < 2.5);
	free(v);
	/* zipf s = 2: P(1) = 6 / pi^2, P(2) = P(1) / 4; the tail beyond 1000 on 1000 */
	v = draws("zipf:2:1:1000", 100, n, &mean, &var);
	assert_true(fabs((double)count(v, n, 1) / (double)n - 6 / (M_PI * M_PI)) < 0.005);
	assert_true(fabs((double)count(v, n, 2) / (double)n - 1.5 / (M_PI * M_PI)) < 0.004);
	assert_true(v[0] == 1 && v[n - 1] == 1000);
	free(v);
}

#define H(x) "{\"from\":\"human\",\"value\":\"" x "\"}"
#define G(x) "{\"from\":\"gpt\",\"value\":\"" x "\"}"

/* Conversations whose user turns and user characters are known. */
static const char crafted[] = "["
	"{\"id\":\"one\",\"conversations\":[" H("abcdefghij") "," G("x") "]},"			/* 1 turn, 10 chars */
	"{\"id\":\"two\",\"conversations\":[" H("abc") "," G("x") "," H("d\\u00e9f") "," G("y") "]}," /* 2, 6 */
	"{\"id\":\"three\",\"conversations\":[" H("a") "," G("x") "," H("b") "," G("y") "," H("c") "," G("z") "]}," /* 3, 3 */
	"{\"id\":\"four\",\"conversations\":[" H("0123456789012345678901234567890123456789") "," G("x") "," H(
		"0123456789012345678901234567890123456789") "," G("x") "," H("0123456789012345678901234567890123456789") "," G(
		"x") "," H("0123456789012345678901234567890123456789") "," G("x") "]}," /* 4, 160 */
	"{\"id\":\"five\",\"conversations\":[" H("0123456789") "," G("x") "," H("0123456789") "," G("x") "," H(
		"0123456789") "," G("x") "," H("0123456789") "," G("x") "," H("0123456789") "," G("x") "]}," /* 5, 50 */
	"{\"id\":\"six\",\"messages\":[{\"role\":\"user\",\"content\":\"0123456789\"},{\"role\":\"assistant\",\"content\":"
	"\"x\"},{\"role\":\"user\",\"content\":\"0123456789\"},{\"role\":\"assistant\",\"content\":\"y\"},{\"role\":"
	"\"assistant\",\"content\":\"y2\"},{\"role\":\"user\",\"content\":\"0123456789\"},{\"role\":\"assistant\","
	"\"content\":\"z\"}]}," /* 3, 30 */
	"{\"id\":\"seven\",\"conversations\":[" H("ab") "]}" /* 1, 2: fails two tests, counted under the first */
	"]";

static void test_filter(void **state)
{
	(void)state;
	struct wl_dataset d;
	char err[128];
	assert_int_equal(wl_parse_sharegpt(crafted, sizeof crafted - 1, &d, err, sizeof err), 0);
	assert_int_equal(d.n, 7);
	assert_int_equal(wl_chars("d\xc3\xa9" "f", 4), 3);
	assert_int_equal(wl_user_turns(&d.convs[5]), 3);
	struct wl_filter f = {.min_user_turns = 2, .max_user_turns = 4, .min_user_chars = 5, .max_user_chars = 100,
			      .max_turns = 2};
	struct wl_filter_report r;
	assert_int_equal(wl_filter(&d, &f, &r), 0);
	assert_int_equal(r.in, 7);
	assert_int_equal(r.kept, 2);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.convs[0].id, "two");
	assert_string_equal(d.convs[1].id, "six");
	assert_int_equal(r.few_turns, 2);  /* one, seven */
	assert_int_equal(r.many_turns, 1); /* five */
	assert_int_equal(r.few_chars, 1);  /* three */
	assert_int_equal(r.many_chars, 1); /* four */
	assert_int_equal(r.cut, 1);	   /* six: cut before its third user message, with both answers of turn 2 */
	assert_int_equal(d.convs[0].n, 4);
	assert_int_equal(d.convs[1].n, 5);
	assert_string_equal(d.convs[1].msgs[4].text, "y2");
	wl_free(&d);
	/* no bounds: everything kept, nothing cut; bounds are inclusive */
	assert_int_equal(wl_parse_sharegpt(crafted, sizeof crafted - 1, &d, err, sizeof err), 0);
	struct wl_filter none = {0};
	wl_filter(&d, &none, &r);
	assert_true(r.kept == 7 && d.n == 7 && r.cut == 0 && r.few_turns + r.many_turns + r.few_chars + r.many_chars == 0);
	struct wl_filter exact = {.min_user_turns = 3, .max_user_turns = 3, .min_user_chars = 3, .max_user_chars = 3};
	wl_filter(&d, &exact, &r);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.convs[0].id, "three");
	wl_free(&d);
}

/* Statistics of a small file, to the exact numbers (numpy's percentiles). */
static const char stats_file[] = "["
	"{\"id\":\"a\",\"conversations\":[" H("abcd") "," G("0123456789") "]},"
	"{\"id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"ab\"},{\"role\":\"assistant\",\"content\":\"x\"},"
	"{\"role\":\"user\",\"content\":\"d\\u00e9j\\u00e0\"}]},"
	"{\"id\":\"c\",\"conversations\":[" G("hey") "," H("12345678") "," G("yy") "," H("z") "," G("") "," H("abc") "]},"
	"{\"id\":\"d\",\"conversations\":[]}"
	"]";

#define NEAR(x, y) assert_true(fabs((x) - (y)) < 1e-9)

static void test_stats_exact(void **state)
{
	(void)state;
	struct wl_dataset d;
	struct wl_stats s;
	char err[128];
	assert_int_equal(wl_parse_sharegpt(stats_file, sizeof stats_file - 1, &d, err, sizeof err), 0);
	assert_int_equal(wl_stats(&d, NULL, 800, &s), 0);
	assert_int_equal(s.conversations, 4);
	assert_int_equal(s.messages, 11);
	/* user turns 1, 2, 3, 0 */
	assert_int_equal(s.turns.n, 4);
	NEAR(s.turns.mean, 1.5);
	NEAR(s.turns.p50, 1.5);
	NEAR(s.turns.p10, 0.3);
	NEAR(s.turns.p90, 2.7);
	NEAR(s.turns.min, 0);
	NEAR(s.turns.max, 3);
	for (size_t b = 0; b < WL_TURN_BINS; b++)
		assert_int_equal(s.hist[b].count, b < 4);
	assert_true(s.hist[10].lo == 10 && s.hist[10].hi == 10 && s.hist[11].lo == 11 && s.hist[11].hi == 12);
	assert_true(s.hist[WL_TURN_BINS - 1].lo == 101 && s.hist[WL_TURN_BINS - 1].hi == SIZE_MAX);
	/* user messages 4, 2, 4 (d\u00e9j\u00e0: 4 characters in 6 bytes), 8, 1, 3 */
	assert_int_equal(s.user_chars.n, 6);
	NEAR(s.user_chars.mean, 22.0 / 6);
	NEAR(s.user_chars.p50, 3.5);
	NEAR(s.user_chars.p10, 1.5);
	NEAR(s.user_chars.p90, 6);
	NEAR(s.user_chars.p99, 7.8);
	NEAR(s.user_chars.min, 1);
	NEAR(s.user_chars.max, 8);
	/* assistant messages 10, 1, 3, 2, 0 */
	assert_int_equal(s.assistant_chars.n, 5);
	NEAR(s.assistant_chars.mean, 3.2);
	NEAR(s.assistant_chars.p50, 2);
	NEAR(s.assistant_chars.p10, 0.4);
	NEAR(s.assistant_chars.p90, 7.2);
	NEAR(s.assistant_chars.p99, 9.72);
	/* user characters per conversation 4, 6, 12, 0 */
	NEAR(s.conv_user_chars.mean, 5.5);
	NEAR(s.conv_user_chars.p50, 5);
	NEAR(s.conv_user_chars.p90, 10.2);
	/* no tokenizer: no token or fork figures */
	assert_int_equal(s.user_tokens.n, 0);
	assert_int_equal(s.fork_max_pairs, 0);
	/* with one: each message's count, and the fork's figures are its plan's */
	struct tok *t = test_tokenizer();
	assert_non_null(t);
	assert_int_equal(wl_stats(&d, t, 800, &s), 0);
	assert_int_equal(s.user_tokens.n, 6);
	NEAR(s.user_tokens.max, (double)tok_count(t, "12345678", 8, 0));
	NEAR(s.assistant_tokens.min, 0);
	/* the fork's figures apply its filters: on this file some pairs are too short */
	struct wl_pair *pairs;
	size_t np;
	assert_int_equal(wl_fork_pairs(&d, 800, &pairs, &np), 0);
	wl_pairs_free(pairs, np);
	struct wl_plan fp;
	assert_int_equal(wl_fork_plan(&d, t, 800, 800, 1, &fp), 0);
	assert_true(fp.n_items > 0 && fp.n_items < np);
	assert_int_equal(s.fork_pairs, fp.n_items);
	wl_plan_free(&fp);
	wl_free(&d);
	struct wl_gen g;
	wl_preset("seed", &g);
	g.conversations = 100;
	wl_generate(&g, &d);
	assert_int_equal(wl_stats(&d, t, 300, &s), 0);
	struct wl_plan plan;
	assert_int_equal(wl_fork_plan(&d, t, 300, 300, 1, &plan), 0);
	assert_int_equal(s.fork_pairs, plan.n_items);
	double in = 0;
	for (size_t i = 0; i < plan.n_items; i++)
		in += (double)plan.items[i].prompt_tokens;
	assert_true(fabs(s.fork_in - in / (double)plan.n_items) < 1e-6);
	assert_true(s.fork_convs > 0 && s.fork_convs <= 100);
	wl_plan_free(&plan);
	wl_free(&d);
	tok_free(t);
}

/* The generator with shaping distributions, and the chat preset, as asked. */
static void test_generator_shapes(void **state)
{
	(void)state;
	struct wl_gen g;
	struct wl_dataset d;
	struct wl_stats s;
	char err[160];
	wl_preset("seed", &g);
	g.conversations = 3000;
	assert_int_equal(wl_dist_parse("poisson:6:2:12", 100, &g.turns, err, sizeof err), 0);
	assert_int_equal(wl_dist_parse("constant:12", 8000, &g.user_tokens, err, sizeof err), 0);
	assert_int_equal(wl_dist_parse("uniform:5:9", 8000, &g.assistant_tokens, err, sizeof err), 0);
	assert_int_equal(wl_generate(&g, &d), 0);
	assert_int_equal(wl_stats(&d, NULL, 0, &s), 0);
	assert_true(s.turns.min == 2 && s.turns.max == 12 && s.turns.p50 == 6);
	assert_true(fabs(s.turns.mean - 6) < 0.15);
	for (size_t i = 0; i < d.n; i++) {
		assert_true(d.convs[i].n % 2 == 0 && d.convs[i].n == 2 * wl_user_turns(&d.convs[i]));
		/* constant:12 = 12 words and marks (a sentence's period may add one):
		 * at most 12 words (spaces + 1), at least 5 */
		size_t words = 1;
		for (size_t k = 0; k < d.convs[i].msgs[0].len; k++)
			words += d.convs[i].msgs[0].text[k] == ' ';
		assert_true(words >= 5 && words <= 12);
	}
	wl_free(&d);
	/* the chat preset: 2-20 turns, median 5; user median ~40 and assistant ~200 tokens */
	struct tok *t = test_tokenizer();
	assert_int_equal(wl_preset("chat", &g), 0);
	assert_int_equal(wl_generate(&g, &d), 0);
	assert_int_equal(d.n, 2000);
	assert_int_equal(wl_stats(&d, t, 800, &s), 0);
	fprintf(stderr, "    chat preset: turns median %.0f (p10 %.0f, p90 %.0f), user tokens median %.0f, assistant %.0f\n",
		s.turns.p50, s.turns.p10, s.turns.p90, s.user_tokens.p50, s.assistant_tokens.p50);
	assert_true(s.turns.min == 2 && s.turns.max == 20 && s.turns.p50 == 5);
	assert_true(fabs(s.user_tokens.p50 - 40) <= 4);
	assert_true(fabs(s.assistant_tokens.p50 - 200) <= 20);
	wl_free(&d);
	tok_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_pairs),
		cmocka_unit_test(test_generator),
		cmocka_unit_test(test_rng),
		cmocka_unit_test(test_presets_unchanged),
		cmocka_unit_test(test_dist_parse),
		cmocka_unit_test(test_dist_draws),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_stats_exact),
		cmocka_unit_test(test_generator_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
