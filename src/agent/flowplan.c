/* flowplan.c: AVDC's flow -> 3D object motion (contract in flowplan.h). */
#include "agent/flowplan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define LM_MAX_ITERS 100

void sp_fp_cfg_default(sp_fp_cfg *c) {
  c->samples = 500;
  c->grasp_r = 5.0;
  c->ransac_tries = 100;
  c->ransac_px = 0.5;
  c->restarts = 50;
  c->restart_loss = 1e-3;
  c->fb_px = 0;
}

struct sp_fp_ws {
  int cap;
  double *uv1, *uv2, *P, *d;
  double *hid;  // the occlusion test's hidden points while they are set apart (7 per point)
  int *inl;
};

void sp_fp_ws_free(sp_fp_ws *ws) {
  if (!ws) return;
  free(ws->uv1);
  free(ws->uv2);
  free(ws->P);
  free(ws->d);
  free(ws->hid);
  free(ws->inl);
  free(ws);
}

sp_fp_ws *sp_fp_ws_new(const sp_fp_cfg *cfg, char *err) {
  if (cfg->samples < 2 || cfg->ransac_tries < 1 || cfg->ransac_px <= 0 || cfg->restarts < 0 || cfg->grasp_r <= 0 ||
      !(cfg->fb_px >= 0)) {
    sp_errf(err, "flow plan: samples >= 2, ransac_tries >= 1, ransac_px > 0, restarts >= 0, grasp_r > 0, fb_px >= 0");
    return NULL;
  }
  sp_fp_ws *ws = calloc(1, sizeof *ws);
  if (!ws) { sp_errf(err, "out of memory"); return NULL; }
  size_t n = (size_t)cfg->samples;
  ws->cap = cfg->samples;
  ws->uv1 = malloc(sizeof(double) * 2 * n);
  ws->uv2 = malloc(sizeof(double) * 2 * n);
  ws->P = malloc(sizeof(double) * 3 * n);
  ws->d = malloc(sizeof(double) * n);
  ws->hid = malloc(sizeof(double) * 7 * n);
  ws->inl = malloc(sizeof(int) * n);
  if (!ws->uv1 || !ws->uv2 || !ws->P || !ws->d || !ws->hid || !ws->inl) {
    sp_fp_ws_free(ws);
    sp_errf(err, "out of memory");
    return NULL;
  }
  return ws;
}

void sp_fp_backproject(const sp_camera_matrix *cm, double u, double v, double z, double p[3]) {
  double c[3] = {(u - cm->K[2]) * z / cm->K[0], (v - cm->K[5]) * z / cm->K[4], z};
  for (int i = 0; i < 3; i++) c[i] -= cm->t[i];
  for (int j = 0; j < 3; j++) p[j] = cm->R[j] * c[0] + cm->R[3 + j] * c[1] + cm->R[6 + j] * c[2];  // R^T c
}

/* bilinear lookup of channel ch of a (h x w x nc) float map at (x, y), clamped to the image */
static double bilinear(const float *map, int w, int h, int nc, int ch, double x, double y) {
  if (x < 0) x = 0;
  if (y < 0) y = 0;
  if (x > w - 1) x = w - 1;
  if (y > h - 1) y = h - 1;
  int x0 = (int)x, y0 = (int)y;
  if (x0 > w - 2) x0 = w - 2;
  if (y0 > h - 2) y0 = h - 2;
  double fx = x - x0, fy = y - y0;
  const float *a = map + ((size_t)y0 * w + x0) * nc + ch;
  const size_t dx = (size_t)nc, dy = (size_t)w * nc;
  double top = a[0] * (1 - fx) + a[dx] * fx, bot = a[dy] * (1 - fx) + a[dy + dx] * fx;
  return top * (1 - fy) + bot * fy;
}

static void mat3_mul(const double *a, const double *b, double *c) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) c[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
}

