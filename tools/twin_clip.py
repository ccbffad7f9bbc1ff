#!/usr/bin/python3
"""twin_clip.py: PyTorch twin of src/models/clip.c and clip_bpe.c (CLIP ViT-B/32's text tower and its BPE
tokenizer), built from open_clip's own classes; it writes the fixtures of tests/test_models_clip.c.

Needs torch, regex, ftfy and open_clip_torch (docs/clip.md says how to install them).

    python3 tools/twin_clip.py [outdir]      write the fixtures (default tests/fixtures/clip)
    python3 tools/twin_clip.py --tables      print clip_bpe.c's Unicode tables (generated from the
                                             regex module and Python's str.lower, and ftfy's maps)
    python3 tools/twin_clip.py --corpus DIR  write DIR/merges.txt (the full merges text) and
                                             DIR/corpus.safetensors (6000 strings and their open_clip
                                             ids) for the long tokenizer check:
                                             SP_CLIP_CORPUS_DIR=DIR build/sp_tests --filter 'clip*/*'

No weights are committed: both sides compute every weight from a formula (wvalue below: a 32-bit
integer hash of the tensor's index and the element's index, mapped to center + scale * [-1, 1)).
The list of tensors in order, with shapes, centers and scales, is in the fixture's metadata
("weights"), so the C test writes the same model to a safetensors file and loads it through the
real loader.

Fixture clip.safetensors:
  metadata texts (JSON list of the test strings), weights_full / weights_small (JSON lists
  [name, shape, center, scale]), config_full / config_small (the C config as JSON),
  twin_f32_err (the float32 open_clip model's error against the float64 reference, for the doc)
  tensors ids (S, 77) int32: open_clip.tokenize of each text
          ids16 (S, 16) int32: open_clip.tokenize(text, context_length=16)
          full.emb (S, 512): ViT-B-32 (QuickGELU, as OpenAI's weights) encode_text, float64 model
          full.tokens (R, 512): ln_final features of rows 0..eot of the texts in TOKEN_TEXTS
          small.emb (S, 32): a TextTransformer of width 64, 2 layers, 4 heads, context 16, exact
          GELU, embed 32, on ids16; small.tokens (4, 16, 64): its ln_final features of the texts
          in SMALL_TOKEN_TEXTS
merges_subset.txt: "rank first second" for every merge whose pair occurs while encoding the test
  strings (the full merges text is 1.7 MB); the test rebuilds a full-length merges text with
  placeholder pairs at the other ranks, which never match (see the test)."""
import gzip, json, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TASKS = ["door-open", "door-close", "basketball", "shelf-place", "button-press", "button-press-topdown",
         "faucet-close", "faucet-open", "handle-press", "hammer", "assembly"]
ODD = [
    "", "   ", "!!!", "Hello, World!", "Don't STOP", "don\u2019t stop \u201cnow\u201d",
    "  lots   of\t\twhite\n\nspace  ", "3 blind mice, 1234 and 42.5%",
    "pick up the red block and place it on the blue plate, " * 7,
    "caf\u00e9 na\u00efve", "\u0391\u0398\u0397\u039d\u0391 \u0395\u03bb\u03bb\u03ac\u03b4\u03b1 \u039f\u0394\u039f\u03a3",
    "\u041c\u043e\u0441\u043a\u0432\u0430 \u2013 \u0441\u0442\u043e\u043b\u0438\u0446\u0430",
    "\u6771\u4eac\u30bf\u30ef\u30fc\u306f\u9ad8\u3044", "emoji \U0001f642\U0001f44d ok",
    "&amp;lt;b&amp;gt; AT&amp;T &quot;hi&quot; &#39;x&#x27; a&nbsp;b &rsquo;",
    "<b>&amp;</b> &amp;amp;", "\ufb01ne \ufb02ow", "\uff26\uff35\uff2c\uff2c \uff57\uff49\uff44\uff54\uff48\uff01",
    "<start_of_text>hi<end_of_text>there", "it's we'll they'd I'm you're we've 'S ''s",
    "\u0130stanbul x\u00b2 \u00bd \u0663\u0664", "robot-arm_v2 (x=0.5, y=-1)", "\x1b[31mred\x1b[0m text",
    "control\x07 chars\u200b zero\u00a0width", "supercalifragilisticexpialidocious antidisestablishmentarianism",
]
TOKEN_TEXTS = ["door open", "button press topdown"]  # full.tokens rows 0..eot of these
SMALL_TOKEN_TEXTS = ["door-open", "", "Don't STOP", "pick up the red block and place it on the blue plate, " * 7]
SMALL = dict(width=64, layers=2, heads=4, context=16, vocab=49408, embed_dim=32, quick_gelu=0)
FULL = dict(width=512, layers=12, heads=8, context=77, vocab=49408, embed_dim=512, quick_gelu=1)


