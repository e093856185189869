"""The compiled GCJ-02 / BD-09 kernels against the numpy implementation they replaced."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo import _gcj, crs
from gridgeo.crs import CHINA_BOX, from_wgs84, in_china, to_wgs84

M_PER_DEG = 111_320.0
NAMES = ("gcj02", "bd09")


# ---- the reference: gridgeo.crs's numpy implementation before the kernels (batch-wide
# fixed-point iteration, twelve numpy sines per forward evaluation) ------------------------

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _ref_gcj_offset(lon, lat):
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def _ref_gcj(lon, lat):
    dlon, dlat = _ref_gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _ref_bd(lon, lat):
    gx, gy = _ref_gcj(lon, lat)
    z = np.sqrt(gx * gx + gy * gy) + 0.00002 * np.sin(gy * _X_PI)
    theta = np.arctan2(gy, gx) + 0.000003 * np.cos(gx * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _ref_in_china(lon, lat):
    x0, y0, x1, y1 = CHINA_BOX
    return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def _reference_forward(lon, lat, name):
    forward = _ref_gcj if name == "gcj02" else _ref_bd
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    inside = _ref_in_china(lon, lat)
    with np.errstate(over="ignore", invalid="ignore"):
        fx, fy = forward(lon, lat)
    return np.where(inside, fx, lon), np.where(inside, fy, lat)


def _reference_inverse(gx, gy, name):
    forward = _ref_gcj if name == "gcj02" else _ref_bd
    gx, gy = np.asarray(gx, dtype=float), np.asarray(gy, dtype=float)
    wx, wy = gx.copy(), gy.copy()
    finite = np.isfinite(gx) & np.isfinite(gy)
    for _ in range(40):
        with np.errstate(over="ignore", invalid="ignore"):
            fx, fy = forward(wx, wy)
        dx, dy = fx - gx, fy - gy
        wx -= dx
        wy -= dy
        err = np.maximum(np.abs(dx), np.abs(dy))
        if float(np.max(err[finite], initial=0.0)) < 1e-11:
            break
    outside = ~_ref_in_china(wx, wy) & ~_ref_in_china(gx, gy)
    wx[outside], wy[outside] = gx[outside], gy[outside]
    return wx, wy


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box_points() -> tuple[np.ndarray, np.ndarray]:
    """100k points over China's box and 0.3° around it (deterministic)."""
    rng = np.random.default_rng(14_6)
    x0, y0, x1, y1 = CHINA_BOX
    n = 100_000
    return rng.uniform(x0 - 0.3, x1 + 0.3, n), rng.uniform(y0 - 0.3, y1 + 0.3, n)


lons = st.floats(CHINA_BOX[0] + 0.02, CHINA_BOX[2] - 0.02)
lats = st.floats(CHINA_BOX[1] + 0.02, CHINA_BOX[3] - 0.02)


# ---- equality with the reference -------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_forward_equals_reference(box_points, name) -> None:
    lon, lat = box_points
    x, y = from_wgs84(lon, lat, name)
    rx, ry = _reference_forward(lon, lat, name)
    assert np.abs(x - rx).max() < 1e-9 and np.abs(y - ry).max() < 1e-9
    # the points really moved, and the ones outside the box did not
    inside = in_china(lon, lat)
    assert (x[inside] != lon[inside]).all()
    np.testing.assert_array_equal(x[~inside], lon[~inside])


@pytest.mark.parametrize("name", NAMES)
def test_inverse_equals_reference(box_points, name) -> None:
    lon, lat = box_points
    gx, gy = from_wgs84(lon, lat, name)
    x, y = to_wgs84(gx, gy, name)
    rx, ry = _reference_inverse(gx, gy, name)
    assert np.abs(x - rx).max() < 1e-9 and np.abs(y - ry).max() < 1e-9
    # and on coordinates that are not images of anything in particular
    x, y = to_wgs84(lon, lat, name)
    rx, ry = _reference_inverse(lon, lat, name)
    assert np.abs(x - rx).max() < 1e-9 and np.abs(y - ry).max() < 1e-9


