"""Algorithms register themselves by name (used by the CLI and load_policy)."""

from .base import ALGORITHMS, Algorithm, RunConfig, Stage, register
from .gmpg import GMPG, GMPGConfig
from .gmpo import GMPO, GMPOConfig

__all__ = ["ALGORITHMS", "Algorithm", "RunConfig", "Stage", "register", "GMPO", "GMPOConfig", "GMPG", "GMPGConfig"]
