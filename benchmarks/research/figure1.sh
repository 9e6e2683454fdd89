#!/usr/bin/env bash
# The paper's Figure 1 here: the held-out log-likelihood of the data's actions under GMPO's and GMPG's policies
# during training, on hopper-medium and halfcheetah-medium-expert (seed 0, 5000 held-out transitions, a reduced
# cpu budget: 10k critic steps; GMPO 10k policy steps, GMPG 10k behaviour steps and 400 policy steps).
# Resumable: run it again to continue. Writes docs/results/figure1-TASK.png.
set -euo pipefail
OUT=${1:-runs/figure1}
TASKS="hopper-medium-v5:Hopper-v5 halfcheetah-medium-expert-v5:HalfCheetah-v5"
COMMON="--seeds 0 --budget cpu --out $OUT --no-progress --set heldout_transitions=5000 --set critic_steps=10000"
genpolicy bench --algos gmpo --tasks $TASKS $COMMON --set policy_steps=10000 --set eval_every=1000 --set eval_episodes=5
genpolicy bench --algos gmpg --tasks $TASKS $COMMON --set behaviour_steps=10000 --set eval_every=50 --set eval_episodes=5
for t in hopper-medium-v5 halfcheetah-medium-expert-v5; do
  genpolicy plot $OUT/$t/gmpo/seed-0 $OUT/$t/gmpg/seed-0 -o docs/results/figure1-${t%-v5}.png
done
