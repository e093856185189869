"""Ingest incidents into a store: locate and route each one, then append.

The HTTP ingestion (``POST /collections/incidents/items``) and ``gridgeo
ingest`` (bulk history) both come here, so a report gets the same codes
whichever way it arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.assign.locator import Locator
from gridgeo.assign.route import dispatch_codes
from gridgeo.crs import to_wgs84
from gridgeo.errors import CRSError, InputError

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
    if not isinstance(incidents, gpd.GeoDataFrame):
        raise InputError(f"incidents must be a GeoDataFrame, got {type(incidents).__name__}")
    src = crs if crs is not None else incidents.crs
    if src is None:
        raise CRSError(
            "the incidents have no CRS: set one, or say which with crs= "
            "(wgs84, cgcs2000, gcj02, bd09 or an EPSG code)"
        )
    geom = incidents.geometry
    bad = geom.isna() | geom.is_empty | (geom.geom_type != "Point")
    if bad.any():
        rows = [str(i) for i in incidents.index[bad.to_numpy()][:5]]
        raise InputError(f"incidents must be non-empty points; bad geometry at rows {rows}")
    x = geom.x.to_numpy(dtype=np.float64)
    y = geom.y.to_numpy(dtype=np.float64)
    lon, lat = to_wgs84(x, y, src)
    out = gpd.GeoDataFrame(
        pd.DataFrame(incidents.drop(columns=incidents.geometry.name)),
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4490",
        index=incidents.index,
    )
    if "lng" not in out.columns or "lat" not in out.columns:
        out["lng"], out["lat"] = x, y
    codes = dispatch_codes(out, locator, routes)
    given = out["department"] if "department" in out.columns else None
    for column in codes.columns:
        out[column] = codes[column]
    if given is not None:
        out["department"] = codes["department"].where(codes["department"].notna(), given)
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
    :meth:`PostGISStore.append_chunks`). Before a chunk is located, the store is
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
        store writes the whole load as one).
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
    again = ids.duplicated().to_numpy()
    report = IngestReport(rows=len(incidents))
    if again.any():
        report.repeated = ids[again].unique().tolist()
        log.warning(
            "%d rows repeat an id seen earlier in the input (first kept, e.g. %s)",
            int(again.sum()),
            report.repeated[:5],
        )
        incidents, ids = incidents[~again], ids[~again]
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=report.rows, unit="incident", desc="ingest")

    def located() -> Iterator[gpd.GeoDataFrame]:
        for lo in range(0, len(incidents), chunk):
            part_ids = ids.iloc[lo : lo + chunk]
            listed = part_ids.tolist()
            stored = store.stored_ids(listed)
            # set membership in Python: pandas' isin on Arrow strings took 20 µs an id
            todo = (
                np.fromiter((i not in stored for i in listed), dtype=bool, count=len(listed))
                if stored
                else None
            )
            if todo is not None:
                report.existing.extend(part_ids[~todo].tolist())
            if todo is None or todo.any():
                part = incidents.iloc[lo : lo + chunk]
                if todo is not None:
                    part, part_ids = part[todo], part_ids[todo]
                ready = locate_for_store(part, locator, crs=crs, routes=routes)
                ready["id"] = part_ids.to_numpy()
                yield ready
            if bar is not None:
                bar.update(min(chunk, len(incidents) - lo) + (int(again.sum()) if lo == 0 else 0))

    try:
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
