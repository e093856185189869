"""conform: hand-digitised boundaries built in Gauss–Krüger metres, read back as lon/lat.

Every messy case is drawn in CGCS2000 GK zone 38 without zone number
(EPSG:4547, where 114.9°E lies), the way the natural-resources bureau draws
it, and handed to :func:`conform` in EPSG:4490 as :func:`read_layer` returns
it. Expected areas come from the drawing (e.g. a 0.3 m × 100 m overlap), not
from conform.
"""

from __future__ import annotations

import functools
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.errors import InputError, ValidationError
from gridgeo.io import conform, validate_workspace
from gridgeo.io.conform import REPORT_COLUMNS

GK = "EPSG:4547"
LONLAT = "EPSG:4490"


@functools.cache
def _origin() -> tuple[float, float]:
    """GK metres of 114.9°E 25.3°N, rounded to the metre."""
    x, y = pyproj.Transformer.from_crs(LONLAT, GK, always_xy=True).transform(114.9, 25.3)
    return float(round(x)), float(round(y))


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A box in metres from the origin, in GK coordinates."""
    ox, oy = _origin()
    return shapely.box(ox + x0, oy + y0, ox + x1, oy + y1)


def poly(coords: list[tuple[float, float]]) -> shapely.Polygon:
    ox, oy = _origin()
    return shapely.Polygon([(ox + x, oy + y) for x, y in coords])


def layer(geoms: list[shapely.Geometry], codes: list[str], **columns: list) -> gpd.GeoDataFrame:
    """A layer drawn in GK, as read_layer hands it over (EPSG:4490 lon/lat)."""
    data = {"code": codes, **columns}
    return gpd.GeoDataFrame(data, geometry=geoms, crs=GK).to_crs(LONLAT)


def gk_area(geoms: gpd.GeoSeries | gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(geoms.to_crs(GK).area, dtype=float)


def rows_for(report: pd.DataFrame, layer_name: str, code: str) -> pd.DataFrame:
    return report[(report["layer"] == layer_name) & (report["code"] == code)]


def assert_clean(out: dict[str, gpd.GeoDataFrame], name: str) -> None:
    geoms = out[name].geometry.values
    assert shapely.is_valid(geoms).all(), shapely.is_valid_reason(geoms)
    assert shapely.coverage_is_valid(geoms), shapely.coverage_invalid_edges(geoms)
    assert shapely.coverage_is_valid(out[name].to_crs(GK).geometry.values)


def assert_accounted(before: gpd.GeoDataFrame, out: gpd.GeoDataFrame, report, name: str):
    """Each feature's area = its input area + its reported changes (1 cm² + 1 ppm slack)."""
    a_in, a_out = gk_area(before), gk_area(out)
    for k, code in enumerate(before["code"]):
        change = rows_for(report, name, code)["area_m2"].sum()
        assert a_out[k] == pytest.approx(a_in[k] + change, abs=1e-2 + 1e-6 * a_in[k]), code
        drawn = shapely.make_valid(before.to_crs(GK).geometry.values[k])
        moved = shapely.area(
            shapely.symmetric_difference(out.to_crs(GK).geometry.values[k], drawn)
        )
        if moved > 1e-2:  # any change of geometry is in the report, not just net area
            assert len(rows_for(report, name, code)), (code, moved)


# --- overlaps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "winner"),
    [(["360722002", "360722001"], "360722001"), (["360722001", "360722002"], "360722001")],
)
def test_overlap_goes_to_the_code_that_sorts_first(codes, winner):
    towns = layer([box(0, 0, 100.3, 100), box(100, 0, 200, 100)], codes, name=["东镇", "西镇"])
    out, report = conform({"towns": towns})
    assert_clean(out, "towns")
    loser = next(c for c in codes if c != winner)
    row = rows_for(report, "towns", loser)
    assert row["problem"].tolist() == [f"overlap with {winner}"]
    assert row["area_m2"].iloc[0] == pytest.approx(-30.0, rel=1e-3)
    assert rows_for(report, "towns", winner).empty
    areas = dict(zip(codes, gk_area(out["towns"])))
    drawn = dict(zip(codes, gk_area(towns)))
    assert areas[winner] == pytest.approx(drawn[winner], abs=1e-3)
    assert areas[loser] == pytest.approx(drawn[loser] - 30.0, rel=1e-5)
    assert_accounted(towns, out["towns"], report, "towns")


