"""The incident index behind heat tiles and per-grid statistics.

Built once from the incident layer, it holds every incident as a few compact
arrays, sorted along a Z-order (Morton) curve of its Web-Mercator pixel at
zoom 22: the incidents of any XYZ tile are then one contiguous range, found by
binary search. Each incident keeps its category (a small integer) and its day,
so that category and date filters are a scan of that range only. When grids
are given, each incident also keeps the grid that holds it (by the exact
:class:`~gridgeo.assign.Locator`), so per-grid counts are a ``bincount``.

Examples
--------
>>> import geopandas as gpd, pandas as pd, shapely
>>> inc = gpd.GeoDataFrame(
...     {"category": ["消防安全", "乱停乱放"],
...      "reported_at": pd.to_datetime(["2025-01-05", "2025-02-10"])},
...     geometry=[shapely.Point(114.93, 25.40), shapely.Point(114.94, 25.41)], crs="EPSG:4490")
>>> idx = IncidentIndex.build(inc)
>>> idx.n, idx.categories, idx.days
(2, ['乱停乱放', '消防安全'], ('2025-01-05', '2025-02-10'))
>>> idx.count(category="消防安全")
1
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from gridgeo.crs import to_wgs84
from gridgeo.errors import CRSError, InputError

__all__ = ["ZMAX", "IncidentIndex", "NormSample", "grid_locator", "incident_categories"]

log = logging.getLogger(__name__)

#: Zoom level of the stored pixel coordinates (≈ 3.7 cm per pixel at the equator).
ZMAX = 22
_WORLD = 256 << ZMAX  # pixels across the world at ZMAX
_MAX_LAT = 85.05112878
_EPOCH = np.datetime64("1970-01-01", "D")
_SAMPLE = 400_000  # incidents kept as a fixed sample for colour normalisation


def _part1by1(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Spread the low 32 bits of ``v`` to the even bits of a 64-bit word."""
    v = v & np.uint64(0xFFFFFFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
    v = (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)
    return v


def morton(px: NDArray[Any], py: NDArray[Any]) -> NDArray[np.uint64]:
    """Z-order code of integer pixel coordinates (x on the even bits)."""
    return _part1by1(px.astype(np.uint64)) | (_part1by1(py.astype(np.uint64)) << np.uint64(1))


def lonlat_to_pixel(
    lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """Web-Mercator pixel coordinates at :data:`ZMAX` (origin top-left)."""
    lat = np.clip(lat, -_MAX_LAT, _MAX_LAT)
    x = (lon + 180.0) / 360.0
    s = np.sin(np.radians(lat))
    y = 0.5 - np.log((1 + s) / (1 - s)) / (4 * np.pi)
    px = np.clip(np.floor(x * _WORLD), 0, _WORLD - 1).astype(np.uint32)
    py = np.clip(np.floor(y * _WORLD), 0, _WORLD - 1).astype(np.uint32)
    return px, py


def to_day(values: Any, name: str) -> int:
    """A date (string, datetime, Timestamp) as days since 1970-01-01."""
    try:
        ts = pd.Timestamp(values)
    except (ValueError, TypeError) as err:
        raise InputError(f"{name}={values!r} is not a date; use YYYY-MM-DD") from err
    if ts is pd.NaT:
        raise InputError(f"{name}={values!r} is not a date; use YYYY-MM-DD")
    return int((np.datetime64(ts.date(), "D") - _EPOCH).astype(np.int64))


def day_str(day: int) -> str:
    """Days since 1970-01-01 as ``YYYY-MM-DD``."""
    return str(_EPOCH + np.timedelta64(int(day), "D"))


@dataclass(frozen=True)
class NormSample:
    """A fixed random sample of incidents, and the counts when it was drawn.

    Heat tiles take their colour scale from it. It is kept as values, not as
    positions, so that :meth:`IncidentIndex.extend` leaves it, and with it every
    tile whose incidents did not change, exactly as it was; it is drawn anew
    (a new ``epoch``) only once the index has grown by a quarter.
    """

    px: NDArray[np.uint32]
    py: NDArray[np.uint32]
    cat: NDArray[np.uint8]
    day: NDArray[np.int32]
    counts: NDArray[np.int64]  # the index's per-category-and-day counts at drawing time
    day0: int
    n: int  # incidents in the index at drawing time
    epoch: str

    @classmethod
    def draw(
        cls,
        px: NDArray[np.uint32],
        py: NDArray[np.uint32],
        cat: NDArray[np.uint8],
        day: NDArray[np.int32],
        counts: NDArray[np.int64],
        day0: int,
        seed: int,
    ) -> NormSample:
        """Draw a sample of at most 400,000 of these incidents."""
        n = len(px)
        pos = np.sort(np.random.default_rng(seed).choice(n, size=min(n, _SAMPLE), replace=False))
        digest = hashlib.sha1(counts.tobytes())
        digest.update(px[pos].tobytes())
        return cls(
            px[pos], py[pos], cat[pos], day[pos], counts.copy(), day0, n,
            digest.hexdigest()[:12],
        )

    def count_mask(self, mask: NDArray[np.bool_], lo: int, hi: int) -> int:
        """Incidents passing the filters when the sample was drawn."""
        a = max(lo - self.day0, 0)
        b = min(hi - self.day0 + 1, self.counts.shape[1])
        if b <= a:
            return 0
        return int(self.counts[mask[: self.counts.shape[0]], a:b].sum())


@dataclass(frozen=True)
class IncidentIndex:
    """Incidents sorted along a Z-order curve, with categories, days and grids.

    Build it with :meth:`build`. Arrays are aligned and sorted by ``key``.
    """

    key: NDArray[np.uint64]
    px: NDArray[np.uint32]
    py: NDArray[np.uint32]
    cat: NDArray[np.uint8]
    day: NDArray[np.int32]
    grid: NDArray[np.int32] | None  # grid position per incident, -1 outside every grid
    grid_codes: NDArray[np.object_] | None
    categories: list[str]
    counts: NDArray[np.int64]  # (n_categories, n_days) incidents per category and day
    day0: int
    sample: NormSample  # the colour scale's frozen sample (see NormSample)
    fingerprint: str

    @property
    def n(self) -> int:
        """Number of incidents."""
        return len(self.key)

    @property
    def days(self) -> tuple[str, str]:
        """First and last day with an incident."""
        nz = np.flatnonzero(self.counts.sum(axis=0))
        if len(nz) == 0:
            return ("", "")
        return day_str(self.day0 + int(nz[0])), day_str(self.day0 + int(nz[-1]))

    @classmethod
    def build(
        cls,
        incidents: gpd.GeoDataFrame,
        *,
        grids: gpd.GeoDataFrame | None = None,
        category: str = "category",
        time: str = "reported_at",
        key: str = "code",
        seed: int = 0,
        locator: Any = None,
        tiles: bool = True,
    ) -> IncidentIndex:
        """Index an incident layer (points with a category and a timestamp).

        Parameters
        ----------
        incidents
            Points with a CRS, a ``category`` column and a ``time`` column.
        grids
            Optional grids (with ``key``): each incident is then assigned to the
            grid holding it, exactly, for :func:`~gridgeo.analyze.grid_stats`.
        category, time, key
            Column names.
        seed
            Seed of the colour-normalisation sample.
        locator
            A :class:`~gridgeo.assign.Locator` with a ``"grid"`` layer built from
            these grids, to reuse instead of building one.
        tiles
            Sort along the Z-order curve for heat tiles; ``False`` skips that
            (statistics only, faster).

        Raises
        ------
        InputError
            For a missing column, non-point or empty geometries, or bad timestamps.
        CRSError
            If the incidents have no CRS.
        """
        _check_incidents(incidents, category, time)
        # coordinates as arrays: reprojecting 2M shapely points would cost seconds
        xy = shapely.get_coordinates(incidents.geometry.to_numpy())
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], incidents.crs)
        day = _days(incidents, time)
        cats = _categorical(incidents, category)
        px, py = lonlat_to_pixel(lon, lat)
        code = morton(px, py) if tiles else np.zeros(len(px), dtype=np.uint64)
        order = np.argsort(code, kind="stable") if tiles else np.arange(len(code))
        grid = grid_codes = None
        if grids is not None:
            loc = grid_locator(locator, grids, key)
            grid_codes = loc.keys("grid")
            grid = _grid_positions(lon, lat, loc, grid_codes)[order]
        day0 = int(day.min()) if len(day) else 0
        ndays = int(day.max()) - day0 + 1 if len(day) else 1
        counts = np.zeros((max(len(cats.categories), 1), ndays), dtype=np.int64)
        np.add.at(counts, (cats.codes, day - day0), 1)
        n = len(code)
        cat = cats.codes.astype(np.uint8)[order]
        day32 = day.astype(np.int32)[order]
        keep = slice(None) if n and tiles else slice(0, 0)
        sample = NormSample.draw(
            px[order][keep], py[order][keep], cat[keep], day32[keep], counts, day0, seed
        )
        digest = hashlib.sha1(code[order].tobytes())
        digest.update(counts.tobytes())
        index = cls(
            key=code[order],
            px=px[order],
            py=py[order],
            cat=cat,
            day=day32,
            grid=grid,
            grid_codes=grid_codes,
            categories=[str(c) for c in cats.categories],
            counts=counts,
            day0=day0,
            sample=sample,
            fingerprint=digest.hexdigest()[:16],
        )
        log.info("indexed %d incidents in %d categories", n, len(index.categories))
        return index

    # ---- live updates --------------------------------------------------------------------

    def extend(
        self,
        incidents: gpd.GeoDataFrame,
        *,
        locator: Any = None,
        grids: gpd.GeoDataFrame | None = None,
        category: str = "category",
        time: str = "reported_at",
        key: str = "code",
        seed: int = 0,
    ) -> IncidentIndex:
        """A new index with these incidents added (the index itself is immutable).

        The new incidents are sorted and merged into the Z-order arrays, so that
        a live service adds each batch of reports in time linear in the index
        (tens of milliseconds for millions of incidents) instead of rebuilding it.
        The colour-scale sample is kept until the index has grown by a quarter,
        so heat tiles away from the new incidents stay byte-identical.

        Parameters
        ----------
        incidents
            New points with a CRS, ``category`` and ``time`` columns. The
            caller makes sure that none is in the index already (a store's
            change feed gives each new incident once).
        locator, grids
            How to place the new incidents in grids, when this index has grids:
            a :class:`~gridgeo.assign.Locator` with a ``"grid"`` layer, or the
            grids themselves (the same grids the index was built with).
        category, time, key, seed
            As in :meth:`build`.

        Returns
        -------
        IncidentIndex

        Raises
        ------
        InputError
            For bad rows (as :meth:`build`), more than 255 categories in all, or
            an index with grids extended without ``locator`` or ``grids``.

        Examples
        --------
        >>> import geopandas as gpd, pandas as pd, shapely
        >>> def incidents(cats, days, xs):
        ...     return gpd.GeoDataFrame({"category": cats, "reported_at": pd.to_datetime(days)},
        ...         geometry=[shapely.Point(x, 25.4) for x in xs], crs="EPSG:4490")
        >>> idx = IncidentIndex.build(incidents(["消防安全"], ["2025-01-05"], [114.93]))
        >>> idx2 = idx.extend(incidents(["噪音", "消防安全"], ["2025-03-01", "2024-12-31"],
        ...                            [114.95, 114.90]))
        >>> idx2.n, idx2.categories, idx2.days, idx2.count(category="消防安全")
        (3, ['消防安全', '噪音'], ('2024-12-31', '2025-03-01'), 2)
        >>> bool((idx2.key[:-1] <= idx2.key[1:]).all()), idx.n
        (True, 1)
        """
        if len(incidents) == 0:
            return self
        _check_incidents(incidents, category, time)
        xy = shapely.get_coordinates(incidents.geometry.to_numpy())
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], incidents.crs)
        day = _days(incidents, time)
        names = incidents[category].astype(str).to_numpy()
        categories = list(self.categories)
        for name in pd.unique(names):
            if name not in categories:
                categories.append(str(name))
        if len(categories) > 255:
            raise InputError(
                f"incidents would have {len(categories)} categories; at most 255: merge rare ones"
            )
        lookup = {c: i for i, c in enumerate(categories)}
        cat = np.fromiter((lookup[c] for c in names), dtype=np.uint8, count=len(names))
        px, py = lonlat_to_pixel(lon, lat)
        tiles = bool(self.sample.n) or self.n == 0
        code = morton(px, py) if tiles else np.zeros(len(px), dtype=np.uint64)
        order = np.argsort(code, kind="stable")
        grid = None
        if self.grid is not None:
            if locator is None and grids is None:
                raise InputError("this index holds grids: extend it with locator= or grids=")
            pos = _grid_positions(lon, lat, grid_locator(locator, grids, key), self.grid_codes)
            grid = pos[order]
        at = np.searchsorted(self.key, code[order], side="right")
        day32 = day.astype(np.int32)
        # per-category-and-day counts, over the union of both day ranges
        day0 = min(self.day0, int(day.min())) if self.n else int(day.min())
        last = max(self.day0 + self.counts.shape[1] - 1, int(day.max())) if self.n else int(
            day.max()
        )
        counts = np.zeros((max(len(categories), 1), last - day0 + 1), dtype=np.int64)
        if self.n:
            off = self.day0 - day0
            counts[: self.counts.shape[0], off : off + self.counts.shape[1]] = self.counts
        np.add.at(counts, (cat, day - day0), 1)
        merged_cat = np.insert(self.cat, at, cat[order])
        merged_day = np.insert(self.day, at, day32[order])
        merged_px = np.insert(self.px, at, px[order])
        merged_py = np.insert(self.py, at, py[order])
        n = self.n + len(code)
        sample = self.sample
        if tiles and (self.sample.n == 0 or n > 1.25 * self.sample.n):
            sample = NormSample.draw(merged_px, merged_py, merged_cat, merged_day, counts, day0,
                                     seed)
        digest = hashlib.sha1(self.fingerprint.encode())
        digest.update(code[order].tobytes())
        digest.update(counts.tobytes())
        return IncidentIndex(
            key=np.insert(self.key, at, code[order]),
            px=merged_px,
            py=merged_py,
            cat=merged_cat,
            day=merged_day,
            grid=None if grid is None else np.insert(self.grid, at, grid),
            grid_codes=self.grid_codes,
            categories=categories,
            counts=counts,
            day0=day0,
            sample=sample,
            fingerprint=digest.hexdigest()[:16],
        )

    # ---- filters -------------------------------------------------------------------------

    def category_mask(self, category: str | Iterable[str] | None) -> NDArray[np.bool_]:
        """Which category codes pass a filter (one name, several, or None for all)."""
        mask = np.zeros(256, dtype=np.bool_)
        if category is None or category == "":
            mask[: len(self.categories)] = True
            return mask
        names = [category] if isinstance(category, str) else list(category)
        names = [c for n in names for c in str(n).split(",") if c]
        for name in names:
            if name not in self.categories:
                raise InputError(f"unknown category {name!r}; known: {self.categories}")
            mask[self.categories.index(name)] = True
        return mask

    def day_window(self, start: Any = None, end: Any = None) -> tuple[int, int]:
        """``[first, last]`` day numbers of a date filter (both inclusive)."""
        lo = to_day(start, "start") if start not in (None, "") else -(2**31)
        hi = to_day(end, "end") if end not in (None, "") else 2**31 - 1
        if lo > hi:
            raise InputError(f"start {start} is after end {end}")
        return lo, hi

    def count(self, *, category: Any = None, start: Any = None, end: Any = None) -> int:
        """Number of incidents passing the filters (from the per-day counts)."""
        lo, hi = self.day_window(start, end)
        return self.count_mask(self.category_mask(category), lo, hi)

    def count_mask(self, mask: NDArray[np.bool_], lo: int, hi: int) -> int:
        """:meth:`count` for a category mask and an inclusive day-number window."""
        a = max(lo - self.day0, 0)
        b = min(hi - self.day0 + 1, self.counts.shape[1])
        if b <= a:
            return 0
        return int(self.counts[mask[: self.counts.shape[0]], a:b].sum())


