/* vunet_cond.c: the video U-Net's conditioning: the time and text embedding, the plan and
 * distance terms of the global condition, and plan-local's gated cross-attention (contract in
 * vunet.h; the network's walk in vunet.c calls the entry points of vunet_internal.h). */
#include "models/vunet_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/log.h"

#define P(o) (ps->data + (o))
#define G(o) (ps->grad + (o))

/* ---------------------------------------------------------------------------------------------
 * time and text embedding */

/* text slot j of sample b holds a token: a word with an id (words), a token of the sample's
 * cached text (clip) */
static int text_on(const sp_vunet *m, const sp_vunet_ws *w, int b, int j) {
  if (m->cache == NN_NONE) return w->ids[b * SP_TEXT_WORDS + j] >= 0;
  int r = w->crow[b];
  return r >= 0 && j < m->cfg.clip_len[r];
}

/* clip: cached token j of row r (clip_dim) */
static const float *cached(const sp_vunet *m, int r, int j) {
  return m->ps.data + m->cache + ((size_t)r * m->clip_tok + j) * m->cfg.clip_dim;
}

/* clip: x (text_dim) = text.clip(f), f (clip_dim) */
static void clip_proj(const sp_vunet *m, float *x, const float *f) {
  const nn_params *ps = &m->ps;
  const int D = m->cfg.text_dim, K = m->cfg.clip_dim;
  const float *W = P(m->cpw), *bias = P(m->cpb);
  for (int d = 0; d < D; d++) {
    const float *wr = W + (size_t)d * K;
    float s = 0.f;
    for (int k = 0; k < K; k++) s += wr[k] * f[k];
    x[d] = s + bias[d];
  }
}

/* clip: text.clip's gradients from g (text_dim), the gradient of clip_proj(f) */
static void clip_proj_backward(const sp_vunet *m, const float *g, const float *f) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const int D = m->cfg.text_dim, K = m->cfg.clip_dim;
  float *gW = G(m->cpw), *gb = G(m->cpb);
  for (int d = 0; d < D; d++) {
    float *gr = gW + (size_t)d * K;
    gb[d] += g[d];
    for (int k = 0; k < K; k++) gr[k] += g[d] * f[k];
  }
}

/* clip, text global: tv (B, D) = text.clip(mean of the sample's cached tokens) (text.clip is
 * affine: the mean of the projected tokens); no text: zeros */
static void clip_mean(const sp_vunet *m, sp_vunet_ws *w, int B) {
  const int D = m->cfg.text_dim, K = m->cfg.clip_dim;
  for (int b = 0; b < B; b++) {
    float *v = w->tv + (size_t)b * D, *f = w->cfm + (size_t)b * K;
    int r = w->crow[b];
    memset(f, 0, (size_t)K * sizeof(float));
    if (r < 0) {
      memset(v, 0, (size_t)D * sizeof(float));
      continue;
    }
    int L = m->cfg.clip_len[r];
    for (int j = 0; j < L; j++) {
      const float *t = cached(m, r, j);
      for (int k = 0; k < K; k++) f[k] += t[k];
    }
    for (int k = 0; k < K; k++) f[k] /= (float)L;
    clip_proj(m, v, f);
  }
}

/* mean of the word embeddings of each sample (no words: zeros) -> tv (B, D) */
static void words_mean(const sp_vunet *m, sp_vunet_ws *w, int B) {
  const nn_params *ps = &m->ps;
  int D = m->cfg.text_dim;
  const float *tab = P(m->tew);
  for (int b = 0; b < B; b++) {
    float *v = w->tv + (size_t)b * D;
    int cnt = 0;
    memset(v, 0, (size_t)D * sizeof(float));
    for (int j = 0; j < SP_TEXT_WORDS; j++) {
      int id = w->ids[b * SP_TEXT_WORDS + j];
      SP_ASSERT(id >= -1 && id < SP_TEXT_VOCAB);
      if (id < 0) continue;
      cnt++;
      for (int d = 0; d < D; d++) v[d] += tab[(size_t)id * D + d];
    }
    if (cnt)
      for (int d = 0; d < D; d++) v[d] /= (float)cnt;
  }
}

