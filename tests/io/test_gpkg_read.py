"""Reading GeoPackage tables through sqlite3: as GDAL reads them, without dropping locks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gridgeo.errors import InputError
from gridgeo.io import _gpkg_read, read_plans, save_plan
from gridgeo.io.store import open_store

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"


@pytest.mark.parametrize("layer", _gpkg_read.layers(DEMO))
def test_tables_read_as_gdal_reads_them(layer) -> None:
    gdal = gpd.read_file(DEMO, layer=layer, engine="pyogrio")
    ours = _gpkg_read.read_table(DEMO, layer)
    assert isinstance(ours, gpd.GeoDataFrame) and ours.crs == gdal.crs
    assert list(ours.columns) == list(gdal.columns)
    assert shapely.equals_exact(ours.geometry.values, gdal.geometry.values, 0).all()
    pd.testing.assert_frame_equal(
        pd.DataFrame(ours.drop(columns="geometry")), pd.DataFrame(gdal.drop(columns="geometry"))
    )


def test_errors_name_the_file_and_table(tmp_path) -> None:
    with pytest.raises(InputError, match="has no table 'nope'"):
        _gpkg_read.read_table(DEMO, "nope")
    other = tmp_path / "x.geojson"
    other.write_text('{"type": "FeatureCollection", "features": []}')
    assert _gpkg_read.layers(other) is None
    with pytest.raises(InputError, match=r"x\.geojson' is not a GeoPackage"):
        _gpkg_read.read_table(other, "x")


_PROBE = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    con.execute("BEGIN IMMEDIATE")
    print("taken")
except sqlite3.OperationalError as err:
    print(err)
"""


def _other_process_writes(path: Path) -> str:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    return out.stdout.strip()


def test_reading_plans_keeps_the_stores_write_lock(tmp_path) -> None:
    """A serving worker re-reads the plans (an adopted plan) while its store writes: the read
    must not drop the store's lock (GDAL's own SQLite did: another process took it)."""
    from gridgeo.partition import Plan

    ws = tmp_path / "ws.gpkg"
    shutil.copy(DEMO, ws)
    grids = gpd.read_file(ws, layer="grids")
    save_plan(ws, Plan.from_grids(grids, plan_id="base-2026"))
    with open_store(ws) as store, store._write():
        assert _other_process_writes(ws) == "database is locked"
        assert [p.plan_id for p in read_plans(ws)][-1] == "base-2026"
        assert _other_process_writes(ws) == "database is locked"
