/* goalset.h: imagined goal sets: videos a video model generated from frames of an `sp collect`
 * dataset's demonstrations (`sp imagine`), each with the dataset frames its imagined frames stand
 * for, so that a policy can be trained towards the kind of goal frame it meets in the SP loop
 * (docs/training.md, "Imagined goals"; a deviation: docs/deviations.md).
 *
 * File: safetensors with
 *   episode  I32 (N)                  the dataset episode of each video
 *   idx      I32 (N, F + 1)           the dataset frames: idx[0] the condition, idx[j] what
 *                                      imagined frame j stands for (the video job's clip indices)
 *   frames   U8  (N, F + 1, R, R, 3)  frame 0 the dataset's condition frame, 1..F imagined
 * and metadata format "sp-imagined", version "1", dataset (path), episodes (the dataset's episode
 * count), checkpoint, and the generation settings. */
#ifndef SP_MODELS_GOALSET_H
#define SP_MODELS_GOALSET_H

#include <stdint.h>

#include "nn/nn_train.h"

#define SP_GOALSET_FORMAT "sp-imagined"

typedef struct {
  int n, F, R;                 // videos, imagined frames per video, side
  int episodes;                // the dataset's episode count it was made from
  const int32_t *episode;      // (n)
  const int32_t *idx;          // (n, F + 1)
  const uint8_t *frames;       // (n, F + 1, R, R, 3)
  nn_safetensors st;
} sp_goalset;

/* read and check a goal set (format, shapes, indices increasing); 0 or -1 with err naming the
 * file and the defect */
int sp_goalset_open(sp_goalset *g, const char *path, char *err);
void sp_goalset_close(sp_goalset *g);
/* frame f (0..F) of video v, (R, R, 3) RGB */
const uint8_t *sp_goalset_frame(const sp_goalset *g, int v, int f);

/* write one (atomically); meta: extra key/value strings (NULL-terminated, may be NULL). */
int sp_goalset_save(const char *path, int n, int F, int R, int episodes, const int32_t *episode, const int32_t *idx,
                    const uint8_t *frames, const char *const *meta, char *err);

#endif
