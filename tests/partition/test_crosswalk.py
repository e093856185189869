"""Tests for gridgeo.partition.crosswalk: shares, exact re-location, labels, errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.errors import CRSError, InputError, ValidationError
from gridgeo.partition import crosswalk, plan_diff
from gridgeo.partition.crosswalk import (
    CHANGES,
    grid_changes,
    grid_predecessors,
    group_crosswalk,
    plan_grids,
)

METRIC = "EPSG:4549"  # CGCS2000 3° GK zone, metres
LONLAT = "EPSG:4490"
X0, Y0 = 114.90, 25.30  # SW corner of the lon/lat territories


def boxes(spec: dict[str, tuple[float, float, float, float]], crs: str = METRIC):
    """A grid frame from ``{code: (xmin, ymin, xmax, ymax)}``."""
    return gpd.GeoDataFrame(
        {"code": list(spec)}, geometry=[shapely.box(*b) for b in spec.values()], crs=crs
    )


def labels(cw: pd.DataFrame) -> dict[str, str]:
    ch = grid_changes(cw)
    return dict(zip(ch["code"], ch["change"]))


def voronoi(points: list[tuple[float, float]], extent: tuple[float, ...], prefix: str, crs: str):
    """Voronoi cells of ``points`` clipped to the ``extent`` box: a plan covering it exactly."""
    env = shapely.box(*extent)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=env))
    cells = shapely.intersection(cells, env)
    cells = cells[shapely.area(cells) > 0]
    return gpd.GeoDataFrame(
        {"code": [f"{prefix}{i:02d}" for i in range(len(cells))]}, geometry=cells, crs=crs
    )


def brute_force(grids: gpd.GeoDataFrame, pts: np.ndarray) -> list[object]:
    """Code of the grid covering each point, lowest code on shared edges, else None."""
    order = grids.sort_values("code")
    out: list[object] = []
    for p in pts:
        hit = [c for c, g in zip(order["code"], order.geometry) if shapely.covers(g, p)]
        out.append(hit[0] if hit else None)
    return out


# ---- labels on constructed cases ---------------------------------------------------------


def test_every_label_on_constructed_plans():
    old = boxes(
        {
            "U": (0, 0, 100, 100),  # unchanged
            "R": (100, 0, 200, 100),  # recoded as R2
            "S": (200, 0, 400, 100),  # split into S1, S2
            "M1": (400, 0, 500, 100),  # merged with M2 into M
            "M2": (500, 0, 600, 100),
            "D": (600, 0, 700, 100),  # redrawn: its east boundary moves by 30 m, D grows
            "E": (700, 0, 800, 100),  # and E shrinks: redrawn too
            "X": (800, 0, 900, 100),  # retired: outside the new plan
        }
    )
    new = boxes(
        {
            "U": (0, 0, 100, 100),
            "R2": (100, 0, 200, 100),
            "S1": (200, 0, 300, 100),
            "S2": (300, 0, 400, 100),
            "M": (400, 0, 600, 100),
            "D": (600, 0, 730, 100),
            "E": (730, 0, 800, 100),
            "N": (900, 0, 1000, 100),  # new ground
        }
    )
    cw = crosswalk(old, new)
    assert labels(cw) == {
        "U": "unchanged",
        "R": "recoded",
        "S": "split",
        "M1": "merged",
        "M2": "merged",
        "D": "redrawn",
        "E": "redrawn",
        "X": "retired",
    }
    assert set(labels(cw).values()) == set(CHANGES)
    # the retired grid and the new ground are rows, with <NA> on the other side
    x = cw[cw["old_code"].eq("X").fillna(False)]
    assert len(x) == 1 and pd.isna(x["new_code"].iloc[0]) and x["area_m2"].iloc[0] == 10_000
    n = cw[cw["new_code"].eq("N").fillna(False)]
    assert len(n) == 1 and pd.isna(n["old_code"].iloc[0]) and pd.isna(n["change"].iloc[0])
    assert n["area_share_new"].iloc[0] == 1.0 and np.isnan(n["area_share_old"].iloc[0])
    ch = grid_changes(cw).set_index("code")
    assert ch.loc["S", "successors"] == ("S1", "S2")
    assert ch.loc["D", "successors"] == ("D",) and ch.loc["E", "successors"] == ("E", "D")
    assert ch.loc["D", "iou"] == pytest.approx(100 / 130)
    pred = grid_predecessors(cw).set_index("code")
    assert pred.loc["M", "predecessors"] == ("M1", "M2")
    assert pred.loc["N", "predecessors"] == ()


def test_a_sliver_is_a_row_but_no_relationship():
    old = boxes({"A": (0, 0, 100, 100), "B": (100, 0, 200, 100)})
    # the shared edge moves by 0.5 m: a 0.5 % sliver of each grid changes hands
    new = boxes({"A": (0, 0, 100.5, 100), "B": (100.5, 0, 200, 100)})
    cw = crosswalk(old, new)
    assert labels(cw) == {"A": "unchanged", "B": "unchanged"}
    sliver = cw[(cw["old_code"] == "B") & (cw["new_code"] == "A")]
    assert sliver["area_m2"].iloc[0] == pytest.approx(50.0)
    # a stricter min_share makes the sliver a relationship: the edge moved
    strict = crosswalk(old, new, min_share=0.001)
    assert labels(strict) == {"A": "redrawn", "B": "redrawn"}


def test_a_sliver_holding_households_is_a_relationship():
    old = boxes({"A": (0, 0, 100, 100), "B": (100, 0, 200, 100)})
    new = boxes({"A": (0, 0, 100.5, 100), "B": (100.5, 0, 200, 100)})
    units = gpd.GeoDataFrame(
        {"households": [40, 10], "population": [100, 30]},
        geometry=[shapely.Point(100.2, 50), shapely.Point(150, 50)],
        crs=METRIC,
    )
    cw = crosswalk(old, new, units=units)
    # new A took a populated part of B: both boundaries moved
    assert labels(cw) == {"A": "redrawn", "B": "redrawn"}
    moved = cw[(cw["old_code"] == "B") & (cw["new_code"] == "A")]
    assert moved["households"].iloc[0] == 40 and moved["population"].iloc[0] == 100


def test_a_split_and_merge_at_once_is_redrawn():
    old = boxes({"A": (0, 0, 200, 100), "B": (200, 0, 300, 100)})
    # half of A merged into B: neither a pure split of A nor a pure merge into Q
    new = boxes({"P": (0, 0, 100, 100), "Q": (100, 0, 300, 100)})
    assert labels(crosswalk(old, new)) == {"A": "redrawn", "B": "redrawn"}


def test_units_points_and_polygons_incidents_and_points_outside_both():
    old = boxes({"A": (0, 0, 100, 100), "B": (100, 0, 200, 100)})
    new = boxes({"C": (0, 0, 150, 100), "D": (150, 0, 250, 100)})
    units = gpd.GeoDataFrame(
        {"households": [5, 7, 11, 13], "population": [10, 14, 22, 26]},
        geometry=[
            shapely.Point(50, 50),  # A → C
            shapely.box(110, 10, 140, 40),  # a building polygon: B → C
            shapely.Point(220, 50),  # outside old, in D
            shapely.Point(500, 500),  # outside both
        ],
        crs=METRIC,
    )
    incidents = gpd.GeoSeries(
        [shapely.Point(160, 50)] * 3 + [shapely.Point(-5, 5)], crs=METRIC
    )
    cw = crosswalk(old, new, units=units, incidents=incidents).set_index(
        ["old_code", "new_code"]
    )
    assert cw.loc[("A", "C"), "households"] == 5
    assert cw.loc[("B", "C"), "households"] == 7 and cw.loc[("B", "C"), "population"] == 14
    assert cw.loc[("B", "D"), "incidents"] == 3
    assert cw["households"].sum() == 36 and cw["incidents"].sum() == 4
    assert cw["households"].dtype == np.int64
    rows = cw.reset_index()
    neither = rows[rows["old_code"].isna() & rows["new_code"].isna()]
    assert neither["households"].tolist() == [13] and neither["incidents"].tolist() == [1]
    assert np.isnan(neither["area_m2"].iloc[0])
    only_new = rows[rows["old_code"].isna() & (rows["new_code"] == "D")]
    assert only_new["households"].tolist() == [11]
    assert only_new["area_m2"].tolist() == [5000.0]


def test_areas_are_metric_for_lonlat_grids():
    old = boxes({"A": (X0, Y0, X0 + 0.01, Y0 + 0.01)}, crs=LONLAT)
    new = boxes({"B": (X0, Y0, X0 + 0.01, Y0 + 0.01)}, crs=LONLAT)
    cw = crosswalk(old, new)
    assert cw.attrs["crs"] == "EPSG:4547"  # CGCS2000 3° GK zone of 114°E
    # 0.01° × 0.01° at 25.3°N: ~1,006 m × ~1,109 m
    assert 1.10e6 < cw["area_m2"].iloc[0] < 1.13e6
    assert labels(cw) == {"A": "recoded"}


def test_plans_with_a_grids_attribute_and_their_names():
    class Plan:
        def __init__(self, plan_id, grids):
            self.plan_id, self.grids = plan_id, grids

    old = boxes({"A": (0, 0, 100, 100)})
    cw = crosswalk(Plan("p2024", old), Plan("p2025", old))
    assert (cw.attrs["old_plan"], cw.attrs["new_plan"]) == ("p2024", "p2025")
    assert labels(cw) == {"A": "unchanged"}
    assert plan_grids(old)[1] == "grids layer"


def test_input_is_not_modified():
    old = boxes({"A": (X0, Y0, X0 + 0.01, Y0 + 0.01)}, crs=LONLAT)
    before = old.copy()
    crosswalk(old, old)
    pd.testing.assert_frame_equal(old, before)


# ---- invariants --------------------------------------------------------------------------

coords = st.tuples(
    st.floats(0.0005, 0.0195, allow_nan=False), st.floats(0.0005, 0.0195, allow_nan=False)
)


def _lonlat(pts):
    return [(X0 + x, Y0 + y) for x, y in pts]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.lists(coords, min_size=2, max_size=12, unique=True),
    b=st.lists(coords, min_size=2, max_size=12, unique=True),
    partial=st.booleans(),
)
def test_area_shares_sum_to_one_per_grid(a, b, partial):
    extent = (X0, Y0, X0 + 0.02, Y0 + 0.02)
    old = voronoi(_lonlat(a), extent, "o", LONLAT)
    # the new plan covers the same territory, or only its western part
    new_extent = (X0, Y0, X0 + 0.013, Y0 + 0.02) if partial else extent
    new = voronoi(_lonlat(b), new_extent, "n", LONLAT)
    cw = crosswalk(old, new)
    per_old = cw.groupby(cw["old_code"].astype(str))["area_share_old"].sum()
    per_new = cw.dropna(subset=["new_code"]).groupby(
        cw["new_code"].dropna().astype(str)
    )["area_share_new"].sum()
    assert set(per_old.index) == set(old["code"]) and set(per_new.index) == set(new["code"])
    # lon/lat edges are slightly curved in metres, so pieces and grids agree to ~1e-7 of
    # a grid's area; a sliver of a grid (hypothesis draws close points) within 0.01 m²
    for per, grids in ((per_old, old), (per_new, new)):
        m2 = grids.set_index("code").to_crs(cw.attrs["crs"]).area.reindex(per.index)
        err = np.abs(per.to_numpy() - 1.0) * m2.to_numpy()
        assert (err <= 1e-6 * m2.to_numpy() + 0.01).all(), err.max()
    if not partial:  # the same territory: no ground outside either plan
        assert cw["old_code"].notna().all() and cw["new_code"].notna().all()
    # metric areas sum to the metric area of each plan's grids
    union = shapely.segmentize(pd.concat([old, new]).union_all(), 0.0001)  # ~10 m
    area = gpd.GeoSeries([union], crs=LONLAT).to_crs(cw.attrs["crs"]).area.iloc[0]
    assert cw["area_m2"].sum() == pytest.approx(area, rel=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.lists(coords, min_size=2, max_size=10, unique=True),
    b=st.lists(coords, min_size=2, max_size=10, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_households_moved_equal_brute_force_relocation(a, b, seed):
    extent = (X0, Y0, X0 + 0.02, Y0 + 0.02)
    old = voronoi(_lonlat(a), extent, "o", LONLAT)
    new = voronoi(_lonlat(b), (X0 + 0.002, Y0, X0 + 0.022, Y0 + 0.02), "n", LONLAT)
    rng = np.random.default_rng(seed)
    # rows in any order: the answer must not depend on it (the locator sorts by code)
    old = old.iloc[rng.permutation(len(old))]
    new = new.iloc[rng.permutation(len(new))]
    n = 60
    xs = X0 - 0.001 + rng.random(n) * 0.024
    ys = Y0 + rng.random(n) * 0.02
    # some points exactly on grid vertices: the boundary rule is part of the contract
    corners = shapely.get_coordinates(old.boundary.to_numpy())[:5]
    xs[: len(corners)], ys[: len(corners)] = corners[:, 0], corners[:, 1]
    pts = shapely.points(xs, ys)
    hh = rng.integers(0, 50, n)
    units = gpd.GeoDataFrame({"households": hh, "population": hh * 3}, geometry=pts, crs=LONLAT)
    cw = crosswalk(old, new, units=units, incidents=units.geometry)
    truth = pd.DataFrame(
        {"old": brute_force(old, pts), "new": brute_force(new, pts), "hh": hh, "one": 1}
    )
    expect = truth.groupby(["old", "new"], dropna=False)[["hh", "one"]].sum()
    expect = expect[expect["one"] > 0]
    got = cw[(cw["households"] > 0) | (cw["incidents"] > 0)]
    got = got.set_index(["old_code", "new_code"])[["households", "incidents"]]
    exp = {(None if pd.isna(o) else o, None if pd.isna(w) else w): (h, c)
           for (o, w), (h, c) in expect.iterrows()}
    res = {(None if pd.isna(o) else o, None if pd.isna(w) else w): (h, c)
           for (o, w), (h, c) in got.iterrows()}
    assert res == exp


# ---- errors ------------------------------------------------------------------------------


def test_errors():
    good = boxes({"A": (0, 0, 100, 100)})
    with pytest.raises(CRSError, match="the new grids have no CRS"):
        crosswalk(good, good.set_crs(None, allow_override=True))
    with pytest.raises(InputError, match="new must be a grid GeoDataFrame or a plan"):
        crosswalk(good, pd.DataFrame(good))
    dup = boxes({"A": (0, 0, 1, 1)})
    dup = pd.concat([dup, dup], ignore_index=True)
    with pytest.raises(ValidationError, match=r"old grids: duplicate codes in 'code': \['A'\]"):
        crosswalk(dup, good)
    with pytest.raises(ValidationError, match=r"new grids: key column 'gid' is missing"):
        crosswalk(good.assign(gid=1), good, key="gid")
    bowtie = gpd.GeoDataFrame(
        {"code": ["Z"]}, geometry=[shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])], crs=METRIC
    )
    with pytest.raises(ValidationError, match=r"invalid geometry for grids \['Z'\]"):
        crosswalk(good, bowtie)
    line = gpd.GeoDataFrame({"code": ["L"]}, geometry=[shapely.LineString([(0, 0), (1, 1)])],
                            crs=METRIC)
    with pytest.raises(ValidationError, match=r"grids must be polygons; found \['LineString'\]"):
        crosswalk(line, good)
    missing = good.assign(code=[None])
    with pytest.raises(ValidationError, match=r"'code' is missing at rows \[0\]"):
        crosswalk(missing, good)
    units = gpd.GeoDataFrame({"households": [1.0, np.nan]},
                             geometry=[shapely.Point(1, 1)] * 2, crs=METRIC)
    # every problem of the input in one message
    with pytest.raises(ValidationError, match=r"(?s)3 problems.*'households' has 1 missing.*"
                       r"'population' is missing.*min_share was 1"):
        crosswalk(good, good, units=units, min_share=1)
    inc = gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=METRIC)
    with pytest.raises(ValidationError, match=r"incidents must be Point; found \['Polygon'\]"):
        crosswalk(good, good, incidents=inc)
    with pytest.raises(ValidationError, match=r"incidents have no CRS"):
        crosswalk(good, good, incidents=gpd.GeoSeries([shapely.Point(0, 0)]))
    with pytest.raises(ValidationError, match="units must be a GeoDataFrame or GeoSeries"):
        crosswalk(good, good, units=[(0, 0)])


# ---- plan_diff on the crosswalk ----------------------------------------------------------


def test_plan_diff_labels_groups_and_keeps_its_crosswalk():
    before = pd.Series({"a": "G1", "b": "G1", "c": "G2", "d": "G3", "e": "G4", "f": "G4"})
    after = pd.Series({"a": "H1", "b": "H2", "c": "H3", "d": "H3", "e": "G4", "f": "G4",
                       "g": "H9"})
    d = plan_diff(before, after)
    assert d.loc[list("abcdef"), "change"].tolist() == [
        "split", "split", "merged", "merged", "unchanged", "unchanged"]
    assert pd.isna(d.loc["g", "change"])
    cw = group_crosswalk(before, after)
    assert cw[["old_code", "new_code", "grids"]].values.tolist()[:3] == [
        ["G1", "H1", 1], ["G1", "H2", 1], ["G2", "H3", 1]]
    new_only = cw[cw["old_code"].isna()]
    assert new_only["new_code"].tolist() == ["H9"] and new_only["grids"].tolist() == [1]
    # one grid more in a group of 100: not the same group any more (membership is exact)
    big_b = pd.Series({f"x{i}": "G1" for i in range(100)})
    big_a = pd.Series({**{f"x{i}": "G1" for i in range(99)}, "x99": "G2"})
    assert plan_diff(big_b, big_a).loc["x0", "change"] == "split"
    renamed = plan_diff(big_b, big_b.replace("G1", "Z1"))
    assert set(renamed["change"]) == {"recoded"}


def test_plan_diff_accepts_business_plans():
    class Business:
        assignment = pd.Series({"a": "G1", "b": "G2"})

    d = plan_diff(Business(), pd.Series({"a": "G1", "b": "G1"}))
    assert d["moved"].tolist() == [False, True]
    with pytest.raises(InputError, match="plan 'after' must be a Series or dict grid code -> gr"):
        plan_diff(Business(), object())
    # regroup's attrs["assignment"] is a plain dict
    d2 = plan_diff({"a": "G1", "b": "G2"}, {"a": "G1", "b": "G1"})
    assert d2["moved"].tolist() == [False, True]


# ---- per-grid tables and ordinary pandas use (issue 15) ----------------------------------


def _mixed_crosswalk(seed: int = 3) -> tuple[pd.DataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A crosswalk with every column kind: codes, areas, int households, incidents."""
    rng = np.random.default_rng(seed)
    extent = (0.0, 0.0, 1000.0, 1000.0)
    old = voronoi([tuple(p) for p in rng.uniform(0, 1000, (9, 2))], extent, "o", METRIC)
    new = voronoi([tuple(p) for p in rng.uniform(0, 1000, (6, 2))], (0, 0, 800, 1000), "n", METRIC)
    pts = shapely.points(rng.uniform(-50, 1050, (200, 2)))
    hh = rng.integers(0, 40, 200)
    units = gpd.GeoDataFrame({"households": hh, "population": hh * 3}, geometry=pts, crs=METRIC)
    return crosswalk(old, new, units=units, incidents=units.geometry), old, new


