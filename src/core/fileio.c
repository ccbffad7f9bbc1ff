#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

char *sp_file_read(const char *path, size_t *len, char *err) {
  FILE *f = fopen(path, "rb");
  if (!f) { sp_errf(err, "%s: cannot open (%s)", path, strerror(errno)); return NULL; }
  if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
    fclose(f);
    sp_errf(err, "%s: not a regular file", path);
    return NULL;
  }
  long n = ftell(f);
  rewind(f);
  char *buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf); fclose(f);
    sp_errf(err, "%s: read failed", path);
    return NULL;
  }
  fclose(f);
  buf[n] = 0;
  if (len) *len = (size_t)n;
  return buf;
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t k = write(fd, p, len);
    if (k < 0) { if (errno == EINTR) continue; return -1; }
    p += k; len -= (size_t)k;
  }
  return 0;
}

int sp_file_write_atomic(const char *path, const void *data, size_t len, char *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return sp_errf(err, "%s: cannot write (%s)", path, strerror(errno));
  if (write_all(fd, data, len) || fsync(fd)) {
    int e = errno;
    close(fd); unlink(tmp);
    return sp_errf(err, "%s: write failed (%s)", path, strerror(e));
  }
  close(fd);
  if (rename(tmp, path)) {
    int e = errno;
    unlink(tmp);
    return sp_errf(err, "%s: cannot rename into place (%s)", path, strerror(e));
  }
  return 0;
}

int sp_file_append(const char *path, const void *data, size_t len, char *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return sp_errf(err, "%s: cannot append (%s)", path, strerror(errno));
  if (write_all(fd, data, len) || fsync(fd)) {
    int e = errno;
    close(fd);
    return sp_errf(err, "%s: append failed (%s)", path, strerror(e));
  }
  close(fd);
  return 0;
}

int sp_mkdir_p(const char *path, char *err) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  size_t n = strlen(buf);
  if (n == 0) return sp_errf(err, "empty directory name");
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == 0) {
      char c = buf[i];
      buf[i] = 0;
      if (mkdir(buf, 0755) && errno != EEXIST)
        return sp_errf(err, "%s: cannot create directory (%s)", buf, strerror(errno));
      buf[i] = c;
    }
  }
  struct stat st;
  if (stat(path, &st) || !S_ISDIR(st.st_mode)) return sp_errf(err, "%s: not a directory", path);
  if (access(path, W_OK)) return sp_errf(err, "%s: directory is not writable", path);
  return 0;
}

int sp_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

unsigned long long sp_hash64(unsigned long long h, const void *data, size_t len) {
  if (h == 0) h = 1469598103934665603ull;
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