def incident_categories(incidents: gpd.GeoDataFrame, *, category: str = "category") -> list[str]:
    """The categories an :class:`IncidentIndex` of these incidents would hold, in its order.

    Cheap (no index is built): what the service needs to describe its heat map
    before the index exists.

    Raises
    ------
    InputError
        If the column is missing or holds more than 255 categories.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> inc = gpd.GeoDataFrame({"category": ["消防安全", "乱停乱放", "消防安全"]},
    ...     geometry=[shapely.box(0, 0, 1, 1).centroid] * 3, crs="EPSG:4326")
    >>> incident_categories(inc)
    ['乱停乱放', '消防安全']
    """
    if category not in incidents.columns:
        raise InputError(
            f"incidents have no column '{category}'; columns are {list(incidents.columns)}"
        )
    return [str(c) for c in _categorical(incidents, category).categories]


def _days(incidents: gpd.GeoDataFrame, time: str) -> NDArray[np.int64]:
    """Day numbers (since 1970-01-01, local date as written) of the ``time`` column."""
    ts = pd.to_datetime(incidents[time], errors="coerce")
    if ts.isna().any():
        rows = [str(i) for i in incidents.index[ts.isna().to_numpy()][:5]]
        raise InputError(f"incidents column '{time}' has missing or bad times at rows {rows}")
    day_all = (ts.dt.tz_localize(None) if ts.dt.tz is not None else ts).to_numpy("datetime64[D]")
    return (day_all - _EPOCH).astype(np.int64)