@settings(max_examples=300, deadline=None)
@given(lon=lons, lat=lats, name=st.sampled_from(NAMES))
def test_roundtrip_within_1mm(lon: float, lat: float, name: str) -> None:
    x, y = from_wgs84(lon, lat, name)
    back_lon, back_lat = to_wgs84(x, y, name)
    assert abs(back_lon[0] - lon) * M_PER_DEG < 1e-3
    assert abs(back_lat[0] - lat) * M_PER_DEG < 1e-3
    rx, ry = _reference_inverse(x, y, name)
    assert abs(back_lon[0] - rx[0]) < 1e-9 and abs(back_lat[0] - ry[0]) < 1e-9


# ---- one point alone == the same point in a batch, bit for bit --------------------------


@settings(max_examples=100, deadline=None)
@given(
    lon=lons,
    lat=lats,
    name=st.sampled_from(NAMES),
    pos=st.integers(0, 999),
)
def test_single_point_equals_batch(lon: float, lat: float, name: str, pos: int) -> None:
    rng = np.random.default_rng(pos)
    x0, y0, x1, y1 = CHINA_BOX
    bx, by = rng.uniform(x0, x1, 1000), rng.uniform(y0, y1, 1000)
    bx[pos], by[pos] = lon, lat
    for convert in (from_wgs84, to_wgs84):
        ax, ay = convert(bx, by, name)
        sx, sy = convert(lon, lat, name)
        assert (sx[0], sy[0]) == (ax[pos], ay[pos])


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("bd", [False, True])
def test_python_path_equals_kernel(box_points, bd, inverse) -> None:
    """Tiny batches run the scalar code in Python before numba is loaded: same bits."""
    lon, lat = (a[:3000] for a in box_points)
    py = (crs._inverse_py if inverse else crs._forward_py)(lon, lat, bd)
    kx, ky = crs._obfuscate(lon, lat, bd=bd, inverse=inverse)
    np.testing.assert_array_equal(py[0], kx)
    np.testing.assert_array_equal(py[1], ky)


# ---- NaN, outside China, shapes, import ------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_other", [0, 50])  # the Python path and the kernel
def test_nan_as_before(name, n_other) -> None:
    x = np.r_[np.nan, 115.0, 115.0, np.full(n_other, 116.0)]
    y = np.r_[25.0, np.nan, 25.0, np.full(n_other, 26.0)]
    for convert in (to_wgs84, from_wgs84):
        ox, oy = convert(x, y, name)
        ref = (_reference_inverse if convert is to_wgs84 else _reference_forward)(x, y, name)
        np.testing.assert_array_equal(np.isnan(ox), np.isnan(ref[0]))
        np.testing.assert_array_equal(np.isnan(oy), np.isnan(ref[1]))
        assert np.isnan(ox[0]) and oy[0] == 25.0 and ox[1] == 115.0 and np.isnan(oy[1])
        assert np.isfinite(ox[2:]).all() and np.isfinite(oy[2:]).all()


@pytest.mark.parametrize("name", NAMES)
def test_outside_china_identity(name) -> None:
    rng = np.random.default_rng(3)
    lon = np.r_[rng.uniform(-180, 60, 500), 2.35, -74.0, 139.7, 0.0, 0.0, 180.0]
    lat = np.r_[rng.uniform(-90, 90, 500), 48.85, 40.7, 35.7, 90.0, -90.0, 0.0]
    for convert in (to_wgs84, from_wgs84):
        x, y = convert(lon, lat, name)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)


def test_shape_is_kept() -> None:
    lon = np.linspace(110, 120, 12).reshape(3, 4)
    lat = np.linspace(25, 35, 12).reshape(3, 4)
    x, y = from_wgs84(lon, lat, "gcj02")
    assert x.shape == (3, 4) and y.shape == (3, 4)
    back, _ = to_wgs84(x, y, "gcj02")
    assert np.abs(back - lon).max() < 1e-9


