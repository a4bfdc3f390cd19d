"""Snapping a 2-D embedding to a grid: an exact linear assignment, warm-started by an auction.

The t-SNE grid (Image2Reverb supplementary Fig. 24) places N points on the cells of a near-square
grid so that the summed squared euclidean distance between each point and its cell centre is
minimal -- a linear assignment problem (LAP). A plain dense solver
(``scipy.optimize.linear_sum_assignment``, shortest augmenting paths, Crouse 2016) spends its
time discovering the column prices (dual variables) of the solution one augmentation at a time.
Here a few phases of Bertsekas' (1988) epsilon-scaling auction, vectorised over bidders (Jacobi
style), first find approximate prices ``p``; the exact solver then runs on the reduced costs
``c_ij + p_j - min_k (c_ik + p_k)``. Subtracting a constant per row and per column changes every
complete assignment's total by the same amount, so the optimum is the same assignment, and the
solver, starting next to the optimal duals, augments along short paths. The result is exact;
only the speed depends on the auction.

A rectangular problem (more cells than points: the padded grid) is made square with dummy rows
of cost zero -- cells taken by a dummy stay empty -- because per-column prices are only
objective-neutral when every column is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# Auction phases, as multiples of the cost scale (cost range / n): coarse prices first, then
# finer ones. Measured on 4,096 clustered points (benchmarks/bench_tsne_grid.py).
AUCTION_PHASES = (20.0, 2.0)


@dataclass(frozen=True)
class GridAssignment:
    """Points snapped to a ``rows x cols`` grid: point ``i`` sits in cell ``(row[i], col[i])``.

    ``cell`` is ``row * cols + col`` (shape ``(n,)``, all distinct); ``total_cost`` the summed
    squared distance between the normalised points and their cell centres (both in [0, 1]^2).
    """

    rows: int
    cols: int
    row: np.ndarray
    col: np.ndarray
    cell: np.ndarray
    total_cost: float


def grid_shape(n: int) -> tuple[int, int]:
    """The near-square grid for ``n`` points: ``cols = ceil(sqrt(n))``, ``rows = ceil(n / cols)``.

    ``rows * cols >= n``; the spare cells (fewer than ``cols``) stay empty.
    """
    if n < 1:
        raise ValueError("a grid needs at least one point")
    cols = math.isqrt(n - 1) + 1
    return -(-n // cols), cols


def grid_centres(rows: int, cols: int) -> np.ndarray:
    """Cell centres ``(rows * cols, 2)`` as ``(x, y)`` in [0, 1]^2, row-major (x = column)."""
    row, col = np.divmod(np.arange(rows * cols), cols)
    return np.stack([col / max(cols - 1, 1), row / max(rows - 1, 1)], axis=1)


def normalise_points(points: np.ndarray) -> np.ndarray:
    """Min-max scale ``(n, 2)`` points to [0, 1] per axis (a constant axis maps to 0.5)."""
    points = np.asarray(points, dtype=np.float64)
    low, span = points.min(axis=0), np.ptp(points, axis=0)
    scaled = (points - low) / np.where(span > 0, span, 1.0)
    return np.where(span > 0, scaled, 0.5)


def squared_costs(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared euclidean distances ``(n, m)`` between ``(n, d)`` points and ``(m, d)`` centres."""
    diff = points[:, None, :] - centres[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def auction_prices(costs: np.ndarray, phases: tuple[float, ...] = AUCTION_PHASES,
                   max_rounds: int | None = None) -> np.ndarray:
    """Approximate column prices ``(n,)`` of a square min-cost LAP by a Jacobi auction.

    Each unassigned row bids for its cheapest column (cost + price), raising that price by its
    margin over the second-best column plus ``eps`` (Bertsekas 1988); a column goes to its
    highest bidder and its previous owner bids again. Phases run with decreasing ``eps`` (given as
    multiples of ``(max - min cost) / n``), each from an empty assignment and the prices so far.
    The prices only steer :func:`solve_assignment`; any prices give the same exact optimum.
    """
    n = costs.shape[0]
    work = costs.astype(np.float32)
    scale = float(np.ptp(work)) / n or 1.0
    prices = np.zeros(n, dtype=np.float32)
    limit = max_rounds if max_rounds is not None else 20 * n
    for factor in phases:
        _auction_phase(work, prices, np.float32(factor * scale), limit)
    return prices.astype(np.float64)


def _auction_phase(costs: np.ndarray, prices: np.ndarray, eps: np.float32, limit: int) -> None:
    n = costs.shape[0]
    owner = np.full(n, -1)
    assigned = np.full(n, -1)
    for _ in range(limit):
        bidders = np.flatnonzero(assigned < 0)
        if bidders.size == 0:
            return
        values = costs[bidders] + prices
        rows = np.arange(bidders.size)
        best = values.argmin(axis=1)
        first = values[rows, best]
        values[rows, best] = np.inf
        raise_by = values.min(axis=1) - first + eps if n > 1 else np.full(bidders.size, eps)
        # The highest bid per column wins: sort by column, then by descending bid.
        order = np.lexsort((-raise_by, best))
        leading = np.r_[True, best[order][1:] != best[order][:-1]]
        winners = order[leading]
        won = best[winners]
        previous = owner[won]
        assigned[previous[previous >= 0]] = -1
        owner[won] = bidders[winners]
        assigned[bidders[winners]] = won
        prices[won] += raise_by[winners]


def solve_assignment(costs: np.ndarray, warm_start: bool = True) -> np.ndarray:
    """Exact min-cost assignment of every row of ``costs`` ``(n, m)``, ``n <= m``, to a column.

    Returns ``columns`` ``(n,)``, distinct, minimising ``costs[arange(n), columns].sum()``.
    With ``warm_start`` the exact solver runs on auction-reduced costs (same optimum, see the
    module docstring); without it, on the costs as given (the plain scipy baseline).
    """
    costs = np.asarray(costs, dtype=np.float64)
    n, m = costs.shape
    if n > m:
        raise ValueError(f"{n} points cannot fill {m} cells one-to-one")
    square = np.zeros((m, m)) if m > n else costs
    if m > n:
        square[:n] = costs
    if warm_start:
        square = square + auction_prices(square)[None, :]
        square -= square.min(axis=1, keepdims=True)
    rows, columns = linear_sum_assignment(square)
    return columns[rows < n][np.argsort(rows[rows < n])]


def snap_to_grid(points: np.ndarray, shape: tuple[int, int] | None = None,
                 warm_start: bool = True) -> GridAssignment:
    """Snap ``(n, 2)`` points (e.g. a t-SNE embedding) one-to-one onto grid cells, optimally.

    The points are min-max normalised to [0, 1]^2 and matched to the cell centres of
    ``shape = (rows, cols)`` (default :func:`grid_shape`) minimising the summed squared
    euclidean distance -- the linear assignment of the t-SNE grid recipe (supplementary Fig. 24).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    rows, cols = shape or grid_shape(len(points))
    costs = squared_costs(normalise_points(points), grid_centres(rows, cols))
    cell = solve_assignment(costs, warm_start=warm_start)
    row, col = np.divmod(cell, cols)
    return GridAssignment(rows=rows, cols=cols, row=row, col=col, cell=cell,
                          total_cost=float(costs[np.arange(len(cell)), cell].sum()))
