"""Tests of the synthetic demo county (gridgeo.datasets).

One county at scale 1 is built per module (it takes well under a second) for the
descriptive checks; the structural invariants are also checked by hypothesis over
seeds and small scales, each example building its own county.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.codes import CATEGORY_DEPARTMENT, DEPARTMENTS, bad_codes
from gridgeo.crs import to_wgs84
from gridgeo.datasets import LAYERS, SCALE_350K, demo_county
from gridgeo.errors import InputError
from gridgeo.geom import to_metric
from gridgeo.io.workspace import validate_workspace

TILE_TOL_M2 = 1.0  # a 1 m × 1 m sliver; any real gap or overlap is far larger


@pytest.fixture(scope="module")
def county() -> dict[str, gpd.GeoDataFrame]:
    return demo_county(seed=0, scale=1.0)


def _metric(gdf: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(to_metric(gdf).geometry.values, dtype=object)


def assert_tiles(parts: gpd.GeoDataFrame, whole: gpd.GeoDataFrame) -> None:
    """``parts`` cover ``whole`` with no gap and no overlap.

    Exactly (< 0.01 m²) in the layers' own lon/lat CRS, and in the metric CRS within
    1 mm along the outline: a straight lon/lat edge bends slightly when projected, so
    an extra vertex on it (where a beat edge meets the county line) moves off the
    projected chord by up to a millimetre.
    """
    m2_per_deg2 = 100_600 * 110_800  # at 25.4°N
    u_deg = shapely.union_all(parts.geometry.values)
    w_deg = shapely.union_all(whole.geometry.values)
    assert shapely.symmetric_difference(u_deg, w_deg).area * m2_per_deg2 < 0.01, "gap or spill"
    assert (shapely.area(parts.geometry.values).sum() - u_deg.area) * m2_per_deg2 < 0.01, "overlap"
    p = _metric(parts)
    w = shapely.union_all(_metric(whole))
    union = shapely.union_all(p)
    tol = max(TILE_TOL_M2, 1e-3 * w.length)
    assert abs(union.area - w.area) < tol, "gap or spill-over (metric)"
    assert shapely.symmetric_difference(union, w).area < tol, "parts do not match whole (metric)"
    assert abs(shapely.area(p).sum() - union.area) < TILE_TOL_M2, "parts overlap (metric)"


def parent_index(children: gpd.GeoDataFrame, parents: gpd.GeoDataFrame) -> np.ndarray:
    """For each child polygon, the single parent it lies in (fails if 0 or ≥2)."""
    c, p = _metric(children), _metric(parents)
    i, j = shapely.STRtree(p).query(c, predicate="intersects")
    shared = shapely.area(shapely.intersection(c[i], p[j]))
    real = shared > TILE_TOL_M2
    i, j, shared = i[real], j[real], shared[real]
    counts = np.bincount(i, minlength=len(c))
    assert (counts == 1).all(), f"children in 0 or ≥2 parents: rows {np.flatnonzero(counts != 1)}"
    out = np.empty(len(c), dtype=np.intp)
    out[i] = j
    assert np.allclose(shared, shapely.area(c[i]), atol=TILE_TOL_M2), "child spills out of parent"
    return out


def point_parent(points: gpd.GeoDataFrame, polys: gpd.GeoDataFrame) -> np.ndarray:
    """For each point, the single polygon covering it (fails if 0 or ≥2)."""
    i, j = shapely.STRtree(polys.geometry.values).query(
        points.geometry.values, predicate="covered_by"
    )
    counts = np.bincount(i, minlength=len(points))
    assert (counts == 1).all(), (
        f"points in 0 or ≥2 polygons: rows {np.flatnonzero(counts != 1)[:5]}"
    )
    out = np.empty(len(points), dtype=np.intp)
    out[i] = j
    return out


def check_structure(ws: dict[str, gpd.GeoDataFrame]) -> None:
    """The invariants every demo county must satisfy."""
    assert tuple(ws) == LAYERS
    for name, gdf in ws.items():
        assert gdf.crs.to_epsg() == 4490, name
        assert gdf.geometry.is_valid.all(), name
        assert not gdf.geometry.is_empty.any(), name
    validate_workspace(ws)

    boundary, towns, comms, grids = (ws[k] for k in ("boundary", "towns", "communities", "grids"))
    assert_tiles(comms, boundary)
    assert_tiles(towns, boundary)
    assert_tiles(grids, comms)
    assert_tiles(ws["beats"], boundary)

    # nesting and codes
    county = pd.Series(["360722"] * len(towns), index=towns.index)
    assert not bad_codes(towns["code"], "town", parent=county).any()
    assert not bad_codes(comms["code"], "community", parent=comms["town_code"]).any()
    assert not bad_codes(grids["code"], "grid", parent=grids["community_code"]).any()
    for gdf in (towns, comms, grids, ws["beats"], ws["exclusive"]):
        assert gdf["code"].is_unique
    assert not ws["zones"].duplicated(["department", "code"]).any()
    assert set(comms["type"]) <= {"urban", "rural"}
    assert (grids["level"] == "base").all()
    in_town = parent_index(comms, towns)
    assert (towns["code"].to_numpy()[in_town] == comms["town_code"].to_numpy()).all()
    in_comm = parent_index(grids, comms)
    assert (comms["code"].to_numpy()[in_comm] == grids["community_code"].to_numpy()).all()
    assert set(comms["code"]) == set(grids["community_code"]), "a community without grids"

    # buildings: one community each, and grid totals are building sums
    b = ws["buildings"]
    b_comm = point_parent(b, comms)
    assert (comms["code"].to_numpy()[b_comm] == b["community_code"].to_numpy()).all()
    b_grid = point_parent(b, grids)
    sums = b.groupby(grids["code"].to_numpy()[b_grid])[["households", "population"]].sum()
    sums = sums.reindex(grids["code"], fill_value=0)
    assert (sums["households"].to_numpy() == grids["households"].to_numpy()).all()
    assert (sums["population"].to_numpy() == grids["population"].to_numpy()).all()
    assert (b["households"] >= 1).all() and (b["population"] >= b["households"]).all()

    # exclusive grids lie inside their community
    ex = ws["exclusive"]
    ex_comm = parent_index(ex, comms)
    assert (comms["code"].to_numpy()[ex_comm] == ex["community_code"].to_numpy()).all()
    assert not bad_codes(ex["code"], "grid", parent=ex["community_code"]).any()

    # department zones
    zones = ws["zones"]
    assert set(zones["department"]) == set(DEPARTMENTS)
    for dept, z in zones.groupby("department"):
        assert_tiles(z, boundary)
        if dept != "交警":
            parent_index(grids, z)  # every grid lies in exactly one zone: unions of whole grids


def check_incidents(ws: dict[str, gpd.GeoDataFrame], n: int) -> None:
    inc = ws["incidents"]
    assert len(inc) == n and inc["id"].is_unique
    assert set(inc["category"]) <= set(CATEGORY_DEPARTMENT)
    assert (inc["department"] == inc["category"].map(CATEGORY_DEPARTMENT)).all()
    assert (inc["reported_at"] >= pd.Timestamp("2024-01-01")).all()
    assert (inc["reported_at"] < pd.Timestamp("2026-01-01")).all()
    assert inc["reported_at"].is_monotonic_increasing
    lon, lat = to_wgs84(inc["lng"].to_numpy(), inc["lat"].to_numpy(), "gcj02")
    # metres per degree at 25.4°N: ~100.6 km (lon), ~110.8 km (lat)
    err_m = np.hypot((lon - inc.geometry.x) * 100_600, (lat - inc.geometry.y) * 110_800)
    assert err_m.max() < 1e-3
    shift_m = np.hypot(
        (inc["lng"] - inc.geometry.x) * 100_600, (inc["lat"] - inc.geometry.y) * 110_800
    )
    assert (shift_m > 100).all(), "lng/lat must be GCJ-02 (shifted by hundreds of metres)"


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.3, 0.5, 0.8, 1.0]))
def test_invariants_hold_for_any_seed(seed: int, scale: float) -> None:
    ws = demo_county(seed=seed, scale=scale, n_incidents=300)
    check_structure(ws)
    check_incidents(ws, 300)
    n_comm = len(ws["communities"])
    assert len(ws["grids"]) == max(n_comm, round(60 * scale))


def test_scale_one_is_the_xinfeng_pilot(county: dict[str, gpd.GeoDataFrame]) -> None:
    check_structure(county)
    check_incidents(county, 7000)
    b = county["buildings"]
    assert len(county["grids"]) == 60
    assert 2_800 <= len(b) <= 3_300
    assert 25_000 <= b["households"].sum() <= 33_000
    assert 2.6 <= b["population"].sum() / b["households"].sum() <= 3.4
    assert len(county["markets"]) == 2000
    assert 8 <= len(county["beats"]) <= 15
    comms = county["communities"]
    assert (comms["type"] == "urban").sum() == 7
    assert (comms["type"] == "rural").sum() >= 10
    assert len(county["towns"]) >= 3
    assert 900 <= to_metric(county["boundary"]).area.sum() / 1e6 <= 1100  # km²
    x0, y0, x1, y1 = to_metric(county["boundary"]).total_bounds
    assert 28_000 <= max(x1 - x0, y1 - y0) <= 45_000


def test_building_kinds_and_estates(county: dict[str, gpd.GeoDataFrame]) -> None:
    b = county["buildings"]
    assert set(b["kind"]) == {"house", "apartment", "estate"}
    assert (b.loc[b["kind"] == "estate", "households"] > 500).any()
    rural = b[b["community_code"].isin(county["communities"].query("type == 'rural'")["code"])]
    assert set(rural["kind"]) == {"house"} and rural["households"].between(1, 2).all()


def test_a_community_has_a_hole_or_several_parts(county: dict[str, gpd.GeoDataFrame]) -> None:
    geoms = county["communities"].geometry
    multi = (geoms.geom_type == "MultiPolygon").sum()
    holes = sum(len(g.interiors) for g in geoms if g.geom_type == "Polygon")
    assert multi >= 1 and holes >= 1  # the enclave: a hole in one, a second part of another


def test_beats_do_not_follow_communities(county: dict[str, gpd.GeoDataFrame]) -> None:
    comms, beats = _metric(county["communities"]), _metric(county["beats"])
    i, j = shapely.STRtree(beats).query(comms, predicate="intersects")
    share = shapely.area(shapely.intersection(comms[i], beats[j])) / shapely.area(comms[i])
    split = np.unique(i[(share > 0.05) & (share < 0.95)])
    assert len(split) >= 3


def test_traffic_zones_cut_grids_fire_zones_do_not(county: dict[str, gpd.GeoDataFrame]) -> None:
    grids = _metric(county["grids"])
    zones = county["zones"]
    traffic = _metric(zones[zones["department"] == "交警"])
    i, j = shapely.STRtree(traffic).query(grids, predicate="intersects")
    share = shapely.area(shapely.intersection(grids[i], traffic[j])) / shapely.area(grids[i])
    cut = np.unique(i[(share > 0.01) & (share < 0.99)])
    assert len(cut) >= 3
    fire = zones[zones["department"] == "消防"]
    assert 2 <= len(fire) <= 6
    parent_index(county["grids"], fire)


def test_zone_codes_use_department_prefixes(county: dict[str, gpd.GeoDataFrame]) -> None:
    zones = county["zones"]
    prefix = {"住管": "ZG", "综治": "ZZ", "消防": "XF", "市场监管": "SJ", "交警": "JJ"}
    for dept, code in zip(zones["department"], zones["code"]):
        assert code.startswith(prefix[dept]) and code[2:].isdigit()


def test_grid_serials_read_west_to_east_north_to_south(
    county: dict[str, gpd.GeoDataFrame],
) -> None:
    grids = county["grids"]
    rp = grids.representative_point()
    for _, g in grids.groupby("community_code"):
        if len(g) < 2:
            continue
        serial = g["code"].str[-3:].astype(int).to_numpy()
        assert sorted(serial) == list(range(1, len(g) + 1))
        first, last = g.index[serial.argmin()], g.index[serial.argmax()]
        assert rp[first].y >= rp[last].y  # the first grid is in the top row


def test_incident_rhythms(county: dict[str, gpd.GeoDataFrame]) -> None:
    inc = county["incidents"]
    t = inc["reported_at"]
    per_day = t.dt.normalize().value_counts()
    per_day = per_day.reindex(pd.date_range("2024-01-01", "2025-12-31"), fill_value=0)
    weekend = per_day.index.day_of_week >= 5
    assert per_day[~weekend].mean() > 1.2 * per_day[weekend].mean()
    fire = inc[inc["category"] == "消防安全"]["reported_at"].dt.month
    assert fire.isin([12, 1, 2]).sum() > 2 * fire.isin([6, 7, 8]).sum()
    traffic = inc[inc["category"] == "交通秩序"]["reported_at"]
    golden_week = traffic.between("2024-10-01", "2024-10-07 23:59") | traffic.between(
        "2025-10-01", "2025-10-08 23:59"
    )
    assert golden_week.sum() / 15 > 1.3 * len(traffic) / 731
    assert (t.dt.year == 2025).sum() > 1.08 * (t.dt.year == 2024).sum()  # growth trend


def test_incident_places(county: dict[str, gpd.GeoDataFrame]) -> None:
    inc = to_metric(county["incidents"])
    boundary = to_metric(county["boundary"]).geometry.iloc[0]
    outside = ~inc.geometry.within(boundary)
    assert 3 <= outside.sum() <= 30  # a handful, GPS error at the county line
    assert inc.geometry[outside].distance(boundary).max() < 50.0
    urban = to_metric(county["communities"].query("type == 'urban'")).union_all()
    assert inc.geometry.within(urban).mean() > 0.5  # reports concentrate in the seat
    market = inc[inc["category"].isin(["市场监管", "食品安全"])]
    markets = to_metric(county["markets"])
    _, dist = markets.sindex.nearest(market.geometry, return_distance=True)
    assert np.median(dist) < 30.0


def test_markets_mostly_in_the_seat(county: dict[str, gpd.GeoDataFrame]) -> None:
    m = county["markets"]
    urban = set(county["communities"].query("type == 'urban'")["code"])
    assert m["community_code"].isin(urban).mean() > 0.65
    assert m["id"].is_unique and m["community_code"].notna().all()


def test_streets_layer(county: dict[str, gpd.GeoDataFrame]) -> None:
    s = county["streets"]
    assert set(s["kind"]) == {"main", "secondary", "river"}
    assert set(s.geom_type) <= {"LineString", "MultiLineString"}
    assert (s["kind"] == "river").sum() == 1


def test_same_seed_same_county_other_seed_other_county() -> None:
    a = demo_county(seed=7, scale=0.3, n_incidents=100)
    b = demo_county(seed=7, scale=0.3, n_incidents=100)
    for name in LAYERS:
        assert_geodataframe_equal(a[name], b[name])
    c = demo_county(seed=8, scale=0.3, n_incidents=100)
    assert not a["boundary"].geometry.iloc[0].equals(c["boundary"].geometry.iloc[0])
    assert not a["incidents"]["reported_at"].equals(c["incidents"]["reported_at"])


def test_generator_seed_is_accepted_and_not_the_global_rng() -> None:
    # the legacy global RNG must be left alone (read, never reseeded, by this test)
    before = np.random.get_state()  # noqa: NPY002
    a = demo_county(seed=np.random.default_rng(3), scale=0.2, n_incidents=10)
    after = np.random.get_state()  # noqa: NPY002
    assert (before[1] == after[1]).all() and before[2:] == after[2:]
    b = demo_county(seed=3, scale=0.2, n_incidents=10)
    assert_geodataframe_equal(a["grids"], b["grids"])


def test_scale_is_linear() -> None:
    small = demo_county(seed=2, scale=0.5, n_incidents=0)
    big = demo_county(seed=2, scale=1.0, n_incidents=0)
    area = [to_metric(w["boundary"]).area.sum() for w in (small, big)]
    assert area[1] / area[0] == pytest.approx(2.0, rel=0.03)
    for name, tol in (("buildings", 0.1), ("markets", 0.01), ("communities", 0.1)):
        assert len(big[name]) / len(small[name]) == pytest.approx(2.0, rel=tol), name
    hh = [w["buildings"]["households"].sum() for w in (small, big)]
    assert hh[1] / hh[0] == pytest.approx(2.0, rel=0.2)
    assert len(small["incidents"]) == 0 and len(big["incidents"]) == 0
    assert len(demo_county(seed=2, scale=0.5)["incidents"]) == 3500


def test_scale_350k_constant() -> None:
    assert 10 < SCALE_350K < 15


def test_progress_bar_and_timings_logged(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="gridgeo.datasets"):
        demo_county(seed=0, scale=0.1, n_incidents=5, progress=True)
    assert "demo county" in capsys.readouterr().err
    assert any("territory in" in r.getMessage() for r in caplog.records)


def test_input_frames_are_fresh() -> None:
    a = demo_county(seed=4, scale=0.2, n_incidents=5)
    a["grids"].loc[:, "households"] = -1
    b = demo_county(seed=4, scale=0.2, n_incidents=5)
    assert (b["grids"]["households"] >= 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.0}, r"scale=0.0 is out of range"),
        ({"scale": 100}, r"scale=100 is out of range"),
        ({"scale": float("nan")}, r"scale=nan is out of range"),
        ({"scale": "1"}, r"scale must be a number, got '1'"),
        ({"n_incidents": -1}, r"n_incidents must be an int ≥ 0 or None, got -1"),
        ({"n_incidents": 2.5}, r"n_incidents must be an int ≥ 0 or None, got 2.5"),
        ({"seed": "x"}, r"seed must be an int or a numpy.random.Generator, got 'x'"),
        ({"seed": -3}, r"seed must be ≥ 0, got -3"),
    ],
)
def test_bad_arguments_are_input_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        demo_county(**kwargs)
