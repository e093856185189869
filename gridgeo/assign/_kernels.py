"""Compiled lookup-table kernels (numba)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from gridgeo import _numba  # noqa: F401  (fork-safe threading layer, before any launch)

__all__ = ["exact_lookup", "exact_one", "table_lookup"]


@njit(cache=True, nogil=True, parallel=True)
def table_lookup(x, y, x0, y0, dx, dy, nx, ny, state, out_pos, out_cell):  # pragma: no cover
    """Fill ``out_pos`` with the zone of each point from the table: a zone position, -1
    outside every zone or for NaN, -2 when the cell is a boundary cell (then ``out_cell``
    holds the cell to test exactly)."""
    n = x.shape[0]
    for i in prange(n):
        xi = x[i]
        yi = y[i]
        out_cell[i] = -1
        if not (np.isfinite(xi) and np.isfinite(yi)):
            out_pos[i] = -1
            continue
        cx = np.floor((xi - x0) / dx)
        cy = np.floor((yi - y0) / dy)
        if cx < 0 or cy < 0 or cx >= nx or cy >= ny:
            out_pos[i] = -1
            continue
        c = np.int64(cy) * nx + np.int64(cx)
        s = state[c]
        out_pos[i] = s
        if s == -2:
            out_cell[i] = c


_REL_ERR = 1e-14  # relative error bound of a floating orientation (Shewchuk's is ~3.3e-16)


@njit(cache=True, nogil=True, inline="always")
def _orient(ax, ay, bx, by, cx, cy):  # pragma: no cover
    """Orientation of c against a→b, and whether its sign is certain in floating point."""
    left = (bx - ax) * (cy - ay)
    right = (by - ay) * (cx - ax)
    det = left - right
    return det, abs(det) > _REL_ERR * (abs(left) + abs(right))


@njit(cache=True, nogil=True)
def _inside(qx, qy, rx, ry, ref_in, edges, start, stop):  # pragma: no cover
    """1 if q is in the zone, 0 if not, -2 if floating point cannot tell.

    ``r`` is a reference point in q's cell whose status ``ref_in`` is known exactly;
    ``edges[start:stop]`` are all the zone's edges that can meet the cell. q is in the
    zone iff r is, flipped once for each edge the segment q–r crosses. A point on (or
    too near) an edge, or an edge end too near the line q–r, is left to shapely."""
    cross = False
    for j in range(start, stop):
        ax = edges[j, 0]
        ay = edges[j, 1]
        bx = edges[j, 2]
        by = edges[j, 3]
        d1, ok1 = _orient(ax, ay, bx, by, qx, qy)
        if not ok1:
            return -2
        d2, ok2 = _orient(ax, ay, bx, by, rx, ry)
        if not ok2:
            return -2
        if (d1 > 0) == (d2 > 0):
            continue
        d3, ok3 = _orient(qx, qy, rx, ry, ax, ay)
        d4, ok4 = _orient(qx, qy, rx, ry, bx, by)
        if not (ok3 and ok4):
            return -2
        if (d3 > 0) != (d4 > 0):
            cross = not cross
    return 1 if ref_in != cross else 0


@njit(cache=True, nogil=True, parallel=True)
def exact_lookup(
    x, y, cells, cand_ptr, cand, edge_ptr, edges, ref, ref_in, out
):  # pragma: no cover
    """Zone position of each point of a boundary cell: the first candidate zone (in key
    order) holding it, -1 for none, or -2 when floating point cannot decide (the caller
    then asks shapely)."""
    for i in prange(x.shape[0]):
        c = cells[i]
        res = -1
        for k in range(cand_ptr[c], cand_ptr[c + 1]):
            r = _inside(
                x[i], y[i], ref[k, 0], ref[k, 1], ref_in[k], edges, edge_ptr[k], edge_ptr[k + 1]
            )
            if r == 1:
                res = cand[k]
                break
            if r == -2:
                res = -2
                break
        out[i] = res


@njit(cache=True, nogil=True)
def exact_one(x, y, c, cand_ptr, cand, edge_ptr, edges, ref, ref_in):  # pragma: no cover
    """:func:`exact_lookup` for one point, without the parallel dispatch."""
    for k in range(cand_ptr[c], cand_ptr[c + 1]):
        r = _inside(x, y, ref[k, 0], ref[k, 1], ref_in[k], edges, edge_ptr[k], edge_ptr[k + 1])
        if r == 1:
            return cand[k]
        if r == -2:
            return -2
    return -1
