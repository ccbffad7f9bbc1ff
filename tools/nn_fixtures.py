#!/usr/bin/python3
"""nn_fixtures.py: PyTorch twin of src/nn; writes the small reference fixtures under
tests/fixtures/nn/ that tests/test_nn*.c compare against (CI needs no PyTorch).

    /usr/bin/python3 tools/nn_fixtures.py [outdir]

ops.safetensors: for each case <c>: inputs, parameters, output y, upstream gradient dy and the
gradients of inputs and parameters (d<name>). Shapes are fixed here and in the C tests.
train.safetensors, train_factorised.safetensors: training traces of the video U-Net (below); they
start from tests/fixtures/models/vunet_<layout>.safetensors, so run tools/twin_vunet.py first."""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(__file__))
import nn_st

torch.manual_seed(1234)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "nn")
os.makedirs(OUT, exist_ok=True)
T = {}

def r(*s, scale=1.0):
    return (torch.randn(*s) * scale).requires_grad_(True)

def case(name, fn, inputs, params=(), ints=None):
    """inputs/params: dict name -> leaf tensor; fn returns y. Stores y, dy and all grads."""
    leaves = dict(inputs); leaves.update(dict(params))
    y = fn(**leaves)
    dy = torch.randn_like(y)
    y.backward(dy)
    for k, v in leaves.items():
        T[f"{name}.{k}"] = v.detach()
        if v.grad is not None: T[f"{name}.d{k}"] = v.grad.detach()
    T[f"{name}.y"] = y.detach(); T[f"{name}.dy"] = dy
    for k, v in (ints or {}).items(): T[f"{name}.{k}"] = v

# conv2d: (B, Cin, H, W, Cout, K, stride, pad)
for nm, (B, Ci, H, W, Co, K, s, p) in {"conv2d_a": (2, 3, 7, 6, 4, 3, 1, 1), "conv2d_s2": (2, 3, 8, 8, 5, 3, 2, 1),
                                        "conv2d_1x1": (2, 6, 5, 5, 3, 1, 1, 0), "conv2d_k7": (2, 2, 12, 12, 3, 7, 2, 3)}.items():
    case(nm, lambda x, w, b, s=s, p=p: F.conv2d(x, w, b, stride=s, padding=p),
         {"x": r(B, Ci, H, W)}, {"w": r(Co, Ci, K, K, scale=0.3), "b": r(Co)})
# conv1d: (B, Cin, T, Cout, K, stride, pad)
for nm, (B, Ci, L, Co, K, s, p) in {"conv1d_k5": (3, 4, 8, 6, 5, 1, 2), "conv1d_s2": (2, 5, 8, 5, 3, 2, 1)}.items():
    case(nm, lambda x, w, b, s=s, p=p: F.conv1d(x, w, b, stride=s, padding=p),
         {"x": r(B, Ci, L)}, {"w": r(Co, Ci, K, scale=0.3), "b": r(Co)})
case("convt1d", lambda x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1),
     {"x": r(2, 5, 4)}, {"w": r(5, 3, 4, scale=0.3), "b": r(3)})
# temporal conv: Conv3d kernel (3,1,1), pad (1,0,0) on (B, C, T, H, W) = (2, 3, 4, 2, 3) -> 5 ch
case("tconv", lambda x, w, b: F.conv3d(x, w[:, :, :, None, None], b, padding=(1, 0, 0)),
     {"x": r(2, 3, 4, 2, 3)}, {"w": r(5, 3, 3, scale=0.3), "b": r(5)})
case("linear", lambda x, w, b: F.linear(x, w, b), {"x": r(5, 7)}, {"w": r(4, 7, scale=0.3), "b": r(4)})
# group norm (B, C, H, W) = (2, 8, 3, 4), 4 groups, with and without activations
for nm, act in {"gn": None, "gn_silu": F.silu, "gn_mish": F.mish}.items():
    case(nm, lambda x, g, b, act=act: (act or (lambda z: z))(F.group_norm(x, 4, g, b, 1e-5)),
         {"x": r(2, 8, 3, 4, scale=2.0)}, {"g": r(8), "b": r(8)})
case("ln", lambda x, g, b: F.layer_norm(x, (6,), g, b, 1e-5), {"x": r(4, 6)}, {"g": r(6), "b": r(6)})
case("bn_relu", lambda x, g, b: F.relu(F.batch_norm(x, None, None, g, b, training=True, eps=1e-5)),
     {"x": r(3, 4, 3, 3)}, {"g": r(4), "b": r(4)})
