#!/usr/bin/python3
"""match_calibrate.py: how the composite score falls with the distance between the observation and
the goal frame, to choose the match threshold (the paper's value was lost in extraction).

A synthetic table-top (tools/match_fixtures.py's scene) where the gripper moves along a straight
line. Goal frames ("imagined" video frames) are the scene at gripper offsets 0, 8, 16, ... px,
degraded like a generated frame (Gaussian blur sigma 0.8 and noise sigma 3). Observations are crisp
renders at every offset. For each goal and each observation within 12 px, `sp match` scores the
pair; the table prints the mean and min/max of each component by distance.

    /usr/bin/python3 tools/match_calibrate.py [--sp build/sp] [--sift-octave N]

With --render TASK[:CAMERA] (repeatable) the frames are benchmark renders instead (`sp render`,
built-in scenes, 128x128, seed 0): goals after 0, 10, 20, 30 expert steps (degraded the same way),
observations every 2 steps; distance is then counted in expert steps.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from match_fixtures import scene  # noqa: E402


def frame(offset, w=128, h=128):
    """the scene with the gripper shifted by offset px along (0.8, 0.6); t maps offset to motion"""
    # scene(t) moves the gripper by (3 t, 2 t) and the block by (2 t, 0.5 t); use t = offset / 3.6
    return scene(w, h, offset / 3.6)


def imagined(img, rng):
    g = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.8)
    g += rng.normal(0, 3.0, g.shape)
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def score(sp, a, b, extra):
    out = subprocess.run([sp, "match", a, b, "--no-config"] + extra, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("sp match failed: " + out.stderr)
    vals = {}
    for key in ("shape", "block", "ssim", "flow", "composite"):
        m = re.search(r"^%s\s+([-0-9.]+)" % key, out.stdout, re.M)
        vals[key] = float(m.group(1))
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sp", default="build/sp")
    ap.add_argument("--sift-octave", type=int, default=None)
    ap.add_argument("--render", action="append", default=[])
    args = ap.parse_args()
    extra = [] if args.sift_octave is None else ["--sift-octave", str(args.sift_octave)]
    rng = np.random.RandomState(0)
    tmp = tempfile.mkdtemp(prefix="sp_match_cal_")
    rows = {}
    if args.render:
        for spec in args.render:
            task, _, cam = spec.partition(":")
            cam = cam or "corner"
            def rendered(steps):
                path = os.path.join(tmp, "%s_%s_%d.png" % (task, cam, steps))
                if not os.path.exists(path):
                    cmd = [args.sp, "render", "--task", task, "--camera", cam, "--seed", "0", "--steps",
                           str(steps), "--width", "128", "--height", "128", "--out", path]
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode != 0:
                        raise SystemExit("sp render failed: " + out.stderr)
                return path
            for g in (0, 10, 20, 30):
                gp = os.path.join(tmp, "goal_%s_%s_%d.png" % (task, cam, g))
                # BT.601 like sp match (cv2.imread's own gray conversion differs by a few levels)
                gray = cv2.cvtColor(cv2.imread(rendered(g), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
                cv2.imwrite(gp, imagined(gray, rng))
                for d in range(-10, 11, 2):
                    if g + d < 0:
                        continue
                    rows.setdefault(abs(d), []).append(score(args.sp, rendered(g + d), gp, extra))
        unit = "steps"
    else:
        for g in (0, 8, 16, 24):
            gp = os.path.join(tmp, "goal_%d.png" % g)
            cv2.imwrite(gp, imagined(frame(g), rng))
            for d in range(-12, 13, 2):
                o = g + d
                if o < 0:
                    continue
                op = os.path.join(tmp, "obs_%d.png" % o)
                if not os.path.exists(op):
                    cv2.imwrite(op, frame(o))
                rows.setdefault(abs(d), []).append(score(args.sp, op, gp, extra))
        unit = "px"
    print("distance_%s  n  " % unit + "  ".join("%-17s" % k for k in ("shape", "block", "ssim", "flow", "composite")))
    for d in sorted(rows):
        r = rows[d]
        cells = []
        for k in ("shape", "block", "ssim", "flow", "composite"):
            v = np.array([x[k] for x in r])
            cells.append("%.3f [%.3f,%.3f]" % (v.mean(), v.min(), v.max()))
        print("%5d       %2d  %s" % (d, len(r), "  ".join(cells)))


if __name__ == "__main__":
    main()
