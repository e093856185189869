"""Compiled lookup-table kernels (numba)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["table_lookup"]


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
