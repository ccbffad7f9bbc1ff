/* core.c: thread team, the split sgemm and the bump arena of the nn module. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"

static int g_threads = 0;  // 0 = not initialised

void nn_init(int nthreads) {
  openblas_set_num_threads(1);
  if (nthreads > 0) omp_set_num_threads(nthreads);
  g_threads = omp_get_max_threads();
}

int nn_threads(void) {
  if (!g_threads) nn_init(0);
  return g_threads;
}

/* split the larger of M and N over the team; each part is one single-threaded sgemm */
void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  int nt = nn_threads();
  enum CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = transB ? CblasTrans : CblasNoTrans;
  double work = 2.0 * M * N * (double)K;
  if (nt == 1 || omp_in_parallel() || work < 4e6) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int splitN = N >= M;
  int len = splitN ? N : M;
  int unit = splitN ? 16 : 8;  // keep kernel-friendly chunk edges
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    int per = ((len + n - 1) / n + unit - 1) / unit * unit;
    int lo = t * per, hi = lo + per < len ? lo + per : len;
    if (lo < hi) {
      if (splitN) {
        const float *Bp = transB ? B + (size_t)lo * ldb : B + lo;
        cblas_sgemm(CblasRowMajor, ta, tb, M, hi - lo, K, alpha, A, lda, Bp, ldb, beta, C + lo,
                    ldc);
      } else {
        const float *Ap = transA ? A + lo : A + (size_t)lo * lda;
        cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, N, K, alpha, Ap, lda, B, ldb, beta,
                    C + (size_t)lo * ldc, ldc);
      }
    }
  }
}

void nn_zero(float *x, size_t n) {
  int nt = nn_threads();
  if (n < 262144 || nt == 1 || omp_in_parallel()) {
    memset(x, 0, n * sizeof(float));
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), k = omp_get_num_threads();
    size_t per = ((n + k - 1) / k + 15) / 16 * 16, lo = t * per, hi = lo + per < n ? lo + per : n;
    if (lo < hi) memset(x + lo, 0, (hi - lo) * sizeof(float));
  }
}

int nn_arena_init(nn_arena *a, size_t cap) {
  a->used = 0;
  a->cap = cap;
  a->base = NULL;
  if (cap == 0) return 0;
  a->base = aligned_alloc(64, (cap + 63) / 64 * 64);
  if (!a->base) return -1;
  memset(a->base, 0, cap);
  return 0;
}

void nn_arena_free(nn_arena *a) {
  free(a->base);
  a->base = NULL;
  a->cap = a->used = 0;
}

void nn_arena_reset(nn_arena *a) { a->used = 0; }

float *nn_arena_floats(nn_arena *a, size_t n) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  size_t off = a->used;
  a->used += bytes;
  if (!a->base) return NULL;
  SP_ASSERT(a->used <= a->cap);
  return (float *)(a->base + off);
}
