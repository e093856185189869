"""Ingest incidents into a store: locate and route each one, then append.

The HTTP ingestion (``POST /collections/incidents/items``) and ``gridgeo
ingest`` (bulk history) both come here, so a report gets the same codes
whichever way it arrives.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.assign.locator import Locator
from gridgeo.assign.route import DISPATCH_CODES, default_routes, dispatch_codes
from gridgeo.codes import DEPARTMENTS
from gridgeo.crs import to_wgs84
from gridgeo.errors import CRSError, InputError
from gridgeo.io.store.batch import prepare_points

__all__ = ["IngestReport", "ingest", "locate_for_store", "locate_records"]

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What :func:`ingest` did.

    Attributes
    ----------
    new, existing
        Ids stored now, and ids that were stored already (left as they were;
        they are neither located nor written again).
    repeated
        Ids that the input holds more than once, once each: the first row of
        each is loaded, the later ones are skipped.
    rows
        Rows read.
    seconds
        Wall time.
    """

    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def locate_for_store(
    incidents: gpd.GeoDataFrame,
    locator: Locator,
    *,
    crs: Any = None,
    routes: dict[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """The incidents in EPSG:4490 with their dispatch codes, ready for a store.

    Parameters
    ----------
    incidents
        Points with ``category`` (and usually ``id``, ``reported_at``…).
    locator
        A locator over the workspace (:meth:`Locator.from_workspace`).
    crs
        The CRS the coordinates are really in, when it is not the frame's own:
        ``"gcj02"`` or ``"bd09"`` (which no CRS object can carry), or any
        gridgeo CRS name. The reported coordinates are kept in ``lng``/``lat``.
    routes
        Category → department layer (see :func:`~gridgeo.assign.route`).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy, in EPSG:4490, with ``grid_code``, ``community_code``,
        ``town_code``, ``beat_code``, ``zone_code`` and ``department`` (a
        department given in the input is kept where routing finds none).

    Raises
    ------
    CRSError
        If neither the frame nor ``crs`` says what the coordinates are.
    InputError
        For non-point geometries or a missing ``category``.

    Examples
    --------
    >>> import shapely
    >>> box = shapely.box(115, 25, 116, 26)
    >>> loc = Locator({"grid": gpd.GeoDataFrame({"code": ["G1"]}, geometry=[box], crs=4490)})
    >>> inc = gpd.GeoDataFrame({"id": ["A"], "category": ["噪音"]},
    ...     geometry=[shapely.Point(115.5, 25.5)], crs=None)
    >>> out = locate_for_store(inc, loc, crs="gcj02")
    >>> out.crs.to_epsg(), out["grid_code"].tolist(), out["lng"].tolist()
    (4490, ['G1'], [115.5])
    """
    cols, lon, lat = _located_columns(incidents, locator, crs=crs, routes=routes)
    out = gpd.GeoDataFrame(
        pd.DataFrame(incidents.drop(columns=incidents.geometry.name)),
        geometry=shapely.points(lon, lat),
        crs="EPSG:4490",
        index=incidents.index,
    )
    for column, values in cols.items():
        if column in incidents.columns and column != "department":
            continue  # as given
        # object columns stay object (pandas 3 would convert them to str, row by row)
        is_object = isinstance(values, np.ndarray) and values.dtype.kind == "O"
        out[column] = pd.Series(values, index=out.index, dtype=object) if is_object else values
    return out


def _located_columns(
    incidents: gpd.GeoDataFrame,
    locator: Locator,
    *,
    crs: Any,
    routes: dict[str, str] | None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """:func:`locate_for_store` as columns and coordinates, without building point objects.

    Returns the attribute columns (the input's, then ``lng``/``lat`` if they
    were missing, then the dispatch codes as object arrays), and the points'
    longitudes and latitudes in EPSG:4490.
    """
    if not isinstance(incidents, gpd.GeoDataFrame):
        raise InputError(f"incidents must be a GeoDataFrame, got {type(incidents).__name__}")
    src = crs if crs is not None else incidents.crs
    if src is None:
        raise CRSError(
            "the incidents have no CRS: set one, or say which with crs= "
            "(wgs84, cgcs2000, gcj02, bd09 or an EPSG code)"
        )
    geom = np.asarray(incidents.geometry.array, dtype=object)
    bad = shapely.is_missing(geom) | (shapely.get_type_id(geom) != shapely.GeometryType.POINT)
    bad |= shapely.is_empty(geom)
    if bad.any():
        rows = [str(i) for i in incidents.index[bad][:5]]
        raise InputError(f"incidents must be non-empty points; bad geometry at rows {rows}")
    x = shapely.get_x(geom)
    y = shapely.get_y(geom)
    lon, lat = to_wgs84(x, y, src)
    name = incidents.geometry.name
    cols: dict[str, Any] = {c: incidents[c] for c in incidents.columns if c != name}
    if "lng" not in cols or "lat" not in cols:
        cols["lng"], cols["lat"] = x, y
    given = cols.get("department")
    codes = _dispatch_columns(cols, lon, lat, locator, routes)
    cols.update(codes)
    if given is not None:
        routed = codes["department"]
        given = np.asarray(given, dtype=object)
        keep = np.equal(routed, None) & ~pd.isna(given)
        cols["department"] = np.where(keep, given, routed)
    return cols, lon, lat


def _dispatch_columns(
    frame: dict[str, Any],
    lon: np.ndarray,
    lat: np.ndarray,
    locator: Locator,
    routes: dict[str, str] | None,
) -> dict[str, np.ndarray]:
    """:func:`dispatch_codes` of points at ``lon``/``lat`` (EPSG:4490) with the columns
    ``frame``, as object arrays with ``None`` for no value: the same lookups and
    routing, each column taken from the layers' keys by the located codes (numpy).
    """
    # the same checks and messages (columns, CRS, routes): on no rows, they cost nothing
    empty = gpd.GeoDataFrame({c: [] for c in frame}, geometry=[], crs="EPSG:4490")
    dispatch_codes(empty, locator, routes)
    names = locator.layer_names
    if routes is None:
        routes = {c: lay for c, lay in default_routes().items() if lay in names}
    located = locator.locate(lon, lat, crs="EPSG:4490")

    def keys(layer: str) -> np.ndarray:
        """The keys of ``layer`` at each row (None outside every zone)."""
        col = located[layer]
        table = np.append(np.asarray(col.cat.categories, dtype=object), None)
        return table[col.cat.codes.to_numpy()]  # code -1 takes the last entry, None

    n = len(lon)
    out: dict[str, np.ndarray] = {}
    for column, layer in DISPATCH_CODES.items():
        out[column] = keys(layer) if layer in names else np.full(n, None, dtype=object)
    cat_codes, cats = pd.factorize(pd.Series(frame["category"]).astype(str))
    layer_of = [routes.get(c) for c in cats]
    zone = np.full(n, None, dtype=object)
    for layer in dict.fromkeys(lay for lay in layer_of if lay is not None):
        which = [k for k, lay in enumerate(layer_of) if lay == layer]
        hit = np.isin(cat_codes, which)
        zone[hit] = keys(layer)[hit]
    department_of = {v: k for k, v in DEPARTMENTS.items()}
    depts = np.array([department_of.get(lay) if lay else None for lay in layer_of] + [None],
                     dtype=object)  # fmt: skip
    out["zone_code"] = zone
    out["department"] = depts[cat_codes]
    unknown = np.bincount(cat_codes[cat_codes >= 0], minlength=len(cats))
    unknown = {c: int(k) for c, k, lay in zip(cats, unknown, layer_of) if lay is None and k}
    if unknown:  # as route() says it, under its logger
        logging.getLogger("gridgeo.assign.route").warning(
            "%d incidents of unknown categories went to their grid: %s",
            sum(unknown.values()),
            dict(sorted(unknown.items(), key=lambda kv: -kv[1])[:10]),
        )
    return out


def locate_records(
    records: list[dict[str, Any]],
    locator: Locator,
    *,
    routes: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`locate_for_store` for a few records, one point at a time (a live POST).

    Each record holds ``category`` and ``lon``/``lat`` in EPSG:4490 (or WGS84);
    the answer adds the same dispatch codes :func:`dispatch_codes` gives, using
    :meth:`Locator.locate_one` (microseconds a point) instead of frames.

    Examples
    --------
    >>> import shapely
    >>> box = shapely.box(115, 25, 116, 26)
    >>> loc = Locator({"grid": gpd.GeoDataFrame({"code": ["G1"]}, geometry=[box], crs=4490),
    ...                "fire": gpd.GeoDataFrame({"code": ["XF1"]}, geometry=[box], crs=4490)})
    >>> rec = locate_records([{"category": "消防安全", "lon": 115.5, "lat": 25.5}], loc)[0]
    >>> rec["grid_code"], rec["zone_code"], rec["department"]
    ('G1', 'XF1', '消防')
    """
    from gridgeo.assign.route import DISPATCH_CODES, default_routes
    from gridgeo.codes import DEPARTMENTS

    names = set(locator.layer_names)
    if routes is None:
        routes = {c: lay for c, lay in default_routes().items() if lay in names}
    department_of = {v: k for k, v in DEPARTMENTS.items()}
    keys = {layer: locator.key_column(layer) for layer in names}
    out = []
    for rec in records:
        zones = locator.locate_one(rec["lon"], rec["lat"], crs="EPSG:4326")
        row = dict(rec)
        for column, layer in DISPATCH_CODES.items():
            zone = zones.get(layer)
            row[column] = None if zone is None else _str(zone.get(keys[layer]))
        layer = routes.get(str(rec.get("category")))
        zone = zones.get(layer) if layer else None
        row["zone_code"] = None if zone is None else _str(zone.get(keys[layer]))
        routed = department_of.get(layer) if layer else None
        row["department"] = routed if routed is not None else rec.get("department")
        out.append(row)
    return out


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def ingest(
    store: Any,
    incidents: gpd.GeoDataFrame,
    locator: Locator,
    *,
    crs: Any = None,
    routes: dict[str, str] | None = None,
    chunk: int = 200_000,
    progress: bool = False,
) -> IngestReport:
    """Locate, route and append incidents to a store, in chunks.

    Chunks are written by :meth:`IncidentStore.append_chunks`: one
    transaction each (PostGIS: one for a load of 1,000+ rows, see
    :meth:`PostGISStore.append_chunks`). Before the load, the store is
    asked which of its ids it holds already (:meth:`IncidentStore.stored_ids`):
    those rows are skipped, neither located nor written, so loading a file
    again costs one id lookup a row. An id stored between that lookup and the
    write (by a live POST) still creates nothing. An id repeated within the
    input is loaded once, from its first row.

    Parameters
    ----------
    store
        An :class:`~gridgeo.io.store.IncidentStore`.
    incidents, locator, crs, routes
        As in :func:`locate_for_store`; ``incidents`` need an ``id`` column.
    chunk
        Rows located and written at a time (a transaction each, unless the
        store writes the whole load as one); the first chunk is an eighth of
        that.
    progress
        Show a progress bar (tqdm) on stderr.

    Returns
    -------
    IngestReport

    Raises
    ------
    InputError
        If ``id`` is missing, or ``chunk`` < 1.
    ValidationError
        From the store, naming every bad row of the failing chunk (earlier
        chunks stay stored, unless the store writes the load as one transaction).

    Examples
    --------
    >>> import os, tempfile, shapely
    >>> from gridgeo.io.store import open_store
    >>> box = shapely.box(115, 25, 116, 26)
    >>> loc = Locator({"grid": gpd.GeoDataFrame({"code": ["G1"]}, geometry=[box], crs=4490)})
    >>> inc = gpd.GeoDataFrame({"id": ["A", "B"], "category": ["噪音", "噪音"],
    ...     "reported_at": ["2025-03-01T08:00:00+08:00"] * 2},
    ...     geometry=[shapely.Point(115.5, 25.5)] * 2, crs=4490)
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg"))
    >>> ingest(store, inc, loc).new, ingest(store, inc, loc).existing
    (['A', 'B'], ['A', 'B'])
    >>> twice = pd.concat([inc.assign(id=["C", "D"]), inc.assign(id=["C", "E"])])
    >>> rep = ingest(store, twice, loc)
    >>> rep.new, rep.repeated
    (['C', 'D', 'E'], ['C'])
    >>> store.get("A").grid_code
    'G1'
    >>> store.close()
    """
    if "id" not in incidents.columns:
        raise InputError(
            "incidents need an 'id' column (the work-order number) so that loading twice "
            f"stores them once; columns are {list(incidents.columns)}"
        )
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    ids = incidents["id"].astype(str)
    listed = ids.tolist()
    report = IngestReport(rows=len(incidents))
    # a set first: most loads repeat no id, and pandas' duplicated() costs twice as much
    again = np.zeros(len(listed), dtype=bool)
    if len(set(listed)) < len(listed):
        again = ids.duplicated().to_numpy()
        report.repeated = ids[again].unique().tolist()
        log.warning(
            "%d rows repeat an id seen earlier in the input (first kept, e.g. %s)",
            int(again.sum()),
            report.repeated[:5],
        )
        incidents, ids = incidents[~again], ids[~again]
        listed = ids.tolist()
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=report.rows, unit="incident", desc="ingest")
    # the stored ids are looked up before the load: a store may lock its table while it
    # reads the chunks (PostGIS rebuilding its indexes)
    stored: set[str] = set()
    # an empty store holds none (a POST meanwhile: the store sorts it); one indexed row
    # tells, where count() would scan a large PostGIS table
    if len(store.query(limit=1)):
        for lo in range(0, len(listed), chunk):
            stored |= store.stored_ids(listed[lo : lo + chunk])
    if stored:
        # set membership in Python: pandas' isin on Arrow strings took 20 µs an id
        todo = np.fromiter((i not in stored for i in listed), dtype=bool, count=len(listed))
        report.existing.extend(ids[~todo].tolist())
        incidents, ids = incidents[todo], ids[todo]
        if bar is not None:
            bar.update(int((~todo).sum()))
    if bar is not None:
        bar.update(int(again.sum()))

    # the first chunk is smaller, so that the store starts writing sooner (PostGIS writes
    # a chunk while the next one is located)
    bounds = [0, *range(max(chunk // 8, 1), len(incidents), chunk), len(incidents)]

    def located() -> Iterator[Any]:
        for lo, hi in itertools.pairwise(bounds):
            part = incidents.iloc[lo:hi]
            cols, lon, lat = _located_columns(part, locator, crs=crs, routes=routes)
            cols["id"] = ids.iloc[lo:hi]
            # checked here, in the store's words: the store writes it as it is
            yield prepare_points(cols, lon, lat)
            if bar is not None:
                bar.update(len(part))

    try:
        if len(incidents):
            res = store.append_chunks(located(), total=len(incidents))
            report.new.extend(res.new)
            report.existing.extend(res.existing)
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - t0
    log.info(
        "ingested %d incidents (%d new, %d already stored) in %.1f s",
        report.rows,
        len(report.new),
        len(report.existing),
        report.seconds,
    )
    return report
