/* fileio.h: whole-file reads, atomic writes, directories. */
#ifndef SP_CORE_FILEIO_H
#define SP_CORE_FILEIO_H

#include <stddef.h>

/* read a whole file, NUL-terminated; *len excludes the NUL. Returns NULL with err. */
char *sp_file_read(const char *path, size_t *len, char *err);
/* write PATH.tmp, fsync, rename over PATH */
int sp_file_write_atomic(const char *path, const void *data, size_t len, char *err);
/* append one line (or block) with a single write(2) under O_APPEND, then fsync */
int sp_file_append(const char *path, const void *data, size_t len, char *err);
/* mkdir -p, and check the directory is writable */
int sp_mkdir_p(const char *path, char *err);
int sp_file_exists(const char *path);
/* 64-bit FNV-1a hash of a byte range, continuing from h (start with 0) */
unsigned long long sp_hash64(unsigned long long h, const void *data, size_t len);

#endif
