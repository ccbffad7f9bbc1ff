/* tests of src/eval: seed lists, bit-identical reruns across --jobs, single-episode replay,
 * resume after an interruption (a torn record and a real kill -9), shards and merge. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "skip_note.h"
#include "core/fileio.h"
#include "core/log.h"
#include "eval/eval.h"

static const char *assets_dir(void) {
  const char *e = getenv("SP_METAWORLD_ASSETS");
  return e && *e ? e : "../shared/metaworld/assets_v2";
}

/* built-in scenes when compiled in, else the Meta-World assets, else skip */
static int pick_source(sp_scene_source *src) {
  char err[SP_ERRLEN];
  sp_env_model *em = sp_env_model_load(SP_TASK_BUTTON_PRESS, SP_SCENES_BUILTIN, NULL, err);
  if (em) { sp_env_model_free(em); *src = SP_SCENES_BUILTIN; return 1; }
  em = sp_env_model_load(SP_TASK_BUTTON_PRESS, SP_SCENES_METAWORLD, assets_dir(), err);
  if (em) { sp_env_model_free(em); *src = SP_SCENES_METAWORLD; return 1; }
  return 0;
}

#define NEED_SCENES(src)                                                              \
  sp_scene_source src;                                                                \
  do {                                                                                \
    if (!pick_source(&src)) {                                                         \
      SP_SKIP_NOTE("neither built-in scenes nor Meta-World assets available"); \
      cr_skip_test("no scenes");                                                      \
    }                                                                                 \
  } while (0)

static void small_config(sp_eval_config *c, sp_scene_source src, const char *out, long *seeds, int nseed) {
  sp_eval_config_default(c);
  c->ntask = 3;
  c->tasks[0] = SP_TASK_BUTTON_PRESS;
  c->tasks[1] = SP_TASK_DOOR_CLOSE;
  c->tasks[2] = SP_TASK_HANDLE_PRESS;
  c->ncam = 2;
  c->cams[0] = 0;
  c->cams[1] = 2;
  c->seeds = seeds;
  c->nseed = nseed;
  c->out_dir = out;
  c->source = src;
  c->assets = assets_dir();
}

/* per-process scratch directories: several test runs may share the machine */
static const char *T(const char *name) {
  static char bufs[16][256];
  static int k;
  char *b = bufs[k++ % 16];
  snprintf(b, 256, "/tmp/sp_test_eval_%d_%s", (int)getpid(), name);
  return b;
}

static void fresh_dir(const char *d) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  cr_assert_eq(system(cmd), 0);
}

/* the records of a run, timing removed, sorted: the part that must be bit-identical */
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *canonical_records(const char *dir) {
  char path[512], err[SP_ERRLEN];
  snprintf(path, sizeof path, "%s/episodes.jsonl", dir);
  char *s = sp_file_read(path, NULL, err);
  cr_assert(s, "%s", err);
  char *lines[4096];
  int n = 0;
  for (char *save = NULL, *l = strtok_r(s, "\n", &save); l && n < 4096; l = strtok_r(NULL, "\n", &save)) {
    cJSON *o = cJSON_Parse(l);
    cr_assert(o, "unparsable record: %s", l);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "time");
    lines[n++] = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
  }
  free(s);
  qsort(lines, (size_t)n, sizeof *lines, cmp_str);
  size_t tot = 1;
  for (int i = 0; i < n; i++) tot += strlen(lines[i]) + 1;
  char *out = malloc(tot);
  out[0] = 0;
  for (int i = 0; i < n; i++) { strcat(out, lines[i]); strcat(out, "\n"); free(lines[i]); }
  return out;
}

static char *read_text(const char *dir, const char *name) {
  char path[512], err[SP_ERRLEN];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *s = sp_file_read(path, NULL, err);
  cr_assert(s, "%s", err);
  return s;
}

/* results.json without its timing summary (the only part allowed to differ) */
static char *results_without_timing(const char *dir) {
  char *s = read_text(dir, "results.json");
  cJSON *o = cJSON_Parse(s);
  free(s);
  cr_assert(o);
  cJSON_DeleteItemFromObjectCaseSensitive(o, "timing_seconds");
  char *r = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return r;
}