def test_overlap_among_three_each_given_once():
    beats = layer(
        [box(0, 0, 100.4, 100), box(100, 0, 200, 100), box(50, 99.8, 150, 200)],
        ["J1", "J2", "J3"],
        name=["一区", "二区", "三区"],
    )
    out, report = conform({"beats": beats})
    assert_clean(out, "beats")
    j2 = rows_for(report, "beats", "J2").set_index("problem")["area_m2"]
    j3 = rows_for(report, "beats", "J3").set_index("problem")["area_m2"]
    assert j2["overlap with J1"] == pytest.approx(-40.0, rel=1e-3)  # 0.4 × 100
    assert j3["overlap with J1"] == pytest.approx(-50.4 * 0.2, rel=1e-3)
    assert j3["overlap with J2"] == pytest.approx(-49.6 * 0.2, rel=1e-3)
    assert_accounted(beats, out["beats"], report, "beats")


def test_duplicate_polygon_keeps_its_row_with_an_empty_geometry():
    beats = layer([box(0, 0, 100, 100), box(0, 0, 100, 100)], ["J2", "J1"], name=["二", "一"])
    out, report = conform({"beats": beats})
    assert len(out["beats"]) == 2
    assert out["beats"].geometry.is_empty.tolist() == [True, False]
    problems = rows_for(report, "beats", "J2")["problem"].tolist()
    assert "covered entirely by other polygons" in problems
    assert_accounted(beats, out["beats"], report, "beats")


# --- gaps -----------------------------------------------------------------------


@pytest.mark.parametrize(("width", "absorbed"), [(0.4, True), (0.9, True), (2.0, False)])
def test_gap_absorbed_only_when_thinner_than_the_tolerance(width, absorbed):
    beats = layer(
        [box(0, 0, 100, 100), box(100 + width, 0, 200, 100)], ["J1", "J2"], name=["一", "二"]
    )
    boundary = layer([box(0, 0, 200, 100)], ["360722"])
    out, report = conform({"beats": beats, "boundary": boundary}, tolerance_m=1.0)
    assert_clean(out, "beats")
    gained = report[report["area_m2"] > 0]
    lost = report[report["area_m2"] < 0]
    union_in = shapely.union_all(beats.to_crs(GK).geometry.values).area
    union_out = shapely.union_all(out["beats"].to_crs(GK).geometry.values).area
    # Millimetre slivers along the boundary (straight in GK, not in lon/lat) come and go.
    assert lost["area_m2"].sum() > -0.1
    if absorbed:
        assert gained["problem"].str.startswith("gap").all()
        assert gained["area_m2"].sum() == pytest.approx(width * 100, abs=0.1)
    else:
        assert gained["area_m2"].sum() < 0.1
    assert union_out == pytest.approx(
        union_in + report["area_m2"].sum(), abs=1e-2
    )
    assert_accounted(beats, out["beats"], report, "beats")


@pytest.mark.parametrize(("width", "absorbed"), [(0.4, True), (2.0, False)])
def test_without_boundary_only_enclosed_gaps_are_absorbed(width, absorbed):
    # Four boxes around a cross-shaped gap; the arms reach the outside too.
    w = width
    beats = layer(
        [box(0, 0, 100, 100), box(100 + w, 0, 200, 100), box(0, 100 + w, 100, 200),
         box(100 + w, 100 + w, 200, 200), box(-50, -50, 250, 0), box(-50, 200 + w, 250, 250),
         box(-50, 0, 0, 200 + w), box(200 + w, 0, 250, 200 + w)],
        [f"J{k}" for k in range(1, 9)],
    )
    out, report = conform({"beats": beats})
    assert_clean(out, "beats")
    gaps = report[report["problem"].str.startswith("gap")]
    if absorbed:
        holes = 300 * 300 - sum(gk_area(beats))  # the drawing's boxes do not overlap
        assert gaps["area_m2"].sum() == pytest.approx(holes, rel=1e-3)
    else:
        assert gaps.empty
    assert_accounted(beats, out["beats"], report, "beats")


def test_gap_goes_to_the_neighbour_with_the_longest_border():
    # A 0.5 m slit: J2 borders it along 100 m, J1 along 60 m, J4 along 40 m.
    beats = layer(
        [box(0, 0, 99.5, 60), box(100, 0, 200, 100), box(0, 100, 200, 150),
         box(0, 60, 99.5, 100)],
        ["J1", "J2", "J3", "J4"],
    )
    boundary = layer([box(0, 0, 200, 150)], ["360722"])
    out, report = conform({"beats": beats, "boundary": boundary})
    assert_clean(out, "beats")
    gaps = report[report["problem"].str.startswith("gap")]
    assert gaps["code"].tolist() == ["J2"]
    assert gaps["area_m2"].iloc[0] == pytest.approx(50.0, rel=1e-3)
    assert_accounted(beats, out["beats"], report, "beats")


