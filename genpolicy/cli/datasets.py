"""``genpolicy datasets``: the names ``--dataset`` accepts, with each data card's facts."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    p = sub.add_parser(name, help=text, description=text + " (searched in $GENPOLICY_DATASETS, ./datasets and the "
                                                           "repository's datasets/).")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(ns) -> int:
    from ..rl.datasets import available_datasets, dataset_dirs

    rows = available_datasets()
    if ns.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no datasets found in {', '.join(map(str, dataset_dirs()))}")
        return 0

    def f(v, fmt):
        width = int(fmt.split(".")[0].rstrip("df"))
        return format(v, fmt) if v is not None else "-".rjust(width)

    print(f"{'name':34s} {'MB':>6s} {'transitions':>11s} {'episodes':>8s} {'return':>8s} {'score':>6s}")
    for r in rows:
        note = "  (medium + expert, composed on load)" if r.get("composed") else ""
        note = "  (registered)" if r.get("registered") else note
        print(f"{r['name']:34s} {f(r.get('size_mb'), '6.1f')} {f(r.get('transitions'), '11d')} "
              f"{f(r.get('episodes'), '8d')} {f(r.get('return_mean'), '8.1f')} {f(r.get('score_mean'), '6.1f')}{note}")
    print("score: D4RL-normalized mean return of the data (100 = D4RL's expert reference return; mazes: the share of "
          "episodes that reach the goal x 100)")
    for line in not_here({r["name"] for r in rows}):
        print(line)
    return 0


def not_here(here: set[str], agents: Path | None = None) -> list[str]:
    """One line per family whose datasets can be made here but are not in ``here``, with the command that makes
    them (the AntMaze files from the committed controller; a DeepMind Control task's medium file from its committed
    policy snapshot in ``agents`` (default: the repository's ``datasets/agents``), its other files from its agent)."""
    from ..datagen.antmaze import ANT_DATASETS
    from ..rl.datasets import REPO_DATASETS
    from ..rl.envs import DM_CONTROL_TASKS

    # DeepMind Control agents' history.json and medium snapshot (safetensors), committed beside the datasets
    agents = REPO_DATASETS / "agents" if agents is None else agents
    lines = []
    missing = [f"{n}-v0" for n in ANT_DATASETS if f"{n}-v0" not in here]
    if missing:
        lines.append(f"not here: {', '.join(missing)}; each is one command from the committed goal-reaching ant: "
                     "genpolicy data maze NAME --controller datasets/controllers/ant-goal.safetensors --goal-norm 10 "
                     "(datasets/README.md)")
    committed = [t for t in DM_CONTROL_TASKS if f"{t}-medium-v0" not in here and (agents / t / "history.json").exists()]
    if committed:
        lines.append(f"not here: the medium files of {', '.join(committed)}; each is one command (about a minute) from "
                     f"the committed snapshot: genpolicy data make TASK medium --behaviour-root {agents} "
                     "--transitions 100000 (datasets/README.md)")
    tasks = [t for t in DM_CONTROL_TASKS if f"{t}-medium-replay-v0" not in here
             or (f"{t}-medium-v0" not in here and t not in committed)]
    if tasks:
        lines.append(f"not here: the medium-replay / medium files of {', '.join(tasks)}; each task is its agent "
                     "(resumable) then one command per level: genpolicy data behaviour TASK --total-steps 500000; "
                     "genpolicy data make TASK medium-replay --transitions 100000 (datasets/README.md)")
    return lines
