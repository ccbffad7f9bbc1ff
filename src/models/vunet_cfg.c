/* vunet_cfg.c: the video U-Net's offline text encoder and its config: presets, checks, JSON
 * (contract in vunet.h). */
#include "models/vunet.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* ---------------------------------------------------------------------------------------------
 * offline text encoder */

static const char *const g_vocab[SP_TEXT_VOCAB] = {
    "<unk>", "door",   "open",   "close",  "basketball", "shelf",  "place",
    "button", "press", "topdown", "faucet", "handle",     "hammer", "assembly"};

const char *sp_text_word(int id) { return id >= 0 && id < SP_TEXT_VOCAB ? g_vocab[id] : NULL; }

static int is_sep(char c) { return c == '-' || c == ' ' || c == '_'; }

int sp_text_ids(const char *text, int32_t ids[SP_TEXT_WORDS]) {
  for (int i = 0; i < SP_TEXT_WORDS; i++) ids[i] = -1;
  const char *p = text ? text : "";
  int n = 0, over = 0;
  while (*p) {
    while (*p && is_sep(*p)) p++;
    if (!*p) break;
    char word[32];
    size_t k = 0;
    int toolong = 0;
    for (; *p && !is_sep(*p); p++) {
      if (k + 1 < sizeof word) word[k++] = (char)tolower((unsigned char)*p);
      else toolong = 1;
    }
    word[k] = 0;
    int id = 0;
    for (int v = 1; v < SP_TEXT_VOCAB && !toolong; v++)
      if (!strcmp(word, g_vocab[v])) id = v;
    if (n < SP_TEXT_WORDS) ids[n++] = id;
    else over = 1;
  }
  return over ? -1 : n;
}

int sp_text_normalize(const char *text, char *out, size_t cap) {
  const char *p = text ? text : "";
  size_t k = 0;
  int cut = 0;
  SP_ASSERT(cap >= 1);
  while (*p) {
    while (*p && is_sep(*p)) p++;
    if (!*p) break;
    if (k && k + 1 < cap) out[k++] = ' ';
    else if (k) cut = 1;
    for (; *p && !is_sep(*p); p++) {
      if (k + 1 < cap) out[k++] = (char)tolower((unsigned char)*p);
      else cut = 1;
    }
  }
  out[k] = 0;
  return cut ? -1 : (int)k;
}

/* ---------------------------------------------------------------------------------------------
 * config */

static const char *const g_layouts[] = {"stacked", "factorised", NULL};
static const char *const g_conds[] = {"text", "distance", "plan", "plan-local", NULL};
static const char *const g_ss[] = {"auto", "off", "on", NULL};
static const char *const g_text_encs[] = {"words", "clip", NULL};

int sp_vunet_cfg_scale_shift(const sp_vunet_cfg *c) {
  return c->scale_shift == SP_VUNET_SS_ON || (c->scale_shift == SP_VUNET_SS_AUTO && c->cond != SP_VCOND_TEXT);
}

const char *sp_vcond_name(int cond) { return cond >= 0 && cond <= SP_VCOND_PLAN_LOCAL ? g_conds[cond] : "?"; }

