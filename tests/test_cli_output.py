"""dlfa-train's flags and what it prints: help, --save_strategy no, --bf16 on a CPU, sweeps, evaluate-only,
--do_eval alone, best_checkpoint, torchrun."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlfa_models import train
from dlfa_models.training import logs
from dlfa_models.training.parsing import build_parser, parse_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def cli(encoder, data, out, *extra):
    return ["--task", "sts", "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval-langs", "en,de", "--max-steps", "3", "--per_device_train_batch_size", "8", "--backend", "torch",
            "--max-length", "64", *extra]


@pytest.fixture(scope="module")
def sweep(assets, tmp_path_factory):
    """A two-run sweep (baseline, layer 1) and what it logged."""
    encoder, data = assets
    out = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        log = []
        mp.setattr(logs.logger, "info", lambda msg, *a: log.append(msg % a))
        assert train.main(cli(encoder, data, out, "--fusion_layer", "none,1")) == 0
    return out, log


def test_help_lists_dlfa_options_first_in_their_own_groups():
    text = build_parser().format_help()
    groups = [text.index(title) for title in ("dlfa: model and fusion:", "dlfa: data and protocol:",
                                              "Trainer (transformers TrainingArguments):")]
    assert groups == sorted(groups)
    option = lambda name: text.index(f"\n  --{name} ")  # noqa: E731  (its entry, not a mention in other help)
    assert groups[0] < option("fusion_layer") < groups[1] < option("eval_split") < groups[2]
    assert groups[2] < option("learning_rate") and groups[2] < option("do_train")
    do_train = text[option("do_train"):option("do_eval")]
    assert "all\n" in do_train or "all three" in " ".join(do_train.split())
    assert "default: False" not in do_train


def test_save_strategy_no_and_bf16_on_a_cpu_train_and_score(assets, tmp_path):
    encoder, data = assets
    parsed = parse_args(["--bf16", "--save_strategy", "no"]).training
    assert not parsed.load_best_model_at_end
    if not torch.cuda.is_available():
        assert parsed.use_cpu  # bf16 autocast on the CPU, as the Trainer asks
    assert train.main(cli(encoder, data, tmp_path, "--fusion_layer", "1", "--bf16", "--save_strategy", "no")) == 0
    result = json.loads((tmp_path / "sts-layer1" / "results.json").read_text())
    assert result["best_checkpoint"] is None and set(result["scores"]) == {"en", "de"}
    assert (tmp_path / "sts-layer1" / "model.safetensors").is_file()


def test_a_sweep_says_which_run_of_how_many(sweep):
    out, log = sweep
    assert f"run 1 of 2: {out / 'sts-baseline'}" in log and f"run 2 of 2: {out / 'sts-layer1'}" in log


def test_best_checkpoint_never_names_a_deleted_folder(assets, sweep, tmp_path):
    out, _ = sweep
    result = json.loads((out / "sts-layer1" / "results.json").read_text())
    assert result["best_checkpoint"] is None and result["best_step"] == 3  # pruned: the model is the folder's own
    assert not list((out / "sts-layer1").glob("checkpoint-*"))
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, "--fusion_layer", "1", "--keep_checkpoints")) == 0
    kept = json.loads((tmp_path / "sts-layer1" / "results.json").read_text())["best_checkpoint"]
    assert Path(kept).name == "checkpoint-3" and Path(kept).is_dir()


def test_evaluate_only_of_a_sweep_folder_lists_its_runs(sweep, tmp_path, capsys):
    out, _ = sweep
    assert train.main(["--do_predict", "--model_name_or_path", str(out), "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"{out} is a folder of 2 runs, not one model; score one of them: " in err
    assert f"{out / 'sts-baseline'}, {out / 'sts-layer1'}" in err
    assert not (tmp_path / "x").exists()


def test_evaluate_only_does_not_claim_what_the_model_was_trained_on(assets, sweep, tmp_path, capsys):
    out, _ = sweep
    run = out / "sts-layer1"
    assert train.main(["--do_predict", "--model_name_or_path", str(run), "--output_dir", str(tmp_path),
                       "--data", str(assets[1]), "--eval_langs", "en,de", "--max-length", "64"]) == 0
    printed = capsys.readouterr().out
    assert f"sts: {run}; test spearman per language" in printed and "trained on" not in printed


def test_do_eval_alone_prints_the_source_dev_score(assets, sweep, tmp_path, capsys):
    out, _ = sweep
    run = out / "sts-layer1"
    assert train.main(["--do_eval", "--model_name_or_path", str(run), "--output_dir", str(tmp_path),
                       "--data", str(assets[1]), "--max-length", "64"]) == 0
    printed = capsys.readouterr().out
    dev = json.loads((tmp_path / "eval_results.json").read_text())["eval_spearman"]
    assert f"sts: source-language dev (en) spearman\nlayer1  {dev:.4f}" in printed


@pytest.mark.skipif(sys.platform != "linux", reason="gloo torchrun test written for Linux")
def test_torchrun_logs_each_line_once_without_a_ddp_warning(assets, tmp_path):
    encoder, data = assets
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "dlfa_models.train", *cli(encoder, data, tmp_path, "--fusion_layer", "1", "--per_device_train_batch_size", "4",
                                     "--max-steps", "2")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stderr.count("scoring en (1/2)") == 1 and run.stderr.count("run sts: layer1") == 1, run.stderr
    assert "find_unused_parameters" not in run.stderr
    assert run.stdout.count("trained on en") == 1


def test_scoring_a_folder_again_leaves_only_its_languages_predictions(assets, sweep, tmp_path):
    out, _ = sweep
    command = ["--do_predict", "--model_name_or_path", str(out / "sts-layer1"), "--output_dir", str(tmp_path),
               "--data", str(assets[1]), "--max-length", "64", "--eval_langs"]
    assert train.main(command + ["en,de"]) == 0
    assert sorted(p.name for p in tmp_path.glob("predict_results_*.txt")) == ["predict_results_de.txt",
                                                                             "predict_results_en.txt"]
    assert train.main(command + ["en"]) == 0
    assert [p.name for p in tmp_path.glob("predict_results_*.txt")] == ["predict_results_en.txt"]
    assert list(json.loads((tmp_path / "results.json").read_text())["scores"]) == ["en"]
