"""Coordinates: WGS84, CGCS2000, GCJ-02, BD-09 and the metric CRS of the data.

Everything in gridgeo is **lon/lat (x/y)**, whatever a CRS's official axis
order: pyproj transformers here are always built with ``always_xy=True``.

* ``"wgs84"`` is EPSG:4326.
* ``"cgcs2000"`` is EPSG:4490. At metre level it equals WGS84 (the two frames
  differ by a few centimetres), so converting between them is the identity.
* ``"gcj02"`` (Amap, Tencent, most phones in China) and ``"bd09"`` (Baidu) are
  obfuscated datums that PROJ does not know. The forward transforms are the
  widely published formulas; the inverses iterate the forward transform to a
  fixed point, exact to well under 1 mm (the one-step inverse is off by up
  to ~4.5 m).
* Any other CRS pyproj knows (``"EPSG:4547"``, a WKT string, a
  :class:`pyproj.CRS`) is converted by PROJ.

**Outside China** the GCJ-02 and BD-09 transforms are the identity: a WGS84
point outside the box 72.004–137.8347°E, 0.8293–55.8271°N (:data:`CHINA_BOX`)
is returned unchanged, as the published formulas do. Inverting, a coordinate
whose preimage lies outside the box is returned unchanged. Within a few hundred
metres outside the box edge a coordinate can have two preimages (itself, and a
shifted point inside the box); gridgeo returns the one inside China.

Examples
--------
>>> x, y = from_wgs84([120.0], [40.0], "gcj02")
>>> round(float(x[0]), 9), round(float(y[0]), 9)
(120.005675684, 40.00130479)
>>> lon, lat = to_wgs84(x, y, "gcj02")
>>> round(float(lon[0]), 9), round(float(lat[0]), 9)
(120.0, 40.0)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray

from gridgeo.errors import CRSError, InputError

__all__ = [
    "CHINA_BOX",
    "NAMED_CRS",
    "crs_name",
    "from_wgs84",
    "in_china",
    "metric_crs",
    "normalize_crs",
    "to_wgs84",
]

#: lon_min, lat_min, lon_max, lat_max of the box in which GCJ-02 applies.
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)

#: The names accepted besides anything pyproj understands.
NAMED_CRS = ("wgs84", "cgcs2000", "gcj02", "bd09")

_ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "4326": "wgs84",
    "crs84": "wgs84",
    "ogc:crs84": "wgs84",
    "http://www.opengis.net/def/crs/ogc/1.3/crs84": "wgs84",
    "http://www.opengis.net/def/crs/epsg/0/4326": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "4490": "cgcs2000",
    "http://www.opengis.net/def/crs/epsg/0/4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "gcj": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "bd09ll": "bd09",
}

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_INVERSE_TOL_DEG = 1e-11  # ~1 µm
_INVERSE_MAX_ITER = 40

Coords = tuple[NDArray[np.float64], NDArray[np.float64]]


def normalize_crs(crs: Any) -> str | pyproj.CRS:
    """Resolve a CRS argument to a gridgeo name or a :class:`pyproj.CRS`.

    Parameters
    ----------
    crs
        One of :data:`NAMED_CRS` (any case, with or without the hyphen), an EPSG
        code or URI, a WKT/PROJ string, or a :class:`pyproj.CRS`.

    Returns
    -------
    str or pyproj.CRS
        ``"wgs84"``, ``"cgcs2000"``, ``"gcj02"``, ``"bd09"`` or a pyproj CRS.

    Raises
    ------
    CRSError
        If ``crs`` is ``None`` or unknown.

    Examples
    --------
    >>> normalize_crs("GCJ-02"), normalize_crs("EPSG:4490"), normalize_crs(4326)
    ('gcj02', 'cgcs2000', 'wgs84')
    >>> normalize_crs("EPSG:4547").to_epsg()
    4547
    """
    if crs is None:
        raise CRSError(f"no CRS given; pass one of {list(NAMED_CRS)} or an EPSG code")
    if isinstance(crs, (str, int)):
        return _normalize_cached(crs)
    return _normalize_uncached(crs)


@lru_cache(maxsize=256)
def _normalize_cached(crs: str | int) -> str | pyproj.CRS:
    return _normalize_uncached(crs)


def _normalize_uncached(crs: Any) -> str | pyproj.CRS:
    if isinstance(crs, pyproj.CRS):
        epsg = crs.to_epsg(min_confidence=100)
        if epsg in (4326, 4490):
            return "wgs84" if epsg == 4326 else "cgcs2000"
        return crs
    key = str(crs).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise CRSError(
            f"unknown CRS {crs!r}; use one of {list(NAMED_CRS)} or anything pyproj knows "
            "(e.g. 'EPSG:4547')"
        ) from err
    return _normalize_uncached(parsed)


def crs_name(crs: Any) -> str:
    """A short printable name for a CRS.

    Examples
    --------
    >>> crs_name("bd-09"), crs_name("EPSG:4547")
    ('bd09', 'EPSG:4547')
    """
    norm = normalize_crs(crs)
    if isinstance(norm, str):
        return norm
    epsg = norm.to_epsg()
    return f"EPSG:{epsg}" if epsg else norm.name


def _as_xy(x: ArrayLike, y: ArrayLike) -> Coords:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape:
        raise InputError(f"x and y have different shapes: {xa.shape} and {ya.shape}")
    return np.atleast_1d(xa).copy(), np.atleast_1d(ya).copy()


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Whether lon/lat points fall in the box where GCJ-02 applies.

    Examples
    --------
    >>> in_china([116.4, -0.1], [39.9, 51.5]).tolist()
    [True, False]
    """
    lo, la = _as_xy(lon, lat)
    x0, y0, x1, y1 = CHINA_BOX
    return (lo >= x0) & (lo <= x1) & (la >= y0) & (la <= y1)


