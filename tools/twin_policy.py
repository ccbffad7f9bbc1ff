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

# ------------------------------------------------------------------------------------------------
# Added with the whole policy network (src/models/policy.c, issue 15); the fixtures above and
# below stay byte-identical:
#   twin_policy.py [outdir]             also writes policy_net.safetensors (diffusion head) and
#                                       policy_mlp.safetensors (mlp head), the tiny policy preset
#   twin_policy.py --check-ckpt FILE    load a C policy checkpoint (sp_model_save; config and
#                                       limits from its metadata) and compare with the C outputs in
#                                       FILE.io.safetensors (tests/test_models_policy_net.c writes
#                                       both when SP_POLICY_TWIN_DIR is set)
#   twin_policy.py --count PRESET       parameters of a policy preset (tiny, cpu, paper)
#   import twin_policy                  the classes (bench/bench_policy.py)
# In the last three modes the older fixture code below still runs (about a second: it is made of
# module-level statements, and this file takes additions only) but writes and prints nothing.
MODE = "fixtures" if __name__ == "__main__" else "lib"
if MODE == "fixtures" and len(sys.argv) > 1 and sys.argv[1].startswith("--"):
    MODE = sys.argv[1][2:]
if MODE != "fixtures":
    import io as _io, tempfile as _tempfile
    _ARGV, _STDOUT, _SAVE = sys.argv[:], sys.stdout, nn_st.save
    sys.argv = [sys.argv[0], _tempfile.mkdtemp(prefix="twin_policy_")]
    sys.stdout = _io.StringIO()
    nn_st.save = lambda *a, **k: None

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

# ------------------------------------------------------------------------------------------------
# The whole policy network (src/models/policy.c): current and goal frame stacked (6 channels) ->
# ResNet (GroupNorm) -> features; end effector (normalised) -> ee = Linear, Mish, Linear; the
# global condition [features | ee] -> the 1D U-Net (diffusion head, names unet.*) or an MLP
# (head.0/2/4, direct regression). Config keys are the C table's (sp_policy_fields).
if MODE != "fixtures":
    sys.argv, sys.stdout, nn_st.save = _ARGV, _STDOUT, _SAVE
    os.rmdir(OUT)

POLICY_PRESETS = {
    "tiny": dict(frame=16, crop=14, enc_width=8, enc_stages=3, enc_blocks=1, enc_gn_size=4, ee_hidden=16, ee_dim=8,
                 head="diffusion", horizon=4, down_dims=[32, 64, 64], kernel=5, groups=8, step_dim=32, mlp_hidden=32,
                 target="epsilon", diffusion_steps=100, ddim_steps=4),
    "cpu": dict(frame=64, crop=56, enc_width=32, enc_stages=4, enc_blocks=2, enc_gn_size=16, ee_hidden=64, ee_dim=64,
                head="diffusion", horizon=4, down_dims=[32, 64, 128], kernel=5, groups=8, step_dim=64, mlp_hidden=256,
                target="epsilon", diffusion_steps=100, ddim_steps=10),
    "paper": dict(frame=128, crop=112, enc_width=64, enc_stages=4, enc_blocks=2, enc_gn_size=16, ee_hidden=64,
                  ee_dim=64, head="diffusion", horizon=4, down_dims=[512, 1024, 2048], kernel=5, groups=8,
                  step_dim=128, mlp_hidden=1024, target="epsilon", diffusion_steps=100, ddim_steps=100),
}


def squaredcos_cap_v2(T):
    """alphas_cumprod of diffusers' betas_for_alpha_bar (cosine), beta capped at 0.999, in float64"""
    ab = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    acp, p = [], 1.0
    for i in range(T):
        p *= 1.0 - min(1.0 - ab((i + 1) / T) / ab(i / T), 0.999)
        acp.append(p)
    return acp


def ddim_timesteps(steps, T):
    """nn_ddim_timesteps: linspace(-1, T-1, steps+1) truncated, reversed (last entry -1)"""
    return [int(-1 + T * i / steps) for i in range(steps, -1, -1)]


