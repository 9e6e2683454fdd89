"""The algorithm registry: names -> classes, and building an algorithm from a config.

Every module in :mod:`genpolicy.rl.algos` is imported when the package is (discovery), so an algorithm file that
decorates its class with :func:`register` is available to ``genpolicy train NAME`` and :func:`load_policy` with
no other edit. Algorithms defined elsewhere register the same way when their module is imported; checkpoints
store the defining module so that :func:`algorithm_class` can import it again in a fresh process.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

from ...config import PLUGIN_PRESETS, class_dict
from .base import Algorithm

__all__ = ["ALGORITHMS", "register", "algorithm_class", "build_algorithm", "config_from_dict"]

ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make an algorithm available to the CLI and to load_policy by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name; set the class attribute name = '...'")
    old = ALGORITHMS.get(cls.name)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ValueError(f"algorithm name {cls.name!r} is taken by {old.__module__}.{old.__qualname__}")
    ALGORITHMS[cls.name] = cls
    module = sys.modules.get(cls.__module__)
    if not cls.__module__.startswith("genpolicy.") and getattr(module, "__file__", None):
        PLUGIN_PRESETS[cls.name] = Path(module.__file__).with_name(f"{cls.name}.yaml")  # one file plus one preset
    return cls


def algorithm_class(name: str, module: str | None = None) -> type[Algorithm]:
    """The registered class ``name``; ``module`` (as stored in checkpoints) is imported first if it is not known."""
    if name not in ALGORITHMS and module:
        importlib.import_module(module)
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def config_from_dict(name: str, config: dict, module: str | None = None, **replace):
    """The algorithm's Config from a plain dict (as stored in checkpoints), with ``replace`` applied first (e.g.
    ``device="cpu"`` for a run trained on a GPU); unknown keys are an error."""
    cls = algorithm_class(name, module).Config
    config = dict(config)
    for old, new in class_dict(cls, "renamed").items():  # a field renamed since the file was written
        if old in config:
            value = config.pop(old)
            config.update({n: value for n in new if n not in config})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"config keys {unknown} are not fields of {cls.__name__}")
    return cls(**{**config, **replace})


def build_algorithm(name: str, obs_dim: int, act_dim: int, cfg, normalizer=None) -> Algorithm:
    """Instantiate the registered algorithm ``name`` with ``cfg``, an instance of its ``Config``."""
    cls = algorithm_class(name)
    if not isinstance(cfg, cls.Config):
        raise TypeError(f"{name} needs a {cls.Config.__name__}, got {type(cfg).__name__}")
    return cls(obs_dim, act_dim, cfg, normalizer)