/* plan, plan-local: the plan encoder on every sample's SP_PLAN_MAX steps (a null sample's
 * steps as padding rows: computed, never used), then the tokens and their LayerNorm.
 * plan: tokens (B, W + L, D) = [word embedding + type 0 (no word: type 0 alone), plan token +
 * type 1]; tv = the mean of the LayerNormed tokens present (words with an id, plan steps of a
 * sample that is not null; none: zeros). plan-local: tokens (B, L, D) the plan tokens. */
static void plan_tokens_forward(const sp_vunet *m, sp_vunet_ws *w, const sp_vcond *vc, int B) {
  const nn_params *ps = &m->ps;
  const int D = m->cfg.text_dim, L = SP_PLAN_MAX, W = m->ntxt, NT = m->ntok;
  sp_planenc_act *a = &w->pa;
  for (int b = 0; b < B; b++)
    for (int l = 0; l < L; l++) {
      int r = b * L + l, on = w->keep[b] > 0;
      SP_ASSERT(!on || vc->plan);
      a->aid[r] = on ? vc->plan[b].action_id[l] : SP_PLAN_PAD;
      a->did[r] = on ? vc->plan[b].dir_id[l] : 13;  // (0, 0, 0)
      a->dist[r] = on ? vc->plan[b].dist[l] : 0.f;
    }
  sp_planenc_forward(&m->pe, ps, a, w->ptok, a->aid, a->did, a->dist, B * L);
  if (m->cfg.cond == SP_VCOND_PLAN_LOCAL) {
    memcpy(w->tok, w->ptok, (size_t)B * L * D * sizeof(float));
  } else {
    const float *tab = m->tew != NN_NONE ? P(m->tew) : NULL, *ty = P(m->typew);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < NT; j++) {
        float *x = w->tok + ((size_t)b * NT + j) * D;
        if (j < W && tab) {
          int id = w->ids[b * W + j];
          for (int d = 0; d < D; d++) x[d] = (id >= 0 ? tab[(size_t)id * D + d] : 0.f) + ty[d];
        } else if (j < W) {  // clip: the projected cached token, or (past the text) type 0 alone
          if (text_on(m, w, b, j)) clip_proj(m, x, cached(m, w->crow[b], j));
          else memset(x, 0, (size_t)D * sizeof(float));
          for (int d = 0; d < D; d++) x[d] += ty[d];
        } else {
          const float *pt = w->ptok + ((size_t)b * L + j - W) * D;
          for (int d = 0; d < D; d++) x[d] = pt[d] + ty[D + d];
        }
      }
  }
  nn_layernorm_forward(w->tln, w->lnm, w->lnr, w->tok, P(m->lnw), P(m->lnb), B * NT, D, 1e-5f);
  if (m->cfg.cond != SP_VCOND_PLAN) return;
  for (int b = 0; b < B; b++) {
    float *v = w->tv + (size_t)b * D;
    int cnt = 0;
    memset(v, 0, (size_t)D * sizeof(float));
    for (int j = 0; j < NT; j++) {
      if (j < W ? !text_on(m, w, b, j) : w->keep[b] == 0) continue;
      cnt++;
      const float *y = w->tln + ((size_t)b * NT + j) * D;
      for (int d = 0; d < D; d++) v[d] += y[d];
    }
    if (cnt)
      for (int d = 0; d < D; d++) v[d] /= (float)cnt;
  }
}

