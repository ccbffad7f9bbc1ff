/* sense.c: what an agent senses (contract in agent.h). */
#include <string.h>

#include "agent/agent.h"
#include "core/log.h"

void sp_sense_bind(sp_agent_sense *s, const sp_env *e, int cam, const double *obs, sp_sense_renderers *rc) {
  *s = (sp_agent_sense){.task = e->em->task, .cam = cam, .seed = e->seed, .obs = obs, .scene = e->em,
                        .env_ = e, .rend_ = rc};
  sp_env_tcp(e, s->tcp);
}

void sp_sense_update(sp_agent_sense *s) { sp_env_tcp(s->env_, s->tcp); }

const sp_env *sp_sense_env(const sp_agent_sense *s) { return s->env_; }

void sp_sense_renderers_free(sp_sense_renderers *rc) {
  for (int i = 0; i < rc->n; i++) sp_renderer_free(rc->r[i]);
  memset(rc, 0, sizeof *rc);
}

/* the renderer of (task, size, shadow, msaa), made on first use */
static sp_renderer *renderer(const sp_agent_sense *s, const sp_collect_config *v, char *err) {
  sp_sense_renderers *rc = s->rend_;
  for (int i = 0; i < rc->n; i++)
    if (rc->task[i] == s->task && rc->size[i] == v->size && rc->shadow[i] == v->shadow_size && rc->msaa[i] == v->msaa)
      return rc->r[i];
  if (rc->n == SP_SENSE_MAX_RENDERERS) {  // a long run over many tasks: start over
    sp_sense_renderers_free(rc);
  }
  sp_renderer *r = sp_renderer_create_q(s->scene, v->size, v->size, v->shadow_size, v->msaa, err);
  if (!r) return NULL;
  rc->r[rc->n] = r;
  rc->task[rc->n] = s->task;
  rc->size[rc->n] = v->size;
  rc->shadow[rc->n] = v->shadow_size;
  rc->msaa[rc->n] = v->msaa;
  rc->n++;
  return r;
}

int sp_sense_view(const sp_agent_sense *s, const sp_collect_config *v, uint8_t *rgb, float *depth, int32_t *seg,
                  char *err) {
  sp_renderer *r = renderer(s, v, err);
  return r ? sp_collect_render_view(r, s->env_, s->cam, v, rgb, depth, seg, err) : -1;
}

void sp_sense_camera(const sp_agent_sense *s, const sp_collect_config *v, sp_camera_matrix *cm) {
  sp_collect_view_camera(s->env_, s->cam, v, cm);
}
