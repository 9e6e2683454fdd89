"""The one way to set up a run (CLI, benchmarks, suites, demos): seed, load the data, build the algorithm."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import steps_from_epochs
from ..filecheck import check_dims, check_state
from ..rl.algos.base import Algorithm
from ..rl.algos.registry import build_algorithm, config_from_dict
from ..rl.data import OfflineData
from ..rl.datasets import TransitionDataset, load_dataset
from .rundir import CHECKPOINT, load_checkpoint

__all__ = ["prepare_run", "run_config"]


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
    torch.manual_seed(cfg.seed)
    ds = dataset if isinstance(dataset, TransitionDataset) else load_dataset(dataset)
    held = None
    if cfg.heldout_transitions > 0:  # whole episodes out of training, the same ones on every resume
        ds, held = ds.hold_out(cfg.heldout_transitions, seed=0)
    cfg = steps_from_epochs(cfg, len(ds))  # budgets stated in epochs become step counts for this dataset
    data = OfflineData(ds, reward_scale=cfg.reward_scale, normalize_obs=cfg.normalize_obs, device=cfg.device)
    if held is not None:
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=data.device)  # noqa: E731
        data.heldout = {"obs": data.normalizer(t(held.observations)), "actions": t(held.actions)}
    return build_algorithm(algo, data.obs_dim, data.act_dim, cfg, data.normalizer).to(cfg.device), data


def run_config(run_dir: str | Path, algo: str, **replace):
    """The config a run in ``run_dir`` was started with (from its checkpoint), with ``replace`` applied."""

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        stopped = (Path(run_dir) / "config.yaml").exists()
        raise FileNotFoundError(f"{run_dir} holds a run that stopped before its first checkpoint: nothing to resume; "
                                f"pass --overwrite to start it again" if stopped else
                                f"nothing to resume: {path} does not exist")
    ck = load_checkpoint(path)
    if ck["algo"] != algo:
        raise ValueError(f"{run_dir} holds a {ck['algo']!r} run, not {algo!r}")
    cfg = config_from_dict(algo, ck["config"], ck.get("algo_module"), **replace)
    # the checkpoint's tensors are what its header builds, checked before the run builds anything of that size
    check_state(algo, check_dims(ck.get("dims"), path), cfg, ck["state"]["modules"], path)
    return cfg
