#!/usr/bin/env bash
# One command for a GPU session: install the package without touching torch, record the GPU,
# driver, torch and triton versions, run the GPU-only tests, profile the op, run the benchmarks
# and their report, all into one folder.   Usage: benchmarks/gpu_check.sh OUT_DIR [--dry-run]
#
# Every step runs under a time limit and the script goes on past a failing one; the limits
# add up to under 9 minutes. OUT_DIR/summary.txt lists each step's status; the exit code is
# 0 when every step passed, 1 when one did not, 2 for a usage error, 3 when there is no
# CUDA GPU (checked first: nothing else runs). --dry-run prints the steps and the order of the
# benchmark cases (fused and torch.compile first in each shape, max-autotune last) and runs none.
# Environment: PYTHON (default python3), WHEELS (default <repo>/.whl), BENCH_BUDGET (seconds
# of benchmark cases but max-autotune's, default 90), AUTOTUNE_BUDGET (seconds of max-autotune
# cases, default 45), BENCH_SELECT (default: bf16 with the padding mask; empty: all),
# BENCH_ARGS (more pytest arguments), LIMIT_<STEP> (a step's limit in seconds,
# e.g. LIMIT_GPU_TESTS=300 for a longer session). See docs/gpu-check.md.
set -uo pipefail

usage() { echo "usage: $0 OUT_DIR [--dry-run]" >&2; exit 2; }
OUT="" DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,15p' "$0" | cut -c3-; exit 0 ;;
        -*) echo "gpu_check: unknown option $arg" >&2; usage ;;
        *) [ -z "$OUT" ] || usage; OUT=$arg ;;
    esac
done
[ -n "$OUT" ] || usage

REPO=$(cd "$(dirname "$0")/.." && pwd)
export REPO PY=${PYTHON:-python3} WHEELS=${WHEELS:-$REPO/.whl}
export BENCH_BUDGET=${BENCH_BUDGET:-90} AUTOTUNE_BUDGET=${AUTOTUNE_BUDGET:-45}
export BENCH_SELECT=${BENCH_SELECT---bench-select dtype_name=bf16 --bench-select masked=True}
export BENCH_ARGS=${BENCH_ARGS:-}
export PYTHONPATH_BEFORE=${PYTHONPATH:-}
export PYTHONPATH=$REPO${PYTHONPATH_BEFORE:+:$PYTHONPATH_BEFORE}  # the steps run even if install fails

if [ "$DRY_RUN" = 0 ]; then  # first of all: is there a GPU?
    mkdir -p "$OUT" || exit 2
    OUT=$(cd "$OUT" && pwd)
    export OUT LOG=$OUT/gpu_check.log SUMMARY=$OUT/summary.txt
    no_gpu=$("$PY" -c 'import torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA GPU")' 2>&1) \
        || no_gpu="cannot import torch with $PY: ${no_gpu##*$'\n'}"
    if [ -n "$no_gpu" ]; then
        msg="gpu_check: no CUDA GPU here ($no_gpu). This check needs one; nothing was run. Run it on a GPU machine (docs/gpu-check.md)."
        echo "$msg" >&2
        echo "$msg" >"$SUMMARY"
        exit 3
    fi
fi

# The GPU tests' time goes to the JIT compiling each kernel specialisation they launch (about 0.6 s
# each on a 2-core CPU): their limit is a base plus a second per specialisation, counted by
# tests/aot_compile.py from the launches those tests make (no GPU needed, nothing compiled).
GPU_TESTS_BASE=30 GPU_TESTS_PER_KERNEL=1 GPU_TESTS_FALLBACK=200
if [ -n "${LIMIT_GPU_TESTS:-}" ]; then
    gpu_tests_how="LIMIT_GPU_TESTS"
elif n_kernels=$("$PY" "$REPO/tests/aot_compile.py" 90 --sets gpu-tests --count 2>/dev/null) \
        && [[ "$n_kernels" =~ ^[0-9]+$ ]]; then
    LIMIT_GPU_TESTS=$((GPU_TESTS_BASE + GPU_TESTS_PER_KERNEL * n_kernels))
    gpu_tests_how="$GPU_TESTS_BASE s + $GPU_TESTS_PER_KERNEL s x $n_kernels kernel specialisations"