for nm, fn in {"silu": F.silu, "mish": F.mish, "gelu": F.gelu, "relu": F.relu}.items():
    case(nm, lambda x, fn=fn: fn(x), {"x": r(50, scale=3.0)})
# attention, channels first: q (B, nh*hd, Nq), k/v (B, nh*hd, Nk); B=2 nh=2 hd=4
def attn(q, k, v, nh=2):
    B, C, Nq = q.shape; hd = C // nh
    qh = q.reshape(B, nh, hd, Nq); kh = k.reshape(B, nh, hd, -1); vh = v.reshape(B, nh, hd, -1)
    a = torch.softmax(torch.einsum("bhdn,bhdm->bhnm", qh, kh) / math.sqrt(hd), -1)
    return torch.einsum("bhnm,bhdm->bhdn", a, vh).reshape(B, C, Nq)
case("attn_self", attn, {"q": r(2, 8, 6), "k": r(2, 8, 6), "v": r(2, 8, 6)})
case("attn_cross", attn, {"q": r(2, 8, 6), "k": r(2, 8, 5), "v": r(2, 8, 5)})
ids = torch.tensor([3, 0, 3, 9, 5], dtype=torch.int32)
case("emb", lambda table: F.embedding(ids.long(), table), {"table": r(10, 4)}, ints={"ids": ids})
# timestep embeddings (forward only)
t = torch.tensor([0., 1., 17., 99., 999.])
def sinemb(t, dim, sin_first, shift):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - shift))
    a = t[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()] if sin_first else [a.cos(), a.sin()], -1)
T["temb.t"] = t; T["temb.dp"] = sinemb(t, 32, 1, 1); T["temb.avdc"] = sinemb(t, 32, 0, 0)
case("up2x", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), {"x": r(2, 3, 3, 4)})
case("avgpool", lambda x: F.avg_pool2d(x, 2), {"x": r(2, 3, 4, 6)})
case("gap", lambda x: x.mean((2, 3)), {"x": r(2, 3, 4, 5)})
case("maxpool", lambda x: F.max_pool2d(x, 3, 2, 1), {"x": r(2, 3, 7, 8)})
def ssm(x):  # robomimic SpatialSoftmax (no learned temperature, no conv)
    B, K, H, W = x.shape
    px, py = torch.meshgrid(torch.linspace(-1, 1, W), torch.linspace(-1, 1, H), indexing="xy")
    p = torch.softmax(x.reshape(B * K, H * W), -1)
    ex = (p * px.reshape(1, -1)).sum(1, keepdim=True); ey = (p * py.reshape(1, -1)).sum(1, keepdim=True)
    return torch.cat([ex, ey], 1).reshape(B, K * 2)
case("ssm", ssm, {"x": r(2, 3, 4, 5)})
case("film", lambda h, sb: sb.reshape(2, 2, 3, 1)[:, 0] * h + sb.reshape(2, 2, 3, 1)[:, 1], {"h": r(2, 3, 4), "sb": r(2, 6)})
wts = torch.tensor([0.5, 2.0, 1.0])
def wmse(a, t): return ((a - t) ** 2).mean((1, 2)).mul(wts).mean()
case("mse", wmse, {"a": r(3, 2, 4), "t": r(3, 2, 4)}); T["mse.w"] = wts

nn_st.save(os.path.join(OUT, "ops.safetensors"), T, {"generator": "tools/nn_fixtures.py", "torch": torch.__version__})
print("ops:", len(T), "tensors")

# ------------------------------------------------------------------------------------------------
# blocks (same module structure and state-dict names as ../shared/bench/torch_baseline.py)
class ResBlock(nn.Module):
    def __init__(s, cin, cout, tdim, g=8):
        super().__init__()
        s.n1 = nn.GroupNorm(g, cin); s.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        s.t = nn.Linear(tdim, cout)
        s.n2 = nn.GroupNorm(g, cout); s.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        s.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
    def forward(s, x, te):
        h = s.c1(F.silu(s.n1(x))) + s.t(te)[:, :, None, None]
        h = s.c2(F.silu(s.n2(h)))
        return h + s.skip(x)

