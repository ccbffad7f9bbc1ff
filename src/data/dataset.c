/* dataset.c: HDF5 reading and writing of demonstration episodes (contract in dataset.h).
 *
 * Writing is crash-safe by construction: an episode goes to its own part file (PATH.tmp, then
 * rename), and the dataset is rebuilt from parts by sp_dataset_merge into OUT.tmp, fsync'd and
 * renamed over OUT. A kill at any moment leaves OUT either absent or a complete earlier version. */
#include "data/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define PART_FORMAT "sp-dataset-part"

/* ---- the episode buffer ---- */

/* element count of one row (frame or step) of an array */
static size_t row_elems(int d1, int d2, int d3) {
  return (size_t)(d1 ? d1 : 1) * (size_t)(d2 ? d2 : 1) * (size_t)(d3 ? d3 : 1);
}

int sp_demo_alloc(sp_demo *d, int cap, int sz, char *err) {
  memset(d, 0, sizeof *d);
  if (cap < 1 || sz < 1 || sz > SP_DATA_MAX_SIZE)
    return sp_errf(err, "episode buffer of %d frames at %d px is outside 1..%d px", cap, sz, SP_DATA_MAX_SIZE);
  size_t total = 0;
  const int F = cap, S = cap;  // steps never exceed frames
#define SP_DEMO_SIZE(name, ctype, kind, rows, d1, d2, d3, doc) \
  total += ((size_t)(rows) * row_elems(d1, d2, d3) * sizeof(ctype) + 63) & ~(size_t)63;
  SP_DEMO_ARRAYS(SP_DEMO_SIZE)
#undef SP_DEMO_SIZE
  total += (size_t)cap * sizeof(int32_t) + 64;
  d->buf = calloc(1, total);
  if (!d->buf) return sp_errf(err, "out of memory for an episode of %d frames (%zu MB)", cap, total >> 20);
  char *p = d->buf;
#define SP_DEMO_CARVE(name, ctype, kind, rows, d1, d2, d3, doc) \
  d->name = (ctype *)p;                                         \
  p += ((size_t)(rows) * row_elems(d1, d2, d3) * sizeof(ctype) + 63) & ~(size_t)63;
  SP_DEMO_ARRAYS(SP_DEMO_CARVE)
#undef SP_DEMO_CARVE
  d->fine_idx = (int32_t *)p;
  d->cap = cap;
  d->size = sz;
  d->attempt = -1;
  (void)F; (void)S;
  return 0;
}

void sp_demo_free(sp_demo *d) {
  free(d->buf);
  memset(d, 0, sizeof *d);
}

void sp_demo_name(const sp_demo *d, char *buf, size_t cap) {
  if (d->recovery) snprintf(buf, cap, "recovery_%d", d->attempt);
  else snprintf(buf, cap, "seed_%ld", d->seed);
}

/* ---- HDF5 helpers ---- */

static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static hid_t mem_type(int kind) {
  return kind == SP_H5_U8 ? H5T_NATIVE_UINT8 : kind == SP_H5_F32 ? H5T_NATIVE_FLOAT
       : kind == SP_H5_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_DOUBLE;
}
static hid_t file_type(int kind) {
  return kind == SP_H5_U8 ? H5T_STD_U8LE : kind == SP_H5_F32 ? H5T_IEEE_F32LE
       : kind == SP_H5_I32 ? H5T_STD_I32LE : H5T_IEEE_F64LE;
}

static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                      const hsize_t *dims, const void *val) {
  hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
  if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
  hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 || H5Awrite(a, mtype, val) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return rc;
}

static int attr_str(hid_t loc, const char *name, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  int rc = attr_write(loc, name, t, t, 0, NULL, &s);
  H5Tclose(t);
  return rc;
}
static int attr_long(hid_t loc, const char *name, long v) {
  long long x = v;
  return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, NULL, &x);
}
static int attr_doubles(hid_t loc, const char *name, const double *v, int rank, const hsize_t *dims) {
  return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, v);
}
static int attr_ints(hid_t loc, const char *name, const int *v, hsize_t n) {
  return attr_write(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, 1, &n, v);
}

/* read a string attribute into buf; -1 when absent or not a string */
static int attr_read_str(hid_t loc, const char *name, char *buf, size_t cap) {
  if (H5Aexists(loc, name) <= 0) return -1;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  int rc = -1;
  if (H5Tget_class(ft) == H5T_STRING) {
    if (H5Tis_variable_str(ft) > 0) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(ft));
      char *s = NULL;
      if (H5Aread(a, mt, &s) >= 0 && s) {
        snprintf(buf, cap, "%s", s);
        H5free_memory(s);
        rc = 0;
      }
      H5Tclose(mt);
    } else {
      size_t n = H5Tget_size(ft);
      char *tmp = calloc(1, n + 1);
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, n + 1);
      if (H5Aread(a, mt, tmp) >= 0) { snprintf(buf, cap, "%s", tmp); rc = 0; }
      H5Tclose(mt);
      free(tmp);
    }
  }
  H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

