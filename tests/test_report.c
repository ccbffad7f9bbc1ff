/* tests of `sp report` through the built binary ($SP_BIN or build/sp): the page from two small
 * evaluation runs (one with GIFs and a failure marked) and a training log holds its tables,
 * charts and embedded thumbnails and fetches nothing from the network; headless Chromium (Debian's
 * `chromium`, installed by scripts/install-deps.sh; skipped with a note where it is absent) finds
 * the tables in the DOM and renders a screenshot that is not blank. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "skip_note.h"

#define DIR "/tmp/sp_test_report"

static const char *spbin(void) {
  const char *b = getenv("SP_BIN");
  return b && *b ? b : "build/sp";
}

/* run a shell command, capture stdout+stderr (up to cap); returns the exit status */
static int run(const char *cmd, char *out, size_t cap) {
  char full[4096];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  cr_assert(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  while (fgetc(p) != EOF) {}
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

/* two runs (built-in scenes): A with GIFs of seed 0, one episode marked failed; B without GIFs,
 * three tasks; a training log with loss and validation lines; then the page */
static void make_page(const char *d, const char *page) {
  if (!sp_file_exists(spbin())) cr_skip_test("%s not built", spbin());
  char cmd[2048], out[8192], p[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s/train", d, d);
  cr_assert_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s eval --agent expert --tasks door-open,button-press --cameras corner,corner2 "
           "--seeds 0-1 --gif --gif-seeds 0 --render fast --scenes builtin --out %s/a", spbin(), d);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  snprintf(cmd, sizeof cmd, "%s eval --agent expert --tasks door-open,button-press,shelf-place --cameras corner "
           "--seeds 0-2 --scenes builtin --out %s/b", spbin(), d);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  /* door-open corner seed 0 (the first record) shown as a failure */
  snprintf(cmd, sizeof cmd, "sed -i '0,/\"success\":[[:space:]]*true/s//\"success\": false/' %s/a/results.json", d);
  cr_assert_eq(system(cmd), 0);
  snprintf(p, sizeof p, "%s/train/train.jsonl", d);
  FILE *f = fopen(p, "w");
  cr_assert(f);
  for (int s = 50; s <= 500; s += 50)
    fprintf(f, "{\"step\":%d,\"loss\":%g,\"loss_avg\":%g,\"lr\":1e-4,\"grad_norm\":0.1,\"steps_per_s\":1}\n", s,
            1.0 / s, 1.2 / s);
  fprintf(f, "{\"step\":250,\"metric\":21.5,\"val\":{\"psnr\":21.5,\"ssim\":0.71},\"val_s\":3.0}\n");
  fprintf(f, "{\"step\":500,\"metric\":23.0,\"val\":{\"psnr\":23.0,\"ssim\":0.78},\"val_s\":3.0}\n");
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s report %s/a %s/b --train-log %s/train --labels 'expert A,expert B' "
           "--title 'sp test report' --out %s", spbin(), d, d, d, page);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
}

Test(report, page_holds_tables_charts_and_thumbnails, .timeout = 300) {
  const char *page = DIR "/p1/report.html";
  make_page(DIR "/p1", page);
  char err[SP_ERRLEN];
  char *html = sp_file_read(page, NULL, err);
  cr_assert(html, "%s", err);
  const char *want[] = {
      "<table id=\"table1\">", "SP-R (paper)", "98.6%", "expert A", "expert B", "<table id=\"cameras\">",
      "<table id=\"levels\">", "GR&amp;ER", "Very Hard", "<table id=\"counts\">", "id=\"time-chart\"",
      "<table class=\"gifs\" id=\"gifs-0\">", "data:image/gif;base64,R0lGOD", "class=\"fail\"", "FAILED",
      "training loss", "validation: psnr", "validation: ssim", "none (no VLM)",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_expect(strstr(html, want[i]) != NULL, "the page lacks '%s'", want[i]);
  /* 2 x 2 thumbnails of run A (seed 0), none for run B */
  cr_expect_eq(count(html, "data:image/gif;base64,"), 4);
  cr_expect(strstr(html, "id=\"gifs-1\"") == NULL);
  /* run A: 8 episodes, 7 successes after the edit; B: 9 of 9 */
  cr_expect(strstr(html, "7/8</span>") != NULL, "run A's overall");
  cr_expect(strstr(html, "9/9</span>") != NULL, "run B's overall");
  /* nothing is fetched: no external src/href */
  cr_expect(strstr(html, "src=\"http") == NULL && strstr(html, "href=\"http") == NULL &&
            strstr(html, "url(http") == NULL, "the page refers to the network");
  free(html);
}

Test(report, bad_input) {
  if (!sp_file_exists(spbin())) cr_skip_test("%s not built", spbin());
  char cmd[1024], out[4096];
  snprintf(cmd, sizeof cmd, "%s report --out /tmp/sp_test_report_x.html", spbin());
  cr_expect_eq(run(cmd, out, sizeof out), 2, "%s", out);
  cr_expect(strstr(out, "no run directories") != NULL, "%s", out);
  snprintf(cmd, sizeof cmd, "%s report /nonexistent/run --out /tmp/sp_test_report_x.html", spbin());
  cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
  cr_expect(strstr(out, "/nonexistent/run: no results.json") != NULL, "%s", out);
  cr_expect(!sp_file_exists("/tmp/sp_test_report_x.html"));
  snprintf(cmd, sizeof cmd, "%s report /tmp --train-log /nonexistent/log --out /tmp/sp_test_report_x.html", spbin());
  cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
  snprintf(cmd, sizeof cmd, "%s report /tmp --gif-step 0 --out /tmp/sp_test_report_x.html", spbin());
  cr_expect_eq(run(cmd, out, sizeof out), 2, "%s", out);
}

static const char *chromium(void) {
  static const char *names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (access(names[i], X_OK) == 0) return names[i];
  return NULL;
}

Test(report, chromium_finds_the_tables_and_renders_the_page, .timeout = 300) {
  const char *chr = chromium();
  if (!chr) {
    SP_SKIP_NOTE("chromium not installed (scripts/install-deps.sh installs it); the report page is not rendered");
    cr_skip_test("no chromium");
  }
  const char *page = DIR "/p2/report.html";
  make_page(DIR "/p2", page);
  const char *flags = "--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
                      "--user-data-dir=" DIR "/p2/chromium-profile --hide-scrollbars";
  static char dom[1 << 22];
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "timeout 120 %s %s --dump-dom file://%s 2>/dev/null", chr, flags, page);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  size_t n = fread(dom, 1, sizeof dom - 1, p);
  dom[n] = 0;
  while (fgetc(p) != EOF) {}
  int st = pclose(p);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chromium --dump-dom failed (status %d)", st);
  const char *ids[] = {"id=\"table1\"", "id=\"cameras\"", "id=\"levels\"", "id=\"counts\"", "id=\"timing\"", "id=\"gifs-0\""};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    cr_expect(strstr(dom, ids[i]) != NULL, "the DOM lacks the table %s", ids[i]);
  /* Table 1: a header row, 6 paper rows, 2 runs */
  const char *t1 = strstr(dom, "id=\"table1\""), *t1end = t1 ? strstr(t1, "</table>") : NULL;
  int rows = 0;
  for (const char *q = t1; q && q < t1end && (q = strstr(q, "<tr")) && q < t1end; q += 3) rows++;
  cr_expect_eq(rows, 9, "Table 1 has %d rows in the DOM", rows);
  cr_expect_eq(count(dom, "<img"), 4, "the DOM holds %d thumbnails", count(dom, "<img"));

  const char *shot = DIR "/p2/shot.png";
  unlink(shot);
  snprintf(cmd, sizeof cmd, "timeout 120 %s %s --window-size=1280,1800 --screenshot=%s file://%s > /dev/null 2>&1",
           chr, flags, shot, page);
  cr_assert_eq(system(cmd), 0, "chromium --screenshot failed");
  char err[SP_ERRLEN];
  sp_image im;
  cr_assert_eq(sp_png_read(shot, 1, &im, err), 0, "%s", err);
  cr_expect(im.w == 1280 && im.h == 1800, "screenshot %dx%d", im.w, im.h);
  /* not blank: many pixels that are not the white background, and a spread of grey levels */
  long dark = 0, hist[256] = {0};
  for (int i = 0; i < im.w * im.h; i++) {
    dark += im.px[i] < 200;
    hist[im.px[i]]++;
  }
  int levels = 0;
  for (int v = 0; v < 256; v++) levels += hist[v] > 50;
  cr_expect(dark > (long)im.w * im.h / 100, "only %ld of %d pixels are not near white", dark, im.w * im.h);
  cr_expect(levels > 30, "only %d grey levels in the screenshot", levels);
  sp_image_free(&im);
}
