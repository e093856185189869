"""PostgreSQL binary ``COPY`` data of prepared incident batches, built with numpy.

A bulk load sends its rows straight into ``incidents`` as ``COPY … (FORMAT
binary)``: the server reads each value as it is stored (the point as EWKB, times
as microseconds), with no text to parse and no staging table to read back. The
rows are built column by column: fixed-width parts as numpy records, a text
column of few distinct values (categories, zone codes) encoded once a value,
then the fields joined row by row in one ``bytes.join``.

Examples
--------
>>> import pandas as pd
>>> from gridgeo.io.store.base import prepare_points, prepare
>>> batch = prepare(prepare_points({"id": ["A1"], "category": ["噪音"],
...     "reported_at": ["2025-03-01 08:00"]}, [115.0], [25.0]))
>>> data = SIGNATURE + rows(batch) + TRAILER
>>> data[:11], len(rows(batch)) > 100
(b'PGCOPY\\n\\xff\\r\\n\\x00', True)
"""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd

from gridgeo.io.store.base import SRID, TEXT_COLUMNS

__all__ = ["COLUMNS", "SIGNATURE", "TRAILER", "rows"]

#: The columns of ``incidents`` a COPY of :func:`rows` fills, in order (``seq`` and
#: ``updated_at`` take their defaults).
COLUMNS: tuple[str, ...] = (
    "geom", "id", "category", "department", "reported_at", "lng", "lat", "source",
    "description", "status", "closed_at", "grid_code", "community_code", "town_code",
    "beat_code", "zone_code",
)  # fmt: skip
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LEN = struct.Struct(">i")
_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (PostgreSQL's epoch) in Unix microseconds
_EWKB_POINT = 0x20000001  # a Point with an SRID
# field count, then the point: length, EWKB (little-endian: byte order, type, SRID, x, y)
_HEAD = np.dtype(
    [("n", ">i2"), ("len", ">i4"), ("order", "u1"), ("kind", "<u4"), ("srid", "<i4"),
     ("x", "<f8"), ("y", "<f8")]
)  # fmt: skip
_TIME = np.dtype([("len", ">i4"), ("us", ">i8")])
_FLOAT = np.dtype([("len", ">i4"), ("v", ">f8")])


def _fixed(values: np.ndarray) -> np.ndarray:
    """Each record of a structured array as one bytes object (built in C)."""
    return np.asarray(values.view(f"V{values.dtype.itemsize}").tolist(), dtype=object)


def _field(text: str | None) -> bytes:
    if text is None:
        return _NULL
    raw = text.encode("utf-8")
    return _LEN.pack(len(raw)) + raw


def _text(values: np.ndarray) -> np.ndarray:
    """The fields of a text column (str or None), as bytes objects."""
    n = len(values)
    none = np.equal(values, None)
    if none.all():
        return np.full(n, _NULL, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) <= n // 4:
        return np.array([*(_field(u) for u in uniques), _NULL], dtype=object)[codes]
    return np.array([_field(v) for v in values.tolist()] + [b""], dtype=object)[:n]


def _times(utc: pd.Series) -> np.ndarray:
    """Fields of a timestamptz column (NaT → NULL)."""
    us = utc.dt.as_unit("us").to_numpy("datetime64[us]")
    nat = np.isnat(us)
    out = np.full(len(us), _NULL, dtype=object)
    if (~nat).any():
        rec = np.empty(int((~nat).sum()), _TIME)
        rec["len"], rec["us"] = 8, us[~nat].astype(np.int64) - _EPOCH_US
        out[~nat] = _fixed(rec)
    return out


def _floats(values: np.ndarray) -> np.ndarray:
    """Fields of a float8 column (NaN → NULL, as the CSV path wrote them)."""
    nan = np.isnan(values)
    out = np.full(len(values), _NULL, dtype=object)
    if (~nan).any():
        rec = np.empty(int((~nan).sum()), _FLOAT)
        rec["len"], rec["v"] = 8, values[~nan]
        out[~nan] = _fixed(rec)
    return out


def rows(batch: pd.DataFrame, *, srid: int = SRID) -> bytes:
    """The rows of a prepared batch (:func:`~gridgeo.io.store.base.prepare`) as binary COPY
    data for the columns :data:`COLUMNS`, without :data:`SIGNATURE` and :data:`TRAILER`."""
    n = len(batch)
    head = np.empty(n, _HEAD)
    head["n"], head["len"], head["order"] = len(COLUMNS), 25, 1
    head["kind"], head["srid"] = _EWKB_POINT, srid
    head["x"], head["y"] = batch["x"].to_numpy(np.float64), batch["y"].to_numpy(np.float64)
    fields = {
        "geom": _fixed(head),
        "reported_at": _times(batch["reported_at"]),
        "closed_at": _times(batch["closed_at"]),
        "lng": _floats(batch["lng"].to_numpy(np.float64)),
        "lat": _floats(batch["lat"].to_numpy(np.float64)),
    }
    for col in ("id", "category", "status", *TEXT_COLUMNS):
        fields[col] = _text(batch[col].to_numpy(dtype=object))
    table = np.column_stack([fields[c] for c in COLUMNS])
    return b"".join(table.ravel().tolist())