/* R = Rx Ry Rz and, when dR, its derivatives along roll, pitch and yaw */
static void rotation(double roll, double pitch, double yaw, double R[9], double dR[3][9]) {
  double cr = cos(roll), sr = sin(roll), cp = cos(pitch), sp = sin(pitch), cy = cos(yaw), sy = sin(yaw);
  double Rx[9] = {1, 0, 0, 0, cr, -sr, 0, sr, cr}, Ry[9] = {cp, 0, sp, 0, 1, 0, -sp, 0, cp};
  double Rz[9] = {cy, -sy, 0, sy, cy, 0, 0, 0, 1}, t[9];
  mat3_mul(Rx, Ry, t);
  mat3_mul(t, Rz, R);
  if (!dR) return;
  double dRx[9] = {0, 0, 0, 0, -sr, -cr, 0, cr, -sr}, dRy[9] = {-sp, 0, cp, 0, 0, 0, -cp, 0, -sp};
  double dRz[9] = {-sy, -cy, 0, cy, -sy, 0, 0, 0, 0}, u[9];
  mat3_mul(dRx, Ry, u);
  mat3_mul(u, Rz, dR[0]);
  mat3_mul(Rx, dRy, u);
  mat3_mul(u, Rz, dR[1]);
  mat3_mul(t, dRz, dR[2]);
}

void sp_fp_rotation(double roll, double pitch, double yaw, double R[9]) { rotation(roll, pitch, yaw, R, NULL); }

static void apply(const double R[9], const double t[3], const double p[3], double q[3]) {
  for (int i = 0; i < 3; i++) q[i] = R[3 * i] * p[0] + R[3 * i + 1] * p[1] + R[3 * i + 2] * p[2] + t[i];
}

/* the fit's loss at x and, when A and g are given, the Gauss-Newton terms J^T J and J^T r of its
 * residuals ((proj - uv) / sqrt(2n) per coordinate, sqrt(max(1, |t|) - 1)) */
static double accumulate(const double *P, const double *uv, int n, const sp_camera_matrix *cm, const double x[6],
                         double A[36], double g[6]) {
  double R[9], dR[3][9];
  rotation(x[3], x[4], x[5], R, A ? dR : NULL);
  if (A) {
    memset(A, 0, sizeof(double) * 36);
    memset(g, 0, sizeof(double) * 6);
  }
  const double s = n ? 1.0 / sqrt(2.0 * n) : 0, *Rc = cm->R;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    double q[3], c[3];
    apply(R, x, P + 3 * i, q);
    apply(Rc, cm->t, q, c);
    double z = c[2] > 1e-6 ? c[2] : 1e-6;
    double ru = (cm->K[0] * c[0] / z + cm->K[2] - uv[2 * i]) * s;
    double rv = (cm->K[4] * c[1] / z + cm->K[5] - uv[2 * i + 1]) * s;
    sum += ru * ru + rv * rv;
    if (!A) continue;
    double du[3], dv[3], ju[6], jv[6];  // d(u, v)/dq, then d(ru, rv)/dx
    for (int j = 0; j < 3; j++) {
      du[j] = s * cm->K[0] * (Rc[j] * z - c[0] * Rc[6 + j]) / (z * z);
      dv[j] = s * cm->K[4] * (Rc[3 + j] * z - c[1] * Rc[6 + j]) / (z * z);
      ju[j] = du[j];
      jv[j] = dv[j];
    }
    for (int k = 0; k < 3; k++) {
      double dq[3];
      for (int r = 0; r < 3; r++) dq[r] = dR[k][3 * r] * P[3 * i] + dR[k][3 * r + 1] * P[3 * i + 1] + dR[k][3 * r + 2] * P[3 * i + 2];
      ju[3 + k] = du[0] * dq[0] + du[1] * dq[1] + du[2] * dq[2];
      jv[3 + k] = dv[0] * dq[0] + dv[1] * dq[1] + dv[2] * dq[2];
    }
    for (int a = 0; a < 6; a++) {
      g[a] += ju[a] * ru + jv[a] * rv;
      for (int b = 0; b < 6; b++) A[6 * a + b] += ju[a] * ju[b] + jv[a] * jv[b];
    }
  }
  double tn = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]), pen = tn > 1 ? tn - 1 : 0;
  sum += pen;
  if (A && pen > 0) {
    double rp = sqrt(pen), j[3];
    for (int a = 0; a < 3; a++) j[a] = x[a] / (tn * 2 * rp);
    for (int a = 0; a < 3; a++) {
      g[a] += j[a] * rp;
      for (int b = 0; b < 3; b++) A[6 * a + b] += j[a] * j[b];
    }
  }
  return sum;
}

double sp_fp_rigid_loss(const double *P, const double *uv, int n, const sp_camera_matrix *cm, const double x[6]) {
  return accumulate(P, uv, n, cm, x, NULL, NULL);
}

