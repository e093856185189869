"""Ceiling-aware recursive bisection of a connected atom graph.

To split a region of ``H`` households into ``k`` grids under ceiling ``C``,
cut it into two connected parts that will hold ``k1`` and ``k2 = k - k1``
grids; the ``k1`` side must hold between ``H - k2·C`` and ``k1·C``
(the same for population). Cuts come from a sweep along several directions
(the most compact of the most balanced cut per direction); failing that, from
a connected growth from the region's far end; then from random spanning trees
(seeded); failing all, ``k`` grows by one.

With barriers (atoms labelled by the street block they lie in), the sweep
also runs along block-grouped orders (whole blocks in the order of their
centres, so that a cut can fall between blocks, on a street), looks at
several balanced cuts per direction, and adds the share of the cut that runs
on a street to each cut's score: grid edges follow streets where the
households allow it.
"""

from __future__ import annotations

import heapq
import logging
import math

import numpy as np
import scipy.sparse as sp
from numba import njit
from numpy.typing import NDArray
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

__all__ = ["bisect_region", "needed"]

log = logging.getLogger(__name__)

_SWEEP_TRIES = 12
_TREE_TRIES = 12
_BALANCE = 0.3  # weight of imbalance (in target-grid units) against the sides' compactness
# weight of the share of a cut's length that runs on a street (between two blocks), against
# the sides' compactness (a Polsby–Popper sum near 1.2): a cut wholly on streets may be this
# much less compact than one wholly between buildings
_STREET = 0.6
# a cut first tries to leave each side at least this share of the region's slack (its
# grids' room under the ceilings), so that the slack planned at the top is not used up by
# one unbalanced cut and the last cuts still have room; else it takes any cut in the window
_KEEP_SLACK = 0.5
# further tries of the whole bisection when it needed more grids than planned
_RETRIES = 3
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


@njit(cache=True, nogil=True)
def _cut_lengths(indptr, indices, data, street, mask):  # pragma: no cover - compiled
    """Length of the boundary between the two sides of ``mask``, and of its part on streets
    (``street``: each edge's shared length that lies between two blocks)."""
    cut = 0.0
    on = 0.0
    for u in range(mask.shape[0]):
        if not mask[u]:
            continue
        for k in range(indptr[u], indptr[u + 1]):
            if not mask[indices[k]]:
                cut += data[k]
                on += street[k]
    return cut, on


