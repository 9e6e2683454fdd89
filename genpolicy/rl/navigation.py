"""Navigation tasks by name: D4RL's single-task maze2d and AntMaze conventions on Gymnasium-Robotics' PointMaze and
AntMaze (``pip install 'genpolicy[nav]'``), and the open arena the AntMaze datasets' goal-reaching ant is trained in.

    genpolicy/pointmaze-{umaze,medium,large}-v0    point mass; observation (x, y, vx, vy); 300 / 600 / 800 steps
    genpolicy/antmaze-{umaze,medium,large}-v0      Ant; observation (x, y, the ant's 27-D state); 700 / 1000 / 1000
    genpolicy/AntGoal-v0                           Ant in an open 7x7-cell arena, a goal relative to it, dense reward
    genpolicy/AntGoal-v1                           the same, Ant-v5's reward weights, the goal shown as a direction
    genpolicy/AntGoal-v2                           Ant-v5's weights, 10 x the speed toward goals drawn within 10 units

The single-task variants follow D4RL: the agent's own state as observation (Gymnasium-Robotics' dict flattened as
``[achieved_goal (x, y), observation]`` for the ant, its ``observation`` for the point, which already starts with
x, y), a fixed start cell and a fixed evaluation goal (the ``G`` cell of :data:`~genpolicy.rl.mazes.LAYOUTS`, its
centre exactly), reward 1 at the step the agent comes within 0.5 of the goal and the episode ends there (so a
return is 0 or 1 and the score is the success rate x 100), episode lengths as D4RL's. The layouts are D4RL's
mazes (cells 1 apart for the point, 4 for the ant, as in D4RL); the ant's 27-D state leaves out the contact forces
(``include_cfrc_ext_in_observation=False``), as D4RL's 29-D observation does.

``AntGoal-v0`` trains the AntMaze datasets' low-level controller (D4RL's recipe: a goal-reaching ant, then driven
through the maze by waypoints): observation ``[the ant's 27-D state, goal - (x, y)]`` (29-D), reward the progress
toward the goal per second minus 0.1 |a|^2 plus 0.3 while upright, +5 and a new goal on arrival (Gymnasium-Robotics'
``reset_target``), the episode ended when the torso leaves 0.2 <= z <= 1.0 (fallen or flipped). ``AntGoal-v1``: the
same arena with Gymnasium Ant-v5's weights (1.0 while upright, 0.5 |a|^2) and D4RL's goal input (the goal's direction
at distance 10, :data:`CONTROLLER_GOAL_NORM`). ``AntGoal-v2``: the recipe of Minari's D4RL AntMaze controller
(``GoalReachAnt``): Ant-v5's weights with the speed toward the goal counted 10 times, each goal drawn within 10 units
of the ant (uniform direction and radius, kept 1 unit off the walls), so that training goals are as near as the
maze's waypoints (4-5.7 units); a goal is reached within 0.5 and replaced by a new near one, with no bonus.
"""

from __future__ import annotations

import numpy as np

from .mazes import LAYOUTS, Maze

__all__ = ["register", "robotics_gym", "MAZE_TASKS", "EPISODE_STEPS", "STARTS", "SCALES", "SUCCESS_RADIUS", "task_maze",
           "robotics_map", "CONTROLLER_GOAL_NORM", "shown_goal", "ANT_HEALTHY_Z", "ant_fallen"]

EPISODE_STEPS = {"point": {"umaze": 300, "medium": 600, "large": 800}, "ant": {"umaze": 700, "medium": 1000,
                                                                               "large": 1000}}
STARTS = {"umaze": (3, 1), "medium": (1, 1), "large": (1, 1)}  # D4RL's reset cells (the goal: the G cell)
SCALES = {"point": 1.0, "ant": 4.0}
SUCCESS_RADIUS = 0.5
MAZE_TASKS = {f"{prefix}-{maze}": (kind, maze) for kind, prefix in (("point", "pointmaze"), ("ant", "antmaze"))
              for maze in LAYOUTS}
ROBOTICS_IDS = {"point": "PointMaze_UMaze-v3", "ant": "AntMaze_UMaze-v5"}  # maze_map replaces the U maze
OPEN_ARENA = ["#########"] + ["#" + "O" * 7 + "#"] * 7 + ["#########"]