#define OFF(f) offsetof(sp_vunet_cfg, f)
const sp_cf sp_vunet_fields[] = {
    {"layout", SP_CF_ENUM, OFF(layout), 0, 1, g_layouts, 0, 0,
     "stacked: frames in channels, 2D U-Net; factorised: AVDC's per-frame 2D + temporal convs"},
    {"res", SP_CF_INT, OFF(res), 8, 1024, NULL, 0, 0, "image side in pixels"},
    {"frames", SP_CF_INT, OFF(frames), 1, 64, NULL, 0, 0, "generated frames"},
    {"ch", SP_CF_INT, OFF(ch), 2, 1024, NULL, 0, 0, "base channels"},
    {"mult", SP_CF_INTLIST, OFF(mult), 1, 16, NULL, SP_VUNET_MAXLEV, OFF(nmult),
     "channel multiplier per level"},
    {"nres", SP_CF_INT, OFF(nres), 1, 8, NULL, 0, 0, "ResBlocks per encoder level (decoder: nres+1)"},
    {"attn_min_ds", SP_CF_INT, OFF(attn_min_ds), 1, 1024, NULL, 0, 0,
     "attention at levels whose downsample factor >= this (always in the middle)"},
    {"head_ch", SP_CF_INT, OFF(head_ch), 1, 1024, NULL, 0, 0, "channels per attention head"},
    {"groups", SP_CF_INT, OFF(groups), 1, 256, NULL, 0, 0, "GroupNorm groups"},
    {"tdim", SP_CF_INT, OFF(tdim), 2, 8192, NULL, 0, 0, "time-embedding width"},
    {"text_dim", SP_CF_INT, OFF(text_dim), 1, 8192, NULL, 0, 0, "word-embedding width"},
    {"winograd", SP_CF_INT, OFF(winograd), 0, 2, NULL, 0, 0,
     "3x3 convs by Winograd: 0 never, 1 where it pays, 2 always"},
    {"cond", SP_CF_ENUM, OFF(cond), 0, 3, g_conds, 0, 0,
     "conditioning: text (AVDC), distance (+ 9-d gripper/object/goal vector), plan (text and plan "
     "tokens pooled, global), plan-local (text global, plan by gated cross-attention)"},
    {"plan_dim", SP_CF_INT, OFF(plan_dim), 1, 4096, NULL, 0, 0,
     "plan encoder width P (MLP hidden 4P; also the distance MLP's hidden 4P)"},
    {"scale_shift", SP_CF_ENUM, OFF(scale_shift), 0, 2, g_ss, 0, 0,
     "ResBlock conditioning: on (GroupNorm scale and shift, the paper), off (a bias after the first "
     "conv: AVDC, SP's released code), auto (on for distance/plan/plan-local, off for text)"},
    {"text_enc", SP_CF_ENUM, OFF(text_enc), 0, 1, g_text_encs, 0, 0,
     "text encoder: words (the offline 14-word embedding) or clip (CLIP ViT-B/32's per-token features "
     "of each task text, cached in the model from --clip-file FILE at the start of training)"},
    {"video_cond", SP_CF_INT, OFF(video_cond), 0, 1, NULL, 0, 0,
     "1: conditioned on a video, frame by frame, in place of the first frame repeated (VideoAgent's "
     "refinement model; stacked: 6F input channels)"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};
#undef OFF

void sp_vunet_cfg_preset(sp_vunet_cfg *c, sp_preset p) {
  switch (p) {
    case SP_PRESET_TINY:
      *c = (sp_vunet_cfg){.layout = SP_VUNET_STACKED, .res = 16, .frames = 7, .ch = 16, .mult = {1, 2},
                          .nmult = 2, .nres = 1, .attn_min_ds = 2, .head_ch = 8, .groups = 4, .tdim = 32,
                          .text_dim = 8, .winograd = 1, .cond = SP_VCOND_TEXT, .plan_dim = 8};
      break;
    case SP_PRESET_CPU:  // bench_nn's unet64 plus text and attention at 16x16
      *c = (sp_vunet_cfg){.layout = SP_VUNET_STACKED, .res = 64, .frames = 7, .ch = 32, .mult = {1, 2, 4},
                          .nmult = 3, .nres = 2, .attn_min_ds = 4, .head_ch = 32, .groups = 8, .tdim = 128,
                          .text_dim = 64, .winograd = 1, .cond = SP_VCOND_TEXT, .plan_dim = 32};
      break;
    default:  // paper: AVDC's Meta-World U-Net
      *c = (sp_vunet_cfg){.layout = SP_VUNET_FACTORISED, .res = 128, .frames = 7, .ch = 128,
                          .mult = {1, 2, 3, 4, 5}, .nmult = 5, .nres = 2, .attn_min_ds = 8, .head_ch = 32,
                          .groups = 32, .tdim = 512, .text_dim = 512, .winograd = 1,
                          .cond = SP_VCOND_TEXT, .plan_dim = 64};
      break;
  }
}

int sp_vunet_cfg_check(const sp_vunet_cfg *c, char *err) {
  if (sp_cf_check(sp_vunet_fields, c, "vunet", err)) return -1;
  int down = 1 << (c->nmult - 1);
  if (c->res % down)
    return sp_errf(err, "vunet: res = %d is not divisible by 2^(levels-1) = %d (mult has %d levels)", c->res,
                   down, c->nmult);
  if (c->ch % 2) return sp_errf(err, "vunet: ch = %d must be even (sinusoidal time embedding)", c->ch);
  for (int l = 0, ds = 1; l < c->nmult; l++, ds *= 2) {
    int C = c->ch * c->mult[l];
    if (C % c->groups)
      return sp_errf(err, "vunet: groups = %d does not divide the %d channels of level %d (ch * mult[%d])",
                     c->groups, C, l, l);
    int attn = ds >= c->attn_min_ds || l == c->nmult - 1;  // the last level feeds the middle
    if (attn && C % c->head_ch)
      return sp_errf(err, "vunet: head_ch = %d does not divide the %d channels of level %d (attention there)",
                     c->head_ch, C, l);
  }
  if (c->text_enc != SP_VUNET_TEXT_CLIP || !c->clip_n) return 0;
  if (c->clip_n < 0 || c->clip_n > SP_VUNET_CLIP_MAX)
    return sp_errf(err, "vunet: the CLIP cache holds %d texts, want 1..%d", c->clip_n, SP_VUNET_CLIP_MAX);
  if (c->clip_dim < 1 || c->clip_dim > 8192)
    return sp_errf(err, "vunet: the CLIP cache's width %d is outside 1..8192", c->clip_dim);
  for (int i = 0; i < c->clip_n; i++) {
    if (c->clip_len[i] < 2 || c->clip_len[i] > 4096)
      return sp_errf(err, "vunet: CLIP cache text %d ('%s') has %d tokens, want 2..4096 (sot..eot)", i,
                     c->clip_text[i], c->clip_len[i]);
    if (!c->clip_text[i][0] || !memchr(c->clip_text[i], 0, SP_VUNET_CLIP_TEXT))
      return sp_errf(err, "vunet: CLIP cache text %d is empty or unterminated", i);
    for (int k = 0; k < i; k++)
      if (!strcmp(c->clip_text[k], c->clip_text[i]))
        return sp_errf(err, "vunet: CLIP cache text '%s' appears twice", c->clip_text[i]);
  }
  return 0;
}

char *sp_vunet_cfg_to_json(const sp_vunet_cfg *c) {
  char *js = sp_cf_to_json(sp_vunet_fields, c);
  if (c->text_enc != SP_VUNET_TEXT_CLIP) return js;
  cJSON *o = cJSON_Parse(js), *cl = cJSON_CreateObject();
  free(js);
  SP_ASSERT(o && cl);
  cJSON_AddNumberToObject(cl, "dim", c->clip_dim);
  cJSON *tx = cJSON_AddArrayToObject(cl, "texts"), *ln = cJSON_AddArrayToObject(cl, "len");
  for (int i = 0; i < c->clip_n; i++) {
    cJSON_AddItemToArray(tx, cJSON_CreateString(c->clip_text[i]));
    cJSON_AddItemToArray(ln, cJSON_CreateNumber(c->clip_len[i]));
  }
  cJSON_AddItemToObject(o, "clip", cl);
  js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return js;
}

/* "clip": {"dim", "texts", "len"} -> c's cache description */
static int clip_from_json(sp_vunet_cfg *c, const cJSON *cl, char *err) {
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(cl, "dim"), *tx = cJSON_GetObjectItemCaseSensitive(cl, "texts");
  const cJSON *ln = cJSON_GetObjectItemCaseSensitive(cl, "len");
  if (!cJSON_IsObject(cl) || !cJSON_IsNumber(d) || !cJSON_IsArray(tx) || !cJSON_IsArray(ln) ||
      cJSON_GetArraySize(tx) != cJSON_GetArraySize(ln))
    return sp_errf(err, "config: clip must be {\"dim\": width, \"texts\": [...], \"len\": [...]} of equal lengths");
  int n = cJSON_GetArraySize(tx);
  if (n > SP_VUNET_CLIP_MAX) return sp_errf(err, "config: clip holds %d texts, at most %d", n, SP_VUNET_CLIP_MAX);
  c->clip_dim = (int)d->valuedouble;
  c->clip_n = n;
  for (int i = 0; i < n; i++) {
    const cJSON *t = cJSON_GetArrayItem(tx, i), *l = cJSON_GetArrayItem(ln, i);
    if (!cJSON_IsString(t) || strlen(t->valuestring) >= SP_VUNET_CLIP_TEXT || !cJSON_IsNumber(l))
      return sp_errf(err, "config: clip text %d must be a string under %d bytes with a number in len", i,
                     SP_VUNET_CLIP_TEXT);
    snprintf(c->clip_text[i], SP_VUNET_CLIP_TEXT, "%s", t->valuestring);
    c->clip_len[i] = (int)l->valuedouble;
  }
  return 0;
}

int sp_vunet_cfg_from_json(sp_vunet_cfg *c, const char *json, char *err) {
  cJSON *o = cJSON_Parse(json ? json : "");
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return sp_errf(err, "config is not a JSON object");
  }
  cJSON *cl = cJSON_DetachItemFromObjectCaseSensitive(o, "clip");
  char *rest = cJSON_PrintUnformatted(o);
  int rc = sp_cf_from_json(sp_vunet_fields, c, rest, err);
  if (!rc && cl) rc = clip_from_json(c, cl, err);
  free(rest);
  cJSON_Delete(cl);
  cJSON_Delete(o);
  return rc;
}