class Policy(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.enc = ResNet(dict(in_ch=6, res=c["crop"], width=c["enc_width"], stages=c["enc_stages"],
                            blocks=c["enc_blocks"], norm="group", gn_size=c["enc_gn_size"]))
        gdim = (c["enc_width"] << (c["enc_stages"] - 1)) + c["ee_dim"]
        s.nee = 3 + c.get("ee_grip", 0)  # tcp xyz, then the gripper opening with ee_grip
        s.ee = nn.Sequential(nn.Linear(s.nee, c["ee_hidden"]), nn.Mish(), nn.Linear(c["ee_hidden"], c["ee_dim"]))
        if c["head"] == "diffusion":
            s.unet = Unet1D(dict(adim=4, horizon=c["horizon"], down_dims=c["down_dims"], kernel=c["kernel"],
                                 groups=c["groups"], step_dim=c["step_dim"], gdim=gdim))
        else:
            mh = c["mlp_hidden"]
            s.head = nn.Sequential(nn.Linear(gdim, mh), nn.Mish(), nn.Linear(mh, mh), nn.Mish(),
                                   nn.Linear(mh, c["horizon"] * 4))
        s.acp = squaredcos_cap_v2(c["diffusion_steps"])

    def cond(s, img, ee):
        return torch.cat([s.enc(img), s.ee(ee)], -1)

    def head_out(s, x, t, g):
        if s.c["head"] == "diffusion": return s.unet(x, t, g)
        return s.head(g).reshape(g.shape[0], s.c["horizon"], 4)

    def forward(s, x, t, img, ee):  # x (B, H, 4), t (B), img (B, 6, R, R), ee (B, nee) -> (B, H, 4)
        return s.head_out(x, t, s.cond(img, ee))

    @torch.no_grad()
    def predict(s, img, ee, noise, target=None):
        """sp_policy_predict: DDIM (eta 0, clip_sample) from noise, the condition computed once"""
        g = s.cond(img, ee)
        if s.c["head"] != "diffusion": return s.head_out(None, None, g)
        target = target or s.c["target"]
        x = noise.clone()
        ts = ddim_timesteps(s.c["ddim_steps"], s.c["diffusion_steps"])
        for i in range(len(ts) - 1):
            t, tp = ts[i], ts[i + 1]
            out = s.unet(x, torch.full((x.shape[0],), float(t)), g)
            a = s.acp[t]
            ra, rm = math.sqrt(1 / a), math.sqrt(1 / a - 1)
            x0 = out if target == "x0" else ra * x - rm * out
            x0 = x0.clamp(-1, 1)
            eps = (ra * x - x0) / rm
            x = x0 if tp < 0 else math.sqrt(s.acp[tp]) * x0 + math.sqrt(1 - s.acp[tp]) * eps
        return x


def perturb_norms(m):
    """every GroupNorm's affine parameters away from (1, 0), so they are tested"""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(1 + 0.3 * torch.randn_like(mod.weight)); mod.bias.copy_(0.3 * torch.randn_like(mod.bias))


PB = 3


def policy_case(name, cfg, seed):
    """policy_<name>.safetensors: init/grad/final as the fixtures above, inputs x t img ee, target;
    noise and the DDIM prediction with the initial weights (pred; pred_x0: the same network read
    as an x0 predictor)"""
    torch.manual_seed(seed)
    pol = Policy(cfg); perturb_norms(pol); pol.train()
    R, H = cfg["crop"], cfg["horizon"]
    img = torch.rand(PB, 6, R, R) * 2 - 1
    ee = torch.rand(PB, pol.nee) * 2 - 1
    x = torch.randn(PB, H, 4)
    t = torch.tensor([3.0, 57.0, 99.0])
    noise = torch.randn(PB, H, 4)
    pred = pol.predict(img, ee, noise)
    pred_x0 = pol.predict(img, ee, noise, "x0")
    target = torch.randn(PB, H, 4)
    T = train_case(pol, (x, t, img, ee), target, lambda mm, i: mm(*i))
    T.update({"x": x, "t": t, "img": img, "ee": ee, "noise": noise, "pred": pred, "pred_x0": pred_x0})
    meta = {"generator": "tools/twin_policy.py", "config": json.dumps(cfg, separators=(",", ":")), "batch": PB,
            "lr": LR, "steps": STEPS}
    nn_st.save(os.path.join(OUT, f"policy_{name}.safetensors"), T, meta)
    print(f"policy_{name}: loss {float(T['loss']):.6f}, {sum(p.numel() for p in pol.parameters())} parameters")


def check_ckpt(path):
    try:
        from safetensors.numpy import load_file
        import safetensors
        ts = load_file(path)
        with safetensors.safe_open(path, "numpy") as f: meta = f.metadata()
        reader = "safetensors " + safetensors.__version__
    except ImportError:
        meta, ts = nn_st.load(path); reader = "nn_st"
    info = json.loads(meta["config"])
    assert info["model"] == "policy", f"{path} holds a {info['model']} model"
    cfg = dict(POLICY_PRESETS["tiny"]); lim = info["config"]["limits"]
    cfg.update({k: v for k, v in info["config"].items() if k != "limits"})
    pol = Policy(cfg)
    sd = {k: torch.from_numpy(v.copy()) for k, v in ts.items() if not k.startswith(("optim.", "ema."))}
    pol.load_state_dict(sd, strict=True)
    if not os.path.exists(path + ".io.safetensors"):  # e.g. a run's model.safetensors: the load alone
        print(f"{path} (read by {reader}): {sum(p.numel() for p in pol.parameters())} parameters loaded strictly "
              f"(head {cfg['head']}, step {meta.get('step')}); no {path}.io.safetensors to compare outputs with")
        return 0
    _, io = nn_st.load(path + ".io.safetensors")
    g = {k: torch.from_numpy(v.copy()) for k, v in io.items()}
    R, H = cfg["crop"], cfg["horizon"]
    img = g["img"].reshape(-1, 6, R, R)
    with torch.no_grad():
        out = pol(g["x"], g["t"], img, g["ee"])
    pred = pol.predict(img, g["ee"], g["noise"])
    pred_x0 = pol.predict(img, g["ee"], g["noise"], "x0")
    lo, hi = torch.tensor(lim["act_min"], dtype=torch.float64), torch.tensor(lim["act_max"], dtype=torch.float64)
    rng = hi - lo
    scale = torch.where(rng < 1e-4, torch.ones_like(rng), 2 / rng); off = -1 - scale * lo
    acts = (pred.double() - off) / scale
    worst = 0.0
    for name, a in (("out", out), ("pred", pred), ("actions", acts), ("pred_x0", pred_x0)):
        ref = g[name].reshape(a.shape).double()
        e = float((a.double() - ref).abs().max() / (ref.abs().max() + 1e-30))
        worst = max(worst, e)
        print(f"{path} (read by {reader}): {name} C vs twin max |a-b| / max |b| = {e:.3g}")
    print(f"{sum(p.numel() for p in pol.parameters())} parameters, head {cfg['head']}, target {cfg['target']}")
    return 0 if worst < 1e-4 else 1


# the fixtures: the tiny preset with the U-Net narrowed to 8, 16, 16 (step 8, 4 groups), so that
# initial weights, gradients and final weights stay under 1 MB
FIXTURE = dict(POLICY_PRESETS["tiny"], down_dims=[8, 16, 16], groups=4, step_dim=8)
if MODE == "fixtures":
    policy_case("net", FIXTURE, 31)
    policy_case("mlp", dict(FIXTURE, head="mlp"), 32)
    policy_case("grip", dict(FIXTURE, head="mlp", ee_grip=1), 33)  # the gripper input (ee_grip), added later
elif MODE == "check-ckpt":
    sys.exit(check_ckpt(sys.argv[2]))
elif MODE == "count":
    print(sum(p.numel() for p in Policy(POLICY_PRESETS[sys.argv[2]]).parameters()))
elif MODE != "lib":
    sys.exit(f"twin_policy.py: unknown option --{MODE} (known: --check-ckpt FILE, --count PRESET)")
