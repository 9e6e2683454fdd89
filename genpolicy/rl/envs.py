"""Environment factories and D4RL reference scores.

Gymnasium MuJoCo (v5 and v4) environments are built with ``gymnasium.make_vec`` (synchronous), imported
lazily so that the library works without MuJoCo installed.
"""

from __future__ import annotations

import re

__all__ = ["REF_SCORES", "env_family", "normalized_score", "make_vec_env"]

#: D4RL reference returns (random, expert) used for normalized scores.
REF_SCORES = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "antmaze": (0.0, 1.0),
}


def env_family(env_id: str) -> str | None:
    """``HalfCheetah-v5`` -> ``halfcheetah``; ``hopper-medium-v5`` -> ``hopper``; None when unknown."""
    key = re.sub(r"[^a-z0-9]", "", env_id.lower())
    for fam in REF_SCORES:
        if key.startswith(fam) or key.startswith(fam.replace("2d", "")):
            return fam
    if "antmaze" in key:
        return "antmaze"
    return None


def normalized_score(env_id: str, ret):
    """D4RL normalized score ``100 (ret - random) / (expert - random)``; raises for unknown environments."""
    fam = env_family(env_id)
    if fam is None:
        raise ValueError(f"no D4RL reference scores for {env_id!r}; known families: {sorted(REF_SCORES)}")
    lo, hi = REF_SCORES[fam]
    return 100.0 * (ret - lo) / (hi - lo)


def make_vec_env(env_id: str, num_envs: int, **kwargs):
    """A synchronous Gymnasium vector env of ``num_envs`` copies of ``env_id``."""
    try:
        import gymnasium as gym
    except ImportError as e:  # pragma: no cover
        raise ImportError("evaluation needs gymnasium with MuJoCo: pip install 'genpolicy[envs]'") from e
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"cannot make environment {env_id!r}: {e}") from e
