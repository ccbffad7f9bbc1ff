#!/usr/bin/python3
"""bench_twin.py: a product model's C training step and inference against its PyTorch twin, at
the same preset, side by side in one run.

    /usr/bin/python3 bench/bench_twin.py [build/bench/bench_nn] [threads] [repeat]

Case video-cpu: the video U-Net's cpu preset (stacked layout, 64 x 64, 7 frames, task text),
batch 8, as `sp train video --preset cpu` trains it. C: build/bench/bench_nn THREADS video-cpu
(training step = zero grad, forward, MSE, backward, AdamW; inference = no-grad forward with
frozen weights and one DDIM update). PyTorch: tools/twin_vunet.py's VUNet with the same config
(state-dict keys = the C parameter names), the same step with torch.optim.AdamW, and a no-grad
forward; torch.set_num_threads(THREADS). Medians of 10 after 3 warm-ups; with repeat > 1 the two
sides alternate and each keeps its best median. Prints
    video-cpu_<train|infer> c_ms=... torch_ms=... ratio=<c/torch> torch=<version>"""
import os, re, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
cbin = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bench", "bench_nn")
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1

import torch, torch.nn.functional as F
import twin_vunet

torch.set_num_threads(threads)


def torch_case(iters=10, warm=3):
    torch.manual_seed(0)
    cfg = dict(twin_vunet.PRESETS["cpu"])
    net = twin_vunet.VUNet(cfg)
    B, Fr, R = 8, cfg["frames"], cfg["res"]
    x = torch.randn(B, 3, Fr, R, R); cond = torch.randn(B, 3, R, R)
    t = torch.randint(0, 100, (B,)).float(); target = torch.randn(B, 3, Fr, R, R)
    text = torch.tensor([twin_vunet.text_ids("door-open")] * B, dtype=torch.int32)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    ts = []
    for i in range(warm + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        F.mse_loss(net(x, cond, t, text), target).backward()
        opt.step()
        if i >= warm: ts.append(1e3 * (time.perf_counter() - t0))
    ti = []
    with torch.no_grad():
        for i in range(warm + iters):
            t0 = time.perf_counter()
            net(x, cond, t, text)
            if i >= warm: ti.append(1e3 * (time.perf_counter() - t0))
    med = lambda v: sorted(v)[len(v) // 2]
    return med(ts), med(ti)


def c_case():
    r = subprocess.run([cbin, str(threads), "video-cpu"], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if r.returncode: sys.exit(r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"video-cpu_(train|infer) c_ms=([\d.]+)", line)
        if m: out[m.group(1)] = float(m.group(2))
    return out


best_c, best_t = {}, None
for _ in range(max(1, repeat)):
    c = c_case()
    for k, v in c.items():
        best_c[k] = min(v, best_c.get(k, v))
    tt = torch_case()
    best_t = tt if best_t is None else (min(best_t[0], tt[0]), min(best_t[1], tt[1]))
for i, kind in enumerate(("train", "infer")):
    cm, tm = best_c[kind], best_t[i]
    print(f"video-cpu_{kind} c_ms={cm:.1f} torch_ms={tm:.1f} ratio={cm / tm:.2f} torch={torch.__version__}", flush=True)