def _street_data(adj: sp.csr_matrix, block: NDArray[np.int64]) -> NDArray[np.float64]:
    """Per stored edge of ``adj``: its shared length if it joins two blocks (a street), else 0."""
    rows = np.repeat(np.arange(adj.shape[0]), np.diff(adj.indptr))
    return np.where(block[rows] != block[adj.indices], np.asarray(adj.data, np.float64), 0.0)


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
    indptr, indices, data, street, orders, h, p, area, perim, bounds, target, unit, scored, w_street
):  # pragma: no cover - compiled
    """Best sweep cut over the atom orders (one row per direction): per direction the most
    balanced cut (of the first ``_SWEEP_TRIES`` in the window) that leaves both sides
    connected; among directions the most compact (``scored``) or the first found.
    With ``w_street > 0`` every connected cut of those tries is scored, and the share of
    its length on streets (``street``), times ``w_street``, adds to its score.
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
            if w_street > 0.0:
                cut, on = _cut_lengths(indptr, indices, data, street, mask)
                if cut > 0.0:
                    s += w_street * on / cut
            if s > best_s:
                best_s = s
                best_d = d
                best_v = v
            if w_street <= 0.0:
                break  # the most balanced connected cut along this direction
    return best_d, best_v


def _tight(total: float, k: int, cap: float) -> float:
    """A ceiling for the sides of a cut that keeps part of the region's slack for each:
    no side may fill its grids more than ``_KEEP_SLACK`` of the way from the region's
    fill to full."""
    if cap == math.inf or total <= 0:
        return cap
    fill = min(total / (k * cap), 1.0)
    return cap * (fill + (1.0 - fill) * (1.0 - _KEEP_SLACK))


def _sweep_cut(
    adj, xy, h, p, k1, k2, cap_h, cap_p, rng, area=None, perim=None, block=None, tight=False
):
    """A sweep cut (mask of the ``k1`` side) or None; see :func:`_sweep_kernel`. With
    ``block`` (each atom's street block) and more than one block, cuts on streets score
    higher and block-grouped orders join the directions. With ``tight``, both sides must
    keep a share of the region's slack (see :func:`_tight`)."""
    H, P = float(h.sum()), float(p.sum())
    if tight:
        cap_h, cap_p = _tight(H, k1 + k2, cap_h), _tight(P, k1 + k2, cap_p)
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
    proj = centred @ np.array(dirs).T
    orders = np.argsort(proj, axis=0, kind="stable").T
    scored = area is not None and perim is not None and n > 2
    data = np.asarray(adj.data, dtype=np.float64)
    street = np.zeros(len(data))
    w_street = 0.0
    if block is not None and scored:
        street = _street_data(adj, np.asarray(block))
        if street.any():
            w_street = _STREET
            # the same directions with whole blocks kept together, in the order of their
            # centres: cuts between blocks run on streets
            _, b = np.unique(block, return_inverse=True)
            b = b.ravel()
            wgt = np.asarray(area, dtype=np.float64) + 1e-12
            cnt = np.bincount(b, weights=wgt)
            bproj = np.stack([np.bincount(b, weights=wgt * proj[:, j]) / cnt for j in range(4)])
            grouped = np.stack([np.lexsort((proj[:, j], bproj[j, b])) for j in range(4)])
            orders = np.concatenate([orders, grouped])
    orders = np.ascontiguousarray(orders)
    if H > 0:
        target, unit = H * k1 / (k1 + k2), max(H / (k1 + k2), 1e-9)
    else:
        target, unit = -1.0, n * k1 / (k1 + k2)
    zeros = np.zeros(n)
    d, v = _sweep_kernel(
        adj.indptr,
        adj.indices,
        data,
        street,
        orders,
        np.asarray(h, dtype=np.float64),
        np.asarray(p, dtype=np.float64),
        zeros if area is None else np.asarray(area, dtype=np.float64),
        zeros if perim is None else np.asarray(perim, dtype=np.float64),
        bounds,
        float(target),
        float(unit),
        scored,
        w_street,
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
    block: NDArray[np.int64] | None = None,
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
    block
        Street block of each atom (atoms in one block lie between the same
        barriers); with ``area`` and ``perim``, cuts that run between blocks,
        on streets, are preferred.

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
            exact = _bisect(
                adj, xy, h, p, cap_h, cap_p, rng, area, perim, block, lower, strict=True
            )
            if exact is not None:
                return exact
    # a cut that fails deep down costs a grid; the sweep's random directions differ from
    # one try to the next, so a few more tries often find a split with fewer grids
    # (each other try plans one grid more: where atoms are large against the slack, a
    # little more room per grid can end with fewer grids than failing cuts add)
    best: list[NDArray[np.int64]] | None = None
    for t in range(_RETRIES + 1):
        k0 = planned + t % 2
        out = _bisect(adj, xy, h, p, cap_h, cap_p, rng, area, perim, block, k0, strict=False)
        assert out is not None
        log.debug("bisection planned for %d grids gave %d", k0, len(out))
        if best is None or len(out) < len(best):
            best = out
        if len(best) <= planned:
            break
    return best


def _bisect(adj, xy, h, p, cap_h, cap_p, rng, area, perim, block, k0, *, strict):
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
            sizes = (
                None if area is None else area[idx],
                None if perim is None else perim[idx],
                None if block is None else block[idx],
            )
            for tight in (True, False):  # half the slack on each side first, then any
                mask = _sweep_cut(sub, pts, hh, pp, k1, k2, cap_h, cap_p, rng, *sizes, tight=tight)
                if mask is not None:
                    break
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
