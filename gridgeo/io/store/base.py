"""The incident store interface, the incident schema, and :func:`open_store`.

An :class:`IncidentStore` holds the live incidents of a territory: the HTTP
ingestion appends to it all day, dispatch updates statuses, and the analysis
reads it whole (:meth:`IncidentStore.to_frame`). Two backends implement it:

* :class:`~gridgeo.io.store.gpkg.GeoPackageStore`, the workspace's own
  ``incidents`` layer (embedded, the default);
* :class:`~gridgeo.io.store.postgis.PostGISStore`, a PostgreSQL + PostGIS table.

Times
-----
``reported_at``, ``closed_at`` and ``updated_at`` are instants. Inputs carry an
offset (ISO 8601, e.g. ``2025-03-01T08:00:00+08:00``); a time without one is read
as China Standard Time (UTC+8, :data:`TZ`). Frames and records return them
tz-aware in :data:`TZ`, so ``ts.dt.tz_localize(None)`` gives the local wall time.

Cursor
------
Every insert and every status change gives the row a new ``seq``, larger than
every ``seq`` committed before it (writers are serialised while they assign it).
:meth:`IncidentStore.changes_since` returns the rows with ``seq > cursor`` in
``seq`` order, and the largest ``seq`` returned as the next cursor: a poller
sees each change once, and a row changed twice between two polls once, in its
latest state.

Examples
--------
>>> import os, tempfile, shapely
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg"))
>>> rec = {"id": "E1", "category": "消防安全", "reported_at": "2025-03-01T08:00:00+08:00",
...        "geometry": shapely.Point(114.95, 25.35)}
>>> store.append([rec])
AppendResult(new=['E1'], existing=[])
>>> store.append([rec]).existing
['E1']
>>> store.get("E1").status
'受理'
>>> store.close()
"""

from __future__ import annotations

import abc
import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.errors import GridGeoError, InputError

__all__ = [
    "CLOSED",
    "COLUMNS",
    "CRS",
    "STATUSES",
    "TZ",
    "AppendResult",
    "Incident",
    "IncidentStore",
    "StoreError",
    "open_store",
]

#: CRS of every stored geometry: CGCS2000 lon/lat.
CRS = "EPSG:4490"
SRID = 4490
#: The time zone of naive inputs and of returned times (China Standard Time, no DST).
TZ = dt.timezone(dt.timedelta(hours=8))
#: The lifecycle of an incident, in order; a new incident is ``受理``.
STATUSES: tuple[str, ...] = ("受理", "立案", "派遣", "处置", "反馈", "核查", "结案")
#: The status that closes an incident (sets ``closed_at``).
CLOSED = "结案"
#: Attribute columns of a stored incident, in frame order (plus ``geometry``).
COLUMNS: tuple[str, ...] = (
    "id",
    "category",
    "department",
    "reported_at",
    "lng",
    "lat",
    "source",
    "description",
    "status",
    "closed_at",
    "grid_code",
    "community_code",
    "town_code",
    "beat_code",
    "zone_code",
    "seq",
    "updated_at",
)
#: Text columns a caller may supply (besides ``id`` and ``category``).
TEXT_COLUMNS: tuple[str, ...] = (
    "department",
    "source",
    "description",
    "grid_code",
    "community_code",
    "town_code",
    "beat_code",
    "zone_code",
)
TIME_COLUMNS: tuple[str, ...] = ("reported_at", "closed_at", "updated_at")


class StoreError(GridGeoError):
    """The store cannot be reached or used (database down, PostGIS missing, …)."""

    status = 503
    code = "StoreUnavailable"


@dataclass(frozen=True)
class AppendResult:
    """Which ids of an :meth:`IncidentStore.append` batch were new, which already stored.

    Both lists keep the batch order.
    """

    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Incident:
    """One stored incident (a row of the store).

    Attributes
    ----------
    id
        Client-supplied work-order number, unique.
    category
        Incident category, e.g. ``"消防安全"``.
    reported_at
        When it was reported (tz-aware, in :data:`TZ`).
    geometry
        Point in EPSG:4490 lon/lat.
    status
        One of :data:`STATUSES`.
    closed_at
        When it became ``结案`` (else ``None``).
    lng, lat
        Coordinates as reported by the client (any datum), if given.
    seq, updated_at
        Change cursor value and time of the last change (set by the store).

    Examples
    --------
    >>> import datetime as dt, shapely
    >>> inc = Incident("E1", "消防安全", dt.datetime(2025, 3, 1, 8, tzinfo=TZ),
    ...                shapely.Point(114.95, 25.35))
    >>> inc.__geo_interface__["properties"]["reported_at"]
    '2025-03-01T08:00:00+08:00'
    """

    id: str
    category: str
    reported_at: dt.datetime
    geometry: shapely.Point
    department: str | None = None
    lng: float | None = None
    lat: float | None = None
    source: str | None = None
    description: str | None = None
    status: str = STATUSES[0]
    closed_at: dt.datetime | None = None
    grid_code: str | None = None
    community_code: str | None = None
    town_code: str | None = None
    beat_code: str | None = None
    zone_code: str | None = None
    seq: int | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def from_frame(cls, frame: gpd.GeoDataFrame) -> list[Incident]:
        """The rows of a store frame as records."""
        out = []
        for row in frame.to_dict("records"):
            kw = {f.name: _scalar(row.get(f.name)) for f in fields(cls)}
            out.append(cls(**kw))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Attributes as plain Python values (times as ISO 8601 strings), without geometry."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "geometry":
                continue
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, dt.datetime) else v
        return out

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        """A GeoJSON Feature (``id`` is the work-order number)."""
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": shapely.geometry.mapping(self.geometry),
            "properties": self.to_dict(),
        }


