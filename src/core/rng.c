#include "core/rng.h"

#include <math.h>
#include <stdio.h>

#define MT_N 624
#define MT_M 397

void sp_mt_seed(sp_mt19937 *r, uint32_t seed) {
  r->mt[0] = seed;
  for (int i = 1; i < MT_N; i++)
    r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
  r->mti = MT_N;
}

static void mt_twist(sp_mt19937 *r) {
  uint32_t *mt = r->mt;
  for (int i = 0; i < MT_N; i++) {
    uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
    uint32_t v = mt[(i + MT_M) % MT_N] ^ (y >> 1);
    if (y & 1u) v ^= 0x9908b0dfu;
    mt[i] = v;
  }
  r->mti = 0;
}

uint32_t sp_mt_u32(sp_mt19937 *r) {
  if (r->mti >= MT_N) mt_twist(r);
  uint32_t y = r->mt[r->mti++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

double sp_mt_double(sp_mt19937 *r) {
  uint32_t a = sp_mt_u32(r) >> 5, b = sp_mt_u32(r) >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

double sp_mt_uniform(sp_mt19937 *r, double lo, double hi) {
  return lo + (hi - lo) * sp_mt_double(r);
}

double sp_mt_normal(sp_mt19937 *r) {
  double u1 = sp_mt_double(r), u2 = sp_mt_double(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t sp_seed_derive(const char *task, const char *camera, long seed, const char *purpose) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s|%s|%ld|%s", task ? task : "", camera ? camera : "", seed,
           purpose ? purpose : "");
  uint64_t h = 1469598103934665603ull;
  for (const char *p = buf; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h ^= h >> 30; h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27; h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return (uint32_t)(h ^ (h >> 32));
}
