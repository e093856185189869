"""Compiled GCJ-02 / BD-09 transforms (numba), imported by :mod:`gridgeo.crs` on first use.

The arithmetic is :mod:`gridgeo._gcj`'s scalar functions, compiled here; each point is
transformed (or inverted) on its own, so a point gives the same bits alone as in any batch,
and as in plain Python. ``error_model="numpy"`` drops the zero-division checks from the hot
loops: only points in (or within half a degree of) China's box reach a division, and no
divisor is zero there.

The scalar functions are inlined into the loops (``inline="always"``): LLVM then vectorises
the GCJ-02 inverse over points (AVX2/AVX-512; it has no branch and no libm call), and drops
the Jacobian that the forward transform does not use. Vectorising changes no bits: each
lane does the scalar operations, and numba does not fuse multiply-adds.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from numba import njit, prange

from gridgeo import (
    _gcj,
    _numba,  # noqa: F401  (fork-safe threading layer, before any launch)
)

__all__ = ["forward", "inverse"]

_OPTS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}
_INLINE: dict[str, Any] = {**_OPTS, "inline": "always"}

#: The globals the compiled scalar functions see: gridgeo._gcj's, with each scalar function
#: replaced by its compiled version as it is compiled (numba resolves a function's callees in
#: its globals, and there they are plain Python functions).
_NS: dict[str, Any] = dict(vars(_gcj))


def _jit(name: str, opts: dict[str, Any]) -> Any:
    """Compile ``gridgeo._gcj.<name>`` against :data:`_NS` (the same code object)."""
    f = getattr(_gcj, name)
    g = types.FunctionType(f.__code__, _NS, f.__name__, f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__
    g.__module__ = f.__module__
    _NS[name] = njit(**opts)(g)
    return _NS[name]


# leaves first; inlined into the loops, except the fixed-point loop of the second pass
_gcj_shift_1 = _jit("_gcj_shift_1", _INLINE)
_base_1 = _jit("_base_1", _INLINE)
_turn_1 = _jit("_turn_1", _INLINE)
_sincos_1 = _jit("_sincos_1", _INLINE)
_newton_step_1 = _jit("_newton_step_1", _INLINE)
_bd_from_gcj_1 = _jit("_bd_from_gcj_1", _INLINE)
_inside = _jit("_inside", _INLINE)
_far_outside = _jit("_far_outside", _INLINE)
_gcj_newton_1 = _jit("_gcj_newton_1", _INLINE)
_fixed_point_1 = _jit("_fixed_point_1", _OPTS)

# China's box, and the box half a degree larger outside which nothing is inverted
_X0, _Y0, _X1, _Y1 = _gcj.CHINA_BOX
_M = _gcj._INVERSE_MARGIN_DEG
_FX0, _FY0, _FX1, _FY1 = _X0 - _M, _Y0 - _M, _X1 + _M, _Y1 + _M


@njit(**_OPTS)
def _forward_1(x, y, bd):  # pragma: no cover  (compiled)
    # the composition of gridgeo._gcj._gcj_forward_1 (numba cannot call it: its callees are
    # plain Python functions there)
    ca, sa, cb, sb = _base_1(x, y)
    sx, sy, _, _, _, _ = _gcj_shift_1(x, y, ca, sa, cb, sb)
    fx = x + sx
    fy = y + sy
    if bd:
        fx, fy = _bd_from_gcj_1(fx, fy)
    return fx, fy


@njit(parallel=True, **_OPTS)
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


@njit(parallel=True, **_OPTS)
def inverse(gx, gy, bd, out_x, out_y):  # pragma: no cover  (compiled)
    """GCJ-02 (or BD-09) -> WGS84 into ``out_x, out_y`` (the rules of
    :func:`gridgeo._gcj._inverse_py`); returns how many points took the fixed-point loop.

    GCJ-02: one branch-free, vectorised pass of two Newton steps per point; the points whose
    bound fails (within ~0.001° of 105°E, or not finite and near the box) are flagged and
    redone by the fixed-point loop in a second pass. BD-09: the fixed-point loop throughout.
    """
    n = gx.shape[0]
    if bd:
        todo = np.ones(n, dtype=np.bool_)
        n_todo = n
    else:
        todo = np.empty(n, dtype=np.bool_)
        n_todo = 0
        for i in prange(n):
            x = gx[i]
            y = gy[i]
            wx, wy, ok = _gcj_newton_1(x, y)
            near = (x >= _FX0) & (x <= _FX1) & (y >= _FY0) & (y <= _FY1)
            inside = ((wx >= _X0) & (wx <= _X1) & (wy >= _Y0) & (wy <= _Y1)) | (
                (x >= _X0) & (x <= _X1) & (y >= _Y0) & (y <= _Y1)
            )
            keep = near & ok & inside
            out_x[i] = wx if keep else x
            out_y[i] = wy if keep else y
            redo = near & ~ok
            todo[i] = redo
            n_todo += np.int64(redo)
    if n_todo:
        for i in prange(n):
            if todo[i]:
                x = gx[i]
                y = gy[i]
                out_x[i] = x
                out_y[i] = y
                if _far_outside(x, y):
                    continue
                wx, wy, converged = _fixed_point_1(x, y, bd)
                if converged and (_inside(wx, wy) or _inside(x, y)):
                    out_x[i] = wx
                    out_y[i] = wy
    return n_todo
