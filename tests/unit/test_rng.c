/* test_rng.c: the caller-owned generator and its distributions (src/core/rng.c).
 *
 * The generator is checked against values computed independently (SplitMix64
 * from seed 0 is a published sequence; the xoshiro256** outputs were computed
 * with a separate Python transcription of Blackman & Vigna's reference code).
 * The distributions are checked on 200,000 draws from a fixed seed, each
 * tolerance at least 5 standard errors of the statistic, so the bounds hold
 * for any correct generator, not just for this seed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"

#define N 200000

static double xs[N];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void mean_var_median(double *mean, double *var, double *median)
{
	double s = 0, q = 0;
	for (size_t i = 0; i < N; i++)
		s += xs[i];
	*mean = s / N;
	for (size_t i = 0; i < N; i++)
		q += (xs[i] - *mean) * (xs[i] - *mean);
	*var = q / (N - 1);
	qsort(xs, N, sizeof *xs, cmp_double);
	*median = (xs[N / 2 - 1] + xs[N / 2]) / 2;
}

static void assert_rel(double got, double want, double tol, const char *what)
{
	if (fabs(got - want) > tol * fabs(want))
		fail_msg("%s: %.6g, expected %.6g within %.1f%%", what, got, want, tol * 100);
}

static void test_seed_and_sequence(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 0); /* the state is SplitMix64's first four outputs from 0 */
	assert_true(r.s[0] == 0xe220a8397b1dcdafULL);
	assert_true(r.s[1] == 0x6e789e6aa1b965f4ULL);
	assert_true(r.s[2] == 0x06c45d188009454fULL);
	assert_true(r.s[3] == 0xf88bb8a8724c81ecULL);
	const uint64_t want0[] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL,
				  0x6aa594f1262d2d2cULL, 0xbba5ad4a1f842e59ULL};
	for (size_t i = 0; i < 5; i++)
		assert_true(rng_next(&r) == want0[i]);
	rng_seed(&r, 12345);
	const uint64_t want1[] = {0xbe6a36374160d49bULL, 0x214aaa0637a688c6ULL, 0xf69d16de9954d388ULL,
				  0x0c60048c4e96e033ULL, 0x8e2076aeed51c648ULL};
	for (size_t i = 0; i < 5; i++)
		assert_true(rng_next(&r) == want1[i]);
}

static void test_determinism(void **state)
{
	(void)state;
	struct rng a, b, c;
	rng_seed(&a, 42);
	rng_seed(&b, 42);
	rng_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = rng_next(&a);
		assert_true(x == rng_next(&b));
		differ += x != rng_next(&c);
	}
	assert_true(differ >= 999); /* another seed, another sequence */
	/* every draw is a function of the state only: reseeding replays it,
	 * whatever mix of distributions is drawn */
	double first[6];
	for (int pass = 0; pass < 2; pass++) {
		rng_seed(&a, 7);
		double got[6] = {rng_uniform(&a),          (double)rng_below(&a, 1000), rng_normal(&a),
				 rng_gamma(&a, 0.5, 2),    rng_lognormal(&a, 33, 1.2),   rng_exponential(&a, 3)};
		if (pass == 0)
			memcpy(first, got, sizeof got);
		else
			assert_memory_equal(first, got, sizeof got);
	}
}

/* Multiplicative inverse of an odd x modulo 2^64 (Newton's iteration). */
static uint64_t inv64(uint64_t x)
{
	uint64_t y = x;
	for (int i = 0; i < 6; i++)
		y *= 2 - x * y;
	return y;
}

static void test_uniform(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 1);
	double s = 0;
	size_t low = 0;
	for (size_t i = 0; i < N; i++) {
		double u = rng_uniform(&r);
		assert_true(u >= 0 && u < 1);
		s += u;
		low += u < 0.1;
	}
	assert_rel(s / N, 0.5, 0.008, "uniform mean");                  /* SE 0.13% */
	assert_rel((double)low / N, 0.1, 0.05, "uniform P(u < 0.1)"); /* SE 0.67% */
	/* the extremes: an output of 0 gives 0, all ones gives the largest double below 1 */
	r.s[1] = 0; /* output = rotl(s1 * 5, 7) * 9 */
	assert_true(rng_uniform(&r) == 0.0);
	uint64_t y = UINT64_MAX * inv64(9), z = (y >> 7) | (y << 57);
	r.s[1] = z * inv64(5);
	double top = rng_uniform(&r);
	assert_true(top < 1.0);
	assert_true(top == 1.0 - 0x1p-53);
}

