"""The GPU session's tooling, run where it can be on a CPU: gpu_check.sh refusing to start
without a GPU, its step list and limits, the order of the benchmark cases, profile_op.py, the
benchmark selection/budget options, report.py."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ["install", "versions", "gpu-tests", "profile", "benchmarks", "report"]


def _import_from_benchmarks(name: str):
    """A module of benchmarks/ (a folder of scripts, not a package), under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))  # for their `from bench_utils import ...`
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def run(args, **env):
    environ = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(args, cwd=REPO, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs for real")
def test_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    out = tmp_path / "check"
    result = run(["bash", str(SCRIPT), str(out)])
    assert result.returncode == 3
    assert "no CUDA GPU here" in result.stderr and "nothing was run" in result.stderr
    # no step started: only the summary with the same message was written
    assert [p.name for p in out.iterdir()] == ["summary.txt"]
    assert "no CUDA GPU here" in (out / "summary.txt").read_text()
    assert "===" not in result.stdout + result.stderr


def dry_run(out, **env) -> tuple[list[str], list[str]]:
    """(step lines, benchmark case ids in order) of ``gpu_check.sh OUT --dry-run``."""
    result = run(["bash", str(SCRIPT), str(out), "--dry-run"], **env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    split = next(i for i, line in enumerate(lines) if line.startswith("benchmark cases"))
    return lines[1:split], [line.strip() for line in lines[split + 1:]]


def _params(case_id: str) -> tuple[str, str]:
    """(provider, shape) of a test_aif_op case id, e.g. fused-graph-forward+backward-bf16-cpu-b1-t32-e96-mask."""
    provider, shape = re.match(r".*test_aif_op\[(.+?)-(?:forward|backward|forward\+backward)-\w+?-(.+)-(?:no)?mask\]",
                               case_id).groups()
    return provider, shape


def test_gpu_check_dry_run_lists_the_steps_and_the_cases_in_order_and_runs_none(tmp_path):
    out = tmp_path / "check"
    steps, cases = dry_run(out, LIMIT_GPU_TESTS="300")
    assert [line.split()[0] for line in steps] == STEPS
    assert any(line.split()[:2] == ["gpu-tests", "300s"] for line in steps)  # LIMIT_<STEP> overrides
    assert not out.exists()
    # the default selection: bf16 with the padding mask; fused first in each shape, max-autotune after all
    op_cases = [_params(c) for c in cases if "test_aif_op" in c]
    assert op_cases and all("-bf16-" in c and c.endswith("-mask]") for c in cases if "test_aif_op" in c)
    autotune = [i for i, (provider, _) in enumerate(op_cases) if provider == "compile-max-autotune"]
    assert autotune and autotune == list(range(len(op_cases) - len(autotune), len(op_cases)))
    order = {}  # shape -> its providers in the order they first run
    for provider, shape in op_cases[:autotune[0]]:
        providers = order.setdefault(shape, [])
        if provider not in providers:
            providers.append(provider)
    assert len(order) > 1
    for shape, providers in order.items():
        assert providers[:2] == ["fused", "compile"], (shape, providers)
        assert {"fused-graph", "compile-graph"} <= set(providers)


def test_gpu_check_default_limits_fit_nine_minutes_with_the_gpu_tests_sized_by_their_kernels(tmp_path):
    steps, _ = dry_run(tmp_path / "unused")
    limits = {line.split()[0]: int(line.split()[1].rstrip("s")) for line in steps}
    assert list(limits) == STEPS and sum(limits.values()) < 9 * 60
    kernels = int(re.search(r"30 s \+ 1 s x (\d+) kernel specialisations", steps[STEPS.index("gpu-tests")]).group(1))
    assert kernels > 0 and limits["gpu-tests"] == 30 + kernels


def test_gpu_check_without_output_folder_is_a_usage_error():
    result = run(["bash", str(SCRIPT)])
    assert result.returncode == 2 and "usage:" in result.stderr


def test_profile_op_writes_a_table_on_cpu(tmp_path):
    result = run([sys.executable, "benchmarks/profile_op.py", "--device", "cpu", "--shapes", "cpu-b1-t32-e96",
                  "--out", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "profile.md").read_text()
    assert "## cpu-b1-t32-e96 fp32 backend=torch: forward" in text
    assert "## cpu-b1-t32-e96 fp32 backend=torch: backward" in text
    assert "`dlfa::aif_forward` | 1 |" in text and "`dlfa::aif_backward` | 1 |" in text
    assert "`aten::sigmoid`" in text  # a glue op inside the torch backend's forward


def test_benchmark_selection_json_and_report(tmp_path):
    json_file = tmp_path / "bench.json"
    result = run([sys.executable, "-m", "pytest", "benchmarks/test_bench_aif.py", "-q", "-p", "no:cacheprovider",
                  "--bench-select", "provider=eager", "--bench-select", "which=forward",
                  "--bench-select", "dtype_name=fp32", "--bench-select", "masked=True",
                  f"--benchmark-json={json_file}"])
    assert result.returncode == 0, result.stdout[-2000:]
    assert "2 passed" in result.stdout  # the two CPU shapes, nothing else
    report = run([sys.executable, "benchmarks/report.py", str(json_file), "--out", str(tmp_path / "report")])
    assert report.returncode == 0, report.stderr
    (md,) = (tmp_path / "report").glob("*.md")
    rows = [line for line in md.read_text().splitlines() if line.startswith("| forward | fp32 |")]
    assert len(rows) == 2 and all("| yes | eager |" in row for row in rows)
    assert len(list((tmp_path / "report").glob("*.png"))) == 1


def test_benchmark_budget_skips_with_the_reason():
    spent = run([sys.executable, "-m", "pytest", "benchmarks/test_bench_aif.py", "-q", "-rs", "-p", "no:cacheprovider",
                 "--bench-budget", "0", "--bench-select", "shape_name=cpu-b1-t32-e96",
                 "--bench-select", "which=forward", "--benchmark-disable"])
    assert spent.returncode == 0, spent.stdout[-2000:]
    assert "time budget of 0 s spent (--bench-budget)" in spent.stdout and " passed" not in spent.stdout


def test_max_autotune_runs_last_under_its_own_budget():
    spent = run([sys.executable, "-m", "pytest", "benchmarks/test_bench_aif.py", "-q", "-rs", "-p", "no:cacheprovider",
                 "--autotune-budget", "0", "--bench-select", "shape_name=cpu-b1-t32-e96",
                 "--bench-select", "which=forward", "--bench-select", "dtype_name=fp32",
                 "--bench-select", "provider=eager,compile-max-autotune", "--benchmark-disable"])
    assert spent.returncode == 0, spent.stdout[-2000:]
    assert "2 passed" in spent.stdout  # eager, mask and no mask: --bench-budget is not max-autotune's
    # the first max-autotune case starts its budget (and skips: no GPU), the second finds it spent
    assert "time budget of 0 s spent (--autotune-budget)" in spent.stdout


def test_benchmark_selection_refuses_an_unknown_parameter():
    bench_conftest = _import_from_benchmarks("conftest")

    class Config:
        def getoption(self, name):
            return ["colour=red"]

    item = SimpleNamespace(callspec=SimpleNamespace(params={"provider": "eager"}))
    with pytest.raises(pytest.UsageError, match=r"no benchmark has the parameter\(s\) \['colour'\]"):
        bench_conftest.pytest_collection_modifyitems(Config(), [item])


def test_report_ratios_and_providers_it_does_not_know():
    report = _import_from_benchmarks("report")

    def bench(provider, ms):
        return {"stats": {"median": ms / 1e3}, "extra_info": {
            "provider": provider, "which": "forward", "dtype": "bf16", "shape": "s", "masked": True}}

    data = {"benchmarks": [bench("fused-graph", 1.0), bench("fused", 2.0), bench("compile", 4.0),
                           bench("compile-max-autotune", 3.0), bench("eager", 8.0)]}
    rows = report.op_rows(data)
    assert [r["provider"] for r in rows] == ["eager", "compile", "compile-max-autotune", "fused", "fused-graph"]
    fused = rows[3]
    assert (fused["vs_eager"], fused["vs_compile"], fused["vs_autotune"]) == pytest.approx((4.0, 2.0, 1.5))
    assert "| fused-graph | 1.000 | 8.00 | 4.00 | 3.00 |" in report.markdown(data)
