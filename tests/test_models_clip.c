/* tests of src/models/clip: the tokenizer against open_clip's ids, and the text tower against
 * open_clip's model class, both from tools/twin_clip.py (tests/fixtures/clip/).
 *
 * No weights are committed: every weight is a formula of (tensor index, element index) that the
 * twin computes too (clip_hash below, wvalue there). Each test writes the model to a temporary
 * safetensors file, with the fixture's list of tensors, and loads it through sp_clip_load.
 *
 * The merges: the fixture holds the merges the test strings meet, with their ranks
 * (merges_subset.txt; the whole text is 1.7 MB). The test writes a merges text of full length
 * with a placeholder pair at every other rank: "\u2603<rank> \u2603" can never match, since
 * U+2603 is outside the BPE alphabet, and the ids of the real merges keep their values (512 +
 * rank). BPE only ever applies the lowest-ranked pair present, so leaving out merges whose pairs
 * never occur changes nothing. SP_CLIP_CORPUS_DIR (tools/twin_clip.py --corpus) runs the full
 * merges text over 6000 longer strings as well.
 *
 * Tolerance: max |c - twin| / max |twin| <= 1e-4 (the twin is open_clip in float64; open_clip in
 * float32 is 7e-7 from it). The ids must be equal. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "models/clip.h"
#include "nn/nn.h"
#include "nn/nn_train.h"
#include "skip_note.h"

#define FIX "tests/fixtures/clip/"

/* ---------------------------------------------------------------------------------------------
 * helpers */

static double relerr(const float *got, const float *want, size_t n) {
  double m = 0, b = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    if (!(d <= m)) m = d;  // NaN propagates
    if (fabs(want[i]) > b) b = fabs(want[i]);
  }
  return m / (b + 1e-30);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* the fixture: tensors plus the metadata's JSON values */
typedef struct {
  nn_safetensors st;
  cJSON *texts, *wfull, *wsmall, *cfull, *csmall, *tok_texts, *stok_texts;
} clip_fix;

static cJSON *meta_json(const nn_safetensors *st, const char *key) {
  const char *s = nn_st_meta(st, key);
  cr_assert(s, "fixture metadata %s missing (rerun tools/twin_clip.py)", key);
  cJSON *j = cJSON_Parse(s);
  cr_assert(j, "fixture metadata %s is not JSON", key);
  return j;
}

static void fix_open(clip_fix *f) {
  char err[SP_ERRLEN];
  cr_assert_eq(nn_st_open(&f->st, FIX "clip.safetensors", err), 0, "%s", err);
  f->texts = meta_json(&f->st, "texts");
  f->wfull = meta_json(&f->st, "weights_full");
  f->wsmall = meta_json(&f->st, "weights_small");
  f->cfull = meta_json(&f->st, "config_full");
  f->csmall = meta_json(&f->st, "config_small");
  f->tok_texts = meta_json(&f->st, "token_texts");
  f->stok_texts = meta_json(&f->st, "small_token_texts");
}

static void fix_close(clip_fix *f) {
  cJSON *all[] = {f->texts, f->wfull, f->wsmall, f->cfull, f->csmall, f->tok_texts, f->stok_texts};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) cJSON_Delete(all[i]);
  nn_st_close(&f->st);
}

static const void *fx(const nn_safetensors *st, const char *key, const char *dtype, size_t want) {
  const nn_st_tensor *t = nn_st_find(st, key);
  cr_assert(t, "fixture tensor %s missing", key);
  cr_assert_str_eq(t->dtype, dtype, "fixture %s", key);
  size_t es = dtype[1] == '3' ? 4 : 1;
  cr_assert_eq((t->end - t->begin) / es, want, "fixture %s has %zu elements, want %zu", key,
               (t->end - t->begin) / es, want);
  return st->buf + st->data_off + t->begin;
}

static int text_index(const clip_fix *f, const char *s) {
  for (int i = 0; i < cJSON_GetArraySize(f->texts); i++)
    if (!strcmp(cJSON_GetArrayItem(f->texts, i)->valuestring, s)) return i;
  cr_assert_fail("text '%s' not among the fixture's texts", s);
  return -1;
}

