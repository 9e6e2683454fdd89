"""The ablation's adoption rule, applied to a suite's results (``benchmarks/research/ablation.sh``).

Stated before any run: a change is adopted into the ``cpu``/``recipe`` presets only if, at the results table's
budget, its mean over the six tasks is higher than today's method's, it is above on at least 4 of 6 tasks, and on no
task is it lower by more than two standard errors of the difference (``sqrt(se_a^2 + se_b^2)``). A variant run on
only some tasks (``gmpo-code``: the code's settings differ from ours on four) counts as today's method on the others.

    python benchmarks/research/ablation_rule.py runs/ablation --out docs/results/ablation.md

While the ablation runs, the same command reads its finished run folders and says what is done; a verdict waits
until every task and seed of a comparison is in.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # genpolicy, run from a checkout

#: each variant label and the method it is measured against
BASELINES = {"gmpg-paper-gradient": "gmpg", "gmpg-vpsde": "gmpg", "gmpg-paper-gradient-bits": "gmpg",
             "gmpg-no-clip": "gmpg", "gmpo-code": "gmpo"}
MIN_ABOVE = 4
TASKS, SEEDS = 6, 3  # the verdict waits until today's method has every task, and every cell run, at this many seeds
#: variants that run on fewer tasks than six (where the code's settings differ from ours), and on how many
RUNS_ON = {"gmpo-code": 4}


def verdict(base: dict[str, tuple], variant: dict[str, tuple]) -> dict:
    """``base`` and ``variant``: task -> (mean, s.e.[, seeds]) over seeds; tasks missing from ``variant`` count as
    ``base``'s.
    Returns the per-task differences, the counts and whether the rule adopts the change."""
    rows, above, worse = [], 0, []
    for task, cell in sorted(base.items()):
        mb, sb = cell[:2]
        mv, sv = variant.get(task, cell)[:2]
        diff, se = mv - mb, math.sqrt(sv ** 2 + sb ** 2) if task in variant else 0.0
        above += diff > 0
        if diff < -2 * se:
            worse.append(task)
        rows.append({"task": task, "base": mb, "base_se": sb, "variant": mv, "variant_se": sv, "diff": diff,
                     "se_diff": se, "ran": task in variant})
    mean_b = sum(c[0] for c in base.values()) / len(base)
    mean_v = sum(variant.get(t, base[t])[0] for t in base) / len(base)
    adopt = mean_v > mean_b and above >= MIN_ABOVE and not worse
    return {"rows": rows, "mean_base": mean_b, "mean_variant": mean_v, "above": above, "worse": worse,
            "adopt": adopt}


def read(results_csv: Path) -> dict[str, dict[str, tuple[float, float, int]]]:
    """label -> task -> (mean, s.e., seeds) from a suite's results.csv."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    with open(results_csv) as f:
        for r in csv.DictReader(f):
            if r["mean"] not in ("", "nan"):
                out.setdefault(r["algo"], {})[r["task"]] = (float(r["mean"]), float(r["se"] or 0.0), int(r["n"]))
    return out


def read_suite(suite: Path) -> dict[str, dict[str, tuple[float, float, int]]]:
    """As :func:`read`, from the suite's finished run folders where it has any (so that a run in progress, which
    has not yet rewritten ``results.csv``, shows what it has finished), else from its ``results.csv``."""
    if not any(suite.glob("*/*/seed-*/summary.json")):
        if not (suite / "results.csv").exists():
            raise SystemExit(f"{suite}: no finished run and no results.csv (run benchmarks/research/ablation.sh)")
        return read(suite / "results.csv")
    from genpolicy.suite import collect
    from genpolicy.suite.report import everything_in

    tasks, algos = everything_in(suite, [], [])
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for r in collect(suite, tasks, algos, select=False, latency=False):
        if r["n"]:
            out.setdefault(r["algo"], {})[r["task"]] = (r["mean"], r["se"] or 0.0, r["n"])
    return out


def pending(base: dict, variant: dict, runs_on: int = TASKS) -> str:
    """Why no verdict may be given yet ("" once it may): today's method must have all six tasks, the change the
    ``runs_on`` tasks it is run on, and every cell of both the full seeds; a verdict on part of the table could
    differ from the whole's."""
    short = {t for cells in (base, variant) for t, c in cells.items() if c[2] < SEEDS}
    if len(base) < TASKS or len(variant) < runs_on or short:
        return (f"pending: today's on {len(base)} of {TASKS} tasks, the change on {len(variant)} of {runs_on}, "
                f"{len(short)} task(s) below {SEEDS} seeds")
    return ""


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", type=Path, help="the suite's run root (its run folders, else its results.csv)")
    p.add_argument("--out", type=Path, help="write the table (markdown) here")
    ns = p.parse_args(argv)
    res = read_suite(ns.suite)
    lines = ["| change | against | six-task mean (today → with it) | above on | lower by > 2 s.e. | adopted |",
             "|---|---|---|---|---|---|"]
    detail = ["| change | task | today | with it | difference |", "|---|---|---|---|---|"]
    for label, base in BASELINES.items():
        if label not in res or base not in res:
            lines.append(f"| {label} | {base} | not run yet | | | |")
            continue
        if set(res[base]) != set(res[label]) | set(res[base]):
            raise SystemExit(f"{label} ran on tasks that {base} did not: {sorted(set(res[label]) - set(res[base]))}")
        v = verdict(res[base], res[label])
        wait = pending(res[base], res[label], RUNS_ON.get(label, TASKS))
        lines.append(f"| {label} | {base} | {v['mean_base']:.1f} → {v['mean_variant']:.1f} | {v['above']} of "
                     f"{len(v['rows'])} | {', '.join(v['worse']) or 'none'} | "
                     f"{wait or ('yes' if v['adopt'] else 'no')} |")
        detail += [f"| {label} | {r['task']} | {r['base']:.1f} ± {r['base_se']:.1f} | "
                   + (f"{r['variant']:.1f} ± {r['variant_se']:.1f} | {r['diff']:+.1f} ± {r['se_diff']:.1f} |"
                      if r["ran"] else "not run: counts as today's | |") for r in v["rows"]]
    done = [f"{label} " + ", ".join(f"{t} ({c[2]})" for t, c in sorted(res[label].items()))
            for label in dict.fromkeys([*BASELINES.values(), *BASELINES]) if label in res]
    lines += ["", "Finished runs (seeds) so far: " + ("; ".join(done) if done else "none")]
    if len(detail) > 2:
        lines += ["", "Per task: mean ± s.e. over seeds; the difference (change − today) ± its s.e.", "", *detail]
    text = "\n".join(lines) + "\n"
    print(text)
    if ns.out:
        ns.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
