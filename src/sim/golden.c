#include "sim/golden.h"

#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "core/log.h"
#include "sim/render.h"

int sp_golden_thumbnail(const sp_env_model *em, int cam, uint8_t *thumb, char *err) {
  sp_env *e = sp_env_create(em, err);
  if (!e) return -1;
  sp_renderer *r = sp_renderer_create(em, SP_GOLDEN_W, SP_GOLDEN_H, err);
  uint8_t *rgb = malloc(SP_GOLDEN_W * SP_GOLDEN_H * 3);
  int rc = -1;
  if (r && rgb) {
    double obs[SP_OBS_DIM];
    sp_env_reset(e, 0, obs);
    if (!sp_render(r, e, cam, SP_GOLDEN_W, SP_GOLDEN_H, rgb, NULL, NULL, err)) {
      sp_image_crop_resize(rgb, SP_GOLDEN_W, SP_GOLDEN_H, 3, SP_GOLDEN_CROP_X, SP_GOLDEN_CROP_Y,
                           SP_GOLDEN_CROP, SP_GOLDEN_CROP, thumb, SP_GOLDEN_THUMB, SP_GOLDEN_THUMB);
      rc = 0;
    }
  }
  free(rgb);
  sp_renderer_free(r);
  sp_env_free(e);
  return rc;
}

int sp_golden_trajectory(const sp_env_model *em, double *obs18, char *err) {
  sp_env *e = sp_env_create(em, err);
  if (!e) return -1;
  double obs[SP_OBS_DIM], a[SP_ACT_DIM];
  sp_env_reset(e, 0, obs);
  int k = 0;
  for (int t = 0; k < SP_GOLDEN_NSTEP; t++) {
    if (t == sp_golden_steps[k]) memcpy(obs18 + 18 * k++, obs, 18 * sizeof(double));
    sp_expert_act(em->task, SP_GRASP_METAWORLD, obs, a);
    sp_env_step(e, a, obs);
  }
  sp_env_free(e);
  return 0;
}