# --- repairs --------------------------------------------------------------------


def test_bow_tie_keeps_both_triangles():
    bow = poly([(0, 0), (100, 100), (100, 0), (0, 100)])
    towns = layer([bow, box(100, 0, 200, 100)], ["360722001", "360722002"], name=["甲", "乙"])
    out, report = conform({"towns": towns})
    assert_clean(out, "towns")
    rows = rows_for(report, "towns", "360722001")
    repair = rows[rows["problem"].str.startswith("invalid geometry")]
    assert len(repair) == 1
    assert "Self-intersection" in repair["problem"].iloc[0]
    # A bow-tie's signed area is 0; its two triangles hold 2 × 2500 m².
    assert repair["area_m2"].iloc[0] == pytest.approx(5000.0, rel=1e-6)
    assert gk_area(out["towns"])[0] == pytest.approx(5000.0, rel=1e-6)
    assert len(shapely.get_parts(out["towns"].geometry.iloc[0])) == 2
    assert_accounted(towns, out["towns"], report, "towns")


def test_self_intersecting_ring_keeps_every_part():
    # The ring runs round a 100 m square, back in along y=40, round a 20 m loop that it
    # crosses (40..60 × 40..60, wound twice), and out along y=20: the square loses only
    # the 40 × 20 m notch between y=20 and y=40 that opens to its west side.
    ring = poly([(0, 0), (100, 0), (100, 100), (0, 100), (0, 40), (60, 40), (60, 60),
                 (40, 60), (40, 20), (0, 20)])
    towns = layer([ring], ["360722001"], name=["甲"])
    assert not towns.geometry.is_valid.iloc[0]
    out, report = conform({"towns": towns})
    assert_clean(out, "towns")
    assert gk_area(out["towns"])[0] == pytest.approx(10000 - 40 * 20, rel=1e-6)
    for method in ("linework", "structure"):
        made = shapely.make_valid(towns.to_crs(GK).geometry.iloc[0], method=method)
        assert gk_area(out["towns"])[0] >= shapely.area(made) - 1e-3
    assert_accounted(towns, out["towns"], report, "towns")


def test_empty_geometry_row_is_kept_and_reported():
    beats = gpd.GeoDataFrame(
        {"code": ["J1", "J2"]}, geometry=[box(0, 0, 100, 100), None], crs=GK
    ).to_crs(LONLAT)
    out, report = conform({"beats": beats})
    assert len(out["beats"]) == 2
    assert rows_for(report, "beats", "J2")["problem"].tolist() == ["no geometry"]


# --- clipping and nesting -------------------------------------------------------


def test_clipped_to_the_boundary():
    beats = layer([box(0, 0, 100, 100.5), box(100, 0, 200, 100)], ["J1", "J2"])
    boundary = layer([box(0, 0, 200, 100)], ["360722"])
    out, report = conform({"beats": beats, "boundary": boundary})
    assert_clean(out, "beats")
    row = rows_for(report, "beats", "J1")
    assert row["problem"].tolist() == ["outside the boundary"]
    assert row["area_m2"].iloc[0] == pytest.approx(-50.0, rel=1e-3)
    outside = shapely.difference(
        shapely.union_all(out["beats"].to_crs(GK).geometry.values), box(0, 0, 200, 100)
    )
    assert outside.area < 1e-3
    assert_accounted(beats, out["beats"], report, "beats")


def _towns_and_communities():
    towns = layer(
        [box(0, 0, 200, 100), box(200, 0, 400, 100)],
        ["360722001", "360722002"],
        name=["嘉定镇", "大塘埠镇"],
    )
    communities = layer(
        [box(0, 0, 100, 100), box(100, 0, 200.3, 100), box(200, 0, 300, 100),
         box(300, 0, 400, 100)],
        ["360722001001", "360722001002", "360722002001", "360722002002"],
        town_code=["360722001", "360722001", "360722002", "360722002"],
        name=["东门社区", "西门社区", "大塘村", "新田村"],
        type=["urban", "urban", "rural", "rural"],
    )
    return towns, communities


