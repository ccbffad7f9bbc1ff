#!/usr/bin/python3
"""match_fixtures.py: reference fixtures for src/match, from OpenCV and scikit-image.

Writes tests/fixtures/match/:
  <case>_a.png, <case>_b.png   8-bit gray frame pair
  <case>_flow.f32              cv2.calcOpticalFlowFarneback(a, b, ...) raw little-endian float32 (h x w x 2)
  cases.txt                    one line per case: name w h pyr_scale levels winsize iterations poly_n
                               poly_sigma flags ssim dx dy   (ssim: skimage structural_similarity with
                               Wang's settings; dx dy: the known translation, nan when none)

Cases (all synthetic, deterministic from the seed):
  shift   128x128 smooth random texture translated by a known sub-pixel (2.5, -1.5), tutorial params
  scene   128x128 rendered-looking table-top (shaded table, objects, a gripper that moves and pushes
          a block), 4x supersampled; OpenCV tutorial params
  gauss   64x64 textured frame rotated 3 degrees and scaled 1.03, Gaussian window, poly_n 7
  big     96x96 texture translated by (6.25, 4.0): needs the pyramid; levels 2, winsize 13
  rect    non-square 112x64 crop of the scene pair (rows and columns must not be swapped anywhere)
  render  a benchmark render: door-open, corner camera, seed 0, after 10 and 20 expert steps, 128x128
          (`sp render` with the built-in scenes; RGB -> gray with cv2.cvtColor); tutorial params
Run with Debian's python3 (python3-opencv, python3-skimage):  /usr/bin/python3 tools/match_fixtures.py
[--sp build/sp]. Without a working `sp render` the render case keeps its committed PNGs.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np
from skimage.metrics import structural_similarity

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "match")


def texture(w, h, dx, dy, rng_seed, nblob=60):
    """smooth random texture evaluated at (x - dx, y - dy): an exact sub-pixel translation"""
    rng = np.random.RandomState(rng_seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x = x - dx
    y = y - dy
    f = np.full((h, w), 110.0)
    for _ in range(nblob):
        cx, cy = rng.uniform(-10, w + 10), rng.uniform(-10, h + 10)
        s = rng.uniform(2.5, 9.0)
        a = rng.uniform(-90, 90)
        f += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    for _ in range(4):
        kx, ky = rng.uniform(-0.25, 0.25, size=2)
        f += rng.uniform(5, 20) * np.sin(kx * x + ky * y + rng.uniform(0, 6.28))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def scene(w, h, t, ss=4):
    """a table-top at time t (0 or 1): shaded table with grain, a bowl, a block pushed by a gripper"""
    W, H = w * ss, h * ss
    y, x = np.mgrid[0:H, 0:W].astype(np.float64) / ss
    rng = np.random.RandomState(7)
    img = 150 + 40 * (y / h) - 15 * (x / w)                       # light falloff over the table
    for _ in range(6):                                           # wood grain
        k = rng.uniform(0.2, 0.6)
        img += rng.uniform(2, 6) * np.sin(k * y + 0.05 * x + rng.uniform(0, 6.28))
    # bowl (static): dark ring with shading
    r = np.hypot(x - 35, y - 85)
    img = np.where(r < 16, 70 + 2.0 * r, img)
    img = np.where(r < 9, 120 - 3.0 * r, img)
    # block (pushed 2.0 px right, 0.5 px down between t=0 and t=1) with a lit top face
    bx, by = 70 + 2.0 * t, 70 + 0.5 * t
    inb = (x > bx) & (x < bx + 18) & (y > by) & (y < by + 14)
    img = np.where(inb, 200 - 1.5 * (y - by) + 0.8 * (x - bx), img)
    # gripper (moves 3 px right, 2 px down): two fingers and a palm, dark metal
    gx, gy = 62 + 3.0 * t, 28 + 2.0 * t
    palm = (x > gx) & (x < gx + 30) & (y > gy) & (y < gy + 8)
    f1 = (x > gx) & (x < gx + 6) & (y >= gy + 8) & (y < gy + 30)
    f2 = (x > gx + 24) & (x < gx + 30) & (y >= gy + 8) & (y < gy + 30)
    grip = palm | f1 | f2
    img = np.where(grip, 45 + 25 * np.sin((x - gx) * 0.3) ** 2, img)
    img = np.clip(img, 0, 255)
    img = img.reshape(h, ss, w, ss).mean(axis=(1, 3))           # antialias
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def warp(img, angle_deg, scale):
    h, w = img.shape
    M = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle_deg, scale)
    return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def render_pair(sp):
    """door-open / corner / seed 0 after 10 and 20 expert steps, gray; None when sp cannot render"""
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (10, 20):
            path = os.path.join(tmp, "r%d.png" % steps)
            cmd = [sp, "render", "--task", "door-open", "--camera", "corner", "--seed", "0", "--steps",
                   str(steps), "--width", "128", "--height", "128", "--out", path]
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                return None
            frames.append(cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY))
    return frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sp", default="build/sp")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    tut = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    cases = []
    a = texture(128, 128, 0, 0, 1)
    b = texture(128, 128, 2.5, -1.5, 1)
    cases.append(("shift", a, b, tut, (2.5, -1.5)))
    cases.append(("scene", scene(128, 128, 0), scene(128, 128, 1), tut, None))
    g = texture(64, 64, 0, 0, 2, nblob=25)
    cases.append(("gauss", g, warp(g, 3.0, 1.03),
                  dict(pyr_scale=0.5, levels=3, winsize=11, iterations=4, poly_n=7, poly_sigma=1.5,
                       flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN), None))
    cases.append(("big", texture(96, 96, 0, 0, 3, nblob=45), texture(96, 96, 6.25, 4.0, 3, nblob=45),
                  dict(pyr_scale=0.5, levels=2, winsize=13, iterations=3, poly_n=5, poly_sigma=1.1,
                       flags=0), (6.25, 4.0)))
    sa, sb = scene(128, 128, 0), scene(128, 128, 1)
    cases.append(("rect", np.ascontiguousarray(sa[10:74, 8:120]), np.ascontiguousarray(sb[10:74, 8:120]),
                  dict(pyr_scale=0.5, levels=3, winsize=9, iterations=3, poly_n=5, poly_sigma=1.1,
                       flags=0), None))
    rp = render_pair(args.sp)
    if rp is None:
        rp = [cv2.imread(os.path.join(OUT, "render_%s.png" % ab), cv2.IMREAD_GRAYSCALE) for ab in "ab"]
        if rp[0] is None or rp[1] is None:
            raise SystemExit("cannot render the render case (build sp first) and no committed PNGs")
        print("render: sp render unavailable, using the committed PNGs", file=sys.stderr)
    cases.append(("render", rp[0], rp[1], tut, None))
    lines = []
    for name, a, b, p, shift in cases:
        flow = cv2.calcOpticalFlowFarneback(a, b, None, p["pyr_scale"], p["levels"], p["winsize"],
                                            p["iterations"], p["poly_n"], p["poly_sigma"], p["flags"])
        ssim = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
        cv2.imwrite(os.path.join(OUT, name + "_a.png"), a)
        cv2.imwrite(os.path.join(OUT, name + "_b.png"), b)
        flow.astype("<f4").tofile(os.path.join(OUT, name + "_flow.f32"))
        h, w = a.shape
        dx, dy = shift if shift else (float("nan"), float("nan"))
        lines.append("%s %d %d %g %d %d %d %d %g %d %.9f %g %g" % (
            name, w, h, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"],
            p["poly_sigma"], p["flags"], ssim, dx, dy))
        mag = np.hypot(flow[..., 0], flow[..., 1])
        print("%-6s %dx%d ssim %.6f flow median (%.3f, %.3f) max |f| %.2f" % (
            name, w, h, ssim, np.median(flow[..., 0]), np.median(flow[..., 1]), mag.max()),
            file=sys.stderr)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# name w h pyr_scale levels winsize iterations poly_n poly_sigma flags ssim dx dy\n")
        f.write("# written by tools/match_fixtures.py with OpenCV %s\n" % cv2.__version__)
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