/* a merges text of full length for the vocabulary: the fixture's merges at their ranks, a
 * placeholder pair elsewhere (malloc'd; *len set) */
static char *merges_text(int vocab, size_t *len) {
  char err[SP_ERRLEN];
  size_t n;
  char *sub = sp_file_read(FIX "merges_subset.txt", &n, err);
  cr_assert(sub, "%s", err);
  int nm = vocab - 514;
  char **line = calloc((size_t)nm, sizeof *line);
  for (char *p = strtok(sub, "\n"); p; p = strtok(NULL, "\n")) {
    if (*p == '#') continue;
    int r = atoi(p);
    cr_assert(r >= 0 && r < nm, "merges_subset.txt: rank %d", r);
    line[r] = strchr(p, ' ') + 1;
  }
  size_t cap = 64 + (size_t)nm * 40, o = 0;
  char *t = malloc(cap);
  o += (size_t)snprintf(t, cap, "\"bpe_simple_vocab_16e6.txt#version: 0.2\n");  // the file's own
  for (int r = 0; r < nm; r++) {
    if (line[r]) o += (size_t)snprintf(t + o, cap - o, "%s\n", line[r]);
    else o += (size_t)snprintf(t + o, cap - o, "\xe2\x98\x83%d \xe2\x98\x83\n", r);
    cr_assert(o < cap);
  }
  free(line);
  free(sub);
  *len = o;
  return t;
}

/* ---------------------------------------------------------------------------------------------
 * the model file: weights by formula, written the way tools/clip_to_safetensors.py writes */

static uint32_t clip_hash(uint32_t t, uint32_t i) {
  uint32_t x = i * 0x9E3779B1u + t * 0x85EBCA77u + 0x165667B1u;
  x ^= x >> 15;
  x *= 0x2C1B3C6Du;
  x ^= x >> 12;
  x *= 0x297A2D39u;
  x ^= x >> 15;
  return x;
}

static float clip_wvalue(uint32_t t, uint32_t i, double center, double scale) {
  return (float)(center + scale * ((double)(clip_hash(t, i) >> 8) * (1.0 / 8388608.0) - 1.0));
}

/* what to spoil in a written file, for the loader's error tests */
typedef struct {
  const char *drop;       // leave this tensor out
  const char *reshape;    // write this tensor with its dims swapped (or one more row for a vector)
  const char *format, *version;  // metadata (NULL: the right ones)
  int no_merges;          // leave bpe_merges out
  size_t merges_cut;      // write only this many bytes of the merges text (0: all)
} clip_spoil;

