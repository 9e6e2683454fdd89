"""The one training loop: for each stage of an algorithm, sample batches, update, log, evaluate, checkpoint.

Run directory layout::

    config.yaml        the resolved configuration (algorithm, dataset, env, every field) and the software (versions,
                       commit, CPU: :func:`software`; a resume under other versions is recorded and warned about)
    metrics.jsonl      one JSON object per logging interval (stage, step, metric means)
    evals.csv          stage, step, score, return mean/std per evaluation
    tb/                TensorBoard event files (when the tensorboard package is installed)
    checkpoint.pt      latest state: modules, optimizers, stage, step, RNG states, config (written atomically)
    best.pt            state at the best evaluation
    summary.json       best and final scores, wall time, steps/s per stage

Resuming (``resume=True``) restores everything, including RNG states, so that a run killed with SIGKILL and
resumed ends with the same weights as an uninterrupted run with the same seed. SIGINT/SIGTERM finish the current
step, write a checkpoint and raise :class:`TrainingInterrupted`. A resumed run must be given the same data
(checked by digest). Metrics that turn non-finite stop the run with the stage and steps named, unless the stage
skips such steps itself (``Stage.skips_non_finite``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from .checkpoint import atomic_torch_save, capture_rng, load_torch, restore_rng
from .rl.algos.base import Algorithm, Note, compile_mode
from .rl.data import OfflineData

__all__ = ["train", "prepare_run", "run_config", "stage_update", "compile_mode", "save_checkpoint", "load_checkpoint",
           "CHECKPOINT", "BEST", "TrainingInterrupted", "NonFiniteMetrics", "non_finite", "train_stacked",
           "device_rng_state"]

CHECKPOINT, BEST = "checkpoint.pt", "best.pt"


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the step in progress finished and a checkpoint was written."""

    def __init__(self, signum: int, stage: str, step: int, run_dir: Path):
        super().__init__(f"{signal.Signals(signum).name} at {stage} step {step}; checkpoint written to "
                         f"{run_dir / CHECKPOINT}")
        self.signum, self.stage, self.step, self.run_dir = signum, stage, step, run_dir


class NonFiniteMetrics(ValueError):
    """A stage's metrics became NaN or infinite."""


def non_finite(stage, metrics: dict) -> list[str]:
    """Names of the scalar ``metrics`` (tensors or floats) that are NaN or infinite, unless ``stage`` skips such
    steps itself (``Stage.skips_non_finite``)."""
    return [] if stage.skips_non_finite else sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))


def prepare_run(algo: str, cfg, dataset) -> tuple[Algorithm, OfflineData]:
    """Everything before the loop, done one way for every caller (CLI, benchmarks, suites): seed, load the
    dataset, put it on ``cfg.device`` with the config's reward scaling and normalization, build the algorithm there.

    Args:
        algo: a registered algorithm name.
        cfg: an instance of its ``Config`` (for a resumed run: :func:`run_config`, with any safe changes).
        dataset: a dataset spec for :func:`~genpolicy.rl.datasets.load_dataset`, or a loaded ``TransitionDataset``.

    Returns:
        ``(algorithm, data)``, ready for :func:`genpolicy.preflight.preflight` and :func:`train`.
    """
    from .config import steps_from_epochs
    from .rl.algos import build_algorithm
    from .rl.datasets import TransitionDataset, load_dataset

    torch.manual_seed(cfg.seed)
    ds = dataset if isinstance(dataset, TransitionDataset) else load_dataset(dataset)
    cfg = steps_from_epochs(cfg, len(ds))  # budgets stated in epochs become step counts for this dataset
    data = OfflineData(ds, reward_scale=cfg.reward_scale, normalize_obs=cfg.normalize_obs, device=cfg.device)
    return build_algorithm(algo, data.obs_dim, data.act_dim, cfg, data.normalizer).to(cfg.device), data