/* dtln (B, ntok, D) -> LayerNorm, the word table and type embedding (plan), the plan encoder */
static void plan_tokens_backward(const sp_vunet *m, sp_vunet_ws *w, int B) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const int D = m->cfg.text_dim, L = SP_PLAN_MAX, W = m->ntxt, NT = m->ntok;
  nn_zero(w->dtok, (size_t)B * NT * D);
  nn_layernorm_backward(w->dtok, G(m->lnw), G(m->lnb), w->dtln, w->tok, w->lnm, w->lnr, P(m->lnw), B * NT, D);
  if (m->cfg.cond == SP_VCOND_PLAN_LOCAL) {
    memcpy(w->dptok, w->dtok, (size_t)B * L * D * sizeof(float));
  } else {
    float *gtab = m->tew != NN_NONE ? G(m->tew) : NULL, *gty = G(m->typew);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < NT; j++) {
        const float *g = w->dtok + ((size_t)b * NT + j) * D;
        if (j < W && gtab) {
          int id = w->ids[b * W + j];
          for (int d = 0; d < D; d++) gty[d] += g[d];
          if (id >= 0)
            for (int d = 0; d < D; d++) gtab[(size_t)id * D + d] += g[d];
        } else if (j < W) {
          for (int d = 0; d < D; d++) gty[d] += g[d];
          if (text_on(m, w, b, j)) clip_proj_backward(m, g, cached(m, w->crow[b], j));
        } else {
          memcpy(w->dptok + ((size_t)b * L + j - W) * D, g, (size_t)D * sizeof(float));
          for (int d = 0; d < D; d++) gty[D + d] += g[d];
        }
      }
  }
  sp_planenc_backward(&m->pe, ps, &w->pa, w->dptok, B * L);
}

void vunet_embed_forward(const sp_vunet *m, sp_vunet_ws *w, const float *t, const sp_vcond *vc, int B) {
  const nn_params *ps = &m->ps;
  const sp_vunet_cfg *c = &m->cfg;
  int D = c->text_dim, E = c->tdim, P4 = 4 * c->plan_dim;
  nn_timestep_embedding(w->e0, t, B, c->ch, 0, 0);
  nn_linear_forward(w->z1, w->e0, P(m->t0w), P(m->t0b), B, c->ch, E);
  nn_act_forward(w->s1, w->z1, (size_t)B * E, NN_ACT_SILU);
  nn_linear_forward(w->te, w->s1, P(m->t2w), P(m->t2b), B, E, E);
  /* the text ids (a null sample: no words), or (clip) cache rows (a null sample: none) */
  if (m->cache == NN_NONE) {
    SP_ASSERT(vc->text);
    memcpy(w->ids, vc->text, (size_t)B * SP_TEXT_WORDS * sizeof(int32_t));
  } else {
    for (int i = 0; i < B * SP_TEXT_WORDS; i++) w->ids[i] = -1;
  }
  for (int b = 0; b < B; b++) {
    int null = vc->null && vc->null[b];
    if (w->keep) w->keep[b] = null ? 0.f : 1.f;
    if (null)
      for (int j = 0; j < SP_TEXT_WORDS; j++) w->ids[b * SP_TEXT_WORDS + j] = -1;
    if (m->cache != NN_NONE) {
      SP_ASSERT(null || vc->clip);
      w->crow[b] = null ? -1 : vc->clip[b];
      SP_ASSERT(w->crow[b] >= -1 && w->crow[b] < c->clip_n);
    }
  }
  /* the text vector: the mean of the word embeddings (or of the cached CLIP tokens, projected),
   * or (plan) of the text and plan tokens */
  if (m->ntok) plan_tokens_forward(m, w, vc, B);
  if (c->cond != SP_VCOND_PLAN) {
    if (m->cache == NN_NONE) words_mean(m, w, B);
    else clip_mean(m, w, B);
  }
  nn_linear_forward(w->tp, w->tv, P(m->tpw), P(m->tpb), B, D, E);
  nn_add_forward(w->emb, w->te, w->tp, (size_t)B * E);
  if (c->cond == SP_VCOND_DISTANCE) {
    for (int b = 0; b < B; b++) {
      SP_ASSERT(!w->keep[b] || vc->dvec);
      for (int k = 0; k < SP_VCOND_DVEC; k++)
        w->dv[b * SP_VCOND_DVEC + k] = w->keep[b] > 0 ? vc->dvec[b * SP_VCOND_DVEC + k] : 0.f;
    }
    nn_linear_forward(w->dz, w->dv, P(m->dv0w), P(m->dv0b), B, SP_VCOND_DVEC, P4);
    nn_act_forward(w->dg, w->dz, (size_t)B * P4, NN_ACT_GELU);
    nn_linear_forward(w->dp, w->dg, P(m->dv2w), P(m->dv2b), B, P4, E);
    for (int b = 0; b < B; b++)  // a null sample has no distance term
      for (int e = 0; e < E; e++) w->emb[(size_t)b * E + e] += w->keep[b] * w->dp[(size_t)b * E + e];
  }
  nn_act_forward(w->semb, w->emb, (size_t)B * E, NN_ACT_SILU);
}

