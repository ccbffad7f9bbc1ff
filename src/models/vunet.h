/* vunet.h: the video diffusion U-Net (AVDC's Meta-World network, guided-diffusion layout) and
 * its offline text encoder.
 *
 * Input and output are PyTorch NCTHW: x (B, 3, F, R, R) noisy frames, cond (B, 3, R, R) the
 * first frame, t (B) timesteps, text (B, SP_TEXT_WORDS) word ids -> out (B, 3, F, R, R).
 * Two layouts of the same U-Net:
 *   SP_VUNET_STACKED     the F noisy frames and the first frame stacked in channels
 *                        ((B, 3F+3, R, R) in, (B, 3F, R, R) out; channel c*F+f, a pure view of
 *                        NCTHW), a 2D U-Net (bench_nn's vunet);
 *   SP_VUNET_FACTORISED  AVDC's: (B, 6, F, R, R) with the first frame repeated for every frame;
 *                        every 3x3 conv is a per-frame 2D conv followed by a temporal conv
 *                        (kernel 3, "same" padding, initialised as identity, zero bias); 1x1
 *                        convs have no temporal part; GroupNorm spans (C/G, F, H, W); attention
 *                        is spatial, per frame (its GroupNorm too).
 * Network (both layouts): time t -> sinusoid (width ch, cos first, AVDC) -> Linear(ch, tdim) ->
 * SiLU -> Linear(tdim, tdim), plus the text vector (mean of the word embeddings, or of the
 * cached CLIP tokens through text.clip (text_enc below), then Linear(text_dim, tdim)); SiLU of that sum feeds every ResBlock's Linear(tdim, C) (AVDC's
 * emb_layers = SiLU, Linear). in conv 3x3 -> ch*mult[0]; per level nres ResBlocks (+ attention
 * where the downsample factor >= attn_min_ds), then a stride-2 3x3 conv; middle ResBlock,
 * attention, ResBlock; decoder nres+1 ResBlocks per level on [h, skip] (+ attention), nearest
 * 2x upsample + 3x3 conv at the end of each level but the top; GroupNorm + SiLU + 3x3 conv out.
 *
 * Model vs data: sp_vunet (config + weights) is constant at inference and may serve many
 * threads; each thread owns an sp_vunet_ws (activations, gradients of activations when train,
 * scratch), sized at init for a largest batch. Forward and backward never allocate. Parameter
 * names are the state-dict keys of the PyTorch twin tools/twin_vunet.py. */
#ifndef SP_MODELS_VUNET_H
#define SP_MODELS_VUNET_H

#include <stdint.h>

#include "models/model.h"
#include "models/plan_enc.h"
#include "nn/nn_blocks.h"
#include "plan/plan.h"

/* ---------------------------------------------------------------------------------------------
 * offline text encoder: task text -> word ids */

#define SP_TEXT_WORDS 8
#define SP_TEXT_VOCAB 14  // id 0 = unknown word, 1..13 the words of the Meta-World task names

/* split text on '-', ' ', '_' into lowercase words, each mapped to its id in the vocabulary
 * (door open close basketball shelf place button press topdown faucet handle hammer assembly ->
 * 1..13, anything else 0); pads ids with -1. Returns the number of words (0: the null
 * condition), or -1 when there are more than SP_TEXT_WORDS words (the first ones are kept). */
int sp_text_ids(const char *text, int32_t ids[SP_TEXT_WORDS]);
const char *sp_text_word(int id);  // the vocabulary word of an id ("<unk>" for 0, NULL if out)
/* the same split, lowercase words joined by one space ("Door-open_" -> "door open"): the text a
 * CLIP cache holds and is looked up by (AVDC's spaces, not SP's hyphens). Returns its length, or
 * -1 when it does not fit in cap bytes (out cut, NUL-terminated). */
