"""Offline dataset files: D4RL-format HDF5, Minari local folders and .npz, validated on load.

    ds = load_dataset("path/to/hopper-medium-v2.hdf5")           # D4RL keys
    ds = load_dataset("minari:mujoco/hopper/medium-v0")           # <MINARI_DATASETS_PATH>/mujoco/hopper/medium-v0
    ds = load_dataset("hopper-medium-replay-v5")                 # the bundled suite (datasets/)
    ds = load_dataset("data.npz")

A bad file raises :class:`DatasetError` naming the file, the key and the problem. The in-memory side (tensors on a
device, batches, observation normalization) is :mod:`genpolicy.rl.data`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .transitions import (REQUIRED_KEYS, DatasetError, TransitionDataset, close_last_episode, concat_datasets,
                          episode_returns)

__all__ = [
    "DatasetError", "TransitionDataset", "load_dataset",
    "load_d4rl_hdf5", "load_minari", "load_npz", "episode_returns", "REQUIRED_KEYS", "register_dataset",
    "DATASET_REGISTRY", "REPO_DATASETS", "dataset_dirs", "available_datasets", "concat_datasets", "close_last_episode",
    "check_h5_items",
]

#: the repository's ``datasets/`` folder (the committed suite files, controllers and agents)
REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets"

#: name -> path of a dataset known by name (filled by :func:`register_dataset`)
DATASET_REGISTRY: dict[str, Path] = {}


def _as_bool(x) -> np.ndarray:
    return np.asarray(x).astype(bool).reshape(-1)


def _derive_next_observations(obs, actions, rewards, terminals, timeouts, source):
    """next_obs[i] = obs[i+1] inside an episode; rows that end by timeout (or the file's last row) without a
    terminal have no known successor and are dropped, as D4RL's qlearning_dataset does."""
    n = len(rewards)
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    next_obs[-1] = obs[-1]
    ends = terminals | timeouts
    drop = (timeouts & ~terminals).copy()
    if n and not ends[-1]:
        drop[-1] = True
    # a terminal row's next observation is never used for bootstrapping; keep it as the row's own obs
    next_obs[terminals] = obs[terminals]
    keep = ~drop
    ends_kept = ends | np.roll(drop, -1)  # the row before a dropped timeout row now ends its episode
    return (obs[keep], actions[keep], rewards[keep], next_obs[keep], terminals[keep],
            (ends_kept & ~terminals)[keep])


def _from_arrays(get, keys: set, source: str, metadata: dict) -> TransitionDataset:
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    if missing:
        raise DatasetError(source, missing[0], f"required key missing (file has {sorted(keys)})")
    def floats(key):
        try:
            return np.asarray(get(key), dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DatasetError(source, key, f"is not numeric ({e})") from None

    obs = floats("observations")
    actions = floats("actions")
    rewards = floats("rewards").reshape(-1)
    terminals = _as_bool(get("terminals"))
    timeouts = _as_bool(get("timeouts")) if "timeouts" in keys else np.zeros(len(rewards), dtype=bool)
    n = len(rewards)
    for key, arr in (("observations", obs), ("actions", actions), ("terminals", terminals), ("timeouts", timeouts)):
        if len(arr) != n:
            raise DatasetError(source, key, f"has {len(arr)} rows but rewards has {n}")
    if "next_observations" in keys:
        next_obs = floats("next_observations")
        ds = TransitionDataset(obs, actions, rewards, next_obs, terminals, timeouts, source, metadata)
    else:
        o, a, r, no, te, to = _derive_next_observations(obs, actions, rewards, terminals, timeouts, source)
        ds = TransitionDataset(o, a, r, no, te, to, source, {**metadata, "next_observations": "derived"})
    return ds


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover
        raise ImportError("reading HDF5 datasets needs h5py: pip install h5py") from e
    return h5py


#: DEFLATE cannot shrink data more than about 1032:1, so a dataset that stores less than this fraction of what it
#: declares holds unwritten space (read as fill values), not compressed data
_MAX_RATIO = 1100
_MAX_BYTES = 64 * 2**30  # no array of a transition file is allowed to declare more than this


def check_h5_items(group, names, source: str) -> None:
    """Before anything is read: ``names`` in HDF5 ``group`` are datasets of this file (no external link, no
    external or virtual storage) whose declared size the file really stores (a 3 KB file declaring 10^8 rows is
    refused, not expanded)."""
    h5py = _h5py()
    for name in names:
        if name not in group:
            continue
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise DatasetError(source, name, f"is an external link to {link.filename}:{link.path}; refusing to follow "
                                             f"it")
        d = group[name]
        if isinstance(d, h5py.Group):
            check_h5_items(d, list(d.keys()), source)
            continue
        if d.external:
            raise DatasetError(source, name, f"keeps its data outside the file ({d.external[0][0]}); refusing to read "
                                             f"it")
        if d.is_virtual:  # (the suite's next_observations map rows of this file's own observations)
            outside = sorted({s.file_name for s in d.virtual_sources()} - {"."})
            if outside:
                raise DatasetError(source, name, f"is a virtual dataset mapping data of other files ({outside[0]}); "
                                                 f"refusing to read it")
            # each source dataset once (hopper-medium-replay-v5's 2538 mapping entries name two datasets)
            check_h5_items(group.file, sorted({s.dset_name for s in d.virtual_sources()}), source)
            continue
        declared = int(d.size) * d.dtype.itemsize
        stored = d.id.get_storage_size()
        if declared > _MAX_BYTES or (declared > 2**20 and stored * _MAX_RATIO < declared):
            raise DatasetError(source, name, f"declares {d.shape} ({declared} bytes) but the file stores {stored} "
                                             f"bytes of it; refusing to allocate it")


def load_d4rl_hdf5(path: str | Path, action_bounds=(-1.0, 1.0)) -> TransitionDataset:
    """Load a D4RL-format HDF5 file (keys observations, actions, rewards, terminals[, timeouts, next_observations])."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(str(path), None, f"not a readable HDF5 file ({e})") from e
    with f:
        keys = set(f.keys())
        meta = {}
        if "metadata" in f.attrs:
            try:
                meta = json.loads(f.attrs["metadata"])
            except (TypeError, ValueError):
                meta = {}
        card = path.with_suffix(".json")
        if card.exists():
            meta.setdefault("card", json.loads(card.read_text()))
        check_h5_items(f, [*REQUIRED_KEYS, "timeouts", "next_observations"], str(path))
        ds = _from_arrays(lambda k: f[k][()], keys, str(path), meta)
    ds.validate(action_bounds)
    return ds


def load_npz(path: str | Path, action_bounds=(-1.0, 1.0)) -> TransitionDataset:
    """Load a ``.npz`` file with the D4RL keys."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DatasetError(str(path), None, f"not a readable .npz file ({e})") from e
    with z:
        ds = _from_arrays(lambda k: z[k], set(z.files), str(path), {})
    ds.validate(action_bounds)
    return ds


def _minari_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def _flatten_obs(node, source: str, key: str) -> np.ndarray:
    """Minari observations may be a dataset or a group of datasets (dict observations): concatenate sorted keys."""
    h5py = _h5py()
    if isinstance(node, h5py.Dataset):
        arr = node[()]
        return arr.reshape(arr.shape[0], -1).astype(np.float32)
    parts = [_flatten_obs(node[k], source, f"{key}/{k}") for k in sorted(node.keys())]
    if not parts:
        raise DatasetError(source, key, "empty observation group")
    return np.concatenate(parts, axis=1)


def load_minari(spec: str | Path, action_bounds=(-1.0, 1.0)) -> TransitionDataset:
    """Load a Minari dataset from its local folder, with h5py only (no network, no gym.make).

    Args:
        spec: a folder ``.../<name>-vN`` containing ``data/main_data.hdf5`` (and ``data/metadata.json``, where
            Minari 0.5 writes it, or ``metadata.json`` beside ``data/``: read into the dataset's metadata), or a
            dataset id ``namespace/env/name-vN`` under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).
    """
    h5py = _h5py()
    folder = Path(spec)
    if not (folder / "data" / "main_data.hdf5").exists():
        folder = _minari_root() / str(spec)
    main = folder / "data" / "main_data.hdf5"
    if not main.exists():
        raise FileNotFoundError(f"Minari dataset not found: {spec} (looked for {main})")
    meta = {}
    for where in (folder / "data" / "metadata.json", folder / "metadata.json"):  # Minari 0.5's layout, then older
        if where.exists():
            meta = json.loads(where.read_text())
            break
    source = str(main)
    obs, nxt, act, rew, term, trunc = [], [], [], [], [], []
    with h5py.File(main, "r") as f:
        episodes = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not episodes:
            raise DatasetError(source, None, "no episode_N groups")
        check_h5_items(f, episodes, source)
        for ep in episodes:
            g = f[ep]
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if key not in g:
                    raise DatasetError(source, f"{ep}/{key}", "required key missing")
            o = _flatten_obs(g["observations"], source, f"{ep}/observations")
            a = np.asarray(g["actions"][()], dtype=np.float32)
            t = len(a)
            if len(o) != t + 1:
                raise DatasetError(source, f"{ep}/observations", f"has {len(o)} rows; expected len(actions)+1 = {t + 1}")
            for key in ("rewards", "terminations", "truncations"):
                if len(g[key]) != t:
                    raise DatasetError(source, f"{ep}/{key}", f"has {len(g[key])} rows but actions has {t}")
            obs.append(o[:-1])
            nxt.append(o[1:])
            act.append(a.reshape(t, -1))
            rew.append(np.asarray(g["rewards"][()], dtype=np.float32))
            te, tr = _as_bool(g["terminations"][()]), _as_bool(g["truncations"][()])
            tr = tr.copy()
            if t and not (te[-1] or tr[-1]):
                tr[-1] = True  # the episode ends here in the file
            term.append(te)
            trunc.append(tr & ~te)
    ds = TransitionDataset(np.concatenate(obs), np.concatenate(act), np.concatenate(rew), np.concatenate(nxt),
                           np.concatenate(term), np.concatenate(trunc), source, meta)
    ds.validate(action_bounds)
    return ds


def register_dataset(name: str, path: str | Path) -> None:
    """Make ``load_dataset(name)`` find ``path``."""
    DATASET_REGISTRY[name] = Path(path)


def dataset_dirs() -> list[Path]:
    """Where suite names are looked up: ``$GENPOLICY_DATASETS`` (os.pathsep-separated), ``./datasets``, and the
    repository's ``datasets/`` folder."""
    dirs = [Path(d) for d in os.environ.get("GENPOLICY_DATASETS", "").split(os.pathsep) if d]
    dirs += [Path("datasets"), REPO_DATASETS]
    return dirs


def available_datasets() -> list[dict]:
    """Every dataset ``load_dataset`` accepts by name: the suite files found in :func:`dataset_dirs` (with their
    data cards' facts), the medium-expert compositions, and registered names."""
    found: dict[str, dict] = {}
    for d in dataset_dirs():
        for f in sorted(d.glob("*.hdf5")):
            if f.stem in found:
                continue
            card = f.with_suffix(".json")
            info = json.loads(card.read_text()) if card.exists() else {}
            found[f.stem] = {"name": f.stem, "path": str(f), "size_mb": round(f.stat().st_size / 2**20, 1),
                             "transitions": info.get("transitions"), "episodes": info.get("episodes"),
                             "return_mean": info.get("return_mean"), "score_mean": info.get("normalized_score_mean")}
    for name in list(found):
        if "-medium-" in name:
            me = name.replace("-medium-", "-medium-expert-")
            expert = name.replace("-medium-", "-expert-")
            if expert in found and me not in found:
                found[me] = _composed_facts(me, found[name], found[expert])
    for name, path in DATASET_REGISTRY.items():
        found.setdefault(name, {"name": name, "path": str(path), "registered": True})
    return [found[k] for k in sorted(found)]


def _composed_facts(name: str, a: dict, b: dict) -> dict:
    """The facts of the dataset ``a`` ∪ ``b`` from its two parts' cards: counts add up, a mean over episodes is the
    parts' means weighted by their episode counts (None where a card lacks a fact); no file, so no size."""
    def add(k):
        return None if a[k] is None or b[k] is None else a[k] + b[k]

    def per_episode(k):
        if a[k] is None or b[k] is None or not add("episodes"):
            return None
        return (a[k] * a["episodes"] + b[k] * b["episodes"]) / add("episodes")

    return {"name": name, "path": f"{a['path']} + {b['path']}", "size_mb": None,
            "transitions": add("transitions"), "episodes": add("episodes"), "return_mean": per_episode("return_mean"),
            "score_mean": per_episode("score_mean"), "composed": True}


def _suite_lookup(name: str, action_bounds) -> TransitionDataset | None:
    for d in dataset_dirs():
        f = d / f"{name}.hdf5"
        if f.exists():
            return load_d4rl_hdf5(f, action_bounds)
    if "-medium-expert-" in name:  # composed at load time: medium ∪ expert
        med, exp = name.replace("-medium-expert-", "-medium-"), name.replace("-medium-expert-", "-expert-")
        a, b = _suite_lookup(med, action_bounds), _suite_lookup(exp, action_bounds)
        if a is not None and b is not None:
            return concat_datasets([a, b], name)
    return None


def load_dataset(spec: str | Path, action_bounds=(-1.0, 1.0)) -> TransitionDataset:
    """Load by path (``.hdf5``/``.h5``, ``.npz``, Minari folder), ``minari:ID``, a registered name, or a suite
    name such as ``hopper-medium-replay-v5`` (looked up in :func:`dataset_dirs`; ``*-medium-expert-*`` is
    composed from the medium and expert files)."""
    s = str(spec)
    if s.startswith("minari:"):
        return load_minari(s[len("minari:"):], action_bounds)
    if s in DATASET_REGISTRY:
        return load_dataset(DATASET_REGISTRY[s], action_bounds)
    if "/" not in s and not Path(s).suffix:
        found = _suite_lookup(s, action_bounds)
        if found is not None:
            return found
    p = Path(s)
    if p.is_dir():
        return load_minari(p, action_bounds)
    if p.suffix in (".hdf5", ".h5"):
        return load_d4rl_hdf5(p, action_bounds)
    if p.suffix == ".npz":
        return load_npz(p, action_bounds)
    if not p.exists():
        known = [d["name"] for d in available_datasets()]
        raise FileNotFoundError(f"no dataset {s!r}: not a file or folder, not 'minari:ID', and not a known name "
                                f"(known: {', '.join(known) if known else 'none found'}; see genpolicy datasets)")
    raise DatasetError(s, None, "unknown file type; expected .hdf5, .h5, .npz or a Minari folder")