def test_import_crs_does_not_load_numba() -> None:
    code = (
        "import sys, gridgeo.crs as c; "
        "c.to_wgs84([114.3], [30.5], 'gcj02'); c.from_wgs84([114.3], [30.5], 'bd09'); "
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- GCJ-02's Newton inverse: its pieces, its bound, its fallback ---------------------------

MARGIN = 0.55  # the region of the bound constants: China's box and 0.55° around it
X_STRIP = _gcj._NEWTON_X0


def _shift_and_jacobian(lon: float, lat: float) -> tuple[np.ndarray, np.ndarray]:
    sx, sy, jxx, jxy, jyx, jyy = _gcj._gcj_shift_1(lon, lat, *_gcj._base_1(lon, lat))
    return np.array([sx, sy]), np.array([[jxx, jxy], [jyx, jyy]])


@settings(max_examples=300, deadline=None)
@given(t=st.floats(-1.8, 1.8))
def test_sincos_polynomials(t: float) -> None:
    import math

    c, s = _gcj._sincos_1(t)
    assert abs(c - math.cos(t)) <= 5e-16 and abs(s - math.sin(t)) <= 5e-16


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(CHINA_BOX[0] - MARGIN, CHINA_BOX[2] + MARGIN),
    lat=st.floats(CHINA_BOX[1] - MARGIN, CHINA_BOX[3] + MARGIN),
)
def test_jacobian_is_the_derivative(lon: float, lat: float) -> None:
    """The analytic Jacobian against central differences of the offset."""
    if abs(lon - 105.0) < X_STRIP + 1e-4:
        lon += 3 * X_STRIP  # the sqrt term's derivative is left out in the strip
    h = 1e-6
    _, jac = _shift_and_jacobian(lon, lat)
    num = np.empty((2, 2))
    num[:, 0] = (_shift_and_jacobian(lon + h, lat)[0] - _shift_and_jacobian(lon - h, lat)[0]) / (
        2 * h
    )
    num[:, 1] = (_shift_and_jacobian(lon, lat + h)[0] - _shift_and_jacobian(lon, lat - h)[0]) / (
        2 * h
    )
    assert np.abs(num - jac).max() < 1e-9  # the entries are ~1e-3; differences ~1e-11


def test_shift_equals_the_published_offset(box_points) -> None:
    """The offset half of ``_gcj_shift_1`` is the reference formula."""
    lon, lat = (a[:2000] for a in box_points)
    rx, ry = _ref_gcj_offset(lon, lat)
    for i in range(lon.size):
        s, _ = _shift_and_jacobian(float(lon[i]), float(lat[i]))
        assert abs(s[0] - rx[i]) < 1e-15 and abs(s[1] - ry[i]) < 1e-15


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(CHINA_BOX[0] - MARGIN + 0.02, CHINA_BOX[2] + MARGIN - 0.02),
    lat=st.floats(CHINA_BOX[1] - MARGIN + 0.02, CHINA_BOX[3] + MARGIN - 0.02),
    dx=st.floats(-0.02, 0.02),
    dy=st.floats(-0.02, 0.02),
)
def test_second_derivative_bound(lon: float, lat: float, dx: float, dy: float) -> None:
    """Taylor: |s(b+d) - s(b) - J(b)·d| <= M/2·|d|² (max norm), with half of M's margin."""
    d = np.array([dx, dy])
    size = np.abs(d).max()
    if size < 1e-4:  # below that, rounding (~1e-17) is not small beside M·|d|²
        d = d / max(size, 1e-300) * 1e-4 if size > 0 else np.array([1e-4, 0.0])
        size = 1e-4
    if (
        min(abs(lon - 105.0), abs(lon + d[0] - 105.0)) < X_STRIP
        or (lon - 105.0) * (lon + d[0] - 105.0) < 0
    ):
        lon = 105.0 + np.copysign(X_STRIP + 0.025, lon - 105.0)  # keep the segment off the strip
    s0, jac = _shift_and_jacobian(lon, lat)
    s1, _ = _shift_and_jacobian(lon + d[0], lat + d[1])
    rem = np.abs(s1 - s0 - jac @ d).max()
    assert rem <= _gcj._SECOND_DERIV_GCJ / 2 / 2 * size**2


