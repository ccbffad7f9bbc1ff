/* tests of scripts/get-metaworld-assets.sh that need no network: its manifest against the
 * reference copy of Meta-World 04be337a (../shared/metaworld/assets_v2 or $SP_METAWORLD_ASSETS;
 * skipped with a note where it is absent), a damaged copy named file by file, and its usage
 * errors. The download itself (PyPI's 3.0.0 wheel, restored to 04be337a) is checked by hand:
 * see the README. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/fileio.h"
#include "skip_note.h"

#define SCRIPT "scripts/get-metaworld-assets.sh"

static const char *assets_dir(void) {
  const char *e = getenv("SP_METAWORLD_ASSETS");
  return e && *e ? e : "../shared/metaworld/assets_v2";
}

static int have_assets(void) {
  char p[1024];
  snprintf(p, sizeof p, "%s/sawyer_xyz/sawyer_door_pull.xml", assets_dir());
  return sp_file_exists(p);
}

/* run a shell command, capture stdout and stderr together; returns the exit status */
static int run(const char *cmd, char *out, size_t cap) {
  char full[4096];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  cr_assert(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* the reference copy matches the manifest, but for the one file it holds as a stand-in
 * (textures/wood1.png, see ../shared/metaworld/README.md); a copy made by the script matches whole */
Test(assets_script, manifest_matches_the_reference_copy, .timeout = 60) {
  if (!have_assets()) {
    SP_SKIP_NOTE("Meta-World assets not found at %s (" SP_ASSETS_HINT ")", assets_dir());
    cr_skip_test("Meta-World assets absent");
  }
  char cmd[2048], out[8192];
  snprintf(cmd, sizeof cmd, "bash " SCRIPT " --check '%s'", assets_dir());
  int rc = run(cmd, out, sizeof out);
  if (rc == 0) {
    cr_expect(strstr(out, "85 of 85 files match") != NULL, "%s", out);
  } else {
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "differs   textures/wood1.png\n") != NULL, "%s", out);
    cr_expect(strstr(out, "84 of 85 files match") != NULL, "only the stand-in may differ: %s", out);
  }
}

Test(assets_script, check_names_each_damaged_or_missing_file, .timeout = 60) {
  if (!have_assets()) {
    SP_SKIP_NOTE("Meta-World assets not found at %s (" SP_ASSETS_HINT ")", assets_dir());
    cr_skip_test("Meta-World assets absent");
  }
  const char *d = "/tmp/sp_test_assets_script";
  char cmd[4096], out[8192];
  snprintf(cmd, sizeof cmd,
           "rm -rf %s && cp -r '%s' %s && chmod -R u+w %s && "
           "echo ' ' >> %s/objects/assets/shelf_dependencies.xml && "
           "rm %s/scene/basic_scene.xml",
           d, assets_dir(), d, d, d, d);
  cr_assert_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "bash " SCRIPT " --check %s", d);
  int rc = run(cmd, out, sizeof out);
  cr_expect_eq(rc, 1, "%s", out);
  cr_expect(strstr(out, "differs   objects/assets/shelf_dependencies.xml\n") != NULL, "%s", out);
  cr_expect(strstr(out, "missing   scene/basic_scene.xml\n") != NULL, "%s", out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  system(cmd);
}

Test(assets_script, usage_errors) {
  char out[4096];
  cr_expect_eq(run("bash " SCRIPT " --check", out, sizeof out), 2, "%s", out);
  cr_expect_eq(run("bash " SCRIPT " a b", out, sizeof out), 2, "%s", out);
  int rc = run("bash " SCRIPT " --check /nonexistent/sp_assets", out, sizeof out);
  cr_expect_eq(rc, 1, "%s", out);
  cr_expect(strstr(out, "/nonexistent/sp_assets: no such directory") != NULL, "%s", out);
  /* a directory that exists but does not match is refused, not overwritten */
  system("rm -rf /tmp/sp_test_assets_dest && mkdir -p /tmp/sp_test_assets_dest/assets_v2 && "
         "echo keep > /tmp/sp_test_assets_dest/assets_v2/mine.txt");
  rc = run("SP_METAWORLD_WHEEL=/nonexistent.whl bash " SCRIPT " /tmp/sp_test_assets_dest", out, sizeof out);
  cr_expect_eq(rc, 1, "%s", out);
  cr_expect(strstr(out, "does not match the manifest") != NULL, "%s", out);
  cr_expect(sp_file_exists("/tmp/sp_test_assets_dest/assets_v2/mine.txt"));
  system("rm -rf /tmp/sp_test_assets_dest");
}
