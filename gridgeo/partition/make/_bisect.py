"""Ceiling-aware recursive bisection of a connected atom graph.

To split a region of ``H`` households into ``k`` grids under ceiling ``C``,
cut it into two connected parts that will hold ``k1`` and ``k2 = k - k1``
grids; the ``k1`` side must hold between ``H - k2·C`` and ``k1·C``
(the same for population). Cuts come from a sweep along several directions
(the most compact of the most balanced cut per direction); failing that, from
a connected growth from the region's far end; then from random spanning trees
(seeded); failing all, ``k`` grows by one.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import scipy.sparse as sp
from numba import njit
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

__all__ = ["bisect_region", "needed"]

_SWEEP_TRIES = 12
_TREE_TRIES = 12
_BALANCE = 0.3  # weight of imbalance (in target-grid units) against the sides' compactness
# Regions bound for 3+ grids are planned at this fill of the ceiling: with the lower bound
# itself the slack left per grid is often a household or two, so the last cuts must hit
# a window narrower than one building, fail, and fall back to snakes or an extra grid in
# a bad place (on 2,000 Voronoi units: 71 grids for a bound of 61, mean PP 0.55; planned
# at 94 %: 65 grids, PP 0.62 after refinement).
_PLAN_FILL = 0.94
_PLAN_MIN_K = 3
# ... but a region bound for at most this many grids first tries the lower bound itself
_EXACT_TRY_MAX_K = 12


def needed(h: float, p: float, cap_h: float, cap_p: float) -> int:
    """Grids a region needs at least: ``max(ceil(h / cap_h), ceil(p / cap_p), 1)``."""
    k = 1
    if cap_h < math.inf:
        k = max(k, math.ceil(h / cap_h - 1e-9))
    if cap_p < math.inf:
        k = max(k, math.ceil(p / cap_p - 1e-9))
    return k


def _ok(
    h1: NDArray[np.float64],
    p1: NDArray[np.float64],
    lo_h: float,
    hi_h: float,
    lo_p: float,
    hi_p: float,
) -> NDArray[np.bool_]:
    eps = 1e-9
    return (h1 >= lo_h - eps) & (h1 <= hi_h + eps) & (p1 >= lo_p - eps) & (p1 <= hi_p + eps)


def _bounds(k1: int, k2: int, H: float, P: float, cap_h: float, cap_p: float):
    """Window for the k1 side's households and population."""
    lo_h = H - k2 * cap_h if cap_h < math.inf else 0.0
    hi_h = k1 * cap_h if cap_h < math.inf else math.inf
    lo_p = P - k2 * cap_p if cap_p < math.inf else 0.0
    hi_p = k1 * cap_p if cap_p < math.inf else math.inf
    return max(lo_h, 0.0), hi_h, max(lo_p, 0.0), hi_p


@njit(cache=True, nogil=True)
def _side_connected(indptr, indices, mask, side, queue, seen):  # pragma: no cover - compiled
    """Is the set ``mask == side`` connected (and non-empty)? A breadth-first search."""
    n = mask.shape[0]
    start = -1
    size = 0
    for i in range(n):
        seen[i] = False
        if mask[i] == side:
            size += 1
            if start < 0:
                start = i
    if start < 0:
        return False
    seen[start] = True
    queue[0] = start
    head, tail = 0, 1
    while head < tail:
        u = queue[head]
        head += 1
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            if mask[v] == side and not seen[v]:
                seen[v] = True
                queue[tail] = v
                tail += 1
    return tail == size


@njit(cache=True, nogil=True)
def _inner(indptr, indices, data, mask):  # pragma: no cover - compiled
    """Shared boundary inside each side of ``mask`` (each edge counted from both ends)."""
    in1 = 0.0
    in2 = 0.0
    for u in range(mask.shape[0]):
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            if mask[u] == mask[v]:
                if mask[u]:
                    in1 += data[k]
                else:
                    in2 += data[k]
    return in1, in2


def _two_parts(adj: sp.csr_matrix, mask: NDArray[np.bool_]) -> bool:
    """Are both sides of ``mask`` connected?"""
    n = len(mask)
    queue = np.empty(n, dtype=np.int64)
    seen = np.empty(n, dtype=np.bool_)
    return bool(
        _side_connected(adj.indptr, adj.indices, mask, True, queue, seen)
        and _side_connected(adj.indptr, adj.indices, mask, False, queue, seen)
    )


