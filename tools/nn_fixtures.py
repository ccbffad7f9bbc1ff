#!/usr/bin/python3
"""nn_fixtures.py: PyTorch twin of src/nn; writes the small reference fixtures under
tests/fixtures/nn/ that tests/test_nn*.c compare against (CI needs no PyTorch).

    /usr/bin/python3 tools/nn_fixtures.py [outdir]

ops.safetensors: for each case <c>: inputs, parameters, output y, upstream gradient dy and the
gradients of inputs and parameters (d<name>). Shapes are fixed here and in the C tests."""
import math, os, sys
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
