"""Re-score finished suite runs under act-time settings, every run and setting on the same episodes, and print the
table (mean ± s.e. over seeds) that docs/results.md pastes; the per-seed scores go to docs/results/NAME.csv.

    python benchmarks/rescore.py --name six-tasks-c100k-temperature --algos iql-c100k gmpo-c100k-pb1024 \\
        gmpg-c100k-rk4 --set act_temperature=1 act_temperature=0

Each finished run (``seed-K/summary.json``) is scored by ``genpolicy eval RUN --checkpoint final --episodes E
--seed S --set SETTING``: environments and policy noise seeded by S, so every run and setting starts from the same
states (a run's own final evaluation uses seeds 10000 + K and 12345 + K instead, so its score differs from these by
evaluation noise). A score is kept in ``RUN/rescore/SETTING-seedS-epE.json``; running the command again scores only
what is missing. Settings that an algorithm ignores (the temperature of a Gaussian actor's mean action) give it the
same score under each: it is scored under each all the same, which checks that.

As with ``results_page.py``, the committed ``NAME.csv`` is the record of runs whose folders are not here: a seed it
holds for a task, algorithm and setting of this call that no run folder here has is carried into the table with its
committed score (said so on stderr), and its rows of other tasks and columns stay in the file, so that re-scoring
after adding runs, or for fewer tasks, never drops the others.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from results_page import SIX  # noqa: E402

from genpolicy.cli import main as cli  # noqa: E402
from genpolicy.suite import parse_task, score_cell, score_stats  # noqa: E402


def score_file(run: Path, setting: str, seed: int, episodes: int) -> Path:
    """Where :func:`score` keeps the run's score under ``setting``, evaluation ``seed`` and ``episodes``."""
    return run / "rescore" / f"{setting}-seed{seed}-ep{episodes}.json"


def score(run: Path, setting: str, seed: int, episodes: int) -> float:
    """The run's final checkpoint scored under ``setting`` (``KEY=VALUE``, or several joined by commas), kept in
    ``run/rescore``."""
    f = score_file(run, setting, seed, episodes)
    if not f.exists():
        f.parent.mkdir(exist_ok=True)
        tmp = f.with_suffix(".tmp")
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli(["eval", str(run), "--checkpoint", "final", "--episodes", str(episodes), "--seed", str(seed),
                      *(x for kv in setting.split(",") for x in ("--set", kv)), "--out", str(tmp)])
        if rc != 0:
            raise SystemExit(f"rescore: genpolicy eval {run} --set {setting} failed (exit {rc})")
        tmp.rename(f)
    return json.loads(f.read_text())["score_mean"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="table name: docs/results/NAME.csv")
    p.add_argument("--algos", nargs="+", required=True, help="algorithm labels (folders) of the suite")
    p.add_argument("--set", nargs="+", required=True, metavar="KEY=VALUE", dest="settings",
                   help="act-time settings, one column each per algorithm (KEY=VALUE,KEY=VALUE for several)")
    p.add_argument("--tasks", nargs="+", default=SIX, help="TASK:ENV specs (default: the six locomotion tasks)")
    p.add_argument("--suite", default="runs/suite-six")
    p.add_argument("--seed", type=int, default=0, help="episodes' and policy noise's seed")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--docs", default="docs/results")
    ns = p.parse_args(argv)
    bad = [s for s in ns.settings if not all("=" in kv for kv in s.split(","))]
    if bad:
        p.error(f"--set takes KEY=VALUE (several joined by commas: act_solver=dpm2,act_steps=16), got {bad[0]!r}")
    from genpolicy.rl.datasets import available_datasets

    data = {r["name"]: r.get("score_mean") for r in available_datasets()}
    tasks = [parse_task(t).name for t in ns.tasks]
    cols = [(a, s) for a in ns.algos for s in ns.settings]
    rows, per_seed = {}, []
    for t in tasks:
        for a, s in cols:
            runs = sorted((Path(ns.suite) / t / a).glob("seed-*/summary.json"), key=lambda f: int(f.parent.name[5:]))
            scores = []
            for f in runs:
                if json.loads(f.read_text()).get("final_score") is None:
                    continue  # not finished
                scores.append(score(f.parent, s, ns.seed, ns.episodes))
                per_seed.append([t, a, s, f.parent.name[5:], f"{scores[-1]:.3f}"])
                print(f"{t} {a} {f.parent.name} {s}: {scores[-1]:.1f}", file=sys.stderr, flush=True)
            rows[t, a, s] = scores
    out = Path(ns.docs) / f"{ns.name}.csv"
    done, kept = {tuple(r[:4]) for r in per_seed}, 0
    committed = list(csv.reader(out.open(newline="")))[1:] if out.exists() else []
    for r in committed:
        t, a, s, seed, x = r
        if (t, a, s, seed) in done:
            continue
        per_seed.append(r)
        if (t, a, s) in rows:
            print(f"{t} {a} seed-{seed} {s}: {float(x):.1f} carried from the committed table (no run folder here)",
                  file=sys.stderr)
            rows[t, a, s].append(float(x))
        else:
            kept += 1
    if kept:
        print(f"{kept} committed rows of other tasks or columns than this call's kept in {out}", file=sys.stderr)
    # the committed file's order of (task, algo, setting) groups, new groups after them in this call's order, seeds
    # ascending within a group: re-scoring some runs changes only their rows in the file
    order: dict[tuple, int] = {}
    for r in committed:
        order.setdefault(tuple(r[:3]), len(order))
    for k in ((t, a, s) for t in tasks for a, s in cols):
        order.setdefault(k, len(order))
    per_seed.sort(key=lambda r: (order[tuple(r[:3])], int(r[3])))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        csv.writer(fh).writerows([["task", "algo", "setting", "seed", "score"], *per_seed])
    print("| task | data | " + " | ".join(f"{a} {s}" for a, s in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for t in tasks:
        d = data.get(t)
        cells = [score_cell(score_stats(rows[t, a, s])) for a, s in cols]
        print(f"| {t} | {'-' if d is None else f'{d:.1f}'} | " + " | ".join(cells) + " |")
    print(f"\nD4RL-normalized score of each run's final checkpoint, {ns.episodes} episodes (`genpolicy eval --seed "
          f"{ns.seed}`: the same start states for every run and setting), mean ± s.e. over seeds (number of seeds). "
          f"Per seed: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
