"""Grid snapping: a bijection onto cells whose total cost is the brute-force optimum."""

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from i2r.analysis.assignment import (grid_centres, grid_shape, normalise_points, snap_to_grid,
                                     solve_assignment, squared_costs)


def brute_force_optimum(costs):
    n, m = costs.shape
    return min(costs[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_snap_is_optimal_bijection_on_padded_grids(n, seed):
    rng = np.random.default_rng(seed)
    # Clustered points (ties in one axis are common after t-SNE of near-duplicate rooms).
    points = rng.normal(size=(n, 2)) * np.array([1.0, 0.1]) + rng.integers(0, 2, size=(n, 1))
    grid = snap_to_grid(points)
    rows, cols = grid.rows, grid.cols
    assert rows * cols >= n
    assert len(set(grid.cell.tolist())) == n
    assert np.all((grid.cell >= 0) & (grid.cell < rows * cols))
    np.testing.assert_array_equal(grid.cell, grid.row * cols + grid.col)
    costs = squared_costs(normalise_points(points), grid_centres(rows, cols))
    assert grid.total_cost == pytest.approx(brute_force_optimum(costs), abs=1e-12)


@pytest.mark.parametrize("shape", [(2, 2), (6, 6), (7, 7)])
def test_solver_matches_brute_force_on_random_rectangles(shape):
    n, m = shape
    rng = np.random.default_rng(n * 10 + m)
    costs = rng.random((n, m)) ** 3
    columns = solve_assignment(costs)
    assert sorted(set(columns.tolist())) == sorted(columns.tolist())
    assert costs[np.arange(n), columns].sum() == pytest.approx(brute_force_optimum(costs), abs=1e-12)


def test_rectangular_costs_with_padding_match_brute_force():
    rng = np.random.default_rng(5)
    costs = rng.random((5, 7))
    columns = solve_assignment(costs)
    assert len(set(columns.tolist())) == 5
    assert costs[np.arange(5), columns].sum() == pytest.approx(brute_force_optimum(costs), abs=1e-12)


def test_warm_start_equals_plain_solver_on_larger_clustered_grid():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 2)) * 3
    points = centres[rng.integers(0, 5, 300)] + rng.normal(size=(300, 2))
    warm = snap_to_grid(points)
    rows, cols = grid_shape(300)
    costs = squared_costs(normalise_points(points), grid_centres(rows, cols))
    r, c = linear_sum_assignment(costs)
    assert warm.total_cost == pytest.approx(costs[r, c].sum(), rel=1e-12)
    assert len(set(warm.cell.tolist())) == 300


def test_grid_shape_is_near_square_and_large_enough():
    for n in range(1, 200):
        rows, cols = grid_shape(n)
        assert rows * cols >= n
        assert rows * cols - n < cols
        assert cols - rows in (0, 1)
    assert grid_shape(4096) == (64, 64)
