/* trainer.c: the training loop shared by every model (contract in trainer.h). */
#include "models/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"

static const char *const g_ema_names[] = {"none", "fixed", "power", NULL};
static const char *const g_lr_names[] = {"cosine", "constant", NULL};

#define TF(f) offsetof(sp_train_cfg, f)
const sp_cf sp_train_fields[] = {
    {"steps", SP_CF_INT, TF(steps), 1, 1e8, NULL, 0, 0, "optimizer steps in all"},
    {"batch", SP_CF_INT, TF(batch), 1, 4096, NULL, 0, 0, "samples per step"},
    {"lr", SP_CF_FLOAT, TF(lr), 0, 1, NULL, 0, 0, "peak learning rate"},
    {"lr_sched", SP_CF_ENUM, TF(lr_sched), 0, 0, g_lr_names, 0, 0, "learning-rate schedule after warm-up"},
    {"warmup", SP_CF_INT, TF(warmup), 0, 1e8, NULL, 0, 0, "linear warm-up steps"},
    {"beta1", SP_CF_FLOAT, TF(beta1), 0, 0.999999, NULL, 0, 0, "AdamW beta1"},
    {"beta2", SP_CF_FLOAT, TF(beta2), 0, 0.999999, NULL, 0, 0, "AdamW beta2"},
    {"weight_decay", SP_CF_FLOAT, TF(weight_decay), 0, 1, NULL, 0, 0, "AdamW decoupled weight decay"},
    {"clip", SP_CF_FLOAT, TF(clip), 0, 1e6, NULL, 0, 0, "gradient-norm clip (0: off)"},
    {"ema", SP_CF_ENUM, TF(ema), 0, 0, g_ema_names, 0, 0, "EMA of the weights: none, fixed (AVDC), power (Diffusion Policy)"},
    {"ema_decay", SP_CF_FLOAT, TF(ema_decay), 0, 1, NULL, 0, 0, "EMA decay (fixed) or its maximum (power)"},
    {"ema_every", SP_CF_INT, TF(ema_every), 1, 1e6, NULL, 0, 0, "fixed EMA: update every N steps"},
    {"ema_power", SP_CF_FLOAT, TF(ema_power), 0, 10, NULL, 0, 0, "power EMA: decay = 1 - (1 + step)^-power"},
    {"seed", SP_CF_INT, TF(seed), 0, 2e9, NULL, 0, 0, "seed of every random draw (data, noise, init)"},
    {"threads", SP_CF_INT, TF(threads), 1, 256, NULL, 0, 0, "nn threads"},
    {"ckpt_minutes", SP_CF_FLOAT, TF(ckpt_minutes), 0, 1e6, NULL, 0, 0, "checkpoint every N minutes (0: off)"},
    {"ckpt_steps", SP_CF_INT, TF(ckpt_steps), 0, 1e8, NULL, 0, 0, "checkpoint every N steps (0: off)"},
    {"val_every", SP_CF_INT, TF(val_every), 0, 1e8, NULL, 0, 0, "validate every N steps (0: at the end only)"},
    {"log_every", SP_CF_INT, TF(log_every), 1, 1e8, NULL, 0, 0, "log every N steps"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};

/* the fields a resumed run may change without changing what it computes */
static int field_free_on_resume(const char *key) {
  return !strcmp(key, "steps") || !strcmp(key, "threads") || !strcmp(key, "ckpt_minutes") ||
         !strcmp(key, "ckpt_steps") || !strcmp(key, "val_every") || !strcmp(key, "log_every");
}

void sp_train_cfg_default(sp_train_cfg *c) {
  *c = (sp_train_cfg){.steps = 1000, .batch = 8, .lr = 1e-4f, .lr_sched = SP_LR_COSINE, .warmup = 100,
                      .beta1 = 0.9f, .beta2 = 0.99f, .weight_decay = 0.f, .clip = 1.f, .ema = SP_EMA_FIXED,
                      .ema_decay = 0.999f, .ema_every = 10, .ema_power = 0.75f, .seed = 0, .threads = 2,
                      .ckpt_minutes = 10.f, .ckpt_steps = 0, .val_every = 500, .log_every = 10};
}

unsigned sp_train_seed(int seed, long step, int stream) {
  unsigned long long z = (unsigned long long)(unsigned)seed * 0x9E3779B97F4A7C15ULL;
  z ^= (unsigned long long)step * 0xBF58476D1CE4E5B9ULL + (unsigned long long)stream * 0x94D049BB133111EBULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (unsigned)(z ^ (z >> 32));
}

/* ---------------------------------------------------------------------------------------------
 * the curve: (step, smoothed loss) and (step, validation metric) points, drawn as SVG */

typedef struct {
  double *x, *y;
  int n, cap;
} series;

static void series_add(series *s, double x, double y) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 256;
    s->x = realloc(s->x, sizeof(double) * (size_t)s->cap);
    s->y = realloc(s->y, sizeof(double) * (size_t)s->cap);
  }
  s->x[s->n] = x;
  s->y[s->n++] = y;
}

