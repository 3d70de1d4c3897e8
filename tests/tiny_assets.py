"""Tiny random encoders and generated task data for training tests (no hub, seconds on a CPU)."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

WORDS = ["the", "a", "man", "woman", "dog", "cat", "eats", "plays", "reads", "runs", "apple", "guitar", "book",
         "park", "in", "on", "berlin", "paris", "anna", "peter", "google", "bank", "der", "la", "le", "el", "und"]
LANGS = ("en", "de", "fr")


def tiny_bert_config(layers: int = 3, hidden: int = 32) -> BertConfig:
    """A random BERT's config small enough for unit tests (vocabulary of 99 ids)."""
    return BertConfig(vocab_size=99, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=2 * hidden, max_position_embeddings=64)


def token_batch(B: int = 3, T: int = 9, seed: int = 0, low: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (B, T) in [low, 99) and an attention mask (B, T) whose first row is padded after 5 tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(low, 99, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 5:] = 0
    return ids, mask


def make_encoder(folder: Path, layers: int = 2, hidden: int = 32) -> Path:
    """A random BERT with a word-level vocabulary, saved like a pretrained one."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # the vocabulary passed by position: transformers 5 ignores the vocab_file keyword of 4 (every word [UNK])
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


def _sentence(rng: random.Random, n: int = 5) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_task_data(folder: Path, n: int = 24, seed: int = 0) -> Path:
    """Every task in every file format the loaders read, for LANGS and the train/dev/test splits."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        for split in ("train", "dev", "test"):
            with open(folder / f"stsb-{lang}-{split}.csv", "w", newline="") as f:  # stsb_multi_mt: no header
                w = csv.writer(f)
                for _ in range(n):
                    w.writerow([_sentence(rng), _sentence(rng), round(rng.uniform(0, 5), 2)])
            with open(folder / f"xnli-{lang}-{split}.tsv", "w", newline="") as f:
                w = csv.writer(f, delimiter="\t")
                w.writerow(["premise", "hypothesis", "label"])
                for i in range(n):
                    w.writerow([_sentence(rng), _sentence(rng), ["entailment", "neutral", "contradiction"][i % 3]])
            with open(folder / f"pawsx-{lang}-{split}.jsonl", "w") as f:
                for i in range(n):
                    f.write(json.dumps({"sentence1": _sentence(rng), "sentence2": _sentence(rng), "label": i % 2}) + "\n")
            for task, tags in (("ner", ["O", "B-PER", "I-PER", "B-LOC", "O"]), ("pos", ["DET", "NOUN", "VERB", "ADP", "PROPN"])):
                with open(folder / f"{task}-{lang}-{split}.jsonl", "w") as f:
                    for _ in range(n):
                        k = rng.randint(2, 7)
                        f.write(json.dumps({"tokens": _sentence(rng, k).split(), "tags": [rng.choice(tags) for _ in range(k)]}) + "\n")
    return folder
