"""CRS round trips: GCJ-02/BD-09 exact inverses, axis order, metric CRS choice."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.crs import (
    CHINA_BOX,
    crs_name,
    from_wgs84,
    in_china,
    metric_crs,
    normalize_crs,
    to_wgs84,
)
from gridgeo.errors import CRSError, InputError

M_PER_DEG = 111_320.0


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    """120k points spread over China's box (deterministic)."""
    rng = np.random.default_rng(20261122)
    x0, y0, x1, y1 = CHINA_BOX
    n = 120_000
    return rng.uniform(x0 + 0.01, x1 - 0.01, n), rng.uniform(y0 + 0.01, y1 - 0.01, n)


def test_gcj02_test_vector_exact() -> None:
    x, y = from_wgs84([120.0], [40.0], "gcj02")
    assert abs(x[0] - 120.00567568355486) < 1e-9
    assert abs(y[0] - 40.0013047896019) < 1e-9
    lon, lat = to_wgs84([120.00567568355486], [40.0013047896019], "gcj02")
    assert abs(lon[0] - 120.0) < 1e-9 and abs(lat[0] - 40.0) < 1e-9


@pytest.mark.parametrize("name", ["gcj02", "bd09"])
def test_inverse_within_1mm_on_120k_points(china_points, name) -> None:
    lon, lat = china_points
    gx, gy = from_wgs84(lon, lat, name)
    # the obfuscation really moves points (hundreds of metres), so the test can fail
    assert np.median(np.hypot(gx - lon, gy - lat)) * M_PER_DEG > 100
    back_lon, back_lat = to_wgs84(gx, gy, name)
    err_m = np.hypot((back_lon - lon) * np.cos(np.radians(lat)), back_lat - lat) * M_PER_DEG
    assert err_m.max() < 1e-3


def test_one_step_inverse_would_fail(china_points) -> None:
    """Guard the test above: the naive inverse is metres off, ours is not."""
    lon, lat = china_points
    gx, gy = from_wgs84(lon, lat, "gcj02")
    fx, fy = from_wgs84(gx, gy, "gcj02")
    naive_lon, naive_lat = 2 * gx - fx, 2 * gy - fy
    err = np.hypot(naive_lon - lon, naive_lat - lat) * M_PER_DEG
    assert err.max() > 0.1


def test_outside_china_is_identity() -> None:
    lon, lat = np.array([2.35, -74.0, 139.7]), np.array([48.85, 40.7, 35.7])
    assert not in_china(lon, lat).any()
    for name in ("gcj02", "bd09"):
        x, y = from_wgs84(lon, lat, name)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)
        x, y = to_wgs84(lon, lat, name)
        np.testing.assert_array_equal(x, lon)


def test_box_edges() -> None:
    x0, y0, x1, y1 = CHINA_BOX
    assert in_china([x0, x1], [y0, y1]).all()
    assert not in_china([x0 - 1e-6, x1 + 1e-6], [y0, y1]).any()


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(CHINA_BOX[0] + 0.05, CHINA_BOX[2] - 0.05),
    lat=st.floats(CHINA_BOX[1] + 0.05, CHINA_BOX[3] - 0.05),
    name=st.sampled_from(["gcj02", "bd09", "cgcs2000", "wgs84", "EPSG:4549", "EPSG:3857"]),
)
def test_roundtrip_any_crs(lon: float, lat: float, name: str) -> None:
    x, y = from_wgs84(lon, lat, name)
    back_lon, back_lat = to_wgs84(x, y, name)
    assert abs(back_lon[0] - lon) * M_PER_DEG < 1e-3
    assert abs(back_lat[0] - lat) * M_PER_DEG < 1e-3


def test_cgcs2000_axis_order_is_lon_lat() -> None:
    """EPSG:4490 is officially lat/lon; gridgeo is always lon/lat."""
    assert pyproj.CRS.from_epsg(4490).axis_info[0].direction == "north"
    x, y = from_wgs84(116.39, 39.91, "EPSG:4490")
    assert (x[0], y[0]) == (116.39, 39.91)
    e, n = from_wgs84(116.39, 39.91, "EPSG:4547")  # CGCS2000 GK CM 114E
    assert 600_000 < e[0] < 800_000 and 4_400_000 < n[0] < 4_450_000
    lon, lat = to_wgs84(e, n, pyproj.CRS.from_epsg(4547))
    assert abs(lon[0] - 116.39) < 1e-9 and abs(lat[0] - 39.91) < 1e-9


@pytest.mark.parametrize(
    ("bounds", "epsg"),
    [
        ((114.8, 25.3, 115.0, 25.5), 4547),  # Xinfeng, CM 114E
        ((116.2, 39.8, 116.5, 40.0), 4548),  # Beijing, CM 117E
        ((121.3, 31.1, 121.6, 31.3), 4549),  # Shanghai, CM 120E
        ((87.5, 43.7, 87.7, 43.9), 4538),  # Urumqi, CM 87E
        ((-0.2, 51.4, 0.1, 51.6), 32630),  # London, UTM 30N
        ((151.1, -33.9, 151.3, -33.8), 32756),  # Sydney, UTM 56S
    ],
)
def test_metric_crs(bounds, epsg) -> None:
    crs = metric_crs(bounds)
    assert crs.to_epsg() == epsg
    assert crs.is_projected


def test_metric_crs_needs_a_crs_on_frames() -> None:
    import geopandas as gpd
    import shapely

    with pytest.raises(CRSError, match="has no CRS"):
        metric_crs(gpd.GeoSeries([shapely.box(115, 25, 116, 26)]))


def test_unknown_crs_is_named() -> None:
    with pytest.raises(CRSError, match="unknown CRS 'gcj03'"):
        to_wgs84([1.0], [2.0], "gcj03")
    with pytest.raises(CRSError, match="no CRS given"):
        normalize_crs(None)


def test_shape_mismatch() -> None:
    with pytest.raises(InputError, match="different shapes"):
        to_wgs84([1.0, 2.0], [3.0], "wgs84")


def test_names() -> None:
    assert crs_name("BD-09") == "bd09"
    assert crs_name(pyproj.CRS.from_epsg(4326)) == "wgs84"
    assert crs_name("http://www.opengis.net/def/crs/OGC/1.3/CRS84") == "wgs84"


def test_nan_passes_through() -> None:
    x, y = to_wgs84([np.nan, 115.0], [25.0, 25.0], "gcj02")
    assert np.isnan(x[0]) and np.isfinite(x[1]) and np.isfinite(y[1])