else
    LIMIT_GPU_TESTS=$GPU_TESTS_FALLBACK
    gpu_tests_how="tests/aot_compile.py could not count the kernel specialisations: $GPU_TESTS_FALLBACK s"
fi

# name, limit in seconds (sum under 9 minutes with about 140 GPU-test kernels), what it does
STEPS=(install versions gpu-tests profile benchmarks report)
declare -A LIMIT=([install]=60 [versions]=20 [gpu-tests]=$LIMIT_GPU_TESTS [profile]=50
                  [benchmarks]=$((BENCH_BUDGET + AUTOTUNE_BUDGET + 60)) [report]=30)
declare -A WHAT=(
    [install]="pip install --no-deps --no-build-isolation --no-index -e . and missing requirements from \$WHEELS, torch and triton pinned"
    [versions]="GPU, driver, CUDA, torch, triton, transformers versions -> versions in summary.txt"
    [gpu-tests]="pytest tests -m gpu -> gpu-tests.xml (a skipped GPU test counts as a failure); limit: $gpu_tests_how"
    [profile]="benchmarks/profile_op.py: one forward and one backward per shape, kernels and glue ops -> profile.md"
    [benchmarks]="pytest benchmarks/ \$BENCH_SELECT -> benchmark.json: per shape fused and torch.compile first, CUDA graphs beside them; max-autotune last (budgets: \$BENCH_BUDGET s, then \$AUTOTUNE_BUDGET s)"
    [report]="benchmarks/report.py -> <date>-<gpu>.md and .png"
)
for step in "${STEPS[@]}"; do
    var="LIMIT_$(echo "$step" | tr a-z- A-Z_)"
    LIMIT[$step]=${!var:-${LIMIT[$step]}}
done

if [ "$DRY_RUN" = 1 ]; then
    echo "gpu_check steps (output folder $OUT):"
    for step in "${STEPS[@]}"; do printf '  %-11s %4ss  %s\n' "$step" "${LIMIT[$step]}" "${WHAT[$step]}"; done
    echo "benchmark cases in the order they run (pytest benchmarks/ --collect-only \$BENCH_SELECT; GPU shapes on a GPU):"
    # shellcheck disable=SC2086  # BENCH_SELECT and BENCH_ARGS are argument lists
    (cd "$REPO" && "$PY" -m pytest benchmarks/ --collect-only -q -p no:cacheprovider $BENCH_SELECT $BENCH_ARGS) \
        | grep '::' | sed 's/^/  /'
    exit 0
fi