static void series_free(series *s) {
  free(s->x);
  free(s->y);
  memset(s, 0, sizeof *s);
}

static void range_of(const series *s, double *lo, double *hi) {
  *lo = INFINITY;
  *hi = -INFINITY;
  for (int i = 0; i < s->n; i++) {
    if (s->y[i] < *lo) *lo = s->y[i];
    if (s->y[i] > *hi) *hi = s->y[i];
  }
  if (!(*hi > *lo)) {
    *lo -= 0.5;
    *hi += 0.5;
  }
}

/* loss on a log axis (left, blue), the validation metric on a linear axis (right, red) */
static int write_curve(const char *path, const series *loss, const series *val, const char *vname, long steps,
                       char *err) {
  const double W = 720, H = 360, L = 70, R = 70, T = 30, B = 45;
  size_t cap = 1 << 20, k = 0;
  char *s = malloc(cap);
#define OUT(...) (k += (size_t)snprintf(s + k, k < cap ? cap - k : 0, __VA_ARGS__))
  OUT("<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif' "
      "font-size='12'>\n<rect width='100%%' height='100%%' fill='white'/>\n", W, H);
  OUT("<rect x='%.0f' y='%.0f' width='%.0f' height='%.0f' fill='none' stroke='#888'/>\n", L, T, W - L - R, H - T - B);
  double xmax = steps > 0 ? (double)steps : 1;
  for (int i = 0; i <= 4; i++) {
    double xs = L + (W - L - R) * i / 4.0;
    OUT("<text x='%.1f' y='%.0f' text-anchor='middle'>%.0f</text>\n", xs, H - B + 16, xmax * i / 4.0);
  }
  OUT("<text x='%.0f' y='%.0f' text-anchor='middle'>step</text>\n", L + (W - L - R) / 2, H - 8);
  if (loss->n) {
    double lo, hi;
    series lg = {0};
    for (int i = 0; i < loss->n; i++) series_add(&lg, loss->x[i], log10(fmax(loss->y[i], 1e-12)));
    range_of(&lg, &lo, &hi);
    OUT("<polyline fill='none' stroke='#1f5fbf' stroke-width='1.5' points='");
    for (int i = 0; i < lg.n; i++)
      OUT("%.1f,%.1f ", L + (W - L - R) * lg.x[i] / xmax, T + (H - T - B) * (hi - lg.y[i]) / (hi - lo));
    OUT("'/>\n");
    for (int i = 0; i <= 4; i++) {
      double v = lo + (hi - lo) * i / 4.0;
      OUT("<text x='%.0f' y='%.1f' text-anchor='end' fill='#1f5fbf'>%.3g</text>\n", L - 4,
          T + (H - T - B) * (1 - i / 4.0) + 4, pow(10, v));
    }
    OUT("<text x='%.0f' y='18' fill='#1f5fbf'>training loss (log scale, mean per log interval)</text>\n", L);
    series_free(&lg);
  }
  if (val->n) {
    double lo, hi;
    range_of(val, &lo, &hi);
    OUT("<polyline fill='none' stroke='#c0392b' stroke-width='1.5' points='");
    for (int i = 0; i < val->n; i++)
      OUT("%.1f,%.1f ", L + (W - L - R) * val->x[i] / xmax, T + (H - T - B) * (hi - val->y[i]) / (hi - lo));
    OUT("'/>\n");
    for (int i = 0; i < val->n; i++)
      OUT("<circle cx='%.1f' cy='%.1f' r='3' fill='#c0392b'/>\n", L + (W - L - R) * val->x[i] / xmax,
          T + (H - T - B) * (hi - val->y[i]) / (hi - lo));
    for (int i = 0; i <= 4; i++)
      OUT("<text x='%.0f' y='%.1f' fill='#c0392b'>%.4g</text>\n", W - R + 4, T + (H - T - B) * (1 - i / 4.0) + 4,
          lo + (hi - lo) * i / 4.0);
    OUT("<text x='%.0f' y='18' text-anchor='end' fill='#c0392b'>held-out %s</text>\n", W - R, vname ? vname : "metric");
  }
  OUT("</svg>\n");
#undef OUT
  int rc = k < cap ? sp_file_write_atomic(path, s, k, err) : sp_errf(err, "%s: curve too large", path);
  free(s);
  return rc;
}

