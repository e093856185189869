"""Lower bound on the min–max contiguous partition from a set-partitioning LP.

When groups are small (a few grids each, as in 60 → 17), every connected set of units
lighter than the best known heaviest group can be listed. A plan whose heaviest group
weighs at most ``T`` picks ``k`` of the sets no heavier than ``T`` that cover every unit
exactly once; when even the LP relaxation of that set-partitioning problem is
infeasible (HiGHS), the optimum is above ``T``. A binary search on ``T`` gives a bound
much tighter than ``total / k`` on lumpy grids.

Private module: used by :func:`gridgeo.partition.regroup`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from gridgeo.partition.regroup._mip import quiet_highs

__all__: list[str] = []

log = logging.getLogger(__name__)


class TooMany(Exception):
    """The enumeration passed its limit."""


def connected_subsets(
    nbrs: list[list[int]], w: NDArray[np.float64], cap: float, limit: int
) -> list[tuple[int, ...]]:
    """Every connected set of units of total weight ``< cap`` (ESU enumeration, no repeats).

    Raises :class:`TooMany` after ``limit`` sets.
    """
    out: list[tuple[int, ...]] = []
    nb = [set(x) for x in nbrs]

    def extend(sub: list[int], border: set[int], ext: set[int], v: int, total: float) -> None:
        out.append(tuple(sorted(sub)))
        if len(out) > limit:
            raise TooMany
        ext = set(ext)
        while ext:
            u = ext.pop()
            wu = total + w[u]
            if wu >= cap:
                continue
            new = {x for x in nb[u] if x > v and x not in border}
            extend([*sub, u], border | new, ext | new, v, wu)

    for v in range(len(w)):
        if w[v] < cap:
            start = {x for x in nb[v] if x > v}
            extend([v], start | {v} | set(nb[v]), start, v, float(w[v]))
    return out


def _solve(
    a: sp.csc_matrix, k: int, time_limit: float, *, integer: bool = False
) -> tuple[bool | None, NDArray[np.float64] | None]:
    """Can ``k`` columns of ``a`` cover every row exactly once (LP relaxation unless
    ``integer``)? Returns (answer or None when undecided, column values when feasible)."""
    n_row, n_col = a.shape
    full = sp.vstack([a, sp.csr_matrix(np.ones((1, n_col)))]).tocsc()
    full.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = n_row + 1
    lp.col_cost_ = np.zeros(n_col)
    lp.col_lower_ = np.zeros(n_col)
    lp.col_upper_ = np.ones(n_col)
    rhs = np.ones(n_row + 1)
    rhs[-1] = k
    lp.row_lower_ = rhs
    lp.row_upper_ = rhs
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = full.indptr.astype(np.int32)
    lp.a_matrix_.index_ = full.indices.astype(np.int32)
    lp.a_matrix_.value_ = full.data.astype(np.float64)
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n_col
    h = quiet_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", max(float(time_limit), 0.05))
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return True, np.asarray(h.getSolution().col_value)
    if status == highspy.HighsModelStatus.kInfeasible:
        return False, None
    return None, None


@dataclass(frozen=True)
class BoundResult:
    bound: float  # proven lower bound on the min–max
    columns: list[tuple[int, ...]]  # connected sets in the support of the feasible LPs


def lp_bound(
    nbrs: list[list[int]],
    w: NDArray[np.float64],
    k: int,
    *,
    incumbent: float,
    lower_bound: float,
    deadline: float,
    limit: int = 200_000,
) -> BoundResult | None:
    """A lower bound on the min–max from the set-partitioning LP relaxation.

    Binary search on the threshold ``T`` over the weights of the connected sets lighter
    than ``incumbent``: when even the LP cannot cover every unit with ``k`` sets no
    heavier than ``T``, no plan has its heaviest group ``<= T``, so the optimum is at
    least the next set weight above ``T``. The sets used by the feasible LPs are
    returned as candidate groups for :func:`polish`. None when the sets are too many
    to list.
    """
    t0 = time.monotonic()
    try:
        subsets = connected_subsets(nbrs, w, incumbent * (1 - 1e-12), limit)
    except TooMany:
        log.info("LP bound skipped: more than %d connected sets below %g", limit, incumbent)
        return None
    n = len(w)
    weights = np.array([w[list(s)].sum() for s in subsets])
    log.info(
        "%d connected sets below %g listed in %.1f s",
        len(subsets),
        incumbent,
        time.monotonic() - t0,
    )
    order = np.argsort(weights, kind="stable")
    weights = weights[order]
    rows: NDArray[np.int64] | list[int] = (
        np.concatenate([np.asarray(subsets[i]) for i in order]) if len(order) else []
    )
    cols = np.repeat(np.arange(len(order)), [len(subsets[i]) for i in order])
    a = sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(order)))
    cand = np.unique(weights[weights >= lower_bound])
    lo, hi = 0, len(cand)  # the first feasible threshold index is in [lo, hi]
    seen: set[int] = set()
    while lo < hi and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        m = int(np.searchsorted(weights, cand[mid], side="right"))
        ok, x = _solve(a[:, :m], k, deadline - time.monotonic())
        if ok is None:
            break
        if ok:
            hi = mid
            seen.update(np.flatnonzero(np.asarray(x) > 1e-7).tolist())
        else:
            lo = mid + 1
    # every threshold below cand[lo] was proven LP-infeasible
    bound = float(cand[lo]) if lo < len(cand) else float(incumbent)
    return BoundResult(bound, [subsets[order[j]] for j in sorted(seen)])


def polish(
    columns: list[tuple[int, ...]],
    w: NDArray[np.float64],
    k: int,
    *,
    lower_bound: float,
    time_limit: float,
) -> NDArray[np.int64] | None:
    """Best plan made of ``k`` of the given connected ``columns`` (min–max MIP), or None.

    The columns are groups seen by the local search: recombining groups of different
    local optima often beats each of them.
    """
    n, m = len(w), len(columns)
    if m == 0:
        return None
    cw = np.array([w[list(c)].sum() for c in columns])
    rows = np.concatenate([np.asarray(c) for c in columns])
    cols = np.repeat(np.arange(m), [len(c) for c in columns])
    cover = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, m + 1))
    count = sp.csr_matrix(np.concatenate([np.ones(m), [0.0]])[None, :])
    # z >= w_s y_s  <=>  w_s y_s - z <= 0
    heavy = sp.hstack([sp.diags(cw), sp.csr_matrix(-np.ones((m, 1)))]).tocsr()
    a = sp.vstack([cover, count, heavy]).tocsc()
    a.sort_indices()
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = m + 1
    lp.num_row_ = a.shape[0]
    cost = np.zeros(m + 1)
    cost[m] = 1.0
    lp.col_cost_ = cost
    lp.col_lower_ = np.concatenate([np.zeros(m), [lower_bound]])
    lp.col_upper_ = np.concatenate([np.ones(m), [inf]])
    lp.row_lower_ = np.concatenate([np.ones(n), [k], np.full(m, -inf)])
    lp.row_upper_ = np.concatenate([np.ones(n), [k], np.zeros(m)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * m + [highspy.HighsVarType.kContinuous]
    h = quiet_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", max(float(time_limit), 0.05))
    h.passModel(lp)
    h.run()
    if h.getInfo().primal_solution_status != 2:
        return None
    x = np.asarray(h.getSolution().col_value)[:m]
    labels = np.full(n, -1, dtype=np.int64)
    for g, j in enumerate(np.flatnonzero(x > 0.5)):
        labels[list(columns[j])] = g
    return labels if (labels >= 0).all() else None