int sp_text_normalize(const char *text, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------------
 * config */

typedef enum { SP_VUNET_STACKED = 0, SP_VUNET_FACTORISED } sp_vunet_layout;

/* the conditioning variant (docs/models.md, "Conditioning variants"; SP paper Tables 2, 4, 6):
 *   TEXT        the task text only (AVDC): mean of the word embeddings -> Linear(text_dim, tdim)
 *               added to the time embedding;
 *   DISTANCE    TEXT plus the 9-d vector (gripper, object, goal xyz in metres) through
 *               Linear(9, 4P) -> GELU -> Linear(4P, tdim), added to the time embedding too;
 *   PLAN        global: the word tokens (embedding + type 0) and the plan tokens (plan encoder +
 *               type 1) -> LayerNorm -> mean over the tokens present -> Linear(text_dim, tdim),
 *               added to the time embedding (SP's released model, reference-models.md 1.3);
 *   PLAN_LOCAL  TEXT globally, and the plan tokens (plan encoder -> LayerNorm) through a
 *               GLIGEN-style gated cross-attention after the middle attention:
 *               h + tanh(alpha) * Wo attn(Wq GN(h), Wk tok, Wv tok), alpha initialised 0.
 * The null condition (classifier-free guidance, training and sampling alike): no words, no
 * plan tokens, no distance term, no cross-attention (its output is zero). */
typedef enum { SP_VCOND_TEXT = 0, SP_VCOND_DISTANCE, SP_VCOND_PLAN, SP_VCOND_PLAN_LOCAL } sp_vcond_kind;

#define SP_VCOND_DVEC 9  // gripper (tcp) xyz, object xyz, goal xyz, world frame, metres

#define SP_VUNET_MAXLEV 6

/* the text encoder (config `text_enc`):
 *   WORDS  the offline 14-word embedding above, `text.embed` (text_dim per word);
 *   CLIP   CLIP ViT-B/32's per-token features (ln_final, tokens sot..eot inclusive) of each task
 *          text, computed once by the video job from the user's CLIP file (models/clip.h) and
 *          kept in the model as a constant tensor `text.clip_cache` (clip_n, clip_tok, clip_dim),
 *          rows past a text's length zero; a trained Linear(clip_dim, text_dim) `text.clip` makes
 *          them text tokens, which then go where the word embeddings go in every variant (mean,
 *          or type embedding + LayerNorm + mean with the plan tokens). The cache has zero gradient
 *          and is never written by forward or backward. */
typedef enum { SP_VUNET_TEXT_WORDS = 0, SP_VUNET_TEXT_CLIP } sp_vunet_text;
#define SP_VUNET_CLIP_MAX 32   // texts one cache holds
#define SP_VUNET_CLIP_TEXT 64  // bytes of a cached (normalised) text, NUL included

typedef struct {
  int layout;                // sp_vunet_layout
  int res;                   // image side R
  int frames;                // generated frames F (7)
  int ch;                    // base channels
  int mult[SP_VUNET_MAXLEV];  // channel multiplier per level
  int nmult;                 // levels
  int nres;                  // ResBlocks per encoder level (decoder: nres + 1)
  int attn_min_ds;           // attention at levels whose downsample factor >= this (and middle)
  int head_ch;               // channels per attention head
  int groups;                // GroupNorm groups
  int tdim;                  // time-embedding width
  int text_dim;              // word-embedding width
  int winograd;              // 0|1|2: nn_conv2d_set_winograd mode applied by sp_vunet_init
  int cond;                  // sp_vcond_kind
  int plan_dim;              // plan encoder width P (SP: 64); its MLP hidden width 4P
  int scale_shift;           // sp_vunet_ss: how the global condition enters the ResBlocks
  int text_enc;              // sp_vunet_text
  int video_cond;            // 1: the condition is a video (B, 3, F, R, R), frame f conditioning
                             // generated frame f, in place of the first frame repeated
                             // (VideoAgent's self-conditioning refinement; stacked: 6F input
                             // channels, factorised: the same 6)
  /* text_enc CLIP: what the cache holds, set by the video job from the CLIP file (or read back
   * from a checkpoint's config JSON under "clip"); not options. clip_n 0: not made yet (the
   * config checks, sp_vunet_init refuses it). */
  int clip_n;                                         // texts cached
  int clip_dim;                                       // CLIP width (512)
  int clip_len[SP_VUNET_CLIP_MAX];                    // tokens of each text, sot..eot inclusive
  char clip_text[SP_VUNET_CLIP_MAX][SP_VUNET_CLIP_TEXT];  // the texts (sp_text_normalize'd)
} sp_vunet_cfg;

/* how each ResBlock takes the global condition e (SiLU of the time + text [+ plan / distance]
 * embedding):
 *   OFF   bias: Linear(tdim, C)(e) added after the first conv (AVDC; SP's released code)
 *   ON    conditional normalisation (the SP paper; guided-diffusion's use_scale_shift_norm):
 *         GN2(h) * (1 + Linear_s(e)) + Linear_t(e), then SiLU and the second conv
 *   AUTO  on for distance, plan and plan-local, off for text */
typedef enum { SP_VUNET_SS_AUTO = 0, SP_VUNET_SS_OFF, SP_VUNET_SS_ON } sp_vunet_ss;
int sp_vunet_cfg_scale_shift(const sp_vunet_cfg *c);  // the effective choice: 1 scale-shift, 0 bias

extern const sp_cf sp_vunet_fields[];
void sp_vunet_cfg_preset(sp_vunet_cfg *c, sp_preset p);
/* the field bounds (sp_cf_check) and the structural rules: res divisible by 2^(nmult-1), every
 * level's channels divisible by groups (and by head_ch where attention runs), ch even; a CLIP
 * cache description (when clip_n > 0) with lengths 2..4096, non-empty distinct texts; -1 with
 * err naming the field */
int sp_vunet_cfg_check(const sp_vunet_cfg *c, char *err);
/* the config JSON: sp_cf_to_json of the table, plus for text_enc clip the cache's description
 * "clip": {"dim": D, "texts": [...], "len": [...]} (malloc'd) */
char *sp_vunet_cfg_to_json(const sp_vunet_cfg *c);
/* the fields present in json set in c (others keep their values), "clip" included; unknown keys,
 * wrong types, a "clip" of more than SP_VUNET_CLIP_MAX texts or a text too long: -1 with err */
int sp_vunet_cfg_from_json(sp_vunet_cfg *c, const char *json, char *err);
/* sp_cf_diff, then the CLIP cache description: 0 when equal, -1 with err naming the difference */
int sp_vunet_cfg_diff(const sp_vunet_cfg *a, const sp_vunet_cfg *b, const char *what, char *err);
/* the cache row of a task text (compared after sp_text_normalize), -1 when it is not cached
 * (or text_enc is words) */
int sp_vunet_clip_find(const sp_vunet_cfg *c, const char *text);

/* ---------------------------------------------------------------------------------------------
 * model: config, parameter table, block structs (offsets into the table) */

/* a 3x3 conv (pad 1, stride 1 or 2) with, in the factorised layout, its temporal conv */
typedef struct {
  int cin, cout, stride;
  size_t w, b;    // (cout, cin, 3, 3), (cout)
  size_t tw, tb;  // (cout, cout, 3), (cout); NN_NONE in the stacked layout
} sp_vunet_conv;

/* a ResBlock: nn_resblock's parameters (and code, when stacked with bias conditioning), plus
 * the temporal convs after c1 and c2 (factorised; tw1 == NN_NONE when stacked) and the scale's
 * projection (scale-shift) */
typedef struct {
  nn_resblock r;
  size_t tw1, tb1, tw2, tb2;
  size_t sw, sb;  // scale-shift: the scale's Linear(tdim, C) (r.tw, r.tb: the shift's); else NN_NONE
} sp_vunet_res;

/* one entry of the encoder or decoder: a ResBlock (+ attention) (+ upsample conv), or (encoder)
 * a stride-2 downsample conv */
typedef struct {
  int is_down;        // encoder: a downsample conv (conv), no ResBlock
  int H;              // input side
  int cin, cout;      // ResBlock input channels (decoder: with the skip), output channels
  int skip;           // decoder: index of the skip tensor
  sp_vunet_res res;
  int has_attn;
  nn_attnblock attn;
  int has_up;         // decoder: nearest 2x + conv at the end
  sp_vunet_conv conv;  // encoder: the downsample conv; decoder: the upsample conv
} sp_vunet_blk;

#define SP_VUNET_MAXBLK 64

typedef struct {
  sp_vunet_cfg cfg;
  nn_params ps;
  int T;           // frames along the temporal axis of activations: F (factorised) or 1
  int cin, cout;   // network input channels (3F+3 or 6) and output channels (3F or 3)
  size_t t0w, t0b, t2w, t2b;  // time MLP
  size_t tew, tpw, tpb;       // text: embedding (V, text_dim) (words; NN_NONE for clip), projection (tdim, text_dim)
  size_t cpw, cpb, cache;     // clip: "text.clip" (text_dim, clip_dim), (text_dim); "text.clip_cache"
                              // (clip_n, clip_tok, clip_dim) constant; NN_NONE for words
  int clip_tok;               // clip: rows per cached text (the longest text's tokens)
  int ntxt;                   // text token slots: SP_TEXT_WORDS (words) or clip_tok (clip)
  sp_vunet_conv inc, outc;
  size_t onw, onb;            // out GroupNorm
  sp_vunet_blk enc[SP_VUNET_MAXBLK], dec[SP_VUNET_MAXBLK];
  int nenc, ndec;
  sp_vunet_res mid1, mid2;
  nn_attnblock mida;
  int Hm, Cm;      // middle side and channels
  /* conditions beyond the text (NN_NONE / unused for the variants without them) */
  sp_planenc pe;              // plan, plan-local: the plan encoder ("plan.*")
  size_t typew;               // plan: type embedding (2, text_dim), 0 text, 1 plan
  size_t lnw, lnb;            // plan, plan-local: token LayerNorm (text_dim)
  size_t dv0w, dv0b, dv2w, dv2b;  // distance: Linear(9, 4P), Linear(4P, tdim)
  size_t xnw, xnb, xqw, xqb, xkw, xkb, xvw, xvb, xow, xob, xal;  // plan-local: mid.xattn
  int ntok;        // plan: tokens pooled (ntxt + SP_PLAN_MAX); plan-local: SP_PLAN_MAX
} sp_vunet;

/* register the parameters, allocate the weights only (no gradients or moments) and fill them
 * (PyTorch default bounds from seed; temporal convs identity, zero bias; the CLIP cache zero,
 * for sp_vunet_clip_fill or a checkpoint to fill); applies cfg.winograd. -1 with err on a bad
 * config, text_enc clip without a cache description (clip_n 0), or out of memory. */
int sp_vunet_init(sp_vunet *m, const sp_vunet_cfg *c, unsigned seed, char *err);
void sp_vunet_free(sp_vunet *m);
/* trained parameters (the CLIP cache, a constant, not counted; the PyTorch twin's parameters()) */
size_t sp_vunet_nparams(const sp_vunet *m);
/* write cache row `row` < clip_n: tokens (clip_len[row], clip_dim), the rest of the row zeroed */
void sp_vunet_clip_fill(sp_vunet *m, int row, const float *tokens);

/* ---------------------------------------------------------------------------------------------
 * workspace: one per thread */

typedef struct {
  float *xb;             // factorised down conv: its input in conv layout (B*T, cin, S)
  float *cf;             // factorised: (B, cout, T, So) spatial conv output before the temporal conv
  float *out;            // (B, cout, T, So)
} sp_vunet_conv_act;

typedef struct {
  int B;
  nn_resblock_act a;     // stacked: nn_resblock's; factorised: the fields below are used
  float *c1f, *c2f;      // factorised: spatial conv outputs (B, cout, T, S) before the temporal conv
  float *a1b, *a2b;      // factorised: silu(gn) in conv layout (B*T, c, S)
  float *esc, *g2, *y2;  // scale-shift: scale (B, cout), GN2 output, its scaled and shifted value
} sp_vunet_res_act;

typedef struct {
  nn_attnblock_act a;    // on (B*T, C, S)
  float *xb;             // factorised: input in conv layout (B*T, C, S)
  float *out;            // factorised: output (B, C, T, S) (stacked: a.out)
} sp_vunet_attn_act;

typedef struct {
  float *cat, *dcat;     // decoder: [h, skip] (B, cin, T, S) and its gradient
  sp_vunet_res_act ra;
  sp_vunet_attn_act aa;
  sp_vunet_conv_act ca;  // down or up conv
  float *upb;            // up: the upsampled input (B*T, C, 4S) in conv layout
  float *out, *dout;     // the entry's output (one of the above) and its gradient (train)
  float *dres, *dattn;   // gradients of the ResBlock and attention outputs when more follows
} sp_vunet_blk_act;

typedef struct {
  sp_ws base;
  int nthreads;          // nn_threads() when sized (convolution scratch grows with the team)
  int B;                 // batch of the last forward
  float *e0, *z1, *s1, *te, *tv, *tp, *emb, *semb;  // (B, ch|tdim|text_dim) time and text
  float *dz1, *ds1, *dtv, *demb, *dsemb;            // their gradients (train)
  int32_t *ids;          // (B, SP_TEXT_WORDS) the text ids of the last forward
  float *xin;            // (B*T, cin, S) network input in conv layout
  sp_vunet_conv_act inc, outc;
  float *hs[SP_VUNET_MAXBLK + 1], *dhs[SP_VUNET_MAXBLK + 1];  // encoder outputs (skips)
  sp_vunet_blk_act enc[SP_VUNET_MAXBLK], dec[SP_VUNET_MAXBLK];
  sp_vunet_res_act m1a, m2a;
  sp_vunet_attn_act maa;
  float *dm1, *dma, *dm2;  // gradients of the middle outputs (train)
  float *om, *orr, *on;    // out GroupNorm stats (B, G) and silu(gn) (B*T, C, S) conv layout
  float *don;              // gradient of on (train)
  float *tmp;              // (B*T, Cmax, Smax) transient of the factorised convs
  float *g0;               // (gn) every gradient of an activation, one region (train)
  size_t gn;
  /* conditions beyond the text */
  float *keep;             // (B) 0 for a null sample, else 1
  int32_t *crow;           // clip: (B) the cache row of each sample (-1: no text)
  float *cfm;              // clip, text global: (B, clip_dim) the mean of each sample's cached tokens
  float *dv, *dz, *dg, *dp;  // distance: (B, 9) input, (B, 4P) pre-GELU and GELU, (B, tdim) out
  float *ddg, *ddz;        // their gradients (train)
  sp_planenc_act pa;       // plan encoder on B * SP_PLAN_MAX rows
  float *ptok;             // (B * SP_PLAN_MAX, text_dim) plan encoder output
  float *tok, *tln, *lnm, *lnr;  // (B, ntok, text_dim) tokens, LayerNorm output, stats (B * ntok)
  float *dtok, *dtln, *dptok;    // gradients (train)
  float *xn, *xm, *xr, *xq, *xk, *xv, *xo, *xp, *xprob, *xout;  // plan-local cross-attention
  float *dxa, *dxn, *dxq, *dxk, *dxv, *dxo, *dxp;                // its gradients (train)
} sp_vunet_ws;

/* size everything for batches up to maxB; train = 0: activations only, no gradient buffers, and
 * only the outputs of the U-Net's entries kept (their internals share one region). -1 with err
 * (out of memory, maxB < 1). The convolution scratch is sized for the nn team and the Winograd
 * mode in force now (both process-wide): a larger nn_init team afterwards is refused by an
 * assert in forward; another model's init with another winograd value needs new workspaces. */
int sp_vunet_ws_init(sp_vunet_ws *w, const sp_vunet *m, int maxB, int train, char *err);
void sp_vunet_ws_free(sp_vunet_ws *w);

/* the conditions of a batch: what the model's variant reads (the others may be NULL) */
typedef struct {
  const int32_t *text;       // (B, SP_TEXT_WORDS) word ids, -1 padding (all -1: no words); words
  const int32_t *clip;       // (B) text_enc clip: the cache row of each sample's text
                             // (sp_vunet_clip_find; -1: no text); NULL only when all are null
  const sp_plan_enc *plan;   // (B) plan, plan-local: sp_plan_encode of each sample's plan
  const float *dvec;         // (B, SP_VCOND_DVEC) distance
  const uint8_t *null;       // (B) 1: the null condition for that sample (CFG); NULL: none
} sp_vcond;

/* x (B, 3, F, R, R) noisy frames in [-1, 1], cond (B, 3, R, R) the first frame (cfg.video_cond:
 * (B, 3, F, R, R), a video), t (B) timesteps as floats, vc the conditions -> out (B, 3, F, R, R),
 * the model prediction (eps or v).
 * B <= maxB. A sample's plan and distance vector are read only when it is not null. */
void sp_vunet_forward_c(const sp_vunet *m, sp_vunet_ws *w, float *out, const float *x,
                        const float *cond, const float *t, const sp_vcond *vc, int B);
/* the text variant's call (words): vc = {.text = text} (all -1: the null condition). Other
 * variants and text_enc clip: every sample whose text is all -1 is null, the others need
 * sp_vunet_forward_c. */
void sp_vunet_forward(const sp_vunet *m, sp_vunet_ws *w, float *out, const float *x,
                      const float *cond, const float *t, const int32_t *text, int B);
/* after sp_vunet_forward on a train workspace (same B): accumulates the parameter gradients
 * into m->ps.grad (allocated by the trainer with nn_params_alloc_train) from dout
 * (B, 3, F, R, R). The weights themselves are not touched. */
void sp_vunet_backward(const sp_vunet *m, sp_vunet_ws *w, const float *dout, int B);
const char *sp_vcond_name(int cond);  // "text", "distance", "plan", "plan-local"
/* forward FLOPs as bench_nn counts them: 2 per multiply-add of convs (temporal ones included),
 * linears and the two attention matmuls */
double sp_vunet_flops(const sp_vunet *m, int B);

#endif