/* ---------------------------------------------------------------------------------------------
 * checkpoints and the log */

typedef struct {
  const sp_train_cfg *c;
  sp_trainable *t;
  const sp_train_io *io;
  char last[1024], model[1024], log[1024], curve[1024];
  series loss, val;
} run_ctx;

static char *trainer_state_json(const run_ctx *r) {
  cJSON *o = cJSON_CreateObject();
  char *tc = sp_cf_to_json(sp_train_fields, r->c);
  cJSON_AddItemToObject(o, "train", cJSON_Parse(tc));
  cJSON_AddItemToObject(o, "job", cJSON_Parse(r->t->job_config ? r->t->job_config : "{}"));
  free(tc);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int save_last(run_ctx *r, long step, char *err) {
  char *st = trainer_state_json(r);
  sp_ckpt_meta meta = {r->t->model, r->t->preset, r->t->config, r->t->data, step};
  int rc = sp_model_save(r->last, r->t->ps, &meta, 1, st, err);
  free(st);
  return rc;
}

/* the weights to use: EMA when kept */
static int save_model(run_ctx *r, long step, char *err) {
  nn_params view = *r->t->ps;
  if (view.ema) view.data = view.ema;
  view.grad = view.m = view.v = view.ema = NULL;
  char *st = trainer_state_json(r);
  sp_ckpt_meta meta = {r->t->model, r->t->preset, r->t->config, r->t->data, step};
  int rc = sp_model_save(r->model, &view, &meta, 0, st, err);
  free(st);
  return rc;
}

static int log_line(run_ctx *r, const char *line, char *err) {
  char buf[4096];
  int n = snprintf(buf, sizeof buf, "%s\n", line);
  return sp_file_append(r->log, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1), err);
}

/* keep the log lines of steps <= step (a killed run may have logged past its last checkpoint),
 * and rebuild the curve's series from them */
static int log_truncate(run_ctx *r, long step, char *err) {
  if (!sp_file_exists(r->log)) return 0;
  size_t len;
  char *txt = sp_file_read(r->log, &len, err);
  if (!txt) return -1;
  char *out = malloc(len + 1);
  size_t k = 0;
  for (char *line = txt, *nl; *line; line = nl ? nl + 1 : line + strlen(line)) {
    nl = strchr(line, '\n');
    if (nl) *nl = 0;
    cJSON *o = cJSON_Parse(line);
    const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
    if (s && cJSON_IsNumber(s) && s->valuedouble <= step) {
      k += (size_t)sprintf(out + k, "%s\n", line);
      const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "loss_avg");
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "metric");
      if (l && cJSON_IsNumber(l)) series_add(&r->loss, s->valuedouble, l->valuedouble);
      if (v && cJSON_IsNumber(v)) series_add(&r->val, s->valuedouble, v->valuedouble);
    }
    cJSON_Delete(o);
    if (!nl) break;
  }
  int rc = sp_file_write_atomic(r->log, out, k, err);
  free(out);
  free(txt);
  return rc;
}

/* fields of two JSON objects: the first one that differs, skipping the ones free on resume */
static int json_diff(const char *have, const char *want, const char *what, int skip_free, char *err) {
  cJSON *a = cJSON_Parse(have ? have : "{}"), *b = cJSON_Parse(want ? want : "{}");
  int rc = 0;
  if (!a || !b) rc = sp_errf(err, "%s: unreadable JSON in the checkpoint", what);
  for (cJSON *it = b ? b->child : NULL; it && !rc; it = it->next) {
    if (skip_free && field_free_on_resume(it->string)) continue;
    cJSON *o = cJSON_GetObjectItemCaseSensitive(a, it->string);
    if (!o || !cJSON_Compare(o, it, 1)) {
      char *x = o ? cJSON_PrintUnformatted(o) : strdup("(absent)"), *y = cJSON_PrintUnformatted(it);
      rc = sp_errf(err, "%s: %s is %s in the checkpoint, %s now (use the run's settings, or another --out)", what,
                   it->string, x, y);
      free(x);
      free(y);
    }
  }
  cJSON_Delete(a);
  cJSON_Delete(b);
  return rc;
}

