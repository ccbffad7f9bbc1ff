/* rng.h: NumPy-compatible MT19937 and seed derivation.
 *
 * sp_mt19937 reproduces NumPy's legacy RandomState: init_genrand(seed), 32-bit outputs,
 * and random_sample() as genrand_res53 (two outputs a, b: ((a>>5)*2^26 + (b>>6)) / 2^53).
 * Nothing in sp reads a global generator: every stream is seeded explicitly, usually through
 * sp_seed_derive(task, camera, seed, purpose) so streams never depend on run order. */
#ifndef SP_CORE_RNG_H
#define SP_CORE_RNG_H

#include <stdint.h>

typedef struct {
  uint32_t mt[624];  // state words
  int mti;           // next index into mt
} sp_mt19937;

void sp_mt_seed(sp_mt19937 *r, uint32_t seed);
uint32_t sp_mt_u32(sp_mt19937 *r);
double sp_mt_double(sp_mt19937 *r);                    // [0, 1), NumPy random_sample
double sp_mt_uniform(sp_mt19937 *r, double lo, double hi);  // lo + (hi-lo)*u, NumPy uniform
double sp_mt_normal(sp_mt19937 *r);                    // standard normal (Box-Muller, not NumPy's)

/* 32-bit seed from a tuple of names and numbers (FNV-1a over the text, splitmix-finalised) */
uint32_t sp_seed_derive(const char *task, const char *camera, long seed, const char *purpose);

#endif
