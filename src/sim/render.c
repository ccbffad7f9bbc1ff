/* render.c: EGL surfaceless context + MuJoCo offscreen rendering (recipe: shared/spec/platform.md). */
#include "sim/render.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

typedef const unsigned char *(*gl_get_string_fn)(unsigned int);

struct sp_renderer {
  EGLDisplay dpy;
  EGLContext ctx;
  mjvScene scn;
  mjrContext con;
  mjvOption opt;
  mjvCamera cam;
  int w, h;
  sp_render_quality quality;
  uint8_t *rgb_buf;    // (h x w x 3) GL buffer order
  float *depth_buf;    // (h x w)
  char gl_name[256];
};

static int egl_init(sp_renderer *r, char *err) {
  PFNEGLGETPLATFORMDISPLAYEXTPROC gpd =
      (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
  if (!gpd) return sp_errf(err, "EGL: eglGetPlatformDisplayEXT is missing (install libegl-mesa0)");
  r->dpy = gpd(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
  EGLint maj, min;
  if (r->dpy == EGL_NO_DISPLAY || !eglInitialize(r->dpy, &maj, &min))
    return sp_errf(err, "EGL: cannot initialise the surfaceless Mesa display (error 0x%x)",
                   eglGetError());
  const EGLint attrs[] = {EGL_SURFACE_TYPE, 0, EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8,
                          EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8, EGL_DEPTH_SIZE, 24,
                          EGL_STENCIL_SIZE, 8, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
  EGLConfig cfg;
  EGLint n = 0;
  if (!eglChooseConfig(r->dpy, attrs, &cfg, 1, &n) || n < 1)
    return sp_errf(err, "EGL: no RGBA8/depth24 OpenGL config (error 0x%x)", eglGetError());
  if (!eglBindAPI(EGL_OPENGL_API)) return sp_errf(err, "EGL: cannot bind the OpenGL API");
  r->ctx = eglCreateContext(r->dpy, cfg, EGL_NO_CONTEXT, NULL);
  if (r->ctx == EGL_NO_CONTEXT)
    return sp_errf(err, "EGL: cannot create an OpenGL context (error 0x%x)", eglGetError());
  if (!eglMakeCurrent(r->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, r->ctx))
    return sp_errf(err, "EGL: cannot make the context current (error 0x%x)", eglGetError());
  gl_get_string_fn gs = (gl_get_string_fn)eglGetProcAddress("glGetString");
  const unsigned char *s = gs ? gs(0x1F01 /* GL_RENDERER */) : NULL;
  snprintf(r->gl_name, sizeof r->gl_name, "%s", s ? (const char *)s : "unknown");
  return 0;
}

sp_renderer *sp_renderer_create(const sp_env_model *em, int w, int h, char *err) {
  return sp_renderer_create_q(em, w, h, 0, -1, err);
}

/* context creation and teardown one thread at a time and never during a render: mjr_makeContext
 * loads the GL functions into MuJoCo's process-wide table, and two workers creating renderers at
 * once crashed a run; renders share the lock (Mesa's software rasteriser segfaulted three times
 * in long two-worker runs, where renderers are made lazily while the other worker renders: a
 * guess, docs/environment.md) */
static pthread_rwlock_t g_ctx_lock = PTHREAD_RWLOCK_INITIALIZER;

static sp_renderer *create_locked(const sp_env_model *em, int w, int h, int shadow_size, int msaa, char *err);
sp_renderer *sp_renderer_create_q(const sp_env_model *em, int w, int h, int shadow_size, int msaa, char *err) {
  pthread_rwlock_wrlock(&g_ctx_lock);
  sp_renderer *r = create_locked(em, w, h, shadow_size, msaa, err);
  pthread_rwlock_unlock(&g_ctx_lock);
  return r;
}

static void free_locked(sp_renderer *r);
void sp_renderer_free(sp_renderer *r) {
  if (!r) return;
  pthread_rwlock_wrlock(&g_ctx_lock);
  free_locked(r);
  pthread_rwlock_unlock(&g_ctx_lock);
}

static sp_renderer *create_locked(const sp_env_model *em, int w, int h, int shadow_size, int msaa, char *err) {
  if (w <= 0 || h <= 0 || w > em->m0->vis.global.offwidth || h > em->m0->vis.global.offheight) {
    sp_errf(err, "render size %dx%d outside 1..%dx%d", w, h, em->m0->vis.global.offwidth,
            em->m0->vis.global.offheight);
    return NULL;
  }
  sp_renderer *r = calloc(1, sizeof *r);
  if (!r) { sp_errf(err, "out of memory"); return NULL; }
  r->dpy = EGL_NO_DISPLAY;
  r->ctx = EGL_NO_CONTEXT;
  if (egl_init(r, err)) { free_locked(r); return NULL; }
  r->w = w; r->h = h;
  r->rgb_buf = malloc((size_t)w * h * 3);
  r->depth_buf = malloc((size_t)w * h * sizeof(float));
  if (!r->rgb_buf || !r->depth_buf) { sp_errf(err, "out of memory"); free_locked(r); return NULL; }
  mjv_defaultScene(&r->scn);
  mjr_defaultContext(&r->con);
  mjv_defaultOption(&r->opt);
  mjv_defaultCamera(&r->cam);
  mjv_makeScene(em->m0, &r->scn, 2000);
  /* the context reads the quality settings once: a shallow copy of the constant model carries the
   * overrides (its arrays are only read) */
  mjModel mq = *em->m0;
  if (shadow_size > 0) mq.vis.quality.shadowsize = shadow_size;
  if (msaa >= 0) mq.vis.quality.offsamples = msaa;
  mjr_makeContext(&mq, &r->con, mjFONTSCALE_100);
  mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
  if (r->con.currentBuffer != mjFB_OFFSCREEN) {
    sp_errf(err, "MuJoCo: offscreen buffer unavailable in this GL context (%s)", r->gl_name);
    free_locked(r);
    return NULL;
  }
  return r;
}

static void free_locked(sp_renderer *r) {
  if (r->ctx != EGL_NO_CONTEXT) {
    eglMakeCurrent(r->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, r->ctx);
    mjr_freeContext(&r->con);
    mjv_freeScene(&r->scn);
    eglMakeCurrent(r->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(r->dpy, r->ctx);
  }
  free(r->rgb_buf);
  free(r->depth_buf);
  free(r);
}

const char *sp_renderer_gl_name(const sp_renderer *r) { return r->gl_name; }

void sp_renderer_set_quality(sp_renderer *r, sp_render_quality q) { r->quality = q; }

int sp_render_quality_parse(const char *name, sp_render_quality *q) {
  if (!strcmp(name, "full")) { *q = SP_RENDER_FULL; return 0; }
  if (!strcmp(name, "fast")) { *q = SP_RENDER_FAST; return 0; }
  return -1;
}

static int render_shared(sp_renderer *r, const sp_env *e, int cam, int w, int h, uint8_t *rgb, float *depth,
                         int32_t *seg, char *err);
int sp_render(sp_renderer *r, const sp_env *e, int cam, int w, int h, uint8_t *rgb, float *depth,
              int32_t *seg, char *err) {
  pthread_rwlock_rdlock(&g_ctx_lock);
  int rc = render_shared(r, e, cam, w, h, rgb, depth, seg, err);
  pthread_rwlock_unlock(&g_ctx_lock);
  return rc;
}

static int render_shared(sp_renderer *r, const sp_env *e, int cam, int w, int h, uint8_t *rgb, float *depth,
                         int32_t *seg, char *err) {
  if (w != r->w || h != r->h) return sp_errf(err, "renderer is %dx%d, asked %dx%d", r->w, r->h, w, h);
  if (cam < 0 || cam >= SP_NCAMERA || e->em->cam_id[cam] < 0)
    return sp_errf(err, "scene has no camera '%s'", sp_camera_name(cam));
  if (!eglMakeCurrent(r->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, r->ctx))
    return sp_errf(err, "EGL: cannot make the context current (error 0x%x)", eglGetError());
  mjrRect vp = {0, 0, w, h};
  r->cam.type = mjCAMERA_FIXED;
  r->cam.fixedcamid = e->em->cam_id[cam];
  mjv_updateScene(e->m, e->d, &r->opt, NULL, &r->cam, mjCAT_ALL, &r->scn);
  r->scn.flags[mjRND_SHADOW] = r->quality == SP_RENDER_FULL;
  r->scn.flags[mjRND_REFLECTION] = r->quality == SP_RENDER_FULL;
  if (rgb || depth) {
    r->scn.flags[mjRND_SEGMENT] = 0;
    r->scn.flags[mjRND_IDCOLOR] = 0;
    mjr_render(vp, &r->scn, &r->con);
    mjr_readPixels(rgb ? r->rgb_buf : NULL, depth ? r->depth_buf : NULL, vp, &r->con);
    if (rgb) memcpy(rgb, r->rgb_buf, (size_t)w * h * 3);
    if (depth) {
      double extent = e->m->stat.extent;
      double zn = e->m->vis.map.znear * extent, zf = e->m->vis.map.zfar * extent;
      for (int i = 0; i < w * h; i++)
        depth[i] = (float)(zn / (1.0 - r->depth_buf[i] * (1.0 - zn / zf)));
    }
  }
  if (seg) {
    r->scn.flags[mjRND_SEGMENT] = 1;
    r->scn.flags[mjRND_IDCOLOR] = 1;
    mjr_render(vp, &r->scn, &r->con);
    mjr_readPixels(r->rgb_buf, NULL, vp, &r->con);
    r->scn.flags[mjRND_SEGMENT] = 0;
    r->scn.flags[mjRND_IDCOLOR] = 0;
    for (int i = 0; i < w * h; i++) {
      const uint8_t *p = r->rgb_buf + 3 * i;
      int idx = p[0] + 256 * p[1] + 65536 * p[2] - 1;
      int32_t id = -1;
      if (idx >= 0 && idx < r->scn.ngeom && r->scn.geoms[idx].objtype == mjOBJ_GEOM)
        id = r->scn.geoms[idx].objid;
      seg[i] = id;
    }
  }
  return 0;
}

void sp_camera_get(const sp_env *e, int cam, int w, int h, sp_camera_matrix *cm) {
  int id = e->em->cam_id[cam];
  double fovy = e->m->cam_fovy[id] * M_PI / 180.0;
  double f = 0.5 * h / tan(0.5 * fovy);
  memset(cm, 0, sizeof *cm);
  cm->K[0] = f; cm->K[2] = 0.5 * (w - 1);
  cm->K[4] = f; cm->K[5] = 0.5 * (h - 1);
  cm->K[8] = 1;
  const mjtNum *xm = e->d->cam_xmat + 9 * id;  // columns: camera x, y, z axes in the world
  const mjtNum *xp = e->d->cam_xpos + 3 * id;
  /* image axes: X = camera x, Y = camera y (rows grow with it in buffer order), Z = -camera z */
  for (int j = 0; j < 3; j++) {
    cm->R[0 + j] = xm[3 * j + 0];
    cm->R[3 + j] = xm[3 * j + 1];
    cm->R[6 + j] = -xm[3 * j + 2];
  }
  for (int i = 0; i < 3; i++) {
    cm->pos[i] = xp[i];
    cm->t[i] = -(cm->R[3 * i] * xp[0] + cm->R[3 * i + 1] * xp[1] + cm->R[3 * i + 2] * xp[2]);
  }
}

double sp_camera_project(const sp_camera_matrix *cm, const double p[3], double *u, double *v) {
  double X = cm->R[0] * p[0] + cm->R[1] * p[1] + cm->R[2] * p[2] + cm->t[0];
  double Y = cm->R[3] * p[0] + cm->R[4] * p[1] + cm->R[5] * p[2] + cm->t[1];
  double Z = cm->R[6] * p[0] + cm->R[7] * p[1] + cm->R[8] * p[2] + cm->t[2];
  if (Z > 1e-9) {
    *u = cm->K[2] + cm->K[0] * X / Z;
    *v = cm->K[5] + cm->K[4] * Y / Z;
  }
  return Z;
}