def test_bound_constants_measured() -> None:
    """Re-measure M (second derivative) and L (contraction) on a grid over the box + 0.55°,
    by central differences of the analytic Jacobian: each under half its constant."""
    from numba import njit, prange

    from gridgeo import _crs_kernels as kern

    shift, base = kern._gcj_shift_1, kern._base_1

    @njit
    def jac(lon, lat):  # pragma: no cover  (compiled)
        ca, sa, cb, sb = base(lon, lat)
        _, _, a, b, c, d = shift(lon, lat, ca, sa, cb, sb)
        return a, b, c, d

    @njit(parallel=True)
    def scan(lons, lats, h):  # pragma: no cover  (compiled)
        m_out = np.zeros(lons.shape[0])
        l_out = np.zeros(lons.shape[0])
        for i in prange(lons.shape[0]):
            lon = lons[i]
            for lat in lats:
                a1, b1, c1, d1 = jac(lon + h, lat)
                a0, b0, c0, d0 = jac(lon - h, lat)
                a3, b3, c3, d3 = jac(lon, lat + h)
                a2, b2, c2, d2 = jac(lon, lat - h)
                rx = (abs(a1 - a0) + abs(b1 - b0 + a3 - a2) + abs(b3 - b2)) / (2 * h)
                ry = (abs(c1 - c0) + abs(d1 - d0 + c3 - c2) + abs(d3 - d2)) / (2 * h)
                m_out[i] = max(m_out[i], rx, ry)
                a, b, c, d = jac(lon, lat)
                l_out[i] = max(l_out[i], abs(a) + abs(b), abs(c) + abs(d))
        return m_out, l_out

    x0, y0, x1, y1 = CHINA_BOX
    lons = np.arange(x0 - MARGIN, x1 + MARGIN, 0.01)
    lons = lons[np.abs(lons - 105.0) > X_STRIP + 1e-4]
    strip = X_STRIP + 1e-4 + np.arange(0.0, 0.02, 1e-4)
    lons = np.r_[lons, 105.0 + strip, 105.0 - strip]
    lats = np.arange(y0 - MARGIN, y1 + MARGIN + 1e-9, 0.05)
    m, lip = scan(lons, lats, 1e-5)
    assert 0.08 < m.max() <= _gcj._SECOND_DERIV_GCJ / 2  # measured 0.0835 on a finer grid
    assert 0.007 < lip.max() <= _gcj._CONTRACTION_GCJ / 1.95  # measured 0.00757


