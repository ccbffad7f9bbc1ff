/* image.h: 8-bit images in memory, PNG read/write (libpng) and animated GIF output (giflib).
 *
 * Pixels are row-major, top row first, channels interleaved (c = 1 gray, 3 RGB, 4 RGBA).
 * All writers are atomic: they write PATH.tmp and rename it over PATH. */
#ifndef SP_CORE_IMAGE_H
#define SP_CORE_IMAGE_H

#include <stdint.h>

typedef struct {
  int w, h, c;   // width, height, channels
  uint8_t *px;   // (h x w x c)
} sp_image;

int sp_image_alloc(sp_image *img, int w, int h, int c, char *err);
void sp_image_free(sp_image *img);

/* the largest PNG sp_png_read accepts (a header may claim anything) */
#define SP_PNG_MAX_SIDE 16384
#define SP_PNG_MAX_PIXELS (64 << 20)

/* read any PNG as 8-bit gray (want_c 1) or RGB (want_c 3) with the values as stored, the way
 * OpenCV's imread does: a palette is expanded, 16-bit samples keep their high byte, an alpha
 * channel is dropped (the colour under a transparent pixel counts as is), gray is replicated to
 * RGB and RGB becomes gray by BT.601 weights; no gamma or colour-space conversion. Returns 0, or
 * -1 with err (unreadable, corrupt, or larger than SP_PNG_MAX_SIDE / SP_PNG_MAX_PIXELS). */
int sp_png_read(const char *path, int want_c, sp_image *out, char *err);
/* write 8-bit gray/RGB/RGBA */
int sp_png_write(const char *path, const uint8_t *px, int w, int h, int c, char *err);
/* write 16-bit gray (e.g. depth in millimetres) */
int sp_png_write16(const char *path, const uint16_t *px, int w, int h, char *err);

/* crop the window (x0, y0, cw, ch) of src (w x h x c) and resize it to dst (dw x dh x c) by area
 * averaging (box filter; exact for integer factors, bilinear-weighted coverage otherwise) */
void sp_image_crop_resize(const uint8_t *src, int w, int h, int c, int x0, int y0, int cw, int ch,
                          uint8_t *dst, int dw, int dh);

/* animated GIF with a fixed 6x7x6 colour cube palette; frames are RGB of the size given at open */
typedef struct sp_gif sp_gif;
sp_gif *sp_gif_open(const char *path, int w, int h, int delay_cs, char *err);
int sp_gif_add(sp_gif *g, const uint8_t *rgb, char *err);
int sp_gif_close(sp_gif *g, char *err);  // finishes and renames into place; frees g

#endif