/* read a numeric attribute of exactly n values */
static int attr_read_num(hid_t loc, const char *name, hid_t mtype, void *v, hsize_t n) {
  if (H5Aexists(loc, name) <= 0) return -1;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t sp = H5Aget_space(a);
  hssize_t np = H5Sget_simple_extent_npoints(sp);
  int rc = np == (hssize_t)n && H5Aread(a, mtype, v) >= 0 ? 0 : -1;
  H5Sclose(sp);
  H5Aclose(a);
  return rc;
}
static int attr_read_long(hid_t loc, const char *name, long *v) {
  long long x;
  if (attr_read_num(loc, name, H5T_NATIVE_LLONG, &x, 1)) return -1;
  *v = (long)x;
  return 0;
}
static int attr_read_int(hid_t loc, const char *name, int *v) {
  long x;
  if (attr_read_long(loc, name, &x)) return -1;
  *v = (int)x;
  return 0;
}

/* a chunked, compressed dataset: image arrays are chunked per frame, the rest whole */
static int write_array(hid_t g, const char *name, int kind, int rank, const hsize_t *dims,
                       const void *data, int image, int deflate) {
  hsize_t chunk[4];
  for (int i = 0; i < rank; i++) chunk[i] = dims[i] ? dims[i] : 1;
  if (image) chunk[0] = 1;
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(pl, rank, chunk);
  if (deflate > 0) {
    if (kind != SP_H5_U8) H5Pset_shuffle(pl);
    H5Pset_deflate(pl, (unsigned)deflate);
  }
  hid_t ds = H5Dcreate2(g, name, file_type(kind), sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  int rc = ds < 0 ? -1 : 0;
  if (!rc && dims[0] > 0 && H5Dwrite(ds, mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) rc = -1;
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(pl);
  H5Sclose(sp);
  return rc;
}

/* read a whole dataset whose shape must equal dims */
static int read_array(hid_t g, const char *name, int kind, int rank, const hsize_t *dims, void *data,
                      char *err, const char *where) {
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  if (ds < 0) return sp_errf(err, "%s: dataset '%s' is missing", where, name);
  hid_t sp = H5Dget_space(ds);
  hsize_t got[8];
  int r = H5Sget_simple_extent_ndims(sp);
  int ok = r == rank;
  if (ok) {
    H5Sget_simple_extent_dims(sp, got, NULL);
    for (int i = 0; i < rank; i++) ok &= got[i] == dims[i];
  }
  H5Sclose(sp);
  if (!ok) {
    H5Dclose(ds);
    return sp_errf(err, "%s: dataset '%s' has an unexpected shape", where, name);
  }
  int rc = 0;
  if (dims[0] > 0 && H5Dread(ds, mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    rc = sp_errf(err, "%s: cannot read '%s' (corrupt file?)", where, name);
  H5Dclose(ds);
  return rc;
}

/* shape of an array for n frames: rank and dims */
static int array_dims(char rows, int n, int d1, int d2, int d3, hsize_t *dims) {
  int r = 0;
  dims[r++] = (hsize_t)(rows == 'F' ? n : n - 1);
  if (d1) dims[r++] = (hsize_t)d1;
  if (d2) dims[r++] = (hsize_t)d2;
  if (d3) dims[r++] = (hsize_t)d3;
  return r;
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static void fsync_dir_of(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  fsync_path(dirname(tmp));
}

/* ---- writing one episode ---- */

static int write_episode(hid_t g, const sp_demo *d, const sp_dataset_meta *meta, int deflate) {
  const int sz = d->size;
  hsize_t dims[4];
  int rc = 0;
#define SP_DEMO_WRITE(name, ctype, kind, rows, d1, d2, d3, doc)                          \
  if (!rc) {                                                                              \
    int rank = array_dims(#rows[0], d->n, d1, d2, d3, dims);                              \
    rc = write_array(g, #name, kind, rank, dims, d->name, (d1) == sz && (d2) == sz && sz > 1, deflate); \
  }
  SP_DEMO_ARRAYS(SP_DEMO_WRITE)
#undef SP_DEMO_WRITE
  if (rc) return -1;
  hsize_t nf = (hsize_t)d->nfine;
  if (write_array(g, "fine_indices", SP_H5_I32, 1, &nf, d->fine_idx, 0, deflate) < 0) return -1;
  hsize_t d33[2] = {3, 3}, d3 = 3;
  hsize_t one = 1;
  (void)one;
  rc |= attr_str(g, "task", sp_task_name(d->task));
  rc |= attr_str(g, "camera", sp_camera_name(d->cam));
  rc |= attr_long(g, "seed", d->seed);
  rc |= attr_long(g, "recovery", d->recovery);
  rc |= attr_long(g, "attempt", d->attempt);
  rc |= attr_long(g, "n_frames", d->n);
  rc |= attr_long(g, "success", d->ep_success);
  rc |= attr_long(g, "size", d->size);
  rc |= attr_doubles(g, "intrinsics", d->K, 2, d33);
  double ext[12];
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) ext[4 * i + j] = d->R[3 * i + j];
    ext[4 * i + 3] = d->tvec[i];
  }
  hsize_t d34[2] = {3, 4};
  rc |= attr_doubles(g, "extrinsics", ext, 2, d34);
  rc |= attr_doubles(g, "camera_pos", d->cam_pos, 1, &d3);
  rc |= attr_ints(g, "crop", d->crop, 4);
  int rs[2] = {d->render_w, d->render_h};
  rc |= attr_ints(g, "render_size", rs, 2);
  rc |= attr_long(g, "render_crop", d->render_crop);
  rc |= attr_str(g, "plan", d->plan);
  rc |= attr_str(g, "perturbation", d->perturb);
  rc |= attr_str(g, "target_names", "object,goal");
  rc |= attr_str(g, "gripper_names", "tcp,right_pad,left_pad");
  rc |= attr_str(g, "scene_source", meta->scene_source ? meta->scene_source : "?");
  rc |= attr_long(g, "format_version", SP_DATA_VERSION);
  return rc ? -1 : 0;
}

static hid_t lcpl_intermediate(void) {
  hid_t l = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(l, 1);
  return l;
}

static void episode_path(const sp_demo *d, char *buf, size_t cap) {
  char nm[64];
  sp_demo_name(d, nm, sizeof nm);
  snprintf(buf, cap, "/episodes/%s/%s/%s", sp_task_name(d->task), sp_camera_name(d->cam), nm);
}

static int write_root_common(hid_t f, const char *format, const sp_dataset_meta *meta) {
  int rc = attr_str(f, "format", format);
  rc |= attr_long(f, "format_version", SP_DATA_VERSION);
  rc |= attr_str(f, "config", meta->config_json ? meta->config_json : "{}");
  rc |= attr_str(f, "scene_source", meta->scene_source ? meta->scene_source : "?");
  rc |= attr_long(f, "size", meta->size);
  rc |= attr_str(f, "created_by", "sp collect");
  return rc;
}

int sp_demo_save_part(const char *path, const sp_demo *d, const sp_dataset_meta *meta, int deflate,
                      char *err) {
  h5_quiet();
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return sp_errf(err, "%s: cannot create (directory missing or not writable?)", tmp);
  char gp[256];
  episode_path(d, gp, sizeof gp);
  hid_t l = lcpl_intermediate();
  hid_t g = H5Gcreate2(f, gp, l, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(l);
  int rc = g < 0 || write_root_common(f, PART_FORMAT, meta) || write_episode(g, d, meta, deflate);
  if (g >= 0) H5Gclose(g);
  if (H5Fclose(f) < 0) rc = 1;
  if (rc) {
    unlink(tmp);
    return sp_errf(err, "%s: writing the episode failed (disk full?)", tmp);
  }
  if (fsync_path(tmp) || rename(tmp, path)) {
    unlink(tmp);
    return sp_errf(err, "%s: cannot move into place: %s", path, strerror(errno));
  }
  fsync_dir_of(path);
  return 0;
}

/* ---- reading ---- */

struct sp_dataset {
  hid_t f;
  char path[4096];
  int size;
  int n, cap;
  sp_dataset_ep *eps;
  char *config;
  double amin[SP_ACT_DIM], amax[SP_ACT_DIM];
  long *seeds;
  int nseed;
};

static int open_checked(const char *path, const char *want_format, hid_t *out, char *err) {
  h5_quiet();
  if (access(path, R_OK)) return sp_errf(err, "%s: %s", path, strerror(errno));
  htri_t is = H5Fis_hdf5(path);
  if (is <= 0)
    return sp_errf(err, "%s: not an HDF5 file (a foreign file, or one cut short before its "
                   "header was written); expected an sp dataset written by sp collect", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0)
    return sp_errf(err, "%s: corrupt or truncated HDF5 file (cannot open it); re-collect it, or "
                   "resume from its parts directory with sp collect --resume", path);
  char fmt[64] = "";
  if (attr_read_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, want_format)) {
    H5Fclose(f);
    if (!strcmp(fmt, PART_FORMAT))
      return sp_errf(err, "%s: a single-episode part file of an unfinished sp collect run; "
                     "finish it with sp collect --resume", path);
    return sp_errf(err, "%s: an HDF5 file but not an %s (format attribute '%s')", path,
                   want_format, fmt[0] ? fmt : "absent");
  }
  long ver = -1;
  if (attr_read_long(f, "format_version", &ver) || ver != SP_DATA_VERSION) {
    H5Fclose(f);
    return sp_errf(err, "%s: dataset format version %ld, this sp reads version %d; re-collect it "
                   "with this sp collect", path, ver, SP_DATA_VERSION);
  }
  *out = f;
  return 0;
}

int sp_dataset_check(const char *path, char *err) {
  hid_t f;
  if (open_checked(path, SP_DATA_FORMAT, &f, err)) return 0;
  H5Fclose(f);
  return 1;
}

/* ---- verification: every array read back (every compressed block inflated) ---- */

typedef struct {
  const char *path;
  char *err;
  void *buf;
  size_t cap;
  long nread;
} verify_ctx;

static herr_t verify_cb(hid_t o, const char *name, const H5O_info_t *info, void *op) {
  verify_ctx *v = op;
  if (info->type != H5O_TYPE_DATASET) return 0;
  hid_t d = H5Dopen2(o, name, H5P_DEFAULT);
  if (d < 0) return sp_errf(v->err, "%s: /%s cannot be opened (damaged file)", v->path, name), -1;
  hid_t ft = H5Dget_type(d), mt = H5Tget_native_type(ft, H5T_DIR_ASCEND), sp = H5Dget_space(d);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  size_t bytes = n > 0 ? (size_t)n * H5Tget_size(mt) : 0;
  herr_t rc = 0;
  if (bytes > v->cap) {
    void *b = realloc(v->buf, bytes);
    if (!b) rc = -1, sp_errf(v->err, "%s: out of memory reading /%s back", v->path, name);
    else v->buf = b, v->cap = bytes;
  }
  if (!rc && bytes && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->buf) < 0)
    rc = -1, sp_errf(v->err, "%s: /%s cannot be read back (a damaged compressed block?)", v->path, name);
  if (!rc) v->nread++;
  H5Sclose(sp);
  H5Tclose(mt);
  H5Tclose(ft);
  H5Dclose(d);
  return rc;
}

int sp_dataset_verify(const char *path, char *err) {
  hid_t f;
  char e2[SP_ERRLEN];
  if (open_checked(path, SP_DATA_FORMAT, &f, e2) && open_checked(path, PART_FORMAT, &f, err)) {
    if (strstr(err, "part file")) snprintf(err, SP_ERRLEN, "%s", e2);
    return -1;
  }
  verify_ctx v = {path, err, NULL, 0, 0};
  herr_t rc = H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, verify_cb, &v);
  free(v.buf);
  H5Fclose(f);
  if (rc < 0) {
    if (!v.nread && !strstr(err, path)) sp_errf(err, "%s: cannot walk the file (damaged)", path);
    return -1;
  }
  return 0;
}

int sp_dataset_part_config(const char *path, char *buf, size_t cap, char *err) {
  hid_t f;
  if (open_checked(path, PART_FORMAT, &f, err)) return -1;
  int rc = attr_read_str(f, "config", buf, cap) ? sp_errf(err, "%s: no config attribute", path) : 0;
  H5Fclose(f);
  return rc;
}

typedef struct {
  sp_dataset *ds;
  char *err;
  int rc;
  char prefix[256];
  int depth;
} walk_ctx;

/* the gripper opening of every frame: column SP_OBS_GRIP of the observations */
static int read_grip(hid_t g, sp_dataset_ep *e, char *err, const char *path) {
  double *obs = malloc(sizeof(double) * (size_t)e->n * SP_OBS_DIM);
  if (!obs || !e->grip) {
    free(obs);
    return sp_errf(err, "%s: out of memory for the observations", path);
  }
  hsize_t dims[2] = {(hsize_t)e->n, SP_OBS_DIM};
  int rc = read_array(g, "obs", SP_H5_F64, 2, dims, obs, err, path);
  for (int t = 0; !rc && t < e->n; t++) e->grip[t] = obs[(size_t)t * SP_OBS_DIM + SP_OBS_GRIP];
  free(obs);
  return rc;
}

static int read_ep_index(sp_dataset *ds, hid_t g, const char *path, char *err) {
  if (ds->n == ds->cap) {
    ds->cap = ds->cap ? 2 * ds->cap : 64;
    ds->eps = realloc(ds->eps, sizeof *ds->eps * (size_t)ds->cap);
  }
  sp_dataset_ep *e = &ds->eps[ds->n];
  memset(e, 0, sizeof *e);
  snprintf(e->path, sizeof e->path, "%s", path);
  char task[64], cam[64];
  if (attr_read_str(g, "task", task, sizeof task) || attr_read_str(g, "camera", cam, sizeof cam) ||
      attr_read_long(g, "seed", &e->seed) || attr_read_int(g, "recovery", &e->recovery) ||
      attr_read_int(g, "attempt", &e->attempt) || attr_read_int(g, "n_frames", &e->n) ||
      attr_read_int(g, "success", &e->success))
    return sp_errf(err, "%s: %s: missing episode attributes", ds->path, path);
  e->task = sp_task_find(task);
  e->cam = sp_camera_find(cam);
  if (e->task < 0 || e->cam < 0 || e->n < 1 || e->n > 100000)
    return sp_errf(err, "%s: %s: bad task/camera/frame count", ds->path, path);
  hid_t fi = H5Dopen2(g, "fine_indices", H5P_DEFAULT);
  if (fi < 0) return sp_errf(err, "%s: %s: fine_indices missing", ds->path, path);
  hid_t sp = H5Dget_space(fi);
  e->nfine = (int)H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  H5Dclose(fi);
  e->actions = malloc(sizeof(double) * (size_t)(e->n > 1 ? e->n - 1 : 1) * SP_ACT_DIM);
  e->ee_pos = malloc(sizeof(double) * (size_t)e->n * 3);
  e->grip = malloc(sizeof(double) * (size_t)e->n);
  e->expert = malloc((size_t)e->n);
  e->fine_idx = malloc(sizeof(int32_t) * (size_t)(e->nfine ? e->nfine : 1));
  ds->n++;
  hsize_t da[2] = {(hsize_t)(e->n - 1), SP_ACT_DIM}, de[2] = {(hsize_t)e->n, 3}, df = (hsize_t)e->nfine;
  if (read_array(g, "actions", SP_H5_F64, 2, da, e->actions, err, path) ||
      read_array(g, "ee_pos", SP_H5_F64, 2, de, e->ee_pos, err, path) ||
      read_array(g, "expert", SP_H5_U8, 1, da, e->expert, err, path) || read_grip(g, e, err, path))
    return -1;
  hid_t d = H5Dopen2(g, "fine_indices", H5P_DEFAULT);
  int rc = df > 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->fine_idx) < 0;
  H5Dclose(d);
  if (rc) return sp_errf(err, "%s: %s: cannot read fine_indices", ds->path, path);
  for (int i = 0; i < e->nfine; i++)
    if (e->fine_idx[i] < 0 || e->fine_idx[i] >= e->n)
      return sp_errf(err, "%s: %s: fine index %d outside the episode", ds->path, path, e->fine_idx[i]);
  return 0;
}

static herr_t walk_cb(hid_t g, const char *name, const H5L_info_t *info, void *op) {
  walk_ctx *w = op;
  (void)info;
  char path[256];
  snprintf(path, sizeof path, "%.120s/%.120s", w->prefix, name);
  hid_t sub = H5Gopen2(g, name, H5P_DEFAULT);
  if (sub < 0) { w->rc = sp_errf(w->err, "%s: %s is not a group", w->ds->path, path); return -1; }
  int rc;
  if (w->depth == 2) {
    rc = read_ep_index(w->ds, sub, path, w->err);
  } else {
    walk_ctx inner = *w;
    snprintf(inner.prefix, sizeof inner.prefix, "%s", path);
    inner.depth = w->depth + 1;
    hsize_t idx = 0;
    rc = H5Literate(sub, H5_INDEX_NAME, H5_ITER_INC, &idx, walk_cb, &inner) < 0 ? -1 : 0;
    if (inner.rc) rc = -1;
  }
  H5Gclose(sub);
  if (rc) { w->rc = -1; return -1; }
  return 0;
}

sp_dataset *sp_dataset_open(const char *path, char *err) {
  hid_t f;
  if (open_checked(path, SP_DATA_FORMAT, &f, err)) return NULL;
  sp_dataset *ds = calloc(1, sizeof *ds);
  ds->f = f;
  snprintf(ds->path, sizeof ds->path, "%s", path);
  char *cfg = malloc(65536);
  if (attr_read_str(f, "config", cfg, 65536)) cfg[0] = 0;
  ds->config = cfg;
  if (attr_read_int(f, "size", &ds->size) || ds->size < 1 || ds->size > SP_DATA_MAX_SIZE) {
    sp_errf(err, "%s: root attribute 'size' missing or invalid", path);
    sp_dataset_close(ds);
    return NULL;
  }
  if (attr_read_num(f, "action_min", H5T_NATIVE_DOUBLE, ds->amin, SP_ACT_DIM) ||
      attr_read_num(f, "action_max", H5T_NATIVE_DOUBLE, ds->amax, SP_ACT_DIM)) {
    sp_errf(err, "%s: root attributes action_min/action_max missing", path);
    sp_dataset_close(ds);
    return NULL;
  }
  if (H5Aexists(f, "seeds") > 0) {
    hid_t a = H5Aopen(f, "seeds", H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    ds->nseed = (int)H5Sget_simple_extent_npoints(sp);
    long long *v = malloc(sizeof(long long) * (size_t)(ds->nseed + 1));
    ds->seeds = malloc(sizeof(long) * (size_t)(ds->nseed + 1));
    if (H5Aread(a, H5T_NATIVE_LLONG, v) < 0) ds->nseed = 0;
    for (int i = 0; i < ds->nseed; i++) ds->seeds[i] = (long)v[i];
    free(v);
    H5Sclose(sp);
    H5Aclose(a);
  }
  if (H5Lexists(f, "episodes", H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(f, "episodes", H5P_DEFAULT);
    walk_ctx w = {ds, err, 0, "/episodes", 0};
    hsize_t idx = 0;
    herr_t hr = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, walk_cb, &w);
    H5Gclose(g);
    if (hr < 0 || w.rc) {
      if (!w.rc) sp_errf(err, "%s: cannot list the episodes (corrupt file?)", path);
      sp_dataset_close(ds);
      return NULL;
    }
  }
  return ds;
}

void sp_dataset_close(sp_dataset *ds) {
  if (!ds) return;
  for (int i = 0; i < ds->n; i++) {
    free(ds->eps[i].actions);
    free(ds->eps[i].ee_pos);
    free(ds->eps[i].grip);
    free(ds->eps[i].expert);
    free(ds->eps[i].fine_idx);
  }
  free(ds->eps);
  free(ds->config);
  free(ds->seeds);
  if (ds->f >= 0) H5Fclose(ds->f);
  free(ds);
}

int sp_dataset_count(const sp_dataset *ds) { return ds->n; }
int sp_dataset_size(const sp_dataset *ds) { return ds->size; }
const sp_dataset_ep *sp_dataset_episode(const sp_dataset *ds, int i) { return &ds->eps[i]; }
const char *sp_dataset_config_json(const sp_dataset *ds) { return ds->config; }

void sp_dataset_action_stats(const sp_dataset *ds, double amin[SP_ACT_DIM], double amax[SP_ACT_DIM]) {
  memcpy(amin, ds->amin, sizeof ds->amin);
  memcpy(amax, ds->amax, sizeof ds->amax);
}

int sp_dataset_seeds(const sp_dataset *ds, const long **seeds) {
  *seeds = ds->seeds;
  return ds->nseed;
}

int sp_dataset_find(const sp_dataset *ds, int task, int cam, const char *name) {
  char p[128];
  snprintf(p, sizeof p, "/episodes/%s/%s/%s", sp_task_name(task), sp_camera_name(cam), name);
  for (int i = 0; i < ds->n; i++)
    if (!strcmp(ds->eps[i].path, p)) return i;
  return -1;
}

int sp_dataset_load(sp_dataset *ds, int i, sp_demo *d, char *err) {
  if (i < 0 || i >= ds->n) return sp_errf(err, "episode %d outside 0..%d", i, ds->n - 1);
  const sp_dataset_ep *e = &ds->eps[i];
  if (sp_demo_alloc(d, e->n, ds->size, err)) return -1;
  hid_t g = H5Gopen2(ds->f, e->path, H5P_DEFAULT);
  if (g < 0) { sp_demo_free(d); return sp_errf(err, "%s: %s: cannot open", ds->path, e->path); }
  d->task = e->task; d->cam = e->cam; d->seed = e->seed; d->recovery = e->recovery;
  d->attempt = e->attempt; d->n = e->n; d->ep_success = e->success; d->nfine = e->nfine;
  const int sz = ds->size;
  hsize_t dims[4];
  int rc = 0;
#define SP_DEMO_READ(name, ctype, kind, rows, d1, d2, d3, doc)            \
  if (!rc) {                                                               \
    int rank = array_dims(#rows[0], d->n, d1, d2, d3, dims);               \
    rc = read_array(g, #name, kind, rank, dims, d->name, err, e->path);    \
  }
  SP_DEMO_ARRAYS(SP_DEMO_READ)
#undef SP_DEMO_READ
  memcpy(d->fine_idx, e->fine_idx, sizeof(int32_t) * (size_t)e->nfine);
  double ext[12];
  int rsz[2];
  if (!rc && (attr_read_num(g, "intrinsics", H5T_NATIVE_DOUBLE, d->K, 9) ||
              attr_read_num(g, "extrinsics", H5T_NATIVE_DOUBLE, ext, 12) ||
              attr_read_num(g, "camera_pos", H5T_NATIVE_DOUBLE, d->cam_pos, 3) ||
              attr_read_num(g, "crop", H5T_NATIVE_INT, d->crop, 4) ||
              attr_read_num(g, "render_size", H5T_NATIVE_INT, rsz, 2) ||
              attr_read_int(g, "render_crop", &d->render_crop) ||
              attr_read_str(g, "plan", d->plan, sizeof d->plan) ||
              attr_read_str(g, "perturbation", d->perturb, sizeof d->perturb)))
    rc = sp_errf(err, "%s: %s: missing camera/crop/plan attributes", ds->path, e->path);
  if (!rc) {
    for (int r = 0; r < 3; r++) {
      for (int c = 0; c < 3; c++) d->R[3 * r + c] = ext[4 * r + c];
      d->tvec[r] = ext[4 * r + 3];
    }
    d->render_w = rsz[0];
    d->render_h = rsz[1];
  }
  H5Gclose(g);
  if (rc) sp_demo_free(d);
  return rc;
}

static int read_frame_rows(hid_t g, const char *name, hid_t mtype, const int *idx, int k, int n,
                           size_t row, void *out, size_t esz, const char *where, char *err) {
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  if (ds < 0) return sp_errf(err, "%s: '%s' missing", where, name);
  hid_t fsp = H5Dget_space(ds);
  int rank = H5Sget_simple_extent_ndims(fsp);
  hsize_t dims[4], start[4] = {0}, count[4];
  H5Sget_simple_extent_dims(fsp, dims, NULL);
  for (int r = 0; r < rank; r++) count[r] = dims[r];
  count[0] = 1;
  hsize_t mdim = row;
  hid_t msp = H5Screate_simple(1, &mdim, NULL);
  int rc = 0;
  for (int j = 0; j < k && !rc; j++) {
    if (idx[j] < 0 || idx[j] >= n) { rc = sp_errf(err, "%s: frame %d outside 0..%d", where, idx[j], n - 1); break; }
    start[0] = (hsize_t)idx[j];
    H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(ds, mtype, msp, fsp, H5P_DEFAULT, (char *)out + (size_t)j * row * esz) < 0)
      rc = sp_errf(err, "%s: cannot read frame %d of '%s' (corrupt file?)", where, idx[j], name);
  }
  H5Sclose(msp);
  H5Sclose(fsp);
  H5Dclose(ds);
  return rc;
}

int sp_dataset_read_frames(sp_dataset *ds, int i, const int *idx, int k, uint8_t *rgb, float *depth,
                           uint8_t *mask, char *err) {
  if (i < 0 || i >= ds->n) return sp_errf(err, "episode %d outside 0..%d", i, ds->n - 1);
  const sp_dataset_ep *e = &ds->eps[i];
  hid_t g = H5Gopen2(ds->f, e->path, H5P_DEFAULT);
  if (g < 0) return sp_errf(err, "%s: %s: cannot open", ds->path, e->path);
  size_t px = (size_t)ds->size * ds->size;
  int rc = 0;
  if (rgb) rc = read_frame_rows(g, "rgb", H5T_NATIVE_UINT8, idx, k, e->n, 3 * px, rgb, 1, e->path, err);
  if (!rc && depth) rc = read_frame_rows(g, "depth", H5T_NATIVE_FLOAT, idx, k, e->n, px, depth, 4, e->path, err);
  if (!rc && mask) rc = read_frame_rows(g, "mask", H5T_NATIVE_UINT8, idx, k, e->n, px, mask, 1, e->path, err);
  H5Gclose(g);
  return rc;
}

/* ---- merging ---- */

typedef struct {
  double amin[SP_ACT_DIM], amax[SP_ACT_DIM];
  long *seeds;
  int nseed, cap;
  int n_episodes, n_recovery;
} merge_stats;

static void stats_add(merge_stats *s, long seed, int recovery, const double *act, int nsteps) {
  s->n_episodes++;
  s->n_recovery += recovery;
  int have = 0;
  for (int i = 0; i < s->nseed && !have; i++) have = s->seeds[i] == seed;
  if (!have) {
    if (s->nseed == s->cap) { s->cap = s->cap ? 2 * s->cap : 64; s->seeds = realloc(s->seeds, sizeof(long) * (size_t)s->cap); }
    s->seeds[s->nseed++] = seed;
  }
  for (int t = 0; t < nsteps; t++)
    for (int j = 0; j < SP_ACT_DIM; j++) {
      double a = act[SP_ACT_DIM * t + j];
      if (a < s->amin[j]) s->amin[j] = a;
      if (a > s->amax[j]) s->amax[j] = a;
    }
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

/* copy one episode group; reads its seed, recovery flag and actions for the statistics */
static int copy_episode(hid_t src, const char *path, hid_t dst, merge_stats *st, const char *where,
                        char *err) {
  hid_t l = lcpl_intermediate();
  herr_t hr = H5Ocopy(src, path, dst, path, H5P_DEFAULT, l);
  H5Pclose(l);
  if (hr < 0) return sp_errf(err, "%s: cannot copy %s into the dataset", where, path);
  hid_t g = H5Gopen2(src, path, H5P_DEFAULT);
  long seed = 0;
  int rec = 0, n = 0;
  if (g < 0 || attr_read_long(g, "seed", &seed) || attr_read_int(g, "recovery", &rec) ||
      attr_read_int(g, "n_frames", &n) || n < 1) {
    if (g >= 0) H5Gclose(g);
    return sp_errf(err, "%s: %s: missing episode attributes", where, path);
  }
  double *act = malloc(sizeof(double) * (size_t)(n > 1 ? n - 1 : 1) * SP_ACT_DIM);
  hsize_t da[2] = {(hsize_t)(n - 1), SP_ACT_DIM};
  int rc = read_array(g, "actions", SP_H5_F64, 2, da, act, err, where);
  H5Gclose(g);
  if (!rc) stats_add(st, seed, rec, act, n - 1);
  free(act);
  return rc;
}

/* the single episode path of a part file */
static int part_episode_path(hid_t f, char *buf, size_t cap) {
  const char *lv[3];
  char names[3][64];
  char cur[256] = "/episodes";
  for (int k = 0; k < 3; k++) {
    hid_t g = H5Gopen2(f, cur, H5P_DEFAULT);
    if (g < 0) return -1;
    H5G_info_t gi;
    int ok = H5Gget_info(g, &gi) >= 0 && gi.nlinks == 1 &&
             H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, 0, names[k], sizeof names[k], H5P_DEFAULT) > 0;
    H5Gclose(g);
    if (!ok) return -1;
    lv[k] = names[k];
    size_t L = strlen(cur);
    snprintf(cur + L, sizeof cur - L, "/%s", lv[k]);
  }
  snprintf(buf, cap, "%s", cur);
  return 0;
}

int sp_dataset_merge(const char *out, const char *old, const char **parts, int nparts,
                     const sp_dataset_meta *meta, char *err) {
  h5_quiet();
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  merge_stats st;
  memset(&st, 0, sizeof st);
  for (int j = 0; j < SP_ACT_DIM; j++) { st.amin[j] = INFINITY; st.amax[j] = -INFINITY; }
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return sp_errf(err, "%s: cannot create (directory missing or not writable?)", tmp);
  int rc = 0;
  hid_t g = H5Gcreate2(f, "episodes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g >= 0) H5Gclose(g);
  char (*ppath)[128] = calloc((size_t)(nparts ? nparts : 1), sizeof *ppath);
  /* the part files first (they win over old episodes of the same name) */
  for (int i = 0; i < nparts && !rc; i++) {
    hid_t pf;
    if (open_checked(parts[i], PART_FORMAT, &pf, err)) { rc = -1; break; }
    if (part_episode_path(pf, ppath[i], sizeof ppath[i]))
      rc = sp_errf(err, "%s: a part file must hold exactly one episode", parts[i]);
    else
      rc = copy_episode(pf, ppath[i], f, &st, parts[i], err);
    H5Fclose(pf);
  }
  if (!rc && old) {
    sp_dataset *od = sp_dataset_open(old, err);
    if (!od) rc = -1;
    for (int i = 0; !rc && i < od->n; i++) {
      int dup = 0;
      for (int k = 0; k < nparts && !dup; k++) dup = !strcmp(ppath[k], od->eps[i].path);
      if (!dup) rc = copy_episode(od->f, od->eps[i].path, f, &st, old, err);
    }
    sp_dataset_close(od);
  }
  free(ppath);
  if (!rc) {
    if (st.nseed) qsort(st.seeds, (size_t)st.nseed, sizeof(long), cmp_long);
    for (int j = 0; j < SP_ACT_DIM; j++)
      if (st.amin[j] > st.amax[j]) st.amin[j] = st.amax[j] = 0;  // no steps at all
    hsize_t na = SP_ACT_DIM, ns = (hsize_t)st.nseed;
    rc |= write_root_common(f, SP_DATA_FORMAT, meta);
    rc |= attr_doubles(f, "action_min", st.amin, 1, &na);
    rc |= attr_doubles(f, "action_max", st.amax, 1, &na);
    long long *sv = malloc(sizeof(long long) * (size_t)(ns ? ns : 1));
    for (int i = 0; i < st.nseed; i++) sv[i] = st.seeds[i];
    rc |= attr_write(f, "seeds", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &ns, sv);
    free(sv);
    rc |= attr_long(f, "n_episodes", st.n_episodes);
    rc |= attr_long(f, "n_recovery", st.n_recovery);
    rc |= attr_str(f, "eval_seeds_excluded", "0-24");
    if (rc) sp_errf(err, "%s: cannot write the root attributes", tmp);
  }
  free(st.seeds);
  if (H5Fclose(f) < 0 && !rc) rc = sp_errf(err, "%s: closing failed (disk full?)", tmp);
  if (rc) { unlink(tmp); return -1; }
  if (fsync_path(tmp) || rename(tmp, out)) {
    unlink(tmp);
    return sp_errf(err, "%s: cannot move into place: %s", out, strerror(errno));
  }
  fsync_dir_of(out);
  return 0;
}
