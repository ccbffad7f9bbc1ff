/* imagine.c: one imagined video (contract in imagine.h). */
#include "agent/imagine.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int sp_imaginer_init(sp_imaginer *im, const sp_video_model *v, char *err) {
  memset(im, 0, sizeof *im);
  const size_t px = (size_t)v->m.cfg.res * v->m.cfg.res, F = (size_t)v->m.cfg.frames;
  im->cond = malloc(sizeof(float) * 3 * (v->m.cfg.video_cond ? F : 1) * px);
  im->out = malloc(sizeof(float) * 3 * F * px);
  im->work = malloc(sizeof(float) * 5 * 3 * F * px);
  if (!im->cond || !im->out || !im->work) {
    sp_imaginer_free(im);
    return sp_errf(err, "out of memory");
  }
  if (sp_vunet_ws_init(&im->ws, &v->m, 1, 0, err)) {
    sp_imaginer_free(im);
    return -1;
  }
  im->ws_ok = 1;
  return 0;
}

void sp_imaginer_free(sp_imaginer *im) {
  if (im->ws_ok) sp_vunet_ws_free(&im->ws);
  free(im->cond);
  free(im->out);
  free(im->work);
  memset(im, 0, sizeof *im);
}

void sp_imagine(sp_imaginer *im, const sp_video_model *v, int task, const sp_plan *plan, const double tcp[3],
                const double obs[SP_OBS_DIM], int steps, float guidance, uint32_t seed, uint8_t *frames) {
  sp_imagine_from(im, v, task, plan, tcp, obs, steps, guidance, seed, NULL, frames);
}

void sp_imagine_from(sp_imaginer *im, const sp_video_model *v, int task, const sp_plan *plan, const double tcp[3],
                     const double obs[SP_OBS_DIM], int steps, float guidance, uint32_t seed, const uint8_t *cond_video,
                     uint8_t *frames) {
  const int R = v->m.cfg.res, F = v->m.cfg.frames;
  const size_t px = (size_t)R * R;
  int32_t text[SP_TEXT_WORDS];
  sp_text_ids(sp_task_name(task), text);
  sp_plan_enc penc;
  sp_plan_encode(plan, &penc);
  float dvec[SP_VCOND_DVEC];
  for (int k = 0; k < 3; k++) {
    dvec[k] = (float)tcp[k];
    dvec[3 + k] = (float)obs[SP_OBS_OBJ + k];
    dvec[6 + k] = (float)obs[SP_OBS_GOAL + k];
  }
  /* text_enc clip: the cache row of the task's text (sp_video_model_load refused a cache lacking
   * one of the tasks) */
  int32_t row = sp_vunet_clip_find(&v->m.cfg, sp_task_name(task));
  SP_ASSERT(v->m.cfg.text_enc != SP_VUNET_TEXT_CLIP || row >= 0);
  sp_vcond vc = {.text = text, .clip = &row, .plan = &penc, .dvec = dvec};
  SP_ASSERT(!cond_video || v->m.cfg.video_cond);
  if (!v->m.cfg.video_cond) {
    for (size_t i = 0; i < px; i++)
      for (int ch = 0; ch < 3; ch++) im->cond[ch * px + i] = frames[i * 3 + ch] / 127.5f - 1.f;
  } else {  // (3, F, R, R): the given video, or the current view repeated (a first generation)
    for (int f = 0; f < F; f++) {
      const uint8_t *src = cond_video ? cond_video + (size_t)f * px * 3 : frames;
      for (size_t i = 0; i < px; i++)
        for (int ch = 0; ch < 3; ch++) im->cond[((size_t)ch * F + f) * px + i] = src[i * 3 + ch] / 127.5f - 1.f;
    }
  }
  sp_video_sample(&v->m, &im->ws, &v->sched, v->dc.pred, steps, guidance, im->out, im->cond, &vc, 1, seed, im->work);
  for (int f = 0; f < F; f++)  // out (3, F, R, R) -> frame f + 1 (R, R, 3)
    for (size_t i = 0; i < px; i++)
      for (int ch = 0; ch < 3; ch++) {
        float x = (im->out[((size_t)ch * F + f) * px + i] + 1.f) * 127.5f;
        frames[((size_t)(f + 1) * px + i) * 3 + ch] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x + 0.5f);
      }
}
