"""Environment factories and D4RL reference scores.

Gymnasium MuJoCo (v5 and v4) environments are built with ``gymnasium.make_vec`` (synchronous), imported
lazily so that the library works without MuJoCo installed. dm_control tasks (``dm_control/cheetah-run-v0``) go
through Farama's ``shimmy`` adapter with their dict observations flattened to one float vector; they need
``pip install 'genpolicy[dmc]'`` (dm-control >= 1.0.52, on the same mujoco as Gymnasium's tasks).
"""

from __future__ import annotations

import re

__all__ = ["REF_SCORES", "env_family", "normalized_score", "make_env", "make_vec_env", "is_dm_control"]

#: D4RL reference returns (random, expert) used for normalized scores.
REF_SCORES = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "antmaze": (0.0, 1.0),
    "pointmaze": (0.0, 1.0),  # navigation: return 0 or 1 per episode, the score is the success rate x 100
}


#: dm_control tasks of the dataset pipeline (RL Unplugged stand-ins): short name -> Gymnasium id via shimmy
DM_CONTROL_TASKS = ("cartpole-swingup", "cheetah-run", "walker-walk", "walker-stand", "finger-turn_hard", "fish-swim")


def is_dm_control(env_id: str) -> bool:
    """``dm_control/walker-walk-v0`` or a name starting with a DM_CONTROL_TASKS entry (``walker-walk-medium-v0``)."""
    return env_id.startswith("dm_control/") or any(env_id.lower().startswith(t) for t in DM_CONTROL_TASKS)


def env_family(env_id: str) -> str | None:
    """``HalfCheetah-v5`` -> ``halfcheetah``; ``hopper-medium-v5`` -> ``hopper``; None when unknown (dm_control
    tasks such as ``walker-walk`` have no D4RL reference scores and are not ``walker2d``)."""
    if is_dm_control(env_id):
        return None
    key = re.sub(r"[^a-z0-9]", "", env_id.lower())
    for fam in REF_SCORES:
        if key.startswith(fam) or key.startswith(fam.replace("2d", "")):
            return fam
    for fam in ("antmaze", "pointmaze"):  # genpolicy/antmaze-umaze-v0, antmaze-umaze-diverse-v0, ...
        if fam in key:
            return fam
    return None


def normalized_score(env_id: str, ret):
    """D4RL normalized score ``100 (ret - random) / (expert - random)``; raises for unknown environments."""
    fam = env_family(env_id)
    if fam is None:
        raise ValueError(f"no D4RL reference scores for {env_id!r}; known families: {sorted(REF_SCORES)}")
    lo, hi = REF_SCORES[fam]
    return 100.0 * (ret - lo) / (hi - lo)


def _gym(env_id: str):
    """gymnasium, with shimmy's dm_control envs registered when ``env_id`` is one; clear errors when missing."""
    try:
        import gymnasium as gym
    except ImportError as e:  # pragma: no cover
        raise ImportError("environments need gymnasium with MuJoCo: pip install 'genpolicy[envs]'") from e
    if env_id.startswith("dm_control/"):
        try:
            import shimmy
            from dm_control import suite  # noqa: F401  (shimmy registers lazily; fail here, clearly)
        except ImportError as e:
            raise ImportError(f"{env_id} needs dm-control and shimmy: pip install 'genpolicy[dmc]'") from e
        gym.register_envs(shimmy)
    if env_id.startswith("genpolicy/"):  # the navigation tasks (genpolicy.rl.navigation)
        from .navigation import register

        register()
    return gym


def _wrappers(env_id: str) -> list:
    """dm_control: flatten the dict observation into one float32 vector (keys in the spec's order)."""
    if not env_id.startswith("dm_control/"):
        return []
    import gymnasium as gym
    import numpy as np

    def flat(env):
        env = gym.wrappers.FlattenObservation(env)
        box = env.observation_space
        return gym.wrappers.TransformObservation(
            env, lambda o: o.astype(np.float32),
            gym.spaces.Box(box.low.astype(np.float32), box.high.astype(np.float32), dtype=np.float32))

    return [flat]


def make_env(env_id: str, **kwargs):
    """One Gymnasium env (``gymnasium.make``), dm_control ids included."""
    gym = _gym(env_id)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"cannot make environment {env_id!r}: {e}") from e
    for w in _wrappers(env_id):
        env = w(env)
    return env


def make_vec_env(env_id: str, num_envs: int, **kwargs):
    """A synchronous Gymnasium vector env of ``num_envs`` copies of ``env_id`` (dm_control ids included)."""
    gym = _gym(env_id)
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", wrappers=_wrappers(env_id) or None,
                            **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"cannot make environment {env_id!r}: {e}") from e
