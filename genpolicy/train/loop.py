"""The one training loop: for each stage of an algorithm, sample batches, update, log, evaluate, checkpoint.

Resuming (``resume=True``) restores everything, including RNG states, so that a run killed with SIGKILL and
resumed ends with the same weights as an uninterrupted run with the same seed. SIGINT/SIGTERM finish the current
step, write a checkpoint and raise :class:`~.run.TrainingInterrupted`. A resumed run must be given the same data
(checked by digest). Metrics that turn non-finite stop the run with the stage and steps named, unless the stage
skips such steps itself (``Stage.skips_non_finite``).

:func:`run_stage` drives a step source over one run or over the N runs of a seed stack (:mod:`.stacked`) alike:
logging, monitors, evaluation, checkpoints and signals are written once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..optim import ensure_adam_state
from ..rl.algos.base import Algorithm, compile_mode
from ..rl.data import OfflineData
from .gemm import NarrowProducts
from .run import Run, TrainingInterrupted, evaluate_runs
from .lock import hold_run_folder
from .rundir import CHECKPOINT, write_summary

__all__ = ["train", "run_stage", "stage_update", "compile_cpu_step", "CompiledStep", "SingleSource"]


def stage_update(algo: Algorithm, stage):
    """The function the loop calls for ``stage``: its eager ``update``, or its ``functional`` form compiled whole
    (``fullgraph=True``): on CUDA with ``mode="reduce-overhead"`` (replayed as a CUDA graph); on a CPU with narrow
    products turned (:mod:`.gemm`), as a :class:`CompiledStep`."""
    mode = compile_mode(algo.cfg, algo.device)
    if mode == "off" or stage.functional is None or not stage.compiles:
        return stage.update
    for opt in algo.optimizers().values():  # optimizer state exists before the graph reads it
        ensure_adam_state(opt)
    if mode == "trace":
        return torch.compile(stage.functional, fullgraph=True, backend="aot_eager")
    if algo.device.type != "cpu":
        return torch.compile(stage.functional, fullgraph=True, mode="reduce-overhead")
    return compile_cpu_step(stage.functional, stage.name)


def compile_cpu_step(fn, name: str, **options) -> "CompiledStep":
    """``fn(batch)`` (a step written without host syncs) compiled whole for a CPU, as a :class:`CompiledStep`; narrow
    products turned (:mod:`.gemm`). ``options``: more Inductor settings (e.g. ``fallback_random=True``: random draws
    as the eager kernels make them, so that the compiled step draws what the eager one draws)."""
    # inputs' sizes and strides are Dynamo's guards, checked where CompiledStep checks them: not asserted again. The
    # C++ wrapper (the graph's buffer and kernel calls in C++ instead of Python): 163 against 157 steps/s for the IQL
    # critic at batch 256 on one thread (median of 6 alternating rounds), for 8 s more compiling
    return CompiledStep(torch.compile(fn, fullgraph=True, options={
        "post_grad_custom_post_pass": NarrowProducts(), "size_asserts": False, "alignment_asserts": False,
        "cpp_wrapper": True, **options}), name)


class CompiledStep:
    """A stage's step compiled whole, called with Dynamo's guards evaluated only where they are checked.

    Dynamo checks, before every call of a compiled function, that what its graph assumed still holds (the modules,
    the optimizer's settings, every tensor's shape and dtype): 0.3-0.4 ms an IQL critic step on one CPU thread, about
    6 % of the step. A compiled stage's step reads no Python value that changes between steps (``Stage.compiles``),
    so its guards hold on every call once they held on the first with the same batch shapes. Here they are evaluated
    in full on a call whose batch shapes differ from the last call's (which compiles where needed) and on each
    ``check=True`` call, and skipped otherwise. A checked call whose guards fail raises instead of recompiling: the
    stage broke its contract and the steps since the last check are not trusted. The loop checks the step before
    every log, evaluation and checkpoint, so nothing it records or saves comes from an unchecked stretch of more than
    ``log_every`` steps."""

    def __init__(self, fn, name: str):
        self.fn, self.name, self.shapes = fn, name, None

    def __call__(self, batch, check: bool = False):
        shapes = tuple(getattr(t, "shape", t) for t in vars(batch).values())
        if shapes != self.shapes:
            out = self.fn(batch)
            self.shapes = shapes
            return out
        if not check:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return self.fn(batch)
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                return self.fn(batch)
        except RuntimeError as e:
            if "fail_on_recompile" not in str(e):
                raise
            raise RuntimeError(f"stage {self.name!r}: its compiled step's guards failed between steps (it reads Python "
                               "state that changes from step to step; set Stage.compiles=False for it): "
                               f"{str(e).splitlines()[-1].strip()}") from None


class SingleSource:
    """One run's steps: its stage's update (eager or compiled) on its own minibatches."""

    def __init__(self, run: Run, stage):
        self.run, self.rows = run, stage.batch_size or run.algo.cfg.batch_size
        self.update = stage_update(run.algo, stage)

    def step(self, check: bool = False) -> list[dict]:
        """One step; ``check``: a compiled step evaluates its guards (:class:`CompiledStep`)."""
        batch = self.run.data.sample(self.rows, generator=self.run.gen)
        return [self.update(batch, check=True) if check and isinstance(self.update, CompiledStep)
                else self.update(batch)]

    def write_back(self) -> None:
        """Before the runs are evaluated or saved: one run's modules already hold its state."""

    def before_save(self, k: int, done: int, seconds: float) -> None:
        """Before run ``k``'s evaluation is recorded and it is saved: nothing to add for one run."""

    def times(self, t0: float, t_first: float, first: int, steps: int) -> dict | None:
        now, rest = time.perf_counter(), steps - first - 1
        return {"seconds": round(now - t0, 2), "first_step_seconds": round(t_first - t0, 3),
                "steps_per_s": round(rest / max(now - t_first, 1e-9), 1) if rest > 0 else None}