def test_communities_nested_in_their_town():
    towns, communities = _towns_and_communities()
    out, report = conform({"towns": towns, "communities": communities})
    assert_clean(out, "communities")
    rows = rows_for(report, "communities", "360722001002").set_index("problem")
    assert "its town 360722001" in rows.loc["overlap with 360722002001", "action"]
    assert rows.loc["overlap with 360722002001", "area_m2"] == pytest.approx(-30.0, rel=1e-3)
    assert rows["area_m2"].sum() == pytest.approx(-30.0, abs=0.1)
    town_of = dict(zip(out["towns"]["code"], out["towns"].to_crs(GK).geometry))
    for code, geom in zip(out["communities"]["town_code"], out["communities"].to_crs(GK).geometry):
        assert shapely.difference(geom, town_of[code]).area < 1e-3
    assert_accounted(communities, out["communities"], report, "communities")
    validate_workspace(out, layers=["towns", "communities"])


def test_towns_built_from_12_digit_community_codes_when_missing():
    _, communities = _towns_and_communities()
    communities = communities.drop(columns="town_code")
    out, report = conform({"communities": communities})
    assert list(out["communities"]["town_code"]) == [c[:9] for c in communities["code"]]
    derived = report[report["problem"] == "no town_code"]
    assert sorted(derived["code"]) == sorted(communities["code"])
    assert sorted(out["towns"]["code"]) == ["360722001", "360722002"]
    assert out["towns"]["name"].isna().all()
    built = report[(report["layer"] == "towns")]
    assert built["action"].str.startswith("built as the union").all()
    comm_area = pd.Series(gk_area(out["communities"]), index=out["communities"]["town_code"])
    for code, area in zip(out["towns"]["code"], gk_area(out["towns"])):
        assert area == pytest.approx(comm_area[code].sum(), rel=1e-9)
        assert rows_for(report, "towns", code)["area_m2"].iloc[0] == pytest.approx(area, rel=1e-6)
    assert_clean(out, "towns")
    assert_clean(out, "communities")
    validate_workspace(out, layers=["towns", "communities"])


def test_missing_town_added_beside_the_existing_ones():
    towns, communities = _towns_and_communities()
    communities["town_code"] = [None, "360722001", None, None]
    towns = towns.iloc[:1]
    out, report = conform({"towns": towns, "communities": communities})
    assert list(out["towns"]["code"]) == ["360722001", "360722002"]
    assert out["towns"]["name"].iloc[0] == "嘉定镇"
    assert list(out["communities"]["town_code"]) == [
        "360722001", "360722001", "360722002", "360722002"
    ]
    # 360722001002 reached 0.3 m into the land of the missing town: clipped to its own.
    row = rows_for(report, "communities", "360722001002")
    assert row["area_m2"].sum() == pytest.approx(-30.0, rel=1e-3)
    assert_clean(out, "towns")
    assert_clean(out, "communities")
    validate_workspace(out, layers=["towns", "communities"])


def test_codes_names_and_rows_unchanged_and_input_not_mutated():
    towns, communities = _towns_and_communities()
    beats = layer([box(0, 0, 200, 100), box(200, 0, 400, 100)], ["J1", "J2"], name=["甲", "乙"])
    points = gpd.GeoDataFrame(
        {"households": [3], "population": [7]}, geometry=[shapely.Point(114.9, 25.3)], crs=LONLAT
    )
    given_layers = {"towns": towns, "communities": communities, "beats": beats,
                    "buildings": points}
    copies = {k: v.copy() for k, v in given_layers.items()}
    out, _ = conform(given_layers)
    for name, gdf in copies.items():
        pd.testing.assert_frame_equal(given_layers[name], gdf)  # not mutated
        assert list(out[name].index) == list(gdf.index)
        assert out[name].crs == gdf.crs
        for col in gdf.columns.drop(gdf.geometry.name):
            assert [str(v).encode() for v in out[name][col]] == [
                str(v).encode() for v in gdf[col]
            ]
    assert out["buildings"].geometry.equals(points.geometry)
    # Untouched features keep their very vertices.
    assert out["beats"].geom_equals_exact(beats, tolerance=0).all()


def test_report_columns_and_clean_input_gives_an_empty_report():
    towns, _ = _towns_and_communities()
    out, report = conform({"towns": towns})
    assert isinstance(report, pd.DataFrame)
    assert list(report.columns)[:5] == list(REPORT_COLUMNS)
    assert report.empty
    assert out["towns"].geom_equals_exact(towns, tolerance=0).all()


