"""Rebuild the per-table files of docs/results.md (docs/results/NAME.csv, and NAME.png for one-task tables) from the
suite folders that `genpolicy bench` wrote, and print each table in markdown (the page's tables are pasted from
this output).

    python benchmarks/results_page.py                  # every table whose runs exist here
    python benchmarks/results_page.py --only six-tasks-c100k walker2d-medium-v5-cpu-recipe

Each table is a view of one suite folder restricted to some tasks and algorithm columns (the ones with at least one
finished run); the numbers are the suite's own (`genpolicy.suite.collect`/`write_table`), so they match the
`results.md` that the bench commands on the page write into that folder.

The committed CSVs are the record of runs whose folders are not on this machine (run folders are not committed, and
a fresh checkout has none): a seed that the committed ``NAME.csv`` holds and no run folder here has is carried into
the rebuilt table with its committed score, and said so on stderr, so rebuilding after adding seeds never drops
the others. A seed whose folder is here is taken from it (a score that differs from the committed one is reported).
A carried seed counts its cell's committed train minutes; a one-task table's curves (PNG) are left as committed
when seeds were carried, since their learning curves are not here.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genpolicy.suite import collect, parse_task, plot_curves, score_stats, write_table  # noqa: E402

SIX = ["hopper-medium-v5:Hopper-v5", "walker2d-medium-v5:Walker2d-v5", "halfcheetah-medium-v5:HalfCheetah-v5",
       "hopper-medium-replay-v5:Hopper-v5", "walker2d-medium-replay-v5:Walker2d-v5",
       "halfcheetah-medium-replay-v5:HalfCheetah-v5"]
HM, WM, HCM, HMR, WMR, HCMR = SIX
SUITE, L0 = "runs/suite-six", "runs/suite-l0"
C100K = ["iql-c100k", "gmpo-c100k-pb1024", "gmpg", "gmpg-t32", "gmpg-c100k"]

#: table name -> (suite folder, tasks, algorithm columns)
TABLES = {
    "hopper-medium-v5-cpu": (SUITE, [HM], ["bc", "iql", "td3bc", "gmpo", "gmpg"]),
    "hopper-medium-v5-cpu-all": (SUITE, [HM], ["bc", "iql", "td3bc", "gmpo", "gmpg", "idql", "sfbc", "qgpo", "srpo",
                                               "dql", "fql"]),
    "hopper-medium-v5-cpu-p90k": (SUITE, [HM], ["bc", "bc-p90k", "iql", "iql-p90k", "gmpo", "gmpo-p90k"]),
    "hopper-medium-v5-cpu-gmpg-t32": (SUITE, [HM], ["iql", "gmpg", "gmpg-t32"]),
    "halfcheetah-medium-v5-cpu-gmpg-t32": (SUITE, [HCM], ["iql", "gmpg", "gmpg-t32"]),
    "walker2d-medium-v5-cpu-ablations": (SUITE, [WM], ["bc", "iql", "gmpo", "iql-c100k", "gmpo-c100k", "gmpo-beta0",
                                                       "gmpo-beta2", "gmpo-norm", "gmpo-lr1e-4", "gmpo-linear",
                                                       "gmpo-clamp10", "gmpo-vpsde", "gmpo-unet"]),
    "walker2d-medium-v5-cpu-recipe": (SUITE, [WM], ["bc", "iql", "gmpo", "iql-c100k", "gmpo-pb1024", "gmpo-c100k",
                                                    "gmpo-c100k-pb1024", "gmpo-c100k-pb1024-ema", "iql-c200k",
                                                    "gmpo-c200k-pb1024"]),
    "hopper-medium-v5-cpu-recipe": (SUITE, [HM], ["bc", "iql", "gmpo", "iql-c100k", "gmpo-c100k-pb1024"]),
    "halfcheetah-medium-v5-cpu-recipe": (SUITE, [HCM], ["bc", "iql", "gmpo", "iql-c100k", "gmpo-c100k-pb1024"]),
    "hopper-medium-v5-cpu-gmpg-c100k": (SUITE, [HM], C100K),
    "walker2d-medium-v5-cpu-gmpg-c100k": (SUITE, [WM], C100K),
    "halfcheetah-medium-v5-cpu-gmpg-c100k": (SUITE, [HCM], C100K),
    "halfcheetah-medium-replay-v5-cpu-bc": (SUITE, [HCMR], ["bc", "gmpo-beta0", "iql", "td3bc", "gmpo", "gmpg"]),
    "hopper-medium-v5-cpu-recipe-beta": (SUITE, [HM], ["iql-c100k", "gmpo-c100k-pb1024", "gmpo-c100k-pb1024-beta8",
                                                       "gmpo-c100k-pb1024-beta3"]),
    "hopper-medium-replay-v5-cpu-recipe": (SUITE, [HMR], ["bc", "iql", "gmpo", "iql-c100k", "gmpo-c100k-pb1024"]),
    "walker2d-medium-v5-cpu-gmpg-solver": (SUITE, [WM], ["iql-c100k", "gmpo-c100k-pb1024", "gmpg-c100k",
                                                         "gmpg-c100k-heun", "gmpg-c100k-rk4"]),
    "six-tasks-cpu": (SUITE, SIX, ["bc", "iql", "td3bc", "gmpo", "gmpg"]),
    "six-tasks-cpu-baselines": (SUITE, SIX, ["iql", "gmpo", "sfbc", "srpo", "fql"]),
    "six-tasks-c100k": (SUITE, SIX, ["iql-c100k", "gmpo-c100k-pb1024", "gmpo-c100k-pb1024-beta3", "gmpg-c100k",
                                     "gmpg-c100k-rk4"]),
    "six-tasks-c100k-p90k": (SUITE, SIX, ["iql-c100k", "iql-c100k-p90k", "gmpo-c100k-pb1024",
                                          "gmpo-c100k-pb1024-p90k"]),
    "halfcheetah-medium-v5-cpu-locomotion0": (L0, [HCM], ["bc", "iql", "td3bc", "gmpo", "gmpg", "srpo"]),
}


def committed_rows(path: Path) -> dict[tuple[str, str], dict]:
    """The committed table ``path`` (a suite ``results.csv``) by (task, algorithm): seeds, scores and costs."""
    if not path.exists():
        return {}
    out = {}
    for r in csv.DictReader(path.open(newline="")):
        seeds, scores = [int(x) for x in r["seeds"].split()], [float(x) for x in r["scores"].split()]
        out[r["task"], r["algo"]] = {"seeds": seeds, "scores": scores,
                                     "train_minutes": float(r["train_minutes"]) if r["train_minutes"] else None,
                                     "act_ms": float(r["act_ms"]) if r["act_ms"] else None}
    return out


def carry_committed(rows: list[dict], committed: dict[tuple[str, str], dict], log=print) -> bool:
    """Add to ``rows`` (:func:`collect`'s, edited in place) each committed seed that no run folder here has; True
    if any was carried. Scores of seeds present in both that differ are reported through ``log``."""
    carried = False
    for r in rows:
        c = committed.get((r["task"], r["algo"]))
        if not c:
            continue
        here = dict(zip(r["seeds"], r["scores"]))
        for seed, score in zip(c["seeds"], c["scores"]):
            if seed in here and abs(here[seed] - score) > 5e-4:  # the CSV keeps 3 decimals
                log(f"{r['task']} {r['algo']} seed {seed}: run here {here[seed]:.3f}, committed {score:.3f}")
        missing = [(s, x) for s, x in zip(c["seeds"], c["scores"]) if s not in here]
        if not missing:
            continue
        carried = True
        log(f"{r['task']} {r['algo']}: seeds {' '.join(str(s) for s, _ in missing)} carried from the committed "
            f"table (no run folder here)")
        n_here = len(r["seeds"])
        if c["train_minutes"] is not None:  # the committed mean stands in for each carried seed's minutes
            mins = [(r["train_minutes"] or 0.0)] * n_here + [c["train_minutes"]] * len(missing)
            r["train_minutes"] = round(sum(mins) / len(mins), 1)
        if r["act_ms"] is None:
            r["act_ms"] = c["act_ms"]
        pairs = sorted([*here.items(), *missing])
        r["seeds"], r["scores"] = [s for s, _ in pairs], [x for _, x in pairs]
        r.update(score_stats(r["scores"]))
    return carried


def build(name: str, docs: Path) -> str | None:
    """Write ``docs/NAME.csv`` (and ``.png`` for a one-task table); the markdown table, or None without runs."""
    suite, specs, algos = TABLES[name]
    suite, tasks = Path(suite), [parse_task(t) for t in specs]
    committed = committed_rows(docs / f"{name}.csv")
    if not any(any((suite / t.name / a).glob("seed-*/summary.json")) for t in tasks for a in algos):
        return None
    algos = [a for a in algos if any(any((suite / t.name / a).glob("seed-*/summary.json"))
                                     or (t.name, a) in committed for t in tasks)]
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp)
        for t in tasks:  # the suite seen with only these columns
            for a in algos:
                if (suite / t.name / a).exists():
                    (view / t.name).mkdir(exist_ok=True)
                    (view / t.name / a).symlink_to((suite / t.name / a).resolve())
        rows = collect(view, tasks, algos)
        carried = carry_committed(rows, committed, log=lambda m: print(f"{name}: {m}", file=sys.stderr))
        md = write_table(rows, view).read_text()
        shutil.copy(view / "results.csv", docs / f"{name}.csv")
        if len(tasks) == 1 and not carried:
            png = plot_curves(view, tasks[0], algos)
            if png:
                shutil.copy(png, docs / f"{name}.png")
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=sorted(TABLES), help="these tables (default: all)")
    p.add_argument("--docs", default="docs/results", help="where the CSV and PNG files go")
    ns = p.parse_args(argv)
    docs = Path(ns.docs)
    docs.mkdir(parents=True, exist_ok=True)
    for name in ns.only or TABLES:
        md = build(name, docs)
        print(f"## {name}\n\n{md if md is not None else '(no finished runs here)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