def _scalar(v: Any) -> Any:
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


class IncidentStore(abc.ABC):
    """Where live incidents are kept: append, look up, query, follow changes, set status.

    Get one with :func:`open_store`. A store is safe to share between the
    threads of a process and to open in several processes at once (each
    gunicorn worker opens its own; a store opened before a fork reconnects in
    the child). Close it with :meth:`close` or use it as a context manager.
    """

    #: What the store is, for messages (a path, or a URL without password).
    name: str = ""

    # -- writes -----------------------------------------------------------------------
    @abc.abstractmethod
    def append(
        self, data: gpd.GeoDataFrame | Iterable[Incident | Mapping[str, Any]]
    ) -> AppendResult:
        """Store new incidents; ids already stored are left as they are.

        The batch is one transaction: either every new row is stored, or (on
        any error) none is.

        Parameters
        ----------
        data
            A GeoDataFrame of points (any CRS; reprojected to EPSG:4490), or
            records: :class:`Incident` objects or mappings with the keys of
            :data:`COLUMNS` and a ``geometry`` (a shapely point or a GeoJSON
            geometry dict, in EPSG:4490 lon/lat). ``id``, ``category``,
            ``reported_at`` and ``geometry`` are required; ``status`` defaults
            to ``受理``; ``seq`` and ``updated_at`` are set by the store.

        Returns
        -------
        AppendResult
            The ids stored now (``new``) and those that were already stored
            (``existing``; the HTTP layer answers 200 with :meth:`get`).

        Raises
        ------
        ValidationError
            Listing every bad row (by position and id); nothing is stored.
        CRSError
            If a GeoDataFrame has no CRS.
        StoreError
            If the store cannot be written.
        """

    def append_records(self, rows: Sequence[Incident | Mapping[str, Any]]) -> AppendResult:
        """Store a few new incidents given as records: the live path (one HTTP POST).

        The contract of :meth:`append` for records: the same checks (every bad
        row named, nothing stored), one transaction, ids already stored left as
        they are, the same :class:`AppendResult`, and the rows show in
        :meth:`changes_since` like any other. The backends build no frame on
        the way (:func:`~.batch.prepare_records`, then one prepared ``INSERT … ON
        CONFLICT (id) DO NOTHING``), so a single report costs a fraction of a
        millisecond of Python; :meth:`append` stays the way for big batches.

        Parameters
        ----------
        rows
            :class:`Incident` objects or mappings as for :meth:`append`; a
            ``geometry`` may also be a GeoJSON ``Point`` dict.

        Returns
        -------
        AppendResult

        Raises
        ------
        ValidationError
            Listing every bad row (by position and id); nothing is stored.
        StoreError
            If the store cannot be written.

        Examples
        --------
        >>> import os, tempfile
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg"))
        >>> rec = {"id": "E2", "category": "噪音", "reported_at": "2025-03-01T08:00:00+08:00",
        ...        "geometry": {"type": "Point", "coordinates": [114.95, 25.35]}}
        >>> store.append_records([rec]), store.append_records([rec]).existing
        (AppendResult(new=['E2'], existing=[]), ['E2'])
        >>> store.close()
        """
        return self.append(list(rows))  # a backend without a record path

    def append_chunks(self, chunks: Iterable[Any], *, total: int | None = None) -> AppendResult:
        """Append a long load given in chunks (bulk history), as :meth:`append` would.

        Each chunk is one transaction here, so earlier chunks stay stored when
        a later one fails. A backend may do better: PostGIS writes a load of
        1,000+ rows in one transaction and, when the load is at least as large
        as its table, builds its indexes once at the end.

        Parameters
        ----------
        chunks
            Batches as :meth:`append` takes them (consumed one by one).
        total
            Rows in all chunks, if known (a backend may choose its strategy by it).

        Examples
        --------
        >>> import os, tempfile, shapely
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg"))
        >>> rec = {"category": "噪音", "reported_at": "2025-03-01",
        ...        "geometry": shapely.Point(114.95, 25.35)}
        >>> store.append_chunks([[rec | {"id": "E1"}], [rec | {"id": "E1"}, rec | {"id": "E2"}]])
        AppendResult(new=['E1', 'E2'], existing=['E1'])
        >>> store.close()
        """
        new: list[str] = []
        existing: list[str] = []
        for chunk in chunks:
            res = self.append(chunk)
            new += res.new
            existing += res.existing
        return AppendResult(new, existing)

    def stored_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are stored already (a bulk load skips them before locating).

        The backends answer with one query; this fallback counts id by id.

        Examples
        --------
        >>> import os, tempfile, shapely
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg"))
        >>> _ = store.append([{"id": "E1", "category": "噪音", "reported_at": "2025-03-01",
        ...                    "geometry": shapely.Point(114.95, 25.35)}])
        >>> sorted(store.stored_ids(["E1", "E2"]))
        ['E1']
        >>> store.close()
        """
        return {i for i in dict.fromkeys(map(str, ids)) if self.count(where={"id": i})}

    @abc.abstractmethod
    def update_status(self, id: str, status: str, *, at: Any = None) -> Incident:
        """Set the lifecycle status of one incident, and return it as stored.

        ``closed_at`` is set (to ``at``, default now) when the status becomes
        ``结案`` and cleared when it leaves it; ``seq`` and ``updated_at`` move
        on. Setting the status it already has changes nothing.

        Raises
        ------
        InputError
            If ``status`` is not one of :data:`STATUSES` (the message lists them).
        NotFound
            If no incident has this id.
        """

    # -- reads ------------------------------------------------------------------------
    @abc.abstractmethod
    def get(self, id: str) -> Incident:
        """The stored incident with this id.

        Raises
        ------
        NotFound
            If no incident has this id.
        """

    @abc.abstractmethod
    def query(
        self,
        *,
        bbox: Sequence[float] | None = None,
        start: Any = None,
        end: Any = None,
        category: str | Iterable[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        where: Mapping[str, str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Incidents matching every given filter, ordered by ``reported_at`` then ``id``.

        Parameters
        ----------
        bbox
            ``(min_lon, min_lat, max_lon, max_lat)`` in EPSG:4490; points on the
            edge are inside.
        start, end
            ``start <= reported_at < end`` (ISO strings, datetimes; naive ones in :data:`TZ`).
        category
            One category or several.
        limit, offset
            Page of the ordered result.
        where
            Equality filters on text columns (:data:`~.batch.FILTER_COLUMNS`), e.g.
            ``{"status": "派遣", "grid_code": "360722001001001"}``.

        Returns
        -------
        GeoDataFrame
            Columns :data:`COLUMNS` and ``geometry``, CRS EPSG:4490.
        """

    @abc.abstractmethod
    def count(
        self,
        *,
        bbox: Sequence[float] | None = None,
        start: Any = None,
        end: Any = None,
        category: str | Iterable[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> int:
        """Number of incidents matching the filters of :meth:`query`."""

    @abc.abstractmethod
    def changes_since(
        self, cursor: int = 0, *, limit: int | None = None
    ) -> tuple[gpd.GeoDataFrame, int]:
        """Rows inserted or changed after ``cursor``, in ``seq`` order, and the next cursor.

        Parameters
        ----------
        cursor
            ``0`` for everything, then the cursor the previous call returned.
        limit
            At most this many rows (the next cursor then points after the last one).

        Returns
        -------
        (GeoDataFrame, int)
            The rows (as :meth:`query`) and the cursor to pass next time
            (``cursor`` itself when nothing changed).
        """

    def to_frame(self) -> gpd.GeoDataFrame:
        """Every incident, for the analysis (same columns as the workspace's ``incidents``)."""
        return self.query()

    read_all = to_frame

    # -- lifecycle --------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Release connections (the store reopens them if used again)."""

    def __enter__(self) -> IncidentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def open_store(url_or_path: str | os.PathLike[str], **options: Any) -> IncidentStore:
    """Open the incident store at a GeoPackage path or a ``postgresql://`` URL.

    The schema is created (or migrated) on first use.

    Parameters
    ----------
    url_or_path
        ``path/to/workspace.gpkg`` (created if missing; its ``incidents`` layer
        is migrated in place) or ``postgresql://user@host:port/db`` (also
        ``postgres://``, and libpq's ``postgresql:///db?host=/run/postgresql``).
    **options
        Passed to the backend (e.g. ``max_size`` of the PostGIS pool,
        ``busy_timeout`` of the GeoPackage store).

    Raises
    ------
    InputError
        For anything else (the message lists what is accepted).
    StoreError
        If the database is unreachable or lacks PostGIS.

    Examples
    --------
    >>> open_store("mysql://db/x")
    Traceback (most recent call last):
    ...
    gridgeo.errors.InputError: cannot open an incident store at 'mysql://db/x': ...
    """
    text = os.fspath(url_or_path)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        from gridgeo.io.store.postgis import PostGISStore

        return PostGISStore(text, **options)
    if scheme in ("", "file") and text.lower().endswith(".gpkg"):
        from gridgeo.io.store.gpkg import GeoPackageStore

        return GeoPackageStore(Path(text.removeprefix("file://")), **options)
    raise InputError(
        f"cannot open an incident store at {text!r}: expected a GeoPackage path ending "
        "in '.gpkg' or a URL 'postgresql://user@host:port/dbname'"
    )


# -- shared helpers of the backends --------------------------------------------------------
