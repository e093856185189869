"""The binary COPY encoder of the PostGIS bulk load, against a row-at-a-time reference."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.io.store import _pgcopy
from gridgeo.io.store.base import COLUMNS, TEXT_COLUMNS
from gridgeo.io.store.batch import prepare, prepare_points

_TEXT = st.none() | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)


def _reference(batch: pd.DataFrame, seq: int | None) -> bytes:
    """Each field packed with struct, as the PostgreSQL docs describe binary COPY."""
    out = bytearray()
    epoch = pd.Timestamp("2000-01-01", tz="UTC")
    for i, row in enumerate(batch.itertuples(index=False)):
        fields = []
        for col in _pgcopy.COLUMNS:
            v = None if col == "geom" else getattr(row, col)
            if col == "geom":
                fields.append(struct.pack("<BIidd", 1, 0x20000001, 4490, row.x, row.y))
            elif col in ("reported_at", "closed_at"):
                us = None if pd.isna(v) else (v - epoch) // pd.Timedelta("1us")
                fields.append(None if us is None else struct.pack(">q", us))
            elif col in ("lng", "lat"):
                fields.append(None if np.isnan(v) else struct.pack(">d", v))
            else:
                fields.append(None if v is None else v.encode())
        if seq is not None:
            fields.append(struct.pack(">q", seq + i))
        out += struct.pack(">h", len(fields))
        for f in fields:
            out += struct.pack(">i", -1) if f is None else struct.pack(">i", len(f)) + f
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_TEXT, _TEXT, st.booleans(), st.integers(0, 10**9)), min_size=1,
                  max_size=12),
    seq=st.none() | st.integers(1, 2**40),
)  # fmt: skip
def test_rows_equal_a_field_at_a_time(rows, seq) -> None:
    n = len(rows)
    rng = np.random.default_rng(n)
    times = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta([r[3] for r in rows], "s")
    batch = prepare(prepare_points(
        {
            "id": [f"A{i}" for i in range(n)],
            "category": ["噪音" if i % 2 else "占道经营" for i in range(n)],
            "reported_at": times,
            "source": [r[0] for r in rows],
            "description": [r[1] for r in rows],
            "lng": [np.nan if r[2] else 115.0 + i for i, r in enumerate(rows)],
            "lat": [25.5] * n,
            "closed_at": [t if r[2] else None for t, r in zip(times, rows)],
            "status": ["结案" if r[2] else "受理" for r in rows],
        },
        114.9 + rng.random(n), 25.3 + rng.random(n),
    ))  # fmt: skip
    assert _pgcopy.rows(batch, seq=seq) == _reference(batch, seq)


def test_columns_are_the_schema_and_the_rest_is_text() -> None:
    """The COPY fills the point and every column of the schema but the two the table
    numbers and stamps; each column it does not write as a fixed-width value is text."""
    assert set(_pgcopy.COLUMNS) == {"geom"} | set(COLUMNS) - {"seq", "updated_at"}
    fixed = {"geom", "reported_at", "closed_at", "lng", "lat"}  # as rows() encodes them
    assert set(_pgcopy.COLUMNS) - fixed == {"id", "category", "status", *TEXT_COLUMNS}