/* solve M d = b for a 6 x 6 system by Gaussian elimination with partial pivoting; -1 if singular */
static int solve6(double M[36], double b[6], double d[6]) {
  for (int c = 0; c < 6; c++) {
    int p = c;
    for (int r = c + 1; r < 6; r++)
      if (fabs(M[6 * r + c]) > fabs(M[6 * p + c])) p = r;
    if (fabs(M[6 * p + c]) < 1e-300) return -1;
    if (p != c) {
      for (int k = 0; k < 6; k++) {
        double t = M[6 * c + k];
        M[6 * c + k] = M[6 * p + k];
        M[6 * p + k] = t;
      }
      double t = b[c];
      b[c] = b[p];
      b[p] = t;
    }
    for (int r = c + 1; r < 6; r++) {
      double f = M[6 * r + c] / M[6 * c + c];
      for (int k = c; k < 6; k++) M[6 * r + k] -= f * M[6 * c + k];
      b[r] -= f * b[c];
    }
  }
  for (int c = 5; c >= 0; c--) {
    double s = b[c];
    for (int k = c + 1; k < 6; k++) s -= M[6 * c + k] * d[k];
    d[c] = s / M[6 * c + c];
  }
  return 0;
}

/* Levenberg-Marquardt from x (updated in place); returns the loss */
static double lm(const double *P, const double *uv, int n, const sp_camera_matrix *cm, double x[6]) {
  double A[36], g[6], lam = 1e-3;
  double L = accumulate(P, uv, n, cm, x, A, g);
  for (int it = 0; it < LM_MAX_ITERS && lam < 1e12; it++) {
    double M[36], b[6], d[6], xn[6];
    memcpy(M, A, sizeof M);
    for (int k = 0; k < 6; k++) {
      M[7 * k] += lam * A[7 * k] + 1e-12;
      b[k] = -g[k];
    }
    if (solve6(M, b, d)) { lam *= 4; continue; }
    for (int k = 0; k < 6; k++) xn[k] = x[k] + d[k];
    double Ln = accumulate(P, uv, n, cm, xn, NULL, NULL);
    if (Ln < L) {
      double gain = L - Ln;
      memcpy(x, xn, sizeof xn);
      L = accumulate(P, uv, n, cm, x, A, g);
      lam = lam / 3 > 1e-12 ? lam / 3 : 1e-12;
      if (gain < 1e-12 * (1 + L)) break;
    } else {
      lam *= 4;
    }
  }
  return L;
}

double sp_fp_rigid_fit(const double *P, const double *uv, int n, const sp_camera_matrix *cm, int restarts,
                       double restart_loss, sp_mt19937 *rng, double x[6]) {
  memset(x, 0, sizeof(double) * 6);
  double best = lm(P, uv, n, cm, x);
  if (best < restart_loss) return best;
  for (int r = 0; r < restarts; r++) {
    double y[6];
    for (int k = 0; k < 6; k++) y[k] = sp_mt_normal(rng);
    double L = lm(P, uv, n, cm, y);
    if (L < best) {
      best = L;
      memcpy(x, y, sizeof y);
    }
  }
  return best;
}

