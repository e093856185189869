"""Read GeoPackage tables with Python's own ``sqlite3``, not GDAL, where a store is open.

GDAL (pyogrio's wheel) brings its own copy of SQLite. SQLite's locks are POSIX
advisory locks, which belong to a process, not to a connection: when the other
copy closes the file, every lock this process holds on it is gone, including a
write transaction of :class:`~gridgeo.io.store.gpkg.GeoPackageStore` (measured:
after a ``pyogrio.read_dataframe`` in the writing process, another process took
the write lock at once), and the read marks that keep a checkpoint from
overwriting the WAL under a reader. One copy of SQLite tracks its own open
files and never drops another connection's locks. So a process that serves a
live GeoPackage store reads the workspace's other tables through the same
``sqlite3`` (the plan versions a worker re-reads when a plan is adopted).

Types follow what pyogrio returns for the declared GeoPackage column types: text
as pandas' string dtype (objects, all None, in a column without a value);
INTEGER (and the smaller integers) as int64, or float64 when a value is NULL;
BOOLEAN as bool; REAL/FLOAT/DOUBLE as float64; DATE and DATETIME as naive
datetime64[ms].

Examples
--------
>>> import os, tempfile, geopandas as gpd, shapely
>>> path = os.path.join(tempfile.mkdtemp(), "ws.gpkg")
>>> gpd.GeoDataFrame({"code": ["A", None], "households": [3, 4]},
...     geometry=[shapely.box(0, 0, 1, 1), None], crs=4490).to_file(path, layer="g")
>>> layers(path)
['g']
>>> g = read_table(path, "g")
>>> g.crs.to_epsg(), g["households"].tolist(), g["code"].isna().tolist(), g.geometry.isna().tolist()
(4490, [3, 4], [False, True], [False, True])
>>> layers(os.path.join(tempfile.mkdtemp(), "not-a-gpkg.shp")) is None
True
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.errors import InputError

__all__ = ["connect", "is_geopackage_name", "layers", "read_table"]

_INTEGER = re.compile(r"^(INTEGER|INT|MEDIUMINT|SMALLINT|TINYINT)$", re.I)
_REAL = re.compile(r"^(REAL|FLOAT|DOUBLE)$", re.I)


def is_geopackage_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named as a GeoPackage (``.gpkg``): read it here, not with GDAL."""
    return Path(path).suffix.lower() == ".gpkg"


@contextlib.contextmanager
def connect(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None when the file is not a GeoPackage (nor SQLite)."""
    p = Path(path)
    if not p.exists() or not is_geopackage_name(p):
        yield None
        return
    con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("SELECT 1 FROM gpkg_contents LIMIT 1")
    except sqlite3.DatabaseError:
        con.close()
        yield None
        return
    try:
        yield con
    finally:
        con.close()


def layers(path: str | os.PathLike[str]) -> list[str] | None:
    """The tables a GeoPackage lists in ``gpkg_contents`` (features and attributes), or
    None when ``path`` is not a GeoPackage (read it with GDAL then)."""
    with connect(path) as con:
        if con is None:
            return None
        rows = con.execute("SELECT table_name FROM gpkg_contents ORDER BY rowid").fetchall()
    return [str(r[0]) for r in rows]


def read_table(
    path: str | os.PathLike[str],
    table: str,
    *,
    where: str | None = None,
    params: Sequence[Any] = (),
) -> gpd.GeoDataFrame | pd.DataFrame:
    """A table of a GeoPackage: a GeoDataFrame when it has a geometry column, else a
    DataFrame; ``where`` is an SQL condition on its columns with ``?`` for ``params``.

    Raises
    ------
    InputError
        If ``path`` is not a GeoPackage or has no such table.
    """
    from gridgeo.io.store.gpkg import decode_geometries

    with connect(path) as con:
        if con is None:
            raise InputError(f"'{path}' is not a GeoPackage")
        known = con.execute(
            "SELECT table_name FROM gpkg_contents WHERE lower(table_name) = lower(?)", (table,)
        ).fetchone()
        if known is None:
            raise InputError(f"GeoPackage '{path}' has no table {table!r}")
        name = str(known[0])
        info = con.execute(f'PRAGMA table_info("{name}")').fetchall()
        geo = con.execute(
            "SELECT g.column_name, s.organization, s.organization_coordsys_id, s.definition "
            "FROM gpkg_geometry_columns g LEFT JOIN gpkg_spatial_ref_sys s USING (srs_id) "
            "WHERE lower(g.table_name) = lower(?)",
            (name,),
        ).fetchone()
        sql = f'SELECT * FROM "{name}"' + (f" WHERE {where}" if where else "")
        cur = con.execute(sql, tuple(params))
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    declared = {r[1]: str(r[2] or "") for r in info}
    key = next((r[1] for r in info if r[5] and _INTEGER.match(str(r[2] or ""))), None)
    raw = dict(zip(columns, zip(*rows))) if rows else {c: () for c in columns}
    out: dict[str, Any] = {}
    for col in columns:
        if col == key or (geo is not None and col == geo[0]):
            continue
        out[col] = _typed(list(raw[col]), declared.get(col, ""))
    frame = pd.DataFrame(out, columns=[c for c in columns if c in out])
    if geo is None:
        return frame
    crs = None
    if geo[1] is not None and str(geo[1]).upper() == "EPSG" and int(geo[2]) > 0:
        crs = f"EPSG:{int(geo[2])}"
    elif geo[3] and str(geo[3]).strip().lower() != "undefined":
        crs = str(geo[3])
    geoms = gpd.GeoSeries(decode_geometries(list(raw[geo[0]])), index=frame.index, crs=crs)
    return gpd.GeoDataFrame(frame, geometry=geoms)


def _typed(values: list[Any], declared: str) -> Any:
    """One column's values as pyogrio would type them for its declared type."""
    missing = np.array([v is None for v in values], dtype=bool)
    kind = declared.upper()
    if _INTEGER.match(kind):
        return np.array(values, dtype=np.float64 if missing.any() else np.int64)
    if _REAL.match(kind):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "BOOLEAN":
        return np.array(values, dtype=object if missing.any() else bool)
    if kind in ("DATE", "DATETIME"):  # as GDAL gives them: naive, in UTC, milliseconds
        times = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True)
        return times.dt.tz_localize(None).astype("datetime64[ms]").to_numpy()
    if kind.startswith("TEXT") or kind == "":  # no value at all: GDAL's None objects
        return np.array(values, dtype=object) if missing.all() else pd.array(values, dtype="str")
    return np.array(values, dtype=object)  # BLOB and the like, as stored
