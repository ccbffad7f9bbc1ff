/* render.h: offscreen camera images of a rollout through EGL (Mesa, no display).
 *
 * A renderer belongs to one thread and one scene (MuJoCo uploads the scene's meshes and
 * textures into the GL context). Images are upright as AVDC's frames are: rows are written in
 * mjr_readPixels buffer order, unflipped (see docs/environment.md). */
#ifndef SP_SIM_RENDER_H
#define SP_SIM_RENDER_H

#include <stdint.h>

#include "sim/env.h"

typedef struct sp_renderer sp_renderer;

/* create a headless GL context and the scene's render context for images up to w x h */
sp_renderer *sp_renderer_create(const sp_env_model *em, int w, int h, char *err);
/* the same with the scene's shadow map size (> 0) and offscreen samples (>= 0) overridden; 0 and -1
 * keep the scene's */
sp_renderer *sp_renderer_create_q(const sp_env_model *em, int w, int h, int shadow_size, int msaa, char *err);
void sp_renderer_free(sp_renderer *r);
/* rendering quality: SP_RENDER_FULL draws the scene as its MJCF asks (shadows, reflections);
 * SP_RENDER_FAST turns shadows and reflections off (several times cheaper on llvmpipe). Both keep
 * multisampling off (see docs/environment.md). */
typedef enum { SP_RENDER_FULL = 0, SP_RENDER_FAST = 1 } sp_render_quality;
void sp_renderer_set_quality(sp_renderer *r, sp_render_quality q);
int sp_render_quality_parse(const char *name, sp_render_quality *q);  // "full" | "fast"

/* the GL renderer string, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" */
const char *sp_renderer_gl_name(const sp_renderer *r);

/* render camera cam (sp camera index) of the rollout's current state. Any output may be NULL:
 * rgb (h x w x 3), depth in metres (h x w), seg geom id or -1 for background (h x w).
 * Returns 0, or -1 with err. */
int sp_render(sp_renderer *r, const sp_env *e, int cam, int w, int h, uint8_t *rgb, float *depth,
              int32_t *seg, char *err);

/* pinhole camera of the rendered image: pixel (u, v) = (cx + f X/Z, cy + f Y/Z) with
 * (X, Y, Z) = R p + t for a world point p (Z > 0 in front of the camera).
 * K = [[f,0,cx],[0,f,cy],[0,0,1]], f = (h/2)/tan(fovy/2), cx = (w-1)/2, cy = (h-1)/2. */
typedef struct {
  double K[9];   // intrinsics, row-major
  double R[9];   // world -> camera rotation, row-major
  double t[3];   // world -> camera translation
  double pos[3]; // camera centre in the world
} sp_camera_matrix;

void sp_camera_get(const sp_env *e, int cam, int w, int h, sp_camera_matrix *cm);
/* project a world point; returns Z (<= 0 when behind the camera) */
double sp_camera_project(const sp_camera_matrix *cm, const double p[3], double *u, double *v);

#endif