def test_crosswalk_survives_ordinary_pandas_operations(tmp_path):
    cw, *_ = _mixed_crosswalk()
    assert all(isinstance(v, (str, int, float)) for v in cw.attrs.values()), cw.attrs
    rounded = cw.round({"area_m2": 0, "area_share_old": 3, "area_share_new": 3})
    assert rounded["area_share_old"].dropna().tolist() == cw["area_share_old"].dropna().round(
        3).tolist()
    assert cw.round(2)["households"].tolist() == cw["households"].tolist()
    both = pd.concat([cw, cw.copy()], ignore_index=True)
    assert len(both) == 2 * len(cw)
    other, *_ = _mixed_crosswalk(seed=4)
    assert len(pd.concat([cw, other])) == len(cw) + len(other)
    merged = cw.merge(grid_changes(cw), left_on="old_code", right_on="code", how="left")
    assert len(merged) == len(cw)
    assert (merged["change_x"].fillna("-") == merged["change_y"].fillna("-")).all()
    per_old = cw.groupby("old_code")["households"].sum()
    assert per_old.sum() == cw.loc[cw["old_code"].notna(), "households"].sum()
    cw.to_csv(tmp_path / "cw.csv", index=False)
    back = pd.read_csv(tmp_path / "cw.csv")
    assert back["households"].tolist() == cw["households"].tolist()
    # plan_diff's result too
    d = plan_diff(pd.Series({"a": "G1", "b": "G1", "c": "G2"}), pd.Series({"a": "X", "b": "Y",
                                                                          "c": "Y"}))
    assert pd.concat([d, d.copy()]).shape == (6, d.shape[1])
    assert d.round(1).merge(d, left_index=True, right_index=True).shape[0] == 3


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), min_share=st.sampled_from([0.0, 0.01, 0.2]))
def test_successors_and_predecessors_agree_with_the_labels(seed, min_share):
    cw, old, new = _mixed_crosswalk(seed)
    if min_share != cw.attrs["min_share"]:
        cw = crosswalk(old, new, units=None, min_share=min_share)
    ch = grid_changes(cw).set_index("code")
    pred = grid_predecessors(cw).set_index("code")
    assert list(ch.index) == old["code"].tolist()  # every old grid, in row order
    assert sorted(pred.index) == sorted(new["code"])
    # the two tables are the same relation seen from either side
    forward = {(o, n) for o, ns in ch["successors"].items() for n in ns}
    backward = {(o, n) for n, os_ in pred["predecessors"].items() for o in os_}
    assert forward == backward
    for code, row in ch.iterrows():
        succ = row["successors"]
        assert row["change"] == cw.loc[cw["old_code"] == code, "change"].iloc[0]
        assert (row["change"] == "retired") == (succ == ())
        assert (row["iou"] > 0) == (succ != ())
        if row["change"] == "split":
            assert len(succ) >= 2 and all(pred.loc[n, "predecessors"] == (code,) for n in succ)
        if row["change"] == "merged":
            assert len(succ) == 1 and len(pred.loc[succ[0], "predecessors"]) >= 2
        if row["change"] in ("unchanged", "recoded"):
            assert len(succ) == 1 and pred.loc[succ[0], "predecessors"] == (code,)
            assert row["iou"] >= 0.99
        if len(succ) > 1:  # largest share of the old grid first
            pair = cw[cw["old_code"] == code].set_index("new_code")["area_share_old"]
            shares = pair.loc[list(succ)].to_numpy()
            assert (np.diff(shares) <= 0).all()


def test_grid_changes_errors():
    cw = crosswalk(boxes({"A": (0, 0, 100, 100)}), boxes({"B": (0, 0, 100, 100)}))
    with pytest.raises(InputError, match=r"grid_changes needs a crosswalk .*\['area_m2'\]"):
        grid_changes(cw.drop(columns="area_m2"))
    with pytest.raises(InputError, match=r"grid_predecessors needs a crosswalk .*'change'"):
        grid_predecessors(cw.drop(columns="change"))
    with pytest.raises(InputError, match=r"min_share was 1\.5; expected a number from 0 to"):
        grid_changes(cw, min_share=1.5)