def texts():
    out = []
    for t in TASKS + [t.replace("-", " ") for t in TASKS] + ODD:
        if t not in out:
            out.append(t)
    return out


# ------------------------------------------------------------------------------------------------
# weights by formula

def hash32(t, i):
    """tests/test_models_clip.c clip_hash: uint32 arithmetic, wrapping (uint64 arrays, masked)"""
    u = np.uint64
    M, i, t = u(0xFFFFFFFF), np.asarray(i, dtype=u), u(t)
    x = (i * u(0x9E3779B1) + t * u(0x85EBCA77) + u(0x165667B1)) & M
    x ^= x >> u(15); x = (x * u(0x2C1B3C6D)) & M
    x ^= x >> u(12); x = (x * u(0x297A2D39)) & M
    x ^= x >> u(15)
    return x


def wvalue(t, n, center, scale):
    """n values of tensor t: float32(center + scale * ((x >> 8) * 2^-23 - 1)), computed in double"""
    x = hash32(t, np.arange(n, dtype=np.uint64))
    r = (x >> np.uint64(8)).astype(np.float64) * 2.0 ** -23 - 1.0
    return (center + scale * r).astype(np.float32)


def weight_specs(c):
    """[name, shape, center, scale] in the order that gives each tensor its index"""
    w, e = c["width"], c["embed_dim"]
    a = (3.0 / w) ** 0.5  # uniform with std 1/sqrt(fan_in)
    s = [["token_embedding.weight", [c["vocab"], w], 0.0, 0.05],
         ["positional_embedding", [c["context"], w], 0.0, 0.02]]
    for l in range(c["layers"]):
        p = f"transformer.resblocks.{l}."
        s += [[p + "ln_1.weight", [w], 1.0, 0.1], [p + "ln_1.bias", [w], 0.0, 0.05],
              [p + "attn.in_proj_weight", [3 * w, w], 0.0, a], [p + "attn.in_proj_bias", [3 * w], 0.0, 0.02],
              [p + "attn.out_proj.weight", [w, w], 0.0, a], [p + "attn.out_proj.bias", [w], 0.0, 0.02],
              [p + "ln_2.weight", [w], 1.0, 0.1], [p + "ln_2.bias", [w], 0.0, 0.05],
              [p + "mlp.c_fc.weight", [4 * w, w], 0.0, a], [p + "mlp.c_fc.bias", [4 * w], 0.0, 0.02],
              [p + "mlp.c_proj.weight", [w, 4 * w], 0.0, a / 2], [p + "mlp.c_proj.bias", [w], 0.0, 0.02]]
    s += [["ln_final.weight", [w], 1.0, 0.1], ["ln_final.bias", [w], 0.0, 0.05],
          ["text_projection", [w, e], 0.0, a]]
    return s


def state_dict(c):
    import torch
    sd = {}
    for t, (name, shape, center, scale) in enumerate(weight_specs(c)):
        sd[name] = torch.from_numpy(wvalue(t, int(np.prod(shape)), center, scale).reshape(shape))
    return sd