static void write_model(const char *path, const cJSON *specs, const cJSON *cfg, const char *merges,
                        size_t mlen, const clip_spoil *sp) {
  static const clip_spoil none = {0};
  if (!sp) sp = &none;
  cJSON *h = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(h, "__metadata__");
  char *cj = cJSON_PrintUnformatted(cfg);
  cJSON_AddStringToObject(meta, "format", sp->format ? sp->format : SP_CLIP_FORMAT);
  cJSON_AddStringToObject(meta, "version", sp->version ? sp->version : SP_CLIP_VERSION);
  cJSON_AddStringToObject(meta, "config", cj);
  free(cj);
  size_t off = 0;
  int n = cJSON_GetArraySize(specs);
  for (int i = 0; i < n; i++) {
    cJSON *s = cJSON_GetArrayItem(specs, i), *shape = cJSON_GetArrayItem(s, 1);
    const char *name = cJSON_GetArrayItem(s, 0)->valuestring;
    if (sp->drop && !strcmp(name, sp->drop)) continue;
    int64_t d[2] = {0, 0}, numel = 1;
    int nd = cJSON_GetArraySize(shape);
    for (int k = 0; k < nd; k++) numel *= d[k] = (int64_t)cJSON_GetArrayItem(shape, k)->valuedouble;
    if (sp->reshape && !strcmp(name, sp->reshape)) {
      if (nd == 2) d[0] ^= d[1], d[1] ^= d[0], d[0] ^= d[1];
      else numel = ++d[0];
    }
    cJSON *e = cJSON_AddObjectToObject(h, name), *sh = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddStringToObject(e, "dtype", "F32");
    for (int k = 0; k < nd; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)d[k]));
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    off += 4 * (size_t)numel;
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
  }
  size_t mn = sp->merges_cut ? sp->merges_cut : mlen;
  if (!sp->no_merges) {
    cJSON *e = cJSON_AddObjectToObject(h, SP_CLIP_MERGES_TENSOR), *sh = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddStringToObject(e, "dtype", "U8");
    cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)mn));
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + mn)));
  }
  char *js = cJSON_PrintUnformatted(h);
  cJSON_Delete(h);
  size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
  FILE *f = fopen(path, "wb");
  cr_assert(f, "cannot write %s", path);
  uint64_t n8 = hl + pad;
  unsigned char le[8];
  for (int k = 0; k < 8; k++) le[k] = (unsigned char)(n8 >> (8 * k));
  fwrite(le, 1, 8, f);
  fwrite(js, 1, hl, f);
  fwrite("        ", 1, pad, f);
  free(js);
  enum { CH = 1 << 20 };
  float *buf = malloc(CH * sizeof *buf);
  for (int i = 0; i < n; i++) {
    cJSON *s = cJSON_GetArrayItem(specs, i), *shape = cJSON_GetArrayItem(s, 1);
    const char *name = cJSON_GetArrayItem(s, 0)->valuestring;
    if (sp->drop && !strcmp(name, sp->drop)) continue;
    double center = cJSON_GetArrayItem(s, 2)->valuedouble, scale = cJSON_GetArrayItem(s, 3)->valuedouble;
    size_t numel = 1;
    for (int k = 0; k < cJSON_GetArraySize(shape); k++) numel *= (size_t)cJSON_GetArrayItem(shape, k)->valuedouble;
    if (sp->reshape && !strcmp(name, sp->reshape) && cJSON_GetArraySize(shape) == 1) numel++;
    for (size_t a = 0; a < numel; a += CH) {
      size_t m = numel - a < CH ? numel - a : CH;
      for (size_t q = 0; q < m; q++) buf[q] = clip_wvalue((uint32_t)i, (uint32_t)(a + q), center, scale);
      cr_assert_eq(fwrite(buf, sizeof *buf, m, f), m);
    }
  }
  free(buf);
  if (!sp->no_merges) fwrite(merges, 1, mn, f);
  cr_assert_eq(fclose(f), 0);
}

static void tmp_path(char *p, size_t cap, const char *tag) {
  snprintf(p, cap, "/tmp/sp_test_clip_%s_%d.safetensors", tag, (int)getpid());
}

static void config_of(sp_clip_config *c, const cJSON *j) {
  char *s = cJSON_PrintUnformatted(j), err[SP_ERRLEN];
  memset(c, 0, sizeof *c);
  cr_assert_eq(sp_cf_from_json(sp_clip_config_table, c, s, err), 0, "%s", err);
  cr_assert_eq(sp_clip_config_check(c, err), 0, "%s", err);
  free(s);
}

/* ---------------------------------------------------------------------------------------------
 * tokenizer */

