"""dlfa-train as a Hugging Face user meets it: Trainer flags, config files, outputs, evaluate-only,
run folders, option checks before any work, the AIF learning rate, seeds and gate statistics."""
import json
import re
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

import dlfa_models
from dlfa_models import train
from dlfa_models.data import TASKS
from dlfa_models.training import arguments, build, planning, scoring
from dlfa_models.training import run as training_run
from dlfa_models.training.arguments import UsageError
from dlfa_models.training.parsing import build_parser, parse_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def cli(encoder, data, out, *extra):
    return ["--task", "sts", "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval-langs", "en,de,fr", "--max-steps", "3", "--per_device_train_batch_size", "8", "--backend", "torch",
            "--max-length", "64", *extra]


@pytest.fixture(scope="module")
def trained(assets, tmp_path_factory):
    """One finished fusion run (layer 1) with the default outputs."""
    encoder, data = assets
    out = tmp_path_factory.mktemp("trained")
    assert train.main(cli(encoder, data, out, "--fusion-layer", "1")) == 0
    return out / "sts-layer1"


# ----------------------------------------------------------------------------- parsing

def test_trainer_flags_in_both_spellings_and_the_old_aliases():
    snake = parse_args(["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                        "--save_only_model", "--report_to", "none", "--output_dir", "o", "--model_name_or_path", "m",
                        "--learning_rate", "1e-4", "--num_train_epochs", "2", "--fusion_layer", "3"])
    dash = parse_args(["--per-device-train-batch-size", "4", "--gradient-accumulation-steps", "2",
                       "--save-only-model", "--report-to", "none", "--output-dir", "o", "--encoder", "m",
                       "--lr", "1e-4", "--epochs", "2", "--fusion-layer", "3"])
    old = parse_args(["--batch-size", "4", "--gradient_accumulation_steps", "2", "--save_only_model",
                      "--output-dir", "o", "--encoder", "m", "--lr", "1e-4", "--epochs", "2", "--fusion-layer", "3"])
    for args in (snake, dash, old):
        t = args.training
        assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.save_only_model) == (4, 2, True)
        assert (t.learning_rate, t.num_train_epochs, t.output_dir, t.report_to) == (1e-4, 2.0, "o", [])
        assert args.model.model_name_or_path == "m" and args.model.fusion_layer == "3"


@pytest.mark.parametrize("world_size, device, on_cpu", [
    (2, None, True), (2, "mps", True), (2, "cuda", False), (2, "xpu", False), (1, None, False), (1, "mps", False)])
def test_torchrun_processes_train_on_the_cpu_only_without_a_ddp_device(world_size, device, on_cpu):
    # the flag itself is set in the Trainer arguments, checked end to end by the torchrun test
    assert arguments.cpu_processes(world_size, device) is on_cpu


def test_protocol_defaults():
    t = parse_args([]).training
    assert t.do_train and t.do_eval and t.do_predict  # none given: the zero-shot protocol
    assert (t.eval_strategy.value, t.save_strategy.value, t.save_total_limit) == ("epoch", "epoch", 1)
    assert t.load_best_model_at_end and t.greater_is_better and t.report_to == []
    only = parse_args(["--do_predict"]).training
    assert only.do_predict and not only.do_train
    steps = parse_args(["--eval_steps", "5"]).training
    assert (steps.eval_strategy.value, steps.save_strategy.value, steps.save_steps) == ("steps", "steps", 5)