static int resume_from(run_ctx *r, long *step, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(r->last, &info, err)) return -1;
  int rc = 0;
  if (strcmp(info.model, r->t->model))
    rc = sp_errf(err, "%s holds a '%s' model, this run trains a '%s'", r->last, info.model, r->t->model);
  if (!rc) rc = json_diff(info.config, r->t->config, "model config", 0, err);
  cJSON *tr = cJSON_Parse(info.trainer ? info.trainer : "{}");
  char *tj = tr ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tr, "train")) : NULL;
  char *jj = tr ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tr, "job")) : NULL;
  char *now = sp_cf_to_json(sp_train_fields, r->c);
  if (!rc) rc = json_diff(tj, now, "training config", 1, err);
  if (!rc) rc = json_diff(jj, r->t->job_config, "job config", 0, err);
  if (!rc && strcmp(info.data, r->t->data ? r->t->data : ""))
    sp_log(SP_LOG_WARN, "train: resuming on other data than the checkpoint's (%.120s)", info.data);
  free(tj);
  free(jj);
  free(now);
  cJSON_Delete(tr);
  sp_ckpt_info_free(&info);
  if (rc) return -1;
  if (nn_checkpoint_load(r->last, r->t->ps, step, NULL, err)) return -1;
  return log_truncate(r, *step, err);
}

static float lr_at(const sp_train_cfg *c, long step) {
  if (c->lr_sched == SP_LR_CONSTANT)
    return step < c->warmup ? c->lr * (float)step / (float)(c->warmup > 1 ? c->warmup : 1) : c->lr;
  return nn_lr_cosine(c->lr, step, c->warmup, c->steps);
}

/* validation with the EMA weights swapped in */
static int validate(run_ctx *r, long step, char *err) {
  if (!r->t->validate) return 0;
  nn_params *ps = r->t->ps;
  float *keep = ps->data;
  if (ps->ema) ps->data = ps->ema;
  char json[2048];
  double metric = 0;
  double t0 = sp_time_now();
  int rc = r->t->validate(r->t->self, step, json, sizeof json, &metric, err);
  ps->data = keep;
  if (rc) return -1;
  char line[2600];
  snprintf(line, sizeof line, "{\"step\":%ld,\"metric\":%.6g,\"val\":%s,\"val_s\":%.1f}", step, metric, json,
           sp_time_now() - t0);
  series_add(&r->val, (double)step, metric);
  if (!r->io->quiet) fprintf(stderr, "train: step %ld validation %s\n", step, json);
  return log_line(r, line, err);
}