def run_config(run_dir: str | Path, algo: str, **replace):
    """The config a run in ``run_dir`` was started with (from its checkpoint), with ``replace`` applied."""
    from .rl.algos import config_from_dict

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    ck = load_checkpoint(path)
    if ck["algo"] != algo:
        raise ValueError(f"{run_dir} holds a {ck['algo']!r} run, not {algo!r}")
    return config_from_dict(algo, ck["config"], ck.get("algo_module"), **replace)


def save_checkpoint(path: Path, algo: Algorithm, meta: dict, stage: int, step: int, gen: torch.Generator,
                    extra: dict) -> None:
    """Write modules, optimizers, position, RNG states and config atomically."""
    atomic_torch_save({"algo": algo.name, "algo_module": type(algo).__module__, "meta": meta,
                       "config": dataclasses.asdict(algo.cfg), "dims": (algo.obs_dim, algo.act_dim),
                       "state": algo.full_state_dict(), "stage": stage, "step": step, "rng": capture_rng(gen),
                       **extra}, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    return load_torch(path)


class _Logger:
    """JSONL + TensorBoard metrics, CSV evaluations. Keeps metric sums as tensors between writes."""

    def __init__(self, run_dir: Path, metrics_offset: int | None, evals_offset: int | None):
        self.dir = run_dir
        self.metrics_path, self.evals_path = run_dir / "metrics.jsonl", run_dir / "evals.csv"
        fresh_evals = evals_offset in (None, 0)
        for p, off in ((self.metrics_path, metrics_offset), (self.evals_path, evals_offset)):
            if off is None:
                p.write_text("")
            elif not p.exists() or p.stat().st_size < off:  # a run folder rebuilt from its checkpoint alone
                print(f"{p} is missing or shorter than at the checkpoint: it restarts there (the entries logged "
                      f"before are not in it)", file=sys.stderr)
                p.write_text("")
                fresh_evals |= p == self.evals_path
            else:  # resume: drop what was logged after the checkpoint
                with open(p, "r+b") as f:
                    f.truncate(off)
        if fresh_evals:
            self.evals_path.write_text("stage,step,score,return_mean,return_std,length_mean,episodes,score_se\n")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except ImportError:  # tensorboard is optional
            pass
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # per metric: an update may report some metrics only on some steps

    def offsets(self) -> dict:
        return {"metrics_offset": self.metrics_path.stat().st_size, "evals_offset": self.evals_path.stat().st_size}

    def accumulate(self, metrics: dict) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.detach().clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self, stage: str, step: int) -> dict:
        if not self.counts:
            return {}
        vals = {k: float(v) / self.counts[k] for k, v in self.sums.items()}  # one host sync per interval
        self.sums, self.counts = {}, {}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"stage": stage, "step": step, **vals}) + "\n")
        if self.tb is not None:
            for k, v in vals.items():
                self.tb.add_scalar(f"{stage}/{k}", v, step)
        return vals

    def log_eval(self, stage: str, step: int, res: dict) -> None:
        with open(self.evals_path, "a") as f:
            se = "" if res.get("score_se") is None else f"{res['score_se']:.4f}"
            f.write(f"{stage},{step},{res['score']:.4f},{res['return_mean']:.4f},{res['return_std']:.4f},"
                    f"{res['length_mean']:.1f},{res['episodes']},{se}\n")
        if self.tb is not None:
            self.tb.add_scalar(f"{stage}/eval_score", res["score"], step)

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _evaluate(algos: list[Algorithm], env_id: str, episodes: int) -> list[dict]:
    """Each run's evaluation (``algos``: one, or the seeds of a stacked run, whose episodes then share one vector
    env); run k's equals its evaluation alone."""
    from .rl.evaluate import evaluate_many

    modes = [a.training for a in algos]
    for a in algos:
        a.eval()
    # evaluation must not move the training RNG (exact resume): it forks it and seeds each policy's noise
    results = evaluate_many([a.act for a in algos], env_id, episodes, seeds=[a.cfg.seed + 10_000 for a in algos],
                            policy_seeds=[a.cfg.seed + 12345 for a in algos])
    for a, m in zip(algos, modes):
        a.train(m)
    out = []
    for res in results:
        d = res.as_dict()
        d["score"] = res.score
        out.append(d)
    return out