# ------------------------------------------------------------------------------------------------
# models

def full_model():
    import open_clip
    m = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    sd = state_dict(FULL)
    mine = {k: v for k, v in m.state_dict().items() if not k.startswith("visual") and k != "logit_scale"}
    assert sorted(mine) == sorted(sd), set(mine) ^ set(sd)
    missing, _ = m.load_state_dict(sd, strict=False)
    assert all(k.startswith("visual") or k == "logit_scale" for k in missing), missing
    return m.eval()


def small_model():
    import torch.nn as nn
    from open_clip.transformer import TextTransformer
    c = SMALL
    m = TextTransformer(context_length=c["context"], vocab_size=c["vocab"], width=c["width"], heads=c["heads"],
                        layers=c["layers"], output_dim=c["embed_dim"], act_layer=nn.GELU, output_tokens=True)
    m.load_state_dict(state_dict(c), strict=True)
    return m.eval()


def full_tokens(m, ids):
    """the per-token features of encode_text: ln_final output (B, 77, 512)"""
    x = m.token_embedding(ids) + m.positional_embedding
    x = m.transformer(x.permute(1, 0, 2), attn_mask=m.attn_mask).permute(1, 0, 2)
    return m.ln_final(x)


def relerr(a, b):
    return float((a - b).abs().max() / b.abs().max())


# ------------------------------------------------------------------------------------------------
# tokenizer bookkeeping

def merges_used(strings):
    """ranks and pairs of every merge whose pair appears in a word while encoding the strings"""
    import open_clip
    from open_clip.tokenizer import _tokenizer as tk
    import regex as re
    used = {}
    for s in strings:
        for token in re.findall(tk.pat, tk.clean_fn(s)):
            token = "".join(tk.byte_encoder[b] for b in token.encode("utf-8"))
            if token in ("<start_of_text>", "<end_of_text>"):
                continue
            word = tuple(token[:-1]) + (token[-1] + "</w>",)
            while len(word) > 1:
                pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
                for p in pairs:
                    if p in tk.bpe_ranks:
                        used[tk.bpe_ranks[p]] = p
                best = min(pairs, key=lambda p: tk.bpe_ranks.get(p, float("inf")))
                if best not in tk.bpe_ranks:
                    break
                out, i = [], 0
                while i < len(word):
                    if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                        out.append(best[0] + best[1]); i += 2
                    else:
                        out.append(word[i]); i += 1
                word = tuple(out)
    return used


def merges_text():
    """the merges text that CLIP uses: the version line and 48894 merges"""
    import open_clip.tokenizer as ot
    lines = gzip.open(ot.default_bpe()).read().decode("utf-8").split("\n")
    return "\n".join(lines[:49152 - 256 - 2 + 1]) + "\n"


