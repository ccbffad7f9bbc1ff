#!/usr/bin/python3
"""clip_to_safetensors.py: CLIP's text tower and BPE merges as the one file src/models/clip.c
loads (sp_clip_load; docs/clip.md).

    python3 tools/clip_to_safetensors.py OUT.safetensors                      OpenAI's ViT-B/32 (downloads it)
    python3 tools/clip_to_safetensors.py OUT.safetensors --openai FILE        OpenAI's checkpoint file, e.g.
                                                                              ~/.cache/clip/ViT-B-32.pt
    python3 tools/clip_to_safetensors.py OUT.safetensors --pretrained TAG     an open_clip tag or checkpoint file
                                                                              (e.g. laion2b_s34b_b79k)
    python3 tools/clip_to_safetensors.py OUT.safetensors --random             random weights (no download: to try
                                                                              the conversion)
  --model NAME   open_clip model name (default ViT-B-32)

Needs torch, regex, ftfy and open_clip_torch. Writes metadata format "sp-clip-text", version "1",
config (width, layers, heads, context, vocab, embed_dim, quick_gelu), source, check_text and
check_emb (open_clip's float32 encode_text of check_text, a JSON list: SP_CLIP_FILE=OUT
build/sp_tests --filter 'clip/file' compares the C embedding with it); the text tower's float32
tensors under open_clip's state-dict names; "bpe_merges", a U8 tensor holding the merges text
open_clip reads (the header line and the vocab - 514 merges of bpe_simple_vocab_16e6.txt)."""
import argparse, gzip, json, struct, sys
import numpy as np

FORMAT, VERSION = "sp-clip-text", "1"
CHECK_TEXT = "door open"


def text_tensors(model):
    """(config, [(name, float32 array)]) in the loader's order; refuses what clip.c does not run"""
    import torch
    from open_clip.model import CLIP
    from open_clip.transformer import QuickGELU, LayerNorm
    if not isinstance(model, CLIP):
        sys.exit(f"{type(model).__name__}: only open_clip's CLIP class (OpenAI-style text tower) converts")
    blk = model.transformer.resblocks[0]
    cfg = dict(width=model.transformer.width, layers=len(model.transformer.resblocks), heads=blk.attn.num_heads,
               context=model.context_length, vocab=model.vocab_size, embed_dim=int(model.text_projection.shape[1]),
               quick_gelu=int(isinstance(blk.mlp.gelu, QuickGELU)))
    problems = []
    if getattr(model, "text_pool_type", "argmax") != "argmax":
        problems.append(f"text_pool_type {model.text_pool_type} (want argmax)")
    if model.attn_mask is None:
        problems.append("no causal mask")
    if not isinstance(model.text_projection, torch.nn.Parameter):
        problems.append("text_projection is a Linear layer")
    if not isinstance(blk.ls_1, torch.nn.Identity):
        problems.append("layer scale")
    if blk.mlp.c_fc.out_features != 4 * cfg["width"]:
        problems.append(f"mlp width {blk.mlp.c_fc.out_features} (want 4 x {cfg['width']})")
    if not isinstance(blk.mlp.gelu, (QuickGELU, torch.nn.GELU)) or getattr(blk.mlp.gelu, "approximate", "none") != "none":
        problems.append(f"activation {blk.mlp.gelu}")
    if not isinstance(blk.ln_1, torch.nn.LayerNorm) or blk.ln_1.eps != 1e-5:
        problems.append("layer norm other than LayerNorm(eps=1e-5)")
    if cfg["vocab"] != 49408:
        problems.append(f"vocabulary {cfg['vocab']} (CLIP's BPE has 49408)")
    if problems:
        sys.exit("this text tower differs from CLIP's: " + "; ".join(problems))
    sd = model.state_dict()
    names = ["token_embedding.weight", "positional_embedding"]
    for l in range(cfg["layers"]):
        p = f"transformer.resblocks.{l}."
        names += [p + n for n in ["ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                                  "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
                                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]]
    names += ["ln_final.weight", "ln_final.bias", "text_projection"]
    return cfg, [(n, sd[n].detach().float().cpu().numpy()) for n in names]


def merges_text(vocab):
    import open_clip.tokenizer as ot
    lines = gzip.open(ot.default_bpe()).read().decode("utf-8").split("\n")
    return ("\n".join(lines[:vocab - 514 + 1]) + "\n").encode("utf-8")


def save(path, tensors, merges, meta):
    """safetensors: F32 tensors in order, then the U8 merges; header padded to 8 bytes"""
    hdr, off = {"__metadata__": meta}, 0
    for name, a in tensors:
        hdr[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    hdr["bpe_merges"] = {"dtype": "U8", "shape": [len(merges)], "data_offsets": [off, off + len(merges)]}
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, a in tensors:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
        f.write(merges)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--model", default="ViT-B-32")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--openai", metavar="FILE", help="OpenAI's checkpoint (JIT archive or state dict)")
    g.add_argument("--pretrained", metavar="TAG_OR_FILE", help="an open_clip pretrained tag or checkpoint")
    g.add_argument("--random", action="store_true", help="random weights, for trying the conversion")
    a = ap.parse_args()
    import torch, open_clip
    from open_clip.openai import load_openai_model
    if a.random:
        torch.manual_seed(0)
        model, source = open_clip.create_model(a.model, pretrained=None, force_quick_gelu=True), "random"
    elif a.pretrained:
        model, source = open_clip.create_model(a.model, pretrained=a.pretrained), f"open_clip {a.model} {a.pretrained}"
    else:
        name = a.openai or a.model
        model, source = load_openai_model(name, precision="fp32", device="cpu"), f"openai {name}"
    model = model.float().eval()
    cfg, tensors = text_tensors(model)
    merges = merges_text(cfg["vocab"])
    with torch.no_grad():
        emb = model.encode_text(open_clip.tokenize([CHECK_TEXT]))[0]
    save(a.out, tensors, merges, dict(format=FORMAT, version=VERSION, config=json.dumps(cfg), source=source,
                                      check_text=CHECK_TEXT, check_emb=json.dumps(emb.tolist())))
    n = sum(t.size for _, t in tensors)
    print(f"{a.out}: {source}, {n / 1e6:.1f} M weights, config {json.dumps(cfg)}")
    print(f"check: encode_text('{CHECK_TEXT}')[:4] = {emb[:4].tolist()}, norm {float(emb.norm()):.6f}")


if __name__ == "__main__":
    main()
