"""grid_stats(plan=…): incidents of any date re-attributed to one plan's grids by location."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridgeo.analyze import IncidentIndex, grid_stats
from gridgeo.errors import InputError

X0, Y0, S = 114.90, 25.30, 0.01


class Plan:
    """The duck type grid_stats accepts: anything with ``.grids`` (and a ``plan_id``)."""

    def __init__(self, plan_id: str, grids: gpd.GeoDataFrame) -> None:
        self.plan_id, self.grids = plan_id, grids


def _grids(spec: dict[str, tuple[int, int]], households: list[int]) -> gpd.GeoDataFrame:
    """Grids from ``{code: (first column, columns)}`` of a 1-row strip of cells."""
    geoms = [shapely.box(X0 + a * S, Y0, X0 + (a + w) * S, Y0 + S) for a, w in spec.values()]
    return gpd.GeoDataFrame(
        {"code": list(spec), "households": households}, geometry=geoms, crs="EPSG:4490"
    )


@pytest.fixture
def plans():
    # 2024: three grids; 2025: the strip re-cut into two grids at a new line
    old = _grids({"A": (0, 1), "B": (1, 1), "C": (2, 1)}, [100, 100, 100])
    new = gpd.GeoDataFrame(
        {"code": ["W", "E"], "households": [150, 150]},
        geometry=[shapely.box(X0, Y0, X0 + 1.5 * S, Y0 + S),
                  shapely.box(X0 + 1.5 * S, Y0, X0 + 3 * S, Y0 + S)],
        crs="EPSG:4490",
    )
    return old, new


def _incidents(xs: list[float], days: list[str], codes: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"category": ["噪音"] * len(xs), "reported_at": pd.to_datetime(days),
         "grid_code": codes},  # the code in force when reported: must not be used
        geometry=[shapely.Point(X0 + x * S, Y0 + 0.5 * S) for x in xs],
        crs="EPSG:4490",
    )


def test_both_years_are_counted_in_the_plans_grids(plans):
    old, new = plans
    # 2024 incidents in B's west half (→ W) and east half (→ E); 2025 ones in W and E
    inc = _incidents(
        [1.2, 1.3, 1.7, 0.5, 2.5],
        ["2024-05-01", "2024-05-02", "2024-05-03", "2025-05-01", "2025-05-02"],
        ["B", "B", "B", "W", "E"],
    )
    s = grid_stats(inc, plan=Plan("business-2025", new), start="2025-01-01", end="2025-12-31",
                   compare="year")
    assert s["code"].tolist() == ["W", "E"]
    assert s["count"].tolist() == [1, 1]
    assert s["previous"].tolist() == [2, 1]  # last year's B incidents split by location
    assert s.attrs["plan"] == "business-2025"
    assert s["per_1000_households"].tolist() == pytest.approx([1 / 150 * 1000] * 2, abs=1e-3)
    # the same counts as giving the plan's grids directly, which is the grids layer
    direct = grid_stats(inc, new, start="2025-01-01", end="2025-12-31", compare="year")
    assert direct["previous"].tolist() == [2, 1] and direct.attrs["plan"] == "grids layer"
    # counted in the old plan instead, the same incidents fall in A, B and C
    before = grid_stats(inc, plan=Plan("base-2024", old), start="2025-01-01",
                        end="2025-12-31", compare="year")
    assert before["previous"].tolist() == [0, 3, 0] and before["count"].tolist() == [1, 0, 1]
    assert before.attrs["plan"] == "base-2024"


def test_plan_as_a_frame_and_the_default_is_unchanged(plans):
    old, _ = plans
    inc = _incidents([0.5, 1.5], ["2025-02-01", "2025-02-02"], ["A", "B"])
    a = grid_stats(inc, old, period="M", end="2025-02-28")
    b = grid_stats(inc, plan=old, period="M", end="2025-02-28")
    pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    assert a.attrs["plan"] == b.attrs["plan"] == "grids layer"
    named = old.copy()
    named.attrs["plan_id"] = "base-2024"
    assert grid_stats(inc, plan=named, period="M", end="2025-02-28").attrs["plan"] == "base-2024"


def test_plan_errors(plans):
    old, new = plans
    inc = _incidents([0.5], ["2025-02-01"], ["A"])
    with pytest.raises(InputError, match="count in as grids= or as plan=, not both"):
        grid_stats(inc, old, plan=new)
    with pytest.raises(InputError, match="not neither"):
        grid_stats(inc)
    index = IncidentIndex.build(inc, grids=old, tiles=False)
    with pytest.raises(InputError, match="as a GeoDataFrame, not an IncidentIndex"):
        grid_stats(index, plan=Plan("p", old))
    with pytest.raises(InputError, match=r"must be a grid GeoDataFrame or a plan with a \.grids"):
        grid_stats(inc, plan=np.zeros(3))
