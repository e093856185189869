"""What a store is given, checked and brought to the schema of :mod:`.base`.

* batches: :func:`prepare` (a GeoDataFrame or records, for
  :meth:`~gridgeo.io.store.base.IncidentStore.append`), :func:`prepare_points`
  (columns and coordinate arrays, for a bulk load) and :func:`prepare_records`
  (the live path, one dict a row, no frame); each lists every bad row in one
  :class:`~gridgeo.errors.ValidationError`;
* times: :func:`to_utc`, :func:`one_time`, :func:`iso_time` (an input without an
  offset is China Standard Time);
* query filters: :func:`check_bbox`, :func:`check_where`, :func:`categories`,
  :func:`check_status`;
* the frames the backends return: :func:`empty_frame`, :func:`finish_frame`.

The backends (:mod:`.gpkg`, :mod:`.postgis`) call these, so that both check the
same things with the same messages.

Examples
--------
>>> batch = prepare([{"id": "E1", "category": "噪音", "reported_at": "2025-03-01 08:00",
...                   "geometry": {"type": "Point", "coordinates": [115.0, 25.0]}}])
>>> batch[["id", "status", "x", "y"]].values.tolist()
[['E1', '受理', 115.0, 25.0]]
>>> batch["reported_at"].iloc[0].isoformat()  # no offset: China Standard Time
'2025-03-01T00:00:00+00:00'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.crs import CHINA_BOX
from gridgeo.errors import CRSError, InputError, ValidationError
from gridgeo.io.store.base import (
    CLOSED,
    COLUMNS,
    CRS,
    STATUSES,
    TEXT_COLUMNS,
    TIME_COLUMNS,
    TZ,
    Incident,
)

# an offset after a time of day (a date alone ends in "-DD", which is no offset)
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


def check_status(status: Any) -> str:
    """``status`` if it is a lifecycle value, else an InputError listing them."""
    if status not in STATUSES:
        raise InputError(f"status {status!r} is not one of {list(STATUSES)}")
    return str(status)


def to_utc(values: Any, *, what: str = "time") -> pd.Series:
    """Instants as a UTC Series; naive values are China Standard Time.

    Unparseable values become ``NaT`` (the caller names the rows).
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    s = s.reset_index(drop=True)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    if s.dtype.kind == "M":
        return s.dt.tz_localize(TZ).dt.tz_convert("UTC")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    is_str = s.map(lambda v: isinstance(v, str))
    if is_str.any():
        txt = s[is_str].astype(str).str.strip()
        naive = ~txt.str.contains(_OFFSET)
        parsed = pd.Series(pd.NaT, index=txt.index, dtype="datetime64[ns, UTC]")
        if naive.any():
            local = pd.to_datetime(txt[naive], format="ISO8601", errors="coerce")
            parsed[naive] = local.dt.tz_localize(TZ).dt.tz_convert("UTC")
        if not naive.all():
            parsed[~naive] = pd.to_datetime(
                txt[~naive], format="ISO8601", utc=True, errors="coerce"
            )
        out[is_str] = parsed
    other = ~is_str & s.notna()
    if other.any():
        for i in s.index[other]:
            try:
                ts = pd.Timestamp(s[i])
            except (TypeError, ValueError):
                continue
            out[i] = (ts.tz_localize(TZ) if ts.tzinfo is None else ts).tz_convert("UTC")
    return out


def one_time(value: Any, *, what: str) -> pd.Timestamp:
    """One instant (UTC) from a query parameter, or an InputError naming it."""
    ts = to_utc([value])[0]
    if pd.isna(ts):
        raise InputError(f"{what} {value!r} is not an ISO 8601 time")
    return ts


#: Text columns that :meth:`IncidentStore.query` can filter on by equality.
FILTER_COLUMNS: tuple[str, ...] = ("id", "category", "status", *TEXT_COLUMNS)