def test_every_option_has_help_text():
    parser = build_parser()
    missing = [a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help" and not a.help]
    assert not missing


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_file_gives_values_the_command_line_overrides(tmp_path, suffix):
    values = {"task": "xnli", "fusion_layer": "none,4", "learning_rate": 3e-5, "report_to": ["tensorboard"],
              "do_train": True}
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        import yaml

        path.write_text(yaml.safe_dump(values))
    args = parse_args(["--config", str(path), "--learning-rate", "1e-4"])
    assert args.protocol.task == "xnli" and args.model.fusion_layer == "none,4"
    assert args.training.learning_rate == 1e-4 and args.training.report_to == ["tensorboard"]
    assert args.training.do_train and not args.training.do_predict
    path.write_text(json.dumps({"learning_rat": 1}) if suffix == ".json" else "learning_rat: 1\n")
    with pytest.raises(UsageError, match=r"unknown option\(s\) \['learning_rat'\]"):
        parse_args(["--config", str(path)])


# ----------------------------------------------------------------------------- checks before any work

@pytest.mark.parametrize("spec,message", [
    ("junk", r"'junk' is not a layer index"),
    ("", r"empty setting"),
    ("none,9", r"layer 9 is outside 0\.\.1"),
    ("2", r"layer 2 is outside 0\.\.1"),
    ("1,1", r"names 1 twice"),
    ("none,baseline", r"names none twice"),
])
def test_bad_fusion_layer_stops_before_data_loading(assets, tmp_path, capsys, spec, message):
    encoder, _ = assets
    missing_data = tmp_path / "no-such-folder"  # loading data first would report this instead
    assert train.main(cli(encoder, missing_data, tmp_path / "out", "--fusion-layer", spec)) == 2
    err = capsys.readouterr().err
    assert "--fusion-layer" in err and re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,message", [
    (["--max-length", "65"], r"--max-length 65 exceeds the encoder's 64 positions"),
    (["--max-train-samples", "0"], r"--max-train-samples 0: must be a positive number"),
    (["--max-train-samples", "-3"], r"--max-train-samples -3: must be a positive number"),
    (["--max-eval-samples", "0"], r"--max-eval-samples 0: must be a positive number"),
    (["--gate-init", "1.5"], r"--gate-init: 1.5 is outside \(0, 1\)"),
    (["--seeds", "1,x"], r"--seeds '1,x'"),
])
def test_bad_limits_stop_before_data_loading(assets, tmp_path, capsys, extra, message):
    encoder, _ = assets
    assert train.main(cli(encoder, tmp_path / "no-such-folder", tmp_path / "out", *extra)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- outputs

def test_a_run_leaves_the_best_model_results_predictions_card_and_log(trained):
    for name in ("run_config.json", "results.json", "train_results.json", "eval_results.json", "all_results.json",
                 "predict_results.json", "README.md", "train.log", "config.json", "model.safetensors"):
        assert (trained / name).is_file(), name
    assert not list(trained.glob("checkpoint-*"))  # pruned: the best model is in the folder itself
    model = AutoModelForSequenceClassification.from_pretrained(trained)
    assert isinstance(model, dlfa_models.DLFAForSequenceClassification) and model.config.fusion_layer == 1
    result = json.loads((trained / "results.json").read_text())
    assert result["setting"] == "layer1" and result["seed"] == 42
    for lang in ("en", "de", "fr"):
        lines = (trained / f"predict_results_{lang}.txt").read_text().splitlines()
        assert lines[0] == "index\tprediction" and len(lines) == 1 + 24
        gate = result["gates"][lang]
        assert 0.0 < gate["gate_mean"] < 1.0 and gate["gate_tokens"] > 0
    everything = json.loads((trained / "all_results.json").read_text())
    assert {"train_loss", "eval_spearman", "predict_de_spearman"} <= set(everything)
    card = (trained / "README.md").read_text()
    assert "| de | " in card and "AutoModelForSequenceClassification.from_pretrained" in card
    log = (trained / "train.log").read_text()
    assert "scoring de (2/3)" in log


def test_evaluate_only_scores_a_saved_model_on_other_languages(assets, trained, tmp_path):
    _, data = assets
    out = tmp_path / "scored"
    assert train.main(["--do_predict", "--model_name_or_path", str(trained), "--data", str(data),
                       "--eval-langs", "fr,de", "--output_dir", str(out), "--max-length", "64"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert list(result["scores"]) == ["fr", "de"] and result["fusion_layer"] == 1
    before = json.loads((trained / "results.json").read_text())
    assert result["scores"]["de"] == pytest.approx(before["scores"]["de"], abs=1e-6)
    assert (out / "predict_results_fr.txt").is_file() and (out / "all_results.json").is_file()
    assert not (out / "model.safetensors").exists()


def test_evaluate_only_refuses_a_plain_encoder(assets, tmp_path, capsys):
    encoder, data = assets
    assert train.main(["--do_predict", "--model_name_or_path", str(encoder), "--data", str(data),
                       "--output_dir", str(tmp_path), "--max-length", "64"]) == 2
    assert "not a saved DLFA model" in capsys.readouterr().err


def test_sweep_without_matplotlib_warns_and_succeeds(assets, tmp_path, monkeypatch, capsys):
    encoder, data = assets
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert train.main(cli(encoder, data, tmp_path, "--fusion-layer", "none,1", "--max-steps", "1")) == 0
    assert (tmp_path / "sweep.json").is_file() and not (tmp_path / "sweep.png").exists()
    assert "matplotlib is not installed" in capsys.readouterr().err


# ----------------------------------------------------------------------------- run folders

class _RunConfigSeen(TrainerCallback):
    def __init__(self, folder):
        self.folder, self.seen = folder, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.seen = json.loads((self.folder / "run_config.json").read_text())


def test_run_config_is_written_before_training(assets, tmp_path):
    encoder, data = assets
    args = parse_args(cli(encoder, data, tmp_path, "--pooling", "mean"))
    folder = tmp_path / "sts-layer1"
    seen = _RunConfigSeen(folder)
    training_run.train_one(args, TASKS["sts"], build.load_data(args, TASKS["sts"]), str(encoder),
                           AutoTokenizer.from_pretrained(encoder), planning.Setting(1), 42, folder, callbacks=[seen])
    assert seen.seen["pooling"] == "mean" and seen.seen["fusion_layer"] == 1 and seen.seen["seed"] == 42


def test_a_second_run_into_the_same_folder_is_refused(assets, trained, tmp_path, capsys):
    encoder, data = assets
    out = trained.parent
    before = (trained / "results.json").read_text()
    assert train.main(cli(encoder, data, out, "--fusion-layer", "1", "--pooling", "mean")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "results.json").read_text() == before


def test_resume_with_other_settings_names_the_keys(assets, trained, capsys):
    encoder, data = assets
    assert train.main(cli(encoder, data, trained.parent, "--fusion-layer", "1", "--pooling", "mean",
                          "--learning_rate", "1e-3", "--resume")) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "pooling: 'cls' there, 'mean' now" in err and "learning_rate" in err


def test_overwrite_output_dir_starts_over(assets, tmp_path):
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, "--fusion-layer", "1", "--max-steps", "1")) == 0
    assert train.main(cli(encoder, data, tmp_path, "--fusion-layer", "1", "--max-steps", "1", "--pooling", "mean",
                          "--overwrite_output_dir")) == 0
    assert json.loads((tmp_path / "sts-layer1" / "run_config.json").read_text())["pooling"] == "mean"
    assert json.loads((tmp_path / "sts-layer1" / "results.json").read_text())["settings"]["pooling"] == "mean"


# ----------------------------------------------------------------------------- AIF learning rate

def _groups(encoder, aif_lr):
    args = parse_args(["--model_name_or_path", str(encoder), "--backend", "torch", "--output_dir", "unused",
                       "--eval_strategy", "no"]
                      + ([] if aif_lr is None else ["--aif-lr", str(aif_lr)]))
    task = TASKS["sts"]
    model = build.build_model(args, task, str(encoder), planning.Setting(1), 0)
    trainer = build.make_trainer(args, task, model, AutoTokenizer.from_pretrained(encoder),
                                 planning.run_training_args(args.training, args.training.output_dir, 0, task))
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    per_param = {names[id(p)]: (g["weight_decay"], g["lr"]) for g in optimizer.param_groups for p in g["params"]}
    return per_param, type(optimizer), {k: v for k, v in optimizer.defaults.items() if k != "lr"}


def test_aif_lr_changes_only_the_aif_learning_rate(assets):
    encoder, _ = assets
    base, base_cls, base_defaults = _groups(encoder, None)
    aif, aif_cls, aif_defaults = _groups(encoder, 1e-3)
    assert base.keys() == aif.keys() and base_cls is aif_cls and base_defaults == aif_defaults
    aif_names = [n for n in base if ".aif." in n]
    assert len(aif_names) == 8  # four Linear layers, weight and bias
    for name, (decay, lr) in base.items():
        assert aif[name] == (decay, 1e-3 if name in aif_names else lr), name
    assert base["dlfa.aif.local_up.bias"][0] == 0.0 and base["dlfa.aif.local_up.weight"][0] == 0.01
    assert base["dlfa.encoder.embeddings.LayerNorm.weight"][0] == 0.0


# ----------------------------------------------------------------------------- seeds and gates

def test_gate_init_names_the_setting_and_reaches_the_config(assets, tmp_path):
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, "--fusion-layer", "none,1", "--gate-init", "random,0.9",
                          "--max-steps", "1", "--do_train")) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["sts-baseline", "sts-layer1",
                                                                        "sts-layer1-init0.9"]
    config = json.loads((tmp_path / "sts-layer1-init0.9" / "config.json").read_text())
    assert config["gate_init"] == 0.9 and config["fusion_layer"] == 1


