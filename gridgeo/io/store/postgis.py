"""The PostGIS incident store: a PostgreSQL table with a GiST-indexed point column.

Connections come from a :class:`psycopg_pool.ConnectionPool` (opened lazily, and
again in a forked child). Batches are sent by binary ``COPY`` (:mod:`._pgcopy`):
:meth:`~PostGISStore.append` into a temporary staging table, then ``INSERT …
SELECT … ON CONFLICT (id) DO NOTHING RETURNING id``, all in one transaction; a
large load straight into the table (see :meth:`~PostGISStore.append_chunks`).
``seq`` comes from a sequence; writers take a transaction-level advisory lock
before drawing from it, so rows become visible in ``seq`` order and a poller of
:meth:`~PostGISStore.changes_since` never skips a row committed late with a
smaller ``seq``.

The schema is created on first use, or by ``gridgeo db init DSN``: the table
``schema_version`` records which of :data:`MIGRATIONS` ran; new ones are
appended to that tuple and applied in order, under an advisory lock, by the
first store that opens the database.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.copy import QueuedLibpqWriter

from gridgeo.errors import InputError, NotFound
from gridgeo.io.store import _pgcopy
from gridgeo.io.store._group import GroupCommit
from gridgeo.io.store.base import (
    CLOSED,
    COLUMNS,
    SRID,
    STATUSES,
    TEXT_COLUMNS,
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
)

__all__ = ["MIGRATIONS", "PostGISStore", "describe_dsn"]

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 0x67726964  # advisory lock keys ("grid")
_WRITE_LOCK = 0x67726965
_STATUS_LIST = ", ".join(f"'{s}'" for s in STATUSES)

#: Ordered schema migrations ``(version, SQL)``; add new ones at the end, never edit old ones.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        f"""
        CREATE SEQUENCE incidents_seq AS bigint;
        CREATE TABLE incidents (
            id text PRIMARY KEY,
            geom geometry(Point, {SRID}) NOT NULL,
            category text NOT NULL,
            department text,
            reported_at timestamptz NOT NULL,
            lng double precision,
            lat double precision,
            source text,
            description text,
            status text NOT NULL DEFAULT '{STATUSES[0]}'
                CONSTRAINT incidents_status_check CHECK (status IN ({_STATUS_LIST})),
            closed_at timestamptz,
            grid_code text,
            community_code text,
            town_code text,
            beat_code text,
            zone_code text,
            seq bigint NOT NULL DEFAULT nextval('incidents_seq'),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER SEQUENCE incidents_seq OWNED BY incidents.seq;
        CREATE INDEX incidents_geom_idx ON incidents USING gist (geom);
        CREATE INDEX incidents_reported_at_idx ON incidents (reported_at, id);
        CREATE UNIQUE INDEX incidents_seq_idx ON incidents (seq);
        CREATE INDEX incidents_category_idx ON incidents (category);
        """,
    ),
    # A category holds a tenth of the rows or more (a county reports a dozen kinds): its
    # B-tree selects too little to beat a scan, and it cost every insert (a second of a
    # 1M-row load rebuilding it). Category filters ride on the bbox and time indexes.
    (2, "DROP INDEX IF EXISTS incidents_category_idx"),
)

_ISO = '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''
# append() and the bulk load (append_chunks): binary COPY into incidents, or into a
# staging table inserted with ON CONFLICT; append() leaves seq to its default, a load
# brings the seq values it reserved
_DIRECT = ", ".join(_pgcopy.COLUMNS)
_LOADED = f"{_DIRECT}, seq"
_COPY_DIRECT = f"COPY incidents ({_LOADED}) FROM STDIN (FORMAT binary)"


def _insert_load(columns: str) -> str:
    return (
        f"INSERT INTO incidents ({columns}) SELECT {columns} FROM _incident_load ORDER BY pos "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


_BINARY_TYPES = {
    "seq": "bigint",
    "geom": "geometry",
    "lng": "double precision",
    "lat": "double precision",
    "reported_at": "timestamptz",
    "closed_at": "timestamptz",
}
_SPOOL_BYTES = 64 << 20  # a load spools in memory up to this, then in a temporary file
#: From this many rows, a load into a table holding no more rows rebuilds the indexes.
_REBUILD_ROWS = 1000
_SELECT = ", ".join(
    [
        *(
            f"to_char({c} AT TIME ZONE 'UTC', {_ISO})"
            if c in ("reported_at", "closed_at", "updated_at")
            else c
            for c in COLUMNS
        ),
        "ST_X(geom)",
        "ST_Y(geom)",
    ]
)
_TEXT = {c: str for c in ("id", "category", "status", *TEXT_COLUMNS)}
# the record path (append_records): one array a column, unnested in input order
_RECORD_COLUMNS = tuple(c for c in COLUMNS if c not in ("seq", "updated_at"))
_RECORD_TYPES = {"reported_at": "timestamptz", "closed_at": "timestamptz", "lng": "float8",
                 "lat": "float8"}  # fmt: skip
_INSERT_RECORDS = (
    f"INSERT INTO incidents (geom, {', '.join(_RECORD_COLUMNS)}) "
    f"SELECT ST_SetSRID(ST_MakePoint(r.x, r.y), {SRID}), "
    f"{', '.join('r.' + c for c in _RECORD_COLUMNS)} "
    f"FROM (SELECT pg_advisory_xact_lock({_WRITE_LOCK})) AS l, unnest(%s::float8[], %s::float8[], "
    + ", ".join(f"%s::{_RECORD_TYPES.get(c, 'text')}[]" for c in _RECORD_COLUMNS)
    + f") WITH ORDINALITY AS r(x, y, {', '.join(_RECORD_COLUMNS)}, pos) "
    "ORDER BY r.pos ON CONFLICT (id) DO NOTHING RETURNING id"
)


class _SeqRange:
    """The ``seq`` values a load reserved: ``count`` from ``first``, handed out in order."""

    def __init__(self, first: int, count: int) -> None:
        self.next, self.end = int(first), int(first) + int(count)

    def take(self, n: int) -> int:
        """The first of the next ``n`` values."""
        if self.next + n > self.end:
            raise InputError(
                f"the chunks hold more rows than the load's total ({self.end - self.next} "
                f"left, a chunk of {n}); give total as the number of rows, or leave it out"
            )
        first, self.next = self.next, self.next + n
        return first


def describe_dsn(url: str) -> str:
    """Where a DSN points, for messages: ``user@host:port/dbname`` without any password.

    Raises
    ------
    InputError
        If libpq cannot parse the URL.

    Examples
    --------
    >>> describe_dsn("postgresql://gis:secret@db.example:5433/city")
    'gis@db.example:5433/city'
    >>> describe_dsn("postgresql:///city?host=/run/postgresql")
    '/run/postgresql:5432/city'
    """
    try:
        d = conninfo_to_dict(url)
    except psycopg.Error as err:
        raise InputError(f"cannot parse the PostgreSQL URL: {_first_line(err)}") from err
    user = f"{d['user']}@" if d.get("user") else ""
    host = d.get("host") or d.get("hostaddr") or "localhost"
    return f"{user}{host}:{d.get('port') or 5432}/{d.get('dbname') or ''}"


def _rolled_back(err: BaseException) -> bool:
    """Whether a failed record statement surely stored nothing: the server answered with
    an error (a SQLSTATE), or the client refused the data before sending it. A broken
    connection leaves the commit unknown, and a batch is then not written again."""
    cause = err.__cause__
    if isinstance(cause, psycopg.OperationalError):
        return cause.sqlstate is not None
    return True


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


class PostGISStore(IncidentStore):
    """Incidents in a PostgreSQL + PostGIS database.

    Parameters
    ----------
    url
        ``postgresql://user:password@host:port/dbname`` (any libpq URL).
    max_size
        Connections of the pool (per process).
    connect_timeout
        Seconds to wait for the server.

    Raises
    ------
    InputError
        If the URL cannot be parsed.
    StoreError
        If the server is unreachable (the message names host and port, never
        the password), or PostGIS is missing and cannot be created.
    """

    def __init__(self, url: str, *, max_size: int = 4, connect_timeout: float = 5.0) -> None:
        self.name = describe_dsn(url)
        self._url = url
        self.max_size = int(max_size)
        self.connect_timeout = connect_timeout
        self._pool: Any = None
        self._pid = -1
        self._lock = threading.Lock()
        self._group: GroupCommit | None = None
        self._group_pid = -1
        with self._connect() as conn:
            self.version = migrate(conn, where=self.name)

    # -- connections ------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._url, connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.OperationalError as err:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.name}: {_first_line(err)}"
            ) from err

    def _pool_(self) -> Any:
        from psycopg_pool import ConnectionPool

        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={"connect_timeout": max(1, int(self.connect_timeout))},
                    name=f"gridgeo-store-{self.name}",
                    open=True,
                )
                self._pid = os.getpid()
            return self._pool

    def _connection(self) -> Any:
        try:
            return self._pool_().connection(timeout=self.connect_timeout + 5)
        except psycopg.OperationalError as err:
            raise StoreError(f"PostgreSQL at {self.name}: {_first_line(err)}") from err

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()

    # -- writes -----------------------------------------------------------------------
    def append(self, data: Any) -> AppendResult:
        batch = prepare(data)
        if len(batch) == 0:
            return AppendResult([], [])
        try:
            with self._connection() as conn, conn.cursor() as cur:
                self._stage(cur, [_pgcopy.rows(batch)], _pgcopy.COLUMNS)
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                cur.execute(_insert_load(_DIRECT))
                fresh = {r[0] for r in cur.fetchall()}
        except psycopg.OperationalError as err:
            raise StoreError(f"PostgreSQL at {self.name}: {_first_line(err)}") from err
        except psycopg.Error as err:
            raise InputError(f"the batch was not stored: {_first_line(err)}") from err
        ids = batch["id"].tolist()
        return AppendResult([i for i in ids if i in fresh], [i for i in ids if i not in fresh])

    @staticmethod
    def _stage(cur: psycopg.Cursor, parts: Iterable[bytes], columns: Sequence[str]) -> None:
        """Binary COPY rows (:func:`._pgcopy.rows`) of ``columns`` into a temporary staging
        table, kept in the order given (its ``pos``), for :func:`_insert_load`."""
        ddl = ", ".join(f"{c} {_BINARY_TYPES.get(c, 'text')}" for c in columns)
        cur.execute(f"CREATE TEMP TABLE _incident_load (pos bigserial, {ddl}) ON COMMIT DROP")
        names = ", ".join(columns)
        load = f"COPY _incident_load ({names}) FROM STDIN (FORMAT binary)"
        with cur.copy(load, writer=QueuedLibpqWriter(cur)) as copy:
            copy.write(_pgcopy.SIGNATURE)
            for data in parts:
                copy.write(data)
            copy.write(_pgcopy.TRAILER)

    def append_chunks(self, chunks: Iterable[Any], *, total: int | None = None) -> AppendResult:
        """A load of 1,000+ rows is one transaction, sent as one binary ``COPY`` straight
        into ``incidents`` (:mod:`._pgcopy`; a thread sends a chunk while the next one
        is prepared here). The write lock is taken first, so ``seq`` follows the input
        and live writers wait for the load.

        An id already stored (or given in two chunks) makes that COPY fail with a
        unique violation: it is rolled back to a savepoint and the load, kept in a
        spooled temporary file meanwhile, goes through a staging table instead,
        ``INSERT … ON CONFLICT (id) DO NOTHING``: the first of each id is stored, the
        rest reported as existing. :func:`~gridgeo.assign.ingest.ingest` leaves out the
        ids stored already, so its loads take the direct way.

        The load's ``seq`` values are drawn from the sequence at once, under the
        write lock (one ``setval``, not a ``nextval`` a row): rows are numbered in
        input order, as a row at a time would be. ``total`` must then be the
        number of rows the chunks hold (or more): a load that brings more is
        refused, and nothing of it stored.

        When the load holds at least as many rows as the table, the table's indexes
        other than its primary key are dropped first and built again afterwards from
        their own definitions: a GiST index built at once (sorted) costs a fraction of
        one maintained a row at a time (~16 µs a point). Readers of the table then wait
        for the transaction (its DDL locks the table).
        """
        if total is None or total < _REBUILD_ROWS:
            return super().append_chunks(chunks, total=total)
        ids: list[str] = []
        indexes: list[tuple[str, str]] = []
        fresh: set[str] | None = None
        todo = iter(chunks)
        try:
            with (
                tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool,
                self._connection() as conn,
                conn.cursor() as cur,
            ):
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                # every writer draws seq under the write lock: this range is the load's
                cur.execute(
                    "SELECT setval('incidents_seq', nextval('incidents_seq') + %s - 1)", (total,)
                )
                seq = _SeqRange(cur.fetchone()[0] - total + 1, total)
                cur.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM incidents LIMIT %s) AS t", (total + 1,)
                )
                if cur.fetchone()[0] <= total:
                    indexes = self._drop_indexes(cur)
                try:
                    with (
                        conn.transaction(),
                        cur.copy(_COPY_DIRECT, writer=QueuedLibpqWriter(cur)) as copy,
                    ):
                        copy.write(_pgcopy.SIGNATURE)
                        for data in self._encoded(todo, ids, spool, seq):
                            copy.write(data)
                        copy.write(_pgcopy.TRAILER)
                except psycopg.errors.UniqueViolation as err:
                    log.info("%s: %s; the load goes through a staging table", self.name,
                             _first_line(err))  # fmt: skip
                    fresh = self._insert_staged(cur, todo, ids, spool, seq)
                if not ids:
                    return AppendResult([], [])
                if fresh is None:  # every row went in
                    fresh = set(ids)
                if indexes:
                    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                for _, ddl in indexes:
                    cur.execute(ddl)
        except psycopg.OperationalError as err:
            raise StoreError(f"PostgreSQL at {self.name}: {_first_line(err)}") from err
        except psycopg.Error as err:
            raise InputError(f"the load was not stored: {_first_line(err)}") from err
        log.info("%s: %d rows loaded in one transaction, %d indexes rebuilt", self.name,
                 len(fresh), len(indexes))  # fmt: skip
        new: list[str] = []
        existing: list[str] = []
        for i in ids:  # an id in two chunks: the first is stored, the second was there
            if i in fresh:
                new.append(i)
                fresh.discard(i)
            else:
                existing.append(i)
        return AppendResult(new, existing)

    @staticmethod
    def _encoded(
        chunks: Iterator[Any], ids: list[str], spool: Any, seq: _SeqRange
    ) -> Iterator[bytes]:
        """Binary COPY rows of each chunk (with ``seq`` from ``seq``), once it is checked;
        each is also spooled and its ids listed before it is handed on."""
        for chunk in chunks:
            batch = prepare(chunk)
            if len(batch):
                data = _pgcopy.rows(batch, seq=seq.take(len(batch)))
                spool.write(data)
                ids += batch["id"].tolist()
                yield data

    @staticmethod
    def _drop_indexes(cur: psycopg.Cursor) -> list[tuple[str, str]]:
        """Drop the indexes of ``incidents`` but its primary key; their (name, DDL)."""
        cur.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = "
            "'incidents' AND i.schemaname = current_schema() AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint c WHERE c.conrelid = 'incidents'::regclass "
            "AND c.conname = i.indexname) ORDER BY i.indexname"
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        return indexes

    def _insert_staged(
        self, cur: psycopg.Cursor, rest: Iterator[Any], ids: list[str], spool: Any,
        seq: _SeqRange,
    ) -> set[str]:  # fmt: skip
        """The load through a staging table: what was spooled, then the chunks not read
        yet; inserted in input order with ``ON CONFLICT (id) DO NOTHING``. The ids stored."""
        spool.seek(0)
        spooled = iter(lambda: spool.read(_SPOOL_BYTES), b"")
        more = self._encoded(rest, ids, io.BytesIO(), seq)
        self._stage(cur, itertools.chain(spooled, more), (*_pgcopy.COLUMNS, "seq"))
        cur.execute(_insert_load(_LOADED))
        return {r[0] for r in cur.fetchall()}

    def stored_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = [str(i) for i in ids]
        if not wanted:
            return set()
        with self._connection() as conn:  # one JSON text: psycopg dumps a list per item
            rows = conn.execute(
                "SELECT id FROM incidents WHERE id IN "
                "(SELECT jsonb_array_elements_text(%s::jsonb))",
                (json.dumps(wanted, ensure_ascii=False),),
            )
            return {r[0] for r in rows.fetchall()}

    def append_records(self, rows: Sequence[Any]) -> AppendResult:
        """The live path: concurrent calls grouped into one statement, one commit.

        :func:`prepare_records` checks the rows in plain Python (no frames). The
        calls of this process's threads are then written by group commit
        (:class:`~gridgeo.io.store._group.GroupCommit`): the first caller writes
        the rows of every call queued behind it at once, so a burst of reports
        costs one WAL flush, not one each. Each call still gets its own result
        (an id repeated across calls: the first call stores it) and its rows are
        all or nothing (a failed batch is written again call by call). Durability
        is untouched: a call returns once its rows are committed.

        The rows travel as one array a column and are inserted with ``INSERT …
        SELECT … FROM unnest(…) ORDER BY pos ON CONFLICT (id) DO NOTHING
        RETURNING id``, in autocommit: the statement is its own transaction.
        It takes the write lock first (a subquery, evaluated before ``seq`` is
        drawn), so rows commit in ``seq`` order as in :meth:`append`.
        """
        batch = prepare_records(rows)
        if not batch:
            return AppendResult([], [])
        return self._group_().append(batch)

    def _group_(self) -> GroupCommit:
        with self._lock:  # one queue per process (a forked child starts its own)
            if self._group is None or self._group_pid != os.getpid():
                self._group = GroupCommit(self._insert_records, isolated=_rolled_back)
                self._group_pid = os.getpid()
            return self._group

    def _insert_records(self, batch: list[dict[str, Any]]) -> set[str]:
        """Insert prepared records in one statement; the ids stored (first of a repeat)."""
        params = [[r["x"] for r in batch], [r["y"] for r in batch]]
        params += [[r[c] for r in batch] for c in _RECORD_COLUMNS]
        try:
            with self._connection() as conn:
                conn.autocommit = True  # no BEGIN / COMMIT round trips: one statement
                try:
                    cur = conn.execute(_INSERT_RECORDS, params, prepare=True)
                    return {r[0] for r in cur.fetchall()}
                finally:
                    if not conn.closed:
                        conn.autocommit = False
        except psycopg.OperationalError as err:
            raise StoreError(f"PostgreSQL at {self.name}: {_first_line(err)}") from err
        except psycopg.Error as err:
            raise InputError(f"the batch was not stored: {_first_line(err)}") from err

    def update_status(self, id: str, status: str, *, at: Any = None) -> Incident:
        status = check_status(status)
        when = one_time(at, what="at") if at is not None else pd.Timestamp.now(tz="UTC")
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            cur.execute(
                "UPDATE incidents SET status = %(s)s, "
                "closed_at = CASE WHEN %(s)s = %(closed)s THEN %(at)s::timestamptz END, "
                "seq = nextval('incidents_seq'), updated_at = now() "
                "WHERE id = %(id)s AND status IS DISTINCT FROM %(s)s RETURNING id",
                {"s": status, "closed": CLOSED, "at": when.to_pydatetime(), "id": id},
            )
            if cur.fetchone() is None:
                cur.execute("SELECT 1 FROM incidents WHERE id = %s", (id,))
                if cur.fetchone() is None:
                    raise NotFound(f"no incident with id {id!r}")
        return self.get(id)

    # -- reads ------------------------------------------------------------------------
    def _select(self, where: sql.Composable, params: list[Any], tail: str = "") -> gpd.GeoDataFrame:
        query = sql.SQL("COPY (SELECT {} FROM incidents {} {}) TO STDOUT (FORMAT csv)").format(
            sql.SQL(_SELECT), where, sql.SQL(tail)
        )
        out = io.BytesIO()
        with (
            self._connection() as conn,
            conn.cursor() as cur,
            cur.copy(query, params) as copy,
        ):
            for chunk in copy:
                out.write(chunk)
        if out.tell() == 0:
            return empty_frame()
        out.seek(0)
        df = pd.read_csv(
            out,
            header=None,
            names=[*COLUMNS, "_x", "_y"],
            dtype={**_TEXT, "reported_at": str, "closed_at": str, "updated_at": str},
            keep_default_na=False,
            na_values=[""],
        )
        geoms = shapely.points(df.pop("_x").to_numpy(float), df.pop("_y").to_numpy(float))
        return finish_frame(df, geoms)

    def _where(
        self,
        bbox: Sequence[float] | None,
        start: Any,
        end: Any,
        category: Any,
        where: Mapping[str, str] | None = None,
    ) -> tuple[sql.Composable, list[Any]]:
        terms: list[str] = []
        params: list[Any] = []
        box = check_bbox(bbox)
        if box is not None:
            x0, y0, x1, y1 = box
            terms.append(
                f"geom && ST_MakeEnvelope(%s, %s, %s, %s, {SRID}) "
                "AND ST_X(geom) BETWEEN %s AND %s AND ST_Y(geom) BETWEEN %s AND %s"
            )
            params += [x0, y0, x1, y1, x0, x1, y0, y1]
        if start is not None:
            terms.append("reported_at >= %s")
            params.append(one_time(start, what="start").to_pydatetime())
        if end is not None:
            terms.append("reported_at < %s")
            params.append(one_time(end, what="end").to_pydatetime())
        cats = categories(category)
        if cats is not None:
            terms.append("category = ANY(%s)")
            params.append(cats)
        for column, value in check_where(where):
            terms.append(f"{column} = %s")  # a column of FILTER_COLUMNS, checked above
            params.append(value)
        clause = sql.SQL(("WHERE " + " AND ".join(terms)) if terms else "")
        return clause, params

    def get(self, id: str) -> Incident:
        frame = self._select(sql.SQL("WHERE id = %s"), [id])
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
        if limit is not None:
            tail += f" LIMIT {int(limit)}"
        if offset:
            tail += f" OFFSET {int(offset)}"
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
        with self._connection() as conn:
            row = conn.execute(sql.SQL("SELECT COUNT(*) FROM incidents {}").format(clause), params)
            return int(row.fetchone()[0])

    def changes_since(
        self, cursor: int = 0, *, limit: int | None = None
    ) -> tuple[gpd.GeoDataFrame, int]:
        tail = "ORDER BY seq" + (f" LIMIT {int(limit)}" if limit is not None else "")
        frame = self._select(sql.SQL("WHERE seq > %s"), [int(cursor)], tail)
        return frame, int(frame["seq"].max()) if len(frame) else int(cursor)


def migrate(conn: psycopg.Connection, *, where: str = "the database") -> int:
    """Bring a database's incident schema up to the last of :data:`MIGRATIONS`.

    Creates the PostGIS extension if it is missing (which needs the right to).
    Safe to run from several processes at once (an advisory lock orders them).

    Returns
    -------
    int
        The schema version now.

    Raises
    ------
    StoreError
        If PostGIS is not installed and cannot be created.
    """
    with conn.transaction():
        has = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
    if has is None:
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as err:
            raise StoreError(
                f"the PostGIS extension is not installed in {where} and could not be created "
                f"({_first_line(err)}); a superuser must run CREATE EXTENSION postgis there"
            ) from err
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        for version, ddl in MIGRATIONS:
            if version > current:
                log.info("%s: applying incident-store migration %d", where, version)
                conn.execute(ddl)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                current = version
    return current