def _gcj_offset(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
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


def _wgs_to_gcj_everywhere(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _bd_offset(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _wgs_to_bd_everywhere(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
    return _bd_offset(*_wgs_to_gcj_everywhere(lon, lat))


def _only_in_china(forward: Any) -> Any:
    """Apply ``forward`` to points in China's box; leave the others unchanged.

    Whether the offset applies is decided once, on the WGS84 point.
    """

    def apply(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Coords:
        inside = in_china(lon, lat)
        fx, fy = forward(lon, lat)
        return np.where(inside, fx, lon), np.where(inside, fy, lat)

    return apply


_wgs_to_gcj = _only_in_china(_wgs_to_gcj_everywhere)
_wgs_to_bd = _only_in_china(_wgs_to_bd_everywhere)


def _invert(forward: Any, gx: NDArray[np.float64], gy: NDArray[np.float64]) -> Coords:
    """Invert an obfuscation exactly.

    ``forward`` is the offset applied everywhere. Its inverse is found by
    fixed-point iteration (the offset is smooth and small). Where that
    preimage lies in China's box it is the answer; elsewhere the forward
    transform was the identity and the point is its own preimage. So a
    coordinate just outside the box edge whose preimage lies inside it (the two
    are ambiguous there) resolves to the point inside China.
    """
    wx, wy = gx.copy(), gy.copy()
    finite = np.isfinite(gx) & np.isfinite(gy)
    for _ in range(_INVERSE_MAX_ITER):
        # far from China (e.g. at the poles) the offset formula overflows; those points are
        # their own preimage (restored below), so the warnings would only be noise
        with np.errstate(over="ignore", invalid="ignore"):
            fx, fy = forward(wx, wy)
        dx, dy = fx - gx, fy - gy
        wx -= dx
        wy -= dy
        err = np.maximum(np.abs(dx), np.abs(dy))
        if float(np.max(err[finite], initial=0.0)) < _INVERSE_TOL_DEG:
            break
    outside = ~in_china(wx, wy) & ~in_china(gx, gy)
    wx[outside], wy[outside] = gx[outside], gy[outside]
    return wx, wy


@lru_cache(maxsize=64)
def _transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


_WGS84 = pyproj.CRS.from_epsg(4326)


def to_wgs84(x: ArrayLike, y: ArrayLike, crs: Any) -> Coords:
    """Convert coordinates in ``crs`` to WGS84 lon/lat.

    Parameters
    ----------
    x, y
        Coordinates (lon/lat for geographic CRSs, easting/northing otherwise),
        scalars or arrays of one shape.
    crs
        See :func:`normalize_crs`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in EPSG:4326, float64, at least 1-d.

    Raises
    ------
    CRSError
        If ``crs`` is unknown.
    InputError
        If ``x`` and ``y`` differ in shape.

    Examples
    --------
    >>> lon, lat = to_wgs84([120.00567568355486], [40.0013047896019], "gcj02")
    >>> bool(abs(lon[0] - 120.0) < 1e-9 and abs(lat[0] - 40.0) < 1e-9)
    True
    >>> to_wgs84(500000.0, 4427757.22, "EPSG:4549")[0].round(6)
    array([120.])
    """
    xa, ya = _as_xy(x, y)
    norm = normalize_crs(crs)
    if isinstance(norm, pyproj.CRS):
        lon, lat = _transformer(norm, _WGS84).transform(xa, ya)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if norm in ("wgs84", "cgcs2000"):
        return xa, ya
    if norm == "gcj02":
        return _invert(_wgs_to_gcj_everywhere, xa, ya)
    return _invert(_wgs_to_bd_everywhere, xa, ya)


def from_wgs84(lon: ArrayLike, lat: ArrayLike, crs: Any) -> Coords:
    """Convert WGS84 lon/lat to coordinates in ``crs``.

    Parameters
    ----------
    lon, lat
        WGS84 coordinates in degrees.
    crs
        See :func:`normalize_crs`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)`` in ``crs``, always x first (lon, or easting).

    Examples
    --------
    >>> x, y = from_wgs84(120.0, 40.0, "bd09")
    >>> bool(x[0] > 120.01 and y[0] > 40.007)
    True
    >>> from_wgs84(120.0, 40.0, "EPSG:4490")
    (array([120.]), array([40.]))
    """
    lo, la = _as_xy(lon, lat)
    norm = normalize_crs(crs)
    if isinstance(norm, pyproj.CRS):
        x, y = _transformer(_WGS84, norm).transform(lo, la)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if norm in ("wgs84", "cgcs2000"):
        return lo, la
    if norm == "gcj02":
        return _wgs_to_gcj(lo, la)
    return _wgs_to_bd(lo, la)


def _lonlat_center(data: Any, crs: Any | None) -> tuple[float, float]:
    import geopandas as gpd
    import shapely

    if isinstance(data, (gpd.GeoDataFrame, gpd.GeoSeries)):
        if data.crs is None and crs is None:
            raise CRSError("the data has no CRS; set one (e.g. gdf.set_crs('EPSG:4490'))")
        src = crs if crs is not None else data.crs
        x0, y0, x1, y1 = data.total_bounds
    elif isinstance(data, shapely.Geometry):
        src = crs if crs is not None else "wgs84"
        x0, y0, x1, y1 = shapely.bounds(data)
    else:
        src = crs if crs is not None else "wgs84"
        x0, y0, x1, y1 = (float(v) for v in data)
    if not np.all(np.isfinite([x0, y0, x1, y1])):
        raise InputError("cannot choose a metric CRS for empty data")
    lon, lat = to_wgs84([(x0 + x1) / 2], [(y0 + y1) / 2], src)
    return float(lon[0]), float(lat[0])


def metric_crs(data: Any, crs: Any | None = None) -> pyproj.CRS:
    """The projected metric CRS in which gridgeo measures lengths and areas.

    Inside China: the CGCS2000 3-degree Gauss–Krüger zone without zone prefix
    (EPSG:4534–4554, central meridians 75°E–135°E) nearest the data's centre.
    Elsewhere: the WGS84 UTM zone of the centre.

    Parameters
    ----------
    data
        A GeoDataFrame/GeoSeries with a CRS, a shapely geometry, or a bounds
        tuple ``(xmin, ymin, xmax, ymax)``.
    crs
        CRS of ``data`` when it is a geometry or bounds (default WGS84), or to
        override a frame's CRS.

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    CRSError
        If a frame has no CRS.

    Examples
    --------
    >>> import shapely
    >>> metric_crs(shapely.box(118.9, 31.9, 119.1, 32.1)).to_epsg()
    4549
    >>> metric_crs((2.2, 48.8, 2.4, 48.9)).to_epsg()
    32631
    """
    lon, lat = _lonlat_center(data, crs)
    if bool(in_china([lon], [lat])[0]):
        cm = int(np.clip(3 * round(lon / 3.0), 75, 135))
        return pyproj.CRS.from_epsg(4534 + (cm - 75) // 3)
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0) + 1, 1, 60))
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