Test(clip, tokenize_matches_open_clip) {
  clip_fix f;
  fix_open(&f);
  int S = cJSON_GetArraySize(f.texts);
  const int32_t *ids = fx(&f.st, "ids", "I32", (size_t)S * 77), *ids16 = fx(&f.st, "ids16", "I32", (size_t)S * 16);
  size_t ml;
  char *mt = merges_text(49408, &ml), err[SP_ERRLEN];
  sp_clip_bpe *b = sp_clip_bpe_new(mt, ml, 49408, err);
  cr_assert(b, "%s", err);
  int bad = 0;
  for (int s = 0; s < S; s++) {
    const char *text = cJSON_GetArrayItem(f.texts, s)->valuestring;
    int32_t got[77], got16[16];
    int full = 0, n = sp_clip_tokenize(b, text, 77, got, &full);
    cr_assert(n >= 2 && n <= 77);
    cr_expect_eq(got[n - 1], 49407, "'%s': eot last", text);
    int n16 = sp_clip_tokenize(b, text, 16, got16, NULL);
    cr_expect_eq(n16, full < 16 ? full : 16);
    if (memcmp(got, ids + (size_t)s * 77, sizeof got) || memcmp(got16, ids16 + (size_t)s * 16, sizeof got16)) {
      bad++;
      char g[800] = "", w[800] = "";
      for (int k = 0, og = 0, ow = 0; k < 24; k++) {
        og += snprintf(g + og, sizeof g - (size_t)og, " %d", got[k]);
        ow += snprintf(w + ow, sizeof w - (size_t)ow, " %d", ids[(size_t)s * 77 + k]);
      }
      cr_expect_fail("text %d '%s': ids differ from open_clip's\n  got :%s\n  want:%s", s, text, g, w);
    }
  }
  fprintf(stderr, "clip: tokenizer: %d of %d texts match open_clip's ids (context 77 and 16)\n", S - bad, S);
  /* the long text is cut at 77 with eot last, and reports its full length */
  int32_t got[77];
  int full = 0;
  const char *longt = cJSON_GetArrayItem(f.texts, text_index(&f, "door open"))->valuestring;
  cr_assert_eq(sp_clip_tokenize(b, longt, 77, got, &full), 4);
  cr_assert_eq(full, 4);
  sp_clip_bpe_free(b);
  free(mt);
  fix_close(&f);
}