class _Loop:
    """One run of :func:`train`: the position, the loop's own state (scores, offsets), logging and saving."""

    def __init__(self, algo: Algorithm, data: OfflineData, run_dir: Path, env_id: str | None, meta: dict,
                 resume: bool, progress: bool, stages: list):
        self.algo, self.data, self.dir, self.env_id, self.progress = algo, data, run_dir, env_id, progress
        self.meta = dict(meta, env=env_id)
        self.gen = torch.Generator(device=data.device).manual_seed(algo.cfg.seed)
        self.start_stage, self.start_step = 0, 0
        self.meta["data"] = data.fingerprint
        self.state = {"best_score": None, "best_stage_step": None, "final_score": None, "evals": [],
                      "stage_times": {}, "metrics_offset": None, "evals_offset": None, "wall_seconds": 0.0,
                      "segments": 0, "warnings": []}
        self.t0 = time.perf_counter()
        self.stop_signal: int | None = None
        if resume:
            ck = load_checkpoint(run_dir / CHECKPOINT)
            if ck["algo"] != algo.name:
                raise ValueError(f"checkpoint is for {ck['algo']!r}, not {algo.name!r}")
            _check_same_data(ck["meta"].get("data"), data.fingerprint, run_dir)
            old_cfg = self._record_changes(ck)
            algo.load_full_state_dict(ck["state"])
            restore_rng(ck["rng"], self.gen)
            self.state.update(ck["loop"])
            self._record_software(ck)  # after the state: it may add a warning
            old_steps = ck["loop"].get("stage_steps")
            if old_steps is None:  # a checkpoint from before budgets were recorded: its config's stages have them
                old_steps = _stage_steps(algo, old_cfg)
            self.start_stage, self.start_step = _resume_position(stages, ck["stage"], ck["step"], old_steps)
        else:
            self.meta["software"] = software()
        # once, and only for a run that goes ahead: a refused resume leaves the run's config.yaml as it was
        _write_config(run_dir, algo, self.meta)
        self.state["stage_steps"] = [s.steps for s in stages]  # to tell a grown budget on resume
        for note in data.notes:  # the data's own caveats (a narrow return span), once per run
            self.record_warning("data", 0, note)
        self.logger = _Logger(run_dir, self.state["metrics_offset"], self.state["evals_offset"])
        self.wall_before = self.state["wall_seconds"]
        self.state["segments"] += 1

    def _record_changes(self, ck: dict):
        """Refuse config changes a resumed run may not make; record the allowed ones in the config history (written
        to config.yaml with the rest of the resumed segment's meta). Returns the config the checkpoint was written
        with."""
        from .config import check_resume_changes
        from .rl.algos import config_from_dict

        old = config_from_dict(ck["algo"], ck["config"], ck.get("algo_module"), device=self.algo.cfg.device)
        changes = check_resume_changes(old, self.algo.cfg)
        history = list(ck["meta"].get("config_history", []))
        if changes:
            history.append({"segment": ck["loop"].get("segments", 1) + 1, "at": [ck["stage"], ck["step"]],
                            "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}})
        self.meta["config_history"] = history
        return old

    def _record_software(self, ck: dict) -> None:
        """Keep the software the run started under (``meta["software"]``); a segment resumed under other versions
        or another CPU is added to ``software_history`` and warned about (floating-point results, and so scores,
        may differ from an uninterrupted run's). A new commit alone is recorded, not warned about."""
        first, now = ck["meta"].get("software"), software()
        history = list(ck["meta"].get("software_history", []))
        self.meta["software"] = first or now  # a checkpoint from before this was recorded: the first known
        last = history[-1]["software"] if history else first
        if last is not None and last != now:
            history.append({"segment": ck["loop"].get("segments", 1) + 1, "at": [ck["stage"], ck["step"]],
                            "software": now})
            diff = [f"{k} {last.get(k)} -> {now.get(k)}" for k in SOFTWARE_WARN if last.get(k) != now.get(k)]
            if diff:
                self.record_warning("resume", ck["step"], "resumed under other software (" + ", ".join(diff)
                                    + "): results may differ from an uninterrupted run's")
        if history:
            self.meta["software_history"] = history

    def wall_seconds(self) -> float:
        """Wall time of every segment of the run (resumed runs add theirs)."""
        return round(self.wall_before + time.perf_counter() - self.t0, 2)

    def save(self, name: str, stage_idx: int, step: int) -> None:
        self.state.update(self.logger.offsets())
        self.state["wall_seconds"] = self.wall_seconds()
        save_checkpoint(self.dir / name, self.algo, self.meta, stage_idx, step, self.gen, {"loop": self.state})

    def run_stage(self, si: int, stage, first: int, final: bool = False) -> None:
        """Steps ``first..stage.steps`` of stage ``si``: update, log, evaluate, checkpoint. ``final``: the last
        evaluating stage, whose closing evaluation (``final_eval_episodes``) gives the run's final score."""
        from tqdm.auto import tqdm

        algo, cfg = self.algo, self.algo.cfg
        bar = tqdm(range(first, stage.steps), desc=f"{algo.name}:{stage.name}", disable=not self.progress,
                   initial=first, total=stage.steps, dynamic_ncols=True, mininterval=0.5)
        t0 = time.perf_counter()
        algo.train()
        rows = stage.batch_size or cfg.batch_size
        if stage.prepare is not None:
            stage.prepare(self.data)
        update = stage_update(algo, stage)
        t_first = None
        for step in bar:
            self.logger.accumulate(update(self.data.sample(rows, generator=self.gen)))
            done = step + 1
            if t_first is None:
                t_first = time.perf_counter()  # the first step includes compiling (when compile is on)
            self.log(stage, done, first, bar)
            evaluate, checkpoint = self.due(stage, done, self.stop_signal)
            end = done == stage.steps
            if evaluate:
                self.evaluate(stage.name, si, done, bar, final and end)
            if checkpoint:
                self.save(CHECKPOINT, si + 1 if end else si, 0 if end else done)
            if self.stop_signal is not None:
                bar.close()
                raise TrainingInterrupted(self.stop_signal, stage.name, done, self.dir)
        bar.close()
        now = time.perf_counter()
        rest = stage.steps - first - 1
        self.state["stage_times"][stage.name] = {
            "seconds": round(now - t0, 2), "first_step_seconds": round(t_first - t0, 3),
            "steps_per_s": round(rest / max(now - t_first, 1e-9), 1) if rest > 0 else None}

    def log(self, stage, done: int, first: int, bar, where: str = "") -> None:
        """Every ``log_every`` steps (and at the stage's end): write the metrics, run the stage's monitor, stop on
        non-finite values (naming ``where``, if given, and the steps)."""
        cfg = self.algo.cfg
        if done % cfg.log_every and done != stage.steps:
            return
        vals = self.logger.flush(stage.name, done)
        bar.set_postfix({k: f"{v:.3g}" for k, v in list(vals.items())[:4]}, refresh=False)
        self.monitor(stage, vals, done, bar)
        bad = non_finite(stage, vals)
        if bad:
            raise NonFiniteMetrics(f"{stage.name} stage{where}: {', '.join(bad)} non-finite in steps "
                                   f"{max(first, done - cfg.log_every) + 1}-{done} (lower the learning rates or "
                                   f"check the data's reward scale)")

    def due(self, stage, done: int, stop_signal: int | None) -> tuple[bool, bool]:
        """Whether step ``done`` of ``stage`` ends with an evaluation, and with a checkpoint."""
        cfg, end = self.algo.cfg, done == stage.steps
        evaluate = bool(self.env_id and stage.evaluates and ((cfg.eval_every and done % cfg.eval_every == 0) or end))
        return evaluate, bool(done % cfg.ckpt_every == 0 or end or stop_signal is not None)

    def record_warning(self, stage: str, step: int, message: str) -> bool:
        """Add ``message`` to the run's ``warnings`` unless it is there; True if it was new. (A checkpoint written
        before the key existed keeps the initial [].)"""
        warned = self.state["warnings"]
        if any(w["message"] == message for w in warned):
            return False
        warned.append({"stage": stage, "step": step, "message": message})
        return True

    def monitor(self, stage, vals: dict, done: int, bar) -> None:
        """The stage's ``monitor`` on the values just logged: each distinct message printed and recorded once."""
        msg = stage.monitor(vals) if stage.monitor is not None else None
        if msg and self.record_warning(stage.name, done, msg):
            bar.write(f"{'note' if isinstance(msg, Note) else 'warning'} [{stage.name} {done}]: {msg}")

    def episodes(self, final: bool) -> int:
        return self.algo.cfg.final_eval_episodes if final else self.algo.cfg.eval_episodes

    def evaluate(self, stage: str, si: int, done: int, bar, final: bool = False, res: dict | None = None) -> None:
        """Evaluate the policy (or take ``res``, its evaluation done with other runs'), record it, keep the best."""
        res = res if res is not None else _evaluate([self.algo], self.env_id, self.episodes(final))[0]
        self.logger.log_eval(stage, done, res)
        st = self.state
        st["evals"].append({"stage": stage, "step": done, "final": final, **res})
        st["final_score"], st["final_score_se"], st["final_episodes"] = res["score"], res["score_se"], res["episodes"]
        if st["best_score"] is None or res["score"] > st["best_score"]:
            st["best_score"], st["best_stage_step"] = res["score"], [stage, done]
            self.save(BEST, si, done)
        bar.write(f"[{stage} {done}] score {res['score']:.1f} (return {res['return_mean']:.1f})")


def _stage_steps(algo: Algorithm, cfg) -> list[int]:
    """The stage lengths ``algo``'s class gives under ``cfg`` (a throwaway instance on the CPU, built inside a fork
    of the RNG so that the resumed run's random state does not move)."""
    from .rl.algos import build_algorithm

    with torch.random.fork_rng(devices=[]):
        other = build_algorithm(algo.name, algo.obs_dim, algo.act_dim, dataclasses.replace(cfg, device="cpu"))
        return [st.steps for st in other.stages()]


def _resume_position(stages, stage: int, step: int, old_steps: list[int]) -> tuple[int, int]:
    """Where a resumed run continues. A stage that had finished at the checkpoint and now has more steps continues
    when it is the one that just ended (nothing of the next stage ran: e.g. more policy steps for a finished run);
    any other change to a finished stage is refused in one line rather than skipped without a word."""
    for i in range(min(stage, len(stages), len(old_steps))):
        old, new = old_steps[i], stages[i].steps
        if new == old:
            continue
        if i == stage - 1 and step == 0 and new > old:
            return i, old
        at = f"the {stages[stage].name} stage, step {step}" if stage < len(stages) else "the end of the run"
        raise ValueError(f"--resume: the {stages[i].name} stage finished at {old} steps and the run has moved past "
                         f"it (checkpoint at {at}); it cannot become {new} steps in this run: start a new run for that")
    return stage, step


def train(algo: Algorithm, data: OfflineData, run_dir: str | Path, env_id: str | None = None, meta: dict | None = None,
          resume: bool = False, progress: bool = True) -> dict:
    """Run every stage of ``algo`` on ``data``; evaluate on ``env_id`` (if given) during evaluating stages.

    Args:
        algo: the algorithm (its ``cfg`` is a :class:`~genpolicy.rl.algos.base.RunConfig` subclass).
        data: the offline data on the training device.
        run_dir: output folder (see module doc).
        env_id: Gymnasium id for evaluation, or None to skip evaluation.
        meta: extra facts stored in checkpoints and config.yaml (dataset, env, preset, command).
        resume: continue from ``run_dir/checkpoint.pt``.
        progress: show a progress bar per stage.

    Returns:
        The summary (also written to ``summary.json``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if compile_mode(algo.cfg, algo.device) != "off":
        torch._dynamo.reset()  # compiled code of earlier runs in this process is keyed to their modules
    stages = algo.stages()
    loop = _Loop(algo, data, run_dir, env_id, meta or {}, resume, progress, stages)
    last_eval = max((i for i, s in enumerate(stages) if s.evaluates and s.steps > 0), default=None)
    try:
        with _stop_on_signals(loop):
            for si in range(loop.start_stage, len(stages)):
                first = loop.start_step if si == loop.start_stage else 0
                if first < stages[si].steps:
                    loop.run_stage(si, stages[si], first, final=si == last_eval)
    finally:
        loop.logger.close()
    st = loop.state
    summary = {"algo": algo.name, "best_score": st["best_score"], "best_at": st["best_stage_step"],
               "final_score": st["final_score"], "final_score_se": st.get("final_score_se"),
               "final_episodes": st.get("final_episodes"), "stage_times": st["stage_times"],
               "wall_seconds": loop.wall_seconds(), "seed_seconds": _seed_seconds(loop.wall_seconds(), st),
               "segments": st["segments"], "warnings": st["warnings"],
               "evals": st["evals"], **loop.meta}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _seed_seconds(wall: float, state: dict) -> float:
    """A run's share of wall time: a segment trained stacked with N seeds (``stacked_segment``) counts 1/N."""
    seg = state.get("stacked_segment")
    return round(wall - (seg["seconds"] * (1 - 1 / seg["runs"]) if seg else 0.0), 2)


def train_stacked(algos: list[Algorithm], data: OfflineData, run_dirs: list[Path], meta: dict | list[dict],
                  rng_states: list[torch.Tensor], env_id: str | None = None, progress: bool = True) -> list[dict]:
    """N fresh runs of one algorithm that differ only in their seed (``algos`` built by :func:`prepare_run`), trained
    stage by stage as one vectorized model wherever the stage has one (``Stage.stack``: the IQL critic, every
    behaviour-cloning stage, GMPO's policy; :mod:`genpolicy.rl.seeds`), then each run finished alone by
    :func:`train` from the first stage without one.

    Each run folder gets what its single run writes (config, metrics every ``log_every``, evaluations, checkpoints
    every ``ckpt_every``, best, summary). Seed k's minibatches come from its own loop's generator and its other random
    draws from a generator holding ``rng_states[k]``: the global torch RNG state its single run trains from (taken
    right after preparing it, ``torch.get_rng_state()``; ``torch.cuda.get_rng_state()`` on a GPU), saved in its
    checkpoints as its global state. So seed k is its single run up to the rounding of batched matmuls. The vectorized
    stages run eagerly (``compile`` applies to the single runs' stages). SIGINT/SIGTERM finish the step in progress,
    checkpoint every run and raise :class:`TrainingInterrupted`; a run stopped or killed part-way resumes from its
    checkpoint as an ordinary single run. ``meta``: one for all runs or one per run. Returns the summaries."""
    from .rl.seeds import differ_beyond_seed

    run_dirs = [Path(d) for d in run_dirs]
    n = len(algos)
    if not n or len(run_dirs) != n or len(rng_states) != n or len({type(a) for a in algos}) != 1:
        raise ValueError("train_stacked: one run folder and one RNG state per run, all runs of one algorithm")
    if differ_beyond_seed([a.cfg for a in algos]):
        raise ValueError("train_stacked: the runs' settings differ beyond the seed")
    stages = [a.stages() for a in algos]
    if len({tuple((st.name, st.steps, st.batch_size) for st in sts) for sts in stages}) != 1:
        raise ValueError("train_stacked: the runs' stages differ (names, steps or batch sizes)")
    metas = meta if isinstance(meta, list) else [meta] * n
    device = data.device
    gens = [torch.Generator(device=device) for _ in algos]
    for g, state in zip(gens, rng_states):
        g.set_state(state)

    def stacked(si: int):
        st = [sts[si] for sts in stages]
        return None if st[0].stack is None else st[0].stack([x.stack_parts for x in st])

    first = next((i for i, st in enumerate(stages[0]) if st.steps > 0), None)
    stack = None if first is None else stacked(first)
    if stack is None:  # no vectorized form of the first stage: each run alone, from its own RNG state
        if first is not None:
            print(f"{algos[0].name}: its {stages[0][first].name} stage has no vectorized form; the {n} seeds train "
                  f"one after the other", file=sys.stderr)
        out = []
        for a, d, m, g in zip(algos, run_dirs, metas, gens):
            _set_device_rng_state(device, g.get_state())
            out.append(train(a, data, d, env_id, m, progress=progress))
        return out
    for d in run_dirs:
        d.mkdir(parents=True, exist_ok=True)
    metas = [dict(m, stacked_seeds=[a.cfg.seed for a in algos]) for m in metas]
    loops = [_Loop(a, data, d, env_id, m, False, False, st) for a, d, m, st in zip(algos, run_dirs, metas, stages)]
    last_eval = max((i for i, st in enumerate(stages[0]) if st.evaluates and st.steps > 0), default=None)
    try:
        with _stop_on_signals(loops[0]):  # loops[0] holds the flag for all
            for si in range(first, len(stages[0])):
                if stages[0][si].steps == 0:
                    continue
                stack = stack if si == first else stacked(si)
                if stack is None:
                    print(f"{algos[0].name}: its {stages[0][si].name} stage has no vectorized form; each seed's run "
                          f"continues alone from there", file=sys.stderr)
                    break
                _stacked_stage(loops, [sts[si] for sts in stages], si, stack, gens, si == last_eval, progress)
    finally:
        for lp in loops:
            lp.logger.close()
    # the rest alone, from the last stacked stage's checkpoint
    return [train(a, data, d, env_id, m, resume=True, progress=progress) for a, d, m in zip(algos, run_dirs, metas)]


def _stacked_stage(loops: list[_Loop], stages: list, si: int, stack, gens: list[torch.Generator], final: bool,
                   progress: bool) -> None:
    """Stage ``si`` of every loop's run (``stages``: each run's instance of it) by the vectorized model ``stack``:
    what :meth:`_Loop.run_stage` does for one run (log, monitor, evaluate, checkpoint), per run."""
    from tqdm.auto import tqdm

    from .rl.seeds import stack_batches

    stage, algos, n = stages[0], [lp.algo for lp in loops], len(loops)
    device = loops[0].data.device
    if isinstance(stack, torch.nn.Module):
        stack.to(device)
    rows = stage.batch_size or algos[0].cfg.batch_size
    for lp, st in zip(loops, stages):
        lp.algo.train()
        if st.prepare is not None:
            st.prepare(lp.data)
    bar = tqdm(range(stage.steps), desc=f"{algos[0].name}:{stage.name} x{n} seeds", disable=not progress,
               mininterval=0.5, dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in bar:
        m = stack.update(stack_batches([lp.data.sample(rows, generator=lp.gen) for lp in loops]), gens)
        for k, lp in enumerate(loops):
            lp.logger.accumulate({name: v[k] for name, v in m.items()})
        done = step + 1
        end = done == stage.steps
        for lp, st in zip(loops, stages):
            lp.log(st, done, 0, bar, f" of {lp.dir}")
        signum = loops[0].stop_signal
        evaluate, checkpoint = loops[0].due(stage, done, signum)
        if evaluate or checkpoint:
            stack.unstack()
            seconds = round(time.perf_counter() - t0, 2)
            # every seed's episodes in one vector env, each run's result as if evaluated alone
            results = _evaluate(algos, loops[0].env_id, loops[0].episodes(final and end)) if evaluate else [None] * n
            for lp, g, res in zip(loops, gens, results):
                lp.state["stage_times"][stage.name] = {"seconds": seconds, "first_step_seconds": None,
                                                       "steps_per_s": round(done / max(seconds, 1e-9), 1),
                                                       "stacked_seeds": n}
                lp.state["stacked_segment"] = {"seconds": lp.wall_seconds(), "runs": n}  # shared by the n runs
                _set_device_rng_state(device, g.get_state())  # saved (checkpoint, best.pt) as the run's own
                if evaluate:
                    lp.evaluate(stage.name, si, done, bar, final and end, res)
                if checkpoint:
                    lp.save(CHECKPOINT, si + 1 if end else si, 0 if end else done)
        if signum is not None:
            bar.close()
            raise TrainingInterrupted(signum, stage.name, done, loops[0].dir)
    bar.close()


def device_rng_state(device: torch.device) -> torch.Tensor:
    """The global torch RNG state of ``device``'s default generator (what :func:`train_stacked` takes per run)."""
    device = torch.device(device)
    return torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device)


def _set_device_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cpu":
        torch.set_rng_state(state)
    else:
        torch.cuda.set_rng_state(state, device)


def stage_update(algo: Algorithm, stage):
    """The function the loop calls for ``stage``: its eager ``update``, or its ``functional`` form compiled whole
    (``fullgraph=True``; on CUDA with ``mode="reduce-overhead"``, i.e. replayed as a CUDA graph)."""
    mode = compile_mode(algo.cfg, algo.device)
    if mode == "off" or stage.functional is None:
        return stage.update
    from .optim import ensure_adam_state

    for opt in algo.optimizers().values():  # optimizer state exists before the graph reads it
        ensure_adam_state(opt)
    if mode == "trace":
        return torch.compile(stage.functional, fullgraph=True, backend="aot_eager")
    return torch.compile(stage.functional, fullgraph=True,
                         mode="reduce-overhead" if algo.device.type == "cuda" else None)


@contextlib.contextmanager
def _stop_on_signals(loop: _Loop):
    """SIGINT/SIGTERM set ``loop.stop_signal`` (the loop checkpoints and stops after the step in progress); a
    second signal of the same kind aborts at once. Only in the main thread (signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if loop.stop_signal is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        loop.stop_signal = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


#: the entries of :func:`software` whose change on resume is warned about (floating-point results may change)
SOFTWARE_WARN = ("python", "torch", "numpy", "gymnasium", "mujoco", "cpu")


def software() -> dict:
    """What a run was trained with, recorded in its config.yaml, checkpoints and summary: genpolicy's version and
    git commit (``+dirty`` with uncommitted changes; None outside a checkout), Python, torch, numpy, gymnasium and
    mujoco versions (None when not installed), the CPU model and torch's thread count. Two runs of one command
    are equal bit for bit only where these agree. All but the thread count are read once per process: the code a
    process runs is the code it imported."""
    return {**_process_software(), "threads": torch.get_num_threads()}


@functools.lru_cache(maxsize=None)
def _process_software() -> dict:
    import platform
    import subprocess
    from importlib import metadata

    from . import __version__

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    repo, commit = Path(__file__).resolve().parents[1], None
    if (repo / ".git").exists():
        try:
            git = ["git", "-C", str(repo)]
            commit = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                    timeout=10, check=True).stdout.strip()
            dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=10, check=True).stdout.strip()
            commit += "+dirty" if dirty else ""
        except (OSError, subprocess.SubprocessError):
            commit = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"genpolicy": __version__, "git": commit, "python": platform.python_version(),
            "torch": str(torch.__version__), "numpy": version("numpy"), "gymnasium": version("gymnasium"),
            "mujoco": version("mujoco"), "cpu": cpu}


def _check_same_data(recorded: dict | None, given: dict, run_dir: Path) -> None:
    """A resumed run must train on the data it started with."""
    if recorded is None:
        return  # a checkpoint from before digests were recorded
    keys = ("sha256", "rows", "obs_dim", "act_dim", "reward_scale", "normalize_obs")
    diff = [k for k in keys if recorded.get(k) != given.get(k)]
    if diff:
        raise ValueError(f"{run_dir} was trained on {recorded.get('source')} ({recorded.get('rows')} rows, obs "
                         f"{recorded.get('obs_dim')}, act {recorded.get('act_dim')}); the data given now "
                         f"({given.get('source')}) differs in {', '.join(diff)}")


def _write_config(run_dir: Path, algo: Algorithm, meta: dict) -> None:
    import yaml

    doc = {"algo": algo.name, **{k: v for k, v in meta.items() if v is not None},
           "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(algo.cfg).items()}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