def write_fixtures(out):
    import torch, open_clip
    import nn_st
    os.makedirs(out, exist_ok=True)
    S = texts()
    ids = open_clip.tokenize(S).to(torch.int32)
    ids16 = open_clip.tokenize(S, context_length=16).to(torch.int32)
    torch.set_num_threads(1)
    with torch.no_grad():
        m = full_model()
        emb32 = m.encode_text(ids.long())
        m = m.double()
        emb = m.encode_text(ids.long())
        toks = full_tokens(m, ids.long())
        rows = []
        for t in TOKEN_TEXTS:
            i = S.index(t)
            rows.append(toks[i, :int(ids[i].argmax()) + 1])
        full_tok = torch.cat(rows)
        assert relerr(toks[torch.arange(len(S)), ids.long().argmax(-1)] @ m.text_projection, emb) < 1e-12
        f32_err = relerr(emb32.double(), emb)
        sm = small_model()
        semb32, _ = sm(ids16.long())
        sm = sm.double()
        semb, stok = sm(ids16.long())
        sf32_err = relerr(semb32.double(), semb)
        stok = stok[[S.index(t) for t in SMALL_TOKEN_TEXTS]]
    print("emb std %.3f, max %.3f; tokens std %.3f" % (emb.std(), emb.abs().max(), toks.std()))
    print(f"float32 open_clip vs float64: full {f32_err:.2e}, small {sf32_err:.2e}")
    meta = dict(format="sp-clip-twin", texts=json.dumps(S), weights_full=json.dumps(weight_specs(FULL)),
                weights_small=json.dumps(weight_specs(SMALL)), config_full=json.dumps(FULL),
                config_small=json.dumps(SMALL), token_texts=json.dumps(TOKEN_TEXTS),
                small_token_texts=json.dumps(SMALL_TOKEN_TEXTS),
                twin_f32_err=json.dumps(dict(full=f32_err, small=sf32_err)))
    nn_st.save(os.path.join(out, "clip.safetensors"),
               {"ids": ids, "ids16": ids16, "full.emb": emb.float(), "full.tokens": full_tok.float(),
                "small.emb": semb.float(), "small.tokens": stok.float()}, meta)
    used = merges_used(S)
    with open(os.path.join(out, "merges_subset.txt"), "w", encoding="utf-8") as f:
        f.write("# rank first second: the merges of bpe_simple_vocab_16e6.txt that the test strings meet"
                " (tools/twin_clip.py)\n")
        for r in sorted(used):
            f.write(f"{r} {used[r][0]} {used[r][1]}\n")
    print(f"{len(S)} texts, {len(used)} merges -> {out}")


def write_corpus(out):
    """6000 strings: vocabulary words decoded back to text, glued in random groups, with case,
    punctuation, digits and non-ASCII text mixed in; then odd pieces for the cleaning"""
    import torch, open_clip
    import nn_st
    from open_clip.tokenizer import _tokenizer as tk
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write(merges_text())
    rng = np.random.default_rng(0)
    words = [tk.decode([i]).strip() for i in range(512, 49406)]
    extra = ["\u00c9cole", "\u00fcber", "STRA\u00dfE", "\u0394\u03b5\u03bb\u03c4\u03b1", "\u043f\u0440\u0438\u0432\u0435\u0442",
             "\u4e2d\u6587", "\u3072\u3089\u304c\u306a", "\ud55c\uad6d\uc5b4", "\u0639\u0631\u0628\u064a", "\u05e2\u05d1\u05e8\u05d9\u05ea",
             "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e44\u0e17\u0e22", "x\u00b2", "\u00bd", "\u2163", "3.14", "1,000",
             "!?", "...", "--", "'s", "'LL", "\U0001f600", "\u2122", "\u00a9", "\u00b5m", "\u00aa"]
    S = []
    for k in range(4000):
        n = int(rng.integers(1, 12))
        parts = [words[int(j)] for j in rng.integers(0, len(words), n)]
        parts += [extra[int(j)] for j in rng.integers(0, len(extra), int(rng.integers(0, 3)))]
        rng.shuffle(parts)
        seps = [" ", " ", " ", "", "-", ", ", "  ", "\t"]
        s = parts[0]
        for p in parts[1:]:
            s += seps[int(rng.integers(0, len(seps)))] + p
        if k % 3 == 0:
            s = s.upper()
        elif k % 3 == 1:
            s = s.title()
        S.append(s)
    # odd text: pieces that exercise the cleaning (entities, quotes, widths, controls, escapes,
    # whitespace, case), glued at random; strings that ftfy's mojibake repair or NFC would change
    # are left out (the C tokenizer does neither: docs/clip.md) and counted; no NUL (C strings end there)
    import ftfy
    pieces = ["&amp;", "&#39;", "&lt;", "&gt;", "&nbsp;", "&eacute;", "&EACUTE;", "&amp", "&#x2019;", "&#150;",
              "&rsquo;", "&notanentity;", "&#0;", "&#59;", "&ordf;x", "&macr", "&ampx", "&copy2", "<", ">", "\x1b[31m", "\x1b[0m",
              "'s", "'LL", "'re", "<end_of_text>", "<start_of_text>", "\u017f", "\u0130", "\u212a", "\u00df",
              "\ufb00", "\ufb01", "\uff21\uff42", "\uff71\uff9e", "\u3000", "\u00a0", "\u2028", "\t", "\n",
              "\r\n", "\x01", "\x07", "\x7f", "\x85", "\x92", "\u200b", "\ufeff", "\u2018", "\u201c",
              "\u02bc", "\u03a3", "\u039f\u0394\u039f\u03a3", "\u00c9T\u00c9", "\u0663", "\u00b2", "\u2163",
              "\U0001f600", "\u4e2d", "\u30ab", "\ud55c", "...", "--", "!?", " ", "  ", "x", "ABC", "door", "42"]
    odd, gaps = [], 0
    while len(odd) < 2000:
        t = "".join(pieces[int(j)] for j in rng.integers(0, len(pieces), int(rng.integers(1, 10))))
        if ftfy.fix_text(t) != ftfy.fix_text(t, fix_encoding=False, normalization=None):
            gaps += 1
            continue
        odd.append(t)
    S += odd
    ids = open_clip.tokenize(S).to(torch.int32)
    nn_st.save(os.path.join(out, "corpus.safetensors"), {"ids": ids}, dict(texts=json.dumps(S)))
    print(f"{len(S)} strings -> {out} ({gaps} odd strings left out: ftfy's mojibake repair or NFC changed them)")