def test_zones_are_one_coverage_per_department():
    zones = layer(
        [box(0, 0, 100, 100), box(0, 0, 100, 100), box(99.7, 0, 200, 100)],
        ["Z1", "Z1", "Z2"],
        department=["消防", "住管", "消防"],
        name=["一", "一", "二"],
    )
    out, report = conform({"zones": zones})
    # The two departments' Z1 overlap each other legitimately: nothing reported for them.
    assert report["problem"].tolist() == ["overlap with Z1"]
    assert report["code"].tolist() == ["Z2"]
    fire = out["zones"][out["zones"]["department"] == "消防"]
    assert shapely.coverage_is_valid(fire.geometry.values)


# --- bad input ------------------------------------------------------------------


@pytest.mark.parametrize("tolerance", [0, -1.0, math.nan, math.inf, "1", True])
def test_bad_tolerance(tolerance):
    towns, _ = _towns_and_communities()
    with pytest.raises(InputError, match="tolerance_m must be a"):
        conform({"towns": towns}, tolerance_m=tolerance)


def test_no_crs():
    towns, _ = _towns_and_communities()
    with pytest.raises(ValidationError, match=r"layer 'towns': no CRS"):
        conform({"towns": towns.set_crs(None, allow_override=True)})


def test_missing_code_column():
    towns, _ = _towns_and_communities()
    with pytest.raises(ValidationError, match=r"layer 'towns': missing column 'code'"):
        conform({"towns": towns.drop(columns="code")})


def test_non_polygon_geometry():
    towns, _ = _towns_and_communities()
    towns.loc[1, "geometry"] = shapely.Point(114.9, 25.3)
    with pytest.raises(ValidationError, match=r"expected polygon geometries, found \['Point'\] "
                                              r"at rows 1"):
        conform({"towns": towns})


def test_every_problem_in_one_error():
    towns, communities = _towns_and_communities()
    with pytest.raises(ValidationError, match=r"2 problems:\n.*'towns': no CRS.*\n.*"
                                              r"'communities': missing column 'code'"):
        conform({"towns": towns.set_crs(None, allow_override=True),
                 "communities": communities.drop(columns="code")})


def test_not_a_mapping():
    towns, _ = _towns_and_communities()
    with pytest.raises(InputError, match="layers must be a mapping"):
        conform([towns])


def test_not_a_geodataframe():
    with pytest.raises(ValidationError, match="layer 'towns': expected a GeoDataFrame"):
        conform({"towns": pd.DataFrame({"code": ["360722001"]})})


# --- invariants -----------------------------------------------------------------


@st.composite
def messy_grid(draw):
    """A grid of 100 m boxes whose every edge is jittered by up to ±0.6 m, box by box,
    plus one box grown by up to 30 m over its neighbours."""
    nx, ny = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    jitter = st.floats(-0.6, 0.6, allow_nan=False)
    geoms = []
    for i in range(nx):
        for j in range(ny):
            geoms.append(
                box(
                    100 * i + draw(jitter),
                    100 * j + draw(jitter),
                    100 * (i + 1) + draw(jitter),
                    100 * (j + 1) + draw(jitter),
                )
            )
    k = draw(st.integers(0, len(geoms) - 1))
    grow = draw(st.floats(0, 30, allow_nan=False))
    geoms[k] = shapely.buffer(geoms[k], grow, join_style="mitre") if grow > 0 else geoms[k]
    codes = [f"360722001{n:03d}" for n in draw(st.permutations(range(1, len(geoms) + 1)))]
    return layer(geoms, codes, name=[f"社区{c[-3:]}" for c in codes])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(communities=messy_grid(), tolerance=st.sampled_from([0.5, 1.0, 2.0]))
def test_conform_loses_no_area_beyond_the_report_and_gives_a_coverage(communities, tolerance):
    out, report = conform({"communities": communities}, tolerance_m=tolerance)
    assert_clean(out, "communities")
    assert list(out["communities"]["code"]) == list(communities["code"])
    assert_accounted(communities, out["communities"], report, "communities")
    union_in = shapely.union_all(communities.to_crs(GK).geometry.values).area
    union_out = shapely.union_all(out["communities"].to_crs(GK).geometry.values).area
    rows = report[report["layer"] == "communities"]
    gained = rows.loc[rows["area_m2"] > 0, "area_m2"].sum()
    # No boundary: nothing is clipped, so the covered land only grows, by the gaps filled,
    # give or take GEOS snapping vertices by up to tolerance / 1000 along the edges.
    snapping = tolerance * 1e-3 * sum(communities.to_crs(GK).length)
    assert union_out >= union_in - snapping
    assert union_out == pytest.approx(union_in + gained, abs=snapping + 1e-2)
    assert sum(gk_area(out["communities"])) == pytest.approx(union_out, rel=1e-9)
