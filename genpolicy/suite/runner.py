"""Running a suite: every (task, algorithm, seed) not yet finished, shared critics first, stacked seeds where asked
(see :mod:`genpolicy.suite`)."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from ..config import class_dict, class_union, load_presets, resolve_config, task_presets
from ..preflight import preflight
from ..rl.algos import ALGORITHMS, IQLAWRConfig
from ..rl.algos.common import CriticConfig
from ..rl.datasets import load_dataset
from ..train import CHECKPOINT, device_rng_state, load_checkpoint, prepare_run, run_config, train, train_stacked
from ..train.rundir import read_summary
from .report import collect, everything_in, plot_curves, write_table
from .task import Task

__all__ = ["run_suite"]


def _config(algo: str, budget: list[str], task: Task, sets: list[str]):

    presets = load_presets(algo)
    names = [b for b in budget if b in presets] + task_presets(presets, budget, task.name.removesuffix("-v5"))
    missing = [b for b in budget if b not in presets]
    if missing:
        raise ValueError(f"{algo} has no preset {missing}; its presets: {sorted(presets)}")
    cls = ALGORITHMS[algo].Config
    fields = {f.name for f in dataclasses.fields(cls)}
    own_sets = [s for s in sets if s.split("=", 1)[0].strip() in fields]  # --set keys apply where they exist
    return resolve_config(cls, names, presets, {}, own_sets), names


def _critic_key(cfg) -> tuple | None:

    if not isinstance(cfg, CriticConfig) or cfg.critic_steps == 0 or getattr(cfg, "critic", "iql") != "iql":
        return None  # no IQL critic (or a different kind: QGPO's in-support, SfBC's planning)
    iql = cfg.iql()
    key = (iql, cfg.critic_steps, cfg.reward_scale, cfg.normalize_obs, cfg.batch_size, cfg.seed, cfg.device)
    return key + (("batched",) if iql.batched else ())  # a batched critic's weights are stored differently


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


def _finished(d: Path) -> bool:
    """A run with a whole summary (an empty or torn one is not finished: the run resumes or starts again)."""
    return read_summary(d) is not None


def _fresh(algo: str, cfg, task: Task, ds, critic_state=None):
    """A new run's algorithm and data, as every caller starts one: prepared, checked (preflight), with the shared
    critic's weights when given."""
    a, data = prepare_run(algo, cfg, ds)
    preflight(a, data, task.env)
    if critic_state is not None:
        a.critic.load_state_dict(critic_state)
    return a, data


def _run(algo: str, cfg, task: Task, d: Path, ds, meta: dict, progress: bool, critic_state=None) -> None:

    resume = (d / CHECKPOINT).exists()
    if resume:
        a, data = prepare_run(algo, run_config(d, algo, device=cfg.device), ds)
    else:
        a, data = _fresh(algo, cfg, task, ds, critic_state)
    train(a, data, d, env_id=task.env, meta=meta, resume=resume, progress=progress)


def _start(algo: str, cfg, names: list[str], task: Task, d: Path, out: Path, ds, share_critic: bool,
           progress: bool) -> tuple:
    """``(cfg, folder, meta, critic_state)`` of the run in ``d``: a new run that shares its task and seed's IQL
    critic gets the critic's weights (trained first if needed) and no critic steps of its own."""
    meta = {"dataset": task.dataset, "presets": names, "suite": str(out)}
    key = _critic_key(cfg) if share_critic else None
    state = None
    if key is not None and not (d / "checkpoint.pt").exists():
        cdir = _critic_dir(out, task, cfg)
        state = _shared_critic(task, cfg, cdir, ds, progress)
        cfg = dataclasses.replace(cfg, critic_steps=0)
        meta["critic_from"] = str(cdir)
    return cfg, d, meta, state


def _run_stacked(algo: str, starts: list, task: Task, ds, progress: bool) -> None:
    """New runs of one algorithm, one per seed (``starts``: ``(cfg, folder, meta, critic_state)`` each, as
    :func:`_start` gives them), trained as one vectorized model where the algorithm has one
    (:func:`genpolicy.train.train_stacked`; ``--stack-seeds``)."""

    runs, states = [], []
    for cfg, _, _, critic_state in starts:
        runs.append(_fresh(algo, cfg, task, ds, critic_state))
        states.append(device_rng_state(runs[-1][1].device))  # the global RNG this run's single run trains from
    train_stacked([a for a, _ in runs], runs[0][1], [d for _, d, _, _ in starts], [m for _, _, m, _ in starts],
                  states, task.env, progress)


def _critic_run_config(seed_cfg):
    """The ``iql`` run (no actor steps) that trains the shared critic for ``seed_cfg``'s critic settings."""
    shared = {f.name: getattr(seed_cfg, f.name) for f in dataclasses.fields(CriticConfig)}
    return IQLAWRConfig(**{**shared, "policy_steps": 0, "final_eval_episodes": 1})


def _critic_dir(out: Path, task: Task, cfg) -> Path:
    digest = hashlib.sha256(repr(_critic_key(cfg)).encode()).hexdigest()[:8]  # stable across processes
    return out / task.name / "critic" / f"seed-{cfg.seed}-{digest}"


