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


# The helpers below are pinned with literal values worked out by hand: the optimality tests above
# build their expected costs with these same helpers, so a bug in one of them would cancel out there.

def test_squared_costs_are_squared_euclidean_by_hand():
    points = np.array([[0.0, 0.0], [1.0, 1.0]])
    centres = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    # (0,0)-(3,4): 3^2 + 4^2 = 25 (not the distance 5); (1,1)-(3,4): 2^2 + 3^2 = 13;
    # (1,1)-(0,0): 1 + 1 = 2; (1,1)-(1,0): 0 + 1 = 1.
    expected = np.array([[25.0, 0.0, 1.0],
                         [13.0, 2.0, 1.0]])
    np.testing.assert_array_equal(squared_costs(points, centres), expected)


def test_grid_centres_of_a_2x3_grid_by_hand():
    # Row-major cells, x = column / (cols - 1), y = row / (rows - 1): the corner cells sit on the
    # corners of [0, 1]^2, so the spacing is 1/2 across three columns and 1 across two rows.
    expected = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0],
                         [0.0, 1.0], [0.5, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(grid_centres(2, 3), expected)
    # A single row or column has no spread to divide: its coordinate stays 0.
    np.testing.assert_array_equal(grid_centres(1, 3), [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(grid_centres(3, 1), [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0]])


def test_normalise_points_scales_each_axis_on_its_own():
    # x spans [0, 10], y spans [0, 1]: each axis is min-max scaled by its own span, so
    # (5, 0.25) -> (0.5, 0.25), not (0.5, 0.025) as one shared span of 10 would give.
    points = np.array([[0.0, 0.0], [10.0, 1.0], [5.0, 0.25]])
    np.testing.assert_array_equal(normalise_points(points), [[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]])
    # Shifted and with a constant axis: x in [-4, 4] -> [0, 1]; the constant y maps to 0.5.
    np.testing.assert_array_equal(normalise_points([[-4.0, 7.0], [4.0, 7.0], [0.0, 7.0]]),
                                  [[0.0, 0.5], [1.0, 0.5], [0.5, 0.5]])


@pytest.mark.parametrize("warm_start", [True, False])
def test_points_on_an_anisotropic_2x3_lattice_snap_exactly(warm_start):
    # Six points already on a 2-row x 3-column lattice with different spacings per axis
    # (x = 100 + 10 col, y = -3 + 0.5 row), given in a shuffled order. Per-axis normalisation maps
    # them exactly onto the cell centres (col / 2, row), so the unique optimum is the cell each
    # point came from, with total cost exactly 0; any other bijection costs more than 0.
    lattice_cell = np.array([4, 0, 5, 2, 1, 3])  # the cell of each given point
    row, col = np.divmod(lattice_cell, 3)
    points = np.stack([100.0 + 10.0 * col, -3.0 + 0.5 * row], axis=1)
    grid = snap_to_grid(points, warm_start=warm_start)
    assert (grid.rows, grid.cols) == (2, 3)  # grid_shape(6): cols = ceil(sqrt(6)) = 3, rows = 2
    np.testing.assert_array_equal(grid.cell, lattice_cell)
    np.testing.assert_array_equal(grid.row, [1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(grid.col, [1, 0, 2, 2, 1, 0])
    assert grid.total_cost == 0.0
