"""A tiny E5S1 file written from scratch for converter tests (valid, then corrupted on purpose).

The writer quantises fp32 weights to Q4_0 itself, so the expected dequantised values are known
independently of the reader under test.
"""
from __future__ import annotations

import struct

import numpy as np

# pieces: specials first (XLM-R order), a few words, <mask> last
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁a", "▁b", "a", "b", "c", "▁ab", "<mask>"]
NORMALIZATION = {0x09: " ", 0xFF41: "a", 0x00AD: ""}  # tab -> space, fullwidth a -> a, soft hyphen deleted


def quantize_q4_0(w: np.ndarray):
    """fp32 (rows, cols) -> (Q4_0 bytes, the fp32 values they decode to)."""
    blocks = w.reshape(-1, 32).astype(np.float32)
    d = (np.abs(blocks).max(1) / 7).astype(np.float16)
    scale = d.astype(np.float32)[:, None]
    q = np.clip(np.round(np.divide(blocks, scale, out=np.zeros_like(blocks), where=scale > 0)) + 8, 0, 15)
    q = q.astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    raw = b"".join(struct.pack("<e", float(s)) + p.tobytes() for s, p in zip(d, packed))
    return raw, ((q.astype(np.float32) - 8) * scale).reshape(w.shape)


def tiny_e5(hidden=64, layers=2, heads=2, ffn=128, max_positions=16, seed=0):
    """(file bytes, {file tensor name: expected fp32 array}) for a small valid E5S1 model."""
    rng = np.random.default_rng(seed)
    vocab_rows = len(PIECES) + 3  # spare rows, as the real file has
    tensors, expected = {}, {}

    def add(name, shape, quantised):
        w = rng.normal(0, 0.05, shape).astype(np.float32)
        if quantised:
            raw, expected[name] = quantize_q4_0(w)
            tensors[name] = (1, w.size, raw)
        else:
            expected[name] = w
            tensors[name] = (0, w.size, w.tobytes())

    add("emb.word", (vocab_rows, hidden), True)
    add("emb.pos", (max_positions, hidden), False)
    add("emb.type", (2, hidden), False)
    add("emb.ln.w", (hidden,), False)
    add("emb.ln.b", (hidden,), False)
    for layer in range(layers):
        for part, shape in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                            ("ao", (hidden, hidden)), ("fi", (ffn, hidden)), ("fo", (hidden, ffn))):
            add(f"l{layer}.{part}.w", shape, True)
            add(f"l{layer}.{part}.b", shape[:1], False)
        for norm in ("aln", "oln"):
            add(f"l{layer}.{norm}.w", (hidden,), False)
            add(f"l{layer}.{norm}.b", (hidden,), False)

    head = b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, ffn, vocab_rows, max_positions, 2, 1e-12, 32)
    blobs = [p.encode() for p in PIECES]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    scores = np.array([0, 0, 0, 0, -2, -3, -3, -4, -4, -5, -1, 0], "<f4")
    vocab = struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, offsets[-1]) + offsets.tobytes() + scores.tobytes()
    vocab += b"".join(blobs)
    norm = b"".join(struct.pack("<IB", cp, len(s)) + struct.pack(f"<{len(s)}I", *map(ord, s))
                    for cp, s in NORMALIZATION.items())
    vocab += struct.pack("<iI", len(NORMALIZATION), len(norm)) + norm

    directory_len = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in tensors)
    offset = len(head) + len(vocab) + directory_len
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, (dtype, count, raw) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        offset += len(raw)
        data += raw
    return head + vocab + directory + data, expected
