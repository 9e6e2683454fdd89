"""Deployment: load a trained policy from its checkpoint alone."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["load_policy", "pick_checkpoint", "progress_of"]


def load_policy(path: str | Path, device: str = "cpu"):
    """Rebuild the algorithm stored in ``path``: a ``checkpoint.pt``/``best.pt``, a run folder (its ``best.pt``
    if any, else ``checkpoint.pt``) or a ``.safetensors`` file from ``genpolicy export``. Nothing is unpickled.

    The returned :class:`~genpolicy.rl.algos.base.Algorithm`'s ``act(raw_obs)`` takes raw observations
    ``(B, obs_dim)`` (normalization is stored in the checkpoint) and returns actions ``(B, act_dim)`` in [-1, 1].
    An algorithm defined outside genpolicy is found through the module stored with the checkpoint.
    """
    from .filecheck import check_dims, check_normalizer, check_state
    from .rl.algos import build_algorithm, config_from_dict
    from .train import BEST, CHECKPOINT, load_checkpoint

    path = Path(path)
    if path.suffix == ".safetensors":
        from .export import read_exported
        from .rl.data import ObsNormalizer

        header, modules, norm = read_exported(path)
        cfg = config_from_dict(header["algo"], _tuples(header["config"]), header.get("algo_module"),
                               device=str(device))
        dims = check_dims(header.get("dims"), path)
        check_state(header["algo"], dims, cfg, modules, path)  # before anything of the header's size is built
        check_normalizer(norm, dims[0], path)
        algo = build_algorithm(header["algo"], *dims, cfg, ObsNormalizer.from_state_dict(norm))
        algo.load_state_dict(modules)
        return algo.to(torch.device(device)).eval()
    if path.is_dir():
        best = path / BEST
        path = best if best.exists() else path / CHECKPOINT
    ck = load_checkpoint(path)
    obs_dim, act_dim = check_dims(ck.get("dims"), path)
    cfg = config_from_dict(ck["algo"], ck["config"], ck.get("algo_module"), device=str(device))
    check_state(ck["algo"], (obs_dim, act_dim), cfg, ck["state"]["modules"], path)
    check_normalizer(ck["state"]["normalizer"], obs_dim, path)
    algo = build_algorithm(ck["algo"], obs_dim, act_dim, cfg)
    algo.load_full_state_dict(ck["state"])
    return algo.to(torch.device(device)).eval()


def _tuples(config: dict) -> dict:
    """JSON turns the config's tuples into lists; dataclass configs type sequences as tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def pick_checkpoint(path: str | Path, which: str = "best") -> tuple[Path, str]:
    """The file to load from ``path`` and why: a file is itself; in a run folder ``which`` is ``best`` (``best.pt``,
    falling back to ``checkpoint.pt`` when the run never evaluated), ``final`` (``checkpoint.pt``) or a file name."""
    from .train import BEST, CHECKPOINT

    path = Path(path)
    if path.is_file():
        return path, "the file given"
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder or policy file at {path}")
    if which == "best":
        if (path / BEST).exists():
            return path / BEST, "best evaluation (best.pt)"
        return path / CHECKPOINT, "final state (checkpoint.pt; the run has no best.pt: it never evaluated)"
    if which == "final":
        return path / CHECKPOINT, "final state (checkpoint.pt)"
    return path / which, "the file given"


def progress_of(algo, stage: int, step: int) -> tuple[int, int]:
    """Steps done and steps planned for an algorithm at position (stage index, step) of its stages."""
    steps = [s.steps for s in algo.stages()]
    return sum(steps[:stage]) + step, sum(steps)
