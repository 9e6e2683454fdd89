"""A run's folder: checkpoints, the metrics and evaluation logs, the config and the software it ran under.

Layout::

    config.yaml        the resolved configuration (algorithm, dataset, env, every field) and the software (versions,
                       commit, CPU: :func:`software`; a resume under other versions is recorded and warned about)
    metrics.jsonl      one JSON object per logging interval (stage, step, metric means)
    evals.csv          stage, step, score, return mean/std per evaluation
    tb/                TensorBoard event files (when the tensorboard package is installed)
    checkpoint.pt      latest state: modules, optimizers, stage, step, RNG states, config (written atomically)
    best.pt            state at the best evaluation
    summary.json       best and final scores, wall time, steps/s per stage
"""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch
import yaml

from .. import __version__
from ..checkpoint import atomic_torch_save, atomic_write, capture_rng, load_torch
from ..rl.algos.base import Algorithm

__all__ = ["CHECKPOINT", "BEST", "SUMMARY", "RUN_FILES", "save_checkpoint", "load_checkpoint", "Logger", "software",
           "SOFTWARE_WARN", "check_same_data", "write_config", "write_summary", "read_summary", "is_run_folder",
           "clear_run_folder"]

CHECKPOINT, BEST, SUMMARY = "checkpoint.pt", "best.pt", "summary.json"
#: every file and folder a run writes in its folder (what --overwrite may delete, and nothing else)
RUN_FILES = (CHECKPOINT, BEST, SUMMARY, "config.yaml", "metrics.jsonl", "evals.csv", "tb", "act_latency.json",
             CHECKPOINT + ".tmp", BEST + ".tmp", SUMMARY + ".tmp")


def write_summary(run_dir: Path, summary: dict) -> None:
    """``summary.json`` written atomically: a reader sees the old file or the whole new one, never a torn one."""
    atomic_write(Path(run_dir) / SUMMARY, lambda f: f.write(json.dumps(summary, indent=2, default=str).encode()))


def read_summary(run_dir: Path) -> dict | None:
    """The run's summary, or None when it has none or one that is not a finished run's (empty, torn, not JSON)."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and "final_score" in summary else None


def is_run_folder(d: Path) -> bool:
    """Whether ``d`` holds a run (its checkpoint, config or metrics)."""
    return any((Path(d) / f).exists() for f in (CHECKPOINT, "config.yaml", "metrics.jsonl"))


def clear_run_folder(d: Path) -> list[str]:
    """Delete the run's own files in ``d`` (:data:`RUN_FILES`), nothing else; returns what it deleted. A folder that
    is no run folder is refused in one line."""
    import shutil

    d = Path(d)
    if not is_run_folder(d):
        raise ValueError(f"{d} is not a run folder (no checkpoint.pt, config.yaml or metrics.jsonl); refusing to "
                         f"delete anything in it")
    gone = []
    for name in RUN_FILES:
        p = d / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        gone.append(name)
    return gone


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


class Logger:
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

    def partial(self) -> dict:
        """The metric sums of the interval in progress (saved with a checkpoint that falls inside an interval, so
        that a resumed run's next row averages the whole interval, as an uninterrupted run's does)."""
        return {"sums": {k: v.detach().clone() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def restore_partial(self, partial: dict | None) -> None:
        if partial:
            self.sums = {k: v.clone() for k, v in partial["sums"].items()}
            self.counts = dict(partial["counts"])

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
        self.log_row(stage, step, vals)
        return vals

    def log_eval(self, stage: str, step: int, res: dict) -> None:
        with open(self.evals_path, "a") as f:
            se = "" if res.get("score_se") is None else f"{res['score_se']:.4f}"
            f.write(f"{stage},{step},{res['score']:.4f},{res['return_mean']:.4f},{res['return_std']:.4f},"
                    f"{res['length_mean']:.1f},{res['episodes']},{se}\n")
        if self.tb is not None:
            self.tb.add_scalar(f"{stage}/eval_score", res["score"], step)

    def log_row(self, stage: str, step: int, values: dict) -> None:
        """One metrics row (JSONL and TensorBoard): an interval's means (:meth:`flush`) or values measured at
        ``step`` (heldout_logp)."""
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"stage": stage, "step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{stage}/{k}", v, step)

    def close(self):
        if self.tb is not None:
            self.tb.close()


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
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    repo, commit = Path(__file__).resolve().parents[2], None
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


def check_same_data(recorded: dict | None, given: dict, run_dir: Path) -> None:
    """A resumed run must train on the data it started with."""
    if recorded is None:
        return  # a checkpoint from before digests were recorded
    keys = ("sha256", "rows", "obs_dim", "act_dim", "reward_scale", "normalize_obs")
    diff = [k for k in keys if recorded.get(k) != given.get(k)]
    if diff:
        raise ValueError(f"{run_dir} was trained on {recorded.get('source')} ({recorded.get('rows')} rows, obs "
                         f"{recorded.get('obs_dim')}, act {recorded.get('act_dim')}); the data given now "
                         f"({given.get('source')}) differs in {', '.join(diff)}")


def write_config(run_dir: Path, algo: Algorithm, meta: dict) -> None:
    doc = {"algo": algo.name, **{k: v for k, v in meta.items() if v is not None},
           "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(algo.cfg).items()}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