int sp_fp_ransac(const double *a, const double *b, int n, int tries, double thresh, sp_mt19937 *rng, int *inl) {
  if (n < 2) {
    for (int i = 0; i < n; i++) inl[i] = i;
    return n;
  }
  int best = -1;
  double bs[4] = {1, 0, 0, 0};  // the best similarity z -> s z + o (complex s = bs[0..1], o = bs[2..3])
  for (int t = 0; t < tries; t++) {
    int i = (int)(sp_mt_u32(rng) % (uint32_t)n), j = (int)(sp_mt_u32(rng) % (uint32_t)(n - 1));
    if (j >= i) j++;
    double dax = a[2 * j] - a[2 * i], day = a[2 * j + 1] - a[2 * i + 1];
    double dbx = b[2 * j] - b[2 * i], dby = b[2 * j + 1] - b[2 * i + 1];
    double den = dax * dax + day * day, sr = 1, si = 0;
    if (den > 1e-18) {  // a degenerate sample is the identity (AVDC's fallback)
      sr = (dbx * dax + dby * day) / den;
      si = (dby * dax - dbx * day) / den;
    }
    double ox = den > 1e-18 ? b[2 * i] - (sr * a[2 * i] - si * a[2 * i + 1]) : 0;
    double oy = den > 1e-18 ? b[2 * i + 1] - (si * a[2 * i] + sr * a[2 * i + 1]) : 0;
    int cnt = 0;
    for (int k = 0; k < n; k++) {
      double px = sr * a[2 * k] - si * a[2 * k + 1] + ox - b[2 * k];
      double py = si * a[2 * k] + sr * a[2 * k + 1] + oy - b[2 * k + 1];
      cnt += px * px + py * py < thresh * thresh;
    }
    if (cnt > best) {
      best = cnt;
      bs[0] = sr, bs[1] = si, bs[2] = ox, bs[3] = oy;
    }
  }
  int m = 0;
  for (int k = 0; k < n; k++) {
    double px = bs[0] * a[2 * k] - bs[1] * a[2 * k + 1] + bs[2] - b[2 * k];
    double py = bs[1] * a[2 * k] + bs[0] * a[2 * k + 1] + bs[3] - b[2 * k + 1];
    if (px * px + py * py < thresh * thresh) inl[m++] = k;
  }
  return m;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* the occlusion test: points whose round trip through the backward flow bflow misses their start
 * by more than tol px go after the visible ones (both in their order), uv1, uv2 and P alike;
 * returns the visible count */
static int split_hidden(sp_fp_ws *ws, int n, const float *bflow, int w, int h, double tol) {
  int nv = 0, nh = 0;
  for (int k = 0; k < n; k++) {
    const double x2 = ws->uv2[2 * k], y2 = ws->uv2[2 * k + 1];
    const double bx = x2 + bilinear(bflow, w, h, 2, 0, x2, y2), by = y2 + bilinear(bflow, w, h, 2, 1, x2, y2);
    if (hypot(bx - ws->uv1[2 * k], by - ws->uv1[2 * k + 1]) <= tol) {  // seen; nv <= k: a forward copy in place
      memmove(ws->uv1 + 2 * nv, ws->uv1 + 2 * k, sizeof(double) * 2);
      memmove(ws->uv2 + 2 * nv, ws->uv2 + 2 * k, sizeof(double) * 2);
      memmove(ws->P + 3 * nv, ws->P + 3 * k, sizeof(double) * 3);
      nv++;
    } else {
      double *dst = ws->hid + 7 * nh++;
      memcpy(dst, ws->uv1 + 2 * k, sizeof(double) * 2);
      memcpy(dst + 2, ws->uv2 + 2 * k, sizeof(double) * 2);
      memcpy(dst + 4, ws->P + 3 * k, sizeof(double) * 3);
    }
  }
  for (int j = 0; j < nh; j++) {
    const double *src = ws->hid + 7 * j;
    memcpy(ws->uv1 + 2 * (nv + j), src, sizeof(double) * 2);
    memcpy(ws->uv2 + 2 * (nv + j), src + 2, sizeof(double) * 2);
    memcpy(ws->P + 3 * (nv + j), src + 4, sizeof(double) * 3);
  }
  return nv;
}

int sp_fp_run(const sp_fp_cfg *cfg, sp_fp_ws *ws, const uint8_t *mask, const float *depth, int w, int h,
              const sp_camera_matrix *cm, const float *const *flows, const float *const *bflows, int nflow,
              uint32_t seed, sp_fp_plan *out, char *err) {
  if (nflow > SP_FP_MAX_FLOWS) return sp_errf(err, "flow plan: %d flows, at most %d", nflow, SP_FP_MAX_FLOWS);
  if (w < 2 || h < 2) return sp_errf(err, "flow plan: a %d x %d view", w, h);
  if (cfg->fb_px > 0 && !bflows)
    return sp_errf(err, "flow plan: the occlusion test (fb_px %g) without backward flows", cfg->fb_px);
  memset(out, 0, sizeof *out);
  sp_mt19937 rng;
  sp_mt_seed(&rng, seed);
  /* 1. the mask's points (AVDC samples the background when the mask is empty) */
  long on = 0, npx = (long)w * h;
  for (long i = 0; i < npx; i++) on += mask[i] != 0;
  const int want = on ? 1 : 0;
  out->mask_empty = !on;
  if (!on) on = npx;
  int n = ws->cap;
  for (int k = 0; k < n; k++) {
    long r = (long)(sp_mt_u32(&rng) % (uint32_t)on), i = 0;
    for (;; i++)
      if ((mask[i] != 0) == want && r-- == 0) break;
    ws->uv1[2 * k] = (double)(i % w) + sp_mt_uniform(&rng, -0.5, 0.5);
    ws->uv1[2 * k + 1] = (double)(i / w) + sp_mt_uniform(&rng, -0.5, 0.5);
  }
  for (int k = 0; k < n; k++)
    sp_fp_backproject(cm, ws->uv1[2 * k], ws->uv1[2 * k + 1], bilinear(depth, w, h, 1, 0, ws->uv1[2 * k], ws->uv1[2 * k + 1]),
                      ws->P + 3 * k);
  /* the grasp point: the sample closest to all others, at its neighbours' median depth */
  int gi = 0;
  double gbest = INFINITY;
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int j = 0; j < n; j++) s += hypot(ws->uv1[2 * j] - ws->uv1[2 * i], ws->uv1[2 * j + 1] - ws->uv1[2 * i + 1]);
    if (s < gbest) gbest = s, gi = i;
  }
  const double gu = ws->uv1[2 * gi], gv = ws->uv1[2 * gi + 1];
  int nd = 0;
  for (int j = 0; j < n; j++)
    if (hypot(ws->uv1[2 * j] - gu, ws->uv1[2 * j + 1] - gv) < cfg->grasp_r)
      ws->d[nd++] = bilinear(depth, w, h, 1, 0, ws->uv1[2 * j], ws->uv1[2 * j + 1]);
  qsort(ws->d, (size_t)nd, sizeof(double), cmp_double);
  double gz = nd % 2 ? ws->d[nd / 2] : 0.5 * (ws->d[nd / 2 - 1] + ws->d[nd / 2]);  // nd >= 1: the grasp sample itself
  sp_fp_backproject(cm, gu, gv, gz, out->grasp);
  memcpy(out->sub[0], out->grasp, sizeof out->grasp);
  /* 2. per flow: warp, RANSAC, rigid fit, move */
  double center[3];
  memcpy(center, out->grasp, sizeof center);
  for (int f = 0; f < nflow; f++) {
    for (int k = 0; k < n; k++) {  // AVDC keeps warped points inside [0, size - 2]
      double x = ws->uv1[2 * k], y = ws->uv1[2 * k + 1];
      double x2 = x + bilinear(flows[f], w, h, 2, 0, x, y), y2 = y + bilinear(flows[f], w, h, 2, 1, x, y);
      ws->uv2[2 * k] = x2 < 0 ? 0 : x2 > w - 2 ? w - 2 : x2;
      ws->uv2[2 * k + 1] = y2 < 0 ? 0 : y2 > h - 2 ? h - 2 : y2;
    }
    const int nv = cfg->fb_px > 0 ? split_hidden(ws, n, bflows[f], w, h, cfg->fb_px) : n;
    out->hidden[f] = n - nv;
    double *x = out->x[f];
    if (cfg->fb_px > 0 && nv < 2) {  // nothing to fit: the object stays, every point kept
      memset(x, 0, sizeof(double) * 6);
      out->inliers[f] = 0;
      out->loss[f] = 0;
      memcpy(out->sub[f + 1], center, sizeof center);
      continue;
    }
    int m = sp_fp_ransac(ws->uv1, ws->uv2, nv, cfg->ransac_tries, cfg->ransac_px, &rng, ws->inl);
    for (int k = 0; k < m; k++) {  // compact to the inliers (inl is increasing), the hidden after them
      int i = ws->inl[k];
      memmove(ws->uv2 + 2 * k, ws->uv2 + 2 * i, sizeof(double) * 2);
      memmove(ws->P + 3 * k, ws->P + 3 * i, sizeof(double) * 3);
    }
    memmove(ws->uv2 + 2 * m, ws->uv2 + 2 * nv, sizeof(double) * 2 * (size_t)(n - nv));
    memmove(ws->P + 3 * m, ws->P + 3 * nv, sizeof(double) * 3 * (size_t)(n - nv));
    n = m + (n - nv);
    out->inliers[f] = m;
    out->loss[f] = sp_fp_rigid_fit(ws->P, ws->uv2, m, cm, cfg->restarts, cfg->restart_loss, &rng, x);
    double R[9], q[3];
    sp_fp_rotation(x[3], x[4], x[5], R);
    for (int k = 0; k < n; k++) {
      apply(R, x, ws->P + 3 * k, q);
      memcpy(ws->P + 3 * k, q, sizeof q);
      sp_camera_project(cm, q, &ws->uv1[2 * k], &ws->uv1[2 * k + 1]);
    }
    apply(R, x, center, q);
    memcpy(center, q, sizeof q);
    memcpy(out->sub[f + 1], center, sizeof center);
  }
  out->nflow = nflow;
  return 0;
}