def _side_pps(adj: sp.csr_matrix, mask, area, perim) -> tuple[float, float]:
    """The two sides' Polsby–Popper scores, from atom areas, perimeters and the shared
    boundary lengths in ``adj`` (a side's perimeter is its atoms' perimeters less twice
    the boundary they share)."""
    inner1, inner2 = _inner(adj.indptr, adj.indices, adj.data, mask)
    a1, a2 = float(area[mask].sum()), float(area[~mask].sum())
    p1 = float(perim[mask].sum()) - inner1
    p2 = float(perim[~mask].sum()) - inner2
    pp1, pp2 = (4 * math.pi * a / (q * q) if q > 0 else 0.0 for a, q in ((a1, p1), (a2, p2)))
    return pp1, pp2


def _pp_sum(adj: sp.csr_matrix, mask, area, perim) -> float:
    """Sum of the two sides' Polsby–Popper scores (see :func:`_side_pps`)."""
    return sum(_side_pps(adj, mask, area, perim))


@njit(cache=True, nogil=True)
def _sweep_kernel(
    indptr, indices, data, orders, h, p, area, perim, bounds, target, unit, scored
):  # pragma: no cover - compiled
    """Best sweep cut over the atom orders (one row per direction): per direction the most
    balanced cut (of the first ``_SWEEP_TRIES`` in the window) that leaves both sides
    connected; among directions the most compact (``scored``) or the first found.
    Returns ``(direction, position)`` or ``(-1, -1)``."""
    lo_h, hi_h, lo_p, hi_p = bounds[0], bounds[1], bounds[2], bounds[3]
    n_dir, n = orders.shape
    eps = 1e-9
    cand_v = np.empty(n, dtype=np.int64)
    cand_s = np.empty(n)
    cum = np.empty(n)
    mask = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    seen = np.empty(n, dtype=np.bool_)
    tot_a = area.sum()
    tot_p = perim.sum()
    best_s = -np.inf
    best_d = -1
    best_v = -1
    for d in range(n_dir):
        order = orders[d]
        ch = 0.0
        cp = 0.0
        m = 0
        for v in range(n - 1):
            ch += h[order[v]]
            cp += p[order[v]]
            cum[v] = ch
            if ch >= lo_h - eps and ch <= hi_h + eps and cp >= lo_p - eps and cp <= hi_p + eps:
                cand_v[m] = v
                cand_s[m] = abs(ch - target) if target >= 0 else abs(v + 1 - unit)
                m += 1
        if m == 0:
            continue
        rank = np.argsort(cand_s[:m], kind="mergesort")
        for t in range(min(m, _SWEEP_TRIES)):
            v = cand_v[rank[t]]
            mask[:] = False
            for i in range(v + 1):
                mask[order[i]] = True
            if not (
                _side_connected(indptr, indices, mask, True, queue, seen)
                and _side_connected(indptr, indices, mask, False, queue, seen)
            ):
                continue
            if not scored:
                return d, v
            in1, in2 = _inner(indptr, indices, data, mask)
            a1 = 0.0
            q1 = 0.0
            for i in range(v + 1):
                a1 += area[order[i]]
                q1 += perim[order[i]]
            a2 = tot_a - a1
            q2 = tot_p - q1 - in2
            q1 -= in1
            s = 0.0
            if q1 > 0:
                s += 4 * np.pi * a1 / (q1 * q1)
            if q2 > 0:
                s += 4 * np.pi * a2 / (q2 * q2)
            if target >= 0:
                s -= _BALANCE * abs(cum[v] - target) / unit
            if s > best_s:
                best_s = s
                best_d = d
                best_v = v
            break  # the most balanced connected cut along this direction
    return best_d, best_v


