#!/usr/bin/python3
"""bench_nn.py: C nn core vs PyTorch on the reference networks, side by side in one run.

    /usr/bin/python3 bench/bench_nn.py [build/bench/bench_nn] [cases] [threads] [repeat]

For each case it runs the C benchmark (build/bench/bench_nn) and then
../shared/bench/torch_baseline.py (override with SP_TORCH_BASELINE) with the same thread count,
and prints one line per measurement:
    <case> c_ms=<median> torch_ms=<median> ratio=<c/torch> gflops=<C achieved>
Training steps: zero grad, forward, MSE, backward, AdamW (median of 10 after 3 warm-ups, both
sides). Inference: C = one no-grad forward (+ one DDIM update for the video U-Net) with frozen
weights (SP_BENCH_FREEZE=0 turns that off), PyTorch = its no-grad forward. With repeat > 1 the C and PyTorch runs alternate `repeat` times and each side
reports its best (lowest) median, which filters out load from other processes on a shared
machine. PyTorch needs Debian's python3-torch; without it the torch columns say 'na'."""
import os, re, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
cbin = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bench", "bench_nn")
cases = (sys.argv[2] if len(sys.argv) > 2 else "unet32,unet64,resnet18,dp1d").split(",")
threads = sys.argv[3] if len(sys.argv) > 3 else "2"
repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 1
torch_script = os.environ.get("SP_TORCH_BASELINE", os.path.join(ROOT, "..", "shared", "bench", "torch_baseline.py"))
env = dict(os.environ, OMP_NUM_THREADS=threads)

def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
    return r.stdout

def torch_case(case):
    if not os.path.exists(torch_script):
        return None
    out = run(["/usr/bin/python3", torch_script, threads, case if case != "dp1d" else "dp1d64"])
    m = re.search(r"train_step_median=([\d.]+)ms.*nograd_fwd=([\d.]+)ms", out)
    return (float(m.group(1)), float(m.group(2))) if m else None

print(f"# threads={threads} (C: OpenMP team, OpenBLAS single-threaded; PyTorch: set_num_threads)", flush=True)
for case in cases:
    c, t = {}, None
    for _ in range(max(1, repeat)):
        cout = run([cbin, threads, case])
        for line in cout.splitlines():
            m = re.match(r"(\S+)_(train|infer) c_ms=([\d.]+) gflops=([\d.]+)", line)
            if m:
                v = (float(m.group(3)), float(m.group(4)))
                if m.group(2) not in c or v[0] < c[m.group(2)][0]:
                    c[m.group(2)] = v
            elif line and not line.startswith("#"):
                print("#", line)
        tt = torch_case(case)
        if tt:
            t = tt if not t else (min(t[0], tt[0]), min(t[1], tt[1]))
    for i, kind in enumerate(("train", "infer")):
        if kind not in c:
            print(f"{case}_{kind} c_ms=na torch_ms=na ratio=na gflops=na", flush=True)
            continue
        cms, gf = c[kind]
        if t:
            print(f"{case}_{kind} c_ms={cms:.1f} torch_ms={t[i]:.1f} ratio={cms / t[i]:.3f} gflops={gf:.1f}", flush=True)
        else:
            print(f"{case}_{kind} c_ms={cms:.1f} torch_ms=na ratio=na gflops={gf:.1f}", flush=True)
