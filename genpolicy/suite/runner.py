"""Running a suite: every (task, algorithm, seed) not yet finished, shared critics first, stacked seeds where asked
(see :mod:`genpolicy.suite`)."""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from ..config import class_dict, class_union, load_presets, resolve_config, task_presets
from ..rl.algos import ALGORITHMS
from ..rl.envs import is_dm_control
from ..train import CHECKPOINT, device_rng_state, run_config, train_stacked
from .plan import Job, critic_job, critic_key, finished, job_dataset, run_job, run_jobs_locally, start_run
from .report import collect, everything_in, plot_curves, write_table
from .root import RunRoot
from .sweep import Variant, check_sweep, variants, write_selection
from .task import Task

__all__ = ["run_suite"]


#: task names whose family preset applies before the task's own (sparse-reward navigation: expectile 0.9, r - 1)
FAMILY_PRESETS = {"antmaze": "antmaze", "pointmaze": "antmaze"}
#: a navigation task's final score: its success rate on this many seeded episodes per seed (D4RL's and the paper's)
NAV_FINAL_EPISODES = 100
#: the preset of every DeepMind Control task (the paper's Table 8 gives one beta per method for all nine)
DMC_PRESET = "dmc"


def _config(algo: str, budget: list[str], task: Task, sets: list[str]):
    """A run's config in a suite: defaults < budget presets < the task family's (navigation) < the task's own <
    a navigation task's final episodes (:data:`NAV_FINAL_EPISODES`) < ``--set``; and the preset names applied."""
    presets = load_presets(algo)
    base = re.sub(r"-v\d+$", "", task.name)  # hopper-medium-v5 -> hopper-medium; antmaze-umaze-v0 -> antmaze-umaze
    family = [p for prefix, p in FAMILY_PRESETS.items() if base.startswith(prefix) and p in presets]
    if is_dm_control(task.name) and DMC_PRESET in presets:
        family.append(DMC_PRESET)
    names = [b for b in budget if b in presets] + family[:1] + task_presets(presets, budget, base)
    missing = [b for b in budget if b not in presets]
    if missing:
        raise ValueError(f"{algo} has no preset {missing}; its presets: {sorted(presets)}")
    cls = ALGORITHMS[algo].Config
    fields = {f.name for f in dataclasses.fields(cls)}
    own_sets = [s for s in sets if s.split("=", 1)[0].strip() in fields]  # --set keys apply where they exist
    flags = {"final_eval_episodes": NAV_FINAL_EPISODES} if base.startswith(tuple(FAMILY_PRESETS)) else {}
    return resolve_config(cls, names, presets, flags, own_sets), names


def _check_same_settings(d: Path, algo: str, cfg, shared: bool) -> None:
    """A run folder that exists must hold the run asked for: a one-line error naming the fields that differ (a
    changed --set would otherwise be skipped or resumed with the old settings without a word)."""

    if not (d / CHECKPOINT).exists():
        return
    old = run_config(d, algo, device=cfg.device)
    ignore = class_union(type(cfg), "resume_safe") | {"seed"}
    epochs = class_dict(type(cfg), "epoch_fields")  # a budget in epochs is stored as steps: compare the epochs
    ignore |= {steps for e, steps in epochs.items() if getattr(cfg, e) > 0}
    if shared and getattr(old, "critic_steps", None) == 0:
        ignore.add("critic_steps")  # trained by the shared critic
    differ = sorted(f.name for f in dataclasses.fields(cfg)
                    if f.name not in ignore and getattr(cfg, f.name) != getattr(old, f.name))
    if differ:
        raise ValueError(f"{d} holds a run with other settings ({', '.join(f'{k}={getattr(old, k)!r}' for k in differ)}"
                         f" there, {', '.join(f'{k}={getattr(cfg, k)!r}' for k in differ)} asked); use another --out "
                         f"or --label, or {' '.join(f'--set {k}={_set_value(getattr(old, k))}' for k in differ)} to "
                         f"continue with its settings (a preset that changed since)")


