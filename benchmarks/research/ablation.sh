#!/usr/bin/env bash
# Which of GenerativeRL's differences matters: each one alone (its gradient comes with its log pi, a likelihood
# solve of the sampled action, which it needs) against today's GMPG (and GMPO), at the results
# table's budget (cpu recipe), six tasks, three seeds, the IQL critics shared by every variant of a task and seed.
# The adoption rule was written before any run (docs/research/2026-12-06-ray-fidelity-navigation.md) and is applied
# by ablation_rule.py. Resumable: run it again to continue (hours per variant on 2 CPU cores). Writes
# docs/results/ablation.md (its verdicts say "pending" until every task and seed is in).
#
#   bash benchmarks/research/ablation.sh runs/ablation              # all six tasks, one after another
#   bash benchmarks/research/ablation.sh runs/ablation TASK ...     # only these (one runner per core, each its
#                                                                   # own tasks: a task's runs share its critics)
set -euo pipefail
OUT=${1:-runs/ablation}
shift || true
TASKS=${*:-"halfcheetah-medium-v5:HalfCheetah-v5 hopper-medium-v5:Hopper-v5 walker2d-medium-v5:Walker2d-v5
halfcheetah-medium-replay-v5:HalfCheetah-v5 hopper-medium-replay-v5:Hopper-v5 walker2d-medium-replay-v5:Walker2d-v5"}
COMMON="--seeds 0 1 2 --budget cpu recipe --out $OUT --no-progress"
for t in $TASKS; do  # one task at a time, so a partial run already holds whole tasks
  genpolicy bench --algos gmpg --tasks $t $COMMON                                             # today's GMPG
  genpolicy bench --algos gmpg --tasks $t $COMMON --label gmpg-paper-gradient --set kl_gradient=paper \
    --set log_pi=reverse
  genpolicy bench --algos gmpg --tasks $t $COMMON --label gmpg-vpsde --set path=vpsde
  genpolicy bench --algos gmpg --tasks $t $COMMON --label gmpg-paper-gradient-bits --set kl_gradient=paper \
    --set log_pi=reverse --set kl_unit=bit_per_dim
  genpolicy bench --algos gmpg --tasks $t $COMMON --label gmpg-no-clip --set grad_clip=0
  genpolicy bench --algos gmpo --tasks $t $COMMON                                             # today's GMPO
  # GMPO with the code's settings where they differ from ours (the other two tasks: the same config as today's)
  case ${t%%:*} in
    hopper-medium-v5) code="--set weight_clamp=1000" ;;
    halfcheetah-medium-replay-v5) code="--set weight_clamp=400" ;;
    walker2d-medium-replay-v5) code="--set weight_clamp=10000" ;;
    halfcheetah-medium-v5) code="--set beta=8" ;;
    *) code="" ;;
  esac
  if [ -n "$code" ]; then
    genpolicy bench --algos gmpo --tasks $t $COMMON --label gmpo-code $code
  fi
done
python benchmarks/research/ablation_rule.py $OUT --out docs/results/ablation.md
