#!/usr/bin/python3
"""twin_vunet.py: PyTorch twin of src/models/vunet.c (the video diffusion U-Net), for any config;
its state-dict keys are the C parameter names.

    /usr/bin/python3 tools/twin_vunet.py [outdir]        write the fixtures (default tests/fixtures/models)
    /usr/bin/python3 tools/twin_vunet.py --count PRESET LAYOUT   print the parameter count
    /usr/bin/python3 tools/twin_vunet.py --check-ckpt FILE       load a C checkpoint (sp_model_save) and
        compare the twin's output with the C output stored beside it in FILE.io.safetensors
        (written by tests/test_models_vunet.c when SP_VUNET_TWIN_DIR is set)

    /usr/bin/python3 tools/twin_vunet.py --clip [outdir]  write only the text_enc clip fixtures
    /usr/bin/python3 tools/twin_vunet.py --video-cond [outdir]  write only the video_cond fixtures
        (vunet_<layout>_vcond: cond (B,3,F,R,R), VideoAgent's refinement input)

Fixtures vunet_<layout>.safetensors (the tiny preset with ch 8, so that each stays under 1 MB):
metadata config (the C config JSON), format; tensors x (B,3,F,R,R), cond (B,3,R,R), t (B), text (B,8)
int32, target, out, loss (1), param.<name> (initial weights), grad.<name> (of the MSE loss against
target), adamw5.<name> (after 5 AdamW steps, lr 1e-3, torch defaults, the same batch each step)."""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_st

VOCAB = ["<unk>", "door", "open", "close", "basketball", "shelf", "place", "button", "press", "topdown",
         "faucet", "handle", "hammer", "assembly"]
WORDS = 8

PRESETS = {
    "tiny": dict(layout="stacked", res=16, frames=7, ch=16, mult=[1, 2], nres=1, attn_min_ds=2, head_ch=8,
                 groups=4, tdim=32, text_dim=8, winograd=1, cond="text", plan_dim=8, scale_shift="auto"),
    "cpu": dict(layout="stacked", res=64, frames=7, ch=32, mult=[1, 2, 4], nres=2, attn_min_ds=4, head_ch=32,
                groups=8, tdim=128, text_dim=64, winograd=1, cond="text", plan_dim=32, scale_shift="auto"),
    "paper": dict(layout="factorised", res=128, frames=7, ch=128, mult=[1, 2, 3, 4, 5], nres=2, attn_min_ds=8,
                  head_ch=32, groups=32, tdim=512, text_dim=512, winograd=1, cond="text", plan_dim=64,
                  scale_shift="auto"),
}


def text_ids(text):
    """sp_text_ids: split on '-', ' ', '_', lowercase, vocabulary id (0 unknown), pad with -1"""
    words = [w.lower() for w in text.replace("-", " ").replace("_", " ").split(" ") if w]
    ids = [VOCAB.index(w) if w in VOCAB[1:] else 0 for w in words][:WORDS]
    return ids + [-1] * (WORDS - len(ids))


def sinemb(t, dim):  # AVDC / guided-diffusion: cos first, freq exp(-ln(1e4) i / half)
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    a = t[:, None].float() * f[None]
    return torch.cat([a.cos(), a.sin()], -1)


def bc(e, nd):  # (B, C) -> broadcast over the spatial (and temporal) dims
    return e.reshape(e.shape + (1,) * (nd - 2))


def to_batch(x):  # (B, C, T, H, W) -> (B*T, C, H, W)
    B, C, T, H, W = x.shape
    return x.transpose(1, 2).reshape(B * T, C, H, W)


