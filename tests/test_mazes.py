"""The maze grids and their planner: shortest paths equal breadth-first distances between every pair of reachable
cells, and the success metric is exact on scripted episodes."""

import itertools

import numpy as np
import pytest

from genpolicy.rl.mazes import LAYOUTS, Maze, episode_success, success_rate


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_planner_reaches_every_reachable_cell_from_every_other_by_a_shortest_path(name):
    maze = Maze.named(name)
    cells = maze.cells
    assert maze.goal in cells and len(set(map(len, LAYOUTS[name]))) == 1
    for a in cells:
        dist = maze.distances(a)
        assert set(dist) == set(cells)  # D4RL's mazes are connected: every free cell is reachable from every other
        for b in cells:
            p = maze.path(a, b)
            assert p[0] == a and p[-1] == b and len(p) - 1 == dist[b]  # a shortest path, checked against BFS
            assert all(abs(p[i][0] - p[i + 1][0]) + abs(p[i][1] - p[i + 1][1]) == 1 for i in range(len(p) - 1))
            assert all(maze.free[c] for c in p)  # through free cells only
            if a != b:
                assert maze.distances(maze.next_waypoint(a, b))[b] == dist[b] - 1  # each waypoint one step closer


def test_distances_against_hand_counted_ones_and_walls_refused():
    maze = Maze.named("umaze")  # #GOO# / ###O# / #OOO#: from the goal (1,1) to (3,1) is 6 steps around the bend
    assert maze.distances((1, 1))[(3, 1)] == 6 and maze.distances((1, 1))[(1, 3)] == 2
    with pytest.raises(ValueError, match=r"cell \(0, 0\) is a wall"):
        maze.distances((0, 0))
    with pytest.raises(ValueError, match="unknown maze 'huge'"):
        Maze.named("huge")
    closed = Maze(np.array([[True, False, True]]), (0, 0))
    with pytest.raises(ValueError, match="cannot be reached"):
        closed.path((0, 2), (0, 0))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_cell_centres_and_points_map_both_ways(name):
    maze = Maze.named(name, scale=4.0)
    for cell in maze.cells:
        xy = maze.xy(cell)
        assert maze.cell_of(xy) == cell and maze.cell_of(xy + np.array([1.9, -1.9])) == cell
    xs = np.array([maze.xy(c) for c in itertools.product(range(maze.free.shape[0]), range(maze.free.shape[1]))])
    np.testing.assert_allclose(xs.mean(0), 0.0, atol=1e-12)  # centred on the origin


def test_the_success_metric_is_exact_on_scripted_episodes():
    k = 37
    reached = np.zeros(700)
    reached[k:] = 1.0  # at the goal from step k on (sparse reward 1 there)
    never = np.zeros(700)
    assert episode_success(reached) == (True, k) and episode_success(never) == (False, None)
    assert success_rate([reached, never, never, reached]) == 50.0 and success_rate([never]) == 0.0
    assert success_rate([reached] * 3) == 100.0
    with pytest.raises(ValueError, match="at least one episode"):
        success_rate([])
