"""A suite's work as jobs: each shared critic, then the runs that load it, every job self-contained (its algorithm,
config, task and folder relative to the run root), so that any backend can run it in any process: one after the
other here (:func:`run_jobs_locally`), or as Ray tasks (:mod:`genpolicy.suite.distributed`).

A job runs again where it stopped: a folder with a checkpoint resumes from it (exact resume), so a job retried after
its worker died ends with the weights of an uninterrupted run; a finished folder (a whole ``summary.json``) is not
planned again."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from ..preflight import preflight
from ..rl.algos import IQLAWRConfig
from ..rl.algos.common import CriticConfig
from ..rl.datasets import load_dataset
from ..train import CHECKPOINT, load_checkpoint, prepare_run, run_config, train
from ..train.rundir import read_summary
from .root import RunRoot
from .task import Task

__all__ = ["Job", "critic_key", "critic_folder", "critic_run_config", "run_job", "start_run", "run_jobs_locally",
           "finished", "job_dataset"]


@dataclasses.dataclass(eq=False)
class Job:
    """One run folder's work. ``folder`` and ``critic`` (the shared critic's folder it loads, or None) are relative
    to the run root; ``cfg`` is the run's whole config."""

    algo: str
    cfg: object
    task: Task
    folder: str
    meta: dict
    critic: str | None = None

    @property
    def is_critic(self) -> bool:
        return self.meta.get("role") == "shared critic"


def critic_key(cfg) -> tuple | None:
    """What makes two runs' IQL critics the same (None: the run has no shareable IQL critic)."""
    if not isinstance(cfg, CriticConfig) or cfg.critic_steps == 0 or getattr(cfg, "critic", "iql") != "iql":
        return None  # no IQL critic (or a different kind: QGPO's in-support, SfBC's planning)
    iql = cfg.iql()
    key = (iql, cfg.critic_steps, cfg.reward_scale, cfg.normalize_obs, cfg.batch_size, cfg.seed, cfg.device)
    key += (("batched",) if iql.batched else ())  # a batched critic's weights are stored differently
    return key + ((("heldout", cfg.heldout_transitions),) if cfg.heldout_transitions else ())  # other training data


def critic_folder(task: Task, cfg) -> str:
    digest = hashlib.sha256(repr(critic_key(cfg)).encode()).hexdigest()[:8]  # stable across processes
    return f"{task.name}/critic/seed-{cfg.seed}-{digest}"


def critic_run_config(seed_cfg):
    """The ``iql`` run (no actor steps) that trains the shared critic for ``seed_cfg``'s critic settings."""
    shared = {f.name: getattr(seed_cfg, f.name) for f in dataclasses.fields(CriticConfig)}
    return IQLAWRConfig(**{**shared, "policy_steps": 0, "final_eval_episodes": 1})


def critic_job(task: Task, cfg) -> Job:
    return Job("iql", critic_run_config(cfg), Task(task.dataset, None), critic_folder(task, cfg),
               {"dataset": task.dataset, "role": "shared critic"})


def finished(d: Path) -> bool:
    """A run with a whole summary (an empty or torn one is not finished: the run resumes or starts again)."""
    return read_summary(d) is not None


_DATA: dict = {}  # the last dataset this process loaded (jobs of one task come in a row, here and on a Ray worker)


def job_dataset(name: str):
    """The dataset ``name``, loaded once for the jobs of a task that run in this process one after another."""
    if name not in _DATA:
        _DATA.clear()
        _DATA[name] = load_dataset(name)
    return _DATA[name]


def run_job(job: Job, root: RunRoot | str | Path, progress: bool = False) -> dict:
    """Train ``job`` in ``root`` (resuming its checkpoint if it has one) and return its summary. A run that shares
    a critic loads the critic's weights from its finished folder (trained first by its own job)."""
    root = RunRoot.of(root)
    d = root.local(job.folder)
    root.pull(job.folder)
    ds = job_dataset(job.task.dataset)
    resume = (d / CHECKPOINT).exists()
    if resume:
        a, data = prepare_run(job.algo, run_config(d, job.algo, device=job.cfg.device), ds)
        meta = dict(job.meta)
    else:
        if job.critic is not None:
            root.pull(job.critic)
        a, data, meta = start_run(job, root, ds)
    summary = train(a, data, d, env_id=job.task.env, meta=meta, resume=resume, progress=progress,
                    on_save=lambda: root.push(job.folder))
    root.push(job.folder)
    return summary


def start_run(job: Job, root: RunRoot, ds) -> tuple:
    """``(algorithm, data, meta)`` of a new run as every backend starts it: prepared, checked (preflight), with its
    shared critic's weights (from the critic's finished folder) and no critic steps of its own."""
    cfg, meta, state = job.cfg, dict(job.meta), None
    if job.critic is not None:
        modules = load_checkpoint(root.local(job.critic) / CHECKPOINT)["state"]["modules"]
        state = {k[len("critic."):]: v for k, v in modules.items() if k.startswith("critic.")}
        cfg, meta["critic_from"] = dataclasses.replace(cfg, critic_steps=0), root.name(job.critic)
    a, data = prepare_run(job.algo, cfg, ds)
    preflight(a, data, job.task.env)
    if state is not None:
        a.critic.load_state_dict(state)
    return a, data, meta


def run_jobs_locally(jobs: list[Job], root: RunRoot, progress: bool = True) -> None:
    """Each job in order, in this process (a critic's job comes before the runs that load it)."""
    for job in jobs:
        run_job(job, root, progress)
