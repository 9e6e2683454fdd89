"""N runs that differ only in their seed, trained stage by stage as one model (:mod:`genpolicy.rl.stacking`)
through the one loop (:func:`.loop.run_stage`), then each finished alone."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

from ..rl.algos.base import Algorithm
from ..rl.data import OfflineData
from ..rl.stacking import StackedStage, differ_beyond_seed, stack_batches
from .lock import hold_run_folder
from .rundir import CHECKPOINT, load_checkpoint
from .loop import run_stage, stop_on_signals, train
from .run import Run

__all__ = ["train_stacked", "device_rng_state", "StackedSource"]


class StackedSource:
    """N runs' steps of one stage as one vmapped step: each seed's minibatch from its own run's generator, its
    other draws from its own copy of its run's global RNG (``gens``)."""

    def __init__(self, runs: list[Run], stack: StackedStage, gens: list[torch.Generator], rows: int):
        self.runs, self.stack, self.gens, self.rows = runs, stack.to(runs[0].data.device), gens, rows
        self.n = len(runs)

    def step(self, check: bool = False) -> list[dict]:
        """One vmapped step (``check`` unused: the stacked stages run eagerly)."""
        m = self.stack.update(stack_batches([r.data.sample(self.rows, generator=r.gen) for r in self.runs]),
                              self.gens)
        return [{name: v[k] for name, v in m.items()} for k in range(self.n)]

    def write_back(self) -> None:
        self.stack.unstack()

    def before_save(self, k: int, done: int, seconds: float) -> None:
        r = self.runs[k]
        r.state["stage_times"][self.stack.stage.name] = {"seconds": seconds, "first_step_seconds": None,
                                                         "steps_per_s": round(done / max(seconds, 1e-9), 1),
                                                         "stacked_seeds": self.n}
        r.state["stacked_segment"] = {"seconds": r.wall_seconds(), "runs": self.n}  # shared by the n runs
        _set_device_rng_state(r.data.device, self.gens[k].get_state())  # saved (checkpoint, best.pt) as the run's

    def times(self, t0: float, t_first: float, first: int, steps: int) -> None:
        return None  # recorded at each save (the runs finish alone from the last one)


def train_stacked(algos: list[Algorithm], data: OfflineData, run_dirs: list[Path], meta: dict | list[dict],
                  rng_states: list[torch.Tensor] | None, env_id: str | None = None, progress: bool = True,
                  resume: bool = False) -> list[dict]:
    """N fresh runs of one algorithm that differ only in their seed (``algos`` built by
    :func:`~genpolicy.train.setup.prepare_run`), trained stage by stage as one vectorized model wherever the stage
    is stackable (``Stage.stackable``: the IQL critic, every behaviour-cloning stage, GMPO's policy, the Gaussian
    actors, TD3+BC), then each run finished alone by :func:`~.loop.train` from the first stage that is not.

    Each run folder gets what its single run writes (config, metrics every ``log_every``, evaluations, checkpoints
    every ``ckpt_every``, best, summary). Seed k's minibatches come from its own loop's generator and its other random
    draws from a generator holding ``rng_states[k]``: the global torch RNG state its single run trains from (taken
    right after preparing it: :func:`device_rng_state`), saved in its checkpoints as its global state. So seed k is
    its single run up to the rounding of batched matmuls. The stacked stages run eagerly. SIGINT/SIGTERM finish the
    step in progress, checkpoint every run and raise ``TrainingInterrupted``; a run stopped or killed part-way
    resumes from its checkpoint (``resume``, below). ``meta``: one for all runs or one per run. Returns the
    summaries.

    ``resume``: continue the runs from their checkpoints (``rng_states`` unused: each seed's generator is its
    checkpoint's). Stopped at one position of a stackable stage, they continue as one model again, so a stack
    killed and resumed ends bit for bit where the uninterrupted stack ends; at different positions, or past the
    stacked stages, each run continues alone."""
    run_dirs = [Path(d) for d in run_dirs]
    n = len(algos)
    if not n or len(run_dirs) != n or (not resume and len(rng_states) != n) or len({type(a) for a in algos}) != 1:
        raise ValueError("train_stacked: one run folder and one RNG state per run, all runs of one algorithm")
    if resume:
        return _resume_stacked(algos, data, run_dirs, meta, env_id, progress)
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
    first = next((i for i, st in enumerate(stages[0]) if st.steps > 0), None)
    if first is None or not stages[0][first].stackable:  # each run alone, from its own RNG state
        if first is not None:
            print(f"{algos[0].name}: its {stages[0][first].name} stage has no vectorized form; the {n} seeds train "
                  f"one after the other", file=sys.stderr)
        out = []
        for a, d, m, g in zip(algos, run_dirs, metas, gens):
            _set_device_rng_state(device, g.get_state())
            out.append(train(a, data, d, env_id, m, progress=progress))
        return out
    with contextlib.ExitStack() as held:
        for d in run_dirs:  # every seed's folder, before anything is written there
            held.enter_context(hold_run_folder(d))
        return _train_stacked(algos, data, run_dirs, metas, stages, gens, first, env_id, progress)


