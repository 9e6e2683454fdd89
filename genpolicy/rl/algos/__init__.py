"""Offline-RL algorithms. Each file here is one algorithm (``@register``-ed, found by discovery); ``base`` holds
the contract, ``common`` the shared building blocks, ``registry`` the name -> class table."""

import importlib
import pkgutil

from .base import Algorithm, RunConfig, Stage
from .common import CriticPolicyConfig
from .registry import ALGORITHMS, algorithm_class, build_algorithm, config_from_dict, register

INFRASTRUCTURE = ("base", "common", "registry")
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_m.name}")

from .gmpg import GMPG, GMPGConfig  # noqa: E402
from .gmpo import GMPO, GMPOConfig  # noqa: E402
from .iql import IQL, IQLAWRConfig  # noqa: E402

__all__ = ["ALGORITHMS", "Algorithm", "RunConfig", "CriticPolicyConfig", "Stage", "register", "algorithm_class",
           "build_algorithm", "config_from_dict", "GMPO", "GMPOConfig", "GMPG", "GMPGConfig", "IQL", "IQLAWRConfig",
           "INFRASTRUCTURE"]