Test(clip, merges_errors) {
  char err[SP_ERRLEN];
  const char *nover = "i n\nt h\n";
  cr_assert_null(sp_clip_bpe_new(nover, strlen(nover), 516, err));
  cr_assert(strstr(err, "#version"), "%s", err);
  const char *shrt = "#version: 0.2\ni n\n";
  cr_assert_null(sp_clip_bpe_new(shrt, strlen(shrt), 516, err));
  cr_assert(strstr(err, "has 1 merges") && strstr(err, "needs 2"), "%s", err);
  const char *three = "#version: 0.2\ni n x\nt h\n";
  cr_assert_null(sp_clip_bpe_new(three, strlen(three), 516, err));
  cr_assert(strstr(err, "line 2 holds 3 symbols"), "%s", err);
  /* a tiny vocabulary of two merges: "in</w>" (id 512) and "th" (513); byte tokens: '!' + k has
   * id k, with "</w>" 256 + k */
  const char *two = "#version: 0.2\ni n</w>\nt h\nextra lines are ignored\n";
  sp_clip_bpe *b = sp_clip_bpe_new(two, strlen(two), 516, err);
  cr_assert(b, "%s", err);
  cr_assert_eq(sp_clip_bpe_vocab(b), 516);
  int32_t ids[6], full = 0;
  cr_assert_eq(sp_clip_tokenize(b, "IN in the", 6, ids, &full), 6);
  int32_t want[6] = {514, 512, 512, 513, 256 + 'e' - '!', 515};
  cr_assert_arr_eq(ids, want, sizeof want);
  cr_assert_eq(full, 6);
  cr_assert_eq(sp_clip_tokenize(b, "IN in the", 5, ids, &full), 5);
  int32_t cut[5] = {514, 512, 512, 513, 515};
  cr_assert_arr_eq(ids, cut, sizeof cut);
  cr_assert_eq(full, 6);
  cr_assert_eq(sp_clip_tokenize(b, "", 5, ids, &full), 2);
  int32_t empty[5] = {514, 515, 0, 0, 0};
  cr_assert_arr_eq(ids, empty, sizeof empty);
  sp_clip_bpe_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * text tower */

typedef struct {
  double emb, tok;  // max relative errors
  double load_s, enc_s;
} clip_result;

/* one config (full or small) against the twin: write, load, encode every text */
static clip_result twin_check(int full) {
  clip_fix f;
  fix_open(&f);
  nn_init(1);
  sp_clip_config c;
  config_of(&c, full ? f.cfull : f.csmall);
  int S = cJSON_GetArraySize(f.texts), T = c.context, C = c.width, E = c.embed_dim;
  size_t ml;
  char *mt = merges_text(c.vocab, &ml), path[256], err[SP_ERRLEN];
  tmp_path(path, sizeof path, full ? "full" : "small");
  double t0 = now_s();
  write_model(path, full ? f.wfull : f.wsmall, full ? f.cfull : f.csmall, mt, ml, NULL);
  sp_clip_model m;
  cr_assert_eq(sp_clip_load(&m, path, err), 0, "%s", err);
  unlink(path);
  clip_result r = {0};
  r.load_s = now_s() - t0;
  cr_assert_eq(memcmp(&m.cfg, &c, sizeof c), 0);
  sp_clip_ws w;
  cr_assert_eq(sp_clip_ws_init(&w, &c, err), 0, "%s", err);
  const int32_t *want_ids = fx(&f.st, full ? "ids" : "ids16", "I32", (size_t)S * T);
  const float *want_emb = fx(&f.st, full ? "full.emb" : "small.emb", "F32", (size_t)S * E);
  float *emb = malloc(sizeof(float) * (size_t)S * E), *tok = malloc(sizeof(float) * (size_t)T * C);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)T);
  /* per-token features: rows 0..eot of the listed texts (full), all rows (small) */
  cJSON *tt = full ? f.tok_texts : f.stok_texts;
  size_t ntok_rows = 0;
  for (int k = 0; k < cJSON_GetArraySize(tt); k++) {
    int s = text_index(&f, cJSON_GetArrayItem(tt, k)->valuestring), eot = 0;
    for (int t = 0; t < T; t++) eot = want_ids[(size_t)s * T + t] > want_ids[(size_t)s * T + eot] ? t : eot;
    ntok_rows += full ? (size_t)eot + 1 : (size_t)T;
  }
  const float *want_tok = fx(&f.st, full ? "full.tokens" : "small.tokens", "F32", ntok_rows * C);
  float *got_tok = malloc(sizeof(float) * ntok_rows * C);
  size_t row = 0;
  t0 = now_s();
  for (int s = 0; s < S; s++) {
    const char *text = cJSON_GetArrayItem(f.texts, s)->valuestring;
    int eot = sp_clip_encode_text(&m, &w, text, ids, emb + (size_t)s * E, tok, 0, err);
    cr_assert(eot >= 0, "%s", err);
    cr_expect_eq(memcmp(ids, want_ids + (size_t)s * T, sizeof(int32_t) * T), 0, "'%s': ids", text);
    for (int k = 0; k < cJSON_GetArraySize(tt); k++)
      if (!strcmp(cJSON_GetArrayItem(tt, k)->valuestring, text)) {
        size_t nr = full ? (size_t)eot + 1 : (size_t)T;
        memcpy(got_tok + row * C, tok, sizeof(float) * nr * C);
        row += nr;
      }
  }
  r.enc_s = (now_s() - t0) / S;
  cr_assert_eq(row, ntok_rows);
  r.emb = relerr(emb, want_emb, (size_t)S * E);
  r.tok = relerr(got_tok, want_tok, ntok_rows * C);
  for (int s = 0; s < S; s++) {
    double e = relerr(emb + (size_t)s * E, want_emb + (size_t)s * E, (size_t)E);
    cr_expect(e <= 1e-4, "'%s': embedding relative error %.3g", cJSON_GetArrayItem(f.texts, s)->valuestring, e);
  }
  cr_expect(r.emb <= 1e-4, "embeddings: relative error %.3g", r.emb);
  cr_expect(r.tok <= 1e-4, "token features: relative error %.3g", r.tok);
  /* the texts differ: a model that ignored its input would match nothing but would not fail */
  cr_expect(relerr(emb, emb + E, (size_t)E) > 0.1, "two texts gave nearly the same embedding");
  if (!full) {
    /* the double reference against the twin, and the fast path against the reference */
    float *ref = malloc(sizeof(float) * (size_t)E), *rtok = malloc(sizeof(float) * (size_t)T * C);
    double worst = 0, worst_tok = 0;
    for (int s = 0; s < S; s++) {
      cr_assert(sp_clip_encode_ref(&m, want_ids + (size_t)s * T, ref, rtok, 0, err) >= 0, "%s", err);
      cr_assert(sp_clip_encode(&m, &w, want_ids + (size_t)s * T, emb, tok, 0, err) >= 0, "%s", err);
      double e = relerr(ref, want_emb + (size_t)s * E, (size_t)E), e2 = relerr(emb, ref, (size_t)E);
      double e3 = relerr(tok, rtok, (size_t)T * C);
      worst = e > worst ? e : worst;
      worst_tok = e2 > worst_tok ? e2 : worst_tok;
      worst_tok = e3 > worst_tok ? e3 : worst_tok;
    }
    cr_expect(worst <= 1e-6, "double reference vs twin: %.3g", worst);
    cr_expect(worst_tok <= 1e-4, "fast path vs double reference: %.3g", worst_tok);
    fprintf(stderr, "clip: small: double reference vs twin %.2e, fast vs reference %.2e\n", worst, worst_tok);
    free(ref);
    free(rtok);
  }
  /* normalize: the same direction, unit length */
  float *un = malloc(sizeof(float) * (size_t)E);
  cr_assert(sp_clip_encode_text(&m, &w, "door open", NULL, emb, NULL, 0, err) >= 0, "%s", err);
  cr_assert(sp_clip_encode_text(&m, &w, "door open", NULL, un, NULL, 1, err) >= 0, "%s", err);
  double nrm = 0, nu = 0;
  for (int e = 0; e < E; e++) nrm += (double)emb[e] * emb[e], nu += (double)un[e] * un[e];
  cr_expect(fabs(nu - 1) < 1e-5, "normalised length %.7f", sqrt(nu));
  for (int e = 0; e < E; e++) cr_expect(fabs(un[e] - emb[e] / sqrt(nrm)) < 1e-6);
  fprintf(stderr, "clip: %s (%d layers, width %d): %d texts, embeddings rel err %.2e, token features %.2e; "
                  "write + load %.2f s, encode %.1f ms a text\n",
          full ? "full" : "small", c.layers, C, S, r.emb, r.tok, r.load_s, 1e3 * r.enc_s);
  free(un);
  free(emb);
  free(tok);
  free(ids);
  free(got_tok);
  free(mt);
  sp_clip_ws_free(&w);
  sp_clip_free(&m);
  fix_close(&f);
  return r;
}