void vunet_embed_backward(const sp_vunet *m, sp_vunet_ws *w, int B) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const sp_vunet_cfg *c = &m->cfg;
  int D = c->text_dim, E = c->tdim, P4 = 4 * c->plan_dim;
  nn_act_backward(w->demb, w->dsemb, w->emb, (size_t)B * E, NN_ACT_SILU);
  if (c->cond == SP_VCOND_DISTANCE) {
    /* ddp = keep * demb (in dz's gradient room) -> Linear(4P, tdim), GELU, Linear(9, 4P) */
    float *ddp = w->dp;  // the forward value is not needed any more
    for (int b = 0; b < B; b++)
      for (int e = 0; e < E; e++) ddp[(size_t)b * E + e] = w->keep[b] * w->demb[(size_t)b * E + e];
    nn_linear_backward(NULL, G(m->dv2w), G(m->dv2b), ddp, w->dg, P(m->dv2w), B, P4, E);
    nn_zero(w->ddg, (size_t)B * P4);
    for (int b = 0; b < B; b++)
      for (int e = 0; e < E; e++) {
        float d = ddp[(size_t)b * E + e];
        const float *wr = P(m->dv2w) + (size_t)e * P4;
        for (int k = 0; k < P4; k++) w->ddg[(size_t)b * P4 + k] += d * wr[k];
      }
    nn_zero(w->ddz, (size_t)B * P4);
    nn_act_backward(w->ddz, w->ddg, w->dz, (size_t)B * P4, NN_ACT_GELU);
    nn_linear_backward(NULL, G(m->dv0w), G(m->dv0b), w->ddz, w->dv, P(m->dv0w), B, SP_VCOND_DVEC, P4);
  }
  /* dtv = demb @ W by hand: OpenBLAS's small no-transpose sgemm kernel mallocs a buffer for shapes
   * like this one (N = text_dim not a multiple of 16, K >= 32; seen with 0.3.21) */
  nn_linear_backward(NULL, G(m->tpw), G(m->tpb), w->demb, w->tv, P(m->tpw), B, D, E);
  const float *wp = P(m->tpw);
  for (int b = 0; b < B; b++) {
    float *g = w->dtv + (size_t)b * D;
    for (int e = 0; e < E; e++) {
      float de = w->demb[(size_t)b * E + e];
      for (int d = 0; d < D; d++) g[d] += de * wp[(size_t)e * D + d];
    }
  }
  if (c->cond == SP_VCOND_PLAN) {
    /* dtv -> the LayerNormed tokens present (dtln is zero elsewhere: the gradient region) */
    const int NT = m->ntok, W = m->ntxt;
    for (int b = 0; b < B; b++) {
      int cnt = 0;
      for (int j = 0; j < NT; j++) cnt += j < W ? text_on(m, w, b, j) : w->keep[b] > 0;
      for (int j = 0; j < NT; j++) {
        if (j < W ? !text_on(m, w, b, j) : w->keep[b] == 0) continue;
        float *g = w->dtln + ((size_t)b * NT + j) * D;
        for (int d = 0; d < D; d++) g[d] += w->dtv[(size_t)b * D + d] / (float)cnt;
      }
    }
  } else if (m->cache != NN_NONE) {
    for (int b = 0; b < B; b++)  // a sample without text has no projection (its vector is 0)
      if (w->crow[b] >= 0) clip_proj_backward(m, w->dtv + (size_t)b * D, w->cfm + (size_t)b * c->clip_dim);
  } else {
    float *gtab = G(m->tew);
    for (int b = 0; b < B; b++) {
      const int32_t *ids = w->ids + (size_t)b * SP_TEXT_WORDS;
      int cnt = 0;
      for (int j = 0; j < SP_TEXT_WORDS; j++) cnt += ids[j] >= 0;
      const float *g = w->dtv + (size_t)b * D;
      for (int j = 0; j < SP_TEXT_WORDS; j++) {
        if (ids[j] < 0) continue;
        for (int d = 0; d < D; d++) gtab[(size_t)ids[j] * D + d] += g[d] / (float)cnt;
      }
    }
  }
  if (m->ntok) plan_tokens_backward(m, w, B);
  nn_linear_backward(w->ds1, G(m->t2w), G(m->t2b), w->demb, w->s1, P(m->t2w), B, E, E);
  nn_act_backward(w->dz1, w->ds1, w->z1, (size_t)B * E, NN_ACT_SILU);
  nn_linear_backward(NULL, G(m->t0w), G(m->t0b), w->dz1, w->e0, P(m->t0w), B, c->ch, E);
}