Test(eval_seeds, parse) {
  long *v;
  char err[SP_ERRLEN];
  cr_assert_eq(sp_parse_seeds("0-24", &v, err), 25);
  cr_expect_eq(v[0], 0);
  cr_expect_eq(v[24], 24);
  free(v);
  cr_assert_eq(sp_parse_seeds("3,7-9,1000", &v, err), 5);
  cr_expect_eq(v[1], 7);
  cr_expect_eq(v[4], 1000);
  free(v);
  const char *bad[] = {"", "a", "5-3", "1,,2", "1,", "-1", "1-2-3", "2,2", "0-99999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(sp_parse_seeds(bad[i], &v, err), -1, "'%s' accepted", bad[i]);
}

Test(eval_trust, jobs1_equals_jobs2_and_single_episode_replays, .timeout = 300) {
  NEED_SCENES(src);
  long seeds[3] = {0, 1, 7};
  char err[SP_ERRLEN];
  sp_eval_config c;
  fresh_dir(T("j1"));
  fresh_dir(T("j2"));
  small_config(&c, src, T("j1"), seeds, 3);
  c.jobs = 1;
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  small_config(&c, src, T("j2"), seeds, 3);
  c.jobs = 2;
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  char *a = canonical_records(T("j1")), *b = canonical_records(T("j2"));
  cr_expect_str_eq(a, b, "records differ between --jobs 1 and --jobs 2");
  char *ma = read_text(T("j1"), "results.md"), *mb = read_text(T("j2"), "results.md");
  cr_expect_str_eq(ma, mb);
  char *ra = results_without_timing(T("j1")), *rb = results_without_timing(T("j2"));
  cr_expect_str_eq(ra, rb);
  /* one episode alone reproduces its record from the full run */
  long one[1] = {7};
  fresh_dir(T("one"));
  small_config(&c, src, T("one"), one, 1);
  c.ntask = 1;
  c.tasks[0] = SP_TASK_DOOR_CLOSE;
  c.ncam = 1;
  c.cams[0] = 2;
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  char *single = canonical_records(T("one"));
  cr_expect(strstr(a, single) != NULL, "single-episode record not found in the full run:\n%s", single);
  free(a); free(b); free(ma); free(mb); free(ra); free(rb); free(single);
}

Test(eval_trust, resume_after_torn_record_equals_uninterrupted, .timeout = 300) {
  NEED_SCENES(src);
  long seeds[4] = {0, 1, 2, 3};
  char err[SP_ERRLEN];
  sp_eval_config c;
  fresh_dir(T("full"));
  small_config(&c, src, T("full"), seeds, 4);
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  /* an interrupted run: its config, 5 finished records and half of the 6th (kill -9 mid-write) */
  fresh_dir(T("cut"));
  char sh[2048];
  const char *full = T("full"), *cut = T("cut");
  snprintf(sh, sizeof sh, "mkdir -p %s && cp %s/config.json %s/ && head -n 5 %s/episodes.jsonl > %s/episodes.jsonl && "
           "sed -n 6p %s/episodes.jsonl | head -c 60 >> %s/episodes.jsonl", cut, full, cut, full, cut, full, cut);
  cr_assert_eq(system(sh), 0);
  small_config(&c, src, T("cut"), seeds, 4);
  /* without --resume the directory is refused, and nothing in it is lost */
  cr_expect_eq(sp_eval_run(&c, err), -1);
  cr_expect(strstr(err, "--resume") != NULL, "%s", err);
  c.resume = 1;
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  char *a = canonical_records(T("full")), *b = canonical_records(T("cut"));
  cr_expect_str_eq(a, b);
  char *ra = results_without_timing(T("full")), *rb = results_without_timing(T("cut"));
  cr_expect_str_eq(ra, rb);
  /* resuming with another configuration is refused */
  long other[2] = {0, 5};
  small_config(&c, src, T("cut"), other, 2);
  c.resume = 1;
  cr_expect_eq(sp_eval_run(&c, err), -1);
  cr_expect(strstr(err, "different configuration") != NULL, "%s", err);
  free(a); free(b); free(ra); free(rb);
}

/* the real thing: the sp command killed with SIGKILL part-way, then --resume */
Test(eval_trust, kill9_then_resume, .timeout = 300) {
  NEED_SCENES(src);
  const char *spbin = getenv("SP_BIN") ? getenv("SP_BIN") : "build/sp";
  if (!sp_file_exists(spbin)) cr_skip_test("%s not built", spbin);
  const char *scn = src == SP_SCENES_BUILTIN ? "--scenes builtin" : "--scenes metaworld --assets";
  char base[1024];
  snprintf(base, sizeof base, "%s eval --agent expert --tasks button-press,door-close "
           "--cameras corner --seeds 0-19 --jobs 1 %s %s", spbin, scn,
           src == SP_SCENES_BUILTIN ? "" : assets_dir());
  char kfull[256], kdir[256], kp[300];
  snprintf(kfull, sizeof kfull, "%s", T("k_full"));  /* names fixed before fork (T uses the pid) */
  snprintf(kdir, sizeof kdir, "%s", T("k"));
  snprintf(kp, sizeof kp, "%s/episodes.jsonl", kdir);
  fresh_dir(kfull);
  fresh_dir(kdir);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s --out %s > /dev/null 2>&1", base, kfull);
  cr_assert_eq(system(cmd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    snprintf(cmd, sizeof cmd, "exec %s --out %s > /dev/null 2>&1", base, kdir);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  /* wait for a few records (at most about 60 s: a loaded machine starts slowly), then kill -9 */
  int killed = 0;
  for (int i = 0; i < 30000; i++) {
    FILE *f = fopen(kp, "r");
    int lines = 0, ch;
    if (f) { while ((ch = fgetc(f)) != EOF) lines += ch == '\n'; fclose(f); }
    if (lines >= 3) { kill(pid, SIGKILL); killed = 1; break; }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) { pid = -1; break; }
    usleep(2000);
  }
  if (pid > 0) waitpid(pid, NULL, 0);
  cr_expect(killed, "the run finished before it could be killed");
  snprintf(cmd, sizeof cmd, "%s --out %s --resume > /dev/null 2>&1", base, kdir);
  cr_assert_eq(system(cmd), 0);
  char *a = canonical_records(kfull), *b = canonical_records(kdir);
  cr_expect_str_eq(a, b);
  char *ma = read_text(kfull, "results.md"), *mb = read_text(kdir, "results.md");
  cr_expect_str_eq(ma, mb);
  free(a); free(b); free(ma); free(mb);
}

Test(eval_trust, shards_merge_to_the_single_run, .timeout = 300) {
  NEED_SCENES(src);
  long seeds[3] = {0, 1, 2};
  char err[SP_ERRLEN];
  sp_eval_config c;
  fresh_dir(T("s"));
  fresh_dir(T("s0"));
  fresh_dir(T("s1"));
  fresh_dir(T("m"));
  small_config(&c, src, T("s"), seeds, 3);
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  for (int i = 0; i < 2; i++) {
    small_config(&c, src, i ? T("s1") : T("s0"), seeds, 3);
    c.shard_i = i;
    c.shard_n = 2;
    cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  }
  const char *dirs[2] = {T("s0"), T("s1")};
  /* one shard alone is incomplete but merges; both give the single run's table */
  cr_assert_eq(sp_eval_merge(dirs, 2, T("m"), err), 0, "%s", err);
  char *a = canonical_records(T("s")), *b = canonical_records(T("m"));
  cr_expect_str_eq(a, b);
  char *ra = results_without_timing(T("s")), *rb = results_without_timing(T("m"));
  cr_expect_str_eq(ra, rb);
  char *ma = read_text(T("s"), "results.md"), *mb = read_text(T("m"), "results.md");
  cr_expect_str_eq(ma, mb);
  /* shards of a different configuration are refused */
  long other[3] = {0, 1, 5};
  fresh_dir(T("x"));
  small_config(&c, src, T("x"), other, 3);
  c.shard_i = 1;
  c.shard_n = 2;
  cr_assert_eq(sp_eval_run(&c, err), 0, "%s", err);
  const char *bad[2] = {T("s0"), T("x")};
  cr_expect_eq(sp_eval_merge(bad, 2, T("m2"), err), -1);
  cr_expect(strstr(err, "refusing") != NULL, "%s", err);
  free(a); free(b); free(ra); free(rb); free(ma); free(mb);
}

/* one run per output directory: a second sp eval on a directory another one is writing is refused
 * (two runs would append every episode twice) */
Test(eval_trust, a_second_run_on_a_busy_directory_is_refused, .timeout = 120) {
  const char *spbin = getenv("SP_BIN") ? getenv("SP_BIN") : "build/sp";
  if (!sp_file_exists(spbin)) cr_skip_test("%s not built", spbin);
  char dir[256], cmd[2048];
  snprintf(dir, sizeof dir, "/tmp/sp_test_evallock_%d", (int)getpid());
  fresh_dir(dir);
  snprintf(cmd, sizeof cmd,
           "%s eval --agent expert --tasks all --cameras corner,corner2,corner3 --seeds 0-24 --jobs 1 --scenes builtin "
           "--out %s > /dev/null 2>&1 & pid=$!; sleep 1; "
           "%s eval --agent expert --tasks all --cameras corner,corner2,corner3 --seeds 0-24 --scenes builtin --resume "
           "--out %s > %s.err 2>&1; rc=$?; kill $pid; wait $pid; test $rc = 1 && grep -q 'another sp eval is running' %s.err",
           spbin, dir, spbin, dir, dir, dir);
  int rc = system(cmd);
  cr_expect(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the second run was not refused (%s.err)", dir);
  char e[300];
  snprintf(e, sizeof e, "%s.err", dir);
  unlink(e);
}
