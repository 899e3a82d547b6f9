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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_pairs),
		cmocka_unit_test(test_generator),
		cmocka_unit_test(test_rng),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
