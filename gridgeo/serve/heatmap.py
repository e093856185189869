"""Heat tiles, per-grid statistics and the leaders' map page, framework-free.

Each handler takes parsed parameters and returns ``(body, status, headers)``;
:mod:`gridgeo.serve.app` puts them on routes. The incident index and the grid
geometries are prepared once: by default on the first heat-map request (once per
worker process, behind a lock, so that the service starts without paying for
them), or at start-up with :meth:`HeatmapService.prepare`. Tiles and statistics
are kept in LRU caches keyed by their parameters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.errors import InputError

if TYPE_CHECKING:
    from gridgeo.analyze import IncidentIndex

# gridgeo.analyze (numba kernels, PIL) is imported on the first heat-map request, not at
# start-up: a service that only answers /locate never loads it.

__all__ = ["HeatmapService", "basemap_layers"]

log = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).parent / "templates"
_TILE_PARAMS = {"category", "start", "end"}
_STATS_PARAMS = {"category", "start", "end", "period", "compare", "alpha", "plan"}
_TIANDITU = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk="
)


class _LRU:
    def __init__(self, size: int) -> None:
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


def basemap_layers(basemap: str | None) -> list[dict[str, Any]]:
    """Tile layers of the configured basemap, for the page.

    ``None`` or ``"none"``: no basemap (the page works offline);
    ``"tianditu:<tk>"``: 天地图 vector map with labels; any other value is an XYZ
    URL template with ``{z}``, ``{x}`` and ``{y}``.

    >>> basemap_layers(None)
    []
    >>> [b["name"] for b in basemap_layers("tianditu:KEY")]
    ['天地图矢量', '天地图注记']
    >>> basemap_layers("http://tiles.local/{z}/{x}/{y}.png")[0]["url"]
    'http://tiles.local/{z}/{x}/{y}.png'
    >>> basemap_layers("http://tiles.local/")
    Traceback (most recent call last):
    ...
    gridgeo.errors.InputError: basemap 'http://tiles.local/' is not 'none', 'tianditu:<key>' ...
    """
    if basemap in (None, "", "none"):
        return []
    if basemap.startswith("tianditu:"):
        tk = basemap.split(":", 1)[1]
        return [
            {
                "name": "天地图矢量",
                "url": _TIANDITU.format(s="{s}", layer="vec", z="{z}", x="{x}", y="{y}") + tk,
                "subdomains": "01234567",
            },
            {
                "name": "天地图注记",
                "url": _TIANDITU.format(s="{s}", layer="cva", z="{z}", x="{x}", y="{y}") + tk,
                "subdomains": "01234567",
            },
        ]
    if all(f"{{{c}}}" in basemap for c in "zxy"):
        return [{"name": "底图", "url": basemap, "subdomains": "abc"}]
    raise InputError(
        f"basemap {basemap!r} is not 'none', 'tianditu:<key>' or an XYZ URL "
        "with {z}, {x} and {y}"
    )


@dataclass(frozen=True)
class _Prepared:
    index: IncidentIndex
    geometry: list[dict[str, Any]]  # each grid as GeoJSON (WGS84, 1e-6°)
    bounds: list[float]  # WGS84 bounds of the grids
    focus: list[float]  # WGS84 bounds of the grids holding at least one incident
    first_day: str
    last_day: str


class HeatmapService:
    """The heat-map endpoints over one workspace's incidents and grids.

    With a live store (``live``) the page refreshes its statistics and heat
    tiles every :attr:`refresh` seconds, and tiles are sent ``no-cache``
    (browsers revalidate them by ETag) instead of ``max-age=3600``.

    The incident index is built on first use (or by :meth:`prepare`), once per
    process: concurrent first requests wait for one build.

    Parameters
    ----------
    layers
        Workspace layers; needs ``incidents`` and ``grids``.
    basemap
        See :func:`basemap_layers`.
    tile_cache, stats_cache
        Sizes of the LRU caches (tiles, statistics answers).
    locator
        The service's locator, reused to place incidents in grids (its ``grid``
        layer must come from the same grids).
    live
        A :class:`~gridgeo.analyze.live.LiveIncidents` to read the incidents
        from, kept current from its store (then ``incidents`` is not needed).
    plans
        The workspace's plan versions (:class:`~gridgeo.serve.plans.PlanService`):
        the page then offers a plan selector, defaulting to the base plan in force
        today, and ``/stats/grids?plan=ID`` re-attributes the incidents of every
        date to that plan's grids by locating their points (as
        ``grid_stats(plan=…)``), without open and overdue cases (those follow the
        grid code stored when a case was reported).

    Raises
    ------
    InputError
        If a layer is missing or the basemap setting is malformed.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["G1"], "name": ["一网格"], "households": [300]},
    ...     geometry=[shapely.box(114.9, 25.3, 115.0, 25.4)], crs="EPSG:4490")
    >>> incidents = gpd.GeoDataFrame({"category": ["消防安全"],
    ...     "reported_at": pd.to_datetime(["2025-03-01"])},
    ...     geometry=[shapely.box(114.9, 25.3, 115.0, 25.4).centroid], crs="EPSG:4490")
    >>> svc = HeatmapService({"grids": grids, "incidents": incidents})
    >>> svc.prepared, svc.categories
    (False, ['消防安全'])
    >>> svc.tile(0, 0, 0, {})[1], svc.prepared, svc.index.n
    (200, True, 1)
    """

    #: Seconds between two live updates of the page (statistics, then changed tiles).
    refresh: float = 5.0

    def __init__(
        self,
        layers: dict[str, gpd.GeoDataFrame],
        *,
        basemap: str | None = None,
        tile_cache: int = 4096,
        stats_cache: int = 64,
        locator: Any = None,
        live: Any = None,
        plans: Any = None,
    ) -> None:
        needed = ("grids",) if live is not None else ("incidents", "grids")
        for name in needed:
            if name not in layers:
                raise InputError(f"the workspace has no '{name}' layer; heat maps need it")
        self.grids = layers["grids"]
        self.incidents = layers.get("incidents")
        self.locator = locator
        self.live = live
        self.plans = plans
        self._plan_indexes = _LRU(4)  # (plan_id, incidents version) -> (index, geometry)
        self.basemap = basemap_layers(basemap)
        self._tiles = _LRU(tile_cache)
        self._stats = _LRU(stats_cache)
        self._lock = threading.Lock()
        self._ready: _Prepared | None = None
        self._categories: list[str] | None = None

    # ---- the index, built once -----------------------------------------------------------

    @property
    def prepared(self) -> bool:
        """Whether the incident index exists yet."""
        return self._ready is not None and (self.live is None or self.live.prepared)

    def prepare(self) -> HeatmapService:
        """Build the incident index and the grid geometries now, if not built yet.

        Thread-safe: callers arriving during a build wait for it and share its
        result. Returns ``self``.
        """
        self._state()
        return self

    def _state(self) -> _Prepared:
        ready = self._ready
        if ready is not None:
            return ready
        with self._lock:
            if self._ready is None:
                self._ready = self._build()
            return self._ready

    def _build(self) -> _Prepared:
        from gridgeo.analyze import IncidentIndex

        t0 = time.perf_counter()
        index = (
            self.live.index
            if self.live is not None
            else IncidentIndex.build(self.incidents, grids=self.grids, locator=self.locator)
        )
        wgs = self.grids.to_crs(4326)
        rounded = shapely.set_precision(wgs.geometry.to_numpy(), 1e-6, mode="pointwise")
        geometry = [json.loads(shapely.to_geojson(g)) for g in rounded]
        bounds = [round(float(v), 6) for v in wgs.total_bounds]
        focus = _focus(wgs, index) or bounds
        first, last = index.days
        log.info(
            "heat-map index of %d incidents built in %.2f s", index.n, time.perf_counter() - t0
        )
        return _Prepared(index, geometry, bounds, focus, first, last)

    @property
    def index(self) -> IncidentIndex:
        """The incident index (built on first access; with a live store, kept current)."""
        ready = self._state()
        return self.live.index if self.live is not None else ready.index

    @property
    def categories(self) -> list[str]:
        """Incident categories, in the index's order, without building the index."""
        if self._ready is not None or self.live is not None:
            return self.index.categories
        if self._categories is None:
            from gridgeo.analyze.index import incident_categories

            self._categories = incident_categories(self.incidents)
        return self._categories

    # ---- parameters ----------------------------------------------------------------------

    @staticmethod
    def _only(params: dict[str, str], allowed: set[str]) -> None:
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")

    def _filters(self, params: dict[str, str]) -> tuple[str | None, str | None, str | None]:
        empty = sorted(k for k, v in params.items() if v == "")
        if empty:
            raise InputError(f"parameter(s) {empty} are empty; give a value or omit them")
        category = params.get("category") or None
        index = self.index
        index.category_mask(category)  # validates
        start = params.get("start") or None
        end = params.get("end") or None
        lo, hi = index.day_window(start, end)  # validates
        from gridgeo.analyze.index import day_str

        return (
            category,
            day_str(lo) if start else None,
            day_str(hi) if end else None,
        )

    # ---- handlers ------------------------------------------------------------------------

    def tile(
        self, z: int, x: int, y: int, params: dict[str, str], if_none_match: str | None = None
    ) -> tuple[bytes, int, dict[str, str]]:
        """A heat tile as PNG, with a strong ETag; 304 when the client has it."""
        self._only(params, _TILE_PARAMS)
        category, start, end = self._filters(params)
        from gridgeo.analyze.heat import tile_version

        index = self.index
        # the ETag digests what the tile is drawn from: a new report elsewhere leaves it
        # (and the browser's cached copy) valid, one inside or beside the tile changes it
        key = (z, x, y, category, start, end, tile_version(index, z, x, y))
        etag = '"' + hashlib.sha1(repr(key).encode()).hexdigest()[:20] + '"'
        headers = {
            "Content-Type": "image/png",
            "ETag": etag,
            # a live store's tiles change with new reports: browsers revalidate (a 304 when
            # unchanged) instead of showing an hour-old copy; a frozen workspace's keep
            "Cache-Control": "no-cache" if self.live is not None else "public, max-age=3600",
        }
        if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
            return b"", 304, headers
        png = self._tiles.get(key)
        if png is None:
            from gridgeo.analyze import heat_tile

            png = heat_tile(index, z, x, y, category=category, start=start, end=end)
            self._tiles.put(key, png)
        return png, 200, headers

    def stats(self, params: dict[str, str]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Per-grid statistics as a GeoJSON FeatureCollection (WGS84)."""
        self._only(params, _STATS_PARAMS)
        category, start, end = self._filters(params)
        period = params.get("period") or "M"
        compare = params.get("compare") or "previous"
        try:
            alpha = float(params.get("alpha") or 0.05)
        except ValueError as err:
            raise InputError(f"alpha must be a number, got {params.get('alpha')!r}") from err
        index = self.index
        version = self.live.version if self.live is not None else index.fingerprint
        plan = self._plan(params.get("plan"))
        key = (category, start, end, period, compare, alpha, version, _today(), plan)
        cached = self._stats.get(key)
        if cached is not None:
            return cached, 200, {"Content-Type": "application/geo+json"}
        from gridgeo.analyze import grid_stats, hotspots

        ready = self._state()
        grids, geometry = self.grids, ready.geometry
        if plan is not None:
            index, grids, geometry = self._plan_index(plan, version)
        cases = self.live.open_cases() if self.live is not None and plan is None else None
        s = grid_stats(
            index,
            grids,
            period=period,
            start=start,
            end=end,
            category=category,
            compare=compare,  # type: ignore[arg-type]
        )
        h = hotspots(s, column="count", alpha=alpha)
        names = grids["name"].astype(str).tolist() if "name" in grids else None
        feats = []
        for i, row in enumerate(h.itertuples(index=False)):
            props = {
                "code": row.code,
                "name": names[i] if names else None,
                "count": int(row.count),
                "previous": int(row.previous),
                "change": int(row.change),
                "change_pct": _num(row.change_pct),
                "per_1000_households": _num(row.per_1000_households),
                "hotspot": row.hotspot,
                "gi_z": _num(row.gi_z),
                "gi_p": _num(row.gi_p),
            }
            if cases is not None:
                props["open"] = int(cases.at[str(row.code), "open"])
                props["overdue"] = int(cases.at[str(row.code), "overdue"])
            feats.append(
                {
                    "type": "Feature",
                    "id": row.code,
                    "properties": props,
                    "geometry": geometry[i],
                }
            )
        body = {
            "type": "FeatureCollection",
            "features": feats,
            "window": list(s.attrs["window"]),
            "previousWindow": list(s.attrs["previous_window"]),
            "outside": s.attrs["outside"],
            "category": category,
            "alpha": alpha,
            "plan": plan,
        }
        if self.live is not None:
            body["overdueDays"] = self.live.days
            body["cursor"] = self.live.cursor
        self._stats.put(key, body)
        return body, 200, {"Content-Type": "application/geo+json"}

    # ---- plan versions -------------------------------------------------------------------

    def _plan(self, plan_id: str | None) -> str | None:
        """The plan asked for (checked), or None for the grids layer."""
        if plan_id is None:
            return None
        if self.plans is None:
            raise InputError(
                f"parameter 'plan' ({plan_id!r}): this service has no plan versions (it "
                "serves layers given in memory, not a workspace file)"
            )
        return str(self.plans.plan(plan_id).plan_id)  # NotFound lists the plans

    def _plan_index(
        self, plan_id: str, version: Any
    ) -> tuple[IncidentIndex, gpd.GeoDataFrame, list[dict[str, Any]]]:
        """The incidents located in a plan's grids, its grids and their GeoJSON (kept)."""
        key = (plan_id, version)
        found = self._plan_indexes.get(key)
        if found is not None:
            return found
        from gridgeo.analyze import IncidentIndex

        grids = self.plans.plan(plan_id).grids
        points = self.incidents if self.live is None else self.live.store.query()
        t0 = time.perf_counter()
        index = IncidentIndex.build(points, grids=grids, tiles=False)
        wgs = grids.to_crs(4326)
        rounded = shapely.set_precision(wgs.geometry.to_numpy(), 1e-6, mode="pointwise")
        geometry = [json.loads(shapely.to_geojson(g)) for g in rounded]
        log.info(
            "%d incidents located in plan %r in %.2f s", index.n, plan_id, time.perf_counter() - t0
        )
        found = (index, grids, geometry)
        self._plan_indexes.put(key, found)
        return found

    def _plan_choices(self) -> dict[str, Any]:
        """The page's plan selector: every plan, and the base plan in force today."""
        if self.plans is None:
            return {"plans": [], "plan": None}
        from datetime import date

        today = date.today()
        now = self.plans.in_force(today, today)
        return {
            "plans": [
                {
                    "id": p.plan_id,
                    "name": p.name,
                    "level": p.level,
                    "from": None if p.valid_from is None else p.valid_from.isoformat(),
                    "to": None if p.valid_to is None else p.valid_to.isoformat(),
                    "grids": len(p.grids),
                }
                for p in self.plans.plans
            ],
            "plan": now[0].plan_id if now else None,
        }

    def page(self, params: dict[str, str]) -> tuple[str, int, dict[str, str]]:
        """The leaders' heat-map page (Chinese labels, no external requests by default)."""
        self._only(params, set())
        from gridgeo.analyze.index import day_str, to_day

        ready = self._state()
        last = ready.last_day or "1970-01-01"
        # the opening window: the year up to the last incident (a calendar year when it
        # ends on 31 December), compared with the year before it
        year_before = pd.Timestamp(last) - pd.DateOffset(years=1) + pd.Timedelta(days=1)
        start = day_str(max(to_day(year_before, "start"), to_day(ready.first_day or last, "start")))
        index = self.index
        config = {
            "categories": index.categories,
            "live": self.live is not None,
            "refresh": self.refresh,  # seconds between two live updates of the page
            "basemap": self.basemap,
            "bounds": ready.bounds,
            "focus": ready.focus,
            **self._plan_choices(),
        }
        text = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        html = Template((_TEMPLATES / "heatmap.html").read_text(encoding="utf-8")).substitute(
            config=text,
            start=start,
            end=last,
            first=ready.first_day or last,
            total=f"{index.n:,}",
        )
        return html, 200, {"Content-Type": "text/html; charset=utf-8"}


def _focus(wgs: gpd.GeoDataFrame, index: IncidentIndex, key: str = "code") -> list[float] | None:
    """WGS84 bounds of the grids that hold at least one incident (None if none does).

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> from gridgeo.analyze import IncidentIndex
    >>> grids = gpd.GeoDataFrame({"code": ["A", "B"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)], crs="EPSG:4326")
    >>> inc = gpd.GeoDataFrame({"category": ["x"], "reported_at": pd.to_datetime(["2025-01-01"])},
    ...     geometry=[shapely.Point(0.5, 0.5)], crs="EPSG:4326")
    >>> _focus(grids, IncidentIndex.build(inc, grids=grids))
    [0.0, 0.0, 1.0, 1.0]
    """
    if index.grid is None or index.grid_codes is None or key not in wgs.columns:
        return None
    held = np.unique(index.grid[index.grid >= 0])
    if not len(held):
        return None
    codes = np.asarray(index.grid_codes, dtype=object)[held].astype(str)
    sel = wgs[wgs[key].astype(str).isin(codes).to_numpy()]
    return [round(float(v), 6) for v in sel.total_bounds]


def _today() -> str:
    """Today's date: overdue counts change at midnight, so cached statistics must too."""
    return pd.Timestamp.now(tz="Asia/Shanghai").strftime("%Y-%m-%d")


def _num(v: Any) -> float | None:
    if v is None or v is pd.NA:
        return None
    f = float(v)
    return None if np.isnan(f) else round(f, 4)