/* ---------------------------------------------------------------------------------------------
 * plan-local: gated cross-attention from the middle activations to the plan tokens
 *   x (B, C, T*S) -> out = x + g_b Wo attn(q = Wq GN(x), k = Wk tok, v = Wv tok)
 * one head of width C, g_b = tanh(alpha) for a sample with a plan, 0 for a null one. GroupNorm
 * spans (C/G, T, S) as the ResBlocks' do; queries never interact, so attending over the T*S
 * positions of a sample at once is the per-frame attention. */

static void xattn_kv(const sp_vunet *m, const sp_vunet_ws *w, size_t wo, size_t bo, float *out, int B) {
  const nn_params *ps = &m->ps;
  const int C = m->Cm, D = m->cfg.text_dim, L = SP_PLAN_MAX;
  const float *W = P(wo), *bias = P(bo);
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int l = 0; l < L; l++) {
        const float *t = w->tln + ((size_t)b * L + l) * D, *wr = W + (size_t)c * D;
        float s = bias[c];
        for (int d = 0; d < D; d++) s += wr[d] * t[d];
        out[((size_t)b * C + c) * L + l] = s;
      }
}

static void xattn_kv_backward(const sp_vunet *m, sp_vunet_ws *w, size_t wo, size_t bo, const float *dkv, int B) {
  nn_params *ps = (nn_params *)&m->ps;
  const int C = m->Cm, D = m->cfg.text_dim, L = SP_PLAN_MAX;
  const float *W = P(wo);
  float *gW = G(wo), *gb = G(bo);
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int l = 0; l < L; l++) {
        float g = dkv[((size_t)b * C + c) * L + l];
        const float *t = w->tln + ((size_t)b * L + l) * D, *wr = W + (size_t)c * D;
        float *dt = w->dtln + ((size_t)b * L + l) * D, *gr = gW + (size_t)c * D;
        gb[c] += g;
        for (int d = 0; d < D; d++) {
          gr[d] += g * t[d];
          dt[d] += g * wr[d];
        }
      }
}

static nn_attn_dims xattn_dims(const sp_vunet *m, int B, int TS) {
  const int C = m->Cm, L = SP_PLAN_MAX;
  return (nn_attn_dims){.B = B, .nh = 1, .hd = C, .Nq = TS, .Nk = L, .q_bs = (size_t)C * TS,
                        .k_bs = (size_t)C * L, .v_bs = (size_t)C * L, .scale = 1.f / sqrtf((float)C)};
}

