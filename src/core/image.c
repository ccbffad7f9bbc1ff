#include "core/image.h"

#include <errno.h>
#include <gif_lib.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

int sp_image_alloc(sp_image *img, int w, int h, int c, char *err) {
  if (w <= 0 || h <= 0 || c <= 0) return sp_errf(err, "image size %dx%dx%d is empty", w, h, c);
  img->px = malloc((size_t)w * h * c);
  if (!img->px) return sp_errf(err, "out of memory for a %dx%dx%d image", w, h, c);
  img->w = w; img->h = h; img->c = c;
  return 0;
}

void sp_image_free(sp_image *img) {
  free(img->px);
  memset(img, 0, sizeof *img);
}

int sp_png_read(const char *path, int want_c, sp_image *out, char *err) {
  memset(out, 0, sizeof *out);
  if (want_c != 1 && want_c != 3) return sp_errf(err, "png read: channels must be 1 or 3");
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&im, path))
    return sp_errf(err, "%s: cannot read PNG (%s)", path, im.message);
  im.format = want_c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (im.width == 0 || im.height == 0) {
    png_image_free(&im);
    return sp_errf(err, "%s: PNG is empty", path);
  }
  if (sp_image_alloc(out, (int)im.width, (int)im.height, want_c, err)) {
    png_image_free(&im);
    return -1;
  }
  if (!png_image_finish_read(&im, NULL, out->px, 0, NULL)) {
    sp_image_free(out);
    return sp_errf(err, "%s: corrupt PNG (%s)", path, im.message);
  }
  return 0;
}

static int png_write_any(const char *path, const void *px, int w, int h, int fmt, char *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = (png_uint_32)w;
  im.height = (png_uint_32)h;
  im.format = (png_uint_32)fmt;
  if (!png_image_write_to_file(&im, tmp, 0, px, 0, NULL)) {
    remove(tmp);
    return sp_errf(err, "%s: cannot write PNG (%s)", path, im.message);
  }
  if (rename(tmp, path)) {
    remove(tmp);
    return sp_errf(err, "%s: cannot rename into place (%s)", path, strerror(errno));
  }
  return 0;
}

int sp_png_write(const char *path, const uint8_t *px, int w, int h, int c, char *err) {
  int fmt = c == 1 ? (int)PNG_FORMAT_GRAY : c == 3 ? (int)PNG_FORMAT_RGB : c == 4 ? (int)PNG_FORMAT_RGBA : -1;
  if (fmt < 0) return sp_errf(err, "png write: %d channels unsupported", c);
  return png_write_any(path, px, w, h, fmt, err);
}

int sp_png_write16(const char *path, const uint16_t *px, int w, int h, char *err) {
  return png_write_any(path, px, w, h, PNG_FORMAT_LINEAR_Y, err);
}

void sp_image_crop_resize(const uint8_t *src, int w, int h, int c, int x0, int y0, int cw, int ch,
                          uint8_t *dst, int dw, int dh) {
  const double sx = (double)cw / dw, sy = (double)ch / dh;
  for (int oy = 0; oy < dh; oy++) {
    double ya = y0 + oy * sy, yb = ya + sy;
    for (int ox = 0; ox < dw; ox++) {
      double xa = x0 + ox * sx, xb = xa + sx;
      double acc[4] = {0, 0, 0, 0}, wsum = 0;
      for (int y = (int)ya; y < (int)ceil(yb); y++) {
        double wy = fmin(yb, y + 1.0) - fmax(ya, (double)y);
        if (wy <= 0 || y < 0 || y >= h) continue;
        for (int x = (int)xa; x < (int)ceil(xb); x++) {
          double wx = fmin(xb, x + 1.0) - fmax(xa, (double)x);
          if (wx <= 0 || x < 0 || x >= w) continue;
          const uint8_t *p = src + ((size_t)y * w + x) * c;
          for (int k = 0; k < c && k < 4; k++) acc[k] += wx * wy * p[k];
          wsum += wx * wy;
        }
      }
      uint8_t *q = dst + ((size_t)oy * dw + ox) * c;
      for (int k = 0; k < c && k < 4; k++)
        q[k] = (uint8_t)(wsum > 0 ? fmin(255.0, acc[k] / wsum + 0.5) : 0);
    }
  }
}

/* ---- GIF ---- */

