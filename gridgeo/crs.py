"""Coordinates: WGS84, CGCS2000, GCJ-02, BD-09 and the metric CRS of the data.

Everything in gridgeo is **lon/lat (x/y)**, whatever a CRS's official axis
order: pyproj transformers here are always built with ``always_xy=True``.

* ``"wgs84"`` is EPSG:4326.
* ``"cgcs2000"`` is EPSG:4490. At metre level it equals WGS84 (the two frames
  differ by a few centimetres), so converting between them is the identity.
* ``"gcj02"`` (Amap, Tencent, most phones in China) and ``"bd09"`` (Baidu) are
  obfuscated datums that PROJ does not know. The forward transforms are the
  widely published formulas. The inverses are exact to well under 1 mm (the
  one-step inverse is off by up to ~4.5 m): GCJ-02's takes two Newton steps
  with the offset's analytic Jacobian, vouched for by an a-posteriori error
  bound, and BD-09's (and GCJ-02's where that bound fails) iterates the forward
  transform to a fixed point. Each point converts on its own, so it gets the
  same bits alone as in any batch. Batches run as compiled kernels
  (``gridgeo._crs_kernels``, numba, imported on first use: ``import
  gridgeo.crs`` does not load numba).
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

import sys
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray

from gridgeo._gcj import (
    CHINA_BOX,
    Coords,
    _forward_py,
    _inverse_py,
)
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


def _as_xy(x: ArrayLike, y: ArrayLike, *, copy: bool = True) -> Coords:
    """float64 arrays, at least 1-d; copies unless ``copy=False`` (then they may be the
    caller's arrays: only for reading)."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape:
        raise InputError(f"x and y have different shapes: {xa.shape} and {ya.shape}")
    if copy:
        return np.atleast_1d(xa).copy(), np.atleast_1d(ya).copy()
    return np.atleast_1d(xa), np.atleast_1d(ya)


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Whether lon/lat points fall in the box where GCJ-02 applies.

    Examples
    --------
    >>> in_china([116.4, -0.1], [39.9, 51.5]).tolist()
    [True, False]
    """
    lo, la = _as_xy(lon, lat, copy=False)
    x0, y0, x1, y1 = CHINA_BOX
    return (lo >= x0) & (lo <= x1) & (la >= y0) & (la <= y1)


#: Batches up to this size run in plain Python while the compiled kernels are not loaded.
_SCALAR_MAX = 8

_KERNELS = "gridgeo._crs_kernels"


def _obfuscate(
    x: NDArray[np.float64], y: NDArray[np.float64], *, bd: bool, inverse: bool
) -> Coords:
    """Apply the GCJ-02 (``bd=False``) or BD-09 transform, or its inverse, to every point.

    Compiled kernels do the work; numba is imported on first use (a service's master process
    starts without it). A batch of at most :data:`_SCALAR_MAX` points runs the same
    arithmetic in plain Python while the kernels are not loaded yet, so that one request does
    not wait for numba.
    """
    kernels = sys.modules.get(_KERNELS)
    if kernels is None and x.size <= _SCALAR_MAX:
        return (_inverse_py if inverse else _forward_py)(x, y, bd)
    if kernels is None:
        import importlib

        kernels = importlib.import_module(_KERNELS)
    from gridgeo._numba import launch_guard

    fx = np.ascontiguousarray(x).ravel()
    fy = np.ascontiguousarray(y).ravel()
    ox = np.empty_like(fx)
    oy = np.empty_like(fy)
    with launch_guard():
        (kernels.inverse if inverse else kernels.forward)(fx, fy, bd, ox, oy)
    return ox.reshape(x.shape), oy.reshape(y.shape)


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
    xa, ya = _as_xy(x, y, copy=False)  # every branch returns new arrays
    norm = normalize_crs(crs)
    if isinstance(norm, pyproj.CRS):
        lon, lat = _transformer(norm, _WGS84).transform(xa, ya)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if norm in ("wgs84", "cgcs2000"):
        return xa.copy(), ya.copy()
    return _obfuscate(xa, ya, bd=norm == "bd09", inverse=True)


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
    lo, la = _as_xy(lon, lat, copy=False)  # every branch returns new arrays
    norm = normalize_crs(crs)
    if isinstance(norm, pyproj.CRS):
        x, y = _transformer(_WGS84, norm).transform(lo, la)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if norm in ("wgs84", "cgcs2000"):
        return lo.copy(), la.copy()
    return _obfuscate(lo, la, bd=norm == "bd09", inverse=False)


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
