"""Heat tiles: 256-px Web-Mercator XYZ PNG tiles of incident density.

A tile counts the incidents that pass the filters on its pixels (plus a margin
taken from the neighbouring tiles), blurs the counts with a Gaussian kernel
and colours them. The colour scale depends only on the zoom level and the
filters, never on the tile, so colours do not jump at tile edges: it is set
from the densest spot of the whole filtered dataset at that zoom, estimated
once per (zoom, filters) from a fixed random sample of the incidents.

Examples
--------
>>> import geopandas as gpd, pandas as pd, shapely
>>> from gridgeo.analyze import IncidentIndex
>>> inc = gpd.GeoDataFrame(
...     {"category": ["消防安全"] * 3, "reported_at": pd.to_datetime(["2025-01-05"] * 3)},
...     geometry=[shapely.Point(114.93, 25.40)] * 3, crs="EPSG:4490")
>>> idx = IncidentIndex.build(inc)
>>> png = heat_tile(idx, 10, *tile_of(114.93, 25.40, 10))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(png) > len(EMPTY_TILE)
(True, True)
>>> heat_tile(idx, 10, 0, 0) == EMPTY_TILE
True
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray
from PIL import Image

from gridgeo.analyze.index import ZMAX, IncidentIndex, morton
from gridgeo.errors import InputError

__all__ = ["EMPTY_TILE", "TILE", "heat_tile", "tile_of", "tile_version"]

TILE = 256
_SIGMA = 5.0  # blur, in pixels of the tile
_MARGIN = 16  # pixels taken from neighbouring tiles, ≥ 3 sigma
_MAX_ZOOM = 20


def _png(rgba: NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


#: A fully transparent tile (served where no incident passes the filters).
EMPTY_TILE = _png(np.zeros((TILE, TILE, 4), dtype=np.uint8))


def _palette() -> NDArray[np.uint8]:
    """256 RGBA colours: transparent → blue → green → yellow → red, alpha rising."""
    stops = np.array(
        [
            [0.00, 0, 0, 255, 0],
            [0.15, 0, 90, 255, 120],
            [0.40, 0, 200, 120, 170],
            [0.65, 255, 230, 0, 200],
            [1.00, 230, 20, 20, 230],
        ],
        dtype=float,
    )
    t = np.linspace(0, 1, 256)
    out = np.column_stack([np.interp(t, stops[:, 0], stops[:, i]) for i in range(1, 5)])
    return out.round().astype(np.uint8)


_PALETTE = _palette()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """XYZ tile ``(x, y)`` holding a lon/lat point at zoom ``z``.

    >>> tile_of(114.93, 25.40, 10)
    (838, 437)
    """
    n = 2**z
    s = math.sin(math.radians(lat))
    x = int((lon + 180.0) / 360.0 * n)
    y = int((0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


@njit(cache=True, nogil=True)
def _accumulate(
    px, py, cat, day, lo, hi, shift, ox, oy, size, catmask, d0, d1, img
):  # pragma: no cover
    for i in range(lo, hi):
        if not catmask[cat[i]]:
            continue
        d = day[i]
        if d < d0 or d > d1:
            continue
        gx = np.int64(px[i] >> shift) - ox
        gy = np.int64(py[i] >> shift) - oy
        if 0 <= gx < size and 0 <= gy < size:
            img[gy, gx] += 1.0


def _ranges(index: IncidentIndex, z: int, x: int, y: int) -> list[tuple[int, int]]:
    """Index ranges of the incidents in tile (x, y) and its 8 neighbours."""
    side = np.uint64(TILE) << np.uint64(ZMAX - z)  # tile side in ZMAX pixels
    span = side * side
    n = 2**z
    out = []
    for ty in (y - 1, y, y + 1):
        for tx in (x - 1, x, x + 1):
            if not (0 <= tx < n and 0 <= ty < n):
                continue
            k0 = morton(np.array([tx], np.uint64) * side, np.array([ty], np.uint64) * side)[0]
            lo = int(np.searchsorted(index.key, k0, side="left"))
            hi = int(np.searchsorted(index.key, k0 + span, side="left"))
            if hi > lo:
                out.append((lo, hi))
    return out


def _check_address(z: int, x: int, y: int) -> None:
    """An InputError for a tile address that does not exist."""
    for name, v in (("z", z), ("x", x), ("y", y)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise InputError(f"tile {name} must be an integer, got {v!r}")
    if not 0 <= z <= _MAX_ZOOM:
        raise InputError(f"zoom {z} is out of range 0..{_MAX_ZOOM}")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InputError(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{2**z - 1}")


def tile_version(index: IncidentIndex, z: int, x: int, y: int) -> str:
    """A digest of everything tile (z, x, y) is drawn from, for an ETag.

    It covers the incidents in the tile and its 8 neighbours (a blur reaches
    across tile edges) and the colour-scale sample. Adding incidents elsewhere
    (:meth:`IncidentIndex.extend`) leaves it unchanged, so a browser's cached
    tiles stay valid; adding one inside changes it.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> def inc(*xs):
    ...     return gpd.GeoDataFrame({"category": ["噪音"] * len(xs),
    ...         "reported_at": pd.to_datetime(["2025-01-05"] * len(xs))},
    ...         geometry=[shapely.Point(x, 25.4) for x in xs], crs="EPSG:4490")
    >>> idx = IncidentIndex.build(inc(*[114.93] * 10))
    >>> here = tile_of(114.93, 25.4, 12)
    >>> v = tile_version(idx, 12, *here)
    >>> v == tile_version(idx.extend(inc(116.5)), 12, *here)    # far away: same
    True
    >>> v == tile_version(idx.extend(inc(114.9301)), 12, *here)  # inside: changed
    False
    """
    import hashlib

    _check_address(z, x, y)
    digest = hashlib.sha1(index.sample.epoch.encode())
    digest.update(repr(index.categories).encode())
    for lo, hi in _ranges(index, z, x, y):
        for arr in (index.key, index.cat, index.day):
            digest.update(arr[lo:hi].tobytes())
    return digest.hexdigest()[:20]


class _Norms:
    """Colour scale per (zoom, filters), computed once and kept (LRU)."""

    def __init__(self, size: int = 512) -> None:
        self._cache: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, index: IncidentIndex, z: int, mask, d0: int, d1: int) -> float:
        key = (index.sample.epoch, z, mask.tobytes(), d0, d1)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = _norm(index, z, mask, d0, d1)
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return value


def _norm(index: IncidentIndex, z: int, mask, d0: int, d1: int) -> float:
    """Blurred density of the densest spot at zoom z, estimated from the sample: the most
    incidents in one block of about 2·sigma pixels, scaled up to the whole filtered set
    (as counted when the sample was drawn, so that the scale is the sample's alone)."""
    s = index.sample
    keep = mask[s.cat] & (s.day >= d0) & (s.day <= d1)
    ns = int(keep.sum())
    if ns == 0:
        return 1.0
    total = s.count_mask(mask, d0, d1)
    block = 8  # pixels, ~ 1.6 sigma
    shift = np.uint32(ZMAX - z + 3)
    bx = s.px[keep] >> shift
    by = s.py[keep] >> shift
    _, counts = np.unique(bx.astype(np.uint64) << np.uint64(32) | by, return_counts=True)
    peak = counts.max() * total / ns
    # a block of `peak` incidents blurred by sigma peaks near peak / (2 pi sigma^2) per pixel
    return max(peak / (2 * math.pi * _SIGMA**2) * min(1.0, (block / _SIGMA) ** 2 / 2), 1e-9)


_NORMS = _Norms()


def heat_tile(
    index: IncidentIndex,
    z: int,
    x: int,
    y: int,
    *,
    category: Any = None,
    start: Any = None,
    end: Any = None,
) -> bytes:
    """Render one 256-px XYZ heat tile as PNG bytes.

    Parameters
    ----------
    index
        The incident index (:meth:`IncidentIndex.build`).
    z, x, y
        Tile address (Web Mercator, XYZ/Google scheme: y from the north).
    category
        One category, several (a list or a comma-separated string) or None for all.
    start, end
        First and last day (inclusive), e.g. ``"2025-01-01"``; None for open.

    Returns
    -------
    bytes
        A PNG; :data:`EMPTY_TILE` where no incident passes the filters.

    Raises
    ------
    InputError
        For a tile address out of range, an unknown category or a bad date.

    Examples
    --------
    See the module docstring.
    """
    _check_address(z, x, y)
    if index.n and not index.sample.n:
        raise InputError("this incident index was built with tiles=False; rebuild it for tiles")
    mask = index.category_mask(category)
    d0, d1 = index.day_window(start, end)
    ranges = _ranges(index, z, x, y)
    if not ranges:
        return EMPTY_TILE
    size = TILE + 2 * _MARGIN
    img = np.zeros((size, size), dtype=np.float64)
    shift = ZMAX - z
    ox, oy = x * TILE - _MARGIN, y * TILE - _MARGIN
    for lo, hi in ranges:
        _accumulate(
            index.px, index.py, index.cat, index.day, lo, hi, shift, ox, oy, size, mask, d0, d1, img
        )
    if not img.any():
        return EMPTY_TILE
    from scipy.ndimage import gaussian_filter  # imported on first use: a faster start-up

    dens = gaussian_filter(img, _SIGMA, mode="constant", truncate=3.0)[
        _MARGIN : _MARGIN + TILE, _MARGIN : _MARGIN + TILE
    ]
    norm = _NORMS.get(index, z, mask, d0, d1)
    t = np.sqrt(np.clip(dens / norm, 0.0, 1.0))
    level = (t * 255).astype(np.uint8)
    level[dens < 1e-3 / (2 * math.pi * _SIGMA**2)] = 0  # far tails: transparent
    return _png(_PALETTE[level])
