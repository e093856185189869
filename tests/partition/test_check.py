"""check_grids, check_alignment and align_zones on hand-built box layouts and by hypothesis."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.errors import CRSError, InputError
from gridgeo.partition import check_grids
from gridgeo.partition.align import align_zones, check_alignment

CRS = "EPSG:4547"
X0, Y0 = 600_000.0, 2_800_000.0
COMM = "360722001001"


def box(i: float, j: float, w: float = 1, h: float = 1, s: float = 100.0) -> shapely.Polygon:
    return shapely.box(X0 + i * s, Y0 + j * s, X0 + (i + w) * s, Y0 + (j + h) * s)


def tiling(nx: int, ny: int = 1, hh: int = 100) -> gpd.GeoDataFrame:
    cells = [box(i, j) for j in range(ny) for i in range(nx)]
    return gpd.GeoDataFrame(
        {
            "code": [f"{COMM}{k + 1:03d}" for k in range(len(cells))],
            "community_code": COMM,
            "households": hh,
            "population": hh * 3,
        },
        geometry=cells,
        crs=CRS,
    )


def community(nx: int, ny: int = 1, kind: str = "urban") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": [COMM], "type": [kind]}, geometry=[box(0, 0, nx, ny)], crs=CRS)


def kinds(report) -> list[str]:
    return sorted(report.problems["problem"])


def test_clean_tiling_is_ok() -> None:
    report = check_grids(tiling(3, 2), within=community(3, 2))
    assert report.ok and kinds(report) == []
    assert "ok" in repr(report)
    assert report.summary()["count"].sum() == 0


def test_gap_is_found_with_its_place() -> None:
    g = tiling(3).drop(index=1)
    report = check_grids(g, within=community(3))
    assert not report.ok and kinds(report) == ["gap"]
    row = report.problems.iloc[0]
    assert row["code"] == COMM and row.geometry.equals(box(1, 0))


def test_overlap_names_both_grids() -> None:
    g = tiling(3)
    g.loc[0, "geometry"] = box(0, 0, 1.5)
    report = check_grids(g, within=community(3))
    assert kinds(report) == ["overlap"]
    assert report.problems["code"].iloc[0] == f"{COMM}001,{COMM}002"
    assert report.problems.geometry.iloc[0].area == pytest.approx(50 * 100)


def test_not_nested_and_unknown_community() -> None:
    g = tiling(3)
    g.loc[2, "geometry"] = box(2, 0, 1.5)
    g.loc[1, "community_code"] = "360722001009"
    g.loc[1, "code"] = "360722001009002"
    report = check_grids(g, within=community(3))
    assert "not_nested" in kinds(report)
    details = " ".join(report.problems["detail"])
    assert "360722001009 is not in within" in details
    assert f"of grid {COMM}003 lies outside its community" in details


def test_multipart_is_a_fault_unless_flagged() -> None:
    g = tiling(3)
    g.loc[0, "geometry"] = shapely.MultiPolygon([box(0, 0), box(2, 0, 0.5)])
    g.loc[2, "geometry"] = box(2.5, 0, 0.5)
    assert "multipart" in kinds(check_grids(g))
    g["multipart"] = [True, False, False]
    report = check_grids(g)
    assert "multipart_flagged" in kinds(report) and report.ok


def test_ceilings_follow_the_rules_and_single_units_are_oversize() -> None:
    g = tiling(2, hh=250)
    comm = community(2, kind="rural")
    rules = {"rural": {"max_households": 200}}
    units = gpd.GeoDataFrame(
        {"households": [250, 100, 150], "population": [750, 300, 450]},
        geometry=[
            box(0, 0).centroid,
            shapely.Point(X0 + 120, Y0 + 50),
            shapely.Point(X0 + 180, Y0 + 50),
        ],
        crs=CRS,
    )
    report = check_grids(g, within=comm, units=units, rules=rules)
    assert kinds(report) == ["over_ceiling", "oversize"]
    assert report.problems.set_index("problem").loc["over_ceiling", "code"] == f"{COMM}002"
    assert not report.ok
    assert check_grids(g, within=comm, rules={"rural": {"max_households": 250}}).ok


def test_units_unassigned_and_counts_mismatched() -> None:
    g = tiling(2)
    units = gpd.GeoDataFrame(
        {"households": [100, 60, 5], "population": [300, 180, 15]},
        geometry=[box(0, 0).centroid, box(1, 0).centroid, shapely.Point(X0 - 50, Y0)],
        crs=CRS,
    )
    report = check_grids(g, units=units)
    assert kinds(report) == ["count_mismatch", "unassigned_unit"]
    assert "says 100 households / 300 people, its units sum to 60 / 180" in " ".join(
        report.problems["detail"]
    )


def test_codes_duplicate_and_malformed() -> None:
    g = tiling(3)
    g.loc[1, "code"] = g.loc[0, "code"]
    g.loc[2, "code"] = "36072200100103"
    report = check_grids(g)
    assert kinds(report) == ["duplicate_code", "duplicate_code", "malformed_code"]


def test_invalid_geometry() -> None:
    g = tiling(2)
    g.loc[1, "geometry"] = shapely.Polygon(
        [(X0 + 100, Y0), (X0 + 200, Y0 + 100), (X0 + 200, Y0), (X0 + 100, Y0 + 100)]
    )
    assert "invalid_geometry" in kinds(check_grids(g))


def test_slivers_are_ignored() -> None:
    g = tiling(2)
    g.loc[1, "geometry"] = shapely.box(X0 + 100.0005, Y0, X0 + 200, Y0 + 100)  # 0.5 mm seam
    assert check_grids(g, within=community(2)).ok


def test_errors() -> None:
    g = tiling(2)
    with pytest.raises(CRSError, match="grids has no CRS"):
        check_grids(g.set_crs(None, allow_override=True))
    with pytest.raises(InputError, match=r"grids is missing column\(s\) \['community_code'\]"):
        check_grids(g.drop(columns="community_code"))
    with pytest.raises(InputError, match=r"within is missing column\(s\) \['code'\]"):
        check_grids(g, within=community(2).drop(columns="code"))


@settings(max_examples=25, deadline=None)
@given(nx=st.integers(2, 6), ny=st.integers(1, 4), data=st.data())
def test_random_tilings_ok_and_perturbations_found(nx: int, ny: int, data) -> None:
    g = tiling(nx, ny)
    comm = community(nx, ny)
    assert check_grids(g, within=comm).ok
    k = data.draw(st.integers(0, len(g) - 1))
    dropped = check_grids(g.drop(index=k), within=comm)
    assert kinds(dropped) == ["gap"]
    assert dropped.problems.geometry.iloc[0].equals(g.geometry.iloc[k])
    grown = g.copy()
    grown.loc[k, "geometry"] = shapely.buffer(g.geometry.iloc[k], 10, join_style="mitre")
    report = check_grids(grown, within=comm)
    assert "overlap" in kinds(report)
    assert all(g.loc[k, "code"] in c for c in report.problems.query("problem == 'overlap'")["code"])


# ---- alignment ----------------------------------------------------------------------------


def zones_from(
    groups: list[list[int]], g: gpd.GeoDataFrame, dept: str = "消防"
) -> gpd.GeoDataFrame:
    geoms = [shapely.union_all(g.geometry.iloc[idx].values) for idx in groups]
    return gpd.GeoDataFrame(
        {"department": dept, "code": [f"Z{i}" for i in range(len(groups))]},
        geometry=geoms,
        crs=g.crs,
    )


def test_whole_grid_zones_are_aligned() -> None:
    g = tiling(4)
    assert check_alignment(zones_from([[0, 1], [2, 3]], g), g).empty


def test_split_uncovered_and_double() -> None:
    g = tiling(4)
    z = gpd.GeoDataFrame(
        {"department": ["消防", "消防", "交警"], "code": ["A", "B", "T"]},
        geometry=[box(0, 0, 1.5), box(1, 0, 2), box(0, 0, 4)],
        crs=CRS,
    )
    r = check_alignment(z, g)
    got = sorted(zip(r["department"], r["problem"], r["grid"].str[-3:]))
    assert ("消防", "split", "002") in got
    assert ("消防", "double", "002") in got
    assert ("消防", "uncovered", "004") in got
    assert not (r["department"] == "交警").any()


def test_alignment_errors() -> None:
    g = tiling(2)
    z = zones_from([[0, 1]], g)
    with pytest.raises(InputError, match=r"zones is missing column\(s\) \['department'\] \(to"):
        check_alignment(z.drop(columns="department"), g)
    with pytest.raises(InputError, match=r"grids is missing column\(s\) \['gid'\]"):
        align_zones(z, g, grid_key="gid")
    with pytest.raises(CRSError, match="zones has no CRS"):
        check_alignment(z.set_crs(None, allow_override=True), g)


@settings(max_examples=30, deadline=None)
@given(nx=st.integers(2, 7), cuts=st.lists(st.floats(0.05, 0.95), min_size=1, max_size=4))
def test_align_zones_always_aligned_and_keeps_every_zone(nx: int, cuts: list[float]) -> None:
    g = tiling(nx)
    edges = np.unique(np.concatenate([[0.0], np.sort(cuts) * nx, [float(nx)]]))
    zones = gpd.GeoDataFrame(
        {"department": "综治", "code": [f"Z{i}" for i in range(len(edges) - 1)]},
        geometry=[box(a, 0, b - a) for a, b in itertools.pairwise(edges)],
        crs=CRS,
    )
    out = align_zones(zones, g)
    assert out.index.equals(zones.index) and list(out["code"]) == list(zones["code"])
    kept = out[~out["no_grid"]]
    assert check_alignment(kept, g).empty
    members = [m for ms in out["members"] for m in ms]
    assert sorted(members) == sorted(g["code"])  # every grid in exactly one zone
