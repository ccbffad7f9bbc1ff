/* clip.c: CLIP's text tower (contract in clip.h, notes in docs/clip.md; the tokenizer is
 * clip_bpe.c). The model is plain float32 with OpenBLAS GEMMs (nn_sgemm), one text at a time,
 * every buffer in a workspace sized at init. */
#include "models/clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_train.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* ---------------------------------------------------------------------------------------------
 * config */

#define CF(f) offsetof(sp_clip_config, f)
const sp_cf sp_clip_config_table[] = {
    {"width", SP_CF_INT, CF(width), 8, 8192, NULL, 0, 0, "residual stream width (a multiple of heads)"},
    {"layers", SP_CF_INT, CF(layers), 1, 256, NULL, 0, 0, "residual attention blocks"},
    {"heads", SP_CF_INT, CF(heads), 1, 256, NULL, 0, 0, "attention heads"},
    {"context", SP_CF_INT, CF(context), 2, 4096, NULL, 0, 0, "token positions"},
    {"vocab", SP_CF_INT, CF(vocab), 515, 1 << 22, NULL, 0, 0, "token ids: 512 byte tokens, merges, sot, eot"},
    {"embed_dim", SP_CF_INT, CF(embed_dim), 1, 65536, NULL, 0, 0, "text embedding width (text_projection's columns)"},
    {"quick_gelu", SP_CF_INT, CF(quick_gelu), 0, 1, NULL, 0, 0, "1: QuickGELU (OpenAI's weights), 0: exact GELU"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};
#undef CF

void sp_clip_config_default(sp_clip_config *c) {
  *c = (sp_clip_config){.width = 512, .layers = 12, .heads = 8, .context = 77, .vocab = 49408,
                        .embed_dim = 512, .quick_gelu = 1};
}

int sp_clip_config_check(const sp_clip_config *c, char *err) {
  if (sp_cf_check(sp_clip_config_table, c, "clip config", err)) return -1;
  if (c->width % c->heads)
    return sp_errf(err, "clip config: width = %d is not a multiple of heads = %d", c->width, c->heads);
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * tensors: the loader's table, in file order */

/* one block's tensors: field, name after "transformer.resblocks.N.", rows, cols (0: a vector) */
#define CLIP_LAYER_TENSORS(X)               \
  X(ln1_w, "ln_1.weight", W, 0)             \
  X(ln1_b, "ln_1.bias", W, 0)               \
  X(qkv_w, "attn.in_proj_weight", 3 * W, W) \
  X(qkv_b, "attn.in_proj_bias", 3 * W, 0)   \
  X(out_w, "attn.out_proj.weight", W, W)    \
  X(out_b, "attn.out_proj.bias", W, 0)      \
  X(ln2_w, "ln_2.weight", W, 0)             \
  X(ln2_b, "ln_2.bias", W, 0)               \
  X(fc_w, "mlp.c_fc.weight", 4 * W, W)      \
  X(fc_b, "mlp.c_fc.bias", 4 * W, 0)        \
  X(proj_w, "mlp.c_proj.weight", W, 4 * W)  \
  X(proj_b, "mlp.c_proj.bias", W, 0)

#define X_OFF(f, name, r, c) offsetof(sp_clip_layer, f),
#define X_NAME(f, name, r, c) name,
static const size_t k_layer_off[] = {CLIP_LAYER_TENSORS(X_OFF)};
static const char *const k_layer_name[] = {CLIP_LAYER_TENSORS(X_NAME)};
#undef X_OFF
#undef X_NAME
#define NLT ((int)NELEM(k_layer_off))

int sp_clip_tensor_count(const sp_clip_config *c) { return 2 + NLT * c->layers + 3; }

void sp_clip_tensor_info(const sp_clip_config *c, int i, char *name, size_t cap, int64_t *rows,
                         int64_t *cols) {
  int64_t W = c->width;
  int last = 2 + NLT * c->layers;
  SP_ASSERT(i >= 0 && i < last + 3);
  if (i == 0) snprintf(name, cap, "token_embedding.weight"), *rows = c->vocab, *cols = W;
  else if (i == 1) snprintf(name, cap, "positional_embedding"), *rows = c->context, *cols = W;
  else if (i == last) snprintf(name, cap, "ln_final.weight"), *rows = W, *cols = 0;
  else if (i == last + 1) snprintf(name, cap, "ln_final.bias"), *rows = W, *cols = 0;
  else if (i == last + 2) snprintf(name, cap, "text_projection"), *rows = W, *cols = c->embed_dim;
  else {
    int l = (i - 2) / NLT, k = (i - 2) % NLT;
#define X_SHAPE(f, nm, r, cc) if (k-- == 0) *rows = r, *cols = cc;
    CLIP_LAYER_TENSORS(X_SHAPE)
#undef X_SHAPE
    snprintf(name, cap, "transformer.resblocks.%d.%s", l, k_layer_name[(i - 2) % NLT]);
  }
}

/* where tensor i lives in the model */
static const float **tensor_slot(sp_clip_model *m, int i) {
  int last = 2 + NLT * m->cfg.layers;
  if (i == 0) return &m->tok_emb;
  if (i == 1) return &m->pos_emb;
  if (i == last) return &m->lnf_w;
  if (i == last + 1) return &m->lnf_b;
  if (i == last + 2) return &m->proj;
  return (const float **)((char *)&m->layer[(i - 2) / NLT] + k_layer_off[(i - 2) % NLT]);
}

static size_t al16(size_t n) { return (n + 15) / 16 * 16; }

void sp_clip_free(sp_clip_model *m) {
  free(m->buf);
  free(m->layer);
  sp_clip_bpe_free(m->bpe);
  memset(m, 0, sizeof *m);
}

static void shape_str(char *s, size_t cap, int ndim, const int64_t *d) {
  int o = snprintf(s, cap, "[");
  for (int i = 0; i < ndim && o < (int)cap; i++) o += snprintf(s + o, cap - (size_t)o, i ? ", %lld" : "%lld", (long long)d[i]);
  if (o < (int)cap) snprintf(s + o, cap - (size_t)o, "]");
}

int sp_clip_load(sp_clip_model *m, const char *path, char *err) {
  memset(m, 0, sizeof *m);
  nn_safetensors st;
  char e2[SP_ERRLEN];
  if (nn_st_open(&st, path, err)) return -1;
  const char *fmt = nn_st_meta(&st, "format"), *ver = nn_st_meta(&st, "version");
  const char *cj = nn_st_meta(&st, "config");
  if (!fmt || strcmp(fmt, SP_CLIP_FORMAT)) {
    sp_errf(err, "%s is not a CLIP text-tower file (metadata format '%s', want '%s'): convert CLIP weights with tools/clip_to_safetensors.py",
            path, fmt ? fmt : "(none)", SP_CLIP_FORMAT);
    goto fail;
  }
  if (!ver || strcmp(ver, SP_CLIP_VERSION)) {
    sp_errf(err, "%s is a %s file of version '%s'; this build reads version %s: convert the weights again with tools/clip_to_safetensors.py",
            path, SP_CLIP_FORMAT, ver ? ver : "(none)", SP_CLIP_VERSION);
    goto fail;
  }
  if (!cj) {
    sp_errf(err, "%s: no \"config\" in the metadata", path);
    goto fail;
  }
  if (sp_cf_from_json(sp_clip_config_table, &m->cfg, cj, e2) || sp_clip_config_check(&m->cfg, e2)) {
    sp_errf(err, "%s: %s", path, e2);
    goto fail;
  }
  const sp_clip_config *c = &m->cfg;
  int nt = sp_clip_tensor_count(c);
  char name[NN_NAME_MAX];
  int64_t r, cc;
  for (int i = 0; i < nt; i++) {
    sp_clip_tensor_info(c, i, name, sizeof name, &r, &cc);
    m->nfloat += al16((size_t)(r * (cc ? cc : 1)));
  }
  m->layer = calloc((size_t)c->layers, sizeof *m->layer);
  if (!m->layer || posix_memalign((void **)&m->buf, 64, m->nfloat * sizeof(float))) {
    m->buf = NULL;
    sp_errf(err, "%s: out of memory for %zu weights", path, m->nfloat);
    goto fail;
  }
  size_t off = 0;
  for (int i = 0; i < nt; i++) {
    sp_clip_tensor_info(c, i, name, sizeof name, &r, &cc);
    int64_t want[2] = {r, cc};
    int wnd = cc ? 2 : 1;
    char ws[64], gs[64];
    shape_str(ws, sizeof ws, wnd, want);
    const nn_st_tensor *t = nn_st_find(&st, name);
    if (!t) {
      sp_errf(err, "%s: tensor '%s' is missing (want float32 %s for the config %d layers, width %d)", path, name, ws,
              c->layers, c->width);
      goto fail;
    }
    if (strcmp(t->dtype, "F32")) {
      sp_errf(err, "%s: tensor '%s' is %s, want F32 (convert with tools/clip_to_safetensors.py)", path, name, t->dtype);
      goto fail;
    }
    if (t->ndim != wnd || t->shape[0] != r || (wnd == 2 && t->shape[1] != cc)) {
      shape_str(gs, sizeof gs, t->ndim, t->shape);
      sp_errf(err, "%s: tensor '%s' has shape %s, want %s", path, name, gs, ws);
      goto fail;
    }
    float *dst = m->buf + off;
    memcpy(dst, st.buf + st.data_off + t->begin, t->end - t->begin);
    *tensor_slot(m, i) = dst;
    off += al16((size_t)(r * (cc ? cc : 1)));
  }
  const nn_st_tensor *mt = nn_st_find(&st, SP_CLIP_MERGES_TENSOR);
  if (!mt || strcmp(mt->dtype, "U8") || mt->ndim != 1) {
    sp_errf(err, "%s: no U8 tensor '%s' (the BPE merges text): convert with tools/clip_to_safetensors.py", path,
            SP_CLIP_MERGES_TENSOR);
    goto fail;
  }
  m->bpe = sp_clip_bpe_new(st.buf + st.data_off + mt->begin, mt->end - mt->begin, c->vocab, e2);
  if (!m->bpe) {
    sp_errf(err, "%s: %s: %s", path, SP_CLIP_MERGES_TENSOR, e2);
    goto fail;
  }
  nn_st_close(&st);
  return 0;
fail:
  nn_st_close(&st);
  sp_clip_free(m);
  return -1;
}

/* ---------------------------------------------------------------------------------------------
 * workspace and forward pass */

int sp_clip_ws_init(sp_clip_ws *w, const sp_clip_config *c, char *err) {
  memset(w, 0, sizeof *w);
  size_t T = (size_t)c->context, C = (size_t)c->width;
  size_t n = 2 * al16(T * C) + al16(3 * T * C) + al16(T * T) + al16(4 * T * C) + 3 * al16(T);
  if (posix_memalign((void **)&w->buf, 64, n * sizeof(float))) {
    w->buf = NULL;
    return sp_errf(err, "out of memory for a CLIP workspace (%zu floats)", n);
  }
  float *p = w->buf;
#define TAKE(k) (p += al16(k), p - al16(k))
  w->x = TAKE(T * C);
  w->h = TAKE(T * C);
  w->qkv = TAKE(3 * T * C);
  w->att = TAKE(T * T);
  w->mlp = TAKE(4 * T * C);
  w->mean = TAKE(T);
  w->rstd = TAKE(T);
  w->ids = (int32_t *)TAKE(T);
#undef TAKE
  SP_ASSERT((size_t)(p - w->buf) == n);
  w->context = c->context;
  w->width = c->width;
  return 0;
}

void sp_clip_ws_free(sp_clip_ws *w) {
  free(w->buf);
  memset(w, 0, sizeof *w);
}

/* ids in range; the pooled position: the first largest id (torch.argmax) */
static int check_ids(const sp_clip_config *c, const int32_t *ids, char *err) {
  int eot = 0;
  for (int t = 0; t < c->context; t++) {
    if (ids[t] < 0 || ids[t] >= c->vocab)
      return sp_errf(err, "CLIP token id %d at position %d is outside [0, %d)", ids[t], t, c->vocab);
    if (ids[t] > ids[eot]) eot = t;
  }
  return eot;
}

static void add_rows(float *x, const float *b, int T, int C) {
  for (int t = 0; t < T; t++)
    for (int i = 0; i < C; i++) x[(size_t)t * C + i] += b[i];
}

/* causal softmax in place over att (T x T): row i keeps columns 0..i */
static void causal_softmax(float *att, int T) {
  for (int i = 0; i < T; i++) {
    float *a = att + (size_t)i * T, mx = a[0], s = 0;
    for (int j = 1; j <= i; j++) mx = a[j] > mx ? a[j] : mx;
    for (int j = 0; j <= i; j++) s += a[j] = expf(a[j] - mx);
    for (int j = 0; j <= i; j++) a[j] /= s;
    for (int j = i + 1; j < T; j++) a[j] = 0;
  }
}

static void project(float *emb, const float *row, const sp_clip_model *m, int normalize) {
  int C = m->cfg.width, E = m->cfg.embed_dim;
  double nrm = 0;
  for (int e = 0; e < E; e++) emb[e] = 0;
  for (int i = 0; i < C; i++) {
    const float *p = m->proj + (size_t)i * E;
    for (int e = 0; e < E; e++) emb[e] += row[i] * p[e];
  }
  if (!normalize) return;
  for (int e = 0; e < E; e++) nrm += (double)emb[e] * emb[e];
  nrm = sqrt(nrm);
  for (int e = 0; e < E; e++) emb[e] = (float)(emb[e] / (nrm > 1e-12 ? nrm : 1e-12));  // F.normalize
}

int sp_clip_encode(const sp_clip_model *m, sp_clip_ws *w, const int32_t *ids, float *emb,
                   float *tokens, int normalize, char *err) {
  const sp_clip_config *c = &m->cfg;
  const int T = c->context, C = c->width, H = c->heads, D = C / H, F = 4 * C;
  if (w->context != T || w->width != C)
    return sp_errf(err, "CLIP workspace for context %d, width %d used with a model of context %d, width %d",
                   w->context, w->width, T, C);
  int eot = check_ids(c, ids, err);
  if (eot < 0) return -1;
  float *x = w->x, *h = w->h, *qkv = w->qkv, *mlp = w->mlp;
  const float scale = 1.f / sqrtf((float)D);
  for (int t = 0; t < T; t++) {
    const float *e = m->tok_emb + (size_t)ids[t] * C, *p = m->pos_emb + (size_t)t * C;
    for (int i = 0; i < C; i++) x[(size_t)t * C + i] = e[i] + p[i];
  }
  for (int l = 0; l < c->layers; l++) {
    const sp_clip_layer *L = &m->layer[l];
    /* x += out_proj(causal MHA(ln_1 x)) */
    nn_layernorm_forward(h, w->mean, w->rstd, x, L->ln1_w, L->ln1_b, T, C, 1e-5f);
    nn_linear_forward(qkv, h, L->qkv_w, L->qkv_b, T, C, 3 * C);
    for (int hd = 0; hd < H; hd++) {
      const float *q = qkv + hd * D, *k = qkv + C + hd * D, *v = qkv + 2 * C + hd * D;
      nn_sgemm(0, 1, T, T, D, scale, q, 3 * C, k, 3 * C, 0.f, w->att, T);
      causal_softmax(w->att, T);
      nn_sgemm(0, 0, T, D, T, 1.f, w->att, T, v, 3 * C, 0.f, h + hd * D, C);
    }
    nn_sgemm(0, 1, T, C, C, 1.f, h, C, L->out_w, C, 1.f, x, C);
    add_rows(x, L->out_b, T, C);
    /* x += c_proj(act(c_fc(ln_2 x))) */
    nn_layernorm_forward(h, w->mean, w->rstd, x, L->ln2_w, L->ln2_b, T, C, 1e-5f);
    nn_linear_forward(mlp, h, L->fc_w, L->fc_b, T, C, F);
    if (c->quick_gelu)
      for (size_t i = 0; i < (size_t)T * F; i++) mlp[i] = mlp[i] / (1.f + expf(-1.702f * mlp[i]));
    else
      nn_act_forward(mlp, mlp, (size_t)T * F, NN_ACT_GELU);
    nn_sgemm(0, 1, T, C, F, 1.f, mlp, F, L->proj_w, F, 1.f, x, C);
    add_rows(x, L->proj_b, T, C);
  }
  float *out = tokens ? tokens : h;
  nn_layernorm_forward(out, w->mean, w->rstd, x, m->lnf_w, m->lnf_b, T, C, 1e-5f);
  project(emb, out + (size_t)eot * C, m, normalize);
  return eot;
}

int sp_clip_encode_text(const sp_clip_model *m, sp_clip_ws *w, const char *text, int32_t *ids,
                        float *emb, float *tokens, int normalize, char *err) {
  if (w->context != m->cfg.context)
    return sp_errf(err, "CLIP workspace for context %d used with a model of context %d", w->context, m->cfg.context);
  if (sp_clip_tokenize(m->bpe, text, m->cfg.context, w->ids, NULL) < 0)
    return sp_errf(err, "out of memory while tokenizing a text of %zu bytes", strlen(text));
  if (ids) memcpy(ids, w->ids, (size_t)m->cfg.context * sizeof *ids);
  return sp_clip_encode(m, w, w->ids, emb, tokens, normalize, err);
}

/* ---------------------------------------------------------------------------------------------
 * reference: the same pass in double with plain loops */

static void ln_ref(double *o, const double *x, const float *g, const float *b, int T, int C) {
  for (int t = 0; t < T; t++) {
    const double *r = x + (size_t)t * C;
    double mu = 0, var = 0;
    for (int i = 0; i < C; i++) mu += r[i];
    mu /= C;
    for (int i = 0; i < C; i++) var += (r[i] - mu) * (r[i] - mu);
    double rs = 1.0 / sqrt(var / C + 1e-5);
    for (int i = 0; i < C; i++) o[(size_t)t * C + i] = (r[i] - mu) * rs * g[i] + b[i];
  }
}

/* o (T x Out) (+)= in (T x In) @ w^T (w: Out x In) + b */
static void lin_ref(double *o, const double *in, const float *w, const float *b, int T, int In, int Out, int acc) {
  for (int t = 0; t < T; t++)
    for (int j = 0; j < Out; j++) {
      double s = b ? b[j] : 0;
      for (int i = 0; i < In; i++) s += in[(size_t)t * In + i] * w[(size_t)j * In + i];
      o[(size_t)t * Out + j] = (acc ? o[(size_t)t * Out + j] : 0) + s;
    }
}

int sp_clip_encode_ref(const sp_clip_model *m, const int32_t *ids, float *emb, float *tokens,
                       int normalize, char *err) {
  const sp_clip_config *c = &m->cfg;
  const int T = c->context, C = c->width, H = c->heads, D = C / H, F = 4 * C;
  int eot = check_ids(c, ids, err);
  if (eot < 0) return -1;
  double *x = malloc(sizeof(double) * (size_t)T * C * 3), *h = x + (size_t)T * C, *a = h + (size_t)T * C;
  double *qkv = malloc(sizeof(double) * (size_t)T * 3 * C), *mlp = malloc(sizeof(double) * (size_t)T * F);
  double *p = malloc(sizeof(double) * (size_t)T);
  if (!x || !qkv || !mlp || !p) {
    free(x), free(qkv), free(mlp), free(p);
    return sp_errf(err, "out of memory for the CLIP reference pass");
  }
  for (int t = 0; t < T; t++)
    for (int i = 0; i < C; i++)
      x[(size_t)t * C + i] = (double)m->tok_emb[(size_t)ids[t] * C + i] + m->pos_emb[(size_t)t * C + i];
  for (int l = 0; l < c->layers; l++) {
    const sp_clip_layer *L = &m->layer[l];
    ln_ref(h, x, L->ln1_w, L->ln1_b, T, C);
    lin_ref(qkv, h, L->qkv_w, L->qkv_b, T, C, 3 * C, 0);
    for (int hd = 0; hd < H; hd++)
      for (int i = 0; i < T; i++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j <= i; j++) {
          double d = 0;
          for (int k = 0; k < D; k++) d += qkv[(size_t)i * 3 * C + hd * D + k] * qkv[(size_t)j * 3 * C + C + hd * D + k];
          p[j] = d / sqrt((double)D);
          mx = p[j] > mx ? p[j] : mx;
        }
        for (int j = 0; j <= i; j++) s += p[j] = exp(p[j] - mx);
        for (int k = 0; k < D; k++) {
          double o = 0;
          for (int j = 0; j <= i; j++) o += p[j] / s * qkv[(size_t)j * 3 * C + 2 * C + hd * D + k];
          a[(size_t)i * C + hd * D + k] = o;
        }
      }
    lin_ref(x, a, L->out_w, L->out_b, T, C, C, 1);
    ln_ref(h, x, L->ln2_w, L->ln2_b, T, C);
    lin_ref(mlp, h, L->fc_w, L->fc_b, T, C, F, 0);
    for (size_t i = 0; i < (size_t)T * F; i++) {
      double v = mlp[i];
      mlp[i] = c->quick_gelu ? v / (1 + exp(-1.702 * v)) : 0.5 * v * (1 + erf(v / sqrt(2.0)));
    }
    lin_ref(x, mlp, L->proj_w, L->proj_b, T, F, C, 1);
  }
  ln_ref(h, x, m->lnf_w, m->lnf_b, T, C);
  if (tokens)
    for (size_t i = 0; i < (size_t)T * C; i++) tokens[i] = (float)h[i];
  double nrm = 0;
  for (int e = 0; e < c->embed_dim; e++) {
    double s = 0;
    for (int i = 0; i < C; i++) s += h[(size_t)eot * C + i] * m->proj[(size_t)i * c->embed_dim + e];
    emb[e] = (float)s;
    nrm += s * s;
  }
  if (normalize)
    for (int e = 0; e < c->embed_dim; e++) emb[e] = (float)(emb[e] / fmax(sqrt(nrm), 1e-12));
  free(x), free(qkv), free(mlp), free(p);
  return eot;
}
