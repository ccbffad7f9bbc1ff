#!/usr/bin/python3
"""bench_policy.py: the policy network's C training step and action chunk against its PyTorch twin,
at the same preset, side by side in one run.

    /usr/bin/python3 bench/bench_policy.py [build/bench/bench_nn] [threads] [repeat]

Case policy-cpu: the policy's cpu preset (src/models/policy.c; tools/twin_policy.py's Policy with
the same config, state-dict keys = the C parameter names), batch 32, as `sp train policy --preset
cpu` trains it. Training step = zero grad, forward (encoder, end-effector MLP, U-Net on a noisy
chunk), MSE, backward, AdamW (torch.optim.AdamW; data loading and EMA not counted on either
side). Inference = one action chunk at B = 1: C sp_policy_act (uint8 frames, centre crop, encoder
once, 10 DDIM steps, unnormalised), PyTorch the twin's predict (encoder once, the same DDIM) under
no_grad. C: build/bench/bench_nn THREADS policy-cpu; torch.set_num_threads(THREADS). Medians of 10
after 3 warm-ups; with repeat > 1 the two sides alternate and each keeps its best median. Prints
    policy-cpu_<train|infer> c_ms=... torch_ms=... ratio=<c/torch> torch=<version>"""
import os, re, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
cbin = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bench", "bench_nn")
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1

import torch, torch.nn.functional as F
import twin_policy  # the classes only (its fixtures are not written when imported)

torch.set_num_threads(threads)


def torch_case(iters=10, warm=3):
    torch.manual_seed(0)
    cfg = dict(twin_policy.POLICY_PRESETS["cpu"])
    net = twin_policy.Policy(cfg)
    B, H, R = 32, cfg["horizon"], cfg["crop"]
    x = torch.randn(B, H, 4); t = torch.randint(0, 100, (B,)).float()
    img = torch.randn(B, 6, R, R); ee = torch.randn(B, 3); target = torch.randn(B, H, 4)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    ts = []
    for i in range(warm + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        F.mse_loss(net(x, t, img, ee), target).backward()
        opt.step()
        if i >= warm: ts.append(1e3 * (time.perf_counter() - t0))
    ti = []
    img1, ee1 = img[:1].clone(), ee[:1].clone()
    for i in range(warm + iters):
        t0 = time.perf_counter()
        net.predict(img1, ee1, torch.randn(1, H, 4))
        if i >= warm: ti.append(1e3 * (time.perf_counter() - t0))
    med = lambda v: sorted(v)[len(v) // 2]
    return med(ts), med(ti)


def c_case():
    r = subprocess.run([cbin, str(threads), "policy-cpu"], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if r.returncode: sys.exit(r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"policy-cpu_(train|infer) c_ms=([\d.]+)", line)
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
    print(f"policy-cpu_{kind} c_ms={cm:.1f} torch_ms={tm:.1f} ratio={cm / tm:.2f} torch={torch.__version__}", flush=True)
