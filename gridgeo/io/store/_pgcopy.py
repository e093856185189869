"""PostgreSQL binary ``COPY`` data of prepared incident batches, built by a compiled loop.

A bulk load sends its rows straight into ``incidents`` as ``COPY … (FORMAT
binary)``: the server reads each value as it is stored (the point as EWKB, times
as microseconds), with no text to parse and no staging table to read back.

Each column becomes a *field column*: one byte buffer, and for every row the
start and length of its value there (length -1: NULL). Text columns are Arrow
strings (their UTF-8 buffer and offsets, as :func:`pyarrow.array` builds them);
fixed-width values (the EWKB point, times in microseconds since 2000, floats)
are numpy records in network byte order. One numba loop (:func:`_interleave`)
then writes the rows: the field count, and each field's length and bytes, in
:data:`COLUMNS` order. No Python object is made a field.

Examples
--------
>>> import pandas as pd
>>> from gridgeo.io.store.batch import prepare_points, prepare
>>> batch = prepare(prepare_points({"id": ["A1"], "category": ["噪音"],
...     "reported_at": ["2025-03-01 08:00"]}, [115.0], [25.0]))
>>> row = rows(batch)
>>> row[:2], row[2:6], row[6]  # 16 fields; the point's 25 bytes of EWKB, little-endian
(b'\\x00\\x10', b'\\x00\\x00\\x00\\x19', 1)
>>> row[31:37]  # the id: its length, then its UTF-8 bytes
b'\\x00\\x00\\x00\\x02A1'
>>> rows(batch, seq=7)[-8:]  # the row's seq, 8 bytes big-endian
b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x07'
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit

from gridgeo import _numba  # noqa: F401  (fork-safe threading layer, before any kernel)
from gridgeo.io.store.base import SRID

__all__ = ["COLUMNS", "SIGNATURE", "TRAILER", "rows"]

#: The columns of ``incidents`` a COPY of :func:`rows` fills, in order (``seq``, unless
#: :func:`rows` is given the first one, and ``updated_at`` take their defaults).
COLUMNS: tuple[str, ...] = (
    "geom", "id", "category", "department", "reported_at", "lng", "lat", "source",
    "description", "status", "closed_at", "grid_code", "community_code", "town_code",
    "beat_code", "zone_code",
)  # fmt: skip
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
TRAILER = b"\xff\xff"
_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (PostgreSQL's epoch) in Unix microseconds
_EWKB_POINT = 0x20000001  # a Point with an SRID
# the point as EWKB (little-endian: byte order, type, SRID, x, y)
_EWKB = np.dtype([("order", "u1"), ("kind", "<u4"), ("srid", "<i4"), ("x", "<f8"), ("y", "<f8")])


@njit(cache=True, nogil=True)
def _interleave(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Binary COPY rows of ``k`` field columns over one byte buffer ``data``: row ``i``'s
    field ``j`` is ``data[start[j, i]:start[j, i] + length[j, i]]``, or NULL when its
    length is -1."""
    k, n = length.shape
    size = 2 * n + 4 * k * n
    for j in range(k):
        for i in range(n):
            if length[j, i] > 0:
                size += length[j, i]
    out = np.empty(size, dtype=np.uint8)
    p = 0
    for i in range(n):
        out[p] = (k >> 8) & 0xFF
        out[p + 1] = k & 0xFF
        p += 2
        for j in range(k):
            m = length[j, i]
            out[p] = (m >> 24) & 0xFF
            out[p + 1] = (m >> 16) & 0xFF
            out[p + 2] = (m >> 8) & 0xFF
            out[p + 3] = m & 0xFF
            p += 4
            s = start[j, i]
            for b in range(m):  # no iteration when NULL (-1)
                out[p + b] = data[s + b]
            if m > 0:
                p += m
    return out


class _Fields:
    """Field columns gathered into one buffer (``parts``) with their starts and lengths."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.start: list[np.ndarray] = []
        self.length: list[np.ndarray] = []

    def _buffer(self, raw: np.ndarray) -> int:
        base = self.size
        self.parts.append(raw)
        self.size += len(raw)
        return base

    def fixed(self, records: np.ndarray, null: np.ndarray | None = None) -> None:
        """One field a record of ``records`` (a structured or plain array), NULL where ``null``."""
        width = records.dtype.itemsize
        base = self._buffer(np.ascontiguousarray(records).view(np.uint8).reshape(-1))
        self.start.append(base + width * np.arange(self.n, dtype=np.int64))
        length = np.full(self.n, width, dtype=np.int64)
        if null is not None:
            length[null] = -1
        self.length.append(length)

    def text(self, values: np.ndarray) -> None:
        """A text column (str or None) as its UTF-8 bytes."""
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
        _, offsets, data = arr.buffers()
        off = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + self.n + 1]
        raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
        base = self._buffer(raw)
        length = np.diff(off)
        if arr.null_count:
            length[arr.is_null().to_numpy(zero_copy_only=False)] = -1
        self.start.append(base + off[:-1])
        self.length.append(length)

    def rows(self) -> bytes:
        data = np.concatenate(self.parts) if self.parts else np.empty(0, np.uint8)
        return _interleave(data, np.vstack(self.start), np.vstack(self.length)).tobytes()


def _times(fields: _Fields, utc: pd.Series) -> None:
    """A timestamptz column (NaT → NULL): microseconds since 2000, big-endian."""
    us = utc.dt.as_unit("us").to_numpy("datetime64[us]")
    nat = np.isnat(us)
    fields.fixed((us.astype(np.int64) - _EPOCH_US).astype(">i8"), nat)


def _floats(fields: _Fields, values: np.ndarray) -> None:
    """A float8 column (NaN → NULL)."""
    fields.fixed(values.astype(">f8"), np.isnan(values))


def rows(batch: pd.DataFrame, *, srid: int = SRID, seq: int | None = None) -> bytes:
    """The rows of a prepared batch (:func:`~gridgeo.io.store.batch.prepare`) as binary COPY
    data for the columns :data:`COLUMNS`, without :data:`SIGNATURE` and :data:`TRAILER`;
    given ``seq``, a last column ``seq`` numbers the rows from it."""
    n = len(batch)
    fields = _Fields(n)
    for col in COLUMNS:
        if col == "geom":
            point = np.empty(n, _EWKB)
            point["order"], point["kind"], point["srid"] = 1, _EWKB_POINT, srid
            point["x"] = batch["x"].to_numpy(np.float64)
            point["y"] = batch["y"].to_numpy(np.float64)
            fields.fixed(point)
        elif col in ("reported_at", "closed_at"):
            _times(fields, batch[col])
        elif col in ("lng", "lat"):
            _floats(fields, batch[col].to_numpy(np.float64))
        else:
            fields.text(batch[col].to_numpy(dtype=object))
    if seq is not None:
        fields.fixed((seq + np.arange(n, dtype=np.int64)).astype(">i8"))
    return fields.rows()
