/* shape.c: contour/shape similarity from SIFT features (Lowe 2004), keypoints and descriptors by
 * VLFeat (Debian libvlfeat-dev).
 *
 * Detection: DoG scale space from octave first_octave (VLFeat's o_min: -1 upsamples the frame x2,
 * 0 starts at full resolution, 1 at half resolution), 3 levels per octave, all octaves,
 * peak threshold and edge threshold from the config (intensities 0..255), up to four orientations
 * per keypoint, one 128-d descriptor each (VLFeat's L2 / clamp 0.2 / L2 normalisation). At most
 * `max_feats` features are kept per frame: octaves are visited finest first and within an octave the
 * keypoints are taken by decreasing |DoG| peak, so a cap keeps the strongest structure and bounds
 * the cost (VLFeat spends tens of microseconds per descriptor).
 *
 * Score: feature i of a matches feature j of b when j is i's nearest neighbour in descriptor
 * space, the nearest distance is below `ratio` times the second nearest (Lowe's ratio test), and
 * i is also j's nearest neighbour in a (mutual check, so matches are one-to-one). The score is
 * 2 M / (na + nb) in [0, 1]: 1 for identical frames with distinct descriptors, 1 when neither
 * frame has features (two flat frames look alike), 0 when only one has. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <vl/sift.h>

#include "core/log.h"
#include "match/match.h"

struct sp_shape_ws {
  int w, h, max_feats;
  VlSiftFilt *sift;
  float *img;      // (h x w) frame as float 0..255
  float *best_b;   // (max_feats) best dot product seen for each feature of b
  int *arg_b;      // (max_feats) its index in a
  float *peak;     // (SHAPE_MAX_KP) |DoG| of the keypoints of one octave
  int *order;      // (SHAPE_MAX_KP) their order by decreasing peak
};

#define SHAPE_MAX_KP 4096   // keypoints ranked per octave (beyond: dropped, in scan order)

sp_shape_ws *sp_shape_ws_new(int w, int h, int first_octave, int max_feats, double peak_thresh,
                             double edge_thresh, char *err) {
  if (w < 16 || h < 16) {
    sp_errf(err, "shape: frame %dx%d is smaller than 16x16", w, h);
    return NULL;
  }
  if (max_feats < 1 || max_feats > 100000) {
    sp_errf(err, "shape: max_feats %d must be in 1..100000", max_feats);
    return NULL;
  }
  if (first_octave < -1 || first_octave > 1) {
    sp_errf(err, "shape: first octave %d must be -1, 0 or 1", first_octave);
    return NULL;
  }
  sp_shape_ws *ws = calloc(1, sizeof *ws);
  if (ws) {
    ws->img = malloc(sizeof(float) * (size_t)w * h);
    ws->best_b = malloc(sizeof(float) * max_feats);
    ws->arg_b = malloc(sizeof(int) * max_feats);
    ws->peak = malloc(sizeof(float) * SHAPE_MAX_KP);
    ws->order = malloc(sizeof(int) * SHAPE_MAX_KP);
    ws->sift = vl_sift_new(w, h, -1, 3, first_octave);
  }
  if (!ws || !ws->img || !ws->best_b || !ws->arg_b || !ws->peak || !ws->order || !ws->sift) {
    sp_shape_ws_free(ws);
    sp_errf(err, "shape: out of memory for %dx%d", w, h);
    return NULL;
  }
  ws->w = w;
  ws->h = h;
  ws->max_feats = max_feats;
  vl_sift_set_peak_thresh(ws->sift, peak_thresh);
  vl_sift_set_edge_thresh(ws->sift, edge_thresh);
  return ws;
}

void sp_shape_ws_free(sp_shape_ws *ws) {
  if (!ws) return;
  if (ws->sift) vl_sift_delete(ws->sift);
  free(ws->img);
  free(ws->best_b);
  free(ws->arg_b);
  free(ws->peak);
  free(ws->order);
  free(ws);
}

int sp_shape_feats_alloc(sp_shape_feats *f, int cap, char *err) {
  memset(f, 0, sizeof *f);
  f->xy = malloc(sizeof(float) * 2 * (size_t)cap);
  f->desc = malloc(sizeof(float) * SP_SHAPE_DESC * (size_t)cap);
  if (!f->xy || !f->desc) {
    sp_shape_feats_free(f);
    return sp_errf(err, "shape: out of memory for %d features", cap);
  }
  f->cap = cap;
  return 0;
}

void sp_shape_feats_free(sp_shape_feats *f) {
  free(f->xy);
  free(f->desc);
  memset(f, 0, sizeof *f);
}

void sp_shape_extract(sp_shape_ws *ws, const uint8_t *img, sp_shape_feats *out) {
  int cap = out->cap < ws->max_feats ? out->cap : ws->max_feats;
  out->n = 0;
  for (int i = 0; i < ws->w * ws->h; i++) ws->img[i] = img[i];
  VlSiftFilt *f = ws->sift;
  int first = 1;
  /* VLFeat caches the gradient of the octave it last described (grad_o) and process_first_octave
   * does not clear it: after a frame that stopped in its first octave, the next frame's descriptors
   * would use the old frame's gradients. Invalidate it. */
  f->grad_o = f->o_min - 1;
  while (out->n < cap) {
    int e = first ? vl_sift_process_first_octave(f, ws->img) : vl_sift_process_next_octave(f);
    first = 0;
    if (e) break;   // VL_ERR_EOF: no more octaves
    vl_sift_detect(f);
    const VlSiftKeypoint *kp = vl_sift_get_keypoints(f);
    int nk = vl_sift_get_nkeypoints(f);
    if (nk > SHAPE_MAX_KP) nk = SHAPE_MAX_KP;
    /* rank this octave's keypoints by |DoG| at their integer position (insertion sort: few) */
    const int ow = vl_sift_get_octave_width(f), oh = vl_sift_get_octave_height(f);
    for (int i = 0; i < nk; i++) {
      const vl_sift_pix *dog = f->dog + (size_t)ow * oh * (kp[i].is - f->s_min);
      float pk = fabsf(dog[kp[i].iy * ow + kp[i].ix]);
      int j = i;
      while (j > 0 && ws->peak[j - 1] < pk) {
        ws->peak[j] = ws->peak[j - 1];
        ws->order[j] = ws->order[j - 1];
        j--;
      }
      ws->peak[j] = pk;
      ws->order[j] = i;
    }
    for (int r = 0; r < nk && out->n < cap; r++) {
      const VlSiftKeypoint *k = &kp[ws->order[r]];
      double ang[4];
      int na = vl_sift_calc_keypoint_orientations(f, ang, k);
      for (int a = 0; a < na && out->n < cap; a++) {
        vl_sift_calc_keypoint_descriptor(f, out->desc + (size_t)out->n * SP_SHAPE_DESC, k, ang[a]);
        out->xy[2 * out->n] = k->x;
        out->xy[2 * out->n + 1] = k->y;
        out->n++;
      }
    }
  }
}

