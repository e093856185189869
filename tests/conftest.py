"""Fixtures shared across the test suite: a tiny, valid, hand-built workspace.

Nothing is loaded at import; every fixture builds its data from shapely boxes.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

X0, Y0, STEP = 114.90, 25.30, 0.01  # lon/lat of the SW corner, cell size in degrees


def _cell(i: int, j: int, w: int = 1, h: int = 1) -> shapely.Polygon:
    return shapely.box(X0 + i * STEP, Y0 + j * STEP, X0 + (i + w) * STEP, Y0 + (j + h) * STEP)


def build_tiny_workspace() -> dict[str, gpd.GeoDataFrame]:
    """A 4×2-cell county: 2 towns, 4 communities, 8 grids, 2 beats, 2 departments."""
    crs = "EPSG:4490"
    boundary = gpd.GeoDataFrame(
        {"code": ["360722"], "name": ["信丰县"]}, geometry=[_cell(0, 0, 4, 2)], crs=crs
    )
    towns = gpd.GeoDataFrame(
        {"code": ["360722001", "360722002"], "name": ["嘉定镇", "大塘埠镇"]},
        geometry=[_cell(0, 0, 2, 2), _cell(2, 0, 2, 2)],
        crs=crs,
    )
    communities = gpd.GeoDataFrame(
        {
            "code": ["360722001001", "360722001002", "360722002001", "360722002002"],
            "town_code": ["360722001", "360722001", "360722002", "360722002"],
            "name": ["东门社区", "西门社区", "大塘村", "新田村"],
            "type": ["urban", "urban", "rural", "rural"],
        },
        geometry=[_cell(0, 0, 1, 2), _cell(1, 0, 1, 2), _cell(2, 0, 1, 2), _cell(3, 0, 1, 2)],
        crs=crs,
    )
    rows = []
    for c, comm in enumerate(communities.itertuples()):
        for j in range(2):
            rows.append(
                {
                    "code": f"{comm.code}{j + 1:03d}",
                    "community_code": comm.code,
                    "households": 100 * (c + 1) + j,
                    "population": 300 * (c + 1) + j,
                    "level": "base",
                    "geometry": _cell(c, 1 - j),
                }
            )
    grids = gpd.GeoDataFrame(rows, crs=crs)
    beats = gpd.GeoDataFrame(
        {"code": ["J01", "J02"], "name": ["城关一区", "城关二区"]},
        geometry=[_cell(0, 0, 3, 1), shapely.union(_cell(0, 1, 3, 1), _cell(3, 0, 1, 2))],
        crs=crs,
    )
    zones = gpd.GeoDataFrame(
        {
            "department": ["消防", "消防", "交警"],
            "code": ["XF01", "XF02", "JJ01"],
            "name": ["消防一区", "消防二区", "交警一区"],
        },
        geometry=[_cell(0, 0, 2, 2), _cell(2, 0, 2, 2), _cell(0, 0, 4, 2)],
        crs=crs,
    )
    pts = [shapely.Point(X0 + (i + 0.5) * STEP, Y0 + 0.5 * STEP) for i in range(4)]
    buildings = gpd.GeoDataFrame(
        {
            "id": ["B1", "B2", "B3", "B4"],
            "households": [10, 20, 5, 3],
            "population": [30, 60, 15, 9],
        },
        geometry=pts,
        crs=crs,
    )
    incidents = gpd.GeoDataFrame(
        {
            "id": ["E1", "E2"],
            "category": ["消防安全", "乱停乱放"],
            "department": ["消防", "交警"],
            "reported_at": pd.to_datetime(["2024-03-01 08:00", "2024-03-02 09:30"]),
            "lng": [114.905, 114.915],
            "lat": [25.305, 25.305],
        },
        geometry=pts[:2],
        crs=crs,
    )
    return {
        "boundary": boundary,
        "towns": towns,
        "communities": communities,
        "grids": grids,
        "beats": beats,
        "zones": zones,
        "buildings": buildings,
        "incidents": incidents,
    }


@pytest.fixture
def tiny_workspace() -> dict[str, gpd.GeoDataFrame]:
    """A fresh copy of the tiny workspace for each test."""
    return build_tiny_workspace()


# A throwaway PostgreSQL + PostGIS cluster (tests/pgcluster.py), for every test package.
from pgcluster import postgresql, postgresql_cluster  # noqa: E402, F401

# -- incident stores: every store test runs over each backend ------------------------------


@pytest.fixture(params=["gpkg", "postgis"])
def store_url(request, tmp_path) -> str:
    """Where a fresh incident store lives, for each backend (PostGIS: a throwaway cluster)."""
    if request.param == "gpkg":
        return str(tmp_path / "ws.gpkg")
    return request.getfixturevalue("postgresql")


@pytest.fixture
def store(store_url):
    """A fresh, empty incident store of each backend."""
    from gridgeo.io import open_store

    s = open_store(store_url)
    yield s
    s.close()