def _stack_new_critics(task: Task, wanted: list, out: Path, ds, progress: bool) -> None:
    """Train the shared critics that ``wanted`` (configs of runs still to start) need and that do not exist yet,
    several seeds with the same critic settings at a time as one stacked model (``--stack-critics``)."""

    groups: dict = {}
    for cfg in wanted:
        key = _critic_key(cfg)
        d = _critic_dir(out, task, cfg)
        if key is None or "batched" in key or (d / CHECKPOINT).exists():
            continue
        groups.setdefault(repr(key[:5] + key[6:]), {})[cfg.seed] = (cfg, d)  # the key without its seed
    for group in groups.values():
        if len(group) < 2:
            continue  # one seed: the ordinary single run
        members = [group[seed] for seed in sorted(group)]
        _run_stacked("iql", [(_critic_run_config(cfg), d, {"dataset": task.dataset, "role": "shared critic"}, None)
                             for cfg, d in members], Task(task.dataset, None), ds, progress)


def _shared_critic(task: Task, seed_cfg, d: Path, ds, progress: bool) -> dict:
    """The IQL critic for this (task, seed, critic settings), trained once in ``d`` (resumable) and reused."""

    if not _finished(d):
        _run("iql", _critic_run_config(seed_cfg), Task(task.dataset, None), d, ds,
             {"dataset": task.dataset, "role": "shared critic"}, progress)
    modules = load_checkpoint(d / CHECKPOINT)["state"]["modules"]
    return {k[len("critic."):]: v for k, v in modules.items() if k.startswith("critic.")}


def run_suite(algos: list[str], tasks: list[Task], seeds: list[int], budget: list[str], out: str | Path,
              sets: list[str] | None = None, share_critic: bool = True, progress: bool = True,
              label: str | None = None, stack_critics: bool = False, stack_seeds: bool = False) -> Path:
    """Train every (task, algorithm, seed) not yet finished, then write the table and curves; returns the table.

    ``label``: with one algorithm, its folder and table column (``TASK/LABEL/seed-K``) instead of its name, so that
    variants (``--set`` ablations) sit beside it in one suite and share its critics. ``stack_critics``: the shared
    critics of several seeds that do not exist yet are trained together as one stacked model. ``stack_seeds``: that,
    and every algorithm's new runs of several seeds are trained together, stage by stage, wherever the stage has a
    vectorized form (:func:`genpolicy.train.train_stacked`). Both equal their single runs up to batched-matmul
    rounding."""


    out = Path(out)
    sets = list(sets or [])
    known = {f.name for a in algos for f in dataclasses.fields(ALGORITHMS[a].Config)}
    unknown = sorted({k.split("=", 1)[0].strip() for k in sets} - known)
    if unknown:  # a --set key no algorithm has would otherwise be dropped without a word
        raise ValueError(f"--set key(s) {unknown} are fields of none of {algos}")
    if label is not None and (len(algos) != 1 or not label or "/" in label or label in ("critic",)):
        raise ValueError(f"--label {label!r} names one algorithm's variant: give one --algos and a plain name")
    folders = {a: label or a for a in algos}

    def run_dir(algo, seed):
        cfg, names = _config(algo, budget, task, sets + [f"seed={seed}"])
        d = out / task.name / folders[algo] / f"seed-{seed}"
        _check_same_settings(d, algo, cfg, share_critic and _critic_key(cfg) is not None)
        return cfg, names, d

    for task in tasks:
        ds = None
        if (stack_critics or stack_seeds) and share_critic:
            wanted = [cfg for seed in seeds for algo in algos
                      for cfg in [_config(algo, budget, task, sets + [f"seed={seed}"])[0]]
                      if not (out / task.name / folders[algo] / f"seed-{seed}" / "checkpoint.pt").exists()]
            if wanted:
                ds = load_dataset(task.dataset)
                _stack_new_critics(task, wanted, out, ds, progress)
        if stack_seeds:  # new runs (no checkpoint) of several seeds: together; the others alone below
            for algo in algos:
                new = [r for r in (run_dir(algo, seed) for seed in seeds) if not (r[2] / "checkpoint.pt").exists()]
                if len(new) > 1:
                    ds = ds if ds is not None else load_dataset(task.dataset)
                    starts = [_start(algo, cfg, names, task, d, out, ds, share_critic, progress)
                              for cfg, names, d in new]
                    _run_stacked(algo, starts, task, ds, progress)
        for seed in seeds:
            for algo in algos:
                cfg, names, d = run_dir(algo, seed)
                if _finished(d):
                    continue
                ds = ds if ds is not None else load_dataset(task.dataset)
                cfg, d, meta, state = _start(algo, cfg, names, task, d, out, ds, share_critic, progress)
                _run(algo, cfg, task, d, ds, meta, progress, state)
    tasks, columns = everything_in(out, tasks, list(folders.values()))
    table = write_table(collect(out, tasks, columns), out)
    for task in tasks:
        plot_curves(out, task, columns)
    return table

