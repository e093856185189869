"""GCJ-02 and BD-09 one point at a time: the single source of their arithmetic.

:mod:`gridgeo.crs` runs these functions in plain Python for tiny batches, and
``gridgeo._crs_kernels`` compiles them with numba for the rest. Both evaluate the same IEEE
operations in the same order, so a point gets the same bits either way (and alone as in any
batch). Nothing here imports numba.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Coords = tuple[NDArray[np.float64], NDArray[np.float64]]

#: lon_min, lat_min, lon_max, lat_max of the box in which GCJ-02 applies.
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
#: The inverse leaves each point at most this far from its exact preimage (~0.05 mm).
_INVERSE_MAX_ERR_DEG = 5e-10
#: Bounds on the contraction of the fixed-point iteration (max-norm Lipschitz constant of the
#: offset): twice the largest measured over China's box and half a degree around it
#: (GCJ-02 0.0074, BD-09 0.0253).
_CONTRACTION_GCJ = 0.015
_CONTRACTION_BD = 0.05
#: A point stops after a step below this: the error left is at most L/(1-L) times the step.
_INVERSE_TOL_GCJ = _INVERSE_MAX_ERR_DEG * (1.0 - _CONTRACTION_GCJ) / _CONTRACTION_GCJ
_INVERSE_TOL_BD = _INVERSE_MAX_ERR_DEG * (1.0 - _CONTRACTION_BD) / _CONTRACTION_BD
_INVERSE_MAX_ITER = 40
#: GCJ-02's inverse takes two Newton steps (:func:`_gcj_newton_1`). Within this many degrees
#: of 105°E the offset's ``sqrt(|lon - 105|)`` terms have an unbounded derivative: it is left
#: out of the Jacobian there, and a point whose error ball reaches the strip is sent to the
#: fixed-point loop.
_NEWTON_X0 = 1e-3
#: Bound on the offset's second derivative (max norm: the largest over both components of
#: the sum of the absolute second partial derivatives, in 1/degree): twice the largest
#: measured over China's box and 0.55° around it (any Newton iterate and preimage of a point
#: within the 0.5° margin lie there), outside the strip above: 0.0835, at 113.4°E, 56.4°N, on
#: a 0.002° x 0.01° grid plus a 1e-5° grid along the strip (where it is at most 0.066).
#: ``tests/test_crs_kernels.py`` re-measures it; the same scan gives 0.0076 for the
#: contraction, under half of :data:`_CONTRACTION_GCJ`.
_SECOND_DERIV_GCJ = 0.17
#: After the second evaluation, at the first Newton iterate w1 with residual r = f(w1) - g:
#: the preimage is within |r|/(1-L) of w1 (L = :data:`_CONTRACTION_GCJ`), and the second
#: step leaves an error at most M/2 · (|r|/(1-L))² / (1-L) (Taylor with M =
#: :data:`_SECOND_DERIV_GCJ`; the Jacobian's inverse is at most 1/(1-L)). That is at most
#: :data:`_INVERSE_MAX_ERR_DEG` when |r| is at most this.
_NEWTON_MAX_RESIDUAL = math.sqrt(
    _INVERSE_MAX_ERR_DEG * 2.0 * (1.0 - _CONTRACTION_GCJ) ** 3 / _SECOND_DERIV_GCJ
)


# ---- GCJ-02 and BD-09, one point at a time -------------------------------------------------
#
# These scalar functions are the single source of the arithmetic. ``gridgeo._crs_kernels``
# compiles them with numba for batches; tiny batches (a single request) run them as plain
# Python while numba is not loaded yet. Both evaluate the same IEEE operations in the same
# order, with the same libm ``sin``/``cos``, so a point gets the same bits either way.
#
# The published GCJ-02 offset evaluates twelve sines. Here the angles are multiples of two
# base angles (x·π/60 and y·π/180, with x = lon - 105, y = lat - 35), so two ``sincos`` and a
# chain of complex multiplications give them all; the rounding this adds is ~1e-13 of the
# offset (well below a micrometre). GCJ-02's Newton inverse takes those two ``sincos`` from
# Taylor polynomials (:func:`_sincos_1`) instead of libm, so that its compiled loop vectorises;
# plain Python evaluates the same polynomials.

_PI = math.pi
_COS35 = math.cos(35.0 * _PI / 180.0)
_SIN35 = math.sin(35.0 * _PI / 180.0)
_LAT_SCALE = 180.0 / (_A * (1.0 - _EE) * _PI)
_LON_SCALE = 180.0 / (_A * _PI)
_DP_SCALE = _LON_SCALE * _PI / 180.0
_DQ_SCALE = _LAT_SCALE * _PI / 180.0
# k·(2/3)·amplitude·(angle per degree) of each sine in the offset, for its derivative
_D_COMMON_360 = _PI * 80.0  # (2/3)·20·360·π/60
_D_COMMON_120 = _PI * 80.0 / 3.0
_D_60 = _PI * 40.0 / 3.0
_D_20 = _PI * 80.0 / 9.0
_D_5 = _PI * 25.0 / 3.0
_D_2 = _PI * 20.0 / 3.0
_D_180 = _PI * 40.0 / 3.0  # (2/3)·20·180·π/180
_D_60B = _PI * 80.0 / 9.0
_D_15 = _PI * 80.0 / 9.0
_D_6 = _PI * 64.0 / 9.0
#: Points this far (degrees) outside :data:`CHINA_BOX` have no preimage inside it.
_INVERSE_MARGIN_DEG = 0.5


def _inside(lon: float, lat: float) -> bool:
    return CHINA_BOX[0] <= lon <= CHINA_BOX[2] and CHINA_BOX[1] <= lat <= CHINA_BOX[3]


def _gcj_shift_1(
    lon: float, lat: float, ca1: float, sa1: float, cb1: float, sb1: float
) -> tuple[float, float, float, float, float, float]:
    """The GCJ-02 offset at ``(lon, lat)`` and its Jacobian, given ``ca1 + i·sa1 =
    e^(i·xπ/60)`` and ``cb1 + i·sb1 = e^(i·yπ/180)`` (x = lon - 105, y = lat - 35).

    Returns ``(dlon, dlat, dlon/dlon, dlon/dlat, dlat/dlon, dlat/dlat)`` in degrees and degrees
    per degree. ``sNN``/``cNN`` are ``sin``/``cos`` of ``NN·base``: products of unit complex
    numbers, written out in floats (numba's complex product calls a helper per
    multiplication), so every ``sin`` comes with the ``cos`` its derivative needs. The
    derivative of the ``sqrt(|x|)`` terms is left out within :data:`_NEWTON_X0` of 105°E,
    where it is unbounded (:func:`_gcj_newton_1` sends those points to the fixed-point loop).
    The forward transform ignores the Jacobian (the compiled kernels drop it as dead code).
    """
    x = lon - 105.0
    y = lat - 35.0
    ca2, sa2 = ca1 * ca1 - sa1 * sa1, sa1 * ca1 + ca1 * sa1
    ca4, sa4 = ca2 * ca2 - sa2 * sa2, sa2 * ca2 + ca2 * sa2
    ca5, sa5 = ca4 * ca1 - sa4 * sa1, sa4 * ca1 + ca4 * sa1
    ca10, sa10 = ca5 * ca5 - sa5 * sa5, sa5 * ca5 + ca5 * sa5
    ca20, sa20 = ca10 * ca10 - sa10 * sa10, sa10 * ca10 + ca10 * sa10
    ca40, sa40 = ca20 * ca20 - sa20 * sa20, sa20 * ca20 + ca20 * sa20
    ca60, sa60 = ca40 * ca20 - sa40 * sa20, sa40 * ca20 + ca40 * sa20
    ca120, sa120 = ca60 * ca60 - sa60 * sa60, sa60 * ca60 + ca60 * sa60
    ca240, sa240 = ca120 * ca120 - sa120 * sa120, sa120 * ca120 + ca120 * sa120
    ca360, sa360 = ca240 * ca120 - sa240 * sa120, sa240 * ca120 + ca240 * sa120
    cb2, sb2 = cb1 * cb1 - sb1 * sb1, sb1 * cb1 + cb1 * sb1
    cb3, sb3 = cb2 * cb1 - sb2 * sb1, sb2 * cb1 + cb2 * sb1
    cb6, sb6 = cb3 * cb3 - sb3 * sb3, sb3 * cb3 + cb3 * sb3
    cb12, sb12 = cb6 * cb6 - sb6 * sb6, sb6 * cb6 + cb6 * sb6
    cb15, sb15 = cb12 * cb3 - sb12 * sb3, sb12 * cb3 + cb12 * sb3
    cb30, sb30 = cb15 * cb15 - sb15 * sb15, sb15 * cb15 + cb15 * sb15
    cb60, sb60 = cb30 * cb30 - sb30 * sb30, sb30 * cb30 + cb30 * sb30
    cb120, sb120 = cb60 * cb60 - sb60 * sb60, sb60 * cb60 + cb60 * sb60
    cb180, sb180 = cb120 * cb60 - sb120 * sb60, sb120 * cb60 + cb120 * sb60
    cos_rad = cb1 * _COS35 - sb1 * _SIN35  # e^(i·lat·π/180)
    sin_rad = sb1 * _COS35 + cb1 * _SIN35
    abs_x = abs(x)
    sqrt_abs_x = math.sqrt(abs_x)
    # sin(6xπ), sin(2xπ), sin(xπ), sin(xπ/3), sin(xπ/12), sin(xπ/30): sa360 … sa2
    common = (20.0 * sa360 + 20.0 * sa120) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += common
    dlat += (20.0 * sb180 + 40.0 * sb60) * 2.0 / 3.0
    dlat += (160.0 * sb15 + 320.0 * sb6) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += common
    dlon += (20.0 * sa60 + 40.0 * sa20) * 2.0 / 3.0
    dlon += (150.0 * sa5 + 300.0 * sa2) * 2.0 / 3.0
    magic = 1.0 - _EE * sin_rad * sin_rad
    sqrt_magic = math.sqrt(magic)
    # the derivatives of dlon and dlat (metres-ish per degree): d sin(k·a)/dx = k·π/60·cos(k·a)
    # and d sin(k·b)/dy = k·π/180·cos(k·b); the tiny added 1e-300 keeps the division defined
    # (and the same bits) in plain Python at x = 0, where the term is left out anyway
    dsqrt = math.copysign(0.05, x) / (sqrt_abs_x + 1e-300)
    dsqrt = dsqrt if abs_x >= _NEWTON_X0 else 0.0
    dcommon = _D_COMMON_360 * ca360 + _D_COMMON_120 * ca120
    dlon_x = 1.0 + 0.2 * x + 0.1 * y + dsqrt + dcommon
    dlon_x += _D_60 * ca60 + _D_20 * ca20
    dlon_x += _D_5 * ca5 + _D_2 * ca2
    dlon_y = 2.0 + 0.1 * x
    dlat_x = 2.0 + 0.1 * y + 2.0 * dsqrt + dcommon
    dlat_y = 3.0 + 0.4 * y + 0.1 * x
    dlat_y += _D_180 * cb180 + _D_60B * cb60
    dlat_y += _D_15 * cb15 + _D_6 * cb6
    # metres-ish to degrees along the parallel (p) and the meridian (q): the published
    # formulas, with their constant factors folded; dp, dq their derivatives by latitude
    p = sqrt_magic / cos_rad * _LON_SCALE
    q = magic * sqrt_magic * _LAT_SCALE
    dp = (sqrt_magic * sin_rad / (cos_rad * cos_rad) - _EE * sin_rad / sqrt_magic) * _DP_SCALE
    dq = -3.0 * _EE * sin_rad * cos_rad * sqrt_magic * _DQ_SCALE
    return (
        dlon * sqrt_magic / cos_rad * _LON_SCALE,
        dlat * (magic * sqrt_magic) * _LAT_SCALE,
        dlon_x * p,
        dlon_y * p + dlon * dp,
        dlat_x * q,
        dlat_y * q + dlat * dq,
    )


def _base_1(lon: float, lat: float) -> tuple[float, float, float, float]:
    """cos and sin of ``(lon-105)π/60`` and of ``(lat-35)π/180``: two ``sincos``."""
    x = (lon - 105.0) * _PI / 60.0
    y = (lat - 35.0) * _PI / 180.0
    return math.cos(x), math.sin(x), math.cos(y), math.sin(y)


def _turn_1(c: float, s: float, d: float) -> tuple[float, float]:
    """``(c + i·s)·e^(i·d)`` for a small angle (|d| < 1e-2 rad); ``e^(i·d)`` by its Taylor
    series, exact in float64."""
    d2 = d * d
    cd = 1.0 - d2 / 2.0 * (1.0 - d2 / 12.0 * (1.0 - d2 / 30.0))
    sd = d * (1.0 - d2 / 6.0 * (1.0 - d2 / 20.0 * (1.0 - d2 / 42.0)))
    return c * cd - s * sd, s * cd + c * sd


def _gcj_forward_1(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 -> GCJ-02 for one point, applied everywhere (callers check the box)."""
    ca, sa, cb, sb = _base_1(lon, lat)
    dlon, dlat, _, _, _, _ = _gcj_shift_1(lon, lat, ca, sa, cb, sb)
    return lon + dlon, lat + dlat


