"""Why one seed of IQL's actor collapses on walker2d-medium (issue 42): critic, actor or evaluation?

    python benchmarks/research/iql_collapse.py --suite runs/iql-walker --good 0 --bad 2 \
        --out docs/results/iql-walker2d-collapse.json

Reads a suite folder holding ``iql`` runs of both seeds at the results table's budget (``genpolicy bench --algos iql
--tasks walker2d-medium-v5:Walker2d-v5 --seeds 2 0 --budget cpu recipe``) and measures, for each seed:

- **evaluation**: the final actor scored again on 50 episodes reset with other seeds (held out);
- **critic**: the shared critic's advantages on the data (mean, std, the AWR weights' effective sample size per
  batch of 256, exp(beta A) clamped at 100 as the actor's loss has them, and the fraction of clamped weights);
- **crossing**: each seed's actor trained again (same seed, same budget) on the *other* seed's critic. If the bad
  seed's actor recovers on the good critic and the good seed's actor collapses on the bad critic, the critic is
  to blame; if the bad seed collapses on either critic, its actor's own draws are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch


def critic_state(folder: Path) -> dict:
    from genpolicy.train import load_checkpoint

    modules = load_checkpoint(folder / "checkpoint.pt")["state"]["modules"]
    return {k[len("critic."):]: v for k, v in modules.items() if k.startswith("critic.")}


def critic_folder(run: Path) -> Path:
    from genpolicy.train import load_checkpoint

    return Path(load_checkpoint(run / "checkpoint.pt")["meta"]["critic_from"])


def advantage_stats(algo, data, beta: float, clamp: float = 100.0, batches: int = 200) -> dict:
    g = torch.Generator().manual_seed(0)
    adv, ess, clamped = [], [], []
    with torch.no_grad():
        for _ in range(batches):
            b = data.sample(256, generator=g)
            a = algo.critic.q(b.obs, b.actions) - algo.critic.v(b.obs)
            w = torch.exp(beta * a)
            clamped.append(float((w > clamp).float().mean()))
            w = w.clamp(max=clamp)
            ess.append(float(w.sum() ** 2 / (w ** 2).sum()) / 256)
            adv.append(a)
    adv = torch.cat(adv)
    return {"adv_mean": float(adv.mean()), "adv_std": float(adv.std()), "ess_fraction": float(np.mean(ess)),
            "clamped_fraction": float(np.mean(clamped))}


def emit(report: dict, out: str | None) -> None:
    """Print ``report`` as JSON and, with ``out``, write it there too."""
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", required=True)
    ap.add_argument("--task", default="walker2d-medium-v5")
    ap.add_argument("--env", default="Walker2d-v5")
    ap.add_argument("--good", type=int, default=0)
    ap.add_argument("--bad", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from genpolicy.policy import load_policy
    from genpolicy.rl.evaluate import evaluate_many
    from genpolicy.train import prepare_run, run_config, train

    root = Path(a.suite) / a.task / "iql"
    report = {}
    runs = {s: root / f"seed-{s}" for s in (a.good, a.bad)}
    critics = {s: critic_folder(runs[s]) for s in runs}
    for s, run in runs.items():
        summary = json.loads((run / "summary.json").read_text())
        policy = load_policy(run / "checkpoint.pt")
        policy.eval()
        res = evaluate_many([policy.act], a.env, a.episodes, seeds=[s + 30_000], policy_seeds=[s + 32_345])[0]
        cfg = run_config(run, "iql")
        algo, data = prepare_run("iql", cfg, a.task)
        algo.critic.load_state_dict(critic_state(critics[s]))
        report[f"seed-{s}"] = {"final_score": summary["final_score"],
                               "evals": [(e["step"], round(e["score"], 1), round(e["length_mean"], 1))
                                         for e in summary["evals"]],
                               "held_out_score": float(res.score), "held_out_length": float(res.lengths.mean()),
                               "critic": advantage_stats(algo, data, cfg.beta)}
    for s, other in ((a.good, a.bad), (a.bad, a.good)):
        cfg = dataclasses.replace(run_config(runs[s], "iql"), critic_steps=0)
        algo, data = prepare_run("iql", cfg, a.task)
        algo.critic.load_state_dict(critic_state(critics[other]))
        out = Path(a.suite) / "crossed" / f"actor-{s}-critic-{other}"
        summ = train(algo, data, out, env_id=a.env, resume=(out / "checkpoint.pt").exists(), progress=False)
        report[f"actor seed {s} on critic seed {other}"] = {"final_score": summ["final_score"],
                                                            "evals": [(e["step"], round(e["score"], 1))
                                                                      for e in summ["evals"]]}
    emit(report, a.out)


if __name__ == "__main__":
    main()
