/* goalset.c: imagined goal set files (contract in goalset.h). */
#include "models/goalset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define GOALSET_META_MAX 32

int sp_goalset_save(const char *path, int n, int F, int R, int episodes, const int32_t *episode, const int32_t *idx,
                    const uint8_t *frames, const char *const *meta, char *err) {
  char neps[32];
  snprintf(neps, sizeof neps, "%d", episodes);
  const char *m[GOALSET_META_MAX * 2 + 1] = {"format", SP_GOALSET_FORMAT, "version", "1", "episodes", neps};
  int k = 6;
  for (int i = 0; meta && meta[i] && k < GOALSET_META_MAX * 2 - 1; i += 2) {
    m[k++] = meta[i];
    m[k++] = meta[i + 1];
  }
  m[k] = NULL;
  nn_st_out t[3] = {
      {.name = "episode", .dtype = "I32", .ndim = 1, .shape = {n}, .data = episode},
      {.name = "idx", .dtype = "I32", .ndim = 2, .shape = {n, F + 1}, .data = idx},
      {.name = "frames", .dtype = "U8", .ndim = 5, .shape = {n, F + 1, R, R, 3}, .data = frames}};
  return nn_st_save(path, t, 3, m, err);
}

int sp_goalset_open(sp_goalset *g, const char *path, char *err) {
  memset(g, 0, sizeof *g);
  if (nn_st_open(&g->st, path, err)) return -1;
  const char *fmt = nn_st_meta(&g->st, "format"), *neps = nn_st_meta(&g->st, "episodes");
  const nn_st_tensor *te = nn_st_find(&g->st, "episode"), *ti = nn_st_find(&g->st, "idx"),
                     *tf = nn_st_find(&g->st, "frames");
  int rc = 0;
  if (!fmt || strcmp(fmt, SP_GOALSET_FORMAT))
    rc = sp_errf(err, "%s is not an imagined goal set of sp imagine (metadata format '%s')", path, fmt ? fmt : "(none)");
  else if (!neps || (g->episodes = atoi(neps)) < 1)
    rc = sp_errf(err, "%s: metadata 'episodes' is missing or not a positive count", path);
  else if (!te || !ti || !tf || te->ndim != 1 || ti->ndim != 2 || tf->ndim != 5 || te->shape[0] < 1 ||
           ti->shape[0] != te->shape[0] || tf->shape[0] != te->shape[0] || ti->shape[1] < 2 ||
           tf->shape[1] != ti->shape[1] || tf->shape[2] != tf->shape[3] || tf->shape[4] != 3 || tf->shape[2] < 1)
    rc = sp_errf(err, "%s: tensors episode (N), idx (N, F+1), frames (N, F+1, R, R, 3) missing or misshapen", path);
  else if (!(g->episode = nn_st_i32(&g->st, "episode", NULL)) || !(g->idx = nn_st_i32(&g->st, "idx", NULL)) ||
           !(g->frames = nn_st_u8(&g->st, "frames", NULL)))
    rc = sp_errf(err, "%s: episode and idx must be I32, frames U8", path);
  if (rc) {
    sp_goalset_close(g);
    return -1;
  }
  g->n = (int)te->shape[0];
  g->F = (int)ti->shape[1] - 1;
  g->R = (int)tf->shape[2];
  for (int v = 0; v < g->n; v++) {
    const int32_t *ix = g->idx + (size_t)v * (g->F + 1);
    int ok = g->episode[v] >= 0 && g->episode[v] < g->episodes && ix[0] >= 0;
    for (int f = 1; f <= g->F && ok; f++) ok = ix[f] >= ix[f - 1];
    if (!ok) {
      sp_errf(err, "%s: video %d has episode %d (of %d) or frame indices that do not increase", path, v,
              g->episode[v], g->episodes);
      sp_goalset_close(g);
      return -1;
    }
  }
  return 0;
}

void sp_goalset_close(sp_goalset *g) {
  nn_st_close(&g->st);
  memset(g, 0, sizeof *g);
}

const uint8_t *sp_goalset_frame(const sp_goalset *g, int v, int f) {
  return g->frames + ((size_t)v * (g->F + 1) + f) * g->R * g->R * 3;
}
