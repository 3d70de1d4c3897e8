#!/usr/bin/env bash
# Download, on a machine with network, the wheels that an offline GPU machine lacks, for
# benchmarks/gpu_check.sh to install from (it looks in .whl/ at the repository root, which
# git ignores; the device tool carries it when the call names it: carry [".whl"]).
#
#   benchmarks/prepare_wheels.sh [DEST]            # default DEST: <repo>/.whl
#   PACKAGES="datasets==5.2.0 pyarrow==24.0.0" benchmarks/prepare_wheels.sh
#
# Wheels are for the GPU machine, not this one: CPython PYTHON_VERSION (default 3.12) on
# x86-64 manylinux, fetched without their dependencies (--no-deps), so name every missing
# one in PACKAGES. The default list is what the lent image lacks for the package's
# `models` extra; gpu_check.sh's install step prints any requirement still missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$REPO/.whl}
PY=${PYTHON:-python3}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
PACKAGES=${PACKAGES:-"datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19"}

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done

mkdir -p "$DEST"
# shellcheck disable=SC2086  # PACKAGES is a space-separated list on purpose
"$PY" -m pip download --no-deps --only-binary=:all: --implementation cp --python-version "$PYTHON_VERSION" \
    "${platforms[@]}" -d "$DEST" $PACKAGES
echo "wheels in $DEST ($(du -sh "$DEST" | cut -f1); the device tool carries at most 64 MiB with the tree):"
ls -1 "$DEST"