static inline float dot128(const float *a, const float *b) {
  float s = 0;
  for (int k = 0; k < SP_SHAPE_DESC; k++) s += a[k] * b[k];
  return s;
}

/* descriptors are unit length, so |a - b|^2 = 2 - 2 a.b: nearest = largest dot product */
double sp_shape_score(sp_shape_ws *ws, const sp_shape_feats *a, const sp_shape_feats *b,
                      double ratio, int *nmatch) {
  if (nmatch) *nmatch = 0;
  if (a->n == 0 && b->n == 0) return 1;
  if (a->n == 0 || b->n == 0) return 0;
  SP_ASSERT(b->n <= ws->max_feats);
  for (int j = 0; j < b->n; j++) {
    ws->best_b[j] = -2;
    ws->arg_b[j] = -1;
  }
  /* pass 1: each b's nearest a */
  for (int i = 0; i < a->n; i++) {
    const float *da = a->desc + (size_t)i * SP_SHAPE_DESC;
    for (int j = 0; j < b->n; j++) {
      float d = dot128(da, b->desc + (size_t)j * SP_SHAPE_DESC);
      if (d > ws->best_b[j]) {
        ws->best_b[j] = d;
        ws->arg_b[j] = i;
      }
    }
  }
  /* pass 2: for each a, nearest and second nearest b; ratio test and mutual check */
  const double r2 = ratio * ratio;
  int m = 0;
  for (int i = 0; i < a->n; i++) {
    const float *da = a->desc + (size_t)i * SP_SHAPE_DESC;
    float d1 = -2, d2 = -2;
    int j1 = -1;
    for (int j = 0; j < b->n; j++) {
      float d = dot128(da, b->desc + (size_t)j * SP_SHAPE_DESC);
      if (d > d1) {
        d2 = d1;
        d1 = d;
        j1 = j;
      } else if (d > d2) {
        d2 = d;
      }
    }
    double e1 = 2 - 2 * (double)d1, e2 = b->n > 1 ? 2 - 2 * (double)d2 : 4;  // squared distances
    if (e1 < 0) e1 = 0;
    if (j1 >= 0 && ws->arg_b[j1] == i && e1 < r2 * e2) m++;
  }
  if (nmatch) *nmatch = m;
  return 2.0 * m / (a->n + b->n);
}