# --- the steps (each runs in its own bash under `timeout`, so they are exported) ---
step_install() {
    cd "$REPO" || return 1
    "$PY" -m pip install --no-deps --no-build-isolation --no-index -e . || return 1
    local missing
    missing=$("$PY" - <<'EOF'
# requirements of the package and its models/test extras (not the package itself, not demo's model)
import importlib.metadata as md
from packaging.requirements import Requirement
for text in md.requires("dlfa") or []:
    req = Requirement(text)
    if req.name == "dlfa" or (req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", "models", "test"))):
        continue
    try:
        ok = req.specifier.contains(md.version(req.name), prereleases=True)
    except md.PackageNotFoundError:
        ok = False
    if not ok:
        print(str(req).split(";")[0])
EOF
) || return 1
    if [ -n "$missing" ]; then
        echo "missing requirements: $(echo $missing)"
        if [ ! -d "$WHEELS" ]; then
            echo "no wheel folder $WHEELS: make one with benchmarks/prepare_wheels.sh on a machine with network"
            return 1
        fi
        "$PY" -c 'import importlib.metadata as md
for name in ("torch", "triton", "numpy"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass' >"$OUT/.pins" || return 1
        # shellcheck disable=SC2086
        "$PY" -m pip install --no-index --find-links "$WHEELS" -c "$OUT/.pins" $missing
        local rc=$?
        rm -f "$OUT/.pins"
        [ $rc = 0 ] || return $rc
    fi
    cd / && PYTHONPATH=$PYTHONPATH_BEFORE "$PY" -c 'import dlfa_kernels, dlfa_models; print("installed:", dlfa_kernels.__file__)'
}

step_versions() {
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/nvidia-smi: /'
        "$PY" - <<'EOF'
import platform, torch
p = torch.cuda.get_device_properties(0)
print(f"gpu: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
print(f"torch: {torch.__version__} (CUDA {torch.version.cuda})")
for name in ("triton", "transformers", "scipy", "pytest_benchmark"):
    try:
        print(f"{name}: {__import__(name).__version__}")
    except Exception as err:
        print(f"{name}: unavailable ({type(err).__name__})")
print(f"python: {platform.python_version()}, host {platform.node()}")
EOF
    } | tee "$OUT/versions.txt"
    return "${PIPESTATUS[0]}"
}

step_gpu_tests() {
    cd "$REPO" && "$PY" -m pytest tests -m gpu -rs -p no:cacheprovider --continue-on-collection-errors \
        --junitxml="$OUT/gpu-tests.xml"
}

step_profile() {
    cd "$REPO" && "$PY" benchmarks/profile_op.py --out "$OUT"
}

step_benchmarks() {
    # shellcheck disable=SC2086  # BENCH_SELECT and BENCH_ARGS are argument lists
    cd "$REPO" && "$PY" -m pytest benchmarks/ -p no:cacheprovider -rs --benchmark-json="$OUT/benchmark.json" \
        $BENCH_SELECT --bench-budget "$BENCH_BUDGET" --autotune-budget "$AUTOTUNE_BUDGET" $BENCH_ARGS
}

step_report() {
    [ -f "$OUT/benchmark.json" ] || { echo "no benchmark.json: the benchmarks step wrote none"; return 1; }
    cd "$REPO" && "$PY" benchmarks/report.py "$OUT/benchmark.json" --out "$OUT"
}

# one line on the GPU tests: counts from the JUnit XML
junit_counts() {
    "$PY" - "$OUT/gpu-tests.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
s = ET.parse(sys.argv[1]).getroot()
s = s if s.tag == "testsuite" else s.find("testsuite")
n, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
print(f"{n - f - e - k} passed, {f} failed, {e} errors, {k} skipped")
sys.exit(1 if k else 0)
EOF
}

export -f step_install step_versions step_gpu_tests step_profile step_benchmarks step_report
: >"$LOG"
declare -A STATUS DETAIL SECS
START=$SECONDS
for step in "${STEPS[@]}"; do
    echo "=== $step (limit ${LIMIT[$step]} s): ${WHAT[$step]}" | tee -a "$LOG"
    t0=$SECONDS
    # SIGINT first so that pytest still writes its JSON/XML, SIGKILL 15 s later
    timeout -s INT -k 15 "${LIMIT[$step]}" bash -c "step_${step//-/_}" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    SECS[$step]=$((SECONDS - t0))
    case $rc in
        0) STATUS[$step]=PASS ;;
        124|137) STATUS[$step]=TIMEOUT ;;
        *) STATUS[$step]="FAIL (exit $rc)" ;;
    esac
    if [ "$step" = gpu-tests ] && [ -f "$OUT/gpu-tests.xml" ]; then
        DETAIL[$step]=$(junit_counts) || { [ "${STATUS[$step]}" = PASS ] && STATUS[$step]="FAIL (skips)"; }
    fi
    echo "=== $step: ${STATUS[$step]} after ${SECS[$step]} s" | tee -a "$LOG"
done

failed=0
{
    echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - START)) s, repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
    cat "$OUT/versions.txt" 2>/dev/null
    echo
    for step in "${STEPS[@]}"; do
        [ "${STATUS[$step]}" = PASS ] || failed=1
        printf '%-11s %-16s %4s s  %s\n' "$step" "${STATUS[$step]}" "${SECS[$step]}" "${DETAIL[$step]:-}"
    done
} >"$SUMMARY"
rm -f "$OUT/versions.txt"
echo
cat "$SUMMARY"
exit $failed