Test(clip, twin_full, .timeout = 120) { twin_check(1); }
Test(clip, twin_small) { twin_check(0); }

/* ---------------------------------------------------------------------------------------------
 * loader and argument errors */

static void expect_load_error(const clip_fix *f, const clip_spoil *sp, const char *want1, const char *want2) {
  sp_clip_config c;
  config_of(&c, f->csmall);
  size_t ml;
  char *mt = merges_text(c.vocab, &ml), path[256], err[SP_ERRLEN];
  tmp_path(path, sizeof path, "bad");
  write_model(path, f->wsmall, f->csmall, mt, ml, sp);
  sp_clip_model m;
  cr_expect_eq(sp_clip_load(&m, path, err), -1, "a spoilt file loaded (%s)", want1);
  cr_expect(strstr(err, path), "the message names the file: %s", err);
  cr_expect(strstr(err, want1) && (!want2 || strstr(err, want2)), "message '%s' lacks '%s' / '%s'", err, want1,
            want2 ? want2 : "");
  cr_expect_null(m.buf);
  unlink(path);
  free(mt);
}

Test(clip, loader_errors) {
  clip_fix f;
  fix_open(&f);
  clip_spoil sp = {.drop = "transformer.resblocks.1.mlp.c_fc.weight"};
  expect_load_error(&f, &sp, "'transformer.resblocks.1.mlp.c_fc.weight' is missing", "[256, 64]");
  sp = (clip_spoil){.reshape = "text_projection"};
  expect_load_error(&f, &sp, "'text_projection' has shape [32, 64], want [64, 32]", NULL);
  sp = (clip_spoil){.reshape = "transformer.resblocks.0.ln_2.bias"};
  expect_load_error(&f, &sp, "'transformer.resblocks.0.ln_2.bias' has shape [65], want [64]", NULL);
  sp = (clip_spoil){.format = "sp-nn-checkpoint"};
  expect_load_error(&f, &sp, "not a CLIP text-tower file", "clip_to_safetensors.py");
  sp = (clip_spoil){.version = "0"};
  expect_load_error(&f, &sp, "version '0'", "reads version 1");
  sp = (clip_spoil){.no_merges = 1};
  expect_load_error(&f, &sp, "bpe_merges", "clip_to_safetensors.py");
  size_t ml, cut = 0;
  char *mt = merges_text(49408, &ml);
  for (int k = 0; k < 101; k++) cut += (size_t)(strchr(mt + cut, '\n') - (mt + cut)) + 1;  // version + 100
  free(mt);
  sp = (clip_spoil){.merges_cut = cut};
  expect_load_error(&f, &sp, "bpe_merges: the BPE merges text has 100 merges", "needs 48894");
  char err[SP_ERRLEN];
  sp_clip_model m;
  cr_expect_eq(sp_clip_load(&m, "/nonexistent/clip.safetensors", err), -1);
  cr_expect(strstr(err, "/nonexistent/clip.safetensors"), "%s", err);
  fix_close(&f);
}

