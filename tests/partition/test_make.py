"""make_grids: every guarantee pinned on random territories."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from territory_gen import CRS, X0, Y0, make_territory

from gridgeo.errors import CRSError, InfeasibleError, InputError
from gridgeo.partition import check_grids, make_grids

RULES = {"urban": {"max_households": 300}, "rural": {"max_households": 200, "max_population": 500}}


def caps(comms: gpd.GeoDataFrame, rules=RULES) -> dict[str, tuple[float, float]]:
    out = {}
    for row in comms.itertuples():
        r = rules.get(row.type, {})
        out[row.code] = (r.get("max_households", 500), r.get("max_population", math.inf))
    return out


def assert_guarantees(grids: gpd.GeoDataFrame, t: dict, rules=RULES) -> None:
    comms, units = t["communities"], t["units"]
    limit = caps(comms, rules)
    # codes: 15 digits, unique, prefixed by the community
    assert grids["code"].str.fullmatch(r"\d{15}").all()
    assert grids["code"].is_unique
    assert (grids["code"].str[:12] == grids["community_code"]).all()
    for row in comms.itertuples():
        mine = grids[grids["community_code"] == row.code]
        assert len(mine) >= 1, f"community {row.code} has no grid"
        union = shapely.union_all(mine.geometry.values)
        # coverage: no gap and no overlap (to a square millimetre per metre of edge)
        tol = 1e-3 * row.geometry.length
        assert abs(union.area - row.geometry.area) < tol
        assert abs(mine.area.sum() - union.area) < tol
        # nesting
        assert mine.within(row.geometry.buffer(0.01)).all()
        # contiguity: one part, except flagged grids of multi-part communities
        parts = shapely.get_num_geometries(mine.geometry.values)
        multi_comm = shapely.get_num_geometries(row.geometry) > 1
        assert ((parts == 1) | (mine["multipart"] & multi_comm)).all()
        assert (mine["multipart"] == (parts > 1)).all()
        # hard ceilings, except a single oversize unit
        cap_h, cap_p = limit[row.code]
        over = (mine["households"] > cap_h) | (mine["population"] > cap_p)
        assert (mine.loc[over, "oversize"] & (mine.loc[over, "n_units"] == 1)).all()
        assert not mine.loc[~over, "oversize"].any()
    # every unit in exactly one grid, totals preserved
    assert len(grids.attrs["unit_grid"]) == len(units)
    unit_grid = pd.Series(grids.attrs["unit_grid"], index=units.index)
    assert unit_grid.notna().all()
    assert grids["households"].sum() == units["households"].sum()
    assert grids["population"].sum() == units["population"].sum()
    counts = unit_grid.value_counts()
    assert (grids.set_index("code")["n_units"].reindex(counts.index) == counts).all()
    sums = units.groupby(unit_grid.to_numpy())["households"].sum()
    assert (grids.set_index("code")["households"].reindex(sums.index) == sums).all()
    # each unit's grid covers it
    g = grids.set_index("code").geometry
    assert g.reindex(unit_grid.to_numpy()).buffer(0.01).covers(units.geometry, align=False).all()
    # check_grids agrees
    report = check_grids(grids, within=comms, units=units, rules=rules)
    assert report.ok, report.problems


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n_units=st.integers(1, 150), oversize=st.integers(0, 3))
def test_guarantees_on_random_territories(seed: int, n_units: int, oversize: int) -> None:
    t = make_territory(seed, n_units=n_units, oversize=oversize)
    grids = make_grids(
        t["units"], within=t["communities"], rules=RULES, barriers=t["streets"], seed=seed
    )
    assert grids.crs == t["communities"].crs
    assert_guarantees(grids, t)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), cap=st.integers(60, 400))
def test_guarantees_without_barriers_and_one_ceiling(seed: int, cap: int) -> None:
    t = make_territory(seed, n_units=100)
    grids = make_grids(t["units"], within=t["communities"], max_households=cap)
    rules = {k: {"max_households": cap} for k in ("urban", "rural")}
    assert_guarantees(grids, t, rules)


def to_blocks(t: dict, *, gaps: bool) -> dict:
    """The territory's units as blocks: Voronoi cells of the unit points, each clipped to
    the community holding its point, one polygon each (with ``gaps``, every third cell
    also loses a margin, leaving land that no block covers)."""
    units, comms = t["units"], t["communities"]
    pts = units.geometry.to_numpy()
    owner = shapely.STRtree(comms.geometry.to_numpy()).query(pts, predicate="covered_by")
    comm_of = np.full(len(units), -1)
    comm_of[owner[0]] = owner[1]
    env = shapely.box(*comms.total_bounds).buffer(10)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=env))
    tree = shapely.STRtree(cells)
    si, ci = tree.query(pts, predicate="within")
    cell_of = np.empty(len(units), dtype=object)
    cell_of[si] = cells[ci]
    blocks = shapely.intersection(cell_of, comms.geometry.to_numpy()[comm_of])
    if gaps:
        shrunk = shapely.buffer(blocks[::3], -5.0)
        keep = shapely.contains(shrunk, pts[::3])
        blocks[::3] = np.where(keep, shrunk, blocks[::3])
    # a cell clipped to a community in two parts, or shrunk, may be in several parts:
    # keep the one with the unit (the rest is land no block covers)
    for i in np.flatnonzero(shapely.get_num_geometries(blocks) > 1):
        parts = shapely.get_parts(blocks[i])
        blocks[i] = parts[shapely.intersects(parts, pts[i])][0]
    return {**t, "units": units.set_geometry(blocks)}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n_units=st.integers(2, 150), gaps=st.booleans())
def test_block_units_are_atoms_and_every_guarantee_holds(
    seed: int, n_units: int, gaps: bool
) -> None:
    t = to_blocks(make_territory(seed, n_units=n_units, oversize=1), gaps=gaps)
    # tessellate=False: few blocks may cover under half the land, and auto would then
    # read them as buildings
    grids = make_grids(
        t["units"],
        within=t["communities"],
        rules=RULES,
        barriers=t["streets"],
        seed=seed,
        tessellate=False,
    )
    # assert_guarantees checks that each unit's grid covers it: here, each whole block
    assert_guarantees(grids, t)


def test_blocks_are_detected_or_forced_and_grids_are_unions_of_blocks() -> None:
    t = to_blocks(make_territory(4, n_units=120, oversize=0), gaps=False)
    auto = make_grids(t["units"], within=t["communities"], rules=RULES)
    forced = make_grids(t["units"], within=t["communities"], rules=RULES, tessellate=False)
    assert_geodataframe_equal(auto, forced)
    # each grid holds its blocks whole (to the 1 mm noding grid along their edges); what
    # else it holds is land no block covers (cells clipped away at community borders)
    blocks = (
        t["units"]
        .geometry.groupby(np.asarray(auto.attrs["unit_grid"]))
        .agg(lambda g: shapely.union_all(g.to_numpy()))
    )
    g = auto.set_index("code").geometry
    every_block = shapely.union_all(t["units"].geometry.to_numpy())
    for code, geom in blocks.items():
        assert shapely.difference(geom, g[code]).area < 1e-3 * geom.length
        others = shapely.difference(every_block, geom)
        assert shapely.intersection(g[code], others).area < 1e-3 * g[code].length
    # the same blocks read as buildings: Voronoi atoms around their points instead
    as_buildings = make_grids(t["units"], within=t["communities"], rules=RULES, tessellate=True)
    assert as_buildings["households"].sum() == auto["households"].sum()


def test_threads_do_not_change_the_result() -> None:
    t = make_territory(8, n_units=150)
    kw = {"within": t["communities"], "rules": RULES, "barriers": t["streets"], "seed": 3}
    assert_geodataframe_equal(
        make_grids(t["units"], workers=1, **kw), make_grids(t["units"], workers=2, **kw)
    )


def test_few_grids_close_to_the_lower_bound() -> None:
    t = make_territory(7, n_units=400, oversize=0)
    grids = make_grids(t["units"], within=t["communities"], rules=RULES, barriers=t["streets"])
    lb = grids.attrs["lower_bound"]
    comms = t["communities"]
    # the bound counts what the units need; empty communities add one grid each
    assert lb <= len(grids) <= 1.25 * lb + 2
    assert grids["compactness"].between(0, 1).all()
    assert grids["area_km2"].sum() == pytest.approx(comms.area.sum() / 1e6, rel=1e-6)


@pytest.mark.slow
def test_demo_county_at_six_times_scale_is_clean() -> None:
    """18,000 buildings in 144 communities with streets and exclusive areas: here an atom
    once came out in two parts with its building in the smaller one, so the building was
    counted in a grid that did not cover it (check_grids: count_mismatch)."""
    from gridgeo.datasets import demo_county

    county = demo_county(seed=0, scale=6, n_incidents=0)
    rules = {"urban": {"max_households": 500}, "rural": {"max_households": 300}}
    units, comms = county["buildings"], county["communities"]
    grids = make_grids(
        units,
        within=comms,
        rules=rules,
        barriers=county["streets"],
        exclusive=county["exclusive"],
    )
    report = check_grids(grids, within=comms, units=units, rules=rules)
    assert report.ok, report.problems
    g = grids.set_index("code").geometry
    unit_grid = pd.Series(grids.attrs["unit_grid"], index=units.index)
    assert g.reindex(unit_grid.to_numpy()).covers(units.geometry, align=False).all()
    assert len(grids) <= 1.08 * grids.attrs["lower_bound"]


def test_deterministic_for_a_seed() -> None:
    t = make_territory(3)
    a = make_grids(t["units"], within=t["communities"], rules=RULES, barriers=t["streets"], seed=5)
    b = make_grids(t["units"], within=t["communities"], rules=RULES, barriers=t["streets"], seed=5)
    assert_geodataframe_equal(a, b)


@pytest.mark.parametrize("index", ["range", "labels"])
def test_output_round_trips_through_parquet_with_its_attrs(tmp_path, index) -> None:
    """to_parquet stores attrs as JSON: every attrs value must be JSON, and survive the trip."""
    t = make_territory(5, n_units=60)
    units = t["units"]
    if index == "labels":  # a unit index that is not 0..n-1, nor ints
        units = units.set_axis([f"b{i:03d}" for i in range(len(units))][::-1])
    grids = make_grids(units, within=t["communities"], rules=RULES, seed=5)
    json.dumps(grids.attrs)  # to_parquet writes attrs with json.dumps
    path = tmp_path / "grids.parquet"
    grids.to_parquet(path)
    back = gpd.read_parquet(path)
    assert_geodataframe_equal(back, grids)
    assert back.attrs == grids.attrs
    # each unit's grid, in the order of the rows of units, as the docstring says
    unit_grid = pd.Series(back.attrs["unit_grid"], index=units.index)
    g = grids.set_index("code").geometry
    assert g.reindex(unit_grid.to_numpy()).buffer(0.01).covers(units.geometry, align=False).all()


def test_empty_community_is_one_grid() -> None:
    t = make_territory(1)
    grids = make_grids(t["units"], within=t["communities"], rules=RULES)
    d = grids[grids["community_code"] == "360722001004"]
    assert len(d) == 1 and d["households"].iloc[0] == 0 and d["n_units"].iloc[0] == 0


def test_codes_run_west_to_east_then_north_to_south() -> None:
    comm = gpd.GeoDataFrame(
        {"code": ["360722001001"]}, geometry=[shapely.box(X0, Y0, X0 + 800, Y0 + 800)], crs=CRS
    )
    xs, ys = np.meshgrid(np.arange(4) * 200 + X0 + 100, np.arange(4) * 200 + Y0 + 100)
    units = gpd.GeoDataFrame(
        {"households": [100] * 16, "population": [1] * 16},
        geometry=gpd.points_from_xy(xs.ravel(), ys.ravel()),
        crs=CRS,
    )
    grids = make_grids(units, within=comm, max_households=400)
    assert len(grids) == 4
    pts = grids.geometry.representative_point()
    order = grids.assign(x=pts.x, y=pts.y).sort_values("code")
    # first two codes are the northern row, west to east
    assert order["y"].iloc[0] > order["y"].iloc[2] and order["y"].iloc[1] > order["y"].iloc[3]
    assert order["x"].iloc[0] < order["x"].iloc[1] and order["x"].iloc[2] < order["x"].iloc[3]


def test_barrier_is_followed_when_units_allow() -> None:
    comm = gpd.GeoDataFrame(
        {"code": ["360722001001"]}, geometry=[shapely.box(X0, Y0, X0 + 1000, Y0 + 500)], crs=CRS
    )
    rng = np.random.default_rng(0)
    # 200 households each side of a street at x = X0 + 370 (not the middle)
    xs = np.concatenate([rng.uniform(X0 + 10, X0 + 360, 20), rng.uniform(X0 + 380, X0 + 990, 20)])
    ys = rng.uniform(Y0 + 10, Y0 + 490, 40)
    units = gpd.GeoDataFrame(
        {"households": [10] * 40, "population": [30] * 40},
        geometry=gpd.points_from_xy(xs, ys),
        crs=CRS,
    )
    street = gpd.GeoSeries(
        [shapely.LineString([(X0 + 370, Y0 - 5), (X0 + 370, Y0 + 505)])], crs=CRS
    )
    grids = make_grids(units, within=comm, max_households=250, barriers=street)
    assert len(grids) == 2
    line = street.iloc[0]
    for geom in grids.geometry:
        # no grid crosses the street: its interior does not meet the line
        assert not shapely.intersects(shapely.buffer(geom, -0.01), line)
    without = make_grids(units, within=comm, max_households=250)
    assert any(shapely.intersects(shapely.buffer(g, -0.01), line) for g in without.geometry)


def test_exclusive_areas_become_their_own_grids() -> None:
    t = make_territory(2, n_units=80)
    school = gpd.GeoDataFrame(
        {"code": ["S1"], "kind": ["school"]},
        geometry=[shapely.box(X0 + 1100, Y0 + 1100, X0 + 1400, Y0 + 1400)],
        crs=CRS,
    )
    grids = make_grids(t["units"], within=t["communities"], rules=RULES, exclusive=school)
    ex = grids[grids["kind"] == "exclusive"]
    assert len(ex) == 1
    assert ex.geometry.iloc[0].symmetric_difference(school.geometry.iloc[0]).area < 1e-6
    inside = t["units"].within(school.geometry.iloc[0])
    assert ex["n_units"].iloc[0] == int(inside.sum())
    assert (
        grids.loc[grids["kind"] != "exclusive"].geometry.intersection(school.geometry.iloc[0]).area
        < 1e-3
    ).all()
    assert grids["households"].sum() == t["units"]["households"].sum()


def test_rules_apply_per_community_type() -> None:
    t = make_territory(4, n_units=150, oversize=0)
    grids = make_grids(
        t["units"],
        within=t["communities"],
        rules={"urban": {"max_households": 1000}, "rural": {"max_households": 100}},
    )
    kinds = t["communities"].set_index("code")["type"]
    g = grids.assign(type=grids["community_code"].map(kinds))
    assert (g.loc[g["type"] == "rural", "households"] <= 100).all()
    assert (g.loc[g["type"] == "urban", "households"] <= 1000).all()


def test_units_in_another_crs_are_reprojected() -> None:
    t = make_territory(5, n_units=60)
    a = make_grids(t["units"], within=t["communities"], rules=RULES)
    b = make_grids(t["units"].to_crs("EPSG:4490"), within=t["communities"], rules=RULES)
    assert len(a) == len(b)
    assert a["households"].sum() == b["households"].sum()


def test_polygon_units_use_their_representative_point() -> None:
    t = make_territory(6, n_units=40, oversize=0)
    units = t["units"].copy()
    units["geometry"] = units.buffer(2.0)
    grids = make_grids(units, within=t["communities"], rules=RULES)
    assert grids["households"].sum() == units["households"].sum()


# ---- errors -------------------------------------------------------------------------------


@pytest.fixture
def territory() -> dict:
    return make_territory(0, n_units=30)


def test_missing_crs(territory) -> None:
    with pytest.raises(CRSError, match="units has no CRS"):
        make_grids(
            territory["units"].set_crs(None, allow_override=True), within=territory["communities"]
        )


def test_missing_count_column(territory) -> None:
    with pytest.raises(InputError, match=r"units is missing column\(s\) \['hh'\] \(households="):
        make_grids(territory["units"], within=territory["communities"], households="hh")


def test_negative_counts_named_by_row(territory) -> None:
    u = territory["units"].copy()
    u.loc[3, "households"] = -2
    with pytest.raises(
        InputError, match=r"units column 'households' must hold counts ≥ 0.*1 bad at rows \['3'\]"
    ):
        make_grids(u, within=territory["communities"])


def test_units_outside_every_community(territory) -> None:
    u = territory["units"].copy()
    u.loc[5, "geometry"] = shapely.Point(X0 - 500, Y0 - 500)
    with pytest.raises(InputError, match=r"1 units lie outside every community \(rows \['5'\]\)"):
        make_grids(u, within=territory["communities"])


def test_invalid_geometry(territory) -> None:
    c = territory["communities"].copy()
    c.loc[2, "geometry"] = shapely.Polygon(
        [(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)]
    )
    with pytest.raises(
        InputError, match=r"within has 1 invalid geometry for code \['360722001003'\] \(Self-inter"
    ):
        make_grids(territory["units"], within=c)


def test_duplicate_community_codes(territory) -> None:
    c = territory["communities"].copy()
    c.loc[1, "code"] = c.loc[0, "code"]
    with pytest.raises(InputError, match=r"within has duplicate code \['360722001001'\] \(2 "):
        make_grids(territory["units"], within=c)


@pytest.mark.parametrize("cap", [0, -5, "500"])
def test_bad_ceiling_is_infeasible(territory, cap) -> None:
    with pytest.raises(InfeasibleError, match="a ceiling must be a number > 0"):
        make_grids(territory["units"], within=territory["communities"], max_households=cap)


def test_unknown_rule_key(territory) -> None:
    with pytest.raises(InputError, match=r"rule 'urban' has unknown key\(s\) \['max_people'\]"):
        make_grids(
            territory["units"], within=territory["communities"], rules={"urban": {"max_people": 3}}
        )


def test_rules_need_the_type_column(territory) -> None:
    with pytest.raises(InputError, match="within has no column 'kind'"):
        make_grids(
            territory["units"], within=territory["communities"], rules=RULES, rule_key="kind"
        )


def test_population_ceiling_needs_the_column(territory) -> None:
    with pytest.raises(InputError, match="population ceiling is set but population=None"):
        make_grids(
            territory["units"], within=territory["communities"], population=None, max_population=100
        )


def test_bad_seed(territory) -> None:
    with pytest.raises(InputError, match="seed was 'x'"):
        make_grids(territory["units"], within=territory["communities"], seed="x")


def test_overlapping_blocks_are_named(territory) -> None:
    t = to_blocks(territory, gaps=False)
    units = t["units"].copy()
    units.loc[units.index[1], "geometry"] = shapely.buffer(units.geometry.iloc[0], 30.0)
    with pytest.raises(InputError, match=r"unit polygons at rows \d+ and \d+ overlap"):
        make_grids(units, within=t["communities"], rules=RULES, tessellate=False)


def test_tessellate_false_needs_polygons(territory) -> None:
    with pytest.raises(InputError, match="tessellate=False uses the units' polygons"):
        make_grids(territory["units"], within=territory["communities"], tessellate=False)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_workers(territory, workers) -> None:
    with pytest.raises(InputError, match="workers must be a positive integer"):
        make_grids(territory["units"], within=territory["communities"], workers=workers)


def test_input_not_mutated(territory) -> None:
    before = territory["units"].copy()
    make_grids(territory["units"], within=territory["communities"])
    assert_geodataframe_equal(before, territory["units"])
    assert isinstance(territory["units"], pd.DataFrame)