def _kernel_inverse(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    from gridgeo import _crs_kernels as kern

    ox, oy = np.empty_like(gx), np.empty_like(gy)
    n_todo = kern.inverse(gx, gy, False, ox, oy)
    return ox, oy, int(n_todo)


@settings(max_examples=300, deadline=None)
@given(lon=lons, lat=lats)
def test_newton_is_vouched_for_away_from_105e(lon: float, lat: float) -> None:
    """Away from the strip along 105°E Newton's bound holds (no point is redone), and the
    bound is true: the result is within 5e-10° of the converged reference."""
    gx, gy = from_wgs84(lon, lat, "gcj02")
    wx, wy, ok = _gcj._gcj_newton_1(float(gx[0]), float(gy[0]))
    rx, ry = _reference_inverse(gx, gy, "gcj02")
    if ok:
        assert abs(wx - rx[0]) <= 5e-10 + 2e-11 and abs(wy - ry[0]) <= 5e-10 + 2e-11
    if abs(lon - 105.0) > 2 * X_STRIP:
        assert ok
        assert _kernel_inverse(gx, gy)[2] == 0


def test_fallback_near_105e() -> None:
    """Points within the strip along 105°E go to the fixed-point loop, and come out right:
    within 1e-9° of the reference, the kernel's bits equal plain Python's."""
    rng = np.random.default_rng(105)
    n = 2000
    lon = 105.0 + rng.uniform(-3 * X_STRIP, 3 * X_STRIP, n)
    lon[:5] = [105.0, np.nextafter(105.0, 0), np.nextafter(105.0, 200), 105.0 - X_STRIP, 105.001]
    lat = rng.uniform(CHINA_BOX[1], CHINA_BOX[3], n)
    # inputs on the strip in GCJ-02 too (the first Newton step's Jacobian lacks the term)
    gx, gy = from_wgs84(lon, lat, "gcj02")
    gx = np.r_[gx, lon]
    gy = np.r_[gy, lat]
    flags = [not _gcj._gcj_newton_1(float(a), float(b))[2] for a, b in zip(gx, gy)]
    ox, oy, n_todo = _kernel_inverse(gx, gy)
    assert n_todo == sum(flags)
    assert sum(flags[:n]) > 0.3 * n  # the strip (±1e-3°) is 1/3 of the preimages (±3e-3°)
    rx, ry = _reference_inverse(gx, gy, "gcj02")
    assert np.abs(ox - rx).max() < 1e-9 and np.abs(oy - ry).max() < 1e-9
    assert np.abs(ox[:n] - lon).max() * M_PER_DEG < 1e-3
    px, py = crs._inverse_py(gx, gy, False)
    np.testing.assert_array_equal(px, ox)
    np.testing.assert_array_equal(py, oy)
    # and those are exactly the points whose first iterate lies within the ball of the strip
    wx1 = []
    for a, b in zip(gx, gy):
        ca, sa = _gcj._sincos_1((a - 105.0) * np.pi / 60.0)
        cb, sb = _gcj._sincos_1((b - 35.0) * np.pi / 180.0)
        s = _gcj._gcj_shift_1(a, b, ca, sa, cb, sb)
        wx1.append(_gcj._newton_step_1(a, b, *s)[0])
    far = np.abs(np.array(wx1) - 105.0) > 2 * X_STRIP
    assert not np.array(flags)[far].any()


def test_box_edges_and_margin() -> None:
    """Coordinates at China's box edges and at the 0.5° margin: the kernel equals plain
    Python bit for bit, and the reference within 1e-9°."""
    x0, y0, x1, y1 = CHINA_BOX
    m = _gcj._INVERSE_MARGIN_DEG
    rng = np.random.default_rng(7)
    n = 400
    xs, ys = [], []
    for edge_x in (x0, x1, x0 - m, x1 + m):
        for off in (-0.02, -1e-9, 0.0, 1e-9, 0.02):
            xs.append(np.full(n, edge_x + off))
            ys.append(rng.uniform(y0 - m, y1 + m, n))
    for edge_y in (y0, y1, y0 - m, y1 + m):
        for off in (-0.02, -1e-9, 0.0, 1e-9, 0.02):
            xs.append(rng.uniform(x0 - m, x1 + m, n))
            ys.append(np.full(n, edge_y + off))
    gx, gy = np.concatenate(xs), np.concatenate(ys)
    ox, oy, _ = _kernel_inverse(gx, gy)
    px, py = crs._inverse_py(gx, gy, False)
    np.testing.assert_array_equal(px, ox)
    np.testing.assert_array_equal(py, oy)
    rx, ry = _reference_inverse(gx, gy, "gcj02")
    assert np.abs(ox - rx).max() < 1e-9 and np.abs(oy - ry).max() < 1e-9
    # past the margin nothing moves; inside the box everything does
    past = crs.in_china(gx, gy) == False  # noqa: E712
    past &= (gx < x0 - m) | (gx > x1 + m) | (gy < y0 - m) | (gy > y1 + m)
    np.testing.assert_array_equal(ox[past], gx[past])
    assert (ox[crs.in_china(gx, gy)] != gx[crs.in_china(gx, gy)]).all()


def test_no_aliasing_of_inputs() -> None:
    """to_wgs84/from_wgs84 no longer copy their input up front: they must still return new
    arrays, and leave the input alone."""
    x = np.array([115.0, 116.0])
    y = np.array([25.0, 26.0])
    for name in ("wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4547"):
        for convert in (to_wgs84, from_wgs84):
            if name == "EPSG:4547" and convert is to_wgs84:
                continue
            ox, oy = convert(x, y, name)
            assert not np.shares_memory(ox, x) and not np.shares_memory(oy, y)
            ox[:] = 0.0
            oy[:] = 0.0
            assert x.tolist() == [115.0, 116.0] and y.tolist() == [25.0, 26.0]