def test_language_gate_stats_pool_every_real_token_of_a_language():
    hist = np.zeros((3, 10), dtype=np.int64)
    hist[0, 2], hist[1, 8] = 1, 3
    fields = {"gate_mean": np.array([0.2, 0.8, np.nan]), "gate_token_sum": np.array([0.2, 2.4, 0.0]),
              "gate_token_sq_sum": np.array([0.04, 1.92, 0.0]), "gate_token_count": np.array([1, 3, 0]),
              "gate_hist": hist}
    stats = scoring.language_gate_stats(fields)
    assert stats["gate_mean"] == pytest.approx(0.65)  # every real token counts once; padding-only rows none
    assert stats["gate_std"] == pytest.approx(np.std([0.2, 0.8, 0.8, 0.8]), rel=1e-6)  # population std
    assert stats["gate_tokens"] == 4 and stats["gate_sequences"] == 2
    assert scoring.language_gate_stats({"gate_mean": np.array([0.5])}) is None  # no pooled fields: no gate


def test_seeds_run_in_their_own_folders_resume_seed_by_seed_and_summarize(assets, tmp_path, capsys):
    encoder, data = assets
    args = cli(encoder, data, tmp_path, "--fusion-layer", "none,1", "--seeds", "0,1", "--max-steps", "1")
    assert train.main(args) == 0
    for setting in ("baseline", "layer1"):
        for seed in (0, 1):
            result = json.loads((tmp_path / f"sts-{setting}" / f"seed-{seed}" / "results.json").read_text())
            assert (result["setting"], result["seed"]) == (setting, seed)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["baseline"] == "baseline" and "layer1" in summary["differences"]
    assert "layer1" in capsys.readouterr().out
    finished = tmp_path / "sts-layer1" / "seed-1" / "results.json"
    stamp = finished.stat().st_mtime_ns
    (tmp_path / "sts-layer1" / "seed-0" / "results.json").unlink()  # as if seed 0 had been interrupted
    assert train.main(args + ["--resume"]) == 0
    assert finished.stat().st_mtime_ns == stamp  # skipped, not re-run
    assert (tmp_path / "sts-layer1" / "seed-0" / "results.json").is_file()