def run_stage(runs: list[Run], stages: list, si: int, first: int, source, final: bool, progress: bool,
              desc: str) -> None:
    """Steps ``first..steps`` of stage ``si`` for ``runs`` (``stages``: each run's instance of it), each step from
    ``source`` (one metrics dict per run): log, monitor, evaluate, checkpoint, stop on a signal. ``final``: the last
    evaluating stage, whose closing evaluation (``final_eval_episodes``) gives the final score."""
    stage, n = stages[0], len(runs)
    bar = tqdm(range(first, stage.steps), desc=desc, disable=not progress, initial=first, total=stage.steps,
               dynamic_ncols=True, mininterval=0.5)
    t0, t_first = time.perf_counter(), None
    log_every = runs[0].algo.cfg.log_every
    for step in bar:
        done = step + 1
        # checked: the step before a log, an evaluation, a checkpoint or the stage's end
        check = done % log_every == 0 or any(runs[0].due(stage, done, None))
        for r, m in zip(runs, source.step(check)):
            r.logger.accumulate(m)
        if t_first is None:
            t_first = time.perf_counter()  # the first step includes compiling (when compile is on)
        for r, st in zip(runs, stages):
            r.log(st, done, first, bar, f" of {r.dir}" if n > 1 else "")
        signum = runs[0].stop_signal
        evaluate, checkpoint = runs[0].due(stage, done, signum)
        end = done == stage.steps
        if evaluate or checkpoint:
            seconds = round(time.perf_counter() - t0, 2)
            source.write_back()
            # every run's episodes in one vector env, each run's result as if evaluated alone
            results = (evaluate_runs([r.algo for r in runs], runs[0].env_id, runs[0].episodes(final and end))
                       if evaluate else [None] * n)
            for k, (r, res) in enumerate(zip(runs, results)):
                source.before_save(k, done, seconds)
                if evaluate:
                    r.evaluate(stage.name, si, done, bar, final and end, res)
                if checkpoint:
                    r.save(CHECKPOINT, si + 1 if end else si, 0 if end else done)
        if signum is not None:
            bar.close()
            raise TrainingInterrupted(signum, stage.name, done, runs[0].dir)
    bar.close()
    times = source.times(t0, t_first, first, stage.steps)
    if times is not None:
        for r in runs:
            r.state["stage_times"][stage.name] = times


