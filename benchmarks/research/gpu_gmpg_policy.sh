#!/bin/bash
# One prepared device call: GMPG's policy stage at a GPU's scale on the behaviour model and 100k-step
# critic of three finished `cpu`-budget runs (seed 0 of gmpg-c100k-rk4 on the three tasks where GMPG trails IQL's
# actor most), so that the policy stage's budget is the only thing that changes: 4096 states per step instead of
# 128, as many steps as the call affords instead of 400, the same training grid (rk4, T = 8), beta, learning rate
# and KL unit. Before that, the eager GPU speed rows of benchmarks/speed.py (a minute; nothing compiled: compiling
# takes minutes of the call). The three runs share the GPU, one process each, and are stopped by SIGTERM at the time
# limit (each writes its checkpoint); they are scored here afterwards, on the same 50 start states as the CPU runs:
#   genpolicy eval RUN --checkpoint final --episodes 50 --seed 0 --set act_temperature=0   (and =1)
#
# Here, before the call: the wheels and instructions of benchmarks/gpu_env.sh, and its data:
#   for t in hopper-medium-v5 hopper-medium-replay-v5 walker2d-medium-replay-v5; do
#     cp datasets/$t.hdf5 datasets/$t.json .gpu-data/; mkdir -p .gpu-data/runs/$t
#     cp runs/suite-fresh/$t/gmpg-c100k-rk4/seed-0/checkpoint.pt .gpu-data/runs/$t/; done
# Call: run(command="bash benchmarks/research/gpu_gmpg_policy.sh", carry=[".whl", ".gpu-data"], timeout_s=590)
# Back under $OUT: versions.txt, speed-eager.json, logs.tar, and one RUN.tar per task (the run folder).
# Smoke test on this CPU machine (same plumbing, tiny budgets): SMOKE=1 bash benchmarks/research/gpu_gmpg_policy.sh
set -o pipefail
OUT=${OUT:-/tmp/gpu-gmpg-out}
mkdir -p "$OUT" /tmp/gpu-logs
export PYTHONUNBUFFERED=1
source "$(dirname "$0")/../gpu_env.sh"
gpu_env "$OUT" "$SMOKE" || exit 1
if [ -z "$SMOKE" ]; then
    DEV=cuda BATCH=4096 STEPS=20000 RUN_S=${RUN_S:-360} SPEED_S=75 EVAL_EVERY=250
else
    export PYTHONPATH=$PWD
    DEV=cpu BATCH=128 STEPS=100000 RUN_S=${RUN_S:-40} SPEED_S=60 EVAL_EVERY=20
fi
export GENPOLICY_DATASETS=$PWD/.gpu-data

# 1. eager step rates on this device (rows of benchmarks/speed.py; --only skips act, loop and seed rows)
SPEED_ONLY=("IQL critic" "GMPO policy")
[ -n "$SMOKE" ] && SPEED_ONLY=("IQL critic (twin")
timeout "$SPEED_S" python3 benchmarks/speed.py --device "$DEV" --compile off --only "${SPEED_ONLY[@]}" \
    --out /tmp/speed/speed-eager.json > /tmp/gpu-logs/speed-eager.log 2>&1
cp /tmp/speed/speed-eager.json "$OUT/" 2>/dev/null

# 2. the policy stage again, at this device's scale, from each run's behaviour model and critic (one process each)
for spec in hopper-medium-v5:Hopper-v5 hopper-medium-replay-v5:Hopper-v5 walker2d-medium-replay-v5:Walker2d-v5; do
    task=${spec%%:*}
    timeout -s TERM -k 60 "$RUN_S" python3 benchmarks/research/gmpg_bench.py repolicy ".gpu-data/runs/$task/checkpoint.pt" \
        "$spec" --set device=$DEV --set compile=off --set policy_batch_size=$BATCH --set chunk_size=$BATCH \
        --set policy_steps=$STEPS --set eval_every=$EVAL_EVERY --set eval_episodes=10 --set ckpt_every=50 \
        --out "/tmp/gpu-runs/$task" --no-progress > "/tmp/gpu-logs/$task.log" 2>&1 &
done
wait
for d in /tmp/gpu-runs/*/; do
    tar -C /tmp/gpu-runs -cf "$OUT/$(basename "$d").tar" --exclude=best.pt "$(basename "$d")"
done
tar -C /tmp -cf "$OUT/logs.tar" gpu-logs
tail -n 3 /tmp/gpu-logs/*.log
ls -la "$OUT"