int sp_train_run(const sp_train_cfg *c, sp_trainable *t, const sp_train_io *io, char *err) {
  if (sp_cf_check(sp_train_fields, c, "train", err)) return -1;
  if (sp_mkdir_p(io->out, err)) return -1;
  run_ctx r = {.c = c, .t = t, .io = io};
  snprintf(r.last, sizeof r.last, "%s/last.safetensors", io->out);
  snprintf(r.model, sizeof r.model, "%s/model.safetensors", io->out);
  snprintf(r.log, sizeof r.log, "%s/train.jsonl", io->out);
  snprintf(r.curve, sizeof r.curve, "%s/loss.svg", io->out);
  t->out_dir = io->out;
  nn_params *ps = t->ps;
  if (nn_params_alloc_train(ps, c->ema != SP_EMA_NONE, err)) return -1;
  long step = 0;
  int rc = 0;
  if (io->resume) {
    if (!sp_file_exists(r.last)) return sp_errf(err, "--resume: %s does not exist (start without --resume)", r.last);
    if (resume_from(&r, &step, err)) goto done_err;
    if (!io->quiet) fprintf(stderr, "train: resumed %s at step %ld of %d\n", r.last, step, c->steps);
  } else {
    if (sp_file_exists(r.last)) {
      rc = sp_errf(err, "%s already holds a run (%s): --resume to continue it, or choose another --out", io->out, r.last);
      goto done;
    }
    if (ps->ema) nn_ema_init(ps);
    if (sp_file_exists(r.log)) remove(r.log);
  }
  nn_adamw_cfg ac = {c->beta1, c->beta2, 1e-8f, c->weight_decay};
  double t0 = sp_time_now(), last_ckpt = t0, win_loss = 0;
  int win_n = 0;
  long step0 = step;
  sp_progress prog;
  char label[160] = "train";
  sp_progress_start(&prog, label, c->steps);
  sp_progress_resume(&prog, step);
  while (step < c->steps) {
    if (io->stop && *io->stop) {
      if (save_last(&r, step, err)) goto done_err;
      sp_progress_finish(&prog);
      sp_log(SP_LOG_WARN, "train: interrupted at step %ld; %s holds it, continue with --resume", step, r.last);
      rc = 130;
      goto done;
    }
    long s = step + 1;
    nn_params_zero_grad(ps);
    float loss = 0;
    if (t->step(t->self, s, &loss, err)) goto done_err;
    float gnorm = nn_grad_clip(ps, c->clip);
    if (!isfinite(loss) || !isfinite(gnorm)) {
      sp_progress_finish(&prog);
      rc = sp_errf(err, "step %ld: the %s is %g; stopped, %s keeps the last good checkpoint (lower --lr?)", s,
                   isfinite(loss) ? "gradient norm" : "loss", isfinite(loss) ? gnorm : loss,
                   sp_file_exists(r.last) ? r.last : "no file");
      goto done;
    }
    float lr = lr_at(c, s);
    nn_adamw_step(ps, &ac, lr, s);
    if (c->ema == SP_EMA_FIXED) {
      float d = nn_ema_fixed_decay(s, c->ema_every, c->ema_decay);
      if (d >= 0) nn_ema_update(ps, d);
    } else if (c->ema == SP_EMA_POWER) {
      nn_ema_update(ps, nn_ema_power_decay(s, 0, 1.f, c->ema_power, 0.f, c->ema_decay));
    }
    step = s;
    win_loss += loss;
    win_n++;
    snprintf(label, sizeof label, "train loss %.4f", loss);
    sp_progress_add(&prog, 1);
    if (step % c->log_every == 0 || step == c->steps) {
      double el = sp_time_now() - t0, rate = (double)(step - step0) / (el > 0 ? el : 1e-9);
      char line[512];
      snprintf(line, sizeof line,
               "{\"step\":%ld,\"loss\":%.6g,\"loss_avg\":%.6g,\"lr\":%.6g,\"grad_norm\":%.6g,\"steps_per_s\":%.4g}", step,
               loss, win_loss / win_n, lr, gnorm, rate);
      series_add(&r.loss, (double)step, win_loss / win_n);
      if (log_line(&r, line, err)) goto done_err;
      if (!io->quiet && !prog.enabled)
        fprintf(stderr, "train: step %ld/%d loss %.5f (mean %.5f) lr %.3g grad %.3g, %.2f steps/s, ETA %.0f s\n", step,
                c->steps, loss, win_loss / win_n, lr, gnorm, rate, (c->steps - step) / (rate > 0 ? rate : 1e-9));
      win_loss = 0;
      win_n = 0;
      if (write_curve(r.curve, &r.loss, &r.val, t->metric_name, c->steps, err)) goto done_err;
    }
    int due_val = c->val_every > 0 ? step % c->val_every == 0 : 0;
    if (due_val || step == c->steps) {
      if (validate(&r, step, err)) goto done_err;
      if (write_curve(r.curve, &r.loss, &r.val, t->metric_name, c->steps, err)) goto done_err;
    }
    double now = sp_time_now();
    int due = (c->ckpt_steps > 0 && step % c->ckpt_steps == 0) ||
              (c->ckpt_minutes > 0 && now - last_ckpt >= 60.0 * c->ckpt_minutes);
    if (due && step < c->steps) {
      if (save_last(&r, step, err)) goto done_err;
      last_ckpt = now;
    }
  }
  sp_progress_finish(&prog);
  if (save_last(&r, step, err) || save_model(&r, step, err)) goto done_err;
  if (!io->quiet) fprintf(stderr, "train: %ld steps done; %s (weights to use) and %s (resumable)\n", step, r.model, r.last);
  goto done;
done_err:
  rc = -1;
done:
  series_free(&r.loss);
  series_free(&r.val);
  return rc;
}