def check_where(where: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Equality filters as (column, value) pairs, or an InputError naming a bad column."""
    if not where:
        return []
    bad = sorted(set(where) - set(FILTER_COLUMNS))
    if bad:
        raise InputError(f"cannot filter on {bad}; filterable columns are {list(FILTER_COLUMNS)}")
    return [(str(k), str(v)) for k, v in where.items()]


def categories(category: str | Iterable[str] | None) -> list[str] | None:
    """A category filter as a list (``None`` for no filter)."""
    if category is None:
        return None
    return [category] if isinstance(category, str) else [str(c) for c in category]


def check_bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """A bbox as four floats with min ≤ max, or an InputError."""
    if bbox is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"bbox must be 4 numbers (min_lon, min_lat, max_lon, max_lat): {err}"
        ) from err
    if not (x0 <= x1 and y0 <= y1):
        raise InputError(
            f"bbox {bbox!r} has min > max; expected (min_lon, min_lat, max_lon, max_lat)"
        )
    return x0, y0, x1, y1


@dataclass(frozen=True)
class Prepared:
    """A batch that :func:`prepare` has checked already: its frame, passed to a store as is.

    :func:`prepare_points` makes one (a bulk load builds its columns without a
    GeoDataFrame, and so without a shapely point a row); :func:`prepare` returns
    its frame unchanged, so :meth:`IncidentStore.append` and
    :meth:`IncidentStore.append_chunks` take it like any batch.
    """

    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)


def prepare(data: Any) -> pd.DataFrame:
    """Validate a batch to append: one row per incident, in input order.

    Returns a plain DataFrame with the text columns as Python str or None,
    ``x``/``y`` (EPSG:4490), ``lng``/``lat`` floats, ``reported_at`` and
    ``closed_at`` as UTC timestamps, ``status``.

    Raises
    ------
    ValidationError
        Listing every bad row (position and id).
    """
    if isinstance(data, Prepared):
        return data.frame
    if isinstance(data, gpd.GeoDataFrame):
        if data.crs is None:
            raise CRSError("incidents have no CRS; set one (e.g. .set_crs('EPSG:4490'))")
        gdf = data.to_crs(CRS) if not data.crs.equals(CRS) else data
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
        geoms = np.asarray(gdf.geometry.array, dtype=object)
    else:
        if isinstance(data, (Mapping, str, bytes)):
            raise InputError("append expects a GeoDataFrame or a list of records, got one mapping")
        rows = []
        for rec in data:
            if isinstance(rec, Incident):
                rows.append(
                    {
                        **rec.to_dict(),
                        "reported_at": rec.reported_at,
                        "closed_at": rec.closed_at,
                        "geometry": rec.geometry,
                    }
                )
            elif isinstance(rec, Mapping):
                rows.append(dict(rec))
            else:
                raise InputError(f"records must be mappings or Incident, got {type(rec).__name__}")
        frame = pd.DataFrame(rows)
        raw = (
            frame.pop("geometry") if "geometry" in frame.columns else pd.Series([None] * len(frame))
        )
        geoms = np.array([_geometry(g) for g in raw], dtype=object)
    n = len(frame)
    null = np.asarray(shapely.is_missing(geoms), dtype=bool).reshape(n)
    types = np.asarray(shapely.get_type_id(geoms)).reshape(n)
    empty = ~null & np.asarray(shapely.is_empty(geoms), dtype=bool).reshape(n)
    point = ~null & ~empty & (types == shapely.GeometryType.POINT)
    xy = np.full((n, 2), np.nan)
    if point.any():
        xy[point] = shapely.get_coordinates(geoms[point])
    return _prepare(frame, xy[:, 0], xy[:, 1], null | empty, ~null & ~empty & ~point)


def prepare_points(columns: Mapping[str, Any], x: Any, y: Any) -> Prepared:
    """:func:`prepare` of attribute columns and point coordinates (EPSG:4490), no geometries.

    The same checks and messages as :func:`prepare` (a NaN coordinate is a
    missing geometry), without a shapely point a row: a bulk load that knows
    its coordinates as arrays passes them here.

    Parameters
    ----------
    columns
        Column name → values (Series or arrays of one length, as :func:`prepare`
        takes them), with at least ``id``, ``category`` and ``reported_at``.
    x, y
        Longitudes and latitudes in EPSG:4490.

    Returns
    -------
    Prepared

    Raises
    ------
    ValidationError
        Listing every bad row (position and id).

    Examples
    --------
    >>> batch = prepare_points({"id": ["A1"], "category": ["噪音"],
    ...     "reported_at": ["2025-03-01 08:00"]}, [115.0], [25.0])
    >>> prepare(batch)[["id", "status", "x", "y"]].values.tolist()
    [['A1', '受理', 115.0, 25.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    frame = pd.DataFrame(
        {k: v.reset_index(drop=True) if isinstance(v, pd.Series) else v
         for k, v in columns.items()}
    )  # fmt: skip
    if len(frame) != len(x) or len(x) != len(y):
        raise InputError(
            f"columns ({len(frame)} rows), x ({len(x)}) and y ({len(y)}) differ in length"
        )
    missing = np.isnan(x) | np.isnan(y)
    return Prepared(_prepare(frame, x, y, missing, np.zeros(len(x), dtype=bool)))


def _prepare(
    frame: pd.DataFrame, x: np.ndarray, y: np.ndarray, no_geometry: np.ndarray,
    not_point: np.ndarray,
) -> pd.DataFrame:  # fmt: skip
    """The checks of :func:`prepare` on attribute columns and the points' coordinates."""
    n = len(frame)
    problems: list[str] = []
    missing = [c for c in ("id", "category", "reported_at") if c not in frame.columns]
    if missing:
        raise ValidationError(
            [f"missing column(s) {missing}; columns are {[*frame.columns, 'geometry']}"],
            what="incident batch",
        )
    ids = _text_array(frame["id"])

    def bad(mask: np.ndarray, why: str) -> None:
        where = np.flatnonzero(mask)
        if len(where):
            label = [
                f"row {i}" + (f" (id {ids[i]!r})" if ids[i] is not None else "") for i in where[:5]
            ]
            more = f" and {len(where) - 5} more" if len(where) > 5 else ""
            problems.append(f"{', '.join(label)}{more}: {why}")

    no_id = _none(ids)
    bad(no_id, "'id' is missing")
    dup = pd.Series(ids, dtype=object).duplicated(keep=False).to_numpy() & ~no_id
    bad(dup, "'id' appears more than once in the batch")
    # object columns: pandas 3 would store None in a str column as NaN
    cols: dict[str, Any] = {"id": ids}
    cats = _text_array(frame["category"])
    bad(_none(cats), "'category' is missing")
    cols["category"] = cats
    for col in TEXT_COLUMNS:
        cols[col] = _text_array(frame[col]) if col in frame.columns else np.full(n, None, object)
    reported = to_utc(frame["reported_at"])
    bad(reported.isna().to_numpy(), "'reported_at' is missing or not an ISO 8601 time")
    cols["reported_at"] = reported
    if "status" in frame.columns:
        status = _text_array(frame["status"])
        status[_none(status)] = STATUSES[0]
        bad(~pd.Series(status, dtype=object).isin(STATUSES).to_numpy(),
            f"'status' must be one of {list(STATUSES)}")  # fmt: skip
    else:
        status = np.full(n, STATUSES[0], dtype=object)
    cols["status"] = status
    is_closed = np.asarray(status == CLOSED, dtype=bool).reshape(n)
    if "closed_at" in frame.columns or is_closed.any():
        closed = (
            to_utc(frame["closed_at"])
            if "closed_at" in frame.columns
            else pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
        )
        closed = closed.where(is_closed, pd.NaT)
        closed[is_closed & closed.isna().to_numpy()] = pd.Timestamp.now(tz="UTC")
    else:
        closed = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    cols["closed_at"] = closed
    for col in ("lng", "lat"):
        if col in frame.columns:
            raw = frame[col]
            if raw.dtype.kind == "f":
                vals = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                vals = np.asarray(pd.to_numeric(raw, errors="coerce"), dtype="float64")
                given = raw.notna().to_numpy()
                bad(given & np.isnan(vals), f"'{col}' is not a number")
            cols[col] = vals
        else:
            cols[col] = np.full(n, np.nan)
    bad(no_geometry, "geometry is missing or empty")
    bad(not_point, "geometry must be a Point")
    ok = ~no_geometry & ~not_point
    bx0, by0, bx1, by1 = CHINA_BOX
    with np.errstate(invalid="ignore"):
        inside = (x >= bx0) & (x <= bx1) & (y >= by0) & (y <= by1)
    bad(
        ok & ~inside,
        f"point lies outside China ({bx0}..{bx1}°E, {by0}..{by1}°N); expected EPSG:4490 lon/lat",
    )
    if problems:
        raise ValidationError(problems, what=f"incident batch of {n} row{'s' * (n != 1)}")
    cols["x"] = x
    cols["y"] = y
    order = ["id", "category", *TEXT_COLUMNS, "reported_at", "status", "closed_at", "lng", "lat",
             "x", "y"]  # fmt: skip
    return pd.DataFrame(
        {k: pd.Series(v, dtype=object) if k in _OBJECT else _plain(cols[k])
         for k in order for v in (cols[k],)}
    )  # fmt: skip


_OBJECT = frozenset(("id", "category", "status", *TEXT_COLUMNS))


def _none(values: np.ndarray) -> np.ndarray:
    """Which entries of an object array are None."""
    return np.asarray(np.equal(values, None), dtype=bool).reshape(len(values))


def _plain(v: Any) -> Any:
    """A column for the one-time frame constructor: Series keep their dtype, no index."""
    return v.reset_index(drop=True) if isinstance(v, pd.Series) else v


def _geometry(g: Any) -> Any:
    if g is None:
        return None
    if isinstance(g, shapely.Geometry):
        return g
    if isinstance(g, Mapping):
        try:
            return shapely.geometry.shape(g)
        except Exception:
            return shapely.GeometryCollection()  # reported as not a Point
    if isinstance(g, float) and np.isnan(g):
        return None
    return shapely.GeometryCollection()


def _text(values: pd.Series) -> list[str | None]:
    """Text values as str, with None for missing or blank (vectorised for big batches)."""
    if len(values) <= 256:  # a live POST: plain Python beats pandas' per-call overhead
        out: list[str | None] = []
        for v in values.tolist():
            t = None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v).strip()
            out.append(t or None)
        return out
    txt = values.astype("string").str.strip()
    txt = txt.where(txt.str.len() > 0)
    return txt.astype(object).where(txt.notna(), None).tolist()


def _text_array(values: pd.Series) -> np.ndarray:
    """:func:`_text` as an object array, without a Python call a row for a big batch.

    A column of few distinct values (categories, zone codes) is cleaned value by
    value and spread by its codes; strings that start and end with no blank
    (ids) are taken as they are; anything else goes through :func:`_text`.
    """
    n = len(values)
    if n <= 256:
        return np.array([*_text(values), None], dtype=object)[:n]
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) <= n // 4:
        clean = (
            _text(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
            if len(uniques) > 256
            else [_text1(v) for v in uniques]
        )
        return np.array([*clean, None], dtype=object)[codes]
    obj = values.to_numpy(dtype=object, na_value=None)
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(obj, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str (numbers, …)
        return np.array([*_text(values), None], dtype=object)[:n]
    edge = pc.match_substring_regex(arr, _EDGE_BLANK)
    fix = np.asarray(pc.fill_null(pc.or_(edge, pc.equal(pc.utf8_length(arr), 0)), False))
    if fix.any():
        obj = obj.copy()
        obj[fix] = [_text1(v) for v in obj[fix]]
    return obj


# what str.strip() strips (every str.isspace() character), at either end of a text
_BLANKS = "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace())
_EDGE_BLANK = f"^[{_BLANKS}]|[{_BLANKS}]$"


def empty_frame() -> gpd.GeoDataFrame:
    """A store frame with no rows."""
    return finish_frame(pd.DataFrame({c: [] for c in COLUMNS}), np.empty(0, dtype=object))


def finish_frame(df: pd.DataFrame, geoms: Any) -> gpd.GeoDataFrame:
    """Give a raw result frame the store dtypes and geometry (times parsed into :data:`TZ`)."""
    df = df.reset_index(drop=True)
    for col in TIME_COLUMNS:
        ts = pd.to_datetime(df[col], format="ISO8601")
        ts = ts.dt.tz_localize(TZ) if ts.dt.tz is None else ts.dt.tz_convert(TZ)
        df[col] = ts.dt.as_unit("ns")
    for col in ("lng", "lat"):
        df[col] = pd.to_numeric(df[col]).astype("float64")
    df["seq"] = pd.to_numeric(df["seq"]).astype("int64")
    for col in ("id", "category", "status", *TEXT_COLUMNS):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    return gpd.GeoDataFrame(df[list(COLUMNS)], geometry=gpd.GeoSeries(geoms), crs=CRS)


# -- the record path of a live report (no frames: pandas' per-call overhead is ~10x the work)


def _missing(v: Any) -> bool:
    """What :func:`pandas.isna` calls missing, for one scalar, without pandas on the way."""
    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return True
    if isinstance(v, (str, int, dt.datetime, Mapping, shapely.Geometry)):
        return False
    return bool(pd.isna(v)) if np.ndim(v) == 0 else False


def _text1(v: Any) -> str | None:
    """One text value as :func:`_text` cleans it: str, stripped, None for missing or blank."""
    if _missing(v):
        return None
    return str(v).strip() or None


def iso_time(text: str) -> dt.datetime | None:
    """An ISO 8601 text as a datetime (naive when it has no offset); None if it is not one.

    :meth:`datetime.datetime.fromisoformat` reads the usual forms in about a
    microsecond; pandas' ISO 8601 parser (200 times slower a call) reads the rest.

    Examples
    --------
    >>> iso_time("2025-03-01T08:00:00+08:00").isoformat()
    '2025-03-01T08:00:00+08:00'
    >>> iso_time("2025-03-01 08:00").tzinfo is None, iso_time("yesterday")
    (True, None)
    """
    text = text.strip()
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    ts = pd.to_datetime(text, format="ISO8601", errors="coerce")
    return None if pd.isna(ts) else ts.to_pydatetime(warn=False)


def _instant(v: Any) -> dt.datetime | None:
    """One instant as an aware UTC datetime (naive values in :data:`TZ`), as :func:`to_utc`."""
    if _missing(v):
        return None
    if isinstance(v, str):
        t = iso_time(v)
    elif isinstance(v, pd.Timestamp):
        t = v.to_pydatetime(warn=False)
    elif isinstance(v, dt.datetime):
        t = v
    else:
        ts = to_utc([v])[0]
        return None if pd.isna(ts) else ts.to_pydatetime(warn=False)
    if t is None:
        return None
    return (t.replace(tzinfo=TZ) if t.tzinfo is None else t).astimezone(dt.timezone.utc)


def _float1(v: Any) -> float | None:
    """A number as :func:`pandas.to_numeric` reads it, None if it is not one."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _point_xy(g: Any) -> tuple[float, float] | str:
    """(x, y) of a point geometry (shapely or a GeoJSON dict), else what is wrong with it."""
    if _missing(g):
        return "missing"
    if isinstance(g, Mapping) and g.get("type") == "Point":
        c = g.get("coordinates")
        if isinstance(c, (list, tuple)) and len(c) == 0:
            return "missing"
        if (
            isinstance(c, (list, tuple))
            and len(c) in (2, 3)
            and all(type(v) in (float, int) for v in c[:2])
        ):  # plain numbers (what JSON gives); anything else goes through shapely, as in prepare
            x, y = float(c[0]), float(c[1])
            return (x, y) if x == x and y == y else "missing"
    geom = _geometry(g)
    if geom is None or geom.is_empty:
        return "missing"
    if shapely.get_type_id(geom) != shapely.GeometryType.POINT:
        return "not a point"
    return float(geom.x), float(geom.y)


def prepare_records(rows: Iterable[Incident | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate a few records to append, in plain Python: the rules of :func:`prepare`.

    Returns one dict per row, in input order, with ``id``, ``category``, the
    :data:`TEXT_COLUMNS` (str or None), ``reported_at`` and ``closed_at``
    (aware UTC datetimes, or None), ``status``, ``lng``/``lat`` (float or None)
    and ``x``/``y`` (EPSG:4490).

    Raises
    ------
    ValidationError
        Listing every bad row (position and id), in the words of :func:`prepare`.

    Examples
    --------
    >>> row = prepare_records([{"id": " A1 ", "category": "噪音", "reported_at": "2025-03-01 08:00",
    ...     "geometry": {"type": "Point", "coordinates": [115.0, 25.0]}}])[0]
    >>> row["id"], row["status"], row["reported_at"].isoformat(), (row["x"], row["y"])
    ('A1', '受理', '2025-03-01T00:00:00+00:00', (115.0, 25.0))
    >>> prepare_records([{"id": "A1", "category": "", "reported_at": "2025-03-01",
    ...     "geometry": None}])
    Traceback (most recent call last):
    ...
    gridgeo.errors.ValidationError: ...'category' is missing...geometry is missing or empty...
    """
    if isinstance(rows, (Mapping, str, bytes)):
        raise InputError("append expects a GeoDataFrame or a list of records, got one mapping")
    recs: list[Mapping[str, Any]] = []
    for rec in rows:
        if isinstance(rec, Incident):
            recs.append(
                {**rec.to_dict(), "reported_at": rec.reported_at, "closed_at": rec.closed_at,
                 "geometry": rec.geometry}
            )  # fmt: skip
        elif isinstance(rec, Mapping):
            recs.append(rec)
        else:
            raise InputError(f"records must be mappings or Incident, got {type(rec).__name__}")
    n = len(recs)
    if n == 0:
        return []
    columns = list(dict.fromkeys(k for r in recs for k in r if k != "geometry"))
    missing = [c for c in ("id", "category", "reported_at") if c not in columns]
    if missing:
        raise ValidationError(
            [f"missing column(s) {missing}; columns are {[*columns, 'geometry']}"],
            what="incident batch",
        )
    ids = [_text1(r.get("id")) for r in recs]
    label = [f"row {i}" + (f" (id {v!r})" if v is not None else "") for i, v in enumerate(ids)]
    problems: list[str] = []

    def bad(where: list[int], why: str) -> None:
        if where:
            shown = ", ".join(label[i] for i in where[:5])
            more = f" and {len(where) - 5} more" if len(where) > 5 else ""
            problems.append(f"{shown}{more}: {why}")

    bad([i for i, v in enumerate(ids) if v is None], "'id' is missing")
    seen: dict[str, int] = {}
    for v in ids:
        if v is not None:
            seen[v] = seen.get(v, 0) + 1
    bad([i for i, v in enumerate(ids) if v is not None and seen[v] > 1],
        "'id' appears more than once in the batch")  # fmt: skip
    out = [{"id": v} for v in ids]
    cats = [_text1(r.get("category")) for r in recs]
    bad([i for i, v in enumerate(cats) if v is None], "'category' is missing")
    for row, rec, cat in zip(out, recs, cats):
        row["category"] = cat
        for col in TEXT_COLUMNS:
            row[col] = _text1(rec.get(col))
    reported = [_instant(r.get("reported_at")) for r in recs]
    bad([i for i, v in enumerate(reported) if v is None],
        "'reported_at' is missing or not an ISO 8601 time")  # fmt: skip
    status = [_text1(r.get("status")) or STATUSES[0] for r in recs]
    bad([i for i, s in enumerate(status) if s not in STATUSES],
        f"'status' must be one of {list(STATUSES)}")  # fmt: skip
    now = None
    for row, rec, when, s in zip(out, recs, reported, status):
        row["reported_at"], row["status"], row["closed_at"] = when, s, None
        if s == CLOSED:
            closed = _instant(rec.get("closed_at"))
            if closed is None:
                now = now or dt.datetime.now(dt.timezone.utc)
                closed = now
            row["closed_at"] = closed
    for col in ("lng", "lat"):
        wrong = []
        for i, (row, rec) in enumerate(zip(out, recs)):
            v = rec.get(col)
            row[col] = None if _missing(v) else _float1(v)
            if not _missing(v) and (row[col] is None or row[col] != row[col]):
                wrong.append(i)
        bad(wrong, f"'{col}' is not a number")
    xy = [_point_xy(r.get("geometry")) for r in recs]
    bad([i for i, p in enumerate(xy) if p == "missing"], "geometry is missing or empty")
    bad([i for i, p in enumerate(xy) if p == "not a point"], "geometry must be a Point")
    bx0, by0, bx1, by1 = CHINA_BOX
    bad(
        [i for i, p in enumerate(xy)
         if not isinstance(p, str) and not (bx0 <= p[0] <= bx1 and by0 <= p[1] <= by1)],
        f"point lies outside China ({bx0}..{bx1}°E, {by0}..{by1}°N); expected EPSG:4490 lon/lat",
    )  # fmt: skip
    if problems:
        raise ValidationError(problems, what=f"incident batch of {n} row{'s' * (n != 1)}")
    for row, p in zip(out, xy):
        row["x"], row["y"] = p
    return out