def test_predictions_with_gates_match_plain_predictions(trained, assets):
    """Asking the model for gate statistics leaves the logits as they are."""
    model = AutoModelForSequenceClassification.from_pretrained(trained).eval()
    tokenizer = AutoTokenizer.from_pretrained(trained)
    batch = tokenizer(["the man eats", "a dog plays in the park"], ["the cat", "anna reads a book"],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        plain = model(**batch).logits
        gated = model(**batch, output_gate_stats=True)
    torch.testing.assert_close(gated.logits, plain, rtol=0, atol=0)
    assert gated.gate_mean.shape == (2,)


def test_windows_of_a_sentence_are_scored_together(monkeypatch):
    """A tokenized dataset with ``sentence_id`` (sliding windows) leaves the column out of the model's
    inputs and hands it to the metric."""
    from datasets import Dataset

    seen = {}

    def metric(predictions, labels, sentence_ids=None):
        seen["ids"] = sentence_ids
        return {"accuracy": 1.0}

    monkeypatch.setattr(scoring, "metric_fn", lambda task: metric)
    encoded = Dataset.from_dict({"input_ids": [[1, 2], [3, 4], [5, 6]], "labels": [[0, 1], [1, 0], [0, 0]],
                                 "sentence_id": [0, 0, 1]})
    ds, score = scoring.scorer(TASKS["pos"], encoded)
    assert "sentence_id" not in ds.column_names and len(ds) == 3
    assert score(np.zeros((3, 2, 3)), np.zeros((3, 2))) == {"accuracy": 1.0}
    assert seen["ids"].tolist() == [0, 0, 1]
    plain, plain_score = scoring.scorer(TASKS["pos"], encoded.remove_columns("sentence_id"))
    assert plain_score is metric


def test_one_progress_bar_unless_verbose(assets):
    from transformers.trainer_callback import ProgressCallback

    from dlfa_models.training.trainer import TrainingProgressOnly

    encoder, _ = assets
    task = TASKS["sts"]
    for verbose, expected in ((False, TrainingProgressOnly), (True, ProgressCallback)):
        args = parse_args(["--model_name_or_path", str(encoder), "--eval_strategy", "no", "--output_dir", "unused"]
                          + (["--verbose"] if verbose else []))
        model = build.build_model(args, task, str(encoder), planning.Setting(None), 0)
        trainer = build.make_trainer(args, task, model, AutoTokenizer.from_pretrained(encoder),
                                     planning.run_training_args(args.training, "unused", 0, task))
        bars = [type(c) for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)]
        assert bars == [expected]