class Attn(nn.Module):
    def __init__(s, c, heads=4):
        super().__init__(); s.h = heads; s.n = nn.GroupNorm(8, c)
        s.qkv = nn.Conv2d(c, 3 * c, 1); s.o = nn.Conv2d(c, c, 1)
    def forward(s, x):
        B, C, H, W = x.shape
        q, k, v = s.qkv(s.n(x)).reshape(B, 3, s.h, C // s.h, H * W).unbind(1)
        a = torch.softmax(torch.einsum("bhdn,bhdm->bhnm", q, k) / math.sqrt(C // s.h), -1)
        y = torch.einsum("bhnm,bhdm->bhdn", a, v).reshape(B, C, H, W)
        return x + s.o(y)

class Conv1dBlock(nn.Module):
    def __init__(s, i, o, k, g=8):
        super().__init__(); s.b = nn.Sequential(nn.Conv1d(i, o, k, padding=k // 2), nn.GroupNorm(g, o), nn.Mish())
    def forward(s, x): return s.b(x)

class CRB1D(nn.Module):
    def __init__(s, i, o, cdim, k=5, g=8):
        super().__init__(); s.o = o
        s.b0 = Conv1dBlock(i, o, k, g); s.b1 = Conv1dBlock(o, o, k, g)
        s.cond = nn.Sequential(nn.Mish(), nn.Linear(cdim, 2 * o))
        s.res = nn.Conv1d(i, o, 1) if i != o else nn.Identity()
    def forward(s, x, c):
        h = s.b0(x); e = s.cond(c).reshape(-1, 2, s.o, 1)
        h = e[:, 0] * h + e[:, 1]
        return s.b1(h) + s.res(x)

class BasicBlock(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.b1 = nn.BatchNorm2d(cout)
        s.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.b2 = nn.BatchNorm2d(cout)
        s.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else nn.Identity()
    def forward(s, x):
        return F.relu(s.b2(s.c2(F.relu(s.b1(s.c1(x))))) + s.sc(x))

def randomize(m):
    """non-trivial norm affine parameters so their gradients are tested"""
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.ndim == 1: p.copy_(torch.randn_like(p) * 0.3 + (1.0 if n.endswith("weight") else 0.0))

B_ = {}
def block_case(name, m, inputs):
    randomize(m)
    for k, v in inputs.items(): v.requires_grad_(True)
    y = m(*inputs.values()); dy = torch.randn_like(y); y.backward(dy)
    for k, v in inputs.items():
        B_[f"{name}.{k}"] = v.detach(); B_[f"{name}.d{k}"] = v.grad.detach()
    B_[f"{name}.y"] = y.detach(); B_[f"{name}.dy"] = dy
    for n, p in m.named_parameters():
        B_[f"{name}.param.{n}"] = p.detach(); B_[f"{name}.grad.{n}"] = p.grad.detach()

block_case("res", ResBlock(8, 16, 12), {"x": torch.randn(2, 8, 5, 5), "te": torch.randn(2, 12)})
block_case("res_id", ResBlock(16, 16, 12), {"x": torch.randn(2, 16, 4, 4), "te": torch.randn(2, 12)})
block_case("attn", Attn(16, 4), {"x": torch.randn(2, 16, 3, 4)})
block_case("crb", CRB1D(4, 16, 10, 5, 8), {"x": torch.randn(3, 4, 8), "c": torch.randn(3, 10)})
block_case("crb_id", CRB1D(16, 16, 10, 5, 8), {"x": torch.randn(3, 16, 4), "c": torch.randn(3, 10)})
block_case("basic", BasicBlock(8, 16, 2), {"x": torch.randn(3, 8, 8, 8)})
block_case("basic_id", BasicBlock(8, 8, 1), {"x": torch.randn(3, 8, 6, 6)})
nn_st.save(os.path.join(OUT, "blocks.safetensors"), B_, {"generator": "tools/nn_fixtures.py"})
print("blocks:", len(B_), "tensors")

# ------------------------------------------------------------------------------------------------
# training traces of the product video U-Net (tools/twin_vunet.py), as src/models/trainer.c runs a
# step: zero grad, forward, per-sample weighted MSE, backward, grad-norm clip (the norm before
# clipping is logged), AdamW at the cosine LR with warm-up, EMA. The model and its batch (x, cond,
# target) are those of tests/fixtures/models/vunet_<layout>.safetensors (run tools/twin_vunet.py
# first); drawn here per step: timesteps t, text ids, loss weights w. Stored per step: t, text, w,
# loss, gnorm, lr; at the end final.<name>, the AdamW moments exp_avg.<name>, exp_avg_sq.<name>
# (when `moments`) and ema.<name>. Metadata `run` spells the case; tests/test_nn_train.c holds the
# same table and refuses a fixture of another run. The clip values clip the first steps only.
from twin_vunet import VUNet, text_ids

TRACES = [
    dict(file="train.safetensors", layout="stacked", steps=10, lr=3e-3, warmup=3, total=12, clip=0.3,
         beta2=0.999, wd=1e-2, ema="power", decay=0.9999, every=0, power=0.75, moments=1),
    dict(file="train_factorised.safetensors", layout="factorised", steps=4, lr=2e-3, warmup=2, total=5,
         clip=0.6, beta2=0.99, wd=0.0, ema="fixed", decay=0.75, every=2, power=0.0, moments=0),
]
TASKS = ["door-open", "", "button-press-topdown", "hammer", "shelf-place", "faucet-close"]


def run_desc(c):
    return ("layout=%s steps=%d lr=%g warmup=%d total=%d clip=%g beta2=%g wd=%g ema=%s decay=%g every=%d "
            "power=%g" % (c["layout"], c["steps"], c["lr"], c["warmup"], c["total"], c["clip"], c["beta2"],
                          c["wd"], c["ema"], c["decay"], c["every"], c["power"]))


def lr_at(step, base, warm, total):  # nn_lr_cosine
    if step < warm: return base * step / max(1, warm)
    p = (step - warm) / max(1, total - warm)
    return base * max(0.0, 0.5 * (1 + math.cos(math.pi * p)))


def ema_decay(c, step):  # nn_ema_fixed_decay (-1: no update) / nn_ema_power_decay(step, 0, 1, power, 0, decay)
    if c["ema"] == "fixed": return c["decay"] if step % c["every"] == 0 else -1.0
    s = max(0, step - 1)
    return 0.0 if s <= 0 else min(c["decay"], max(0.0, 1 - (1 + s) ** -c["power"]))


def vunet_trace(c):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models",
                       "vunet_%s.safetensors" % c["layout"])
    meta, fx = nn_st.load(src)
    net = VUNet(json.loads(meta["config"]))
    net.load_state_dict({k[6:]: torch.from_numpy(v.copy()) for k, v in fx.items() if k.startswith("param.")},
                        strict=True)
    x, cond, target = (torch.from_numpy(fx[k].copy()) for k in ("x", "cond", "target"))
    B, n = x.shape[0], c["steps"]
    g = torch.Generator().manual_seed(13)
    ts = torch.randint(0, 100, (n, B), generator=g).float(); ws = torch.rand(n, B, generator=g) + 0.5
    text = torch.tensor([[text_ids(TASKS[i]) for i in row] for row in
                         torch.randint(0, len(TASKS), (n, B), generator=g).tolist()], dtype=torch.int32)
    opt = torch.optim.AdamW(net.parameters(), lr=c["lr"], betas=(0.9, c["beta2"]), eps=1e-8, weight_decay=c["wd"])
    ema = {k: p.detach().clone() for k, p in net.named_parameters()}
    losses, norms, lrs = [], [], []
    for step in range(1, n + 1):
        lrs.append(lr_at(step, c["lr"], c["warmup"], c["total"]))
        for pg in opt.param_groups: pg["lr"] = lrs[-1]
        opt.zero_grad()
        out = net(x, cond, ts[step - 1], text[step - 1])
        loss = ((out - target) ** 2).mean((1, 2, 3, 4)).mul(ws[step - 1]).mean()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(net.parameters(), c["clip"])))
        opt.step(); losses.append(float(loss))
        d = ema_decay(c, step)
        if d >= 0:
            with torch.no_grad():
                for k, p in net.named_parameters(): ema[k].mul_(d).add_(p, alpha=1 - d)
    R = {"t": ts, "text": text, "w": ws, "loss": torch.tensor(losses), "gnorm": torch.tensor(norms),
         "lr": torch.tensor(lrs)}
    for k, p in net.named_parameters():
        R["final." + k] = p.detach().clone(); R["ema." + k] = ema[k]
        if c["moments"]:
            R["exp_avg." + k] = opt.state[p]["exp_avg"].clone(); R["exp_avg_sq." + k] = opt.state[p]["exp_avg_sq"].clone()
    nn_st.save(os.path.join(OUT, c["file"]), R, {"generator": "tools/nn_fixtures.py", "model": "vunet",
                                                  "init": "tests/fixtures/models/vunet_%s.safetensors" % c["layout"],
                                                  "run": run_desc(c)})
    print("%s: losses %s, grad norms %s (clip %g)" % (c["file"], " ".join("%.5f" % l for l in losses),
                                                     " ".join("%.4f" % v for v in norms), c["clip"]))

for c in TRACES: vunet_trace(c)

# ------------------------------------------------------------------------------------------------
# diffusion schedules and steps (float64 formulas of AVDC / diffusers, float32 data)
# Its draws follow those of the retired tiny-model trace (seed 7: its 20 parameter inits, then x,
# target, t, w); replaying them keeps diffusion.safetensors as committed.
torch.manual_seed(7)
for n_ in (128, 16, 256, 16, 216, 8, 1152, 16, 256, 16, 2304, 16, 128, 16, 768, 48, 256, 16, 432, 3):
    torch.empty(n_).uniform_()
torch.randn(10, 2, 3, 6, 6); torch.randn(10, 2, 3, 6, 6); torch.randint(0, 100, (10, 2)); torch.rand(10, 2)
D = {}
def lin(T=1000): return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
def cosine(T=100, s=0.008):
    x = torch.linspace(0, T, T + 1, dtype=torch.float64)
    ac = torch.cos(((x / T) + s) / (1 + s) * math.pi * 0.5) ** 2; ac = ac / ac[0]
    return torch.clip(1 - (ac[1:] / ac[:-1]), 0, 0.999)
def sqcos(T=100):
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=torch.float64)
for nm, b in {"linear": lin(), "cosine": cosine(), "sqcos": sqcos()}.items():
    D[f"{nm}.betas"] = b.float(); D[f"{nm}.ac"] = torch.cumprod(1 - b, 0).float()
b = cosine(); ac = torch.cumprod(1 - b, 0); acp = F.pad(ac[:-1], (1, 0), value=1.0)
x0 = torch.randn(2, 12).clamp(-1.2, 1.2); eps = torch.randn(2, 12); tt = torch.tensor([3, 71])
a_ = ac[tt][:, None]
xt = (a_.sqrt() * x0 + (1 - a_).sqrt() * eps).float()
D["x0"] = x0; D["eps"] = eps; D["t"] = tt.int(); D["xt"] = xt
D["target_v"] = (a_.sqrt() * eps - (1 - a_).sqrt() * x0).float()
snr = ac / (1 - ac); D["minsnr_v"] = (snr.clamp(max=5) / (snr + 1)).float(); D["minsnr_eps"] = (snr.clamp(max=5) / snr).float()
# one DDPM step (v-prediction, clip) at t = 71 for sample 1, with a model output and noise
mo = torch.randn(12).double(); nz = torch.randn(12).double(); t1 = 71; x = xt[1].double()
x0p = (ac[t1].sqrt() * x - (1 - ac[t1]).sqrt() * mo).clamp(-1, 1)
c1 = b[t1] * acp[t1].sqrt() / (1 - ac[t1]); c2 = (1 - acp[t1]) * (1 - b[t1]).sqrt() / (1 - ac[t1])
var = b[t1] * (1 - acp[t1]) / (1 - ac[t1])
D["model_out"] = mo.float(); D["noise"] = nz.float(); D["ddpm"] = (c1 * x0p + c2 * x + var.sqrt() * nz).float()
# one DDIM step 71 -> 40, eta 0, v-prediction, clip (noise re-derived from the clipped x0)
epsp = ((1 / ac[t1]).sqrt() * x - x0p) / (1 / ac[t1] - 1).sqrt()
an = ac[40]; D["ddim"] = (an.sqrt() * x0p + (1 - an).sqrt() * epsp).float()
D["ddim_ts"] = torch.tensor(list(reversed(torch.linspace(-1, 99, 21).int().tolist())), dtype=torch.int32)
nn_st.save(os.path.join(OUT, "diffusion.safetensors"), D, {"generator": "tools/nn_fixtures.py"})
print("diffusion:", len(D), "tensors")
