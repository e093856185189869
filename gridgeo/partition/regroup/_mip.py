"""Exact min–max contiguous partition as a mixed-integer program solved by HiGHS.

Formulation (flow-based contiguity, Shirabe 2005 style, with symmetry breaking):

* ``x[i, j] = 1`` when unit ``i`` belongs to the group whose *root* is unit ``j``;
  the root of a group is its smallest unit index, so ``x[i, j]`` exists only for
  ``j <= i`` and only when ``i`` is reachable from ``j`` through units ``>= j``.
* ``x[j, j]`` says that ``j`` is a root; exactly ``k`` roots.
* For each root ``j`` a single commodity flows from ``j`` along the arcs of the
  adjacency graph restricted to units ``>= j``; every other member of the group
  absorbs one unit of flow, and an arc carries flow only between members of
  the group, so each group is connected.
* ``z >= sum_i w_i x[i, j]`` for every root; minimise ``z``.

Private module: used by :func:`gridgeo.partition.regroup`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__: list[str] = []

log = logging.getLogger(__name__)


def quiet_highs() -> Any:
    """A HiGHS instance that prints nothing, not even its banner.

    ``highspy.Highs()`` (1.8 and later) prints "Running HiGHS …" while it installs its
    Python callbacks, before any option can be set; the plain ``_Highs`` core does not,
    and has every method used here. Library code never prints.
    """
    h = getattr(highspy, "_Highs", highspy.Highs)()
    h.setOptionValue("output_flag", False)
    return h


@dataclass(frozen=True)
class MipResult:
    """Outcome of :func:`solve_minmax`."""

    labels: NDArray[np.int64] | None  # group label (0..k-1) per unit, None if no incumbent
    objective: float  # heaviest group weight of ``labels`` (inf when None)
    bound: float  # proven lower bound on the optimum
    optimal: bool  # HiGHS proved optimality
    status: str  # HiGHS model status name


def _reachable(nbrs: list[NDArray[np.int64]], j: int) -> NDArray[np.int64]:
    """Units reachable from ``j`` through units with index ``>= j`` (sorted)."""
    seen = {j}
    stack = [j]
    while stack:
        u = stack.pop()
        for v in nbrs[u]:
            v = int(v)
            if v >= j and v not in seen:
                seen.add(v)
                stack.append(v)
    return np.array(sorted(seen), dtype=np.int64)


def solve_minmax(
    graph: sp.csr_matrix,
    w: NDArray[np.float64],
    k: int,
    *,
    lower_bound: float,
    time_limit: float,
    seed: int,
    start: NDArray[np.int64] | None = None,
) -> MipResult:
    """Solve the min–max contiguous ``k``-partition exactly (up to ``time_limit`` s).

    ``graph`` is a symmetric boolean adjacency in unit order; ``start`` an optional
    feasible labelling to warm-start from.
    """
    n = len(w)
    indptr, indices = graph.indptr, graph.indices
    nbrs = [indices[indptr[i] : indptr[i + 1]].astype(np.int64) for i in range(n)]

    # --- columns -------------------------------------------------------------------
    x_of: dict[tuple[int, int], int] = {}
    col = 0
    reach: list[NDArray[np.int64]] = []
    for j in range(n):
        r = _reachable(nbrs, j)
        reach.append(r)
        for i in r:
            x_of[(int(i), j)] = col
            col += 1
    n_x = col
    f_of: list[tuple[int, int, int, int]] = []  # (col, j, u, v)
    for j in range(n):
        inside = np.zeros(n, dtype=bool)
        inside[reach[j]] = True
        for u in reach[j]:
            for v in nbrs[u]:
                if inside[v] and v != j:
                    f_of.append((col, j, int(u), int(v)))
                    col += 1
    z = col
    n_col = col + 1

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add_row(entries: list[tuple[int, float]], lower: float, upper: float) -> None:
        r = len(lo)
        for c, v in entries:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        lo.append(lower)
        hi.append(upper)

    inf = highspy.kHighsInf
    # each unit in exactly one group
    by_unit: list[list[int]] = [[] for _ in range(n)]
    by_root: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for (i, j), c in x_of.items():
        by_unit[i].append(c)
        by_root[j].append((i, c))
    for i in range(n):
        add_row([(c, 1.0) for c in by_unit[i]], 1.0, 1.0)
    # exactly k roots
    add_row([(x_of[(j, j)], 1.0) for j in range(n)], float(k), float(k))
    # a member only joins an open root
    for j in range(n):
        root = x_of[(j, j)]
        for i, c in by_root[j]:
            if i != j:
                add_row([(c, 1.0), (root, -1.0)], -inf, 0.0)
    # flow conservation and capacities
    inflow: dict[tuple[int, int], list[int]] = {}
    outflow: dict[tuple[int, int], list[int]] = {}
    for c, j, u, v in f_of:
        inflow.setdefault((j, v), []).append(c)
        outflow.setdefault((j, u), []).append(c)
        cap = float(len(reach[j]) - 1)
        add_row([(c, 1.0), (x_of[(v, j)], -cap)], -inf, 0.0)
        add_row([(c, 1.0), (x_of[(u, j)], -cap)], -inf, 0.0)
    for j in range(n):
        for i in reach[j]:
            i = int(i)
            if i == j:
                continue
            entries = [(c, 1.0) for c in inflow.get((j, i), [])]
            entries += [(c, -1.0) for c in outflow.get((j, i), [])]
            entries.append((x_of[(i, j)], -1.0))
            add_row(entries, 0.0, 0.0)
    # z bounds every group's weight
    for j in range(n):
        add_row([(c, float(w[i])) for i, c in by_root[j]] + [(z, -1.0)], -inf, 0.0)

    a = sp.csc_matrix((vals, (rows, cols)), shape=(len(lo), n_col))
    a.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = len(lo)
    cost = np.zeros(n_col)
    cost[z] = 1.0
    lp.col_cost_ = cost
    col_lo = np.zeros(n_col)
    col_lo[z] = lower_bound
    col_hi = np.full(n_col, inf)
    col_hi[:n_x] = 1.0
    lp.col_lower_ = col_lo
    lp.col_upper_ = col_hi
    lp.row_lower_ = np.array(lo)
    lp.row_upper_ = np.array(hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(np.float64)
    integrality = [highspy.HighsVarType.kContinuous] * n_col
    for c in range(n_x):
        integrality[c] = highspy.HighsVarType.kInteger
    lp.integrality_ = integrality

    h = quiet_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", int(seed) % (2**31 - 1))
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", 1e-7)
    h.setOptionValue("mip_abs_gap", 1e-7)
    h.passModel(lp)
    log.debug("MIP: %d units, k=%d, %d columns, %d rows", n, k, n_col, len(lo))

    if start is not None:
        sol = np.zeros(n_col)
        for g in np.unique(start):
            members = np.flatnonzero(start == g)
            j = int(members.min())
            for i in members:
                sol[x_of[(int(i), j)]] = 1.0
        # a feasible flow: along a BFS tree of each group, flow = subtree size
        for g in np.unique(start):
            group = set(np.flatnonzero(start == g).tolist())
            j = min(group)
            parent = {j: -1}
            order = [j]
            for u in order:
                for vv in nbrs[u]:
                    v = int(vv)
                    if v in group and v not in parent:
                        parent[v] = u
                        order.append(v)
            size = dict.fromkeys(order, 1)
            for v in reversed(order[1:]):
                size[parent[v]] += size[v]
            fcol = {(u, v): c for c, jj, u, v in f_of if jj == j}
            for v in order[1:]:
                sol[fcol[(parent[v], v)]] = float(size[v])
        sol[z] = max(float(w[start == g].sum()) for g in np.unique(start))
        hs = highspy.HighsSolution()
        hs.col_value = sol.tolist()
        hs.value_valid = True
        h.setSolution(hs)

    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    name = h.modelStatusToString(status)
    bound = max(lower_bound, float(info.mip_dual_bound))
    if info.primal_solution_status != 2:  # no feasible solution found
        return MipResult(None, float("inf"), bound, False, name)
    xv = np.asarray(h.getSolution().col_value)
    labels = np.full(n, -1, dtype=np.int64)
    root_label: dict[int, int] = {}
    for (i, j), c in x_of.items():
        if xv[c] > 0.5:
            labels[i] = root_label.setdefault(j, len(root_label))
    objective = max(float(w[labels == g].sum()) for g in range(len(root_label)))
    optimal = status == highspy.HighsModelStatus.kOptimal
    if optimal:  # proven to the 1e-7 relative gap: the incumbent is the optimum
        bound = max(bound, objective)
    return MipResult(labels, objective, bound, optimal, name)
