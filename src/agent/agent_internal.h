/* agent_internal.h: the agents' entry points, shared between the files of src/agent. */
#ifndef SP_AGENT_INTERNAL_H
#define SP_AGENT_INTERNAL_H

#include "agent/agent.h"

#define SP_CKPT_POLICY_IMAGINED "policy-imagined-cpu.safetensors"  // policy-cpu fine-tuned on imagined goals
                                                                   // (docs/training.md): every policy agent's
#define SP_CKPT_VIDEO "video-plan-cpu.safetensors"  // the committed video model (docs/training.md)
#define SP_CKPT_VIDEO_TEXT "video-text-cpu.safetensors"  // the text-only one: AVDC's conditioning
#define SP_CKPT_VIDEO_REFINE "video-refine-cpu.safetensors"  // VideoAgent's refinement model, from the text one
#define SP_CKPT_VIDEO_ONLINE "video-va-online-cpu.safetensors"  // it fine-tuned on videoagent's successes (va-or)

/* the time an agent's begin spent (the first plan and video), added to the first act's: records
 * report time per step, and begin has none of its own */
static inline void sp_agent_timing_take(sp_agent_timing *tm, sp_agent_timing *pending) {
  tm->render += pending->render;
  tm->planning += pending->planning;
  tm->video += pending->video;
  *pending = (sp_agent_timing){0};
}

/* oracle-policy (oracle_policy.c) */
void *sp_oracle_load(const sp_agent_opts *o, char *err);
const uint8_t *sp_oracle_goal(void *state, int *side, const char **plan_text);
void sp_oracle_unload(void *model);
void *sp_oracle_create(const void *model, char *err);
void *sp_oracler_create(const void *model, char *err);  // oracle-policy-r
void sp_oracle_destroy(void *state);
int sp_oracle_begin(void *state, const sp_agent_sense *s, uint32_t seed, char *err);
int sp_oracle_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
                  sp_agent_timing *tm, char *err);
void sp_oracle_end(void *state, sp_agent_events *ev);

/* sp, sp-r, sp-nr (sp.c) */
void *sp_sp_load(const sp_agent_opts *o, char *err);
const uint8_t *sp_sp_goal(void *state, int *side, const char **plan_text);
void sp_sp_unload(void *model);
void *sp_spnr_create(const void *model, char *err);
void *sp_sp_create(const void *model, char *err);
void *sp_spr_create(const void *model, char *err);
void sp_sp_destroy(void *state);
int sp_sp_begin(void *state, const sp_agent_sense *s, uint32_t seed, char *err);
int sp_sp_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
              sp_agent_timing *tm, char *err);
void sp_sp_end(void *state, sp_agent_events *ev);

/* avdc, avdc-r, avdc-oracle (avdc.c) */
void *sp_avdc_load(const sp_agent_opts *o, char *err);
void *sp_avdc_oracle_load(const sp_agent_opts *o, char *err);
void *sp_va_load(const sp_agent_opts *o, char *err);  // videoagent
void sp_avdc_unload(void *model);
void *sp_avdc_create(const void *model, char *err);
void *sp_avdcr_create(const void *model, char *err);
void sp_avdc_destroy(void *state);
int sp_avdc_begin(void *state, const sp_agent_sense *s, uint32_t seed, char *err);
int sp_avdc_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
                sp_agent_timing *tm, char *err);
void sp_avdc_end(void *state, sp_agent_events *ev);
const uint8_t *sp_avdc_goal(void *state, int *side, const char **plan_text);

#endif