def train(algo: Algorithm, data: OfflineData, run_dir: str | Path, env_id: str | None = None, meta: dict | None = None,
          resume: bool = False, progress: bool = True, on_save=None) -> dict:
    """Run every stage of ``algo`` on ``data``; evaluate on ``env_id`` (if given) during evaluating stages.

    Args:
        algo: the algorithm (its ``cfg`` is a :class:`~genpolicy.rl.algos.base.RunConfig` subclass).
        data: the offline data on the training device.
        run_dir: output folder (see :mod:`genpolicy.train.rundir`).
        env_id: Gymnasium id for evaluation, or None to skip evaluation.
        meta: extra facts stored in checkpoints and config.yaml (dataset, env, preset, command).
        resume: continue from ``run_dir/checkpoint.pt``.
        progress: show a progress bar per stage.
        on_save: called after every checkpoint is written (the suite copies the folder to a remote run root).

    Returns:
        The summary (also written to ``summary.json``).
    """
    run_dir = Path(run_dir)
    with hold_run_folder(run_dir):  # before anything is written there; released on any exit
        return _train(algo, data, run_dir, env_id, meta, resume, progress, on_save)


def _train(algo: Algorithm, data: OfflineData, run_dir: Path, env_id: str | None, meta: dict | None, resume: bool,
           progress: bool, on_save=None) -> dict:
    if compile_mode(algo.cfg, algo.device) != "off":
        torch._dynamo.reset()  # compiled code of earlier runs in this process is keyed to their modules
    stages = algo.stages()
    run = Run(algo, data, run_dir, env_id, meta or {}, resume, progress, stages)
    run.on_save = on_save
    last_eval = max((i for i, s in enumerate(stages) if s.evaluates and s.steps > 0), default=None)
    try:
        with stop_on_signals(run):
            for si in range(run.start_stage, len(stages)):
                first = run.start_step if si == run.start_stage else 0
                stage = stages[si]
                if first < stage.steps:
                    run.enter(stage)
                    run_stage([run], [stage], si, first, SingleSource(run, stage), si == last_eval, progress,
                              f"{algo.name}:{stage.name}")
    finally:
        run.logger.close()
    st = run.state
    summary = {"algo": algo.name, "best_score": st["best_score"], "best_at": st["best_stage_step"],
               "final_score": st["final_score"], "final_score_se": st.get("final_score_se"),
               "final_episodes": st.get("final_episodes"), "stage_times": st["stage_times"],
               "wall_seconds": run.wall_seconds(), "seed_seconds": _seed_seconds(run.wall_seconds(), st),
               "segments": st["segments"], "warnings": st["warnings"],
               "evals": st["evals"], **run.meta}
    write_summary(run_dir, summary)
    return summary


def _seed_seconds(wall: float, state: dict) -> float:
    """A run's share of wall time: a segment trained stacked with N seeds (``stacked_segment``) counts 1/N."""
    seg = state.get("stacked_segment")
    return round(wall - (seg["seconds"] * (1 - 1 / seg["runs"]) if seg else 0.0), 2)


@contextlib.contextmanager
def stop_on_signals(run: Run):
    """SIGINT/SIGTERM set ``run.stop_signal`` (the loop checkpoints and stops after the step in progress); a
    second signal of the same kind aborts at once. Only in the main thread (signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if run.stop_signal is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        run.stop_signal = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