static void test_below(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 2);
	for (int i = 0; i < 1000; i++)
		assert_true(rng_below(&r, 1) == 0);
	/* in range, including n that force many rejections and the largest n */
	const uint64_t ns[] = {2, 3, 1000, (1ULL << 63) + 1, UINT64_MAX};
	for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
		for (int i = 0; i < 10000; i++)
			assert_true(rng_below(&r, ns[k]) < ns[k]);
	/* unbiased where a plain modulo is not: for n = 3 * 2^62, x % n maps two
	 * quarters of the 64-bit range onto [0, 2^62), giving P = 1/2 instead of 1/3 */
	uint64_t n = 3ULL << 62;
	size_t low = 0;
	for (size_t i = 0; i < N; i++)
		low += rng_below(&r, n) < (1ULL << 62);
	assert_rel((double)low / N, 1.0 / 3, 0.02, "P(rng_below(3 * 2^62) < 2^62)"); /* SE 0.32% */
	/* and small n: every value equally often */
	size_t counts[7] = {0};
	for (size_t i = 0; i < 7 * 50000; i++)
		counts[rng_below(&r, 7)]++;
	for (int v = 0; v < 7; v++)
		assert_rel((double)counts[v], 50000, 0.03, "rng_below(7) count"); /* SE 0.41% */
}

static void test_normal(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 3);
	for (size_t i = 0; i < N; i++)
		xs[i] = rng_normal(&r);
	double mean, var, med;
	mean_var_median(&mean, &var, &med);
	assert_true(fabs(mean) < 0.012); /* SE 0.0022 */
	assert_true(fabs(med) < 0.015);  /* SE 0.0028 */
	assert_rel(var, 1, 0.02, "normal variance"); /* SE 0.32% */
}

static void test_gamma(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 4);
	/* shape < 1 takes the boost path; shape 1 is the exponential; mean k theta, variance k theta^2 */
	const double shapes[] = {0.25, 0.5, 1, 2.5, 9};
	for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
		double a = shapes[k], theta = 2;
		for (size_t i = 0; i < N; i++) {
			xs[i] = rng_gamma(&r, a, theta);
			assert_true(xs[i] >= 0);
		}
		double mean, var, med;
		mean_var_median(&mean, &var, &med);
		/* SE of the mean: 1/sqrt(a N) relative (0.45% at a = 0.25); of the
		 * variance: sqrt((2 + 6/a) / N) relative (1.2% at a = 0.25) */
		assert_rel(mean, a * theta, 0.025, "gamma mean");
		assert_rel(var, a * theta * theta, 0.07, "gamma variance");
	}
	/* the bench's arrivals: Gamma(burstiness, 1/(rate burstiness)) has mean 1/rate */
	for (size_t i = 0; i < N; i++)
		xs[i] = rng_gamma(&r, 0.3, 1.0 / (20 * 0.3));
	double mean, var, med;
	mean_var_median(&mean, &var, &med);
	assert_rel(mean, 1.0 / 20, 0.03, "gamma inter-arrival mean");
}

static void test_exponential(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 5);
	for (size_t i = 0; i < N; i++) {
		xs[i] = rng_exponential(&r, 3);
		assert_true(xs[i] >= 0 && isfinite(xs[i]));
	}
	double mean, var, med;
	mean_var_median(&mean, &var, &med);
	assert_rel(mean, 3, 0.015, "exponential mean");             /* SE 0.22% */
	assert_rel(med, 3 * log(2), 0.02, "exponential median");    /* SE 0.32% */
	assert_rel(var, 9, 0.05, "exponential variance");           /* SE 0.67% */
}

static void test_lognormal(void **state)
{
	(void)state;
	struct rng r;
	rng_seed(&r, 6);
	/* the data set generator's user messages: median 33 tokens, sigma 1.2 */
	for (size_t i = 0; i < N; i++) {
		xs[i] = rng_lognormal(&r, 33, 1.2);
		assert_true(xs[i] > 0);
	}
	double mean, var, med;
	mean_var_median(&mean, &var, &med);
	assert_rel(med, 33, 0.02, "lognormal median");                  /* SE 0.34% */
	assert_rel(mean, 33 * exp(1.2 * 1.2 / 2), 0.03, "lognormal mean"); /* SE 0.4% */
	/* log of the draws: mean log(33), sd 1.2 */
	double s = 0, q = 0;
	for (size_t i = 0; i < N; i++)
		s += log(xs[i]);
	for (size_t i = 0; i < N; i++)
		q += (log(xs[i]) - s / N) * (log(xs[i]) - s / N);
	assert_true(fabs(s / N - log(33)) < 0.02); /* SE 0.0027 */
	assert_rel(sqrt(q / (N - 1)), 1.2, 0.01, "lognormal sigma"); /* SE 0.16% */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_and_sequence), cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_uniform),           cmocka_unit_test(test_below),
		cmocka_unit_test(test_normal),            cmocka_unit_test(test_gamma),
		cmocka_unit_test(test_exponential),       cmocka_unit_test(test_lognormal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