def _set_value(v) -> str:
    """``v`` as ``--set KEY=VALUE`` takes it (YAML: lists in brackets, strings bare)."""
    if isinstance(v, (tuple, list)):
        return "[" + ",".join(_set_value(x) for x in v) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _plan(variants: list[Variant], tasks: list[Task], seeds: list[int], budget: list[str], root: RunRoot,
          sets: list[str], share_critic: bool) -> list[Job]:
    """The jobs still to do, in an order that runs each shared critic before the runs that load it: every
    (task, seed, variant) without a whole summary, and the critics of the new ones that do not exist yet. A folder
    holding a run with other settings is a one-line error here, before any training."""
    jobs, planned = [], set()
    for task in tasks:
        for seed in seeds:
            for v in variants:
                cfg, names = _config(v.algo, budget, task, sets + v.sets + [f"seed={seed}"])
                rel = f"{task.name}/{v.column}/seed-{seed}"
                d = root.local(rel)
                shared = share_critic and critic_key(cfg) is not None
                _check_same_settings(d, v.algo, cfg, shared)
                if finished(d):
                    continue
                meta = {"dataset": task.dataset, "presets": names, "suite": str(root)}
                if v.sets:
                    meta["variant"] = v.sets
                critic = None
                if shared and not (d / CHECKPOINT).exists():
                    c = critic_job(task, cfg)
                    critic = c.folder
                    if c.folder not in planned and not finished(root.local(c.folder)):
                        jobs.append(c)
                        planned.add(c.folder)
                jobs.append(Job(v.algo, cfg, task, rel, meta, critic))
    return jobs


def _train_together(jobs: list[Job], root: RunRoot, progress: bool) -> None:
    """New runs of one algorithm that differ only in their seed, trained as one vectorized model where the
    algorithm has one (:func:`genpolicy.train.train_stacked`)."""
    ds = job_dataset(jobs[0].task.dataset)
    runs, states = [], []
    for job in jobs:
        runs.append(start_run(job, root, ds))
        states.append(device_rng_state(runs[-1][1].device))  # the global RNG this run's single run trains from
    train_stacked([a for a, _, _ in runs], runs[0][1], [root.local(j.folder) for j in jobs], [m for _, _, m in runs],
                  states, jobs[0].task.env, progress)


def _run_stacked(jobs: list[Job], root: RunRoot, stack_seeds: bool, progress: bool) -> list[Job]:
    """``--stack-critics``: the new shared critics of several seeds with the same settings trained together;
    ``--stack-seeds``: that, and the new runs of several seeds of each variant. Returns the jobs left to run alone."""
    groups: dict = {}
    for j in jobs:
        if j.is_critic and "batched" not in critic_key(j.cfg) and not (root.local(j.folder) / CHECKPOINT).exists():
            groups.setdefault((j.task.dataset, repr(dataclasses.replace(j.cfg, seed=0))), []).append(j)
    done = set()
    for group in groups.values():
        if len(group) > 1:
            _train_together(sorted(group, key=lambda j: j.cfg.seed), root, progress)
            done |= {j.folder for j in group}
    if stack_seeds:
        runs: dict = {}
        for j in jobs:
            if not j.is_critic and not (root.local(j.folder) / CHECKPOINT).exists():
                key = (j.task.dataset, j.folder.rsplit("/", 1)[0], repr(dataclasses.replace(j.cfg, seed=0)))
                runs.setdefault(key, []).append(j)
        for group in runs.values():
            if len(group) > 1:
                for c in {j.critic for j in group} - done - {None}:  # a lone seed's critic, first
                    run_job(next(j for j in jobs if j.folder == c), root, progress)
                    done.add(c)
                _train_together(group, root, progress)
                done |= {j.folder for j in group}
    return [j for j in jobs if j.folder not in done]