def to_frames(y, B):  # (B*T, C, H, W) -> (B, C, T, H, W)
    BT, C, H, W = y.shape
    return y.reshape(B, BT // B, C, H, W).transpose(1, 2)


class TConv(nn.Module):
    """temporal conv, kernel 3, "same" padding: weight (C, C, 3), bias (C) on (B, C, T, H, W)"""
    def __init__(s, c):
        super().__init__()
        w = torch.zeros(c, c, 3)
        w[range(c), range(c), 1] = 1.0
        s.weight = nn.Parameter(w); s.bias = nn.Parameter(torch.zeros(c))

    def forward(s, x):
        return F.conv3d(x, s.weight[:, :, :, None, None], s.bias, padding=(1, 0, 0))


def fconv(x, conv, tconv):
    """3x3 conv: per frame then temporal (5D), or plain 2D (4D, stacked layout)"""
    if x.dim() == 4:
        return conv(x)
    return tconv(to_frames(conv(to_batch(x)), x.shape[0]))


def conv1x1(x, conv):  # 1x1 conv on 4D or 5D activations (no temporal part)
    if x.dim() == 4:
        return conv(x)
    return F.conv3d(x, conv.weight[:, :, :, :, None], conv.bias)


class Res(nn.Module):
    """ss: the condition as GroupNorm scale and shift, GN2(h) (1 + scale(e)) + t(e) (guided-diffusion's
    use_scale_shift_norm, with its Linear(tdim, 2C) as two Linears), else a bias t(e) after conv 1"""
    def __init__(s, cin, cout, tdim, g, fact, ss=False):
        super().__init__()
        s.n1 = nn.GroupNorm(g, cin); s.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        s.t = nn.Linear(tdim, cout)
        s.n2 = nn.GroupNorm(g, cout); s.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        s.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        s.c1_t = TConv(cout) if fact else None
        s.c2_t = TConv(cout) if fact else None
        if ss:
            s.scale = nn.Linear(tdim, cout)
        s.ss = ss

    def forward(s, x, semb):
        h = fconv(F.silu(s.n1(x)), s.c1, s.c1_t)
        if s.ss:
            h = s.n2(h) * (1 + bc(s.scale(semb), x.dim())) + bc(s.t(semb), x.dim())
        else:
            h = s.n2(h + bc(s.t(semb), x.dim()))
        h = fconv(F.silu(h), s.c2, s.c2_t)
        return h + (x if s.skip is None else conv1x1(x, s.skip))


class Attn(nn.Module):
    """GN, 1x1 qkv, multi-head attention over the pixels of each frame, 1x1 out, residual"""
    def __init__(s, c, heads, g):
        super().__init__()
        s.h = heads; s.n = nn.GroupNorm(g, c)
        s.qkv = nn.Conv2d(c, 3 * c, 1); s.o = nn.Conv2d(c, c, 1)

    def forward(s, x):
        B0 = x.shape[0]
        xb = to_batch(x) if x.dim() == 5 else x
        B, C, H, W = xb.shape
        q, k, v = s.qkv(s.n(xb)).reshape(B, 3, s.h, C // s.h, H * W).unbind(1)
        a = torch.softmax(torch.einsum("bhdn,bhdm->bhnm", q, k) / math.sqrt(C // s.h), -1)
        y = xb + s.o(torch.einsum("bhnm,bhdm->bhdn", a, v).reshape(B, C, H, W))
        return to_frames(y, B0) if x.dim() == 5 else y


class Entry(nn.Module):
    pass


PLAN_MAX, NACT, NDIR, DVEC = 10, 10, 27, 9
CONDS = ["text", "distance", "plan", "plan-local"]


class PlanEnc(nn.Module):
    """SP's plan encoder (reference-models.md 1.3): Embedding(10, P), Embedding(27, P), distance
    Linear(1, P) GELU Linear(P, P); concat -> Linear(3P, 4P) GELU Linear(4P, D); then (plan) a type
    embedding (2, D) and (plan, plan-local) a LayerNorm(D) applied by the caller"""
    def __init__(s, P, D, types):
        super().__init__()
        s.act = nn.Embedding(NACT, P); s.dir = nn.Embedding(NDIR, P)
        s.dist = nn.Sequential(nn.Linear(1, P), nn.GELU(), nn.Linear(P, P))
        s.mlp = nn.Sequential(nn.Linear(3 * P, 4 * P), nn.GELU(), nn.Linear(4 * P, D))
        if types:  # "type" is also a Module method: registered by name, read through _modules
            s._modules["type"] = nn.Embedding(2, D)
        s.norm = nn.LayerNorm(D)

    def forward(s, act, dir, dist):  # (B, L) ids, (B, L) metres -> (B, L, D)
        return s.mlp(torch.cat([s.act(act.long()), s.dir(dir.long()), s.dist(dist[..., None].float())], -1))


class XAttn(nn.Module):
    """GLIGEN-style gated cross-attention: x + tanh(alpha) keep Wo attn(Wq GN(x), Wk tok, Wv tok),
    one head of width C over every position of a sample (frames included: queries never interact)"""
    def __init__(s, c, d, g):
        super().__init__()
        s.norm = nn.GroupNorm(g, c)
        s.q = nn.Linear(c, c); s.k = nn.Linear(d, c); s.v = nn.Linear(d, c); s.o = nn.Linear(c, c)
        s.alpha = nn.Parameter(torch.zeros(1))

    def forward(s, x, tok, keep):
        B, C = x.shape[:2]
        n = s.norm(x).reshape(B, C, -1).transpose(1, 2)  # (B, N, C)
        q, k, v = s.q(n), s.k(tok), s.v(tok)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), -1)
        p = s.o(a @ v).transpose(1, 2).reshape(x.shape)
        return x + (torch.tanh(s.alpha) * keep).reshape((-1,) + (1,) * (x.dim() - 1)) * p


class VUNet(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        s.cfg = cfg
        fact = cfg["layout"] == "factorised"
        sso = cfg.get("scale_shift", "auto")
        ss = sso == "on" or (sso == "auto" and cfg.get("cond", "text") != "text")
        ch, tdim, g, Fr = cfg["ch"], cfg["tdim"], cfg["groups"], cfg["frames"]
        s.fact = fact
        s.vcond = cfg.get("video_cond", 0) == 1  # cond (B, 3, F, R, R): a video, frame by frame
        cin, s.cout = (6, 3) if fact else (3 * Fr + (3 * Fr if s.vcond else 3), 3 * Fr)
        T = lambda c: TConv(c) if fact else None
        heads = lambda c: c // cfg["head_ch"]
        s.temb = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        s.text = nn.Module()
        s.clip = cfg.get("text_enc", "words") == "clip"
        if s.clip:  # CLIP's cached per-token features (a buffer: constant) -> Linear(clip dim, text_dim)
            cl = cfg["clip"]
            s.text.clip = nn.Linear(cl["dim"], cfg["text_dim"])
            s.text.register_buffer("clip_cache", torch.zeros(len(cl["texts"]), max(cl["len"]), cl["dim"]))
            s.clip_len = torch.tensor(cl["len"])
        else:
            s.text.embed = nn.Embedding(len(VOCAB), cfg["text_dim"])
        s.text.proj = nn.Linear(cfg["text_dim"], tdim)
        C0 = ch * cfg["mult"][0]
        s.inc = nn.Conv2d(cin, C0, 3, padding=1); s.inc_t = T(C0)
        s.down = nn.ModuleList(); skips = [C0]; c = C0; ds = 1
        nl = len(cfg["mult"])
        for l, m in enumerate(cfg["mult"]):
            for _ in range(cfg["nres"]):
                e = Entry(); e.res = Res(c, ch * m, tdim, g, fact, ss); c = ch * m
                e.attn = Attn(c, heads(c), g) if ds >= cfg["attn_min_ds"] else None
                s.down.append(e); skips.append(c)
            if l < nl - 1:
                e = Entry(); e.op = nn.Conv2d(c, c, 3, stride=2, padding=1); e.op_t = T(c)
                s.down.append(e); skips.append(c); ds *= 2
        s.mid = nn.Module()
        s.mid.res1 = Res(c, c, tdim, g, fact, ss); s.mid.attn = Attn(c, heads(c), g); s.mid.res2 = Res(c, c, tdim, g, fact, ss)
        c_mid = c
        s.up = nn.ModuleList()
        for l in reversed(range(nl)):
            co = ch * cfg["mult"][l]
            for k in range(cfg["nres"] + 1):
                e = Entry(); e.res = Res(c + skips.pop(), co, tdim, g, fact, ss); c = co
                e.attn = Attn(c, heads(c), g) if ds >= cfg["attn_min_ds"] else None
                e.conv = None
                if l > 0 and k == cfg["nres"]:
                    e.conv = nn.Conv2d(c, c, 3, padding=1); e.conv_t = T(c); ds //= 2
                s.up.append(e)
        s.outn = nn.GroupNorm(g, c); s.outc = nn.Conv2d(c, s.cout, 3, padding=1); s.outc_t = T(s.cout)
        # the conditions beyond the text (created last: the text variant's random stream is unchanged)
        s.cond = cfg.get("cond", "text"); P = cfg.get("plan_dim", 8); D = cfg["text_dim"]
        if s.cond == "distance":
            s.dist = nn.Sequential(nn.Linear(DVEC, 4 * P), nn.GELU(), nn.Linear(4 * P, tdim))
        if s.cond in ("plan", "plan-local"):
            s.plan = PlanEnc(P, D, s.cond == "plan")
        if s.cond == "plan-local":
            s.mid.xattn = XAttn(c_mid, D, g)

    def forward(s, x, cond, t, ids, plan_act=None, plan_dir=None, plan_dist=None, dvec=None, null=None, rows=None):
        """ids (B, 8) word ids (words); rows (B) cache rows, -1 no text (clip)"""
        B, _, Fr, R, _ = x.shape
        te = s.temb(sinemb(t, s.cfg["ch"]))
        keep = torch.ones(B) if null is None else 1.0 - null.float()
        if s.clip:
            rows = torch.where(keep > 0, rows.long(), torch.full_like(rows.long(), -1))
            lens = torch.where(rows >= 0, s.clip_len[rows.clamp(min=0)], torch.zeros_like(rows))
            mask = (torch.arange(s.text.clip_cache.shape[1])[None] < lens[:, None]).float()
            words = s.text.clip(s.text.clip_cache[rows.clamp(min=0)]) * mask[..., None]
        else:
            ids = ids.long()
            if null is not None:
                ids = torch.where(keep[:, None] > 0, ids, torch.full_like(ids, -1))
            mask = (ids >= 0).float()
            words = s.text.embed(ids.clamp(min=0)) * mask[..., None]
        if s.cond == "plan":
            ty = s.plan._modules["type"].weight
            ptok = s.plan(plan_act, plan_dir, plan_dist) + ty[1]
            toks = s.plan.norm(torch.cat([words + ty[0], ptok], 1))
            m = torch.cat([mask, keep[:, None].expand(B, PLAN_MAX)], 1)
            tv = (toks * m[..., None]).sum(1) / m.sum(1).clamp(min=1)[:, None]
        else:
            tv = words.sum(1) / mask.sum(1).clamp(min=1)[:, None]
        emb = te + s.text.proj(tv)
        if s.cond == "distance":
            emb = emb + keep[:, None] * s.dist(dvec * keep[:, None])
        ctx = s.plan.norm(s.plan(plan_act, plan_dir, plan_dist)) if s.cond == "plan-local" else None
        semb = F.silu(emb)
        if s.fact:
            xin = torch.cat([x, cond if s.vcond else cond[:, :, None].expand(-1, -1, Fr, -1, -1)], 1)
        else:
            xin = torch.cat([x.reshape(B, 3 * Fr, R, R), cond.reshape(B, 3 * Fr, R, R) if s.vcond else cond], 1)
        h = fconv(xin, s.inc, s.inc_t); hs = [h]
        for e in s.down:
            if hasattr(e, "op"):
                h = fconv(h, e.op, e.op_t)
            else:
                h = e.res(h, semb)
                if e.attn is not None: h = e.attn(h)
            hs.append(h)
        h = s.mid.attn(s.mid.res1(h, semb))
        if ctx is not None:
            h = s.mid.xattn(h, ctx, keep)
        h = s.mid.res2(h, semb)
        for e in s.up:
            h = e.res(torch.cat([h, hs.pop()], 1), semb)
            if e.attn is not None: h = e.attn(h)
            if e.conv is not None:
                h = F.interpolate(h, scale_factor=(1, 2, 2) if h.dim() == 5 else 2, mode="nearest")
                h = fconv(h, e.conv, e.conv_t)
        out = fconv(F.silu(s.outn(h)), s.outc, s.outc_t)
        return out.reshape(B, 3, Fr, R, R)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


CLIP_TEXTS = {"texts": ["door open", "button press topdown", "hammer"], "len": [4, 6, 3], "dim": 16}


def write_clip_fixture(path, cfg, seed):
    """text_enc clip: random cached features (rows past a text's length zero) as the model's
    buffer text.clip_cache; B = 3 with cache rows clip_row (B) int32, the third sample null (its
    row given anyway); plan tensors as write_cond_fixture's; grad.text.clip_cache zeros (a buffer:
    the C parameter of the same name gets no gradient); forward and gradients only"""
    torch.manual_seed(seed)
    net = VUNet(cfg)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if p.dim() == 1 or n.endswith("_t.weight"):
                p.add_(0.1 * torch.randn_like(p))
        cc = net.text.clip_cache
        cc.copy_(torch.randn_like(cc))
        for i, L in enumerate(cfg["clip"]["len"]):
            cc[i, L:] = 0
    B, Fr, R = 3, cfg["frames"], cfg["res"]
    x = torch.randn(B, 3, Fr, R, R); cond = torch.randn(B, 3, R, R)
    t = torch.tensor([3.0, 71.0, 40.0]); target = torch.randn(B, 3, Fr, R, R)
    rows = torch.tensor([1, 2, 0], dtype=torch.int32)
    text = torch.tensor([text_ids("button-press-topdown"), text_ids("hammer"), text_ids("door-open")],
                        dtype=torch.int32)
    pa = torch.full((B, PLAN_MAX), 9, dtype=torch.int32); pd = torch.full((B, PLAN_MAX), 13, dtype=torch.int32)
    pl = torch.zeros(B, PLAN_MAX)
    pa[0, :3] = torch.tensor([0, 2, 6]); pd[0, :3] = torch.tensor([18, 13, 8]); pl[0, :3] = torch.tensor([0.07, 0.0, 0.38])
    pa[1, :2] = torch.tensor([0, 4]); pd[1, :2] = torch.tensor([22, 4]); pl[1, :2] = torch.tensor([0.21, 0.12])
    pa[2, :2] = torch.tensor([5, 3]); pd[2, :2] = torch.tensor([1, 25]); pl[2, :2] = torch.tensor([0.5, 0.3])
    dvec = 0.3 * torch.randn(B, DVEC)
    null = torch.tensor([0, 0, 1], dtype=torch.int32)
    T = {"x": x, "cond": cond, "t": t, "text": text, "target": target, "plan_act": pa, "plan_dir": pd,
         "plan_dist": pl, "dvec": dvec, "null": null, "clip_row": rows}
    for n, p in net.state_dict().items():
        T["param." + n] = p.clone()
    out = net(x, cond, t, text, pa, pd, pl, dvec, null, rows)
    loss = F.mse_loss(out, target)
    loss.backward()
    T["out"] = out.detach(); T["loss"] = loss.detach().reshape(1)
    for n, p in net.named_parameters():
        T["grad." + n] = p.grad.clone()
    T["grad.text.clip_cache"] = torch.zeros_like(net.text.clip_cache)
    with torch.no_grad():  # the null sample ignores its row; another row changes a sample
        o2 = net(x, cond, t, text, pa, pd, pl, dvec, null, rows.flip(0))
        assert (o2[2] - out[2]).abs().max() < 1e-6 and (o2[0] - out[0]).abs().max() > 1e-4
    nn_st.save(path, T, {"format": "sp-vunet-twin", "config": json.dumps(cfg, separators=(",", ":"))})
    print(f"{path}: {nparams(net)} parameters, loss {loss.item():.6f}, {os.path.getsize(path)} bytes")


def clip_fixtures(out):
    for i, cond in enumerate(["text", "plan"]):
        cfg = dict(PRESETS["tiny"]); cfg["ch"] = 8; cfg["cond"] = cond; cfg["text_enc"] = "clip"
        cfg["clip"] = CLIP_TEXTS
        name = "vunet_stacked_clip" if cond == "text" else f"vunet_stacked_{cond}_clip"
        write_clip_fixture(os.path.join(out, name + ".safetensors"), cfg, 300 + i)


def write_fixture(path, cfg, seed, adamw=True):
    torch.manual_seed(seed)
    net = VUNet(cfg)
    with torch.no_grad():  # perturb everything so that no weight is special (identity, 1, 0)
        for n, p in net.named_parameters():
            if p.dim() == 1 or n.endswith("_t.weight"):
                p.add_(0.1 * torch.randn_like(p))
    B, Fr, R = 2, cfg["frames"], cfg["res"]
    x = torch.randn(B, 3, Fr, R, R)
    cond = torch.randn(B, 3, Fr, R, R) if cfg.get("video_cond", 0) else torch.randn(B, 3, R, R)
    t = torch.tensor([3.0, 71.0]); target = torch.randn(B, 3, Fr, R, R)
    text = torch.tensor([text_ids("button-press-topdown"), text_ids("")], dtype=torch.int32)
    T = {"x": x, "cond": cond, "t": t, "text": text, "target": target}
    for n, p in net.state_dict().items():
        T["param." + n] = p.clone()
    out = net(x, cond, t, text)
    loss = F.mse_loss(out, target)
    loss.backward()
    T["out"] = out.detach(); T["loss"] = loss.detach().reshape(1)
    for n, p in net.named_parameters():
        T["grad." + n] = p.grad.clone()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for _ in range(5 if adamw else 0):
        opt.zero_grad()
        F.mse_loss(net(x, cond, t, text), target).backward()
        opt.step()
    for n, p in net.named_parameters():
        if adamw: T["adamw5." + n] = p.detach().clone()
    nn_st.save(path, T, {"format": "sp-vunet-twin", "config": json.dumps(cfg, separators=(",", ":"))})
    print(f"{path}: {nparams(net)} parameters, loss {loss.item():.6f}, {os.path.getsize(path)} bytes")


def write_cond_fixture(path, cfg, seed):
    """a conditioning variant: B = 3, the third sample null (null flag set; its text and plan are
    given anyway and must be ignored); extra tensors plan_act, plan_dir (B, 10) int32, plan_dist
    (B, 10), dvec (B, 9), null (B) int32; forward and gradients only (no adamw5.*)"""
    torch.manual_seed(seed)
    net = VUNet(cfg)
    with torch.no_grad():  # perturb everything so that no weight is special (identity, 1, 0; the gate opens)
        for n, p in net.named_parameters():
            if p.dim() == 1 or n.endswith("_t.weight"):
                p.add_(0.1 * torch.randn_like(p))
            if n.endswith("xattn.alpha"):
                p.fill_(0.5)
    B, Fr, R = 3, cfg["frames"], cfg["res"]
    x = torch.randn(B, 3, Fr, R, R); cond = torch.randn(B, 3, R, R)
    t = torch.tensor([3.0, 71.0, 40.0]); target = torch.randn(B, 3, Fr, R, R)
    text = torch.tensor([text_ids("button-press-topdown"), text_ids("door-open"), text_ids("hammer")],
                        dtype=torch.int32)
    # plans: move [1,-1,-1] 0.07, grasp, slide [-1,1,1] 0.38, then padding (pad 9, (0,0,0) = 13, 0)
    pa = torch.full((B, PLAN_MAX), 9, dtype=torch.int32); pd = torch.full((B, PLAN_MAX), 13, dtype=torch.int32)
    pl = torch.zeros(B, PLAN_MAX)
    pa[0, :3] = torch.tensor([0, 2, 6]); pd[0, :3] = torch.tensor([9 * 2 + 0 + 0, 13, 0 + 3 * 2 + 2]); pl[0, :3] = torch.tensor([0.07, 0.0, 0.38])
    pa[1, :2] = torch.tensor([0, 4]); pd[1, :2] = torch.tensor([22, 4]); pl[1, :2] = torch.tensor([0.21, 0.12])
    pa[2, :2] = torch.tensor([5, 3]); pd[2, :2] = torch.tensor([1, 25]); pl[2, :2] = torch.tensor([0.5, 0.3])
    dvec = 0.3 * torch.randn(B, DVEC)
    null = torch.tensor([0, 0, 1], dtype=torch.int32)
    T = {"x": x, "cond": cond, "t": t, "text": text, "target": target, "plan_act": pa, "plan_dir": pd,
         "plan_dist": pl, "dvec": dvec, "null": null}
    for n, p in net.state_dict().items():
        T["param." + n] = p.clone()
    fwd = lambda: net(x, cond, t, text, pa, pd, pl, dvec, null)
    out = fwd()
    loss = F.mse_loss(out, target)
    loss.backward()
    T["out"] = out.detach(); T["loss"] = loss.detach().reshape(1)
    for n, p in net.named_parameters():
        T["grad." + n] = p.grad.clone()
    # the null sample's output does not depend on its text, plan or distance vector
    with torch.no_grad():
        o2 = net(x, cond, t, text.flip(0), pa.flip(0), pd.flip(0), pl.flip(0), dvec.flip(0), null)
        assert torch.equal(o2[2], out[2].detach()) or (o2[2] - out[2]).abs().max() < 1e-6
    # no adamw5.* here (the text fixtures check the optimizer; these stay smaller)
    nn_st.save(path, T, {"format": "sp-vunet-twin", "config": json.dumps(cfg, separators=(",", ":"))})
    print(f"{path}: {nparams(net)} parameters, loss {loss.item():.6f}, {os.path.getsize(path)} bytes")


def load_st(path):
    """(metadata, tensors) through the `safetensors` package when importable (the reader a user
    has), else through tools/nn_st.py"""
    try:
        from safetensors import safe_open
    except ImportError:
        return nn_st.load(path)
    with safe_open(path, framework="numpy") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def check_ckpt(path):
    meta, ts = load_st(path)
    info = json.loads(meta["config"])
    assert info["model"] == "vunet", f"{path} holds a {info['model']} model"
    cfg = dict(PRESETS["tiny"]); cfg.update(info["config"])
    net = VUNet(cfg)
    sd = {k: torch.from_numpy(v.copy()) for k, v in ts.items() if not k.startswith(("optim.", "ema."))}
    net.load_state_dict(sd, strict=True)
    _, io = nn_st.load(path + ".io.safetensors")
    Fr, R = cfg["frames"], cfg["res"]
    x = torch.from_numpy(io["x"].copy()).reshape(-1, 3, Fr, R, R)  # stored (B, 3, F, R*R)
    cond = torch.from_numpy(io["cond"].copy()); t = torch.from_numpy(io["t"].copy())
    text = torch.from_numpy(io["text"].copy()).round().int()  # stored as floats
    rows = torch.from_numpy(io["clip_row"].copy()).round().int() if "clip_row" in io else None
    with torch.no_grad():
        out = net(x, cond, t, text, rows=rows).numpy()
    ref = io["out"].reshape(out.shape)
    err = abs(out - ref).max() / (abs(ref).max() + 1e-30)
    reader = "safetensors" if "safetensors" in sys.modules else "nn_st"
    print(f"{path} (read by {reader}): {cfg['layout']} {nparams(net)} parameters, C vs twin max |a-b| / max |b| = {err:.3g}")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["--check-ckpt"]:
        sys.exit(check_ckpt(a[1]))
    if a[:1] == ["--clip"]:
        out = a[1] if a[1:] else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
        os.makedirs(out, exist_ok=True)
        clip_fixtures(out)
        sys.exit(0)
    if a[:1] == ["--video-cond"]:  # only the video-conditioned (VideoAgent refinement) fixtures
        out = a[1] if a[1:] else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
        os.makedirs(out, exist_ok=True)
        for i, layout in enumerate(["stacked", "factorised"]):
            cfg = dict(PRESETS["tiny"]); cfg["layout"] = layout; cfg["ch"] = 8; cfg["video_cond"] = 1
            del cfg["cond"], cfg["plan_dim"], cfg["scale_shift"]
            # forward and gradients only, as the conditioning variants' (the optimizer is checked by the
            # text fixtures; a few noise-floor gradients flip AdamW's first steps)
            write_fixture(os.path.join(out, f"vunet_{layout}_vcond.safetensors"), cfg, 300 + i, adamw=False)
        sys.exit(0)
    if a[:1] == ["--count"]:
        cfg = dict(PRESETS[a[1]]); cfg["layout"] = a[2]
        print(nparams(VUNet(cfg)))
        sys.exit(0)
    out = a[0] if a else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
    os.makedirs(out, exist_ok=True)
    for i, layout in enumerate(["stacked", "factorised"]):
        cfg = dict(PRESETS["tiny"]); cfg["layout"] = layout; cfg["ch"] = 8
        del cfg["cond"], cfg["plan_dim"], cfg["scale_shift"]  # the text fixtures stay as they were written before the variants
        write_fixture(os.path.join(out, f"vunet_{layout}.safetensors"), cfg, 100 + i)
    # the conditioning variants (the text variant is the two above); plan-local in both layouts
    # (its GroupNorm spans the frames in the factorised one)
    for i, (layout, cond) in enumerate([("stacked", "distance"), ("stacked", "plan"), ("stacked", "plan-local"),
                                        ("factorised", "plan-local")]):
        cfg = dict(PRESETS["tiny"]); cfg["layout"] = layout; cfg["ch"] = 8; cfg["cond"] = cond
        write_cond_fixture(os.path.join(out, f"vunet_{layout}_{cond}.safetensors"), cfg, 200 + i)
    clip_fixtures(out)
