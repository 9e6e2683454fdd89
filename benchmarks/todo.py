"""What is left of a results-page table: the ``genpolicy bench`` commands for the (task, seed) cells that neither a
run folder here nor the committed ``docs/results/NAME.csv`` holds.

Run folders do not survive a change of machine and are not committed; the committed CSVs are the record. So "run
the same command again" continues a table across machines only if the command knows what the CSV already holds:
this script prints one command per task and seed with the algorithms missing there (they share the task-seed's
IQL critic), seeds in order, so that every task gets its next seed before any task gets a third. Tasks whose
dataset is not here are printed as comments with the reason.

    python benchmarks/todo.py antmaze-cpu                # the commands
    python benchmarks/todo.py antmaze-cpu | bash         # run them; run it again to continue
    python benchmarks/todo.py dmc-cpu --seeds 0 1 2 --algos gmpo gmpg
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_page import TABLES, committed_rows  # noqa: E402

from genpolicy.rl.datasets import available_datasets  # noqa: E402
from genpolicy.suite import parse_task  # noqa: E402

#: table name -> the bench arguments its commands on docs/results.md use besides algos, tasks, seeds and --out
BENCH_ARGS = {
    "antmaze-cpu": ["--budget", "cpu", "recipe"],
    "dmc-cpu": ["--budget", "cpu"],
    "pointmaze-cpu": ["--budget", "cpu", "--set", "final_eval_episodes=50"],
    "medium-expert-recipe": ["--budget", "cpu", "recipe"],
}


def missing(name: str, seeds: list[int], docs: Path, algos: list[str] | None = None) -> list[tuple[str, int, list]]:
    """(task spec, seed, algorithms) for each task and seed of table ``name`` where some of its algorithms (or of
    ``algos``) have neither a finished run folder in the table's suite nor the seed in the committed CSV; seeds
    outermost, then the table's task order."""
    suite, specs, columns = TABLES[name]
    suite = Path(suite)
    committed = committed_rows(docs / f"{name}.csv")
    wanted = [a for a in columns if algos is None or a in algos]
    out = []
    for seed in seeds:
        for spec in specs:
            t = parse_task(spec)
            need = [a for a in wanted if not (suite / t.name / a / f"seed-{seed}" / "summary.json").exists()
                    and seed not in committed.get((t.name, a), {}).get("seeds", [])]
            if need:
                out.append((spec, seed, need))
    return out


def commands(name: str, seeds: list[int], docs: Path, algos: list[str] | None = None) -> list[str]:
    """The lines :func:`main` prints: a bench command per missing cell, a comment where the dataset is not here."""
    if name not in BENCH_ARGS:
        raise ValueError(f"table {name!r} has no bench arguments in todo.BENCH_ARGS (tables with them: "
                         f"{', '.join(sorted(BENCH_ARGS))})")
    here = {d["name"] for d in available_datasets()}
    suite = TABLES[name][0]
    lines = []
    for spec, seed, need in missing(name, seeds, docs, algos):
        dataset = parse_task(spec).dataset
        cmd = ["genpolicy", "bench", "--algos", *need, "--tasks", spec, "--seeds", str(seed), *BENCH_ARGS[name],
               "--out", suite]
        if dataset not in here and not Path(dataset).exists():
            lines.append(f"# {dataset} is not here (genpolicy datasets says how to make it): {shlex.join(cmd)}")
        else:
            lines.append(shlex.join(cmd))
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=sorted(BENCH_ARGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--algos", nargs="+", default=None, help="only these of the table's columns")
    p.add_argument("--docs", default="docs/results", help="where the committed CSVs are")
    ns = p.parse_args(argv)
    lines = commands(ns.table, ns.seeds, Path(ns.docs), ns.algos)
    print("\n".join(lines) if lines else f"# {ns.table}: every cell of seeds {ns.seeds} is done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
