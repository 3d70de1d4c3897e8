"""The files that make a saved DLFA bi-encoder folder a sentence-transformers model.

``SentenceTransformer(folder)`` (after ``import dlfa_models``, which registers the ``dlfa`` model type with
``AutoConfig`` and ``AutoModel``) then builds: a ``Transformer`` module that loads the folder with
``AutoModel`` — a :class:`DLFAModel`, the bi-encoder's per-sentence encoder + AIF, no remote code — and
the folder's tokenizer; a ``Pooling`` module with the config's ``sentence_pooling``; a ``Normalize``
module if ``config.normalize_embeddings``. ``config_sentence_transformers.json`` names the sentence
prompt (``config.sentence_prompt``) as the default prompt and cosine as the similarity.

The module types and config keys are the long-standing ones (``sentence_transformers.models.*``,
``pooling_mode_*_tokens``), which sentence-transformers 2 to 6 all load. Writing them needs no
sentence-transformers installed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .configuration_dlfa import POOLINGS

SENTENCE_BERT_CONFIG = "sentence_bert_config.json"
SENTENCE_TRANSFORMERS_CONFIG = "config_sentence_transformers.json"
MODULES = "modules.json"
POOLING_FOLDER = "1_Pooling"
NORMALIZE_FOLDER = "2_Normalize"
PROMPT_NAME = "query"
# every mode flag of the legacy Pooling config, so older readers find each key (only ours is true)
_POOLING_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens",
                 "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}


def check_sentence_transformers_settings(config) -> None:
    """Validate (and default) the config fields the files are written from: sentence_prompt (str),
    normalize_embeddings (bool), max_seq_length (None or a positive int)."""
    prompt = getattr(config, "sentence_prompt", "")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise TypeError(f"sentence_prompt must be a string ('' for none), got {prompt!r}")
    normalize = getattr(config, "normalize_embeddings", False)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize_embeddings must be True or False, got {normalize!r}")
    max_len = getattr(config, "max_seq_length", None)
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"max_seq_length must be None or a positive int, got {max_len!r}")
    config.sentence_prompt, config.normalize_embeddings, config.max_seq_length = prompt, normalize, max_len


def sentence_transformers_files(config) -> dict[str, object]:
    """Relative path -> JSON content of every file to write, for a bi-encoder's config."""
    check_sentence_transformers_settings(config)
    if config.sentence_pooling not in POOLINGS:
        raise ValueError(f"sentence_pooling must be one of {POOLINGS}, got {config.sentence_pooling!r}")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": POOLING_FOLDER, "type": "sentence_transformers.models.Pooling"}]
    if config.normalize_embeddings:
        modules.append({"idx": 2, "name": "2", "path": NORMALIZE_FOLDER, "type": "sentence_transformers.models.Normalize"})
    max_len = config.max_seq_length or getattr(config.encoder, "max_position_embeddings", None)
    pooling = {"word_embedding_dimension": config.hidden_size}
    pooling.update({key: mode == config.sentence_pooling for mode, key in _POOLING_KEYS.items()})
    prompt = config.sentence_prompt
    # the same prompt for queries and documents: STS is symmetric, both sentences were trained with it
    prompts = {PROMPT_NAME: prompt, "document": prompt} if prompt else {}
    return {
        MODULES: modules,
        SENTENCE_BERT_CONFIG: {"max_seq_length": max_len, "do_lower_case": False},
        f"{POOLING_FOLDER}/config.json": pooling,
        SENTENCE_TRANSFORMERS_CONFIG: {"model_type": "SentenceTransformer", "prompts": prompts,
                                       "default_prompt_name": PROMPT_NAME if prompt else None,
                                       "similarity_fn_name": "cosine"},
    }


def write_sentence_transformers_files(config, folder) -> None:
    """Write the files of :func:`sentence_transformers_files` into ``folder`` (and ``2_Normalize/`` if it
    normalises; sentence-transformers' Normalize reads nothing from it)."""
    folder = Path(os.fspath(folder))
    files = sentence_transformers_files(config)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    if config.normalize_embeddings:
        (folder / NORMALIZE_FOLDER).mkdir(exist_ok=True)
    elif (folder / NORMALIZE_FOLDER).is_dir() and not any((folder / NORMALIZE_FOLDER).iterdir()):
        (folder / NORMALIZE_FOLDER).rmdir()  # left by an earlier save of a normalising model into this folder
