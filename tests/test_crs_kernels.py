"""The compiled GCJ-02 / BD-09 kernels against the numpy implementation they replaced."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo import crs
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