void vunet_xattn_forward(const sp_vunet *m, sp_vunet_ws *w, const float *x, int B, float *scratch) {
  const nn_params *ps = &m->ps;
  const int C = m->Cm, TS = m->T * m->Hm * m->Hm;
  const size_t per = (size_t)C * TS;
  nn_groupnorm_forward(w->xn, w->xm, w->xr, x, P(m->xnw), P(m->xnb), B, C, TS, m->cfg.groups, 1e-5f, NN_ACT_NONE);
  nn_conv2d_dims d = nn_conv2d_make(B, C, TS, 1, C, 1, 1, 0);
  nn_conv2d_forward(w->xq, w->xn, P(m->xqw), P(m->xqb), &d, scratch);
  xattn_kv(m, w, m->xkw, m->xkb, w->xk, B);
  xattn_kv(m, w, m->xvw, m->xvb, w->xv, B);
  nn_attn_dims ad = xattn_dims(m, B, TS);
  nn_attention_forward(w->xo, w->xprob, w->xq, w->xk, w->xv, &ad);
  nn_conv2d_forward(w->xp, w->xo, P(m->xow), P(m->xob), &d, scratch);
  float ta = tanhf(P(m->xal)[0]);
  for (int b = 0; b < B; b++) {
    float g = ta * w->keep[b];
    for (size_t i = 0; i < per; i++) w->xout[b * per + i] = x[b * per + i] + g * w->xp[b * per + i];
  }
}

/* dout (B, C, T*S) -> dx (+=), the parameters, dtln (+=) */
void vunet_xattn_backward(const sp_vunet *m, sp_vunet_ws *w, float *dx, const float *dout, const float *x, int B,
                           float *scratch) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const int C = m->Cm, TS = m->T * m->Hm * m->Hm;
  const size_t per = (size_t)C * TS, n = (size_t)B * per;
  float a = P(m->xal)[0], ta = tanhf(a);
  double dal = 0;
  for (int b = 0; b < B; b++) {
    float g = ta * w->keep[b];
    double s = 0;
    for (size_t i = 0; i < per; i++) {
      float d = dout[b * per + i];
      dx[b * per + i] += d;
      w->dxp[b * per + i] = g * d;
      s += (double)d * w->xp[b * per + i];
    }
    dal += w->keep[b] * s;
  }
  G(m->xal)[0] += (float)(dal * (1.0 - (double)ta * ta));
  nn_conv2d_dims d = nn_conv2d_make(B, C, TS, 1, C, 1, 1, 0);
  nn_zero(w->dxo, n);
  nn_conv2d_backward(w->dxo, G(m->xow), G(m->xob), w->dxp, w->xo, P(m->xow), &d, scratch);
  nn_attn_dims ad = xattn_dims(m, B, TS);
  nn_zero(w->dxq, n);
  nn_zero(w->dxk, (size_t)B * C * SP_PLAN_MAX);
  nn_zero(w->dxv, (size_t)B * C * SP_PLAN_MAX);
  nn_attention_backward(w->dxq, w->dxk, w->dxv, w->dxo, w->xprob, w->xq, w->xk, w->xv, &ad, scratch);
  xattn_kv_backward(m, w, m->xkw, m->xkb, w->dxk, B);
  xattn_kv_backward(m, w, m->xvw, m->xvb, w->dxv, B);
  nn_zero(w->dxn, n);
  nn_conv2d_backward(w->dxn, G(m->xqw), G(m->xqb), w->dxq, w->xn, P(m->xqw), &d, scratch);
  nn_groupnorm_backward(dx, G(m->xnw), G(m->xnb), w->dxn, x, w->xm, w->xr, P(m->xnw), P(m->xnb), B, C, TS,
                        m->cfg.groups, NN_ACT_NONE);
}