def _bd_from_gcj_1(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 -> BD-09 for one point."""
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _far_outside(x: float, y: float) -> bool:
    """Not finite, or too far outside the box to be the image of a point inside it."""
    m = _INVERSE_MARGIN_DEG
    return not (
        CHINA_BOX[0] - m <= x <= CHINA_BOX[2] + m and CHINA_BOX[1] - m <= y <= CHINA_BOX[3] + m
    )


def _forward_py(lon: NDArray[np.float64], lat: NDArray[np.float64], bd: bool) -> Coords:
    """The scalar forward transform over a (small) batch, in plain Python."""
    ox, oy = lon.copy(), lat.copy()
    for i in range(lon.size):
        x, y = float(lon.flat[i]), float(lat.flat[i])
        if _inside(x, y):
            fx, fy = _gcj_forward_1(x, y)
            if bd:
                fx, fy = _bd_from_gcj_1(fx, fy)
            ox.flat[i], oy.flat[i] = fx, fy
    return ox, oy


def _sincos_1(t: float) -> tuple[float, float]:
    """``cos(t), sin(t)`` for |t| <= 1.8 (error <= 4e-16) by their Taylor polynomials.

    Plain arithmetic, unlike libm's ``sin``/``cos``, so that a compiled loop over points
    vectorises. The GCJ-02 base angles stay within 1.77 rad wherever the inverse is taken
    (China's box and half a degree around it).
    """
    u = t * t
    s = _S21 * u + _S19
    s = s * u + _S17
    s = s * u + _S15
    s = s * u + _S13
    s = s * u + _S11
    s = s * u + _S9
    s = s * u + _S7
    s = s * u + _S5
    s = s * u + _S3
    c = _C22 * u + _C20
    c = c * u + _C18
    c = c * u + _C16
    c = c * u + _C14
    c = c * u + _C12
    c = c * u + _C10
    c = c * u + _C8
    c = c * u + _C6
    c = c * u + _C4
    c = c * u + _C2
    return 1.0 + u * c, t + t * u * s


# Taylor coefficients of sin (t^k) and cos (t^k): (-1)^(k//2) / k!
_S3, _S5, _S7, _S9, _S11, _S13, _S15, _S17, _S19, _S21 = (
    (-1.0) ** j / math.factorial(2 * j + 1) for j in range(1, 11)
)
_C2, _C4, _C6, _C8, _C10, _C12, _C14, _C16, _C18, _C20, _C22 = (
    (-1.0) ** j / math.factorial(2 * j) for j in range(1, 12)
)


def _newton_step_1(
    wx: float, wy: float, rx: float, ry: float, jxx: float, jxy: float, jyx: float, jyy: float
) -> tuple[float, float]:
    """``w - J⁻¹·r`` with ``J = I + (jxx, jxy; jyx, jyy)``."""
    j00 = 1.0 + jxx
    j11 = 1.0 + jyy
    det = j00 * j11 - jxy * jyx
    return wx - (j11 * rx - jxy * ry) / det, wy - (j00 * ry - jyx * rx) / det


def _gcj_newton_1(x: float, y: float) -> tuple[float, float, bool]:
    """GCJ-02 -> WGS84 for one point by two Newton steps from ``(x, y)``.

    Returns ``(lon, lat, ok)``; ``ok`` when the a-posteriori bound (see
    :data:`_NEWTON_MAX_RESIDUAL`) guarantees an error of at most
    :data:`_INVERSE_MAX_ERR_DEG`, and the ball that bound is drawn on keeps clear of the strip
    along 105°E (:data:`_NEWTON_X0`). No branches: compiled loops vectorise over points
    (NaN fails every test, so it comes out not ``ok``).
    """
    ca0, sa0 = _sincos_1((x - 105.0) * _PI / 60.0)
    cb0, sb0 = _sincos_1((y - 35.0) * _PI / 180.0)
    sx, sy, jxx, jxy, jyx, jyy = _gcj_shift_1(x, y, ca0, sa0, cb0, sb0)
    wx, wy = _newton_step_1(x, y, sx, sy, jxx, jxy, jyx, jyy)  # residual at (x, y): the shift
    # the angles at the iterate are turned from those at the start (no more trig)
    ca, sa = _turn_1(ca0, sa0, (wx - x) * _PI / 60.0)
    cb, sb = _turn_1(cb0, sb0, (wy - y) * _PI / 180.0)
    sx, sy, jxx, jxy, jyx, jyy = _gcj_shift_1(wx, wy, ca, sa, cb, sb)
    rx = (wx - x) + sx  # wx - x is exact: the residual keeps its low bits
    ry = (wy - y) + sy
    ax = abs(rx)
    ay = abs(ry)
    clear = abs(wx - 105.0) - _NEWTON_X0
    ok = (
        (ax <= _NEWTON_MAX_RESIDUAL)
        & (ay <= _NEWTON_MAX_RESIDUAL)
        & (clear >= ax * _NEWTON_BALL)
        & (clear >= ay * _NEWTON_BALL)
    )
    lon, lat = _newton_step_1(wx, wy, rx, ry, jxx, jxy, jyx, jyy)
    return lon, lat, ok


#: The preimage is within this factor times the residual (max norm) of an iterate.
_NEWTON_BALL = 1.0 / (1.0 - _CONTRACTION_GCJ)


def _fixed_point_1(x: float, y: float, bd: bool) -> tuple[float, float, bool]:
    """GCJ-02 (or BD-09) -> WGS84 for one point by fixed-point iteration from ``(x, y)``,
    stopped by the a-posteriori bound of :data:`_INVERSE_TOL_GCJ`; ``(lon, lat, converged)``.
    """
    wx, wy = x, y
    # the angles at each iterate are turned from those at the start (no more trig)
    ca0, sa0, cb0, sb0 = _base_1(x, y)
    tol = _INVERSE_TOL_BD if bd else _INVERSE_TOL_GCJ
    for _ in range(_INVERSE_MAX_ITER):
        ca, sa = _turn_1(ca0, sa0, (wx - x) * _PI / 60.0)
        cb, sb = _turn_1(cb0, sb0, (wy - y) * _PI / 180.0)
        sx, sy, _, _, _, _ = _gcj_shift_1(wx, wy, ca, sa, cb, sb)
        fx, fy = wx + sx, wy + sy
        if bd:
            fx, fy = _bd_from_gcj_1(fx, fy)
        dx = fx - x
        dy = fy - y
        wx -= dx
        wy -= dy
        if max(abs(dx), abs(dy)) < tol:
            return wx, wy, True
    return wx, wy, False


def _inverse_py(gx: NDArray[np.float64], gy: NDArray[np.float64], bd: bool) -> Coords:
    """The scalar inverse over a (small) batch, in plain Python (mirrors the kernel): Newton
    for GCJ-02, the fixed-point loop for BD-09 and for GCJ-02 points Newton cannot vouch for."""
    ox, oy = gx.copy(), gy.copy()
    for i in range(gx.size):
        x, y = float(gx.flat[i]), float(gy.flat[i])
        if _far_outside(x, y):
            continue
        ok = False
        if not bd:
            wx, wy, ok = _gcj_newton_1(x, y)
        if not ok:
            wx, wy, ok = _fixed_point_1(x, y, bd)
        if ok and (_inside(wx, wy) or _inside(x, y)):
            ox.flat[i], oy.flat[i] = wx, wy
    return ox, oy
