"""Offline data in memory: transitions as tensors on one device, minibatches, observation normalization.

    ds = load_dataset("hopper-medium-replay-v5")                 # genpolicy.rl.datasets
    data = OfflineData(ds, reward_scale="locomotion", normalize_obs=True, device="cpu")
    batch = data.sample(256)                                     # Batch of tensors on data.device
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .datasets import TransitionDataset, episode_returns

__all__ = ["Batch", "OfflineData", "ObsNormalizer", "RewardScale", "REWARD_SCALES"]

REWARD_SCALES = ("locomotion", "locomotion0", "antmaze", "none")
#: locomotion: r * 1000 / (max return - min return) (IQL); locomotion0: the same with 0 counted in the return range,
#: r * 1000 / (max return - min(min return, 0)); antmaze: r - 1; none
RewardScale = Literal[REWARD_SCALES]
#: ``locomotion`` warns when the data's return span is under this fraction of its largest |return|: every episode
#: came from one policy and none failed (our halfcheetah-medium: 3748..4264), so rewards are scaled 5-8x more than on
#: our other locomotion files (whose episodes include failures), and a beta taken from a paper acts that much stronger
NARROW_SPAN = 0.5


@dataclass
class ObsNormalizer:
    """``(obs - mean) / std``; stored with a policy so deployment normalizes raw observations the same way."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, obs: np.ndarray, eps: float = 1e-3) -> "ObsNormalizer":
        return cls(torch.as_tensor(obs.mean(0), dtype=torch.float32), torch.as_tensor(obs.std(0) + eps, dtype=torch.float32))

    @classmethod
    def identity(cls, dim: int) -> "ObsNormalizer":
        return cls(torch.zeros(dim), torch.ones(dim))

    def __call__(self, obs: Tensor) -> Tensor:
        return (obs - self.mean.to(obs.device)) / self.std.to(obs.device)

    def state_dict(self) -> dict:
        return {"mean": self.mean.cpu(), "std": self.std.cpu()}

    @classmethod
    def from_state_dict(cls, d: dict) -> "ObsNormalizer":
        return cls(d["mean"].float(), d["std"].float())


@dataclass
class Batch:
    """A batch of transitions (tensors on the data's device)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    dones: Tensor  # 1.0 where the transition is a true terminal (no bootstrap)
    idx: Tensor | None = None  # the rows' indices in the data (for per-row tables such as SfBC's returns)


class OfflineData:
    """Transitions as tensors on one device, with reward scaling and optional observation normalization.

    Args:
        ds: the transitions.
        reward_scale: ``"locomotion"`` (r * 1000 / (max_return - min_return), IQL), ``"locomotion0"`` (the same
            with 0 in the range: r * 1000 / (max_return - min(min_return, 0)); robust to data whose episodes all
            succeed), ``"antmaze"`` (r - 1), or ``"none"``.
        normalize_obs: fit an :class:`ObsNormalizer` and apply it to observations.
        device: where batches live.
    """

    def __init__(self, ds: TransitionDataset, reward_scale: RewardScale = "none", normalize_obs: bool = False,
                 device: str | torch.device = "cpu"):
        if reward_scale not in REWARD_SCALES:
            raise ValueError(f"unknown reward_scale {reward_scale!r}; expected one of {list(REWARD_SCALES)}")
        self.source = ds.source
        #: what identifies the data a run was trained on (checked when a run is resumed)
        self.fingerprint = {"source": str(ds.source), "sha256": ds.sha256(), "rows": len(ds),
                            "obs_dim": int(ds.observations.shape[1]), "act_dim": int(ds.actions.shape[1]),
                            "reward_scale": reward_scale, "normalize_obs": bool(normalize_obs)}
        self.device = torch.device(device)
        self.obs_dim, self.act_dim = ds.observations.shape[1], ds.actions.shape[1]
        rewards = ds.rewards.astype(np.float32)
        returns = episode_returns(ds)
        self.returns = returns
        #: what a run on this data should be read with (recorded in its summary's ``warnings``)
        self.notes: list[str] = []
        if reward_scale in ("locomotion", "locomotion0"):
            hi, lo = float(returns.max()), float(returns.min())
            span0 = hi - min(lo, 0.0)  # locomotion0's range
            span = hi - lo if reward_scale == "locomotion" else span0
            rewards = rewards * (1000.0 / span) if span > 0 else rewards
            if reward_scale == "locomotion" and 0 < span < NARROW_SPAN * float(np.abs(returns).max()):
                ratio = span0 / span
                self.notes.append(f"the episodes' returns span only {lo:.0f}..{hi:.0f}: "
                                  f"reward_scale=locomotion multiplies rewards by {1000 / span:.3g}, {ratio:.3g}x "
                                  f"what reward_scale=locomotion0 (0 counted in the range) does, so a beta tuned on "
                                  f"data with failed episodes acts about {ratio:.3g}x stronger here")
                warnings.warn(f"{ds.source}: {self.notes[-1]}", stacklevel=2)
        elif reward_scale == "antmaze":
            rewards = rewards - 1.0
        self.normalizer = ObsNormalizer.fit(ds.observations) if normalize_obs else ObsNormalizer.identity(self.obs_dim)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.obs = self.normalizer(t(ds.observations))
        self.next_obs = self.normalizer(t(ds.next_observations))
        self.actions = t(ds.actions)
        self.rewards = t(rewards)
        self.dones = t(ds.terminals.astype(np.float32))
        #: 1.0 where an episode ends (terminal or timeout, and the last row): trajectory order for returns
        self.episode_ends = t((ds.terminals | ds.timeouts).astype(np.float32))
        self.episode_ends[-1] = 1.0
        self.size = len(ds)
        #: transitions held out of training (``heldout_transitions``): normalized ``obs`` and ``actions``, or None
        self.heldout: dict | None = None

    def __len__(self) -> int:
        return self.size

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform minibatch, indices drawn on the data's device (no host copies)."""
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        rows = lambda t: t.index_select(0, idx)  # noqa: E731  (the gather of t[idx] without advanced indexing's setup)
        return Batch(rows(self.obs), rows(self.actions), rows(self.rewards), rows(self.next_obs), rows(self.dones), idx)

    def head(self, n: int) -> "OfflineData":
        """The first ``n`` rows as an OfflineData sharing this one's settings (the last row ends its episode)."""
        import copy

        view = copy.copy(self)
        n = min(n, self.size)
        for k in ("obs", "next_obs", "actions", "rewards", "dones"):
            setattr(view, k, getattr(self, k)[:n])
        view.episode_ends = self.episode_ends[:n].clone()
        view.episode_ends[-1] = 1.0
        view.size = n
        return view

    def next_row(self) -> Tensor:
        """For each row i, the row whose observation is row i's next observation: i + 1 when the data continues the
        same episode there (``next_obs[i] == obs[i + 1]``), else -1 (episode ends, shuffled data)."""
        nxt = torch.full((self.size,), -1, dtype=torch.long, device=self.device)
        if self.size > 1:
            same = (self.next_obs[:-1] == self.obs[1:]).all(dim=1)
            nxt[:-1] = torch.where(same, torch.arange(1, self.size, device=self.device), -1)
        return nxt
