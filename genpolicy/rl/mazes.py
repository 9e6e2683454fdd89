"""Maze layouts and the grid planner the navigation datasets are driven by (the maze2d / AntMaze family).

The three layouts are D4RL's umaze, medium and large mazes (``#`` wall, ``O`` free, ``G`` the single-task
evaluation goal), which Gymnasium-Robotics' PointMaze/AntMaze and OGBench's medium/large antmazes share. A cell is
``(row, col)``; cell centres sit ``scale`` apart in the plane, the maze centred on the origin (as Gymnasium-Robotics
places them). :class:`Maze` gives breadth-first distances and shortest paths between free cells, and the next
waypoint toward a goal: what a waypoint controller (a point mass, or an ant's goal-reaching policy) follows.
The score of a navigation task is its success rate × 100 (D4RL's convention): :func:`success_rate`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["LAYOUTS", "Maze", "episode_success", "success_rate"]

LAYOUTS = {
    "umaze": ["#####",
              "#GOO#",
              "###O#",
              "#OOO#",
              "#####"],
    "medium": ["########",
               "#OO##OO#",
               "#OO#OOO#",
               "##OOO###",
               "#OO#OOO#",
               "#O#OO#O#",
               "#OOO#OG#",
               "########"],
    "large": ["############",
              "#OOOO#OOOOO#",
              "#O##O#O#O#O#",
              "#OOOOOO#OOO#",
              "#O####O###O#",
              "#OO#O#OOOOO#",
              "##O#O#O#O###",
              "#OO#OOO#OGO#",
              "############"],
}

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass
class Maze:
    """A maze grid: ``free[r, c]`` is True for a cell an agent may occupy; ``goal`` the evaluation goal cell."""

    free: np.ndarray
    goal: tuple[int, int]
    scale: float = 1.0

    @classmethod
    def named(cls, name: str, scale: float = 1.0) -> "Maze":
        """One of :data:`LAYOUTS` (a one-line error naming the known ones otherwise)."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown maze {name!r}; known: {sorted(LAYOUTS)}")
        rows = LAYOUTS[name]
        free = np.array([[ch != "#" for ch in row] for row in rows])
        goal = next((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "G")
        return cls(free, goal, scale)

    @property
    def cells(self) -> list[tuple[int, int]]:
        return [(int(r), int(c)) for r, c in zip(*np.nonzero(self.free))]

    def neighbours(self, cell: tuple[int, int]) -> list[tuple[int, int]]:
        r, c = cell
        return [(r + dr, c + dc) for dr, dc in _MOVES
                if 0 <= r + dr < self.free.shape[0] and 0 <= c + dc < self.free.shape[1] and self.free[r + dr, c + dc]]

    def distances(self, start: tuple[int, int]) -> dict[tuple[int, int], int]:
        """Breadth-first steps from ``start`` to every cell reachable from it."""
        self._check(start)
        dist, todo = {start: 0}, deque([start])
        while todo:
            cell = todo.popleft()
            for n in self.neighbours(cell):
                if n not in dist:
                    dist[n] = dist[cell] + 1
                    todo.append(n)
        return dist

    def path(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """A shortest path of free cells from ``start`` to ``goal`` (both included), each next to the last; an error
        when ``goal`` cannot be reached."""
        self._check(start)
        dist = self.distances(goal)  # walk downhill from start on the distances to the goal
        if start not in dist:
            raise ValueError(f"cell {goal} cannot be reached from {start}")
        out = [start]
        while out[-1] != goal:
            out.append(min(self.neighbours(out[-1]), key=lambda n: dist.get(n, np.inf)))
        return out

    def next_waypoint(self, cell: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
        """The cell to head for next on a shortest path from ``cell`` to ``goal`` (``goal`` itself when there)."""
        p = self.path(cell, goal)
        return p[1] if len(p) > 1 else goal

    def xy(self, cell: tuple[int, int]) -> np.ndarray:
        """The centre of ``cell`` in the plane: x grows with the column, y with the row upward, origin at the
        maze's centre."""
        rows, cols = self.free.shape
        r, c = cell
        return np.array([(c - (cols - 1) / 2) * self.scale, ((rows - 1) / 2 - r) * self.scale])

    def cell_of(self, xy) -> tuple[int, int]:
        """The cell whose square contains the point ``xy`` (the inverse of :meth:`xy` on cell centres)."""
        rows, cols = self.free.shape
        x, y = float(xy[0]), float(xy[1])
        return int(round((rows - 1) / 2 - y / self.scale)), int(round(x / self.scale + (cols - 1) / 2))

    def contains(self, cell) -> bool:
        """Whether ``cell`` is a free cell of the maze (False for a wall or a cell outside the grid)."""
        r, c = cell
        return 0 <= r < self.free.shape[0] and 0 <= c < self.free.shape[1] and bool(self.free[r, c])

    def _check(self, cell) -> None:
        if not self.contains(cell):
            raise ValueError(f"cell {cell} is a wall or outside the maze")


def episode_success(rewards: np.ndarray) -> tuple[bool, int | None]:
    """Whether a sparse-reward episode reached its goal (a reward > 0 at some step, as D4RL's AntMaze and maze2d
    pay 1 there) and the first step it did (None: never)."""
    hit = np.flatnonzero(np.asarray(rewards) > 0)
    return (True, int(hit[0])) if len(hit) else (False, None)


def success_rate(episodes: list[np.ndarray]) -> float:
    """The task's score: 100 × the fraction of episodes (each a reward sequence) that reached the goal."""
    if not episodes:
        raise ValueError("success_rate needs at least one episode")
    return 100.0 * float(np.mean([episode_success(r)[0] for r in episodes]))
