"""The one training loop: for each stage of an algorithm, sample batches, update, log, evaluate, checkpoint.

Run directory layout::

    config.yaml        the resolved configuration (algorithm, dataset, env, every field)
    metrics.jsonl      one JSON object per logging interval (stage, step, metric means)
    evals.csv          stage, step, score, return mean/std per evaluation
    tb/                TensorBoard event files (when the tensorboard package is installed)
    checkpoint.pt      latest state: modules, optimizers, stage, step, RNG states, config (written atomically)
    best.pt            state at the best evaluation
    summary.json       best and final scores, wall time, steps/s per stage

Resuming (``resume=True``) restores everything, including RNG states, so that a run killed with SIGKILL and
resumed ends with the same weights as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from .rl.algos.base import Algorithm
from .rl.data import OfflineData

__all__ = ["train", "save_checkpoint", "load_checkpoint", "CHECKPOINT", "BEST"]

CHECKPOINT, BEST = "checkpoint.pt", "best.pt"


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rng_state(gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "batches": gen.get_state()}


def _set_rng_state(s: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    gen.set_state(s["batches"])


def save_checkpoint(path: Path, algo: Algorithm, meta: dict, stage: int, step: int, gen: torch.Generator,
                    extra: dict) -> None:
    """Write modules, optimizers, position, RNG states and config atomically."""
    _atomic_torch_save({"algo": algo.name, "meta": meta, "config": dataclasses.asdict(algo.cfg),
                        "dims": (algo.obs_dim, algo.act_dim), "state": algo.full_state_dict(),
                        "stage": stage, "step": step, "rng": _rng_state(gen), **extra}, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


class _Logger:
    """JSONL + TensorBoard metrics, CSV evaluations. Keeps metric sums as tensors between writes."""

    def __init__(self, run_dir: Path, metrics_offset: int | None, evals_offset: int | None):
        self.dir = run_dir
        self.metrics_path, self.evals_path = run_dir / "metrics.jsonl", run_dir / "evals.csv"
        for p, off in ((self.metrics_path, metrics_offset), (self.evals_path, evals_offset)):
            if off is None:
                p.write_text("")
            else:  # resume: drop what was logged after the checkpoint
                with open(p, "r+b") as f:
                    f.truncate(off)
        if evals_offset in (None, 0):
            self.evals_path.write_text("stage,step,score,return_mean,return_std,length_mean\n")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except ImportError:  # tensorboard is optional
            pass
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def offsets(self) -> dict:
        return {"metrics_offset": self.metrics_path.stat().st_size, "evals_offset": self.evals_path.stat().st_size}

    def accumulate(self, metrics: dict) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.detach().clone()
        self.count += 1

    def flush(self, stage: str, step: int) -> dict:
        if not self.count:
            return {}
        vals = {k: float(v) / self.count for k, v in self.sums.items()}  # one host sync per interval
        self.sums, self.count = {}, 0
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"stage": stage, "step": step, **vals}) + "\n")
        if self.tb is not None:
            for k, v in vals.items():
                self.tb.add_scalar(f"{stage}/{k}", v, step)
        return vals

    def log_eval(self, stage: str, step: int, res: dict) -> None:
        with open(self.evals_path, "a") as f:
            f.write(f"{stage},{step},{res['score']:.4f},{res['return_mean']:.4f},{res['return_std']:.4f},"
                    f"{res['length_mean']:.1f}\n")
        if self.tb is not None:
            self.tb.add_scalar(f"{stage}/eval_score", res["score"], step)

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _evaluate(algo: Algorithm, env_id: str, cfg) -> dict:
    from .rl.evaluate import evaluate

    was_training = algo.training
    algo.eval()
    with torch.random.fork_rng():  # evaluation must not move the training RNG (exact resume)
        torch.manual_seed(cfg.seed + 12345)
        res = evaluate(algo.act, env_id, episodes=cfg.eval_episodes, seed=cfg.seed + 10_000)
    algo.train(was_training)
    d = res.as_dict()
    d["score"] = res.score
    return d


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
    from tqdm.auto import tqdm

    cfg = algo.cfg
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {}, env=env_id)
    gen = torch.Generator(device=data.device).manual_seed(cfg.seed)
    stages = algo.stages()
    start_stage, start_step = 0, 0
    state = {"best_score": None, "best_stage_step": None, "final_score": None, "evals": [], "stage_times": {},
             "metrics_offset": None, "evals_offset": None}
    if resume:
        ck = load_checkpoint(run_dir / CHECKPOINT)
        if ck["algo"] != algo.name:
            raise ValueError(f"checkpoint is for {ck['algo']!r}, not {algo.name!r}")
        algo.load_full_state_dict(ck["state"])
        _set_rng_state(ck["rng"], gen)
        start_stage, start_step = ck["stage"], ck["step"]
        state.update(ck["loop"])
    else:
        _write_config(run_dir, algo, meta)
    logger = _Logger(run_dir, state["metrics_offset"], state["evals_offset"])

    def checkpoint(stage_idx: int, step: int) -> None:
        state.update(logger.offsets())
        save_checkpoint(run_dir / CHECKPOINT, algo, meta, stage_idx, step, gen, {"loop": state})

    t_run = time.perf_counter()
    try:
        for si in range(start_stage, len(stages)):
            stage = stages[si]
            first = start_step if si == start_stage else 0
            if first >= stage.steps:
                continue
            bar = tqdm(range(first, stage.steps), desc=f"{algo.name}:{stage.name}", disable=not progress,
                       initial=first, total=stage.steps, dynamic_ncols=True, mininterval=0.5)
            t0, n0 = time.perf_counter(), first
            algo.train()
            rows = stage.batch_size or cfg.batch_size
            for step in bar:
                batch = data.sample(rows, generator=gen)
                logger.accumulate(stage.update(batch))
                done = step + 1
                if done % cfg.log_every == 0 or done == stage.steps:
                    vals = logger.flush(stage.name, done)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in list(vals.items())[:4]}, refresh=False)
                if env_id and stage.evaluates and ((cfg.eval_every and done % cfg.eval_every == 0) or done == stage.steps):
                    res = _evaluate(algo, env_id, cfg)
                    logger.log_eval(stage.name, done, res)
                    state["evals"].append({"stage": stage.name, "step": done, **res})
                    state["final_score"] = res["score"]
                    if state["best_score"] is None or res["score"] > state["best_score"]:
                        state["best_score"], state["best_stage_step"] = res["score"], [stage.name, done]
                        save_checkpoint(run_dir / BEST, algo, meta, si, done, gen, {"loop": state})
                    bar.write(f"[{stage.name} {done}] score {res['score']:.1f} (return {res['return_mean']:.1f})")
                if done % cfg.ckpt_every == 0 or done == stage.steps:
                    checkpoint(si + 1 if done == stage.steps else si, 0 if done == stage.steps else done)
            bar.close()
            elapsed = time.perf_counter() - t0
            state["stage_times"][stage.name] = {"seconds": round(elapsed, 2),
                                                "steps_per_s": round((stage.steps - n0) / max(elapsed, 1e-9), 1)}
    finally:
        logger.close()
    summary = {"algo": algo.name, "best_score": state["best_score"], "best_at": state["best_stage_step"],
               "final_score": state["final_score"], "stage_times": state["stage_times"],
               "wall_seconds": round(time.perf_counter() - t_run, 2), "evals": state["evals"], **meta}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _write_config(run_dir: Path, algo: Algorithm, meta: dict) -> None:
    import yaml

    doc = {"algo": algo.name, **{k: v for k, v in meta.items() if v is not None},
           "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(algo.cfg).items()}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
