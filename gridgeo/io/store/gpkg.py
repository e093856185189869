"""The GeoPackage incident store: the workspace's own ``incidents`` layer.

The layer stays a plain GeoPackage feature table (QGIS and
``geopandas.read_file(path, layer="incidents")`` read it), written through
:mod:`sqlite3` in WAL mode with a busy timeout, so that several processes (the
gunicorn workers) write at once: a writer waits for the lock instead of failing
with "database is locked".

On first open the layer is created, or an existing one is migrated in place:
missing columns are added (``ALTER TABLE``), ``status`` defaults to ``受理``,
every row gets a ``seq``, times are rewritten in one canonical form, and
indexes on ``id`` (unique), ``seq`` and ``reported_at`` are created. Rows added
later by another program (e.g. QGIS) are brought into line the next time a
store opens the file.

Times are stored as China Standard Time wall-clock text without an offset,
``YYYY-MM-DDTHH:MM:SS.sss`` (the convention of the workspace's layer, which GDAL
reads as naive local times; one fixed width, so text order is time order).

Geometries are GeoPackage binary blobs (:func:`encode_points`,
:func:`decode_geometries`). GDAL's R-tree triggers call ``ST_MinX`` and friends,
which this module registers as SQL functions on its connections.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import struct
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the writers queue in SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from gridgeo.errors import InputError, NotFound
from gridgeo.io.store import _rtree
from gridgeo.io.store._group import GroupCommit
from gridgeo.io.store.base import (
    CLOSED,
    COLUMNS,
    SRID,
    TZ,
    AppendResult,
    Incident,
    IncidentStore,
    StoreError,
)
from gridgeo.io.store.batch import (
    categories,
    check_bbox,
    check_status,
    check_where,
    empty_frame,
    finish_frame,
    one_time,
    prepare,
    prepare_records,
    to_utc,
)

__all__ = ["GeoPackageStore", "decode_geometries", "encode_points", "exclusive_writer"]

log = logging.getLogger(__name__)

TABLE = "incidents"
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
_SQL_TYPES = {
    "id": "TEXT",
    "category": "TEXT",
    "department": "TEXT",
    "reported_at": "DATETIME",
    "lng": "REAL",
    "lat": "REAL",
    "source": "TEXT",
    "description": "TEXT",
    "status": "TEXT",
    "closed_at": "DATETIME",
    "grid_code": "TEXT",
    "community_code": "TEXT",
    "town_code": "TEXT",
    "beat_code": "TEXT",
    "zone_code": "TEXT",
    "seq": "INTEGER",
    "updated_at": "DATETIME",
}
_CANONICAL_LEN = len("2025-01-01T00:00:00.000")
_BULK_ROWS = 1000  # from this many rows, append fills the R-tree itself
_CHECKPOINT_S = 1.0  # the live path's WAL checkpoint, in a thread of its own, this often


def _checkpointer(path: Path, stop: threading.Event, interval: float) -> None:
    """Checkpoint the WAL of ``path`` every ``interval`` s (PASSIVE) until ``stop`` is set.

    The record path turns SQLite's auto-checkpoint off on its connections: run by
    the commit that crosses 1000 WAL pages, it held that commit (and the group
    queued behind it) for the time of the checkpoint's writes and fsync. A
    PASSIVE checkpoint takes no write lock: writers go on appending to the WAL
    meanwhile, and SQLite starts the WAL over once a checkpoint has caught up.
    """
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        while not stop.wait(interval):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as err:  # e.g. another process's checkpoint runs
                log.debug("WAL checkpoint of '%s' skipped: %s", path, err)
    except sqlite3.Error as err:
        log.warning("no WAL checkpoints of '%s' from this process: %s", path, err)
    finally:
        if conn is not None:
            conn.close()


def _lock_file(path: str | os.PathLike[str]) -> int | None:
    """A new descriptor of the write lock file ``<path>-wlock`` (None without flock, or
    where the folder is not writable: writers then meet SQLite's busy timeout only)."""
    if fcntl is None:
        return None
    try:
        return os.open(f"{path}-wlock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        log.debug("no write lock file beside '%s' (%s): busy handler only", path, err)
        return None


@contextlib.contextmanager
def exclusive_writer(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the write lock of the GeoPackage ``path`` while something other than its
    :class:`GeoPackageStore` writes it (GDAL rewriting a layer: a plan adopted while the
    service takes reports).

    It is the lock file ``<path>-wlock`` the store's writers take: they wait for the
    holder, and the holder waits for the writer in progress. GDAL meets SQLite's lock
    without waiting, so a layer rewritten beside a live store failed now and then
    ("Layer … already exists": its delete found the database locked). Without
    ``flock`` (Windows) or a writable folder, nothing is held.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ws.gpkg")
    >>> with exclusive_writer(path):
    ...     os.path.exists(path + "-wlock")
    True
    """
    fd = _lock_file(path)
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# a GeoPackage point blob: header (little-endian, no envelope), then little-endian WKB
_BLOB = np.dtype(
    [("magic", "S4"), ("srid", "<i4"), ("order", "u1"), ("kind", "<u4"), ("x", "<f8"),
     ("y", "<f8")]
)  # fmt: skip


def encode_points(x: Any, y: Any, *, srid: int = SRID) -> list[bytes]:
    """GeoPackage geometry blobs of points (little-endian, no envelope).

    Parameters
    ----------
    x, y
        Coordinates (arrays of equal length).
    srid
        The ``srs_id`` written in each header.

    Returns
    -------
    list of bytes

    Examples
    --------
    >>> blob = encode_points([114.95], [25.35])[0]
    >>> blob[:2], len(blob)
    (b'GP', 29)
    >>> decode_geometries([blob])[0].wkt
    'POINT (114.95 25.35)'
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    blobs = np.zeros(len(x), _BLOB)
    blobs["magic"], blobs["srid"], blobs["order"], blobs["kind"] = b"GP\x00\x01", srid, 1, 1
    blobs["x"], blobs["y"] = x, y
    return blobs.view(f"V{_BLOB.itemsize}").tolist()  # bytes objects, built in C


def decode_geometries(blobs: Iterable[bytes | None]) -> np.ndarray:
    """Shapely geometries of GeoPackage blobs (``None`` stays ``None``).

    Examples
    --------
    >>> decode_geometries([None, encode_points([1.0], [2.0])[0]]).tolist()
    [None, <POINT (1 2)>]
    """
    wkb = [
        None if b is None else bytes(b[8 + _ENVELOPE_BYTES.get((b[3] >> 1) & 7, 0) :])
        for b in blobs
    ]
    return np.asarray(shapely.from_wkb(wkb), dtype=object) if wkb else np.empty(0, dtype=object)


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of a blob, None if empty: for GDAL's R-tree triggers."""
    if blob is None or len(blob) < 8:
        return None
    flags = blob[3]
    if flags & 0x10:
        return None
    env = (flags >> 1) & 7
    if env:
        order = "<" if flags & 1 else ">"
        x0, x1, y0, y1 = struct.unpack_from(order + "4d", blob, 8)
        return x0, x1, y0, y1
    off = 8
    order = "<" if blob[off] == 1 else ">"
    (kind,) = struct.unpack_from(order + "I", blob, off + 1)
    if kind % 1000 == 1 and len(blob) >= off + 21:
        x, y = struct.unpack_from(order + "2d", blob, off + 5)
        if x != x or y != y:
            return None
        return x, x, y, y
    geom = shapely.from_wkb(bytes(blob[off:]))
    if geom.is_empty:
        return None
    gx0, gy0, gx1, gy1 = geom.bounds
    return gx0, gx1, gy0, gy1


def _udf(i: int):
    def f(blob: bytes | None) -> float | None:
        env = _envelope(blob)
        return None if env is None else env[i]

    return f


def _is_empty(blob: bytes | None) -> int | None:
    return None if blob is None else int(_envelope(blob) is None)


def _times(utc: pd.Series) -> list[str | None]:
    """Canonical text of UTC instants: China Standard Time wall clock, to the millisecond."""
    local = utc.dt.tz_convert(TZ).dt.tz_localize(None).to_numpy("datetime64[ms]")
    text = np.datetime_as_string(local, unit="ms").astype(object)
    text[np.isnat(local)] = None
    return text.tolist()


def _now() -> str:
    return _times(pd.Series([pd.Timestamp.now(tz="UTC")]))[0]


def _srs_wkt(epsg: int) -> str:
    return pyproj.CRS.from_epsg(epsg).to_wkt("WKT1_GDAL")


class GeoPackageStore(IncidentStore):
    """Incidents in the ``incidents`` table of a GeoPackage (created if missing).

    Parameters
    ----------
    path
        The workspace ``.gpkg`` (created if it does not exist).
    busy_timeout
        Seconds a writer waits for another process's write lock.

    Raises
    ------
    StoreError
        If the file is not a GeoPackage SQLite can open.
    InputError
        If an existing ``incidents`` layer cannot be migrated (no ``id`` or
        ``category`` column, duplicate ids, unreadable times).

    Examples
    --------
    >>> import os, tempfile, shapely, geopandas as gpd
    >>> path = os.path.join(tempfile.mkdtemp(), "ws.gpkg")
    >>> with GeoPackageStore(path) as store:
    ...     r = store.append([{"id": "A1", "category": "消防安全",
    ...                        "reported_at": "2025-03-01 08:00",
    ...                        "geometry": shapely.Point(115, 25)}])
    >>> gpd.read_file(path, layer="incidents")[["id", "status"]].values.tolist()
    [['A1', '受理']]
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._fid = "fid"
        self._geom = "geom"
        self._rtree: str | None = None
        # the writers of this process queue here, and the processes on the flock of
        # ``<path>-wlock``, woken at once, instead of in SQLite's busy handler (which
        # sleeps 1, 2, 5, 10 … 100 ms between tries: with two server workers on a busy
        # machine the busy handler's sleeps made most of the POSTs' p99)
        self._write_lock = threading.Lock()
        self._flock_fd: int | None = None
        self._flock_pid = -1
        self._checkpoint_stop: threading.Event | None = None
        self._checkpoint_pid = -1
        self._group: GroupCommit | None = None
        self._group_pid = -1
        self._ensure_schema()

    # -- connections ------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -65536")  # 64 MB: a bulk append spills less
        except sqlite3.Error as err:
            raise StoreError(f"cannot open GeoPackage '{self.path}': {err}") from err
        if mode.lower() != "wal":
            log.warning("'%s' stays in journal mode %s, not WAL", self.path, mode)
        for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
            conn.create_function(name, 1, _udf(i), deterministic=True)
        conn.create_function("ST_IsEmpty", 1, _is_empty, deterministic=True)
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._conns.append(conn)
        return conn

    def _flock(self) -> int | None:
        """This process's descriptor of the lock file ``<path>-wlock`` (None without flock)."""
        if self._flock_pid != os.getpid():  # a forked child opens its own (flock is per open)
            self._flock_fd = _lock_file(self.path)
            self._flock_pid = os.getpid()
        return self._flock_fd

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """Be the only writer of this store among the threads and processes using it.

        The threads of a process queue on a lock, the processes on ``flock`` of the
        lock file ``<path>-wlock``: each waiter is woken as soon as the writer before
        it is done. A writer that does not take it (another program) still meets the
        busy timeout of ``BEGIN IMMEDIATE``.
        """
        with self._write_lock:
            fd = self._flock()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken at once (BEGIN IMMEDIATE)."""
        with self._writer(), self._transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise StoreError(
                f"GeoPackage '{self.path}' stayed locked for {self.busy_timeout} s: {err}"
            ) from err
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        if self._checkpoint_stop is not None:
            self._checkpoint_stop.set()
            self._checkpoint_stop, self._checkpoint_pid = None, -1
        with self._write_lock:
            if self._flock_fd is not None and self._flock_pid == os.getpid():
                with contextlib.suppress(OSError):
                    os.close(self._flock_fd)
            self._flock_fd, self._flock_pid = None, -1

    # -- schema -----------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        with self._write() as conn:
            tables = {
                r[0].lower()
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                )
            }
            if "gpkg_contents" not in tables:
                if tables:
                    raise StoreError(
                        f"'{self.path}' is an SQLite file but not a GeoPackage "
                        f"(no gpkg_contents table)"
                    )
                self._create_geopackage(conn)
            if TABLE not in tables:
                self._create_table(conn)
            self._migrate(conn)

    def _create_geopackage(self, conn: sqlite3.Connection) -> None:
        log.info("creating GeoPackage '%s'", self.path)
        conn.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        conn.execute("PRAGMA user_version = 10400")
        conn.execute(
            "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, "
            "srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL, "
            "organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, "
            "description TEXT)"
        )
        conn.executemany(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _srs_wkt(4326), None),
            ],
        )
        conn.execute(
            "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, "
            "data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '', "
            "last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
            "min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER, "
            "CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) "
            "REFERENCES gpkg_spatial_ref_sys(srs_id))"
        )
        conn.execute(
            "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, "
            "column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, "
            "srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
            "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), "
            "CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name), "
            "CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))"
        )
        conn.execute(
            "CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, "
            "extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, "
            "CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))"
        )

    def _create_table(self, conn: sqlite3.Connection) -> None:
        log.info("creating layer '%s' in '%s'", TABLE, self.path)
        if (
            conn.execute("SELECT 1 FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (SRID,)).fetchone()
            is None
        ):
            conn.execute(
                "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, 'EPSG', ?, ?, NULL)",
                ("China Geodetic Coordinate System 2000", SRID, SRID, _srs_wkt(SRID)),
            )
        cols = ", ".join(f'"{c}" {_SQL_TYPES[c]}' for c in COLUMNS)
        conn.execute(
            f'CREATE TABLE "{TABLE}" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
            f'"geom" POINT, {cols})'
        )
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change, srs_id) VALUES (?, 'features', ?, '', ?, ?)",
            (TABLE, TABLE, _now_utc_z(), SRID),
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POINT', ?, 0, 0)",
            (TABLE, SRID),
        )
        t, g, f, r = TABLE, "geom", "fid", f"rtree_{TABLE}_geom"
        conn.execute(f'CREATE VIRTUAL TABLE "{r}" USING rtree(id, minx, maxx, miny, maxy)')
        conn.execute(
            "INSERT INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', "
            "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
            (t, g),
        )
        box = f'ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")'
        has = f'NEW."{g}" NOT NULL AND NOT ST_IsEmpty(NEW."{g}")'
        # the triggers GDAL writes (GeoPackage 1.2 R-tree extension), so GDAL and QGIS keep it
        for sql in (
            f'CREATE TRIGGER "{r}_insert" AFTER INSERT ON "{t}" WHEN ({has}) BEGIN '
            f'INSERT OR REPLACE INTO "{r}" VALUES (NEW."{f}", {box}); END',
            f'CREATE TRIGGER "{r}_update6" AFTER UPDATE OF "{g}" ON "{t}" WHEN '
            f'OLD."{f}" = NEW."{f}" AND ({has}) AND '
            f'(OLD."{g}" NOTNULL AND NOT ST_IsEmpty(OLD."{g}")) '
            f'BEGIN UPDATE "{r}" SET minx = ST_MinX(NEW."{g}"), maxx = ST_MaxX(NEW."{g}"), '
            f'miny = ST_MinY(NEW."{g}"), maxy = ST_MaxY(NEW."{g}") WHERE id = NEW."{f}"; END',
            f'CREATE TRIGGER "{r}_update7" AFTER UPDATE OF "{g}" ON "{t}" WHEN '
            f'OLD."{f}" = NEW."{f}" AND ({has}) AND (OLD."{g}" ISNULL OR ST_IsEmpty(OLD."{g}")) '
            f'BEGIN INSERT INTO "{r}" VALUES (NEW."{f}", {box}); END',
            f'CREATE TRIGGER "{r}_update2" AFTER UPDATE OF "{g}" ON "{t}" WHEN '
            f'OLD."{f}" = NEW."{f}" AND (NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}")) '
            f'BEGIN DELETE FROM "{r}" WHERE id = OLD."{f}"; END',
            f'CREATE TRIGGER "{r}_update5" AFTER UPDATE ON "{t}" WHEN OLD."{f}" != NEW."{f}" '
            f'AND ({has}) BEGIN DELETE FROM "{r}" WHERE id = OLD."{f}"; '
            f'INSERT OR REPLACE INTO "{r}" VALUES (NEW."{f}", {box}); END',
            f'CREATE TRIGGER "{r}_update4" AFTER UPDATE ON "{t}" WHEN OLD."{f}" != NEW."{f}" '
            f'AND (NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM "{r}" '
            f'WHERE id IN (OLD."{f}", NEW."{f}"); END',
            f'CREATE TRIGGER "{r}_delete" AFTER DELETE ON "{t}" WHEN old."{g}" NOT NULL '
            f'BEGIN DELETE FROM "{r}" WHERE id = OLD."{f}"; END',
        ):
            conn.execute(sql)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        info = conn.execute(f'PRAGMA table_info("{TABLE}")').fetchall()
        have = {r[1] for r in info}
        pk = [r[1] for r in info if r[5]]
        geom = conn.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = ?", (TABLE,)
        ).fetchone()
        if geom is None or len(pk) != 1:
            raise InputError(
                f"table '{TABLE}' of '{self.path}' is not a GeoPackage feature table "
                "(no geometry column or no integer primary key)"
            )
        self._fid, self._geom = pk[0], geom[0]
        missing = [c for c in ("id", "category", "reported_at") if c not in have]
        if missing:
            raise InputError(
                f"layer '{TABLE}' of '{self.path}' lacks column(s) {missing}, so it cannot "
                f"hold incidents; it has {sorted(have)}"
            )
        added = [c for c in COLUMNS if c not in have]
        for col in added:
            conn.execute(f'ALTER TABLE "{TABLE}" ADD COLUMN "{col}" {_SQL_TYPES[col]}')
        if added:
            log.info("layer '%s' of '%s': added column(s) %s", TABLE, self.path, added)
        conn.execute(f"UPDATE \"{TABLE}\" SET status = '受理' WHERE status IS NULL")
        self._normalise_times(conn)
        top = conn.execute(f'SELECT COALESCE(MAX(seq), 0) FROM "{TABLE}"').fetchone()[0]
        n = conn.execute(
            f'UPDATE "{TABLE}" SET seq = ? + "{self._fid}", updated_at = COALESCE(updated_at, ?) '
            "WHERE seq IS NULL",
            (top, _now()),
        ).rowcount
        if n:
            log.info("layer '%s' of '%s': numbered %d rows for changes_since", TABLE, self.path, n)
        dup = conn.execute(
            f'SELECT id, COUNT(*) FROM "{TABLE}" GROUP BY id HAVING COUNT(*) > 1 LIMIT 5'
        ).fetchall()
        if dup:
            raise InputError(
                f"layer '{TABLE}' of '{self.path}' has duplicate ids {[d[0] for d in dup]}; "
                "ids must be unique to store incidents"
            )
        conn.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "{TABLE}_id" ON "{TABLE}" (id)')
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{TABLE}_seq" ON "{TABLE}" (seq)')
        conn.execute(
            f'CREATE INDEX IF NOT EXISTS "{TABLE}_reported_at" ON "{TABLE}" (reported_at, id)'
        )
        rtree = f"rtree_{TABLE}_{self._geom}"
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (rtree,)
        ).fetchone()
        self._rtree = rtree if found else None

    def _normalise_times(self, conn: sqlite3.Connection) -> None:
        for col in ("reported_at", "closed_at", "updated_at"):
            rows = conn.execute(
                f'SELECT "{self._fid}", "{col}" FROM "{TABLE}" WHERE "{col}" IS NOT NULL AND '
                f'(length("{col}") != ? OR substr("{col}", 11, 1) != \'T\')',
                (_CANONICAL_LEN,),
            ).fetchall()
            if not rows:
                continue
            fids = [r[0] for r in rows]
            utc = to_utc(pd.Series([r[1] for r in rows], dtype=object))
            bad = [f for f, t in zip(fids, utc.isna()) if t]
            if bad:
                raise InputError(
                    f"layer '{TABLE}' of '{self.path}': column '{col}' has values that are "
                    f"not ISO 8601 times at fid {bad[:5]}"
                )
            conn.executemany(
                f'UPDATE "{TABLE}" SET "{col}" = ? WHERE "{self._fid}" = ?',
                zip(_times(utc), fids),
            )
            log.info("layer '%s': rewrote %d '%s' times in canonical form", TABLE, len(rows), col)

    # -- writes -----------------------------------------------------------------------
    def append(self, data: Any) -> AppendResult:
        batch = prepare(data)
        n = len(batch)
        if n == 0:
            return AppendResult([], [])
        if n >= _BULK_ROWS:
            return self._append_bulk(batch)
        cols = [c for c in COLUMNS if c not in ("seq", "updated_at")]
        values = self._values(batch, cols)
        blobs = encode_points(batch["x"].to_numpy(), batch["y"].to_numpy())
        names = ", ".join(f'"{c}"' for c in (self._geom, *cols, "seq", "updated_at"))
        marks = ", ".join("?" * (len(cols) + 3))
        sql = f'INSERT INTO "{TABLE}" ({names}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING'
        with self._write() as conn:
            top = conn.execute(f'SELECT COALESCE(MAX(seq), 0) FROM "{TABLE}"').fetchone()[0]
            now = _now()
            seqs = range(top + 1, top + 1 + n)
            try:
                conn.executemany(sql, zip(blobs, *(values[c] for c in cols), seqs, [now] * n))
            except sqlite3.Error as err:
                raise StoreError(f"cannot write to '{self.path}': {err}") from err
            rows = conn.execute(
                f'SELECT id FROM "{TABLE}" WHERE seq > ? ORDER BY seq', (top,)
            ).fetchall()
            new = [r[0] for r in rows]
            if new:
                fresh = set(new)
                keep = batch["id"].isin(fresh).to_numpy()
                self._extent(conn, batch["x"].to_numpy()[keep], batch["y"].to_numpy()[keep])
        fresh = set(new)
        return AppendResult(new, [i for i in batch["id"] if i not in fresh])

    @staticmethod
    def _values(batch: pd.DataFrame, cols: list[str]) -> dict[str, list[Any]]:
        """The batch's columns as lists of SQLite values (times as canonical text)."""
        values: dict[str, list[Any]] = {
            c: batch[c].tolist()
            for c in cols
            if c not in ("reported_at", "closed_at", "lng", "lat")
        }
        values["reported_at"] = _times(batch["reported_at"])
        values["closed_at"] = _times(batch["closed_at"])
        for c in ("lng", "lat"):
            v = batch[c].to_numpy(np.float64).astype(object)
            v[np.isnan(batch[c].to_numpy(np.float64))] = None
            values[c] = v.tolist()
        return values

    def _extent(self, conn: sqlite3.Connection, x: np.ndarray, y: np.ndarray) -> None:
        """Grow the layer's extent in ``gpkg_contents`` to cover new points."""
        conn.execute(
            "UPDATE gpkg_contents SET min_x = MIN(COALESCE(min_x, :x0), :x0), "
            "min_y = MIN(COALESCE(min_y, :y0), :y0), "
            "max_x = MAX(COALESCE(max_x, :x1), :x1), "
            "max_y = MAX(COALESCE(max_y, :y1), :y1), last_change = :now "
            "WHERE lower(table_name) = :t",
            {"x0": float(x.min()), "y0": float(y.min()), "x1": float(x.max()),
             "y1": float(y.max()), "now": _now_utc_z(), "t": TABLE},
        )  # fmt: skip

    def _append_bulk(self, batch: pd.DataFrame) -> AppendResult:
        """A large batch: stored ids dropped first, then plain inserts with the fids and
        ``seq`` numbered here, the R-tree filled packed (:mod:`._rtree`) instead of by
        GDAL's per-row trigger (five Python calls and ~25 µs of R-tree work a row), and
        GDAL's feature count raised once instead of by its per-row trigger. Both
        triggers are back before the commit; readers (WAL) never see them missing."""
        ids = batch["id"]
        cols = [c for c in COLUMNS if c not in ("seq", "updated_at")]
        names = ", ".join(f'"{c}"' for c in (self._fid, self._geom, *cols, "seq", "updated_at"))
        marks = ", ".join("?" * (len(cols) + 4))
        sql = f'INSERT INTO "{TABLE}" ({names}) VALUES ({marks})'
        with self._write() as conn:
            stored = self._stored(conn, ids.tolist())
            if stored:
                batch = batch[~ids.isin(stored).to_numpy()]
            m = len(batch)
            if m == 0:
                return AppendResult([], ids.tolist())
            x, y = batch["x"].to_numpy(), batch["y"].to_numpy()
            values = self._values(batch, cols)
            blobs = encode_points(x, y)
            top = conn.execute(f'SELECT COALESCE(MAX(seq), 0) FROM "{TABLE}"').fetchone()[0]
            fid0 = self._last_fid(conn) + 1
            fids = np.arange(fid0, fid0 + m, dtype=np.int64)
            trigger = self._trigger(conn, f"{self._rtree}_insert", m) if self._rtree else None
            counter = self._trigger(conn, f"trigger_insert_feature_count_{TABLE}", m)
            for found in (trigger, counter):
                if found is not None:
                    conn.execute(f'DROP TRIGGER "{found[0]}"')
            rows = zip(
                fids.tolist(),
                blobs,
                *(values[c] for c in cols),
                range(top + 1, top + 1 + m),
                [_now()] * m,
            )
            try:
                conn.executemany(sql, rows)
            except sqlite3.Error as err:
                raise StoreError(f"cannot write to '{self.path}': {err}") from err
            if self._rtree is not None:
                name = f"{self._rtree}_insert"
                by_trigger = trigger is None and self._trigger(conn, name, _BULK_ROWS) is not None
                if not by_trigger and m >= _BULK_ROWS:
                    how = _rtree.packed_insert(conn, self._rtree, fids, _rtree.outward(x, y))
                    log.debug("R-tree of '%s': %d entries %s", self.path, m, how)
                elif not by_trigger:  # a few rows left, or a layer without GDAL's trigger
                    box = _rtree.outward(x, y).astype(np.float64)
                    conn.executemany(
                        f'INSERT INTO "{self._rtree}" VALUES (?, ?, ?, ?, ?)',
                        zip(fids.tolist(), *(box[:, i].tolist() for i in range(4))),
                    )
                if trigger is not None:
                    conn.execute(trigger[1])
            if counter is not None:
                conn.execute(
                    "UPDATE gpkg_ogr_contents SET feature_count = feature_count + ? "
                    "WHERE lower(table_name) = lower(?)",
                    (m, TABLE),
                )
                conn.execute(counter[1])
            self._extent(conn, x, y)
        new = batch["id"].tolist()
        return AppendResult(new, [i for i in ids.tolist() if i in stored])

    def _last_fid(self, conn: sqlite3.Connection) -> int:
        """The largest fid ever given (AUTOINCREMENT never reuses one)."""
        top = conn.execute(f'SELECT COALESCE(MAX("{self._fid}"), 0) FROM "{TABLE}"').fetchone()[0]
        with contextlib.suppress(sqlite3.OperationalError):  # no AUTOINCREMENT table anywhere
            row = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE lower(name) = ?", (TABLE,)
            ).fetchone()
            if row is not None and row[0] is not None:
                top = max(top, int(row[0]))
        return int(top)

    def _stored(self, conn: sqlite3.Connection, ids: list[str]) -> set[str]:
        """Which ids the table holds: one query, the ids passed as one JSON array."""
        if not ids:
            return set()
        rows = conn.execute(
            f'SELECT id FROM "{TABLE}" WHERE id IN (SELECT value FROM json_each(?))',
            (json.dumps(ids, ensure_ascii=False),),
        ).fetchall()
        return {r[0] for r in rows}

    def stored_ids(self, ids: Iterable[str]) -> set[str]:
        return self._stored(self._conn(), [str(i) for i in ids])

    def append_records(self, rows: Sequence[Any]) -> AppendResult:
        """The live path: one prepared ``INSERT … ON CONFLICT (id) DO NOTHING`` a row.

        No frames: :func:`prepare_records` checks the rows in plain Python, the
        GeoPackage blob is packed with :mod:`struct`. The calls of this process's
        threads are written by group commit
        (:class:`~gridgeo.io.store._group.GroupCommit`): the first caller writes
        the rows of every call queued behind it in one transaction, and each
        call still gets its own result, its rows all or nothing (a failed batch
        is written again call by call). The transaction is the usual ``BEGIN
        IMMEDIATE`` (WAL, busy timeout); ``seq`` numbers the new rows after
        every committed one.

        The writers of this process and of the others on the same file take turns
        on a lock (``flock`` of ``<path>-wlock``), woken as soon as the previous
        writer is done, not by SQLite's busy handler, which sleeps up to 100 ms a
        try. The WAL is checkpointed every second by a thread of this process, not
        by the commit that happens to fill 1000 pages.

        Durability: WAL with ``synchronous = NORMAL`` (set on every connection)
        writes the commit to the WAL file before it returns, without an fsync:
        a killed process (``kill -9`` of a worker or of the whole server) loses
        nothing acknowledged; only an OS crash or a power cut can lose the last
        commits (``PRAGMA synchronous = FULL`` would fsync each one).
        """
        batch = prepare_records(rows)
        if not batch:
            return AppendResult([], [])
        with self._lock:  # one queue per process (a forked child starts its own)
            if self._group is None or self._group_pid != os.getpid():
                self._group, self._group_pid = GroupCommit(self._insert_records), os.getpid()
            if self._checkpoint_pid != os.getpid():  # a forked child starts its own
                stop = threading.Event()
                threading.Thread(
                    target=_checkpointer,
                    args=(self.path, stop, _CHECKPOINT_S),
                    name=f"gpkg-checkpoint {self.path.name}",
                    daemon=True,
                ).start()
                weakref.finalize(self, stop.set)
                self._checkpoint_stop, self._checkpoint_pid = stop, os.getpid()
            group = self._group
        return group.append(batch)

    def _insert_records(self, batch: list[dict[str, Any]]) -> set[str]:
        """Insert prepared records in one transaction; the ids stored (first of a repeat)."""
        cols = [c for c in COLUMNS if c not in ("seq", "updated_at")]
        names = ", ".join(f'"{c}"' for c in (self._geom, *cols, "seq", "updated_at"))
        marks = ", ".join("?" * (len(cols) + 3))
        sql = f'INSERT INTO "{TABLE}" ({names}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING'
        values = [
            [_point_blob(r["x"], r["y"])]
            + [_local_ms(r[c]) if c in ("reported_at", "closed_at") else r[c] for c in cols]
            for r in batch
        ]
        new: list[str] = []
        now = _local_ms(dt.datetime.now(dt.timezone.utc))
        with self._write() as conn:
            if getattr(self._local, "no_autocheckpoint", None) is not conn:
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # _checkpointer does it
                self._local.no_autocheckpoint = conn
            top = conn.execute(f'SELECT COALESCE(MAX(seq), 0) FROM "{TABLE}"').fetchone()[0]
            try:
                for row, vals in zip(batch, values):
                    # sqlite3 keeps the statement prepared (its cache is keyed by the SQL text)
                    if conn.execute(sql, (*vals, top + 1 + len(new), now)).rowcount > 0:
                        new.append(row["id"])
            except sqlite3.Error as err:
                raise StoreError(f"cannot write to '{self.path}': {err}") from err
            if new:
                fresh = set(new)
                xs = [r["x"] for r in batch if r["id"] in fresh]
                ys = [r["y"] for r in batch if r["id"] in fresh]
                conn.execute(
                    "UPDATE gpkg_contents SET min_x = MIN(COALESCE(min_x, :x0), :x0), "
                    "min_y = MIN(COALESCE(min_y, :y0), :y0), "
                    "max_x = MAX(COALESCE(max_x, :x1), :x1), "
                    "max_y = MAX(COALESCE(max_y, :y1), :y1), last_change = :now "
                    "WHERE lower(table_name) = :t",
                    {"x0": min(xs), "y0": min(ys), "x1": max(xs), "y1": max(ys),
                     "now": _utc_z(), "t": TABLE},
                )  # fmt: skip
        return set(new)

    @staticmethod
    def _trigger(conn: sqlite3.Connection, name: str, n: int) -> tuple[str, str] | None:
        """(name, SQL) of trigger ``name`` for a bulk batch of ``n`` rows, if it exists."""
        if n < _BULK_ROWS:
            return None
        row = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def update_status(self, id: str, status: str, *, at: Any = None) -> Incident:
        status = check_status(status)
        when = _times(
            pd.Series([one_time(at, what="at") if at is not None else pd.Timestamp.now(tz="UTC")])
        )[0]
        with self._write() as conn:
            row = conn.execute(f'SELECT status FROM "{TABLE}" WHERE id = ?', (id,)).fetchone()
            if row is None:
                raise NotFound(f"no incident with id {id!r}")
            if row[0] != status:
                top = conn.execute(f'SELECT COALESCE(MAX(seq), 0) FROM "{TABLE}"').fetchone()[0]
                conn.execute(
                    f'UPDATE "{TABLE}" SET status = ?, closed_at = ?, seq = ?, updated_at = ? '
                    "WHERE id = ?",
                    (status, when if status == CLOSED else None, top + 1, _now(), id),
                )
        return self.get(id)

    # -- reads ------------------------------------------------------------------------
    def _select(self, where: str, params: list[Any], tail: str = "") -> gpd.GeoDataFrame:
        names = ", ".join(f'"{c}"' for c in (self._geom, *COLUMNS))
        cur = self._conn().execute(f'SELECT {names} FROM "{TABLE}" {where} {tail}', params)
        rows = cur.fetchall()
        if not rows:
            return empty_frame()
        df = pd.DataFrame.from_records(rows, columns=["_geom", *COLUMNS])
        geoms = decode_geometries(df.pop("_geom").tolist())
        return finish_frame(df, geoms)

    def _where(
        self,
        bbox: Sequence[float] | None,
        start: Any,
        end: Any,
        category: Any,
        where: Mapping[str, str] | None = None,
    ) -> tuple[str, list[Any]]:
        terms: list[str] = []
        params: list[Any] = []
        box = check_bbox(bbox)
        if box is not None:
            x0, y0, x1, y1 = box
            g = f'"{self._geom}"'
            if self._rtree is not None:
                terms.append(
                    f'"{self._fid}" IN (SELECT id FROM "{self._rtree}" WHERE minx <= ? '
                    "AND maxx >= ? AND miny <= ? AND maxy >= ?)"
                )
                params += [x1, x0, y1, y0]
            terms.append(f"ST_MinX({g}) BETWEEN ? AND ? AND ST_MinY({g}) BETWEEN ? AND ?")
            params += [x0, x1, y0, y1]
        if start is not None:
            terms.append("reported_at >= ?")
            params += _times(pd.Series([one_time(start, what="start")]))
        if end is not None:
            terms.append("reported_at < ?")
            params += _times(pd.Series([one_time(end, what="end")]))
        cats = categories(category)
        if cats is not None:
            terms.append(f"category IN ({', '.join('?' * len(cats))})" if cats else "0")
            params += cats
        for column, value in check_where(where):
            terms.append(f'"{column}" = ?')
            params.append(value)
        return ("WHERE " + " AND ".join(terms)) if terms else "", params

    def get(self, id: str) -> Incident:
        frame = self._select("WHERE id = ?", [id])
        if frame.empty:
            raise NotFound(f"no incident with id {id!r}")
        return Incident.from_frame(frame)[0]

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
        clause, params = self._where(bbox, start, end, category, where)
        tail = "ORDER BY reported_at, id"
        if limit is not None or offset:
            tail += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else int(limit), int(offset)]
        return self._select(clause, params, tail)

    def count(
        self,
        *,
        bbox: Sequence[float] | None = None,
        start: Any = None,
        end: Any = None,
        category: str | Iterable[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> int:
        clause, params = self._where(bbox, start, end, category, where)
        return int(
            self._conn().execute(f'SELECT COUNT(*) FROM "{TABLE}" {clause}', params).fetchone()[0]
        )

    def changes_since(
        self, cursor: int = 0, *, limit: int | None = None
    ) -> tuple[gpd.GeoDataFrame, int]:
        tail = "ORDER BY seq" + (" LIMIT ?" if limit is not None else "")
        params: list[Any] = [int(cursor)] + ([int(limit)] if limit is not None else [])
        frame = self._select("WHERE seq > ?", params, tail)
        return frame, int(frame["seq"].max()) if len(frame) else int(cursor)


_POINT = struct.Struct("<4siBIdd")  # GeoPackage header (LE, no envelope), then LE WKB Point


def _point_blob(x: float, y: float, *, srid: int = SRID) -> bytes:
    """The GeoPackage blob of one point, as :func:`encode_points` writes it (no numpy)."""
    return _POINT.pack(b"GP\x00\x01", srid, 1, 1, x, y)


def _local_ms(t: dt.datetime | None) -> str | None:
    """:func:`_times` of one aware datetime: China Standard Time wall clock, to the ms."""
    if t is None:
        return None
    return t.astimezone(TZ).replace(tzinfo=None).isoformat(timespec="milliseconds")


def _utc_z() -> str:
    """:func:`_now_utc_z` without pandas."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def _now_utc_z() -> str:
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
