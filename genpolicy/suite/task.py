"""A suite's task: a dataset and the environment that evaluates it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["Task", "parse_task"]


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset and the environment that evaluates it (None: no evaluation)."""

    dataset: str
    env: str | None

    @property
    def name(self) -> str:
        return Path(self.dataset).name.removesuffix(".hdf5").removesuffix(".npz")


def parse_task(spec: str) -> Task:
    """``DATASET:ENV`` or ``DATASET`` (no evaluation)."""
    dataset, _, env = spec.partition(":")
    return Task(dataset, env or None)

