/* nn_diffusion.h: noise schedules, training targets and weights, DDPM and DDIM steps,
 * classifier-free guidance. Arrays are (B, per) with one integer timestep per sample. */
#ifndef SP_NN_DIFFUSION_H
#define SP_NN_DIFFUSION_H

#define NN_SCHED_MAX_T 1000

typedef enum {
  NN_SCHED_LINEAR = 0,          // betas = linspace(beta_start, beta_end, T) (paper: 1e-4..0.02, 1000)
  NN_SCHED_COSINE,              // AVDC / improved DDPM: alpha_bar from cos^2, s = 0.008, clip 0.999
  NN_SCHED_SQUAREDCOS_CAP_V2,   // diffusers betas_for_alpha_bar (Diffusion Policy), cap 0.999
} nn_sched_kind;

typedef enum { NN_PRED_EPS = 0, NN_PRED_V, NN_PRED_X0 } nn_pred;

typedef struct {
  int T;
  double betas[NN_SCHED_MAX_T];
  double alphas_cumprod[NN_SCHED_MAX_T];
} nn_sched;

/* 0, or -1 with err when T is out of range */
int nn_sched_init(nn_sched *s, nn_sched_kind kind, int T, double beta_start, double beta_end,
                  char *err);
double nn_sched_snr(const nn_sched *s, int t);
/* min-SNR-gamma loss weight for a target kind (gamma <= 0: weight 1):
 * eps: min(snr, g)/snr; v: min(snr, g)/(snr + 1); x0: min(snr, g) */
float nn_min_snr_weight(const nn_sched *s, int t, nn_pred pred, float gamma);

/* x_t = sqrt(ab) x0 + sqrt(1 - ab) eps */
void nn_q_sample(float *xt, const float *x0, const float *eps, const nn_sched *s, const int *t,
                 int B, int per);
/* the regression target: eps, v = sqrt(ab) eps - sqrt(1-ab) x0, or x0 */
void nn_diffusion_target(float *target, const float *x0, const float *eps, const nn_sched *s,
                         const int *t, int B, int per, nn_pred pred);
/* from a model output: x0 (clamped to [-1, 1] if clip) and eps (re-derived from the clamped x0) */
void nn_predict_x0_eps(float *x0, float *eps, const float *model_out, const float *xt,
                       const nn_sched *s, int t, int n, nn_pred pred, int clip);
/* ancestral DDPM step t -> t-1 with the "fixed_small" posterior variance; noise (n) is used only
 * when t > 0. x0 and eps are work buffers (n). */
void nn_ddpm_step(float *xprev, const float *model_out, const float *xt, const float *noise,
                  const nn_sched *s, int t, int n, nn_pred pred, int clip, float *x0, float *eps);
/* DDIM step t -> t_prev (t_prev < 0 returns x0), eta = 0 deterministic; noise may be NULL if
 * eta == 0. */
void nn_ddim_step(float *xprev, const float *model_out, const float *xt, const float *noise,
                  const nn_sched *s, int t, int t_prev, float eta, int n, nn_pred pred, int clip,
                  float *x0, float *eps);
/* AVDC's DDIM time grid: linspace(-1, T-1, steps+1) truncated to int, reversed: ts[0] = T-1 ...
 * ts[steps] = -1 (steps + 1 entries) */
void nn_ddim_timesteps(int *ts, int steps, int T);
/* classifier-free guidance, AVDC/SP convention: out = (1 + w) cond - w uncond */
void nn_cfg_combine(float *out, const float *cond, const float *uncond, float w, int n);

#endif