def _sweep_cut(adj, xy, h, p, k1, k2, cap_h, cap_p, rng, area=None, perim=None):
    H, P = float(h.sum()), float(p.sum())
    bounds = np.array(_bounds(k1, k2, H, P, cap_h, cap_p), dtype=np.float64)
    centred = xy - xy.mean(axis=0)
    # principal axes, the compass axes and diagonals (streets often run so), then random ones
    if len(xy) > 2:
        _, vecs = np.linalg.eigh(centred.T @ centred)
        dirs = [vecs[:, 1], vecs[:, 0]]
    else:
        dirs = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    angles = np.concatenate([np.arange(4) * np.pi / 4, rng.uniform(0, np.pi, 4)])
    dirs += [np.array([np.cos(a), np.sin(a)]) for a in angles]
    n = len(h)
    if n < 2:
        return None
    orders = np.argsort(centred @ np.array(dirs).T, axis=0, kind="stable").T.copy()
    scored = area is not None and perim is not None and n > 2
    if H > 0:
        target, unit = H * k1 / (k1 + k2), max(H / (k1 + k2), 1e-9)
    else:
        target, unit = -1.0, n * k1 / (k1 + k2)
    zeros = np.zeros(n)
    d, v = _sweep_kernel(
        adj.indptr,
        adj.indices,
        np.asarray(adj.data, dtype=np.float64),
        orders,
        np.asarray(h, dtype=np.float64),
        np.asarray(p, dtype=np.float64),
        zeros if area is None else np.asarray(area, dtype=np.float64),
        zeros if perim is None else np.asarray(perim, dtype=np.float64),
        bounds,
        float(target),
        float(unit),
        scored,
    )
    if d < 0:
        return None
    mask = np.zeros(n, dtype=bool)
    mask[orders[d, : v + 1]] = True
    return mask


def _grow_cut(adj, xy, h, p, k1, k2, cap_h, cap_p, rng):
    """Grow a connected part from the far end of the region along a direction, always
    taking the frontier atom that lies furthest back; the first part that lands in the
    household window and leaves the rest connected is the cut. Slower than the sweep
    (a heap walk in Python), so only used where the sweep found nothing."""
    H, P = float(h.sum()), float(p.sum())
    lo_h, hi_h, lo_p, hi_p = _bounds(k1, k2, H, P, cap_h, cap_p)
    n = len(h)
    indptr, indices = adj.indptr, adj.indices
    centred = xy - xy.mean(axis=0)
    angles = np.concatenate([np.arange(8) * np.pi / 4, rng.uniform(0, 2 * np.pi, 4)])
    target = H * k1 / (k1 + k2)
    for a in angles:
        proj = centred @ np.array([np.cos(a), np.sin(a)])
        start = int(np.argmin(proj))
        seen = np.zeros(n, dtype=bool)
        heap = [(proj[start], start)]
        seen[start] = True
        ch = cp = 0.0
        cands: list[tuple[float, int]] = []
        order = []
        while heap:
            _, u = heapq.heappop(heap)
            order.append(u)
            ch += h[u]
            cp += p[u]
            if ch > hi_h + 1e-9 or cp > hi_p + 1e-9:
                break
            if ch >= lo_h - 1e-9 and cp >= lo_p - 1e-9 and len(order) < n:
                cands.append((abs(ch - target), len(order)))
            for v in indices[indptr[u] : indptr[u + 1]]:
                if not seen[v]:
                    seen[v] = True
                    heapq.heappush(heap, (proj[v], v))
        for _, m in sorted(cands)[:_SWEEP_TRIES]:
            mask = np.zeros(n, dtype=bool)
            mask[order[:m]] = True
            if _two_parts(adj, mask):
                return mask
    return None


def _tree_cut(adj, h, p, k1, k2, cap_h, cap_p, rng):
    H, P = float(h.sum()), float(p.sum())
    n = len(h)
    coo = sp.triu(adj, k=1).tocoo()
    if coo.nnz == 0:
        return None
    best = None
    target = H * k1 / (k1 + k2)
    for _ in range(_TREE_TRIES):
        w = rng.uniform(1.0, 2.0, coo.nnz)
        g = sp.csr_matrix((w, (coo.row, coo.col)), shape=(n, n))
        tree = minimum_spanning_tree(g)
        tree = tree + tree.T
        root = int(rng.integers(n))
        order, pred = breadth_first_order(tree, root, directed=False, return_predecessors=True)
        if len(order) != n:
            return None
        sub_h = h.astype(float).copy()
        sub_p = p.astype(float).copy()
        for v in order[::-1]:
            u = pred[v]
            if u >= 0:
                sub_h[u] += sub_h[v]
                sub_p[u] += sub_p[v]
        for side_k1, side_k2, flip in ((k1, k2, False), (k2, k1, True)):
            lo_h, hi_h, lo_p, hi_p = _bounds(side_k1, side_k2, H, P, cap_h, cap_p)
            ok = _ok(sub_h, sub_p, lo_h, hi_h, lo_p, hi_p)
            ok[root] = False
            cand = np.flatnonzero(ok)
            if len(cand) == 0:
                continue
            goal = H * side_k1 / (k1 + k2)
            v = int(cand[np.argmin(np.abs(sub_h[cand] - goal))])
            score = abs(sub_h[v] - goal)
            if best is None or score < best[0]:
                best = (score, v, order, pred, flip)
        if best is not None and best[0] <= 0.05 * max(target, 1.0):
            break
    if best is None:
        return None
    _, v, order, pred, flip = best
    mask = np.zeros(n, dtype=bool)
    mask[v] = True
    for u in order:
        if pred[u] >= 0 and mask[pred[u]]:
            mask[u] = True
    return ~mask if flip else mask


