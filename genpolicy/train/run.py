"""One run's bookkeeping in the loop: where it starts (fresh or resumed, with the resume rules), its logger, its
evaluations, checkpoints and warnings. The loop itself (:mod:`.loop`) drives one run or a stack of seeds' runs."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from pathlib import Path

import torch

from ..checkpoint import restore_rng
from ..config import check_resume_changes
from ..rl.algos.base import Algorithm, Note
from ..rl.algos.registry import build_algorithm, config_from_dict
from ..rl.data import OfflineData
from ..rl import evaluate as rl_evaluate
from . import rundir
from .rundir import BEST, CHECKPOINT, Logger, check_same_data, load_checkpoint, save_checkpoint, write_config

__all__ = ["Run", "TrainingInterrupted", "NonFiniteMetrics", "non_finite", "evaluate_runs", "resume_position"]


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


def heldout_log_likelihood(algo: Algorithm, data: OfflineData, rows: int = 512) -> float | None:
    """Mean ``log pi(a | s)`` (nats) over the data's held-out transitions (``heldout_transitions``), in chunks of
    ``rows``; None without held-out data or a policy density."""
    if data.heldout is None:
        return None
    obs, act = data.heldout["obs"], data.heldout["actions"]
    mode = algo.training
    algo.eval()
    try:
        parts = [algo.action_log_likelihood(obs[i:i + rows], act[i:i + rows]) for i in range(0, len(obs), rows)]
    finally:
        algo.train(mode)
    if parts[0] is None:
        return None
    return float(torch.cat(parts).mean())


def evaluate_runs(algos: list[Algorithm], env_id: str, episodes: int) -> list[dict]:
    """Each run's evaluation (``algos``: one, or the seeds of a stacked run, whose episodes then share one vector
    env); run k's equals its evaluation alone."""
    modes = [a.training for a in algos]
    for a in algos:
        a.eval()
    # evaluation must not move the training RNG (exact resume): it forks it and seeds each policy's noise
    results = rl_evaluate.evaluate_many([a.act for a in algos], env_id, episodes,
                                        seeds=[a.cfg.seed + 10_000 for a in algos],
                                        policy_seeds=[a.cfg.seed + 12345 for a in algos])
    for a, m in zip(algos, modes):
        a.train(m)
    out = []
    for res in results:
        d = res.as_dict()
        d["score"] = res.score
        out.append(d)
    return out


class Run:
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
        self.on_save = None  # called after each checkpoint is written
        if resume:
            ck = load_checkpoint(run_dir / CHECKPOINT)
            if ck["algo"] != algo.name:
                raise ValueError(f"checkpoint is for {ck['algo']!r}, not {algo.name!r}")
            check_same_data(ck["meta"].get("data"), data.fingerprint, run_dir)
            if "env" in ck["meta"] and ck["meta"]["env"] != env_id:  # evals.csv would mix two environments' scores
                raise ValueError(f"--resume: {run_dir} was evaluated on {ck['meta']['env'] or 'no environment'}; "
                                 f"resume it with --env {ck['meta']['env']}" if ck["meta"]["env"] else
                                 f"--resume: {run_dir} was trained without an environment; resume it without --env "
                                 f"(score its checkpoints with genpolicy eval)")
            old_cfg = self._record_changes(ck)
            algo.load_full_state_dict(ck["state"])
            restore_rng(ck["rng"], self.gen)
            self.state.update(ck["loop"])
            self._record_software(ck)  # after the state: it may add a warning
            old_steps = ck["loop"].get("stage_steps")
            if old_steps is None:  # a checkpoint from before budgets were recorded: its config's stages have them
                old_steps = _stage_steps(algo, old_cfg)
            self.start_stage, self.start_step = resume_position(stages, ck["stage"], ck["step"], old_steps)
        else:
            self.meta["software"] = rundir.software()
        # once, and only for a run that goes ahead: a refused resume leaves the run's config.yaml as it was
        write_config(run_dir, algo, self.meta)
        self.state["stage_steps"] = [s.steps for s in stages]  # to tell a grown budget on resume
        for note in data.notes:  # the data's own caveats (a narrow return span), once per run
            self.record_warning("data", 0, note)
        self.logger = Logger(run_dir, self.state["metrics_offset"], self.state["evals_offset"])
        self.logger.restore_partial(self.state.get("log_partial") if resume else None)
        self.wall_before = self.state["wall_seconds"]
        self.state["segments"] += 1

    def _record_changes(self, ck: dict):
        """Refuse config changes a resumed run may not make; record the allowed ones in the config history (written
        to config.yaml with the rest of the resumed segment's meta). Returns the config the checkpoint was written
        with."""
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
        first, now = ck["meta"].get("software"), rundir.software()
        history = list(ck["meta"].get("software_history", []))
        self.meta["software"] = first or now  # a checkpoint from before this was recorded: the first known
        last = history[-1]["software"] if history else first
        if last is not None and last != now:
            history.append({"segment": ck["loop"].get("segments", 1) + 1, "at": [ck["stage"], ck["step"]],
                            "software": now})
            diff = [f"{k} {last.get(k)} -> {now.get(k)}" for k in rundir.SOFTWARE_WARN if last.get(k) != now.get(k)]
            if diff:
                self.record_warning("resume", ck["step"], "resumed under other software (" + ", ".join(diff)
                                    + "): results may differ from an uninterrupted run's")
        if history:
            self.meta["software_history"] = history

    def enter(self, stage) -> None:
        """Before the stage's first step here (a fresh start or a resume): training mode, then the stage's
        whole-dataset work (``Stage.prepare``)."""
        self.algo.train()
        if stage.prepare is not None:
            stage.prepare(self.data)

    def wall_seconds(self) -> float:
        """Wall time of every segment of the run (resumed runs add theirs)."""
        return round(self.wall_before + time.perf_counter() - self.t0, 2)

    def save(self, name: str, stage_idx: int, step: int) -> None:
        self.state.update(self.logger.offsets())
        self.state["log_partial"] = self.logger.partial()
        self.state["wall_seconds"] = self.wall_seconds()
        save_checkpoint(self.dir / name, self.algo, self.meta, stage_idx, step, self.gen, {"loop": self.state})
        if self.on_save is not None:
            self.on_save()

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
        res = res if res is not None else evaluate_runs([self.algo], self.env_id, self.episodes(final))[0]
        ll = heldout_log_likelihood(self.algo, self.data)
        if ll is not None:
            res = dict(res, heldout_logp=ll)
            self.logger.log_row(stage, done, {"heldout_logp": ll})
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
    with torch.random.fork_rng(devices=[]):
        other = build_algorithm(algo.name, algo.obs_dim, algo.act_dim, dataclasses.replace(cfg, device="cpu"))
        return [st.steps for st in other.stages()]


def resume_position(stages, stage: int, step: int, old_steps: list[int]) -> tuple[int, int]:
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

