"""Deployable policy files: the algorithm's weights, its observation normalizer and a JSON header in one
safetensors file (no pickle: reading it cannot run code).

    genpolicy export runs/gmpo-hopper-medium-v5-0 -o hopper.safetensors
    policy = genpolicy.load_policy("hopper.safetensors"); a = policy.act(obs)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["export_policy", "read_exported", "FORMAT"]

FORMAT = "genpolicy-policy/1"
_NORM = "__normalizer__."


def export_policy(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the algorithm in ``checkpoint`` (a checkpoint file) as a safetensors policy file at ``out``."""
    from safetensors.torch import save_file

    from . import __version__
    from .train import load_checkpoint

    ck = load_checkpoint(checkpoint)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ck["state"]["modules"].items()}
    tensors.update({_NORM + k: v.cpu().contiguous() for k, v in ck["state"]["normalizer"].items()})
    header = {"format": FORMAT, "algo": ck["algo"], "algo_module": ck.get("algo_module"), "dims": list(ck["dims"]),
              "config": ck["config"], "source": str(checkpoint), "stage": ck["stage"], "step": ck["step"],
              "env": ck["meta"].get("env"), "dataset": ck["meta"].get("dataset"),
              "genpolicy": __version__}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"genpolicy": json.dumps(header)})
    return out


def read_exported(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(header, module state dict, normalizer state dict)`` of a file written by :func:`export_policy`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if "genpolicy" not in meta:
            raise ValueError(f"{path}: not a genpolicy policy file (no 'genpolicy' header)")
        header = json.loads(meta["genpolicy"])
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: format {header.get('format')!r}, this genpolicy reads {FORMAT!r}")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    norm = {k[len(_NORM):]: v for k, v in tensors.items() if k.startswith(_NORM)}
    modules = {k: v for k, v in tensors.items() if not k.startswith(_NORM)}
    return header, modules, norm
