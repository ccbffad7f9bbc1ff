#!/usr/bin/python3
"""twin_policy.py: PyTorch twins of the policy's two networks (src/models/resnet.c, dp1d.c) with
state-dict keys equal to the C parameter names; writes the fixtures that tests/test_models_policy.c
compares against (CI needs no PyTorch):

    /usr/bin/python3 tools/twin_policy.py [outdir]     (default tests/fixtures/models)

resnet_group.safetensors, resnet_batch.safetensors, dp1d.safetensors (the tiny presets):
  metadata  config (the C config JSON), batch, lr, steps
  init.<p>  initial weights (random), inputs (x, t, g), target
  out       the forward output (training mode), loss (MSE to target)
  grad.<p>  every parameter gradient of that loss; dp1d also dg (the global condition's gradient)
  final.<p> the weights after 5 AdamW steps (lr 1e-3, torch defaults otherwise) on the same batch
  resnet_batch also: stats0/1/5.<s> the BatchNorm running statistics at the start, after the
  first forward and after the 5 steps, and out_eval, the eval-mode forward after the first one.
resnet_tv.safetensors: a torchvision-layout file (3-channel stem, BatchNorm running statistics,
  num_batches_tracked, fc.*) of the tiny widths, with x3 (B, 3, R, R) and out_eval, the eval-mode
  features of that 3-channel network; the C loader puts it into a 6-channel model that must give
  the same features for the image stacked with itself."""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(__file__))
import nn_st

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models")
os.makedirs(OUT, exist_ok=True)
STEPS, LR = 5, 1e-3

# ------------------------------------------------------------------------------------------------
# ResNet trunk (torchvision names), GroupNorm (channels / gn_size groups) or BatchNorm
def norm(kind, c, gn_size):
    return nn.GroupNorm(c // gn_size, c) if kind == "group" else nn.BatchNorm2d(c)

class BasicBlock(nn.Module):
    def __init__(s, cin, cout, stride, kind, gn):
        super().__init__()
        s.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.bn1 = norm(kind, cout, gn)
        s.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.bn2 = norm(kind, cout, gn)
        s.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(kind, cout, gn))
                        if stride != 1 or cin != cout else None)
    def forward(s, x):
        h = F.relu(s.bn1(s.conv1(x)))
        h = s.bn2(s.conv2(h))
        return F.relu(h + (s.downsample(x) if s.downsample is not None else x))

class ResNet(nn.Module):
    def __init__(s, c):
        super().__init__()
        w, k, g = c["width"], c["norm"], c["gn_size"]
        s.conv1 = nn.Conv2d(c["in_ch"], w, 7, 2, 3, bias=False); s.bn1 = norm(k, w, g)
        cin = w
        for st in range(c["stages"]):
            cout = w << st
            blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if st > 0 and j == 0 else 1, k, g)
                      for j in range(c["blocks"])]
            setattr(s, f"layer{st + 1}", nn.Sequential(*blocks)); cin = cout
        s.nstages = c["stages"]
    def forward(s, x):
        h = F.max_pool2d(F.relu(s.bn1(s.conv1(x))), 3, 2, 1)
        for st in range(s.nstages): h = getattr(s, f"layer{st + 1}")(h)
        return h.mean((2, 3))

def randomize_norms(m):
    """non-trivial norm affine parameters (and running statistics) so everything is tested"""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.GroupNorm, nn.BatchNorm2d)):
                mod.weight.copy_(1 + 0.3 * torch.randn_like(mod.weight)); mod.bias.copy_(0.3 * torch.randn_like(mod.bias))
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.2 * torch.randn_like(mod.running_mean))
                mod.running_var.copy_(0.5 + torch.rand_like(mod.running_var))

def stats(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items() if k.endswith(("running_mean", "running_var"))}

def train_case(model, inputs, target, fwd, extra=None):
    """one forward/backward recorded, then STEPS AdamW steps on the same batch"""
    T = {}
    for k, v in model.named_parameters(): T[f"init.{k}"] = v.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        out = fwd(model, inputs)
        loss = ((out - target) ** 2).mean()
        loss.backward()
        if step == 1:
            T["out"] = out.detach().clone(); T["loss"] = loss.detach().reshape(1)
            for k, v in model.named_parameters(): T[f"grad.{k}"] = v.grad.detach().clone()
            if extra: extra(T)
        opt.step()
    for k, v in model.named_parameters(): T[f"final.{k}"] = v.detach().clone()
    T["target"] = target
    return T

RCFG = dict(in_ch=6, res=32, width=8, stages=3, blocks=2, norm="group", gn_size=4)  # sp_resnet tiny preset
RB = 3

def resnet_case(kind, seed):
    torch.manual_seed(seed)
    c = dict(RCFG, norm=kind)
    m = ResNet(c); randomize_norms(m); m.train()
    x = torch.randn(RB, c["in_ch"], c["res"], c["res"])
    feat = c["width"] << (c["stages"] - 1)
    target = torch.randn(RB, feat)
    s0 = stats(m)
    def extra(T):
        T.update({f"stats1.{k}": v for k, v in stats(m).items()})
        m.eval()
        with torch.no_grad(): T["out_eval"] = m(x)
        m.train()
    T = train_case(m, x, target, lambda mm, xx: mm(xx), extra if kind == "batch" else None)
    T["x"] = x
    if kind == "batch":
        T.update({f"stats0.{k}": v for k, v in s0.items()})
        T.update({f"stats5.{k}": v for k, v in stats(m).items()})
    meta = {"generator": "tools/twin_policy.py", "config": json.dumps(c, separators=(",", ":")), "batch": RB,
            "lr": LR, "steps": STEPS}
    nn_st.save(os.path.join(OUT, f"resnet_{kind}.safetensors"), T, meta)
    print(f"resnet_{kind}: loss {float(T['loss']):.6f}, {sum(p.numel() for p in m.parameters())} parameters")