def grid_locator(locator: Any, grids: gpd.GeoDataFrame | None, key: str = "code") -> Any:
    """``locator`` when it has a ``grid`` layer, else a locator built over ``grids``."""
    if locator is not None and "grid" in locator.layer_names:
        return locator
    if grids is None:
        raise InputError("the locator has no 'grid' layer; pass grids=")
    from gridgeo.assign import Locator

    return Locator({"grid": grids}, key=key)


def _grid_positions(
    lon: NDArray[np.float64], lat: NDArray[np.float64], loc: Any, grid_codes: Any
) -> NDArray[np.int32]:
    """Position in ``grid_codes`` of the grid holding each point, -1 outside every grid."""
    res = loc.locate(lon, lat, crs="EPSG:4326")["grid"]
    pos = pd.Categorical(res.astype(object), categories=list(grid_codes)).codes
    return np.asarray(pos, dtype=np.int32)


def _categorical(incidents: gpd.GeoDataFrame, category: str) -> pd.Categorical:
    cats = pd.Categorical(incidents[category].astype(str))
    if len(cats.categories) > 255:
        raise InputError(
            f"incidents have {len(cats.categories)} categories in column '{category}'; "
            "at most 255: merge rare ones"
        )
    return cats


def _check_incidents(incidents: Any, category: str, time: str) -> None:
    if not isinstance(incidents, gpd.GeoDataFrame):
        raise InputError(f"incidents must be a GeoDataFrame, got {type(incidents).__name__}")
    if incidents.crs is None:
        raise CRSError("incidents have no CRS; set one (e.g. .set_crs('EPSG:4490'))")
    for col in (category, time):
        if col not in incidents.columns:
            raise InputError(
                f"incidents have no column '{col}'; columns are {list(incidents.columns)}"
            )
    geom = incidents.geometry
    bad = geom.isna() | geom.is_empty | (geom.geom_type != "Point")
    if bad.any():
        rows = [str(i) for i in incidents.index[bad.to_numpy()][:5]]
        raise InputError(f"incidents must be non-empty points; bad geometry at rows {rows}")
