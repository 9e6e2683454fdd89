"""Sweeps: a grid (or random points of it) over any config fields, each point a labelled variant in one suite that
shares its critics, and the per-task choice of a variant on selection seeds, reported on other seeds.

    genpolicy bench --algos gmpo --tasks ... --sweep beta=1,4,8 --sweep policy_lr=1e-4,3e-4 \\
        --select-seeds 10 11 --seeds 0 1 2

runs ``gmpo+beta=1+policy_lr=0.0001`` ... (six variants) on seeds 10, 11, 0, 1, 2, and writes ``selected.md``: for
each task, the variant with the best mean final score on seeds 10-11 and its score on seeds 0-2. Choosing the best
variant by the reported seeds' own scores is optimistic (the maximum of noisy means is biased upwards): that is
why the choice and the report use different seeds, and why ``results.md``, which shows every variant on every seed,
is not the place to pick one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import random
from pathlib import Path

from ..checkpoint import atomic_write
from ..rl.algos import ALGORITHMS
from ..train.rundir import read_summary
from .report import score_cell, score_stats
from .task import Task

__all__ = ["Variant", "split_values", "check_sweep", "variants", "select", "write_selection"]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One column of a suite: an algorithm with ``sets`` (``KEY=VALUE``) on top of the suite's settings."""

    algo: str
    column: str
    sets: list = dataclasses.field(default_factory=list, hash=False)
    base: str = ""  # the column it is a variant of (the algorithm's name or --label)


def split_values(text: str) -> list[str]:
    """``1,4,8`` -> ``['1', '4', '8']``; commas inside brackets stay (``[64,64],[256,256]`` is two values)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def check_sweep(algos: list[str], specs: list[str], sets: list[str], random_points: int) -> list[tuple]:
    """The sweep's axes ``[(key, [values])]`` from ``--sweep KEY=V1,V2`` each, with one-line errors for a key that
    is not a field of every algorithm, a key given twice or also in ``--set``, an empty or repeated value, and a
    value that cannot name a folder."""
    axes, seen = [], set()
    set_keys = {s.split("=", 1)[0].strip() for s in sets}
    for spec in specs:
        key, eq, values = spec.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--sweep expects KEY=V1,V2,..., got {spec!r}")
        lacking = [a for a in algos if key not in {f.name for f in dataclasses.fields(ALGORITHMS[a].Config)}]
        if lacking:
            raise ValueError(f"--sweep {key}: not a field of {lacking}")
        if key in seen or key in set_keys:
            raise ValueError(f"--sweep {key}: given twice (in --sweep or --set)")
        vals = split_values(values)
        if any(not v or "/" in v or "+" in v for v in vals) or len(set(vals)) != len(vals):
            raise ValueError(f"--sweep {key}: values must be distinct, non-empty, without '/' or '+': {vals}")
        seen.add(key)
        axes.append((key, vals))
    if random_points < 0 or (random_points and not axes):
        raise ValueError("--sweep-random N draws N points of the --sweep grid: give --sweep and N > 0")
    return axes


def variants(algos: list[str], label: str | None, axes: list[tuple], random_points: int = 0,
             seed: int = 0) -> list[Variant]:
    """Every algorithm's variants: one per point of the grid of ``axes`` (all points, or ``random_points`` of them
    drawn without replacement with ``seed``), or the algorithm itself without a sweep."""
    if not axes:
        return [Variant(a, label or a, [], label or a) for a in algos]
    points = list(itertools.product(*[[(k, v) for v in vals] for k, vals in axes]))
    if random_points and random_points < len(points):
        points = sorted(random.Random(seed).sample(points, random_points), key=points.index)
    out = []
    for a in algos:
        base = label or a
        for p in points:
            out.append(Variant(a, base + "".join(f"+{k}={v}" for k, v in p), [f"{k}={v}" for k, v in p], base))
    return out


def _scores(root: Path, task: Task, column: str, seeds: list[int]) -> list[float]:
    out = []
    for k in seeds:
        s = read_summary(root / task.name / column / f"seed-{k}")
        if s is not None and s.get("final_score") is not None:
            out.append(s["final_score"])
    return out


def select(root: str | Path, tasks: list[Task], vs: list[Variant], select_seeds: list[int],
           report_seeds: list[int]) -> list[dict]:
    """Per (task, base column): the variant with the highest mean final score on ``select_seeds`` (ties: the first
    in sweep order), and that variant's scores on ``report_seeds``."""
    rows = []
    for task in tasks:
        for base in dict.fromkeys(v.base for v in vs):
            cands = [(v, _scores(Path(root), task, v.column, select_seeds)) for v in vs if v.base == base]
            cands = [(v, s) for v, s in cands if s]
            if not cands:
                continue
            best, sel = max(cands, key=lambda c: sum(c[1]) / len(c[1]))
            rep = _scores(Path(root), task, best.column, report_seeds)
            rows.append({"task": task.name, "algo": base, "variant": best.column, "selection": score_stats(sel),
                         "selection_seeds": list(select_seeds), "report": score_stats(rep), "scores": rep,
                         "report_seeds": list(report_seeds), "candidates": len(cands)})
    return rows


def write_selection(root: str | Path, tasks: list[Task], vs: list[Variant], select_seeds: list[int],
                    report_seeds: list[int]) -> Path:
    """``selected.md`` and ``selected.csv`` from :func:`select`."""
    rows = select(root, tasks, vs, select_seeds, report_seeds)
    overlap = sorted(set(select_seeds) & set(report_seeds))
    lines = ["| task | algorithm | chosen variant | on selection seeds | reported |", "|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['algo']} | {r['variant']} (of {r['candidates']}) | {score_cell(r['selection'])} | "
              f"{score_cell(r['report'])} |" for r in rows]
    lines += ["", f"Each variant chosen by its mean final score on seeds {select_seeds} and reported on seeds "
                  f"{report_seeds}: mean ± standard error (number of seeds)."]
    if overlap:
        lines += ["", f"**Optimistic**: seeds {overlap} were used both to choose and to report."]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["task", "algo", "variant", "selection_mean", "selection_seeds", "n", "mean", "se", "report_seeds",
                "scores"])
    for r in rows:
        w.writerow([r["task"], r["algo"], r["variant"], r["selection"]["mean"], " ".join(map(str, select_seeds)),
                    r["report"]["n"], r["report"]["mean"], r["report"]["se"], " ".join(map(str, report_seeds)),
                    " ".join(f"{s:.3f}" for s in r["scores"])])
    md = Path(root) / "selected.md"
    atomic_write(md, lambda fh: fh.write(("\n".join(lines) + "\n").encode()))
    atomic_write(Path(root) / "selected.csv", lambda fh: fh.write(buf.getvalue().encode()))
    return md
