"""The AntMaze critic diagnostic's arithmetic (benchmarks/research/antmaze_critic.py), against hand-computed values."""

import importlib.util
from pathlib import Path

import numpy as np

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "research" / "antmaze_critic.py"
_spec = importlib.util.spec_from_file_location("antmaze_critic", _path)
diag = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diag)


def test_monte_carlo_returns_restart_at_each_episode_and_mark_the_ones_that_reach_the_goal():
    # episode 1: three steps ending at a terminal (the goal); episode 2: two steps ending in a timeout
    rewards = np.array([-1.0, -1.0, 0.0, -1.0, -1.0])
    dones = np.array([0, 0, 1, 0, 0], dtype=np.float32)
    ends = np.array([0, 0, 1, 0, 1], dtype=bool)
    mc, reached = diag.mc_returns(rewards, dones, ends, gamma=0.5)
    np.testing.assert_allclose(mc, [-1.0 + 0.5 * -1.0, -1.0, 0.0, -1.5, -1.0])
    assert reached.tolist() == [True, True, True, False, False]


def test_fallen_is_the_torso_height_outside_ant_v5s_healthy_range():
    obs = np.zeros((4, 29), dtype=np.float32)
    obs[:, 2] = [0.19, 0.2, 1.0, 1.01]  # x, y, then z
    assert diag.fallen(obs).tolist() == [True, False, False, True]
