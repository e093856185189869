"""dispatch_codes: the codes stored with an incident equal a brute-force spatial join."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridgeo.assign import Locator, dispatch_codes
from gridgeo.codes import CATEGORY_DEPARTMENT
from gridgeo.errors import CRSError, InputError


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, scale=0.3, n_incidents=400)


def _brute(layer: gpd.GeoDataFrame, pts: gpd.GeoDataFrame) -> list:
    """The covering zone with the smallest code, else None."""
    g = layer.to_crs(4490).reset_index(drop=True)
    p, z = shapely.STRtree(g.geometry.values).query(
        pts.geometry.to_crs(4490).values, predicate="covered_by"
    )
    best: dict[int, str] = {}
    for i, j in zip(p.tolist(), z.tolist()):
        code = str(g["code"].iloc[j])
        best[i] = min(best.get(i, code), code)
    return [best.get(i) for i in range(len(pts))]


def test_codes_equal_a_brute_force_join(county) -> None:
    inc = county["incidents"].reset_index(drop=True)
    rng = np.random.default_rng(3)
    _, y0, x1, y1 = county["boundary"].to_crs(4490).total_bounds
    # add points just outside the county: every code missing
    extra = inc.iloc[:20].copy()
    extra["geometry"] = gpd.points_from_xy(
        rng.uniform(x1 + 0.05, x1 + 0.1, 20), rng.uniform(y0, y1, 20), crs=inc.crs
    )
    pts = gpd.GeoDataFrame(
        np.concatenate([inc[["category"]].to_numpy(), extra[["category"]].to_numpy()]).ravel(),
        columns=["category"],
        geometry=list(inc.geometry.to_crs(4490)) + list(extra.geometry.to_crs(4490)),
        crs=4490,
    )
    got = dispatch_codes(pts, Locator.from_workspace(county))
    assert list(got.index) == list(pts.index)
    for column, layer in [
        ("grid_code", "grids"),
        ("community_code", "communities"),
        ("town_code", "towns"),
        ("beat_code", "beats"),
    ]:
        assert got[column].tolist() == _brute(county[layer], pts), column
    zones = county["zones"]
    for i, cat in enumerate(pts["category"]):
        dept = CATEGORY_DEPARTMENT.get(cat)
        assert got["department"].iloc[i] == dept
        if dept is None:
            assert got["zone_code"].iloc[i] is None
        else:
            want = _brute(zones[zones["department"] == dept], pts.iloc[[i]])[0]
            assert got["zone_code"].iloc[i] == want
    assert got.iloc[len(inc):].drop(columns="department").isna().all().all()


def test_errors(county) -> None:
    loc = Locator.from_workspace(county)
    pts = gpd.GeoDataFrame({"kind": ["x"]}, geometry=[shapely.Point(114.9, 25.3)], crs=4490)
    with pytest.raises(InputError, match=r"incidents is missing column\(s\) \['category'\]"):
        dispatch_codes(pts, loc)
    pts = pts.rename(columns={"kind": "category"})
    with pytest.raises(InputError, match="routes name layer\\(s\\) \\['nowhere'\\]"):
        dispatch_codes(pts, loc, routes={"x": "nowhere"})
    with pytest.raises(CRSError, match="no CRS"):
        dispatch_codes(pts.set_crs(None, allow_override=True), loc)
