"""nn_st.py: minimal safetensors writer/reader (no dependency on the safetensors package)."""
import json, struct
import numpy as np

def save(path, tensors, metadata=None):
    hdr = {}
    if metadata:
        hdr["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    off = 0; blobs = []
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)
        dt = {np.dtype("float32"): "F32", np.dtype("int32"): "I32", np.dtype("int64"): "I64"}[a.dtype]
        b = a.tobytes(); hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b); blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs: f.write(b)

def load(path):
    with open(path, "rb") as f: data = f.read()
    n = struct.unpack("<Q", data[:8])[0]; hdr = json.loads(data[8:8 + n]); out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        dt = {"F32": np.float32, "I32": np.int32, "I64": np.int64}[v["dtype"]]
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[8 + n + b: 8 + n + e], dtype=dt).reshape(v["shape"])
    return hdr.get("__metadata__", {}), out
