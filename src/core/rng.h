/* rng.h: a deterministic random number generator (xoshiro256**, seeded with
 * splitmix64) and the distributions prefixlb draws from. The state is always
 * the caller's: the core never uses a global RNG, so a seed reproduces a run. */
#ifndef PREFIXLB_RNG_H
#define PREFIXLB_RNG_H

#include <stdint.h>

struct rng {
	uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
double rng_uniform(struct rng *r);               /* [0, 1) */
uint64_t rng_below(struct rng *r, uint64_t n);   /* [0, n), unbiased; n > 0 */
double rng_normal(struct rng *r);                /* mean 0, sd 1 */
double rng_lognormal(struct rng *r, double median, double sigma);
double rng_exponential(struct rng *r, double mean);
double rng_gamma(struct rng *r, double shape, double scale); /* Marsaglia-Tsang */

#endif
