"""Transitions in memory, the one type every dataset file becomes: :class:`TransitionDataset` (D4RL's layout,
validated), the :class:`DatasetError` a bad file raises, and what works on transitions alone (episode ends,
returns, concatenation). File formats and names are :mod:`genpolicy.rl.datasets`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["REQUIRED_KEYS", "DatasetError", "TransitionDataset", "close_last_episode", "concat_datasets",
           "episode_returns"]

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")


class DatasetError(ValueError):
    """A dataset file is missing, malformed or inconsistent."""

    def __init__(self, source: str, key: str | None, problem: str):
        where = f"{source}" + (f" [{key}]" if key else "")
        super().__init__(f"{where}: {problem}")
        self.source, self.key, self.problem = source, key, problem


@dataclass
class TransitionDataset:
    """Flat transitions in D4RL layout (numpy, float32 except flags).

    Attributes:
        observations, actions, rewards, next_observations: ``(N, obs)``, ``(N, act)``, ``(N,)``, ``(N, obs)``.
        terminals: true environment termination (no bootstrap), ``(N,)`` bool.
        timeouts: episode cut by a time limit (bootstrap allowed, episode ends), ``(N,)`` bool.
        source: where it came from (for messages). metadata: free-form (env id, data card, ...).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    source: str = "<memory>"
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)

    @classmethod
    def from_stream(cls, steps: list[tuple], source: str) -> "TransitionDataset":
        """From a collector's stream of ``(observation, action, reward, next_observation, terminal, timeout)``
        steps, whose last step ends its episode (a timeout unless terminal)."""
        obs, act, rew, nxt, term, tout = (np.asarray(col, dtype=bool if i >= 4 else np.float32)
                                          for i, col in enumerate(zip(*steps)))
        tout[-1] = not term[-1]
        return cls(obs, act, rew, nxt, term, tout, source=source)

    def sha256(self) -> str:
        """Digest of the transitions (every array, in order): what a resumed run checks it is given again."""
        import hashlib

        h = hashlib.sha256()
        for key in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
            h.update(np.ascontiguousarray(getattr(self, key)).tobytes())
        return h.hexdigest()

    def head(self, n: int) -> "TransitionDataset":
        """The first ``n`` transitions; an episode cut at row ``n`` ends there with a timeout."""
        sl = slice(0, n)
        return TransitionDataset(self.observations[sl], self.actions[sl], self.rewards[sl], self.next_observations[sl],
                                 self.terminals[sl], close_last_episode(self.terminals[sl], self.timeouts[sl]),
                                 self.source, self.metadata)

    def hold_out(self, n: int, seed: int = 0) -> tuple["TransitionDataset", "TransitionDataset"]:
        """``(rest, held)``: whole episodes drawn at random (``seed``) until they hold ``n`` transitions; ``held`` their
        first ``n`` rows, ``rest`` every other episode, in order and whole (so the data keeps its episodes)."""
        ends = np.flatnonzero(self.episode_ends)
        starts = np.r_[0, ends[:-1] + 1]
        if not 0 < n < len(self):
            raise ValueError(f"hold_out: {n} transitions of {len(self)}: hold out at least one and leave some")
        chosen, rows = [], 0
        for e in np.random.default_rng(seed).permutation(len(starts)):
            chosen.append(e)
            rows += ends[e] - starts[e] + 1
            if rows >= n:
                break
        mask = np.zeros(len(self), bool)
        for e in chosen:
            mask[starts[e]:ends[e] + 1] = True
        if mask.all():
            raise ValueError(f"hold_out: {n} transitions take every episode; hold out fewer")
        held_rows = np.flatnonzero(mask)[:n]

        def take(rows):
            return TransitionDataset(self.observations[rows], self.actions[rows], self.rewards[rows],
                                     self.next_observations[rows], self.terminals[rows], self.timeouts[rows],
                                     self.source, self.metadata)

        rest = take(np.flatnonzero(~mask))
        rest.timeouts = close_last_episode(rest.terminals, rest.timeouts)
        return rest, take(held_rows)

    @property
    def episode_ends(self) -> np.ndarray:
        """Boolean ``(N,)``: the transition ends an episode (terminal, timeout, or the last row)."""
        ends = self.terminals | self.timeouts
        if len(ends):
            ends = ends.copy()
            ends[-1] = True
        return ends

    def validate(self, action_bounds: tuple[float, float] | None = (-1.0, 1.0), atol: float = 1e-4) -> None:
        """Check shapes, lengths, finiteness and action bounds; raise :class:`DatasetError` on the first problem."""
        n = len(self.rewards)
        if n == 0:
            raise DatasetError(self.source, "rewards", "dataset has no transitions")
        for key in ("observations", "actions", "next_observations", "rewards", "terminals", "timeouts"):
            arr = getattr(self, key)
            if len(arr) != n:
                raise DatasetError(self.source, key, f"has {len(arr)} rows but rewards has {n}")
        for key, nd in (("observations", 2), ("actions", 2), ("next_observations", 2), ("rewards", 1)):
            if getattr(self, key).ndim != nd:
                raise DatasetError(self.source, key, f"expected {nd} dimensions, got shape {getattr(self, key).shape}")
        if self.observations.shape[1:] != self.next_observations.shape[1:]:
            raise DatasetError(self.source, "next_observations",
                               f"shape {self.next_observations.shape} does not match observations {self.observations.shape}")
        for key in ("observations", "actions", "next_observations", "rewards"):
            arr = getattr(self, key)
            bad = ~np.isfinite(arr)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise DatasetError(self.source, key, f"{int(bad.sum())} non-finite value(s), first at row {row}")
        if action_bounds is not None:
            lo, hi = action_bounds
            amin, amax = float(self.actions.min()), float(self.actions.max())
            if amin < lo - atol or amax > hi + atol:
                raise DatasetError(self.source, "actions",
                                   f"values in [{amin:.4g}, {amax:.4g}] exceed the action bounds [{lo}, {hi}]")


def close_last_episode(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """A copy of ``timeouts`` whose last row is set unless it is already a terminal or a timeout, so that an
    episode cut by the end of the data ends there (bootstrapping through it stays allowed)."""
    out = np.array(timeouts, dtype=bool, copy=True)
    if len(out) and not (terminals[-1] or out[-1]):
        out[-1] = True
    return out


def concat_datasets(parts: list[TransitionDataset], source: str) -> TransitionDataset:
    """Concatenate datasets (each keeps its episode boundaries)."""
    cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
    timeouts = np.concatenate([close_last_episode(p.terminals, p.timeouts) for p in parts])
    return TransitionDataset(cat("observations"), cat("actions"), cat("rewards"), cat("next_observations"),
                             cat("terminals"), timeouts, source, {"parts": [p.source for p in parts]})


def episode_returns(ds: TransitionDataset) -> np.ndarray:
    """Undiscounted return of each episode, in file order."""
    ends = ds.episode_ends
    ids = np.concatenate([[0], np.cumsum(ends)[:-1]])
    return np.bincount(ids, weights=ds.rewards.astype(np.float64))
