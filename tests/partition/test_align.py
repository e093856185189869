"""align_zones output always passes check_alignment; realign_departments re-aligns every layer.

The layouts are drawn the way county data are: grids whose shared edges were
digitised twice (so neighbours leave micro gaps and overlaps), department zones
that cut across grids (Voronoi cells of random seeds), and layers in CGCS2000
degrees as well as metres.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gridgeo.datasets import demo_county
from gridgeo.errors import InputError, ValidationError
from gridgeo.partition.align import align_zones, check_alignment, realign_departments

CRS = "EPSG:4547"
X0, Y0, W = 600_000.0, 2_800_000.0, 2_000.0
COUNTY = shapely.box(X0, Y0, X0 + W, Y0 + W)


def voronoi(rng: np.random.Generator, n: int) -> list[shapely.Geometry]:
    """``n`` Voronoi cells of random seeds, clipped to the county (they tile it)."""
    seeds = shapely.multipoints(rng.uniform((X0, Y0), (X0 + W, Y0 + W), (n, 2)))
    cells = shapely.voronoi_polygons(seeds, extend_to=COUNTY).geoms
    return [shapely.intersection(c, COUNTY) for c in cells]


def digitised_grids(
    seed: int, n: int, *, noise: float = 1e-6, crs: str = CRS
) -> gpd.GeoDataFrame:
    """Grids tiling the county, each ring digitised on its own with ``noise`` metres of jitter.

    Shared edges are vertex-dense (every 50 m) and do not coincide exactly: the
    layer has the micro gaps and overlaps of hand-drawn data.
    """
    rng = np.random.default_rng(seed)
    geoms = []
    for cell in voronoi(rng, n):
        xy = np.asarray(shapely.segmentize(cell, 50).exterior.coords)
        xy = xy + rng.normal(0, noise, xy.shape)
        xy[-1] = xy[0]
        geoms.append(shapely.Polygon(xy))
    grids = gpd.GeoDataFrame({"code": [f"G{i:03d}" for i in range(n)]}, geometry=geoms, crs=CRS)
    return grids.to_crs(crs)


def voronoi_zones(
    seed: int, counts: dict[str, int], *, gaps: int = 0, crs: str = CRS
) -> gpd.GeoDataFrame:
    """Zones of several departments, each tiling the county but for ``gaps`` cells left out."""
    rng = np.random.default_rng(seed)
    frames = []
    for dept, n in counts.items():
        cells = voronoi(rng, n + min(gaps, n))[:n]
        frames.append(
            gpd.GeoDataFrame(
                {"department": dept, "code": [f"{dept}{i}" for i in range(n)]},
                geometry=cells,
                crs=CRS,
            )
        )
    return pd.concat(frames, ignore_index=True).to_crs(crs)


def assert_aligned(aligned: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, **kw: object) -> None:
    """The invariant: no problem but the empty zones, and those are the flagged ones."""
    report = check_alignment(aligned, grids, **kw)
    assert set(report["problem"]) <= {"empty"}, report.drop(columns="geometry")
    assert sorted(report["zone"]) == sorted(aligned.loc[aligned["no_grid"], "code"])
    assert aligned.loc[aligned["no_grid"]].geometry.is_empty.all()


def members_uncovered(aligned: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> list[tuple]:
    """Grids listed as members of a zone yet reported ``uncovered`` for that department."""
    report = check_alignment(aligned, grids)
    listed = {(d, m) for d, ms in zip(aligned["department"], aligned["members"]) for m in ms}
    return [
        (row.department, row.grid)
        for row in report.itertuples()
        if row.problem == "uncovered" and (row.department, row.grid) in listed
    ]


@pytest.mark.parametrize("crs", [CRS, "EPSG:4490"])
def test_member_grid_is_never_reported_uncovered(crs: str) -> None:
    """The county bug: a grid listed as a member of a beat, yet reported ``uncovered``.

    One zone covering the whole county takes every grid; its dissolved geometry
    runs within a micrometre of every grid edge, where a floating-point overlay
    lost whole grids (about one layout in twelve did before the fix).
    """
    bad = []
    for seed in range(25):
        grids = digitised_grids(seed, 12, crs=crs)
        assert grids.is_valid.all()
        zones = gpd.GeoDataFrame(
            {"department": ["公安"], "code": ["J01"]}, geometry=[COUNTY], crs=CRS
        ).to_crs(crs)
        aligned = align_zones(zones, grids)
        assert sorted(aligned["members"].iloc[0]) == sorted(grids["code"])
        bad += [(seed, *b) for b in members_uncovered(aligned, grids)]
    assert bad == []


@settings(max_examples=40, deadline=None)
@given(
    grid_seed=st.integers(0, 2**16),
    n_grids=st.integers(2, 30),
    noise=st.sampled_from([0.0, 1e-6, 1e-4, 1e-3]),
    zone_seed=st.integers(0, 2**16),
    counts=st.lists(st.integers(1, 8), min_size=1, max_size=3),
    gaps=st.integers(0, 2),
    crs=st.sampled_from([CRS, "EPSG:4490"]),
)
def test_aligned_zones_always_pass_check_alignment(
    grid_seed: int,
    n_grids: int,
    noise: float,
    zone_seed: int,
    counts: list[int],
    gaps: int,
    crs: str,
) -> None:
    grids = digitised_grids(grid_seed, n_grids, noise=noise, crs=crs)
    assume(grids.is_valid.all())
    zones = voronoi_zones(zone_seed, {f"D{k}": n for k, n in enumerate(counts)}, gaps=gaps, crs=crs)
    aligned = align_zones(zones, grids)
    assert aligned.index.equals(zones.index) and aligned.crs == zones.crs
    assert aligned["code"].tolist() == zones["code"].tolist()
    assert_aligned(aligned, grids)
    for dept, mine in aligned.groupby("department"):
        members = [m for ms in mine["members"] for m in ms]
        assert sorted(members) == sorted(grids["code"]), dept  # each grid in one zone


@pytest.fixture(scope="module")
def demo() -> dict[str, gpd.GeoDataFrame]:
    """The demo county at a small scale (CGCS2000 degrees; grids in one or two parts)."""
    return demo_county(seed=3, scale=0.3, n_incidents=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), counts=st.lists(st.integers(1, 12), min_size=1, max_size=3))
def test_random_zones_align_to_the_demo_grids(
    demo: dict[str, gpd.GeoDataFrame], seed: int, counts: list[int]
) -> None:
    grids = demo["grids"]
    county = shapely.union_all(grids.to_crs(CRS).geometry.to_numpy())
    rng = np.random.default_rng(seed)
    frames = []
    for k, n in enumerate(counts):
        minx, miny, maxx, maxy = county.bounds
        seeds = shapely.multipoints(rng.uniform((minx, miny), (maxx, maxy), (n, 2)))
        cells = shapely.voronoi_polygons(seeds, extend_to=county).geoms
        frames.append(
            gpd.GeoDataFrame(
                {"department": f"D{k}", "code": [f"D{k}-{i}" for i in range(len(cells))]},
                geometry=[shapely.intersection(c, county) for c in cells],
                crs=CRS,
            )
        )
    zones = pd.concat(frames, ignore_index=True).to_crs(grids.crs)
    assert_aligned(align_zones(zones, grids), grids)


def test_realign_departments_aligns_every_layer_and_flags_empty_zones(
    demo: dict[str, gpd.GeoDataFrame],
) -> None:
    grids = demo["grids"]
    zones = demo["zones"]
    # a 消防 zone drawn inside one grid, beside the zone that holds the grid
    spot = grids.to_crs(CRS).geometry.iloc[0].representative_point().buffer(5)
    tiny = gpd.GeoDataFrame(
        {"department": ["消防"], "code": ["XF-tiny"]}, geometry=[spot], crs=CRS
    ).to_crs(zones.crs)
    zones = pd.concat([zones, tiny], ignore_index=True)
    result = realign_departments({"zones": zones, "beats": demo["beats"]}, grids)
    assert list(result.layers) == ["zones", "beats"]
    assert_aligned(result.layers["zones"], grids)
    assert_aligned(result.layers["beats"], grids, by=None)
    assert len(result.layers["zones"]) == len(zones)  # the empty zone is kept
    assert result.empty.to_dict("records") == [
        {"layer": "zones", "department": "消防", "zone": "XF-tiny"}
    ]
    assert not result.ok
    assert result.messages() == [
        "消防 zone XF-tiny (layer 'zones') has no grid; it is kept with an empty geometry"
    ]
    # adopting the same plan again changes nothing
    again = realign_departments(result.layers, grids)
    for name, layer in result.layers.items():
        assert again.layers[name]["members"].tolist() == layer["members"].tolist()
        live = ~layer["no_grid"]
        assert (again.layers[name].loc[live, "moved_area_km2"] < 1e-9).all()


def test_a_grid_in_a_gap_goes_to_the_nearest_zone_or_stays_out() -> None:
    grids = gpd.GeoDataFrame(
        {"code": ["g1", "g2", "g3"]},
        geometry=[shapely.box(X0 + i * 100, Y0, X0 + (i + 1) * 100, Y0 + 100) for i in range(3)],
        crs=CRS,
    )
    zones = gpd.GeoDataFrame(
        {"department": "综治", "code": ["A", "B"]},
        geometry=[
            shapely.box(X0, Y0, X0 + 160, Y0 + 100),  # all of g1, 60 % of g2
            shapely.box(X0 + 160, Y0, X0 + 190, Y0 + 100),  # 30 % of g2; g3 in no zone
        ],
        crs=CRS,
    )
    filled = align_zones(zones, grids)
    assert filled["members"].tolist() == [("g1", "g2"), ("g3",)]
    assert_aligned(filled, grids)
    left = align_zones(zones, grids, fill_gaps=False)
    assert left["members"].tolist() == [("g1", "g2"), ()]
    report = check_alignment(left, grids)
    assert sorted(zip(report["problem"], report["zone"].fillna(report["grid"]))) == [
        ("empty", "B"),
        ("uncovered", "g3"),
    ]


def test_zones_sharing_an_index_label_stay_apart() -> None:
    """Layers concatenated without ignore_index: each zone keeps its own grids."""
    grids = digitised_grids(0, 6, noise=0.0)
    fire = voronoi_zones(1, {"消防": 2})
    police = voronoi_zones(2, {"公安": 2})
    zones = pd.concat([fire, police])  # index 0, 1, 0, 1
    aligned = align_zones(zones, grids)
    assert aligned.index.tolist() == [0, 1, 0, 1]
    for dept, mine in aligned.groupby("department"):
        assert sorted(m for ms in mine["members"] for m in ms) == sorted(grids["code"]), dept
    assert_aligned(aligned.reset_index(drop=True), grids)


def test_check_alignment_flags_a_zone_over_no_grid() -> None:
    grids = digitised_grids(0, 4, noise=0.0)
    far = shapely.box(X0 + 3 * W, Y0, X0 + 4 * W, Y0 + W)
    zones = gpd.GeoDataFrame(
        {"department": "消防", "code": ["XF1", "XF2"]}, geometry=[COUNTY, far], crs=CRS
    )
    report = check_alignment(zones, grids)
    assert report[["zone", "grid", "problem"]].values.tolist() == [["XF2", None, "empty"]]
    assert report.geometry.iloc[0].equals(far)


def test_realign_departments_names_every_bad_layer() -> None:
    grids = digitised_grids(0, 4, noise=0.0)
    zones = voronoi_zones(0, {"消防": 2})
    beats = gpd.GeoDataFrame({"name": ["一区"]}, geometry=[COUNTY])  # no CRS, no code
    with pytest.raises(ValidationError, match=r"department zones has 3 problems") as err:
        realign_departments(
            {"zones": zones, "beats": beats, "roads": zones.drop(columns="geometry")}, grids
        )
    assert err.value.problems == [
        "layer 'beats': zones has no CRS; set one (e.g. .set_crs('EPSG:4490'))",
        "layer 'beats': zones is missing column(s) ['code']; columns are ['name']",
        "layer 'roads': zones must be a GeoDataFrame, got DataFrame",
    ]
    with pytest.raises(ValidationError, match=r"grids is missing column\(s\) \['gid'\]"):
        realign_departments({"zones": zones}, grids, grid_key="gid")
    with pytest.raises(InputError, match=r"zones must be a GeoDataFrame, got DataFrame"):
        align_zones(pd.DataFrame(zones), grids)