resnet_case("group", 11)
resnet_case("batch", 12)

# torchvision layout: a 3-channel BatchNorm trunk of the tiny widths, eval-mode features
torch.manual_seed(13)
tv = ResNet(dict(RCFG, in_ch=3, norm="batch")); randomize_norms(tv); tv.eval()
x3 = torch.randn(RB, 3, RCFG["res"], RCFG["res"])
with torch.no_grad(): f3 = tv(x3)
TV = {k: v.detach().clone() for k, v in tv.state_dict().items()}  # includes num_batches_tracked (I64)
TV["fc.weight"] = torch.randn(10, f3.shape[1]); TV["fc.bias"] = torch.randn(10)  # ignored by the loader
TV["x3"] = x3; TV["out_eval"] = f3
nn_st.save(os.path.join(OUT, "resnet_tv.safetensors"), TV, {"generator": "tools/twin_policy.py", "batch": RB})
print("resnet_tv:", len(TV), "tensors")

# ------------------------------------------------------------------------------------------------
# ConditionalUnet1D (names as src/models/dp1d.c)
class Conv1dBlock(nn.Module):
    def __init__(s, i, o, k, g):
        super().__init__(); s.b = nn.Sequential(nn.Conv1d(i, o, k, padding=k // 2), nn.GroupNorm(g, o), nn.Mish())
    def forward(s, x): return s.b(x)

class CRB1D(nn.Module):
    def __init__(s, i, o, cdim, k, g):
        super().__init__(); s.o = o
        s.b0 = Conv1dBlock(i, o, k, g); s.b1 = Conv1dBlock(o, o, k, g)
        s.cond = nn.Sequential(nn.Mish(), nn.Linear(cdim, 2 * o))
        s.res = nn.Conv1d(i, o, 1) if i != o else nn.Identity()
    def forward(s, x, c):
        h = s.b0(x); e = s.cond(c).reshape(-1, 2, s.o, 1)
        h = e[:, 0] * h + e[:, 1]
        return s.b1(h) + s.res(x)

def sinemb_dp(t, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1))
    a = t.float()[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()], -1)

class Unet1D(nn.Module):
    def __init__(s, c):
        super().__init__()
        sd, d, K, G = c["step_dim"], c["down_dims"], c["kernel"], c["groups"]
        s.sd = sd; cdim = sd + c["gdim"]; L = len(d)
        s.temb = nn.Sequential(nn.Linear(sd, 4 * sd), nn.Mish(), nn.Linear(4 * sd, sd))
        dims = [c["adim"]] + list(d)
        s.down = nn.ModuleList([nn.ModuleList([CRB1D(dims[i], dims[i + 1], cdim, K, G), CRB1D(dims[i + 1], dims[i + 1], cdim, K, G),
                                               nn.Conv1d(dims[i + 1], dims[i + 1], 3, 2, 1) if i < L - 1 else nn.Identity()])
                                for i in range(L)])
        s.mid = nn.ModuleList([CRB1D(d[-1], d[-1], cdim, K, G) for _ in range(2)])
        io = list(zip(dims[1:-1], dims[2:]))  # in_out[1:] of Diffusion Policy
        s.up = nn.ModuleList([nn.ModuleList([CRB1D(2 * b, a, cdim, K, G), CRB1D(a, a, cdim, K, G), nn.ConvTranspose1d(a, a, 4, 2, 1)])
                              for a, b in reversed(io)])
        s.final = nn.Sequential(Conv1dBlock(d[0], d[0], K, G), nn.Conv1d(d[0], c["adim"], 1))
    def forward(s, x, t, g):
        x = x.transpose(1, 2)
        cond = torch.cat([s.temb(sinemb_dp(t, s.sd)), g], -1)
        hs = []
        for r1, r2, ds in s.down:
            x = r2(r1(x, cond), cond); hs.append(x); x = ds(x)
        for r in s.mid: x = r(x, cond)
        for r1, r2, us in s.up:
            x = torch.cat([x, hs.pop()], 1)
            x = us(r2(r1(x, cond), cond))
        return s.final(x).transpose(1, 2)

DCFG = dict(adim=4, horizon=4, down_dims=[8, 16, 24], kernel=5, groups=4, step_dim=16, gdim=35)  # sp_dp1d tiny preset
DB = 3
torch.manual_seed(21)
u = Unet1D(DCFG)
with torch.no_grad():
    for n, p in u.named_parameters():
        if p.ndim == 1 and ".b.1." in n: p.copy_((1.0 if n.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
x = torch.randn(DB, DCFG["horizon"], DCFG["adim"])
t = torch.tensor([3.0, 57.0, 99.0])
g = torch.randn(DB, DCFG["gdim"], requires_grad=True)
target = torch.randn(DB, DCFG["horizon"], DCFG["adim"])
def dp_extra(T): T["dg"] = g.grad.detach().clone()
T = train_case(u, (x, t, g), target, lambda mm, i: mm(*i), dp_extra)
T.update({"x": x, "t": t, "g": g.detach()})
nn_st.save(os.path.join(OUT, "dp1d.safetensors"), T,
           {"generator": "tools/twin_policy.py", "config": json.dumps(DCFG, separators=(",", ":")), "batch": DB,
            "lr": LR, "steps": STEPS})
print(f"dp1d: loss {float(T['loss']):.6f}, {sum(p.numel() for p in u.parameters())} parameters")