def bisect_region(
    adj: sp.csr_matrix,
    xy: NDArray[np.float64],
    h: NDArray[np.float64],
    p: NDArray[np.float64],
    cap_h: float,
    cap_p: float,
    rng: np.random.Generator,
    area: NDArray[np.float64] | None = None,
    perim: NDArray[np.float64] | None = None,
) -> list[NDArray[np.int64]]:
    """Split a connected region into grids under the ceilings.

    Parameters
    ----------
    adj
        Adjacency of the region's atoms (symmetric CSR, connected).
    xy
        Atom centroids, metres.
    h, p
        Households and population per atom; no single atom exceeds a ceiling.
    cap_h, cap_p
        Ceilings (``math.inf`` for none).
    rng
        Random generator for the fallbacks.
    area, perim
        Atom areas and perimeters; when given, the sweep keeps the most balanced
        connected cut along each of several directions and picks the most compact
        (``adj`` must then hold shared boundary lengths).

    Returns
    -------
    list of arrays
        Atom indices of each grid; each grid is connected and within the ceilings.
    """
    H, P = float(h.sum()), float(p.sum())
    lower = needed(H, P, cap_h, cap_p)
    planned = lower
    if lower >= _PLAN_MIN_K:
        planned = max(lower, needed(H, P, cap_h * _PLAN_FILL, cap_p * _PLAN_FILL))
    if planned > lower:
        # the lower bound is worth a strict try when few grids are at stake or each
        # keeps at least a typical atom's households of slack
        full = h[h > 0]
        typical = float(full.mean()) if len(full) else 0.0
        if lower <= _EXACT_TRY_MAX_K or (lower * cap_h - H) / lower >= typical:
            exact = _bisect(adj, xy, h, p, cap_h, cap_p, rng, area, perim, lower, strict=True)
            if exact is not None:
                return exact
    out = _bisect(adj, xy, h, p, cap_h, cap_p, rng, area, perim, planned, strict=False)
    assert out is not None
    return out


def _bisect(adj, xy, h, p, cap_h, cap_p, rng, area, perim, k0, *, strict):
    """Recursive bisection into ``k0`` grids; with ``strict``, None as soon as a region
    cannot be cut for the grids planned for it (instead of giving it one more)."""
    out: list[NDArray[np.int64]] = []
    stack: list[tuple[NDArray[np.int64], int]] = [(np.arange(len(h)), k0)]
    while stack:
        idx, k = stack.pop()
        if k <= 1 or len(idx) == 1:
            out.append(idx)
            continue
        sub = adj[idx][:, idx].tocsr()
        hh, pp, pts = h[idx], p[idx], xy[idx]
        mask = None
        kk = k
        while mask is None and kk <= len(idx):
            k1 = kk // 2
            k2 = kk - k1
            mask = _sweep_cut(
                sub,
                pts,
                hh,
                pp,
                k1,
                k2,
                cap_h,
                cap_p,
                rng,
                None if area is None else area[idx],
                None if perim is None else perim[idx],
            )
            if mask is None:
                mask = _grow_cut(sub, pts, hh, pp, k1, k2, cap_h, cap_p, rng)
            if mask is None:
                mask = _tree_cut(sub, hh, pp, k1, k2, cap_h, cap_p, rng)
            if mask is None:
                if strict:
                    return None
                kk += 1
        if mask is None:  # cannot happen for a connected region: singletons always fit
            out.extend(np.array([i]) for i in idx)
            continue
        # each side keeps the grids it was cut for, so the planned slack is spread evenly
        for side, k_side in ((idx[mask], k1), (idx[~mask], kk - k1)):
            k_min = needed(float(h[side].sum()), float(p[side].sum()), cap_h, cap_p)
            stack.append((side, max(k_side, k_min)))
    return out