def task_maze(name: str) -> Maze:
    """The :class:`~genpolicy.rl.mazes.Maze` of a task name (``antmaze-medium``), scaled as the task's agent."""
    kind, maze = MAZE_TASKS[name]
    return Maze.named(maze, SCALES[kind])


def robotics_map(rows: list[str], start=None, goal=None) -> list[list]:
    """A layout as Gymnasium-Robotics' ``maze_map`` (1 wall, 0 free, ``"r"`` the reset cell, ``"g"`` the goal)."""
    out = [[1 if ch == "#" else 0 for ch in row] for row in rows]
    if start is not None:
        out[start[0]][start[1]] = "r"
    if goal is not None:
        out[goal[0]][goal[1]] = "g"
    return out


def robotics_gym():
    import contextlib
    import io

    try:
        import gymnasium as gym

        with contextlib.redirect_stderr(io.StringIO()):  # its import prints a notice about Adroit envs (not used)
            import gymnasium_robotics
    except ImportError as e:
        raise ImportError("maze tasks need Gymnasium-Robotics: pip install 'genpolicy[nav]'") from e
    gym.register_envs(gymnasium_robotics)
    return gym


class _Base:
    """Shared by the envs below: the Gymnasium-Robotics env inside and gymnasium.Env's plumbing."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def render(self):
        return self.inner.render()

    def close(self):
        self.inner.close()


def _env_classes():
    gym = robotics_gym()
    spaces = gym.spaces

    class MazeTask(_Base, gym.Env):
        """One D4RL-style single-task maze (see the module)."""

        def __init__(self, task: str, render_mode: str | None = None):
            kind, maze = MAZE_TASKS[task]
            self.kind, self.maze = kind, Maze.named(maze, SCALES[kind])
            kw = {"include_cfrc_ext_in_observation": False} if kind == "ant" else {}
            self.inner = gym.make(ROBOTICS_IDS[kind], maze_map=robotics_map(LAYOUTS[maze], STARTS[maze],
                                                                            self.maze.goal),
                                  continuing_task=True, reset_target=False, render_mode=render_mode,
                                  max_episode_steps=10**9, **kw).unwrapped
            self.goal_xy = self.maze.xy(self.maze.goal)
            dim = 4 if kind == "point" else 29
            self.observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
            self.action_space = self.inner.action_space
            self.render_mode = render_mode

        def _obs(self, o) -> np.ndarray:
            if self.kind == "point":
                return o["observation"].astype(np.float32)
            return np.concatenate([o["achieved_goal"], o["observation"]]).astype(np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            o, info = self.inner.reset(seed=seed, options=options)
            return self._obs(o), info

        def step(self, action):
            o, _, _, _, info = self.inner.step(action)
            success = bool(np.linalg.norm(o["achieved_goal"] - self.goal_xy) <= SUCCESS_RADIUS)
            info = dict(info, success=success)
            return self._obs(o), float(success), success, False, info

    class AntGoal(_Base, gym.Env):
        """The goal-reaching ant's training arena (see the module): ``upright`` per step while upright, ``control``
        times |a|^2 subtracted, ``progress`` times the speed toward the goal added, ``goal_norm`` > 0: the goal
        shown as its direction at that distance; ``near`` > 0: each goal drawn within ``near`` of the ant (uniform
        direction and radius, inside the arena) instead of in a uniformly drawn cell, reached within
        :data:`SUCCESS_RADIUS` and replaced without a bonus."""

        def __init__(self, render_mode: str | None = None, upright: float = 0.3, control: float = 0.1,
                     goal_norm: float = 0.0, progress: float = 1.0, near: float = 0.0):
            self.upright, self.control, self.goal_norm = upright, control, goal_norm
            self.progress, self.near = progress, near
            self.inner = gym.make(ROBOTICS_IDS["ant"], maze_map=robotics_map(OPEN_ARENA), continuing_task=True,
                                  reset_target=near <= 0, include_cfrc_ext_in_observation=False,
                                  render_mode=render_mode, max_episode_steps=10**9).unwrapped
            self.observation_space = spaces.Box(-np.inf, np.inf, (29,), np.float32)
            self.action_space = self.inner.action_space
            self.render_mode = render_mode
            self.dt = self.inner.ant_env.dt
            self._half = (len(OPEN_ARENA) - 2) / 2 * SCALES["ant"] - 1.0  # goals keep 1 unit off the walls

        def _obs(self, o) -> np.ndarray:
            return np.concatenate([o["observation"], shown_goal(self._goal - o["achieved_goal"],
                                                                self.goal_norm)]).astype(np.float32)

        def _near_goal(self, xy: np.ndarray) -> np.ndarray:
            angle, radius = self.np_random.uniform(0, 2 * np.pi), self.np_random.uniform(0, self.near)
            goal = np.clip(xy + radius * np.array([np.cos(angle), np.sin(angle)]), -self._half, self._half)
            self.inner.goal = goal
            self.inner.update_target_site_pos()
            return goal

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            o, info = self.inner.reset(seed=seed, options=options)
            self._goal = self._near_goal(o["achieved_goal"]) if self.near > 0 else o["desired_goal"].copy()
            self._dist = float(np.linalg.norm(self._goal - o["achieved_goal"]))
            return self._obs(o), info

        def step(self, action):
            o, _, _, _, info = self.inner.step(action)
            action = np.asarray(action, dtype=np.float64)
            reward = self.upright - self.control * float(action @ action)
            dist = float(np.linalg.norm(self._goal - o["achieved_goal"]))
            redrawn = self.near <= 0 and not np.array_equal(o["desired_goal"], self._goal)
            if redrawn:  # Gymnasium-Robotics drew a new goal on arrival: a bonus instead of the progress
                reward += 5.0
                self._goal = o["desired_goal"].copy()
                dist = float(np.linalg.norm(self._goal - o["achieved_goal"]))
            else:
                reward += self.progress * (self._dist - dist) / self.dt
            if self.near > 0 and dist <= SUCCESS_RADIUS:  # reached: a new goal near the ant
                self._goal = self._near_goal(o["achieved_goal"])
                dist = float(np.linalg.norm(self._goal - o["achieved_goal"]))
            self._dist = dist
            return self._obs(o), reward, ant_fallen(self.inner.ant_env), False, dict(info, goal_distance=dist)

    return MazeTask, AntGoal


#: how each controller arena shows the goal (0: the vector to it; d > 0: its direction at distance d), so that a
#: driver shows waypoints to a controller as it was trained
CONTROLLER_GOAL_NORM = {"genpolicy/AntGoal-v0": 0.0, "genpolicy/AntGoal-v1": 10.0, "genpolicy/AntGoal-v2": 0.0}


#: the ant's torso height range Ant-v5 calls healthy; outside it the ant has fallen or flipped
ANT_HEALTHY_Z = (0.2, 1.0)


def ant_fallen(ant_env) -> bool:
    """Whether a Gymnasium-Robotics ant has fallen or flipped: its torso outside :data:`ANT_HEALTHY_Z`, which ends a
    controller's training episode, and an AntMaze dataset's episode ``FALLEN_STEPS`` steps later
    (:mod:`genpolicy.datagen.antmaze`)."""
    low, high = ANT_HEALTHY_Z
    return not low <= float(ant_env.data.qpos[2]) <= high


def shown_goal(rel: np.ndarray, goal_norm: float) -> np.ndarray:
    """The goal vector ``rel`` as a controller sees it: itself, or (``goal_norm`` > 0) its direction at distance
    ``goal_norm``, D4RL's "in-distribution" input for its ant controller."""
    if goal_norm <= 0:
        return rel
    return rel / max(float(np.linalg.norm(rel)), 1e-6) * goal_norm


_REGISTERED = False


def register() -> None:
    """Register the ``genpolicy/`` navigation ids with Gymnasium (idempotent; ``make_env`` calls it)."""
    global _REGISTERED
    if _REGISTERED:
        return
    gym = robotics_gym()
    maze_task, ant_goal = _env_classes()
    for name, (kind, maze) in MAZE_TASKS.items():
        gym.register(f"genpolicy/{name}-v0", entry_point=maze_task, kwargs={"task": name},
                     max_episode_steps=EPISODE_STEPS[kind][maze])
    gym.register("genpolicy/AntGoal-v0", entry_point=ant_goal, max_episode_steps=1000)
    gym.register("genpolicy/AntGoal-v1", entry_point=ant_goal, max_episode_steps=1000,
                 kwargs={"upright": 1.0, "control": 0.5, "goal_norm": CONTROLLER_GOAL_NORM["genpolicy/AntGoal-v1"]})
    gym.register("genpolicy/AntGoal-v2", entry_point=ant_goal, max_episode_steps=1000,
                 kwargs={"upright": 1.0, "control": 0.5, "progress": 10.0, "near": 10.0})
    _REGISTERED = True
