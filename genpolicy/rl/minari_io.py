"""Minari both ways: any genpolicy dataset written as a Minari dataset (``minari.load_dataset`` reads it), and
Minari's own folders read with their metadata (:func:`genpolicy.rl.datasets.load_minari`).

Writing goes through Minari's own writer (``minari.create_dataset_from_buffers``, HDF5 format), so the files are
Minari's by construction; ``minari`` is an optional extra (``pip install -e ".[minari]"``), imported only here.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import numpy as np

from .transitions import TransitionDataset

__all__ = ["export_minari", "minari_id", "episode_slices"]

_ID = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?/[A-Za-z0-9_.-]+-v\d+$")


def minari_id(name: str) -> str:
    """The Minari id of a suite dataset name: ``hopper-medium-replay-v5`` -> ``genpolicy/hopper/medium-replay-v5``
    (namespace ``genpolicy``, the environment, the level with its version)."""
    m = re.match(r"^(?P<env>.+?)-(?P<level>random|medium|expert|medium-replay|medium-expert)-(?P<version>v\d+)$", name)
    if m is None:
        raise ValueError(f"cannot name {name!r} as a Minari dataset (namespace/env/name-vN): pass --id")
    env, level, version = m["env"], m["level"], m["version"]
    return f"genpolicy/{env}/{level}-{version}"


def episode_slices(ds: TransitionDataset) -> list[slice]:
    """The episodes of ``ds`` as row slices: each ends at a terminal or a timeout (the last row always ends one).
    Within an episode each row's next observation must be the next row's observation (Minari stores one
    observation sequence per episode); a dataset where it is not cannot be written losslessly and is refused."""
    ends = np.flatnonzero(ds.terminals | ds.timeouts)
    if len(ds) and (not len(ends) or ends[-1] != len(ds) - 1):
        ends = np.append(ends, len(ds) - 1)
    out, start = [], 0
    for e in ends:
        gap = np.flatnonzero(np.any(ds.next_observations[start:e] != ds.observations[start + 1:e + 1], axis=1))
        if len(gap):
            row = start + int(gap[0])
            raise ValueError(f"{ds.source}: row {row}'s next observation is not row {row + 1}'s observation inside "
                             f"one episode, so the episodes cannot be written as Minari observation sequences")
        out.append(slice(start, int(e) + 1))
        start = int(e) + 1
    return out


def export_minari(ds: TransitionDataset, dataset_id: str, root: str | Path, env_id: str | None = None,
                  description: str | None = None) -> Path:
    """Write ``ds`` as the Minari dataset ``dataset_id`` under ``root`` (a ``MINARI_DATASETS_PATH``) with Minari's
    writer; returns its folder. ``env_id``: the Gymnasium id it was collected in (recorded as its env spec when
    Gymnasium knows it). An existing dataset of that id is refused (no silent overwrite)."""
    try:
        import gymnasium as gym
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError as e:
        raise ImportError(f"writing Minari datasets needs the minari extra: pip install -e '.[minari]' ({e})") from e
    if not _ID.match(dataset_id):
        raise ValueError(f"Minari id {dataset_id!r}: expected namespace/env/name-vN")
    root = Path(root).resolve()  # (Minari resolves a relative MINARI_DATASETS_PATH against the dataset's own folder)
    folder = root / dataset_id
    if folder.exists():
        raise FileExistsError(f"{folder} exists; remove it or choose another --id (nothing was written)")
    buffers = []
    for i, sl in enumerate(episode_slices(ds)):
        obs = np.concatenate([ds.observations[sl], ds.next_observations[sl][-1:]]).astype(np.float32)
        buffers.append(EpisodeBuffer(id=i, observations=obs, actions=ds.actions[sl].astype(np.float32),
                                     rewards=ds.rewards[sl].astype(np.float64).tolist(),
                                     terminations=ds.terminals[sl].tolist(),
                                     truncations=(ds.timeouts[sl] & ~ds.terminals[sl]).tolist()))
    spec = None
    if env_id:
        with contextlib.suppress(Exception):  # an id Gymnasium does not know is recorded in the description only
            spec = gym.spec(env_id)
    obs_space = gym.spaces.Box(-np.inf, np.inf, ds.observations.shape[1:], np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, ds.actions.shape[1:], np.float32)
    text = description or f"{Path(ds.source).name}, exported by genpolicy" + (f" ({env_id})" if env_id else "")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        with _quiet():
            minari.create_dataset_from_buffers(dataset_id, buffers, env=spec, observation_space=obs_space,
                                               action_space=act_space, algorithm_name="genpolicy export",
                                               author="genpolicy", author_email="n/a",
                                               code_permalink="https://pypi.org/project/genpolicy/",
                                               description=text, data_format="hdf5")
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    return folder


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Minari's reminders for fields a converted file lacks
        yield
