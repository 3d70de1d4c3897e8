"""Run folders (issue 19): one run per folder, claimed atomically for the whole command; folders that
hold runs, at any depth, are never taken or deleted by another run; results files are strict JSON,
written atomically."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import socket

import pytest

from dlfa_models import train
from dlfa_models.training import build, run_claim
from dlfa_models.training import run as training_run
from dlfa_models.training.arguments import UsageError
from dlfa_models.training.json_files import write_json
from dlfa_models.training.runs import read_results

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def cli(assets, out, *extra):
    encoder, data = assets
    return ["--task", "sts", "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval-langs", "en,de", "--max-steps", "1", "--per_device_train_batch_size", "8", "--backend", "torch",
            "--max-length", "32", "--fusion-layer", "1", *extra]


def _stamps(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- item 1: runs at any depth

def test_a_folder_holding_seed_runs_is_never_taken_or_deleted_by_a_plain_run(assets, tmp_path, capsys):
    assert train.main(cli(assets, tmp_path, "--seeds", "0")) == 0
    seed_run = tmp_path / "sts-layer1" / "seed-0"
    before = _stamps(seed_run)
    for extra in ([], ["--overwrite_output_dir"]):
        assert train.main(cli(assets, tmp_path, *extra)) == 2
        err = capsys.readouterr().err
        assert "holds other runs in its sub-folders (seed-0)" in err, err
    assert _stamps(seed_run) == before
    assert not (tmp_path / "sts-layer1" / "run_config.json").exists()


def test_a_seed_run_inside_a_plain_runs_folder_is_refused(assets, tmp_path, capsys):
    assert train.main(cli(assets, tmp_path)) == 0
    before = _stamps(tmp_path / "sts-layer1")
    assert train.main(cli(assets, tmp_path, "--seeds", "0", "--overwrite_output_dir")) == 2
    assert "lies inside" in capsys.readouterr().err
    assert _stamps(tmp_path / "sts-layer1") == before


# ----------------------------------------------------------------------------- item 2: the claim

def test_a_folder_claimed_by_a_live_run_is_refused_and_left_alone(assets, tmp_path, capsys):
    folder = tmp_path / "sts-layer1"
    with run_claim.claim(folder):
        assert train.main(cli(assets, tmp_path)) == 2
        err = capsys.readouterr().err
        assert f"{folder} is in use by another run (pid {os.getpid()} on {socket.gethostname()}, started" in err, err
        assert sorted(p.name for p in folder.iterdir()) == [run_claim.LOCK_FILE]
    assert not folder.exists()  # the claim created it and nothing else was written: released, removed


def test_a_command_racing_another_for_its_folder_is_refused(assets, tmp_path, monkeypatch, capsys):
    """The moment two commands started together meet: the second checks the folder after the first has
    checked it and before the first has written anything (it is loading data)."""
    real_load, started, second = build.load_data, [], []

    def load_while_the_second_starts(*a, **k):
        if not started:
            started.append(True)
            second.append(train.main(cli(assets, tmp_path, "--seed", "2")))
        return real_load(*a, **k)
    monkeypatch.setattr(training_run, "load_data", load_while_the_second_starts)
    assert train.main(cli(assets, tmp_path, "--seed", "1")) == 0
    assert second == [2] and "is in use by another run" in capsys.readouterr().err
    run = tmp_path / "sts-layer1"
    assert json.loads((run / "run_config.json").read_text())["seed"] == 1
    assert json.loads((run / "results.json").read_text())["seed"] == 1
    assert (run / "train.log").read_text().count("run sts: layer1") == 1


def _claim_at_once(folder, barrier, results):
    barrier.wait()
    try:
        run_claim.claim(folder)
        results.put("claimed")
    except UsageError:
        results.put("refused")
    barrier.wait()  # hold the claim until every process has tried


def test_processes_claiming_at_the_same_moment_get_one_claim(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_claim_at_once, args=(tmp_path / "run", barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(results.get(timeout=5) for _ in range(n)) == ["claimed"] + ["refused"] * (n - 1)


def _claim_and_die(folder):
    run_claim.claim(folder)
    os._exit(0)  # as after kill -9: nothing released, the lock file stays


def test_the_claim_of_a_dead_process_is_taken_over(tmp_path, caplog):
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_claim_and_die, args=(tmp_path,))
    child.start()
    child.join(60)
    assert json.loads((tmp_path / run_claim.LOCK_FILE).read_text())["pid"] == child.pid
    assert not run_claim.claimed(tmp_path)
    with caplog.at_level(logging.WARNING, logger="dlfa_models.training.run_claim"):
        claim = run_claim.claim(tmp_path)
    assert f"ended without releasing it (pid {child.pid} on" in caplog.text
    assert run_claim.claimed(tmp_path)
    assert json.loads((tmp_path / run_claim.LOCK_FILE).read_text())["pid"] == os.getpid()
    claim.release()
    assert not (tmp_path / run_claim.LOCK_FILE).exists() and tmp_path.is_dir()  # not created by the claim: kept


def test_a_run_that_fails_before_training_leaves_no_folder(assets, tmp_path, capsys):
    encoder, _ = assets
    empty_data = tmp_path / "data"
    empty_data.mkdir()
    assert train.main(cli((encoder, empty_data), tmp_path / "out")) == 2
    assert "bad data" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_run_folder_that_is_a_file_stops_with_one_line(assets, tmp_path, capsys):
    """(An --output_dir that is a file is refused with the other options: tests/test_cli_validation.py.)"""
    out = tmp_path / "out"
    out.mkdir()
    (out / "sts-layer1").write_text("not a folder")
    assert train.main(cli(assets, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dlfa-train: error: --output_dir: cannot write the run folder {out / 'sts-layer1'} (")
    assert len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- items 3 and 4

@pytest.mark.parametrize("resume", [["--resume"], ["--resume_from_checkpoint", "x"]])
def test_resume_with_overwrite_output_dir_is_refused(assets, tmp_path, capsys, resume):
    assert train.main(cli(assets, tmp_path / "no-such-data-needed", *resume, "--overwrite_output_dir")) == 2
    assert "--overwrite_output_dir would delete the runs that --resume" in capsys.readouterr().err
    assert not (tmp_path / "no-such-data-needed").exists()


def test_gate_inits_whose_folders_collide_are_refused_before_data_loading(assets, tmp_path, capsys):
    encoder, _ = assets
    assert train.main(cli((encoder, tmp_path / "no-such-folder"), tmp_path / "out",
                          "--gate-init", "0.5,0.5000001")) == 2
    assert "0.5 and 0.5000001 both name the run folder layer1-init0.5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- strict, atomic JSON

def _no_bare_constants(text):
    def refuse(name):
        raise AssertionError(f"bare {name} in strict JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.filterwarnings("error:Mean of empty slice")  # a table of NaN scores plots without numpy warnings
def test_results_sweep_summary_and_run_config_are_strict_json(assets, tmp_path):
    # one evaluation example per language: every correlation is undefined (NaN)
    args = cli(assets, tmp_path, "--fusion-layer", "none,1", "--seeds", "0", "--max-eval-samples", "1")
    assert train.main(args) == 0
    run = tmp_path / "sts-layer1" / "seed-0"
    for path in (run / "results.json", run / "run_config.json", tmp_path / "sweep.json", tmp_path / "summary.json"):
        _no_bare_constants(path.read_text())
    assert json.loads((run / "results.json").read_text())["scores"] == {"en": None, "de": None}
    assert all(v != v for v in read_results(run / "results.json")["scores"].values())  # NaN again when read
    assert train.main(args + ["--resume"]) == 0  # the finished runs are read back and reported


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"score": 0.5})

    def killed(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"score": 0.7})
    assert json.loads(path.read_text()) == {"score": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_json_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_json(tmp_path / "a.json", {"x": float("inf"), "y": (1, 2)})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [1, 2]}


def test_overwrite_never_deletes_the_model_it_loads(assets, tmp_path, capsys):
    """--overwrite_output_dir on the folder that is, or holds, the model --model_name_or_path names."""
    assert train.main(cli(assets, tmp_path, "--fusion-layer", "none")) == 0
    saved = tmp_path / "sts-baseline"
    encoder = saved / "encoder"  # an encoder to train from, kept inside a run's folder
    shutil.copytree(assets[0], encoder)
    before = _stamps(saved)
    rescore = cli(assets, saved, "--overwrite_output_dir", "--do_predict")
    rescore[rescore.index("--model_name_or_path") + 1] = str(saved)
    retrain = cli(assets, tmp_path, "--fusion-layer", "none", "--overwrite_output_dir")
    retrain[retrain.index("--model_name_or_path") + 1] = str(encoder)
    for args in (rescore, retrain):
        assert train.main(args) == 2
        err = capsys.readouterr().err
        assert f"--overwrite_output_dir would delete {saved}, which holds the model" in err, err
    assert _stamps(saved) == before