def _resume_stacked(algos, data, run_dirs, meta, env_id, progress) -> list[dict]:
    """:func:`train_stacked` with ``resume``: the stack again from the runs' common position, else each alone."""
    metas = meta if isinstance(meta, list) else [meta] * len(algos)
    stages = [a.stages() for a in algos]
    with contextlib.ExitStack() as held:
        for d in run_dirs:
            held.enter_context(hold_run_folder(d))
        where = [_position(d) for d in run_dirs]
        si = where[0][0]
        if (len(set(where)) == 1 and si < len(stages[0]) and stages[0][si].stackable and stages[0][si].steps > 0
                and not differ_beyond_seed([a.cfg for a in algos])):
            return _train_stacked(algos, data, run_dirs, metas, stages, None, si, env_id, progress, resume=True)
        return [train(a, data, d, env_id, m, resume=True, progress=progress)
                for a, d, m in zip(algos, run_dirs, metas)]


def _position(run_dir: Path) -> tuple[int, int]:
    ck = load_checkpoint(Path(run_dir) / CHECKPOINT)
    return ck["stage"], ck["step"]


def _train_stacked(algos, data, run_dirs, metas, stages, gens, first, env_id, progress, resume=False) -> list[dict]:
    n = len(algos)
    metas = [dict(m, stacked_seeds=[a.cfg.seed for a in algos]) for m in metas]
    runs, gens = [], [] if resume else gens
    for a, d, m, st in zip(algos, run_dirs, metas, stages):
        runs.append(Run(a, data, d, env_id, m, resume, False, st))
        if resume:  # a resumed Run restores its checkpoint's global RNG: this seed's own stream, taken from there
            gens.append(torch.Generator(device=data.device))
            gens[-1].set_state(device_rng_state(data.device))
    start = (runs[0].start_stage, runs[0].start_step) if resume else (first, 0)
    last_eval = max((i for i, st in enumerate(stages[0]) if st.evaluates and st.steps > 0), default=None)
    try:
        with stop_on_signals(runs[0]):  # runs[0] holds the flag for all
            for si in range(start[0], len(stages[0])):
                stage = stages[0][si]
                at = start[1] if si == start[0] else 0
                if stage.steps == 0 or at >= stage.steps:
                    continue
                if not stage.stackable:
                    print(f"{algos[0].name}: its {stage.name} stage has no vectorized form; each seed's run "
                          f"continues alone from there", file=sys.stderr)
                    break
                for r, sts in zip(runs, stages):
                    r.enter(sts[si])
                source = StackedSource(runs, StackedStage(algos, si), gens, stage.batch_size or algos[0].cfg.batch_size)
                run_stage(runs, [sts[si] for sts in stages], si, at, source, si == last_eval, progress,
                          f"{algos[0].name}:{stage.name} x{n} seeds")
    finally:
        for r in runs:
            r.logger.close()
    # the rest alone, from the last stacked stage's checkpoint
    return [train(a, data, d, env_id, m, resume=True, progress=progress) for a, d, m in zip(algos, run_dirs, metas)]


def device_rng_state(device: torch.device) -> torch.Tensor:
    """The global torch RNG state of ``device``'s default generator (what :func:`train_stacked` takes per run)."""
    device = torch.device(device)
    return torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device)


def _set_device_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cpu":
        torch.set_rng_state(state)
    else:
        torch.cuda.set_rng_state(state, device)