int sp_vunet_cfg_diff(const sp_vunet_cfg *a, const sp_vunet_cfg *b, const char *what, char *err) {
  if (sp_cf_diff(sp_vunet_fields, a, b, what, err)) return -1;
  if (a->text_enc != SP_VUNET_TEXT_CLIP) return 0;
  if (a->clip_n != b->clip_n || a->clip_dim != b->clip_dim)
    return sp_errf(err, "%s: the CLIP cache holds %d texts of width %d, want %d of width %d", what, a->clip_n,
                   a->clip_dim, b->clip_n, b->clip_dim);
  for (int i = 0; i < a->clip_n; i++)
    if (strcmp(a->clip_text[i], b->clip_text[i]) || a->clip_len[i] != b->clip_len[i])
      return sp_errf(err, "%s: CLIP cache text %d is '%s' (%d tokens), want '%s' (%d tokens)", what, i,
                     a->clip_text[i], a->clip_len[i], b->clip_text[i], b->clip_len[i]);
  return 0;
}

int sp_vunet_clip_find(const sp_vunet_cfg *c, const char *text) {
  if (c->text_enc != SP_VUNET_TEXT_CLIP) return -1;
  char t[SP_VUNET_CLIP_TEXT];
  if (sp_text_normalize(text, t, sizeof t) < 0) return -1;
  for (int i = 0; i < c->clip_n; i++)
    if (!strcmp(c->clip_text[i], t)) return i;
  return -1;
}
