"""Rebuild the per-table files of docs/results.md (docs/results/NAME.csv, and NAME.png: curves for a one-task table,
bars with every seed for a table of several tasks) from the suite folders that `genpolicy bench` wrote, and print
each table in markdown (the page's tables are pasted from this output).

    python benchmarks/results_page.py                  # every table whose runs exist here
    python benchmarks/results_page.py --only six-tasks-c100k walker2d-medium-v5-cpu-recipe

Each table is a view of one suite folder restricted to some tasks and algorithm columns (the ones with at least one
finished run); the numbers are the suite's own (`genpolicy.suite.collect`/`write_table`), so they match the
`results.md` that the bench commands on the page write into that folder.

The committed CSVs are the record of runs whose folders are not on this machine (run folders are not committed, and
a fresh checkout has none): a seed that the committed ``NAME.csv`` holds and no run folder here has is carried into
the rebuilt table with its committed score (and its selected checkpoint's held-out score), and said so on stderr, so
rebuilding after adding seeds never drops the others. A seed whose folder is here is taken from it (a score that
differs from the committed one is reported).
A cell's train minutes count the carried seeds by the committed total less the minutes of its seeds whose runs are
here (so rebuilding again gives the same table); a one-task table's curves (PNG) are left as committed when seeds
were carried, since their learning curves are not here.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genpolicy.suite import collect, parse_task, plot_curves, score_label, score_stats, write_table  # noqa: E402

SIX = ["hopper-medium-v5:Hopper-v5", "walker2d-medium-v5:Walker2d-v5", "halfcheetah-medium-v5:HalfCheetah-v5",
       "hopper-medium-replay-v5:Hopper-v5", "walker2d-medium-replay-v5:Walker2d-v5",
       "halfcheetah-medium-replay-v5:HalfCheetah-v5"]
HM, WM, HCM, HMR, WMR, HCMR = SIX
SUITE, L0, FRESH = "runs/suite-six", "runs/suite-l0", "runs/suite-fresh"
DMC = ["cheetah-run-medium-replay-v0:dm_control/cheetah-run-v0",
       "cartpole-swingup-medium-replay-v0:dm_control/cartpole-swingup-v0",
       "walker-stand-medium-replay-v0:dm_control/walker-stand-v0",
       "walker-walk-medium-replay-v0:dm_control/walker-walk-v0",
       "finger-turn_hard-medium-replay-v0:dm_control/finger-turn_hard-v0",
       "fish-swim-medium-replay-v0:dm_control/fish-swim-v0"]
ANTMAZE = [f"antmaze-{d}-v0:genpolicy/antmaze-{d.split('-')[0]}-v0" for d in
           ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")]
MEDIUM_EXPERT = [f"{e}-medium-expert-v5:{E}-v5" for e, E in
                 (("hopper", "Hopper"), ("walker2d", "Walker2d"), ("halfcheetah", "HalfCheetah"))]
C100K = ["iql-c100k", "gmpo-c100k-pb1024", "gmpg", "gmpg-t32", "gmpg-c100k"]

#: table name -> (suite folder, tasks, algorithm columns)
TABLES = {
    "dmc-cpu": ("runs/suite-dmc", DMC, ["bc", "iql", "gmpo", "gmpg"]),
    "antmaze-cpu": ("runs/suite-antmaze", ANTMAZE, ["bc", "iql", "gmpo", "gmpg"]),
    "medium-expert-recipe": (SUITE, MEDIUM_EXPERT, ["bc", "td3bc", "iql", "gmpo", "gmpg"]),
    "pointmaze-cpu": ("runs/suite-nav", ["pointmaze-umaze-v0:genpolicy/pointmaze-umaze-v0",
                                         "pointmaze-medium-v0:genpolicy/pointmaze-medium-v0",
                                         "pointmaze-large-v0:genpolicy/pointmaze-large-v0"], ["bc", "iql", "gmpo"]),
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
    "six-tasks-cpu-baselines": (SUITE, SIX, ["iql", "gmpo", "sfbc", "srpo", "fql", "idql", "qgpo", "dql"]),
    "six-tasks-recipe-baselines": (SUITE, SIX, ["srpo-recipe"]),
    "six-tasks-c100k": (SUITE, SIX, ["iql-c100k", "gmpo-c100k-pb1024", "gmpo-c100k-pb1024-beta3", "gmpg-c100k",
                                     "gmpg-c100k-rk4"]),
    "six-tasks-c100k-p90k": (SUITE, SIX, ["iql-c100k", "iql-c100k-p90k", "gmpo-c100k-pb1024",
                                          "gmpo-c100k-pb1024-p90k"]),
    "halfcheetah-medium-v5-cpu-locomotion0": (L0, [HCM], ["bc", "iql", "td3bc", "gmpo", "gmpg", "srpo"]),
    "hopper-medium-v5-cpu-gmpg-beta": (FRESH, [HM], ["iql-c100k", "gmpg-c100k-rk4", "gmpg-c100k-rk4-beta1",
                                                     "gmpg-c100k-rk4-beta4", "gmpg-c100k-rk4-t16-beta4"]),
    "gmpg-beta1-transfer": (FRESH, [HM, HMR, WMR, HCMR], ["iql-c100k", "gmpg-c100k-rk4", "gmpg-c100k-rk4-beta1"]),
    "hopper-medium-v5-cpu-gmpg-p25": (FRESH, [HM], ["iql-c100k", "gmpg-c100k-rk4", "gmpg-c100k-rk4-beta1",
                                                    "gmpg-c100k-rk4-p25"]),
    "hopper-medium-v5-cpu-gmpg-klstop": (FRESH, [HM], ["iql-c100k", "gmpg-c100k-rk4", "gmpg-c100k-rk4-p25",
                                                       "gmpg-c100k-rk4-kl02"]),
    "six-tasks-fresh-gmpg-klstop": (FRESH, SIX, ["iql-c100k", "gmpg-c100k-rk4", "gmpg-c100k-rk4-kl02"]),
}


def committed_rows(path: Path) -> dict[tuple[str, str], dict]:
    """The committed table ``path`` (a suite ``results.csv``) by (task, algorithm): seeds, scores and costs."""
    if not path.exists():
        return {}
    out = {}
    for r in csv.DictReader(path.open(newline="")):
        seeds, scores = [int(x) for x in r["seeds"].split()], [float(x) for x in r["scores"].split()]
        num = {k: float(r[k]) if r[k] else None for k in ("mean", "se", "train_minutes", "act_ms")}
        # the selected checkpoints' scores name no seeds: they are the seeds' own when there is one per seed
        chosen = [float(x) for x in (r.get("selected_scores") or "").split()]
        out[r["task"], r["algo"]] = {"seeds": seeds, "scores": scores, **num,
                                     "selected": dict(zip(seeds, chosen)) if len(chosen) == len(seeds) else None,
                                     "selected_count": len(chosen)}
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
        if c["train_minutes"] is not None:  # the carried seeds' minutes: the committed total less the runs here
            here_min = dict(zip(r["seeds"], r["seed_minutes"]))
            carried_min = c["train_minutes"] * len(c["seeds"]) - sum(here_min.get(s, 0.0) for s in c["seeds"])
            r["train_minutes"] = round((sum(here_min.values()) + carried_min) / (len(here) + len(missing)), 1)
        if r["act_ms"] is None:
            r["act_ms"] = c["act_ms"]
        pairs = sorted([*here.items(), *missing])
        r["seeds"], r["scores"] = [s for s, _ in pairs], [x for _, x in pairs]
        r.update(score_stats(r["scores"]))
        if c["selected"] is not None:  # the carried seeds' selected checkpoints too
            chosen = dict(zip(r.get("selected_seeds", []), r.get("selected_scores", [])))
            chosen.update({s: c["selected"][s] for s, _ in missing})
            r["selected_seeds"], r["selected_scores"] = sorted(chosen), [chosen[s] for s in sorted(chosen)]
            r["selected"] = score_stats(r["selected_scores"])
        elif c["selected_count"]:
            log(f"{r['task']} {r['algo']}: the committed selected-checkpoint scores ({c['selected_count']} for "
                f"{len(c['seeds'])} seeds) cannot be matched to seeds; not carried")
        if not here:  # the committed row whole: its mean and s.e. from unrounded scores
            r["mean"], r["se"] = c["mean"], c["se"]
    return carried


def build(name: str, docs: Path) -> str | None:
    """Write ``docs/NAME.csv`` and ``docs/NAME.png`` (a one-task table's curves when no seed was carried; bars for
    several tasks); the markdown table, or None without runs."""
    suite, specs, algos = TABLES[name]
    suite, tasks = Path(suite), [parse_task(t) for t in specs]
    present = {a for a in algos if any(any((suite / t.name / a).glob("seed-*/summary.json")) for t in tasks)}
    if not present:
        return None
    committed = committed_rows(docs / f"{name}.csv")
    algos = [a for a in algos if a in present or any((t.name, a) in committed for t in tasks)]
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
        if len(tasks) > 1:  # several tasks: bars with every seed of the table's rows (carried seeds included)
            _headline_plot([t.name for t in tasks], algos, {(r["task"], r["algo"]): r["scores"] for r in rows},
                           {r["task"]: r["data_score"] for r in rows}, docs / f"{name}.png",
                           score_label(tasks[0].env))
    return md


#: The page's headline table (bc, TD3+BC, IQL's actor, GMPO and GMPG on the six tasks), composed from committed per-
#: table CSVs: column -> (table, algorithm label, act-time setting of a rescore table or None for a suite table). The
#: Gaussian references (bc uses no critic; td3bc trains its own) come from the `cpu` table; IQL's actor, GMPO and GMPG
#: from the recipe's runs (100k-step shared critics) re-scored on the same 50 episodes.
HEADLINE = {
    "bc": ("six-tasks-cpu", "bc", None),
    "td3bc": ("six-tasks-cpu", "td3bc", None),
    "iql": ("six-tasks-c100k-temperature", "iql-c100k", "act_temperature=1"),
    "gmpo T=0": ("six-tasks-c100k-temperature", "gmpo-c100k-pb1024", "act_temperature=0"),
    "gmpo T=1": ("six-tasks-c100k-temperature", "gmpo-c100k-pb1024", "act_temperature=1"),
    "gmpg T=0": ("six-tasks-c100k-temperature", "gmpg-c100k-rk4", "act_temperature=0"),
    "gmpg T=1": ("six-tasks-c100k-temperature", "gmpg-c100k-rk4", "act_temperature=1"),
}


#: The headline's further rows (nine rows with the medium-expert tasks): their tasks, and each headline column's
#: source as in :data:`HEADLINE`: bc and TD3+BC from the medium-expert suite table, IQL's actor, GMPO and GMPG from
#: the same runs re-scored on the same 50 episodes at both temperatures (costs from the suite table).
HEADLINE_MORE = (MEDIUM_EXPERT, {
    "bc": ("medium-expert-recipe", "bc", None),
    "td3bc": ("medium-expert-recipe", "td3bc", None),
    "iql": ("medium-expert-temperature", "iql", "act_temperature=1", "medium-expert-recipe"),
    **{f"{a} T={t}": ("medium-expert-temperature", a, f"act_temperature={t}", "medium-expert-recipe")
       for a in ("gmpo", "gmpg") for t in (0, 1)},
})


#: Every method of the library on the six tasks at the `cpu` budget (25k-step shared IQL critics,
#: `reward_scale=locomotion` on every task, as its runs were made), composed from the two `cpu` suite tables: the
#: references and GMPG from "six-tasks-cpu", IQL's actor, GMPO and the paper's baselines from
#: "six-tasks-cpu-baselines" (which holds IQL's actor at 3 seeds on every task).
ALL_CPU = {
    "bc": ("six-tasks-cpu", "bc", None),
    "td3bc": ("six-tasks-cpu", "td3bc", None),
    "iql": ("six-tasks-cpu-baselines", "iql", None),
    "gmpo": ("six-tasks-cpu-baselines", "gmpo", None),
    "gmpg": ("six-tasks-cpu", "gmpg", None),
    **{a: ("six-tasks-cpu-baselines", a, None) for a in ("sfbc", "srpo", "fql", "idql", "qgpo", "dql")},
}

#: Every method at the results table's budget (the recipe): the headline's columns (GMPO and GMPG at T = 0)
#: beside the paper's baselines. The recipe changes only the shared IQL critic (100k steps) and GMPO's batch: SfBC,
#: FQL, QGPO and Diffusion-QL train no IQL critic, so their recipe runs are their `cpu` runs (presets `recipe: {}`);
#: SRPO (and IDQL, not run) use the shared critic and have recipe runs of their own ("six-tasks-recipe-baselines").
#: A rescore column's costs come from the suite table named fourth (the same runs' train minutes and act latency).
ALL_RECIPE = {
    "bc": ("six-tasks-cpu", "bc", None),
    "td3bc": ("six-tasks-cpu", "td3bc", None),
    "iql": ("six-tasks-c100k-temperature", "iql-c100k", "act_temperature=1", "six-tasks-c100k"),
    "gmpo T=0": ("six-tasks-c100k-temperature", "gmpo-c100k-pb1024", "act_temperature=0", "six-tasks-c100k"),
    "gmpg T=0": ("six-tasks-c100k-temperature", "gmpg-c100k-rk4", "act_temperature=0", "six-tasks-c100k"),
    "sfbc": ("six-tasks-cpu-baselines", "sfbc", None),
    "srpo": ("six-tasks-recipe-baselines", "srpo-recipe", None),
    **{a: ("six-tasks-cpu-baselines", a, None) for a in ("fql", "qgpo", "dql")},
}

#: composed table name -> its columns (output: docs/NAME.csv and NAME.png)
COMPOSED = {"headline": HEADLINE, "six-tasks-cpu-all": ALL_CPU, "six-tasks-recipe-all": ALL_RECIPE}
#: composed table name -> its rows beyond the six tasks (as :data:`HEADLINE_MORE`)
MORE_ROWS = {"headline": HEADLINE_MORE}
#: composed table name -> the seeds each cell needs for its "above iql / above the data" counts (default 1: the other
#: composed tables count every cell, their one-seed baselines say so beside them)
COUNT_SEEDS = {"headline": 3}


def composed_scores(spec: dict, docs: Path) -> tuple[dict, dict, dict]:
    """For the columns of ``spec`` (column -> (table, algorithm label, setting or None)), read from the committed
    CSVs in ``docs``: (task, column) -> the seeds' scores, (task, column) -> (train minutes, act ms) where the
    table is a suite table (a rescore table records no costs), and (task, column) -> the suite row's own mean and
    s.e. (from unrounded scores, where the CSV's per-seed list keeps 3 decimals)."""
    scores: dict[tuple[str, str], list[float]] = {}
    costs: dict[tuple[str, str], tuple] = {}
    stats: dict[tuple[str, str], dict] = {}
    read: dict[str, list[dict]] = {}  # each committed CSV read once, however many columns it serves

    def rows(table: str) -> list[dict]:
        if table not in read:
            f = docs / f"{table}.csv"
            if not f.exists():
                raise SystemExit(f"results_page: the composed table needs {f}, which is missing")
            read[table] = list(csv.DictReader(f.open(newline="")))
        return read[table]

    def cost_pair(r: dict) -> tuple:
        return tuple(float(r[k]) if r[k] else None for k in ("train_minutes", "act_ms"))

    for col, (table, algo, setting, *cost_table) in spec.items():
        for r in rows(table):
            if r["algo"] != algo or r.get("setting") != setting:
                continue
            if setting:
                scores.setdefault((r["task"], col), []).append(float(r["score"]))
            else:
                scores.setdefault((r["task"], col), []).extend(float(x) for x in r["scores"].split())
                costs[r["task"], col] = cost_pair(r)
                stats[r["task"], col] = {"n": int(r["n"]), **{k: float(r[k]) if r[k] else None for k in ("mean", "se")}}
        for r in rows(cost_table[0]) if cost_table else []:  # a rescore column: its runs' costs, from their suite
            if r["algo"] == algo:
                costs[r["task"], col] = cost_pair(r)
    return scores, costs, stats


def headline_scores(docs: Path) -> dict[tuple[str, str], list[float]]:
    """(task, column) -> the seeds' scores of :data:`HEADLINE`, read from the committed CSVs in ``docs``."""
    return composed_scores(HEADLINE, docs)[0]


def headline(docs: Path) -> str:
    """The headline table (:func:`compose` of :data:`HEADLINE`)."""
    return compose("headline", docs)


def compose(name: str, docs: Path) -> str:
    """The composed table ``name`` of :data:`COMPOSED` in markdown, with per column the tasks above IQL's actor and
    above the data (means over seeds), and a cost table when every column comes from a suite table (a rescore
    table records no costs); writes ``docs/NAME.csv`` (one row per task and column: its seeds' scores and costs)
    and ``docs/NAME.png`` (bars)."""
    from genpolicy.rl.datasets import available_datasets
    from genpolicy.suite import score_cell

    spec = COMPOSED[name]
    data = {r["name"]: r.get("score_mean") for r in available_datasets()}
    got, costs, own = composed_scores(spec, docs)
    tasks, cols = [parse_task(t).name for t in SIX], list(spec)
    more, more_spec = [], {}  # further rows, and their columns' sources
    if name in MORE_ROWS:
        extra, more_spec = MORE_ROWS[name]
        more = [parse_task(t).name for t in extra]
        for part, whole in zip(composed_scores(more_spec, docs), (got, costs, own)):
            whole.update({k: v for k, v in part.items() if k[0] in more})
        tasks += more
    mean = {k: own[k]["mean"] if k in own else float(np.mean(v)) for k, v in got.items() if v}
    lines = ["| task | data | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for t in tasks:
        cells = [score_cell(own.get((t, c)) or score_stats(got.get((t, c), []))) for c in cols]
        lines.append(f"| {t} | {'-' if data.get(t) is None else f'{data[t]:.1f}'} | " + " | ".join(cells) + " |")
    least = COUNT_SEEDS.get(name, 1)
    above, counted = [], lambda t, c: len(got.get((t, c), [])) >= least
    for c in cols:
        if c == "iql":
            continue
        ts = [t for t in tasks if (t, c) in mean and counted(t, c)]
        vs_iql = [t for t in ts if (t, "iql") in mean and counted(t, "iql")]  # both cells counted, or no comparison
        vs_data = [t for t in ts if data.get(t) is not None]
        n_iql = sum(mean[t, c] > mean[t, "iql"] for t in vs_iql)
        n_data = sum(mean[t, c] > data[t] for t in vs_data)
        above.append(f"{c}: above iql on {n_iql} of {len(vs_iql)}, above the data on {n_data} of {len(vs_data)}")
    lines += ["", "Mean ± s.e. over seeds (number of seeds). " + (f"Counted where a cell has {least} seeds or more: "
                                                                  if least > 1 else "") + "; ".join(above) + "."]
    if all(v[2] is None or len(v) > 3 for v in spec.values()):  # every column has costs
        def cost(t, c):
            m, a = costs.get((t, c), (None, None))
            return "-" if m is None else f"{m:g} min / " + ("-" if a is None else f"{a:g} ms")

        lines += ["", "| task | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {t} | " + " | ".join(cost(t, c) for c in cols) + " |" for t in tasks]
        lines += ["", "Cost: training minutes per seed (mean over the cell's seeds, wall time on the machine and load "
                      "the cell's runs had; a shared IQL critic's minutes are not counted) / milliseconds per act call "
                      "on one observation (eager, median of 20)."]
    with open(docs / f"{name}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "column", "table", "algo", "setting", "scores", "train_minutes", "act_ms"])
        for t in tasks:
            for c in cols:
                table, algo, setting = (more_spec.get(c, spec[c]) if t in more else spec[c])[:3]
                m, a = costs.get((t, c), (None, None))
                w.writerow([t, c, table, algo, setting or "", " ".join(f"{x:.3f}" for x in got.get((t, c), [])),
                            "" if m is None else f"{m:g}", "" if a is None else f"{a:g}"])
    _headline_plot(tasks, cols, got, data, docs / f"{name}.png")
    return "\n".join(lines)


def _headline_plot(tasks, cols, got, data, out: Path, ylabel: str = "D4RL-normalized score") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genpolicy.plotting import save_figure

    fig, ax = plt.subplots(figsize=(max(11.0, 1.2 * len(cols) + 2, 1.5 * len(tasks)), 4.2))
    width = 0.8 / len(cols)
    colors = [*plt.get_cmap("tab10").colors, "black", "0.75"]  # distinct up to 12 columns
    j0 = 0
    for i, c in enumerate(cols):
        stats = [score_stats(got.get((t, c), [])) for t in tasks]
        ys = [s["mean"] if s["mean"] is not None else np.nan for s in stats]  # no run: no bar (a zero-height one
        err = [s["se"] or 0.0 for s in stats]                                   # would read as a score of 0)
        bars = ax.bar(np.arange(len(tasks)) + (i - (len(cols) - 1) / 2) * width, ys, width, yerr=err, capsize=2,
                      label=c, color=colors[i % len(colors)], edgecolor="white", linewidth=0.3)
        for bar, st, t in zip(bars, stats, tasks):
            if st["n"] == 1:  # one seed: hatched, a direction rather than a ranking
                bar.set_hatch("///")
            seeds = got.get((t, c), [])  # every seed as a dot on its bar: one collapsed seed shows as such
            x = bar.get_x() + bar.get_width() / 2 + np.linspace(-0.25, 0.25, len(seeds)) * bar.get_width()
            ax.scatter(x, seeds, s=7, color="k", zorder=3, linewidths=0, label="seeds" if i == j0 and t == tasks[0]
                       else None)
    for j, t in enumerate(tasks):
        if data.get(t) is not None:  # a dataset without a card has no data score
            ax.hlines(data[t], j - 0.45, j + 0.45, colors="k", linestyles="dashed", label="data" if j == 0 else None)
    ax.set_xticks(range(len(tasks)), [t.removesuffix("-v5").removesuffix("-v0").replace("-", "\n", 1) for t in tasks],
                  fontsize=8)
    ax.set_ylabel(ylabel)
    if any(len(v) == 1 for v in got.values()):
        ax.set_title("mean ± s.e. over seeds, dots: the seeds; hatched: one seed", fontsize=8)
    else:
        ax.set_title("mean ± s.e. over seeds; dots: the seeds", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: no bar is ever hidden
    save_figure(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=sorted(TABLES), help="these tables (default: all)")
    p.add_argument("--docs", default="docs/results", help="where the CSV and PNG files go")
    p.add_argument("--headline", action="store_true",
                   help="only the headline table, composed from the committed CSVs (HEADLINE): no runs needed")
    p.add_argument("--all-cpu", action="store_true",
                   help="only the table of every method at the cpu budget, composed from the committed CSVs "
                        "(ALL_CPU): no runs needed")
    p.add_argument("--all-recipe", action="store_true",
                   help="only the table of every method at the results table's budget (the recipe), composed from the "
                        "committed CSVs (ALL_RECIPE): no runs needed")
    ns = p.parse_args(argv)
    docs = Path(ns.docs)
    docs.mkdir(parents=True, exist_ok=True)
    wanted = {"headline": ns.headline, "six-tasks-cpu-all": ns.all_cpu, "six-tasks-recipe-all": ns.all_recipe}
    if any(wanted.values()):
        for name in COMPOSED:
            if wanted[name]:
                print(compose(name, docs))
        return 0
    for name in ns.only or TABLES:
        md = build(name, docs)
        print(f"## {name}\n\n{md if md is not None else '(no finished runs here)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
