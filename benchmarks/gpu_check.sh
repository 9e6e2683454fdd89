#!/bin/bash
# One prepared device call for a session that is lent a GPU : the speed table, then as much of a
# paper-budget GMPO run on hopper-medium-v5 as the call's time allows (it stops cleanly on SIGTERM and its
# checkpoint comes back under $OUT, so a later call can carry it and continue).
#
# Here, before the call: the wheels and instructions of benchmarks/gpu_env.sh, and its data:
#   mkdir -p .gpu-data && cp datasets/hopper-medium-v5.* .gpu-data/
# Call: run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu-data"], timeout_s=590)
# To continue the paper run in a later call: rebuild carry-run/ from the returned parts (below) and carry it too.
# Smoke test on this CPU machine (same plumbing, tiny budgets): GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh
set -o pipefail
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
source "$(dirname "$0")/gpu_env.sh"
gpu_env "$OUT" "$GPU_CHECK_SMOKE" || exit 1
if [ -z "$GPU_CHECK_SMOKE" ]; then
    export GENPOLICY_DATASETS=$PWD/.gpu-data
    DEV=cuda SPEED_ARGS="--compile both" SPEED_S=240 RUN_S=300 SETS="" COMPILE=on
else
    DEV=cpu SPEED_ARGS="--compile off --quick --rounds 1" SPEED_S=300 RUN_S=300 COMPILE=off
    SETS="--critic-epochs 0 --critic-steps 200 --policy-epochs 0 --policy-steps 200 --final-eval-episodes 2"
    SETS="$SETS --batch-size 256 --eval-every 100000"
fi

# 1. the speed table (benchmarks/speed.py: steps/s per stage eager and compiled, act latency, projection)
# (its own run folders go beside --out, so --out is outside $OUT: at most 8 files come back)
timeout "$SPEED_S" python3 benchmarks/speed.py --device "$DEV" $SPEED_ARGS --out /tmp/speed/speed.json 2>&1 \
    | tee "$OUT/speed.log"
cp /tmp/speed/speed.json "$OUT/" 2>/dev/null

# 2. a paper-budget run (122k critic + 244k U-Net policy steps at batch 4096), stopped by SIGTERM at the time limit
RUN=/tmp/paper-run
[ -n "$GPU_CHECK_SMOKE" ] && rm -rf $RUN
RESUME=""
if [ -f carry-run/checkpoint.pt ]; then rm -rf $RUN && cp -r carry-run $RUN && RESUME=--resume; fi
# shellcheck disable=SC2086
timeout -s TERM "$RUN_S" python3 -c "import sys; from genpolicy.cli import main; sys.exit(main())" train gmpo \
    --dataset hopper-medium-v5 --env Hopper-v5 --preset paper --preset hopper-medium --device "$DEV" \
    --compile $COMPILE --run-dir $RUN $RESUME --no-progress $SETS 2>&1 | tee "$OUT/paper-run.log"
# (a timeout during a compile kills the compiler too and can leave a truncated kernel in Inductor's cache, which
# later runs then fail to load: "file too short"; on this machine the cache starts empty every call)
# the run folder (U-Net, critic and both Adam states: a 21 MB checkpoint) as a tar in 15 MB parts: files come back
# up to 16 MiB each and 8 in all (the smoke run returns exactly 8: 3 parts with best.pt); to continue later: cat paper-run.tar.part-* | tar -x, mv paper-run
# carry-run, and carry it
[ -f $RUN/summary.json ] && cp $RUN/summary.json "$OUT/paper-summary.json"
tar -C "$(dirname $RUN)" -cf - "$(basename $RUN)" | split -b 15000000 -d - "$OUT/paper-run.tar.part-"
ls -la "$OUT"
