"""Rebuild the per-table files of docs/results.md (docs/results/NAME.csv, and NAME.png for one-task tables) from the
suite folders that `genpolicy bench` wrote, and print each table in markdown (the page's tables are pasted from
this output).

    python benchmarks/results_page.py                  # every table whose runs exist here
    python benchmarks/results_page.py --only six-tasks-c100k walker2d-medium-v5-cpu-recipe

Each table is a view of one suite folder restricted to some tasks and algorithm columns (the ones with at least one
finished run); the numbers are the suite's own (`genpolicy.suite.collect`/`write_table`), so they match the
`results.md` that the bench commands on the page write into that folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genpolicy.suite import collect, parse_task, plot_curves, write_table  # noqa: E402

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


def build(name: str, docs: Path) -> str | None:
    """Write ``docs/NAME.csv`` (and ``.png`` for a one-task table); the markdown table, or None without runs."""
    suite, specs, algos = TABLES[name]
    suite, tasks = Path(suite), [parse_task(t) for t in specs]
    algos = [a for a in algos if any(any((suite / t.name / a).glob("seed-*/summary.json")) for t in tasks)]
    if not algos:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp)
        for t in tasks:  # the suite seen with only these columns
            for a in algos:
                if (suite / t.name / a).exists():
                    (view / t.name).mkdir(exist_ok=True)
                    (view / t.name / a).symlink_to((suite / t.name / a).resolve())
        md = write_table(collect(view, tasks, algos), view).read_text()
        shutil.copy(view / "results.csv", docs / f"{name}.csv")
        if len(tasks) == 1:
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
