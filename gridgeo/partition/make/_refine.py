"""Compactness refinement: move boundary atoms between neighbouring grids.

After the bisection, grids are rectangles cut by straight sweeps and their
edges are ragged where they run between Voronoi cells. Two passes move single
atoms from one grid to a neighbouring grid:

1. the first lowers the sum of the two grids' dimensionless moments of inertia
   ``I / A²`` (area-weighted, from atom centroids): grids round out, corners
   go to the neighbour whose centre is nearer;
2. the second raises the sum of the two grids' Polsby–Popper scores: edges
   straighten.

A move is made only when it keeps every guarantee:

* the receiving grid stays within its ceilings;
* the giving grid keeps at least one atom and stays connected;
* the atom shares an edge with the receiving grid inside its own block, so a
  grid never newly crosses a street or river to take it.

Area, first and second moments are additive, and a grid's perimeter is the sum
of its atoms' perimeters minus twice the boundary they share, so each candidate
move is scored in O(degree) from the atom adjacency; a breadth-first search checks the giver's
connectivity only for moves that would improve the score. The kernels are
compiled with numba and deterministic (atoms are visited in index order).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit
from numpy.typing import NDArray

__all__ = ["refine_labels"]

_MAX_PASSES = 12


@njit(cache=True, nogil=True)
def _pp(area: float, perim: float) -> float:  # pragma: no cover - compiled
    if perim <= 0.0:
        return 0.0
    return 4.0 * math.pi * area / (perim * perim)


@njit(cache=True, nogil=True)
def _connected_without(indptr, indices, label, g, a, size, stamp, mark, queue):  # pragma: no cover
    """Is group ``g`` (``size`` atoms) still connected once atom ``a`` leaves it?"""
    start = -1
    for k in range(indptr[a], indptr[a + 1]):
        b = indices[k]
        if label[b] == g:
            start = b
            break
    if start < 0:
        return False
    mark[start] = stamp
    mark[a] = stamp
    queue[0] = start
    head, tail = 0, 1
    while head < tail:
        u = queue[head]
        head += 1
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            if label[v] == g and mark[v] != stamp:
                mark[v] = stamp
                queue[tail] = v
                tail += 1
    return tail == size - 1


@njit(cache=True, nogil=True)
def _group_counts(label, h, p, n_groups):  # pragma: no cover - compiled
    """Households, population and atoms of each group."""
    g_h = np.zeros(n_groups)
    g_p = np.zeros(n_groups)
    g_n = np.zeros(n_groups, dtype=np.int64)
    for a in range(label.shape[0]):
        g = label[a]
        if g >= 0:
            g_h[g] += h[a]
            g_p[g] += p[a]
            g_n[g] += 1
    return g_h, g_p, g_n


@njit(cache=True, nogil=True)
def _refine(
    indptr, indices, shared, same_block, area, perim, h, p, label, movable, n_groups, cap_h, cap_p
):  # pragma: no cover - compiled
    n = area.shape[0]
    g_area = np.zeros(n_groups)
    g_per = np.zeros(n_groups)
    g_h, g_p, g_n = _group_counts(label, h, p, n_groups)
    for a in range(n):
        g = label[a]
        if g < 0:
            continue
        g_area[g] += area[a]
        g_per[g] += perim[a]
        for k in range(indptr[a], indptr[a + 1]):
            if label[indices[k]] == g:
                g_per[g] -= shared[k]
    mark = np.zeros(n, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    stamp = 0
    nb_lab = np.empty(64, dtype=np.int64)
    nb_len = np.empty(64)
    nb_ok = np.empty(64, dtype=np.bool_)
    moves = 0
    for _ in range(_MAX_PASSES):
        moved = 0
        for a in range(n):
            g1 = label[a]
            if g1 < 0 or not movable[a] or g_n[g1] <= 1:
                continue
            # shared boundary with each neighbouring group (and whether in-block)
            m = 0
            s_own = 0.0
            for k in range(indptr[a], indptr[a + 1]):
                g = label[indices[k]]
                if g < 0:
                    continue
                if g == g1:
                    s_own += shared[k]
                    continue
                j = 0
                while j < m and nb_lab[j] != g:
                    j += 1
                if j == m:
                    if m == 64:
                        continue
                    nb_lab[m] = g
                    nb_len[m] = 0.0
                    nb_ok[m] = False
                    m += 1
                nb_len[j] += shared[k]
                if same_block[k]:
                    nb_ok[j] = True
            if m == 0:
                continue
            a1 = g_area[g1] - area[a]
            p1 = g_per[g1] - perim[a] + 2.0 * s_own
            before1 = _pp(g_area[g1], g_per[g1])
            best_gain = 1e-9
            best = -1
            for j in range(m):
                g2 = nb_lab[j]
                if not nb_ok[j]:
                    continue
                if g_h[g2] + h[a] > cap_h + 1e-9 or g_p[g2] + p[a] > cap_p + 1e-9:
                    continue
                a2 = g_area[g2] + area[a]
                p2 = g_per[g2] + perim[a] - 2.0 * nb_len[j]
                gain = _pp(a1, p1) + _pp(a2, p2) - before1 - _pp(g_area[g2], g_per[g2])
                if gain > best_gain:
                    best_gain = gain
                    best = j
            if best < 0:
                continue
            stamp += 1
            if not _connected_without(indptr, indices, label, g1, a, g_n[g1], stamp, mark, queue):
                continue
            g2 = nb_lab[best]
            label[a] = g2
            g_area[g1] = a1
            g_per[g1] = p1
            g_h[g1] -= h[a]
            g_p[g1] -= p[a]
            g_n[g1] -= 1
            g_area[g2] += area[a]
            g_per[g2] += perim[a] - 2.0 * nb_len[best]
            g_h[g2] += h[a]
            g_p[g2] += p[a]
            g_n[g2] += 1
            moved += 1
        moves += moved
        if moved == 0:
            break
    return moves


@njit(cache=True, nogil=True)
def _inertia(area: float, sx: float, sy: float, q: float) -> float:  # pragma: no cover
    """Dimensionless moment of inertia ``I / A²`` of a group (1/2π for a disc)."""
    if area <= 0.0:
        return 0.0
    return (q - (sx * sx + sy * sy) / area) / (area * area)


@njit(cache=True, nogil=True)
def _refine_inertia(
    indptr, indices, same_block, area, cx, cy, h, p, label, movable, n_groups, cap_h, cap_p, passes
):  # pragma: no cover - compiled
    n = area.shape[0]
    g_a = np.zeros(n_groups)
    g_sx = np.zeros(n_groups)
    g_sy = np.zeros(n_groups)
    g_q = np.zeros(n_groups)
    g_h, g_p, g_n = _group_counts(label, h, p, n_groups)
    # an atom's own second moment about its centroid is a constant of the move: leave it out
    for a in range(n):
        g = label[a]
        if g < 0:
            continue
        g_a[g] += area[a]
        g_sx[g] += area[a] * cx[a]
        g_sy[g] += area[a] * cy[a]
        g_q[g] += area[a] * (cx[a] * cx[a] + cy[a] * cy[a])
    mark = np.zeros(n, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    stamp = 0
    nb_lab = np.empty(64, dtype=np.int64)
    moves = 0
    for _ in range(passes):
        moved = 0
        for a in range(n):
            g1 = label[a]
            if g1 < 0 or not movable[a] or g_n[g1] <= 1:
                continue
            m = 0
            for k in range(indptr[a], indptr[a + 1]):
                g = label[indices[k]]
                if g < 0 or g == g1 or not same_block[k]:
                    continue
                j = 0
                while j < m and nb_lab[j] != g:
                    j += 1
                if j == m and m < 64:
                    nb_lab[m] = g
                    m += 1
            if m == 0:
                continue
            wa = area[a]
            wx = wa * cx[a]
            wy = wa * cy[a]
            wq = wa * (cx[a] * cx[a] + cy[a] * cy[a])
            before1 = _inertia(g_a[g1], g_sx[g1], g_sy[g1], g_q[g1])
            after1 = _inertia(g_a[g1] - wa, g_sx[g1] - wx, g_sy[g1] - wy, g_q[g1] - wq)
            best_gain = 1e-12
            best = -1
            for j in range(m):
                g2 = nb_lab[j]
                if g_h[g2] + h[a] > cap_h + 1e-9 or g_p[g2] + p[a] > cap_p + 1e-9:
                    continue
                before2 = _inertia(g_a[g2], g_sx[g2], g_sy[g2], g_q[g2])
                after2 = _inertia(g_a[g2] + wa, g_sx[g2] + wx, g_sy[g2] + wy, g_q[g2] + wq)
                gain = before1 + before2 - after1 - after2
                if gain > best_gain:
                    best_gain = gain
                    best = g2
            if best < 0:
                continue
            stamp += 1
            if not _connected_without(indptr, indices, label, g1, a, g_n[g1], stamp, mark, queue):
                continue
            label[a] = best
            g_a[g1] -= wa
            g_sx[g1] -= wx
            g_sy[g1] -= wy
            g_q[g1] -= wq
            g_h[g1] -= h[a]
            g_p[g1] -= p[a]
            g_n[g1] -= 1
            g_a[best] += wa
            g_sx[best] += wx
            g_sy[best] += wy
            g_q[best] += wq
            g_h[best] += h[a]
            g_p[best] += p[a]
            g_n[best] += 1
            moved += 1
        moves += moved
        if moved == 0:
            break
    return moves


def refine_labels(
    adj: sp.csr_matrix,
    block: NDArray[np.int64],
    area: NDArray[np.float64],
    perim: NDArray[np.float64],
    h: NDArray[np.float64],
    p: NDArray[np.float64],
    label: NDArray[np.int64],
    movable: NDArray[np.bool_],
    cap_h: float,
    cap_p: float,
    xy: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.int64], int]:
    """Make the grids more compact by moving boundary atoms.

    Parameters
    ----------
    adj
        Symmetric CSR adjacency of the atoms; values are shared boundary lengths.
    block
        Block id of each atom (atoms in one block lie between the same barriers).
    area, perim
        Area and perimeter of each atom.
    h, p
        Households and population of each atom.
    label
        Grid of each atom (``0..G-1``), or ``-1`` for atoms left out (they
        neither move nor receive).
    movable
        Atoms that may change grid (False for oversize single-atom grids).
    cap_h, cap_p
        Ceilings (``math.inf`` for none).
    xy
        Atom centroids; when given, the moment-of-inertia pass runs first.

    Returns
    -------
    label, moves
        The new labels (a new array) and how many moves were made.

    Examples
    --------
    A 3×1 strip of unit squares split as [0, 0 | 1]: moving the middle square
    does not help, so nothing moves.

    >>> import numpy as np, scipy.sparse as sp
    >>> adj = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
    >>> ones = np.ones(3)
    >>> lab, moves = refine_labels(adj, np.zeros(3, np.int64), ones, 4 * ones, ones, ones,
    ...                            np.array([0, 0, 1]), np.ones(3, bool), 10.0, 10.0)
    >>> lab.tolist(), moves
    ([0, 0, 1], 0)
    """
    adj = sp.csr_matrix(adj)
    adj.sort_indices()
    indptr = adj.indptr.astype(np.int64)
    indices = adj.indices.astype(np.int64)
    rows = np.repeat(np.arange(adj.shape[0]), np.diff(indptr))
    same_block = block[rows] == block[indices]
    out = np.asarray(label, dtype=np.int64).copy()
    n_groups = int(out.max()) + 1 if len(out) else 0
    if n_groups < 2:
        return out, 0
    area = np.asarray(area, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    movable = np.asarray(movable, dtype=np.bool_)
    moves = 0
    if xy is not None:
        c = np.asarray(xy, dtype=np.float64)
        c = c - c.mean(axis=0)
        cx, cy = np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1])
        args = (indptr, indices, same_block, area, cx, cy, h, p, out, movable, n_groups)
        caps = (float(cap_h), float(cap_p), _MAX_PASSES)
        moves += _refine_inertia(*args, *caps)
    moves += _refine(
        indptr,
        indices,
        adj.data.astype(np.float64),
        same_block,
        area,
        np.asarray(perim, dtype=np.float64),
        h,
        p,
        out,
        movable,
        n_groups,
        float(cap_h),
        float(cap_p),
    )
    return out, int(moves)
