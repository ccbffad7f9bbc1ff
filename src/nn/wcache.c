/* wcache.c: frozen weight ranges and the derived forms of their weights (Winograd transforms)
 * kept across calls. A derived form is built on first use and lives until its range is thawed.
 * All table access is under one OpenMP critical section; lookups are linear (a model has a few
 * dozen convolutions). */
#include <stdint.h>
#include <stdlib.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_winograd.h"

enum { MAX_FROZEN = 16 };

typedef struct {
  const float *w;
  int tag, d0, d1;
  float *u;
} wentry;

static struct {
  const float *lo;
  size_t n;
} g_frozen[MAX_FROZEN];
static int g_nfrozen;
static wentry *g_ent;
static int g_nent, g_cap;

/* [p, p+n) inside / overlapping [lo, lo+ln), compared as addresses (the ranges may belong to
 * different allocations) */
static int inside(const float *p, size_t n, const float *lo, size_t ln) {
  uintptr_t a = (uintptr_t)p, b = (uintptr_t)lo;
  return a >= b && a + n * sizeof(float) <= b + ln * sizeof(float);
}
static int overlaps(const float *p, size_t n, const float *lo, size_t ln) {
  uintptr_t a = (uintptr_t)p, b = (uintptr_t)lo;
  return a < b + ln * sizeof(float) && b < a + n * sizeof(float);
}

int nn_weights_freeze(const float *w, size_t n) {
  int rc = -1;
#pragma omp critical(nn_wcache)
  {
    for (int i = 0; i < g_nfrozen && rc; i++)
      if (g_frozen[i].lo == w && g_frozen[i].n == n) rc = 0;  // already frozen
    if (rc && g_nfrozen < MAX_FROZEN) {
      g_frozen[g_nfrozen].lo = w;
      g_frozen[g_nfrozen].n = n;
      __atomic_store_n(&g_nfrozen, g_nfrozen + 1, __ATOMIC_RELEASE);
      rc = 0;
    }
  }
  if (rc) sp_log(SP_LOG_WARN, "nn_weights_freeze: more than %d frozen ranges; weights stay unfrozen", MAX_FROZEN);
  return rc;
}

void nn_weights_thaw(const float *w, size_t n) {
#pragma omp critical(nn_wcache)
  {
    for (int i = 0; i < g_nfrozen;) {
      if (!overlaps(w, n, g_frozen[i].lo, g_frozen[i].n)) {
        i++;
        continue;
      }
      for (int e = 0; e < g_nent;) {
        if (inside(g_ent[e].w, 1, g_frozen[i].lo, g_frozen[i].n)) {
          free(g_ent[e].u);
          g_ent[e] = g_ent[--g_nent];
        } else {
          e++;
        }
      }
      g_frozen[i] = g_frozen[g_nfrozen - 1];
      __atomic_store_n(&g_nfrozen, g_nfrozen - 1, __ATOMIC_RELEASE);
    }
  }
}

const float *nn_wcache_get(const float *w, size_t nw, int tag, int d0, int d1, size_t usize,
                           nn_wcache_build build) {
  const float *u = NULL;
  if (!__atomic_load_n(&g_nfrozen, __ATOMIC_ACQUIRE)) return NULL;  // nothing frozen: no lock
#pragma omp critical(nn_wcache)
  {
    int fz = 0;
    for (int i = 0; i < g_nfrozen && !fz; i++) fz = inside(w, nw, g_frozen[i].lo, g_frozen[i].n);
    for (int e = 0; e < g_nent && fz && !u; e++)
      if (g_ent[e].w == w && g_ent[e].tag == tag && g_ent[e].d0 == d0 && g_ent[e].d1 == d1) u = g_ent[e].u;
    if (fz && !u) {
      if (g_nent == g_cap) {
        int cap = g_cap ? 2 * g_cap : 64;
        wentry *ne = realloc(g_ent, sizeof(wentry) * cap);
        if (ne) g_ent = ne, g_cap = cap;
      }
      float *buf = g_nent < g_cap ? aligned_alloc(64, (usize * sizeof(float) + 63) / 64 * 64) : NULL;
      if (buf) {
        build(buf, w, d0, d1);
        g_ent[g_nent++] = (wentry){w, tag, d0, d1, buf};
        u = buf;
      }
    }
  }
  return u;
}