struct sp_gif {
  GifFileType *f;
  int w, h, delay;
  char path[4096], tmp[4096];
  GifByteType *idx;  // (h x w) palette indices
};

static int cube_index(int r, int g, int b) {
  int ri = (r * 5 + 127) / 255, gi = (g * 6 + 127) / 255, bi = (b * 5 + 127) / 255;
  return (ri * 7 + gi) * 6 + bi;
}

sp_gif *sp_gif_open(const char *path, int w, int h, int delay_cs, char *err) {
  sp_gif *g = calloc(1, sizeof *g);
  if (!g) { sp_errf(err, "out of memory"); return NULL; }
  g->w = w; g->h = h; g->delay = delay_cs;
  snprintf(g->path, sizeof g->path, "%s", path);
  snprintf(g->tmp, sizeof g->tmp, "%s.tmp", path);
  g->idx = malloc((size_t)w * h);
  int gerr = 0;
  g->f = g->idx ? EGifOpenFileName(g->tmp, false, &gerr) : NULL;
  if (!g->f) {
    sp_errf(err, "%s: cannot open GIF for writing (%s)", path, GifErrorString(gerr));
    free(g->idx); free(g);
    return NULL;
  }
  ColorMapObject *map = GifMakeMapObject(256, NULL);
  for (int i = 0; i < 256; i++) {
    int r = (i / 42) % 6, gg = (i / 6) % 7, b = i % 6;
    if (i >= 252) r = gg = b = 0;
    map->Colors[i].Red = (GifByteType)(r * 255 / 5);
    map->Colors[i].Green = (GifByteType)(gg * 255 / 6);
    map->Colors[i].Blue = (GifByteType)(b * 255 / 5);
  }
  EGifSetGifVersion(g->f, true);
  if (EGifPutScreenDesc(g->f, w, h, 8, 0, map) == GIF_ERROR) {
    GifFreeMapObject(map);
    sp_errf(err, "%s: cannot write GIF header", path);
    EGifCloseFile(g->f, &gerr); remove(g->tmp); free(g->idx); free(g);
    return NULL;
  }
  GifFreeMapObject(map);
  /* NETSCAPE2.0 loop extension: loop forever */
  unsigned char nsle[11] = "NETSCAPE2.0", sub[3] = {1, 0, 0};
  EGifPutExtensionLeader(g->f, APPLICATION_EXT_FUNC_CODE);
  EGifPutExtensionBlock(g->f, 11, nsle);
  EGifPutExtensionBlock(g->f, 3, sub);
  EGifPutExtensionTrailer(g->f);
  return g;
}

int sp_gif_add(sp_gif *g, const uint8_t *rgb, char *err) {
  size_t n = (size_t)g->w * g->h;
  for (size_t i = 0; i < n; i++)
    g->idx[i] = (GifByteType)cube_index(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
  GraphicsControlBlock gcb = {.DisposalMode = DISPOSE_DO_NOT, .UserInputFlag = false,
                              .DelayTime = g->delay, .TransparentColor = NO_TRANSPARENT_COLOR};
  GifByteType ext[4];
  EGifGCBToExtension(&gcb, ext);
  if (EGifPutExtension(g->f, GRAPHICS_EXT_FUNC_CODE, 4, ext) == GIF_ERROR ||
      EGifPutImageDesc(g->f, 0, 0, g->w, g->h, false, NULL) == GIF_ERROR)
    return sp_errf(err, "%s: cannot write GIF frame", g->path);
  for (int y = 0; y < g->h; y++)
    if (EGifPutLine(g->f, g->idx + (size_t)y * g->w, g->w) == GIF_ERROR)
      return sp_errf(err, "%s: cannot write GIF frame", g->path);
  return 0;
}

int sp_gif_close(sp_gif *g, char *err) {
  int gerr = 0, rc = 0;
  if (EGifCloseFile(g->f, &gerr) == GIF_ERROR) rc = sp_errf(err, "%s: cannot finish GIF", g->path);
  if (!rc) chmod(g->tmp, 0644);  /* giflib creates the file 0600 */
  if (!rc && rename(g->tmp, g->path)) rc = sp_errf(err, "%s: cannot rename into place", g->path);
  if (rc) remove(g->tmp);
  free(g->idx);
  free(g);
  return rc;
}
