"""How ``tests/old_layout_run`` was made: by the flat layout of ``dlfa_models`` (commit 271dfb7), before
the package was regrouped into rooms. Kept to say exactly what the folder holds; running it again from a
checkout of the new layout would make a new-layout folder, which is not the point of the test.

    cd <checkout of 271dfb7> && python tests/old_layout_run/make_old_layout_run.py OUT_DIR

``seeds/``: ``dlfa-train`` with two settings (baseline, layer 1) and two seeds on a tiny random BERT and
the generated STS files of ``tests/tiny_assets.py``; the saved model is kept in ``sts-layer1/seed-0``
only, and the pickled ``training_args.bin`` and the PNG plots are dropped (≲ 100 KB in all).
``applied/``: a tiny ``BertForSequenceClassification`` after ``apply_dlfa``, saved with ``save_pretrained``.
``expected.json``: the commands, the versions, and both models' logits on a few sentence pairs.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_assets import make_encoder, make_task_data  # noqa: E402

PAIRS = [("a man plays the guitar", "a woman plays a guitar"), ("the dog runs in the park", "anna reads a book"),
         ("peter eats an apple", "peter eats an apple in paris")]
TRAIN = ["--task", "sts", "--model_name_or_path", "encoder", "--data", "data", "--output_dir", "seeds",
         "--eval-langs", "en,de,fr", "--max-steps", "2", "--per_device_train_batch_size", "4", "--backend", "torch",
         "--max-length", "32", "--fusion-layer", "none,1", "--seeds", "0,1"]
KEPT_MODEL = Path("seeds/sts-layer1/seed-0")
MODEL_FILES = ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md")


def logits(model, tokenizer) -> list:
    batch = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.tolist()


def main(out: Path) -> None:
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

    from dlfa_models import apply_dlfa

    out.mkdir(parents=True)
    os.chdir(out)
    torch.manual_seed(0)
    make_encoder(Path("encoder"), layers=2, hidden=8)
    make_task_data(Path("data"), n=12)
    subprocess.run([sys.executable, "-m", "dlfa_models.train", *TRAIN], check=True)
    for path in Path("seeds").rglob("*"):
        dropped = path.suffix == ".png" or path.name == "training_args.bin"
        if dropped or (path.name in MODEL_FILES and path.parent != KEPT_MODEL):
            path.unlink()
    tokenizer = AutoTokenizer.from_pretrained("encoder")
    applied = apply_dlfa(BertForSequenceClassification.from_pretrained("encoder", num_labels=3), 1, reduction=2,
                         backend="torch", gate_init=0.8).eval()
    applied.save_pretrained("applied")
    run_model = AutoModelForSequenceClassification.from_pretrained(KEPT_MODEL, aif_backend="torch").eval()
    expected = {
        "made_by": "dlfa 271dfb7 (flat dlfa_models), tests/old_layout_run/make_old_layout_run.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "encoder": "tests/tiny_assets.py make_encoder(layers=2, hidden=8) after torch.manual_seed(0)",
        "data": "tests/tiny_assets.py make_task_data(n=12)", "dlfa_train": TRAIN,
        "pairs": PAIRS, "run_logits": logits(run_model, tokenizer), "applied_logits": logits(applied, tokenizer),
    }
    Path("expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    shutil.rmtree("encoder")
    shutil.rmtree("data")


if __name__ == "__main__":
    main(Path(sys.argv[1]).absolute())