def run_suite(algos: list[str], tasks: list[Task], seeds: list[int], budget: list[str], out: str | Path,
              sets: list[str] | None = None, share_critic: bool = True, progress: bool = True,
              label: str | None = None, stack_critics: bool = False, stack_seeds: bool = False,
              backend: str = "local", address: str | None = None, sweep: list[str] | None = None,
              sweep_random: int = 0, select_seeds: list[int] | None = None, cpus_per_run: float = 1,
              gpus_per_run: float = 0, retries: int = 3) -> Path:
    """Train every (task, algorithm or variant, seed) not yet finished, then write the table and curves; returns the
    table (``results.md`` in the run root).

    ``out``: the run root, a folder or an fsspec URL (:class:`~.root.RunRoot`). ``label``: with one algorithm, its
    folder and table column (``TASK/LABEL/seed-K``) instead of its name, so that variants (``--set`` ablations) sit
    beside it in one suite and share its critics. ``sweep``: ``KEY=V1,V2,...`` each, the grid of their values (or
    ``sweep_random`` points of it drawn at random), each point a labelled variant of every algorithm
    (``ALGO+KEY=V``); ``select_seeds``: also run these seeds and write ``selected.md``, each (task, algorithm)'s
    variant chosen by its mean final score on them and reported on ``seeds`` (:func:`~.sweep.write_selection`).
    ``stack_critics``: the shared critics of several seeds that do not exist yet are trained together as one stacked
    model. ``stack_seeds``: that, and every variant's new runs of several seeds trained together, stage by stage,
    wherever the stage has a vectorized form (:func:`genpolicy.train.train_stacked`); both equal their single runs up
    to batched-matmul rounding. ``backend``: ``local`` (one run after the other in this process) or ``ray`` (one
    Ray task per run, ``cpus_per_run`` CPUs and ``gpus_per_run`` of a GPU each, on the cluster at ``address`` or
    the one this process is connected to or a new local one; a run whose worker dies is retried up to ``retries``
    times and resumes from its checkpoint: :mod:`~.distributed`)."""
    root = RunRoot(out)
    sets = list(sets or [])
    known = {f.name for a in algos for f in dataclasses.fields(ALGORITHMS[a].Config)}
    unknown = sorted({k.split("=", 1)[0].strip() for k in sets} - known)
    if unknown:  # a --set key no algorithm has would otherwise be dropped without a word
        raise ValueError(f"--set key(s) {unknown} are fields of none of {algos}")
    if label is not None and (len(algos) != 1 or not label or "/" in label or "+" in label or label == "critic"):
        raise ValueError(f"--label {label!r} names one algorithm's variant: give one --algos and a plain name")
    if backend not in ("local", "ray"):
        raise ValueError(f"--backend {backend!r}: local or ray")
    if backend == "ray" and (stack_critics or stack_seeds):
        raise ValueError("--stack-critics / --stack-seeds train seeds as one model in one process: use them with "
                         "--backend local (with --backend ray each run is one Ray task)")
    grid = check_sweep(algos, sweep or [], sets, sweep_random)
    vs = variants(algos, label, grid, sweep_random)
    select_seeds = list(select_seeds or [])
    if select_seeds and not grid:
        raise ValueError("--select-seeds chooses among --sweep variants: give --sweep too")
    shared_seeds = sorted(set(select_seeds) & set(seeds))
    if shared_seeds:
        print(f"warning: selection seeds {shared_seeds} are also reported: the chosen variants' scores on them are "
              "optimistic (chosen on the same episodes); give --select-seeds disjoint from --seeds", file=sys.stderr)
    root.pull()
    jobs = _plan(vs, tasks, list(dict.fromkeys(seeds + select_seeds)), budget, root, sets, share_critic)
    if backend == "ray":
        from .distributed import run_jobs_on_ray

        run_jobs_on_ray(jobs, root, address, cpus_per_run, gpus_per_run, retries, progress)
        root.pull()
    else:
        if stack_critics or stack_seeds:
            jobs = _run_stacked(jobs, root, stack_seeds, progress)
        run_jobs_locally(jobs, root, progress)
    base = root.local()
    tasks, columns = everything_in(base, tasks, [v.column for v in vs])
    table = write_table(collect(base, tasks, columns), base)
    for task in tasks:
        plot_curves(base, task, columns)
    if select_seeds:
        write_selection(base, tasks, vs, select_seeds, seeds)
    root.push("results.md")
    root.push("results.csv")
    for f in [*base.glob("curves-*.png"), *base.glob("selected.*")]:
        root.push(f.name)
    return table
