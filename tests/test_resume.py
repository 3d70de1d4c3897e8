"""--resume and --resume_from_checkpoint (issue 19): every setting that can change a model or a score
must match the record, a checkpoint counts only if every file the resume reads parses, and a run
interrupted while scoring keeps the training metrics of the run that trained."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from dlfa_models import train
from dlfa_models.training import runs, scoring
from dlfa_models.training.arguments import DLFATrainingArguments

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def cli(assets, out, *extra):
    encoder, data = assets
    return ["--task", "sts", "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval-langs", "en,de", "--max-steps", "2", "--per_device_train_batch_size", "8", "--backend", "torch",
            "--max-length", "32", "--fusion-layer", "1", *extra]


@pytest.fixture(scope="module")
def finished(assets, tmp_path_factory):
    """A finished run (layer 1) with its checkpoint kept."""
    out = tmp_path_factory.mktemp("finished")
    assert train.main(cli(assets, out, "--keep_checkpoints")) == 0
    return out


def _stamps(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- items 5 and 14: recorded settings

@pytest.mark.parametrize("extra,key", [
    (["--eval_split", "dev"], "eval_split"),
    (["--eval-langs", "en,fr"], "eval_langs"),
    (["--lr_scheduler_kwargs", '{"power": 2.0}'], "lr_scheduler_kwargs"),
    (["--neftune_noise_alpha", "5"], "neftune_noise_alpha"),
    (["--data_seed", "7"], "data_seed"),
    (["--train_sampling_strategy", "sequential"], "train_sampling_strategy"),
    (["--dataloader_drop_last"], "dataloader_drop_last"),
    (["--optim_args", "foo=1"], "optim_args"),
    (["--do_train", "--do_eval"], "do_predict"),
])
def test_resume_refuses_every_setting_that_changes_results(assets, finished, capsys, extra, key):
    before = _stamps(finished)
    assert train.main(cli(assets, finished, "--keep_checkpoints", "--resume", *extra)) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings" in err and f"{key}: " in err, err
    assert _stamps(finished) == before


def test_resume_accepts_what_cannot_change_results(assets, finished, capsys):
    before = _stamps(finished / "sts-layer1")
    assert train.main(cli(assets, finished, "--keep_checkpoints", "--resume", "--logging_steps", "7",
                          "--save_total_limit", "3", "--run_name", "other", "--disable_tqdm", "true",
                          "--dataloader_num_workers", "1", "--backend", "auto")) == 0
    assert "finished earlier (results.json), skipped" in capsys.readouterr().err
    assert _stamps(finished / "sts-layer1") == before


def test_a_new_trainer_field_is_recorded_by_default():
    @dataclasses.dataclass
    class NewerArguments(DLFATrainingArguments):
        some_new_knob: float = 0.25

    recorded = runs.training_settings(NewerArguments(output_dir="unused"))
    assert recorded["some_new_knob"] == 0.25 and recorded["learning_rate"] == 2e-5
    assert not set(recorded) & runs.UNRECORDED_TRAINING_ARGS


# ----------------------------------------------------------------------------- item 6: --resume_from_checkpoint

def test_resume_from_checkpoint_is_refused_for_several_runs(assets, finished, tmp_path, capsys):
    checkpoint = runs.checkpoints(finished / "sts-layer1")[-1]
    for extra in (["--fusion-layer", "none,1"], ["--seeds", "0,1"]):
        assert train.main(cli(assets, tmp_path / "out", "--resume_from_checkpoint", str(checkpoint), *extra)) == 2
        assert "one run's checkpoint, but this command plans 2 runs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_from_a_checkpoint_of_another_setting_is_refused(assets, finished, tmp_path, capsys):
    checkpoint = runs.checkpoints(finished / "sts-layer1")[-1]
    args = ["--resume_from_checkpoint", str(checkpoint), "--fusion-layer", "none"]
    assert train.main(cli(assets, tmp_path / "a", *args)) == 2
    err = capsys.readouterr().err
    assert "is a checkpoint of another setting" in err and "fusion_layer: 1 there, None now" in err, err
    copy = tmp_path / "copied" / checkpoint.name  # away from its run folder: judged by its config.json
    shutil.copytree(checkpoint, copy)
    assert train.main(cli(assets, tmp_path / "b", "--resume_from_checkpoint", str(copy), "--pooling", "mean")) == 2
    assert "pooling: 'cls' there, 'mean' now" in capsys.readouterr().err
    # a cross-encoder's checkpoint for a bi-encoder run: its config.json names no bi-encoder
    assert train.main(cli(assets, tmp_path / "c", "--resume_from_checkpoint", str(copy), "--architecture", "biencoder",
                          "--pooling", "cls")) == 2
    assert "architecture: None there, 'biencoder' now" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- item 15: complete checkpoints

def _checkpoint(folder, step):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (path / "config.json").write_text("{}")
    save_file({"w": np.zeros(4, np.float32)}, str(path / "model.safetensors"))
    torch.save({"state": {}}, path / "optimizer.pt")
    torch.save(torch.zeros(2), path / "rng_state.pth")
    return path


@pytest.mark.parametrize("cut", ["trainer_state.json", "model.safetensors", "optimizer.pt", "rng_state.pth",
                                 "config.json"])
@pytest.mark.parametrize("length", ["empty", "half"])
def test_a_checkpoint_with_a_file_cut_short_is_not_complete(tmp_path, cut, length):
    good = _checkpoint(tmp_path, 2)
    bad = _checkpoint(tmp_path, 3)
    data = (bad / cut).read_bytes()
    (bad / cut).write_bytes(b"" if length == "empty" else data[:len(data) // 2])
    assert runs.checkpoint_defect(good) is None
    assert runs.checkpoint_defect(bad) == f"{cut} does not parse" or cut in runs.checkpoint_defect(bad)
    assert runs.last_complete_checkpoint(tmp_path) == str(good)


def test_a_checkpoint_without_weights_is_not_complete(tmp_path):
    path = _checkpoint(tmp_path, 2)
    (path / "model.safetensors").unlink()
    assert runs.checkpoint_defect(path) == "no model weights"
    assert runs.last_complete_checkpoint(tmp_path) is None


# ----------------------------------------------------------------------------- item 10: killed while scoring

def test_a_run_killed_while_scoring_keeps_its_training_metrics_on_resume(assets, tmp_path, monkeypatch):
    args = cli(assets, tmp_path)
    real = scoring.score_languages

    def killed(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(scoring, "score_languages", killed)
    with pytest.raises(KeyboardInterrupt):
        train.main(args)
    run = tmp_path / "sts-layer1"
    trained = json.loads((run / "train_results.json").read_text())
    assert trained["train_loss"] > 0 and not (run / "results.json").exists()
    monkeypatch.setattr(scoring, "score_languages", real)
    assert train.main(args + ["--resume"]) == 0
    assert json.loads((run / "train_results.json").read_text()) == trained
    assert json.loads((run / "all_results.json").read_text())["train_loss"] == trained["train_loss"]
    assert json.loads((run / "results.json").read_text())["train_time_s"] == round(trained["train_runtime"], 2)
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 2  # no step after the last
    assert train.main(cli(assets, tmp_path / "uninterrupted")) == 0
    expected = json.loads((tmp_path / "uninterrupted" / "sts-layer1" / "results.json").read_text())["scores"]
    assert json.loads((run / "results.json").read_text())["scores"] == expected
