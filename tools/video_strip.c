/* video_strip: a picture of a video run's held-out generations, for docs.
 *
 *   make build/tools/video_strip && build/tools/video_strip RUN_DIR OUT.png [clips] [checkpoint]
 *
 * Reads RUN_DIR/last.safetensors for the run's settings (model, diffusion, dataset), loads the
 * weights to use (RUN_DIR/model.safetensors, or the checkpoint named) and writes, per held-out
 * clip, the demonstration's 8 frames above the condition and the 7 generated frames. */
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "models/video_train.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: video_strip RUN_DIR OUT.png [clips] [checkpoint]\n");
    return 2;
  }
  char err[SP_ERRLEN], last[1024], model[1024], preset[32], data[1024];
  snprintf(last, sizeof last, "%s/last.safetensors", argv[1]);
  snprintf(model, sizeof model, "%s", argc > 4 ? argv[4] : "");
  if (!model[0]) snprintf(model, sizeof model, "%s/model.safetensors", argv[1]);
  int clips = argc > 3 ? atoi(argv[3]) : 4;
  sp_vunet_cfg mc;
  sp_vdiff_cfg dc;
  sp_train_cfg tc;
  sp_vdiff_cfg_default(&dc);
  sp_train_cfg_default(&tc);
  if (sp_video_run_settings(last, &mc, &dc, &tc, preset, sizeof preset, data, sizeof data, err)) {
    fprintf(stderr, "video_strip: %s\n", err);
    return 1;
  }
  nn_init(tc.threads);
  sp_video_job *j = sp_video_job_open(data, &mc, preset, &dc, &tc, err);
  if (!j || sp_video_job_load(j, model, err) || sp_video_job_strip(j, argv[2], clips, err)) {
    fprintf(stderr, "video_strip: %s\n", err);
    sp_video_job_close(j);
    return 1;
  }
  sp_video_job_close(j);
  printf("video_strip: %s (%d held-out clips of %s, weights %s)\n", argv[2], clips, data, model);
  return 0;
}
