/* imagine.h: the video model as an agent uses it: one imagined video from the current frame and
 * the conditions of the checkpoint's variant (the task text, as word ids or as the row of the
 * model's cached CLIP features; the spatial plan table; the tcp/object/goal vector), built the
 * way the video job builds them for a clip's first frame (models/video_train.h), by DDIM with
 * classifier-free guidance from seeded noise. */
#ifndef SP_AGENT_IMAGINE_H
#define SP_AGENT_IMAGINE_H

#include <stdint.h>

#include "models/video_train.h"
#include "plan/plan.h"
#include "sim/env.h"

/* one worker's buffers for a model */
typedef struct {
  sp_vunet_ws ws;
  int ws_ok;
  float *cond, *out, *work;
} sp_imaginer;

int sp_imaginer_init(sp_imaginer *im, const sp_video_model *v, char *err);
void sp_imaginer_free(sp_imaginer *im);
/* frames ((F + 1) x R x R x 3, RGB): frames[0] the current view (read), frames 1..F written.
 * tcp and obs: the state the plan was made from (the distance variant's vector). */
void sp_imagine(sp_imaginer *im, const sp_video_model *v, int task, const sp_plan *plan, const double tcp[3],
                const double obs[SP_OBS_DIM], int steps, float guidance, uint32_t seed, uint8_t *frames);
/* the same with the condition of a video_cond model (VideoAgent's refinement): cond_video (F x R x
 * R x 3, it may alias frames + R R 3: it is read before frames is written) conditions frame by
 * frame; NULL conditions on frames[0] repeated, as sp_imagine does. A model without video_cond
 * takes only NULL. */
void sp_imagine_from(sp_imaginer *im, const sp_video_model *v, int task, const sp_plan *plan, const double tcp[3],
                     const double obs[SP_OBS_DIM], int steps, float guidance, uint32_t seed, const uint8_t *cond_video,
                     uint8_t *frames);

#endif
