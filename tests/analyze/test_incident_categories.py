"""incident_categories: the index's categories, in its order, without building it."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gridgeo.analyze import IncidentIndex
from gridgeo.analyze.index import incident_categories
from gridgeo.errors import InputError


def _incidents(categories: list[object]) -> gpd.GeoDataFrame:
    n = len(categories)
    return gpd.GeoDataFrame(
        {"category": categories, "reported_at": pd.to_datetime(["2025-01-01"] * n)},
        geometry=[shapely.box(114.9, 25.3, 115.0, 25.4).centroid] * n,
        crs="EPSG:4490",
    )


def test_same_as_the_index() -> None:
    inc = _incidents(["消防安全", "乱停乱放", 7, "消防安全", "噪声扰民"])
    assert incident_categories(inc) == ["7", "乱停乱放", "噪声扰民", "消防安全"]
    assert incident_categories(inc) == IncidentIndex.build(inc).categories


def test_errors_name_the_column_and_the_fix() -> None:
    inc = _incidents(["a"])
    with pytest.raises(InputError, match=r"no column 'kind'; columns are \['category'"):
        incident_categories(inc, category="kind")
    many = _incidents([f"c{i}" for i in range(256)])
    with pytest.raises(InputError, match=r"256 categories in column 'category'; at most 255"):
        incident_categories(many)
    with pytest.raises(InputError, match="at most 255: merge rare ones"):
        IncidentIndex.build(many)