Test(clip, encode_errors) {
  clip_fix f;
  fix_open(&f);
  nn_init(1);
  sp_clip_config c, d;
  config_of(&c, f.csmall);
  size_t ml;
  char *mt = merges_text(c.vocab, &ml), path[256], err[SP_ERRLEN];
  tmp_path(path, sizeof path, "err");
  write_model(path, f.wsmall, f.csmall, mt, ml, NULL);
  sp_clip_model m;
  cr_assert_eq(sp_clip_load(&m, path, err), 0, "%s", err);
  unlink(path);
  sp_clip_ws w, w2;
  cr_assert_eq(sp_clip_ws_init(&w, &c, err), 0, "%s", err);
  int32_t ids[16] = {49406, 1, 49408, 49407};
  float emb[32];
  cr_expect_eq(sp_clip_encode(&m, &w, ids, emb, NULL, 0, err), -1);
  cr_expect(strstr(err, "49408 at position 2"), "%s", err);
  ids[2] = -3;
  cr_expect_eq(sp_clip_encode(&m, &w, ids, emb, NULL, 0, err), -1);
  ids[2] = 5;
  cr_expect_eq(sp_clip_encode(&m, &w, ids, emb, NULL, 0, err), 3, "pooled at the eot: %s", err);
  sp_clip_config_default(&d);
  cr_assert_eq(sp_clip_ws_init(&w2, &d, err), 0, "%s", err);
  cr_expect_eq(sp_clip_encode(&m, &w2, ids, emb, NULL, 0, err), -1);
  cr_expect(strstr(err, "workspace"), "%s", err);
  d.width = 100;
  cr_expect_eq(sp_clip_config_check(&d, err), -1);
  cr_expect(strstr(err, "heads"), "%s", err);
  sp_clip_ws_free(&w2);
  sp_clip_ws_free(&w);
  sp_clip_free(&m);
  free(mt);
  fix_close(&f);
}

/* ---------------------------------------------------------------------------------------------
 * the long tokenizer check: the full merges text over tools/twin_clip.py --corpus */

