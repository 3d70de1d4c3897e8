"""Learning curves (--curve_steps): curves.json per run, curves.png over seeds, unchanged training; --keep."""
import json

import pytest
from safetensors.torch import load_file

from dlfa_models import train
from dlfa_models.training.curves import mean_curves
from dlfa_models.training.keep import apply_keep
from dlfa_models.training.run_claim import LOCK_FILE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def cli(assets, out, *extra):
    encoder, data = assets
    return ["--task", "sts", "--encoder", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval_langs", "en,de,fr", "--eval_split", "test", "--max_steps", "5", "--per_device_train_batch_size", "4",
            "--backend", "torch", "--max_length", "32", "--fusion_layer", "1", "--eval_strategy", "no", *extra]


def test_curves_per_run_and_over_seeds_leave_training_unchanged(assets, tmp_path):
    out = tmp_path / "curves"
    assert train.main(cli(assets, out, "--fusion_layer", "none,1", "--seeds", "0,1", "--curve_steps", "2",
                          "--curve_zero_shot")) == 0
    curves = json.loads((out / "sts-layer1" / "seed-0" / "curves.json").read_text())
    assert [p["step"] for p in curves["points"]] == [0, 2, 4, 5]  # before training, every 2 steps, the last
    assert curves["languages"] == ["en", "de", "fr"] and curves["source_langs"] == ["en"]
    assert curves["metric"] == "spearman" and curves["split"] == "dev"
    assert all(set(p["scores"]) == {"en", "de", "fr"} for p in curves["points"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    plain = tmp_path / "plain"  # the same runs without curves: the same scores
    assert train.main(cli(assets, plain, "--fusion_layer", "none,1", "--seeds", "0,1")) == 0
    for folder in ("sts-baseline/seed-0", "sts-layer1/seed-1"):
        a = json.loads((out / folder / "results.json").read_text())["scores"]
        b = json.loads((plain / folder / "results.json").read_text())["scores"]
        assert a == b, folder
    assert not (plain / "curves.png").exists() and not (plain / "sts-layer1" / "seed-0" / "curves.json").exists()


def test_mean_curves_over_seeds():
    def run(values):
        return {"metric": "spearman", "source_langs": ["en"], "points": [
            {"step": s, "scores": {"en": v, "de": v / 2}} for s, v in values]}

    means = mean_curves({"layer1": [run([(0, 0.1), (2, 0.5)]), run([(0, 0.3), (2, 0.7), (4, 0.9)])]})
    src = means["layer1"]["source"]
    assert src["steps"] == [0, 2] and src["mean"] == pytest.approx([0.2, 0.6]) and src["n"] == 2
    assert src["std"] == pytest.approx([0.1414213, 0.1414213], rel=1e-5)
    assert means["layer1"]["zero-shot"]["mean"] == pytest.approx([0.1, 0.3])


@pytest.mark.parametrize("bad,message", [(["--curve_steps", "0"], "--curve_steps 0"),
                                         (["--curve_zero_shot"], "--curve_zero_shot needs --curve_steps")])
def test_bad_curve_options_stop_before_anything_is_written(assets, tmp_path, bad, message, capsys):
    assert train.main(cli(assets, tmp_path / "out", *bad)) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("keep", ["weights", "none"])
def test_keep_only_results_and_fusion_weights(assets, tmp_path, keep):
    assert train.main(cli(assets, tmp_path, "--keep", keep, "--curve_steps", "5")) == 0
    folder = tmp_path / "sts-layer1"
    names = {p.name for p in folder.iterdir()}
    assert {"results.json", "run_config.json", "predict_results_de.txt", "train.log", "curves.json"} <= names
    assert not names & {"model.safetensors", "tokenizer.json", "vocab.txt", "README.md", "training_args.bin"}
    if keep == "weights":
        weights = load_file(folder / "fusion.safetensors")
        assert {k for k in weights if ".aif." in k} and {"classifier.weight", "classifier.bias"} <= set(weights)
        assert not any("encoder.layer" in k for k in weights)
        assert "config.json" in names
    else:
        assert "fusion.safetensors" not in names and "config.json" not in names


def test_default_keeps_the_model(assets, tmp_path):
    assert train.main(cli(assets, tmp_path)) == 0
    assert (tmp_path / "sts-layer1" / "model.safetensors").is_file()


def test_a_resumed_run_keeps_the_points_before_its_checkpoint(tmp_path):
    from types import SimpleNamespace

    from dlfa_models.training.curves import LearningCurve

    path = tmp_path / "curves.json"
    path.write_text(json.dumps({"points": [{"step": s, "epoch": s / 4, "scores": {"en": s / 10}} for s in (0, 2, 4)]}))
    curve = LearningCurve(2, {}, "spearman", ["en"], path)  # no datasets: a new point would have empty scores
    curve.trainer = SimpleNamespace(compute_metrics=None)  # set by train_one once the Trainer exists
    curve.on_train_begin(None, SimpleNamespace(global_step=2, epoch=0.5), None)
    assert [p["step"] for p in curve.points] == [0, 2]  # step 4 was after the checkpoint: taken again later
    curve.on_step_end(None, SimpleNamespace(global_step=4, epoch=1.0, max_steps=5), None)
    assert [p["step"] for p in json.loads(path.read_text())["points"]] == [0, 2, 4]


def test_zero_shot_curves_of_a_tagging_task_score_each_language_by_its_own_sentences(assets, tmp_path):
    """NER's dev metric joins windows by sentence id: a zero-shot dev set must not be scored with the
    source dev set's ids (windows of 8 sub-words: the languages' sets split into different counts)."""
    encoder, data = assets
    assert train.main(["--task", "ner", "--encoder", str(encoder), "--data", str(data), "--output_dir",
                       str(tmp_path), "--eval_langs", "en,de", "--max_steps", "2", "--per_device_train_batch_size",
                       "4", "--backend", "torch", "--max_length", "8", "--fusion_layer", "1", "--eval_strategy",
                       "no", "--curve_steps", "1", "--curve_zero_shot"]) == 0
    curves = json.loads((tmp_path / "ner-layer1" / "curves.json").read_text())
    assert [p["step"] for p in curves["points"]] == [0, 1, 2]
    assert all(set(p["scores"]) == {"en", "de"} for p in curves["points"])


def test_keep_leaves_the_run_claim_in_place(tmp_path):
    (tmp_path / LOCK_FILE).write_text("{}")
    (tmp_path / "model.safetensors").write_text("x")
    apply_keep(tmp_path, "none", model=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


def test_a_weights_only_folder_is_refused_by_evaluate_only(assets, tmp_path, capsys):
    assert train.main(cli(assets, tmp_path / "runs", "--keep", "weights")) == 0
    folder = tmp_path / "runs" / "sts-layer1"
    assert train.main(["--do_predict", "--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "p")]) == 2
    assert "was kept with --keep weights" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
