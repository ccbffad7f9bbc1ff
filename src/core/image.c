#include "core/image.h"

#include <errno.h>
#include <gif_lib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
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

/* libpng reports errors by longjmp; the message goes to the reader's buffer first */
typedef struct {
  jmp_buf jb;
  char msg[200];
} png_reader;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_reader *r = png_get_error_ptr(png);
  snprintf(r->msg, sizeof r->msg, "%s", msg);
  longjmp(r->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int sp_png_read(const char *path, int want_c, sp_image *out, char *err) {
  memset(out, 0, sizeof *out);
  if (want_c != 1 && want_c != 3) return sp_errf(err, "png read: channels must be 1 or 3");
  FILE *f = fopen(path, "rb");
  if (!f) return sp_errf(err, "%s: cannot read PNG (%s)", path, strerror(errno));
  /* the signature, then the size from IHDR before libpng reads on (a header may claim anything) */
  unsigned char hd[24];
  if (fread(hd, 1, 8, f) != 8 || png_sig_cmp(hd, 0, 8)) {
    fclose(f);
    return sp_errf(err, "%s: cannot read PNG (not a PNG file)", path);
  }
  if (fread(hd + 8, 1, 16, f) == 16 && !memcmp(hd + 12, "IHDR", 4)) {
    uint32_t w = png_get_uint_32(hd + 16), h = png_get_uint_32(hd + 20);
    if (w > SP_PNG_MAX_SIDE || h > SP_PNG_MAX_SIDE || (uint64_t)w * h > SP_PNG_MAX_PIXELS) {
      fclose(f);
      return sp_errf(err, "%s: the PNG header claims %u x %u pixels; sp reads up to %d x %d and "
                     "%d megapixels (a damaged or hostile file?)", path, (unsigned)w, (unsigned)h,
                     SP_PNG_MAX_SIDE, SP_PNG_MAX_SIDE, SP_PNG_MAX_PIXELS >> 20);
    }
  }
  if (fseek(f, 8, SEEK_SET)) {
    fclose(f);
    return sp_errf(err, "%s: cannot read PNG (%s)", path, strerror(errno));
  }
  png_reader rd;
  rd.msg[0] = 0;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &rd, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  /* volatile: set between setjmp and a longjmp back to it */
  uint8_t *volatile rgb = NULL;  // (h x w x 3) when a colour image is read as gray
  png_bytep *volatile rows = NULL;
  if (!info) {
    png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
    fclose(f);
    return sp_errf(err, "%s: out of memory starting the PNG reader", path);
  }
  if (setjmp(rd.jb)) {
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rgb);
    free(rows);
    sp_image_free(out);
    return sp_errf(err, "%s: corrupt PNG (%s)", path, rd.msg);
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (w == 0 || h == 0 || w > SP_PNG_MAX_SIDE || h > SP_PNG_MAX_SIDE) png_error(png, "bad image size");
  /* the stored values as 8-bit gray or RGB, as OpenCV's imread reads them: palette expanded,
   * 16-bit samples cut to their high byte, alpha dropped (not composed onto anything), no gamma
   * or colour-space conversion */
  int colour = (type & PNG_COLOR_MASK_COLOR) != 0;
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (!colour && want_c == 3) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int c_read = colour ? 3 : want_c;
  if (png_get_rowbytes(png, info) != (size_t)w * c_read)
    png_error(png, "unexpected row layout after conversion");
  if (sp_image_alloc(out, (int)w, (int)h, want_c, err)) {
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return -1;
  }
  uint8_t *dst = out->px;
  if (c_read != want_c) {
    rgb = malloc((size_t)w * h * 3);
    if (!rgb) png_error(png, "out of memory");
    dst = rgb;
  }
  rows = malloc(sizeof(png_bytep) * h);
  if (!rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = dst + (size_t)y * w * c_read;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
  free(rows);
  if (rgb) {
    /* colour to gray with BT.601 weights, rounded (OpenCV's cvtColor) */
    for (size_t i = 0; i < (size_t)w * h; i++)
      out->px[i] = (uint8_t)((299 * rgb[3 * i] + 587 * rgb[3 * i + 1] + 114 * rgb[3 * i + 2] + 500) / 1000);
    free(rgb);
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
