/* config.h: config structs described by a table of fields (redis config.c style).
 *
 * One row per field (key, kind, offset, bounds, enum names, help) drives the bounds check, the
 * printer, the JSON echoed into checkpoints and logs, the JSON read back, and command-line
 * options (`sp train` generates its options from the tables). A module's header exports its
 * table; nothing else spells a field's name. */
#ifndef SP_CORE_CONFIG_H
#define SP_CORE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
  SP_CF_INT = 0,  // int
  SP_CF_FLOAT,    // float
  SP_CF_ENUM,     // int holding an index into names[] (NULL-terminated)
  SP_CF_INTLIST,  // int[maxn] followed by the count in an int at off2
} sp_cf_kind;

typedef struct {
  const char *key;           // JSON key and option name (underscores; the CLI shows dashes)
  sp_cf_kind kind;
  size_t off;                // offsetof(config, field)
  double lo, hi;             // bounds (inclusive), for INT, FLOAT and each INTLIST entry
  const char *const *names;  // ENUM: value names, NULL-terminated
  int maxn;                  // INTLIST: capacity
  size_t off2;               // INTLIST: offsetof(config, count)
  const char *help;
} sp_cf;
/* a table ends with a row whose key is NULL */

/* each field inside its bounds; -1 with "<what>: <key> = <value> outside [lo, hi]" */
int sp_cf_check(const sp_cf *t, const void *cfg, const char *what, char *err);
/* one "key = value" line per field, prefixed by indent */
void sp_cf_print(FILE *f, const sp_cf *t, const void *cfg, const char *indent);
/* compact JSON object of every field (malloc'd; enum values as their names) */
char *sp_cf_to_json(const sp_cf *t, const void *cfg);
/* set the fields present in a JSON object (others keep their values); unknown keys and wrong
 * types are errors naming the key. The result is not bounds-checked: call sp_cf_check. */
int sp_cf_from_json(const sp_cf *t, void *cfg, const char *json, char *err);
/* 0 when equal; -1 with err naming the first differing field and both values */
int sp_cf_diff(const sp_cf *t, const void *a, const void *b, const char *what, char *err);
/* set one field from text (an option value): "12", "0.5", an enum name, "1,2,4" */
int sp_cf_set(const sp_cf *t, void *cfg, const char *key, const char *value, char *err);
const sp_cf *sp_cf_find(const sp_cf *t, const char *key);  // NULL when absent
/* one field's value as text, the form sp_cf_set reads */
void sp_cf_format(const sp_cf *f, const void *cfg, char *buf, size_t cap);

#endif