# ------------------------------------------------------------------------------------------------
# C tables

def pack(items, indent=4, width=116):
    """C initialiser items, as many a line as fit in width"""
    lines, cur = [], ""
    for it in items:
        if cur and indent + len(cur) + 2 + len(it) > width:
            lines.append(cur + ",")
            cur = it
        else:
            cur = cur + ", " + it if cur else it
    lines.append(cur)
    return ("\n" + " " * indent).join(lines)


def c_ranges(name, pred, what):
    r, s = [], None
    for c in range(0x110000 + 1):
        p = c < 0x110000 and not 0xD800 <= c <= 0xDFFF and pred(chr(c))
        if p and s is None:
            s = c
        elif not p and s is not None:
            r.append((s, c - 1)); s = None
    return (f"static const uint32_t {name}[][2] = {{  // {what}: {len(r)} ranges (decimal)\n    " +
            pack(f"{{{a}, {b}}}" for a, b in r) + "};\n")


def print_tables():
    import regex
    import ftfy.chardata as fc
    print("/* generated by tools/twin_clip.py --tables: regex %s (\\p{L}, \\p{N}, \\s), Python %s str.lower,"
          " ftfy's maps */" % (regex.__version__, sys.version.split()[0]))
    print(c_ranges("k_letter", lambda ch: regex.match(r"\p{L}", ch) is not None, "\\p{L}"))
    print(c_ranges("k_number", lambda ch: regex.match(r"\p{N}", ch) is not None, "\\p{N}"))
    print(c_ranges("k_space", lambda ch: regex.match(r"\s", ch) is not None, "\\s"))
    # Python's final-sigma rule, read off str.lower itself: capital sigma lowercases to the final
    # form when the nearest character before it that is not case-ignorable is cased, and the
    # nearest after it is not
    fin = lambda s: s.lower()[-1] == "\u03c2"
    print(c_ranges("k_ignorable", lambda ch: fin("A" + ch + "\u03a3") and not fin("1" + ch + "\u03a3"),
                   "case-ignorable"))
    print(c_ranges("k_cased", lambda ch: fin("1" + ch + "\u03a3"), "cased and not case-ignorable"))
    # str.lower as runs {first, last, delta, step}: every step-th code point in [first, last] maps to
    # itself + delta; U+0130 (lowercase 'i' + U+0307) is handled apart
    runs = []
    for c in range(0x110000):
        lo = chr(c).lower()
        if lo == chr(c) or len(lo) != 1:
            continue
        d = ord(lo) - c
        if runs and runs[-1][2] == d and c - runs[-1][1] in (1, 2) and runs[-1][3] in (0, c - runs[-1][1]):
            a, _, _, _ = runs[-1]; runs[-1] = (a, c, d, c - runs[-1][1])
        else:
            runs.append((c, c, d, 0))
    print(f"static const clip_case k_lower[] = {{  // {len(runs)} runs\n    " +
          pack(f"{{0x{a:X}, 0x{b:X}, {d}, {max(s, 1)}}}" for a, b, d, s in runs) + "};\n")
    # ftfy: ligatures, width, C1 controls (as Windows-1252)
    def cstr(s):
        esc = {'"': '\\"', "\\": "\\\\"}
        return '"' + "".join(f"\\u{ord(ch):04X}" if ord(ch) > 0x7E else esc.get(ch, ch) for ch in s) + '"'
    lig = sorted(fc.LIGATURES.items())
    print(f"static const clip_map k_ligature[] = {{  // {len(lig)}\n    " +
          pack(f"{{0x{k:X}, {cstr(v)}}}" for k, v in lig) + "};\n")
    wid = sorted(fc.WIDTH_MAP.items())
    print(f"static const clip_map k_width[] = {{  // {len(wid)}\n    " +
          pack(f"{{0x{k:X}, {cstr(v)}}}" for k, v in wid) + "};\n")
    # HTML entities: a common subset of html5's (symbols, quotes, dashes, Latin-1 letters), with
    # flags: 1 "name;" is in html5, 2 "name" (no semicolon) is too (html.unescape's legacy
    # prefixes), 4 ftfy alone knows it (its upper-case forms of lower-case names)
    import html.entities as he
    names = ["amp", "lt", "gt", "quot", "apos", "nbsp", "copy", "reg", "trade", "deg", "plusmn", "times",
             "divide", "middot", "para", "sect", "laquo", "raquo", "iexcl", "iquest", "cent", "pound", "yen",
             "euro", "rsquo", "lsquo", "rdquo", "ldquo", "sbquo", "bdquo", "ndash", "mdash", "hellip", "bull",
             "prime", "shy", "micro", "frac12", "frac14", "frac34", "sup2", "sup3"]
    names += sorted(n.rstrip(";") for n, v in he.html5.items()
                    if n.endswith(";") and len(v) == 1 and 0xC0 <= ord(v) <= 0xFF and v.isalpha())
    names += sorted(n for n in he.html5 if not n.endswith(";"))  # every legacy name (html.unescape's prefixes)
    rows = {}
    for n in names:
        for m in dict.fromkeys([n, n.upper()]):
            if m + ";" in he.html5:
                rows[m] = (he.html5[m + ";"], 1 | (2 if m in he.html5 else 0))
            elif m == n.upper() and n == n.lower() and m != n and ("&" + m + ";") in fc.HTML_ENTITIES:
                rows[m] = (fc.HTML_ENTITIES["&" + m + ";"], 4)
    ent = sorted(rows.items())
    print(f"static const clip_entity k_entity[] = {{  // {len(ent)}, sorted by name\n    " +
          pack(f'{{"{k}", {cstr(v)}, {f}}}' for k, (v, f) in ent) + "};\n")
    c1 = [(c, bytes([c]).decode("sloppy-windows-1252")) for c in range(0x80, 0xA0)]
    print("static const uint16_t k_c1[32] = {  // U+0080..U+009F as Windows-1252\n    " +
          pack(f"0x{ord(v):04X}" for _, v in c1) + "};")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--tables":
        print_tables()
    elif len(sys.argv) > 2 and sys.argv[1] == "--corpus":
        write_corpus(sys.argv[2])
    else:
        write_fixtures(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/clip")