Test(clip, corpus) {
  const char *dir = getenv("SP_CLIP_CORPUS_DIR");
  if (!dir || !*dir) {
    SP_SKIP_NOTE("clip/corpus: the full-merges tokenizer check over 6000 strings; make its files with "
                 "tools/twin_clip.py --corpus DIR and set SP_CLIP_CORPUS_DIR=DIR");
    return;
  }
  char p[1024], err[SP_ERRLEN];
  size_t ml;
  snprintf(p, sizeof p, "%s/merges.txt", dir);
  char *mt = sp_file_read(p, &ml, err);
  cr_assert(mt, "%s", err);
  sp_clip_bpe *b = sp_clip_bpe_new(mt, ml, 49408, err);
  cr_assert(b, "%s", err);
  nn_safetensors st;
  snprintf(p, sizeof p, "%s/corpus.safetensors", dir);
  cr_assert_eq(nn_st_open(&st, p, err), 0, "%s", err);
  cJSON *texts = meta_json(&st, "texts");
  int S = cJSON_GetArraySize(texts), bad = 0;
  const int32_t *want = fx(&st, "ids", "I32", (size_t)S * 77);
  double t0 = now_s();
  for (int s = 0; s < S; s++) {
    int32_t got[77];
    const char *text = cJSON_GetArrayItem(texts, s)->valuestring;
    sp_clip_tokenize(b, text, 77, got, NULL);
    if (memcmp(got, want + (size_t)s * 77, sizeof got)) {
      if (bad++ < 10) cr_expect_fail("corpus text %d '%s': ids differ from open_clip's", s, text);
    }
  }
  fprintf(stderr, "clip: corpus: %d of %d texts match open_clip's ids (%.0f us a text)\n", S - bad, S,
          1e6 * (now_s() - t0) / S);
  cr_expect_eq(bad, 0);
  cJSON_Delete(texts);
  nn_st_close(&st);
  sp_clip_bpe_free(b);
  free(mt);
}

/* ---------------------------------------------------------------------------------------------
 * a converted file (tools/clip_to_safetensors.py, e.g. OpenAI's weights): the C embedding of the
 * file's check text against open_clip's, stored in the file */

Test(clip, file, .timeout = 60) {
  const char *path = getenv("SP_CLIP_FILE");
  if (!path || !*path) {
    SP_SKIP_NOTE("clip/file: a converted CLIP file against open_clip's embedding stored in it; make one with "
                 "tools/clip_to_safetensors.py OUT and set SP_CLIP_FILE=OUT");
    return;
  }
  char err[SP_ERRLEN];
  nn_init(1);
  sp_clip_model m;
  double t0 = now_s();
  cr_assert_eq(sp_clip_load(&m, path, err), 0, "%s", err);
  double tl = now_s() - t0;
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, path, err), 0, "%s", err);
  const char *text = nn_st_meta(&st, "check_text");
  cr_assert(text, "%s has no check_text (convert it again with tools/clip_to_safetensors.py)", path);
  cJSON *want = meta_json(&st, "check_emb");
  int E = m.cfg.embed_dim;
  cr_assert_eq(cJSON_GetArraySize(want), E);
  float *w = malloc(sizeof(float) * (size_t)E), *emb = malloc(sizeof(float) * (size_t)E);
  for (int e = 0; e < E; e++) w[e] = (float)cJSON_GetArrayItem(want, e)->valuedouble;
  sp_clip_ws ws;
  cr_assert_eq(sp_clip_ws_init(&ws, &m.cfg, err), 0, "%s", err);
  t0 = now_s();
  cr_assert(sp_clip_encode_text(&m, &ws, text, NULL, emb, NULL, 0, err) >= 0, "%s", err);
  double te = now_s() - t0, r = relerr(emb, w, (size_t)E);
  fprintf(stderr, "clip: file %s ('%s'): relative error %.2e against open_clip; load %.2f s, encode %.0f ms\n",
          nn_st_meta(&st, "source") ? nn_st_meta(&st, "source") : path, text, r, tl, 1e3 * te);
  cr_expect(r <= 1e-4, "relative error %.3g", r);
  free(w);
  free(emb);
  cJSON_Delete(want);
  nn_st_close(&st);
  sp_clip_ws_free(&ws);
  sp_clip_free(&m);
}
