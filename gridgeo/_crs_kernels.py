"""Compiled GCJ-02 / BD-09 transforms (numba), imported by :mod:`gridgeo.crs` on first use.

The arithmetic is :mod:`gridgeo.crs`'s scalar functions, compiled here; each point is
transformed (or inverted, iterating to its own fixed point) in one pass, so a point gives
the same bits alone as in any batch. ``error_model="numpy"`` drops the zero-division checks
from the hot loop: only points in (or within half a degree of) China's box reach a
division, and no divisor is zero there.
"""

from __future__ import annotations

from numba import njit, prange

from gridgeo import _numba  # noqa: F401  (fork-safe threading layer, before any launch)
from gridgeo import crs as _crs

__all__ = ["forward", "inverse"]

_gcj_shift_1 = njit(cache=True, nogil=True, error_model="numpy")(_crs._gcj_shift_1)
_base_1 = njit(cache=True, nogil=True, error_model="numpy")(_crs._base_1)
_turn_1 = njit(cache=True, nogil=True, error_model="numpy")(_crs._turn_1)
_bd_from_gcj_1 = njit(cache=True, nogil=True, error_model="numpy")(_crs._bd_from_gcj_1)
_inside = njit(cache=True, nogil=True, error_model="numpy")(_crs._inside)
_far_outside = njit(cache=True, nogil=True, error_model="numpy")(_crs._far_outside)
_TOL_GCJ = _crs._INVERSE_TOL_GCJ
_TOL_BD = _crs._INVERSE_TOL_BD
_MAX_ITER = _crs._INVERSE_MAX_ITER
_PI = _crs._PI


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_1(x, y, bd):  # pragma: no cover  (compiled)
    # the composition of gridgeo.crs._gcj_forward_1 (numba cannot call it: its callees are
    # plain Python functions there)
    ca, sa, cb, sb = _base_1(x, y)
    sx, sy = _gcj_shift_1(x, y, ca, sa, cb, sb)
    fx = x + sx
    fy = y + sy
    if bd:
        fx, fy = _bd_from_gcj_1(fx, fy)
    return fx, fy


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def forward(x, y, bd, out_x, out_y):  # pragma: no cover  (compiled)
    """WGS84 -> GCJ-02 (or BD-09 when ``bd``) into ``out_x, out_y``; identity outside
    China's box and for NaN."""
    for i in prange(x.shape[0]):
        xi = x[i]
        yi = y[i]
        if _inside(xi, yi):
            out_x[i], out_y[i] = _forward_1(xi, yi, bd)
        else:
            out_x[i] = xi
            out_y[i] = yi


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def inverse(gx, gy, bd, out_x, out_y):  # pragma: no cover  (compiled)
    """GCJ-02 (or BD-09) -> WGS84 by per-point fixed-point iteration (the rules of
    :func:`gridgeo.crs._inverse_py`)."""
    for i in prange(gx.shape[0]):
        x = gx[i]
        y = gy[i]
        out_x[i] = x
        out_y[i] = y
        if _far_outside(x, y):
            continue
        wx = x
        wy = y
        ca0, sa0, cb0, sb0 = _base_1(x, y)
        tol = _TOL_BD if bd else _TOL_GCJ
        converged = False
        for _ in range(_MAX_ITER):
            ca, sa = _turn_1(ca0, sa0, (wx - x) * _PI / 60.0)
            cb, sb = _turn_1(cb0, sb0, (wy - y) * _PI / 180.0)
            sx, sy = _gcj_shift_1(wx, wy, ca, sa, cb, sb)
            fx = wx + sx
            fy = wy + sy
            if bd:
                fx, fy = _bd_from_gcj_1(fx, fy)
            dx = fx - x
            dy = fy - y
            wx -= dx
            wy -= dy
            if max(abs(dx), abs(dy)) < tol:
                converged = True
                break
        if converged and (_inside(wx, wy) or _inside(x, y)):
            out_x[i] = wx
            out_y[i] = wy
