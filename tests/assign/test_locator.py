"""Locator: equal to a brute-force shapely.covers reference on every point."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.assign import Locator, link_table, route
from gridgeo.crs import from_wgs84
from gridgeo.errors import CRSError, InputError

X0, Y0 = 114.9, 25.3


def brute(gdf: gpd.GeoDataFrame, x, y, key: str = "code", *, pts=None) -> np.ndarray:
    """Reference: the covering zone whose key sorts first, else None.

    ``pts``: ``shapely.points(x, y)`` made once by a caller that checks several layers.
    """
    g = gdf.to_crs(4326).sort_values(key).reset_index(drop=True)
    pts = shapely.points(x, y) if pts is None else pts
    pi, zi = shapely.STRtree(g.geometry.values).query(pts, predicate="covered_by")
    # the smallest covering zone (zones are sorted by key) of each point; len(g): none
    best = np.full(len(x), len(g))
    np.minimum.at(best, pi, zi)
    keys = np.append(g[key].astype(str).to_numpy(dtype=object), None)
    return keys[best]


def as_obj(s: pd.Series) -> np.ndarray:
    return np.where(s.isna(), None, s.astype(object)).astype(object)


def zones_strategy():
    """Random layers: a lattice of cells, merged into zones, with holes, islands and gaps."""

    @st.composite
    def build(draw):
        n = draw(st.integers(2, 5))
        m = draw(st.integers(1, 4))
        step = 0.01
        labels = draw(st.lists(st.integers(-1, 5), min_size=n * m, max_size=n * m))
        cells: dict[int, list] = {}
        for k, lab in enumerate(labels):
            if lab < 0:
                continue  # a gap: no zone there
            i, j = divmod(k, m)
            cells.setdefault(lab, []).append(
                shapely.box(X0 + i * step, Y0 + j * step, X0 + (i + 1) * step, Y0 + (j + 1) * step)
            )
        geoms, codes = [], []
        for lab, boxes in cells.items():
            geom = shapely.union_all(boxes)  # may be a multipolygon (islands)
            if draw(st.booleans()):  # punch a hole
                c = shapely.centroid(boxes[0])
                geom = geom.difference(shapely.buffer(c, step / 4, quad_segs=2))
            geoms.append(geom)
            codes.append(f"Z{lab}")
        if not geoms:
            geoms, codes = [shapely.box(X0, Y0, X0 + step, Y0 + step)], ["Z0"]
        return gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs="EPSG:4326")

    return build()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zones=zones_strategy(),
    seed=st.integers(0, 2**31),
    crs=st.sampled_from(["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4547", "EPSG:3857"]),
)
def test_equals_brute_force(zones, seed, crs) -> None:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = zones.total_bounds
    n = 400
    x = rng.uniform(x0 - 0.005, x1 + 0.005, n)
    y = rng.uniform(y0 - 0.005, y1 + 0.005, n)
    # points exactly on vertices and on shared edges
    v = shapely.get_coordinates(zones.geometry.values)
    k = min(len(v), 100)
    x[:k], y[:k] = v[:k, 0], v[:k, 1]
    x[k : k + 50] = np.round(x[k : k + 50], 2)
    loc = Locator({"z": zones}, cells=int(rng.integers(16, 4096)))
    if crs in ("wgs84", "cgcs2000"):
        got = loc.locate(x, y, crs=crs)
        np.testing.assert_array_equal(as_obj(got["z"]), brute(zones, x, y))
    else:
        # through another CRS: compare against the reference at the converted point
        cx, cy = from_wgs84(x[k:], y[k:], crs)
        got = loc.locate(cx, cy, crs=crs)
        from gridgeo.crs import to_wgs84

        bx, by = to_wgs84(cx, cy, crs)
        np.testing.assert_array_equal(as_obj(got["z"]), brute(zones, bx, by))


def test_every_point_of_a_million(county, loc) -> None:
    """Not a sample: a lookup table once passed 47k checks and failed 3 points in 1M."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    x0, y0, x1, y1 = county["boundary"].total_bounds
    x = rng.uniform(x0 - 0.01, x1 + 0.01, n)
    y = rng.uniform(y0 - 0.01, y1 + 0.01, n)
    v = shapely.get_coordinates(county["grids"].geometry.values)
    x[: len(v)], y[: len(v)] = v[:, 0], v[:, 1]  # every grid vertex, exactly
    got = loc.locate(x, y)
    pts = shapely.points(x, y)  # once, for the three references
    for layer, gdf in (
        ("grid", county["grids"]),
        ("beat", county["beats"]),
        ("community", county["communities"]),
    ):
        ref = brute(gdf, x, y, pts=pts)
        mism = np.flatnonzero(as_obj(got[layer]) != ref)
        assert len(mism) == 0, (layer, mism[:5])
    assert got.index.equals(pd.RangeIndex(n))


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, n_incidents=500)


@pytest.fixture(scope="module")
def loc(county) -> Locator:
    """The county's locator, built once (~3 s): a Locator is immutable, so tests share it."""
    return Locator.from_workspace(county)


def test_locate_one_equals_locate(county, loc) -> None:
    inc = county["incidents"].head(300)
    batch = loc.locate(inc["lng"].to_numpy(), inc["lat"].to_numpy(), crs="gcj02")
    for i in range(len(inc)):
        one = loc.locate_one(inc["lng"].iloc[i], inc["lat"].iloc[i], crs="gcj02")
        for layer in loc.layer_names:
            want = batch[layer].iloc[i]
            got = one[layer]
            assert (got is None and pd.isna(want)) or got["code"] == want
    rec = loc.locate_one(inc["lng"].iloc[0], inc["lat"].iloc[0], crs="gcj02")
    assert "name" in rec["grid"] and rec["community"]["code"].startswith("360722")


def test_gcj02_input_lands_where_the_true_point_is(county, loc) -> None:
    inc = county["incidents"]
    a = loc.locate(inc["lng"].to_numpy(), inc["lat"].to_numpy(), crs="gcj02")
    b = loc.locate(inc.geometry)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_geodataframe_index_kept(county) -> None:
    loc = Locator({"grid": county["grids"]})
    pts = county["incidents"].head(20).set_index(pd.Index([f"e{i}" for i in range(20)]))
    assert loc.locate(pts).index.equals(pts.index)


def test_nearest_snaps_within_distance() -> None:
    zone = gpd.GeoDataFrame(
        {"code": ["A"]}, geometry=[shapely.box(X0, Y0, X0 + 0.01, Y0 + 0.01)], crs="EPSG:4326"
    )
    loc = Locator({"z": zone}, nearest=50)
    # ~22 m and ~220 m east of the zone
    res = loc.locate([X0 + 0.0102, X0 + 0.0122, X0 + 0.005], [Y0 + 0.005] * 3)
    assert as_obj(res["z"]).tolist() == ["A", None, "A"]
    assert 15 < res["z_distance_m"].iloc[0] < 30 and res["z_distance_m"].iloc[2] == 0
    assert np.isnan(res["z_distance_m"].iloc[1])
    assert loc.locate_one(X0 + 0.0102, Y0 + 0.005)["z"]["distance_m"] > 15
    assert as_obj(loc.locate([X0 + 0.0122], [Y0 + 0.005], nearest=300)["z"]) == ["A"]


def test_locate_one_nearest_overrides_the_locator() -> None:
    zone = gpd.GeoDataFrame(
        {"code": ["A"]}, geometry=[shapely.box(X0, Y0, X0 + 0.01, Y0 + 0.01)], crs="EPSG:4326"
    )
    off = (X0 + 0.0122, Y0 + 0.005)  # ~220 m east of the zone
    loc = Locator({"z": zone}, nearest=50)
    assert loc.locate_one(*off)["z"] is None
    rec = loc.locate_one(*off, nearest=300)["z"]
    assert rec["code"] == "A" and 200 < rec["distance_m"] < 240
    assert loc.locate_one(X0 + 0.0102, Y0 + 0.005, nearest=0)["z"] is None  # 0: no snapping
    assert Locator({"z": zone}).locate_one(*off, nearest=300)["z"]["code"] == "A"
    assert loc.nearest == 50  # the override is for the one call
    with pytest.raises(InputError, match=r"nearest was -1; give a distance in metres"):
        loc.locate_one(*off, nearest=-1)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zones=zones_strategy(),
    seed=st.integers(0, 2**31),
    key=st.sampled_from(["code", "name"]),
    built=st.sampled_from([None, 100.0]),
    nearest=st.sampled_from([None, 0, 30.0, 400.0]),
    crs=st.sampled_from(["wgs84", "gcj02"]),
)
def test_locate_one_equals_locate_on_random_points(zones, seed, key, built, nearest, crs) -> None:
    # names sort the other way round from codes, so the boundary rule follows the key
    zones = zones.assign(name=[f"N{9 - int(c[1:])}" for c in zones["code"]])
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = zones.total_bounds
    n = 40
    x = rng.uniform(x0 - 0.006, x1 + 0.006, n)  # up to ~600 m outside
    y = rng.uniform(y0 - 0.006, y1 + 0.006, n)
    if crs == "wgs84":
        v = shapely.get_coordinates(zones.geometry.values)
        pick = rng.choice(len(v), min(len(v), 8), replace=False)
        x[: len(pick)], y[: len(pick)] = v[pick, 0], v[pick, 1]  # on vertices and shared edges
    else:
        # no points on edges here: the GCJ-02 inverse iterates until the worst point of
        # the batch is within 1e-11°, so one point alone may land 1e-12° away
        x, y = from_wgs84(x, y, crs)
    loc = Locator({"z": zones}, key=key, nearest=built, cells=int(rng.integers(16, 1024)))
    batch = loc.locate(x, y, crs=crs, nearest=nearest)
    snap = built if nearest is None else (nearest or None)
    other = "name" if key == "code" else "code"
    by_key = zones.set_index(key)
    for i in range(n):
        one = loc.locate_one(x[i], y[i], crs=crs, nearest=nearest)["z"]
        want = batch["z"].iloc[i]
        if pd.isna(want):
            assert one is None, i
            continue
        assert one[key] == want and one[other] == by_key.loc[want, other], i
        if snap:
            d = batch["z_distance_m"].iloc[i]
            assert one.get("distance_m", 0.0) == pytest.approx(d, abs=1e-6), i
            assert d <= snap
        else:
            assert "distance_m" not in one and "z_distance_m" not in batch


@pytest.mark.parametrize(
    ("nx", "ny", "labels", "cells"),
    [
        (5, 4, [-1, -1, 5, -1, 5, 4, 5, 1, 0, 2, 5, 1, 5, 1, 4, 0, 2, 1, 0, 5], 824),
        (2, 4, [0, 2, 5, 5, 0, -1, 2, 4], 645),
    ],
)
def test_locate_one_on_vertices_that_round_into_the_next_cell(nx, ny, labels, cells) -> None:
    """Here ``(x - x0) // dx`` and ``floor((x - x0) / dx)`` name different cells for some
    vertices; locate_one once used the first, whose edge lists are another cell's."""
    boxes: dict[int, list] = {}
    for k, lab in enumerate(labels):
        if lab >= 0:
            i, j = divmod(k, ny)
            boxes.setdefault(lab, []).append(
                shapely.box(X0 + i * 0.01, Y0 + j * 0.01, X0 + (i + 1) * 0.01, Y0 + (j + 1) * 0.01)
            )
    zones = gpd.GeoDataFrame(
        {"code": [f"Z{lab}" for lab in boxes]},
        geometry=[shapely.union_all(b) for b in boxes.values()],
        crs="EPSG:4326",
    )
    v = shapely.get_coordinates(zones.geometry.values)
    loc = Locator({"z": zones}, cells=cells)
    ref = brute(zones, v[:, 0], v[:, 1])
    np.testing.assert_array_equal(as_obj(loc.locate(v[:, 0], v[:, 1])["z"]), ref)
    one = [(loc.locate_one(x, y)["z"] or {}).get("code") for x, y in v]
    assert one == ref.tolist()


def test_a_key_other_than_code_keeps_every_column(tmp_path) -> None:
    import pickle

    grids = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["west", "east"]},
        geometry=[
            shapely.box(X0, Y0, X0 + 0.01, Y0 + 0.01),
            shapely.box(X0 + 0.01, Y0, X0 + 0.02, Y0 + 0.01),
        ],
        crs="EPSG:4326",
    )
    # warnings are errors here: pandas once warned of two columns named "code"
    loc = Locator({"grid": grids, "g2": grids}, key={"grid": "name"})
    xs, ys = [X0 + 0.005, X0 + 0.015, X0 + 0.01], [Y0 + 0.005] * 3
    assert as_obj(loc.locate(xs, ys)["grid"]).tolist() == ["west", "east", "east"]
    assert as_obj(loc.locate(xs, ys)["g2"]).tolist() == ["A", "B", "A"]
    assert loc.key_column("grid") == "name" and loc.key_column("g2") == "code"
    assert loc.locate_one(xs[0], ys[0])["grid"] == {"code": "A", "name": "west"}
    # on the shared edge the key that sorts first wins: "east" by name, "A" by code
    assert loc.locate_one(xs[2], ys[2]) == {
        "grid": {"code": "B", "name": "east"},
        "g2": {"code": "A", "name": "west"},
    }
    attrs = loc.attributes("grid")
    assert attrs.index.tolist() == ["east", "west"] and attrs["code"].tolist() == ["B", "A"]
    path = tmp_path / "loc.npz"
    loc.save(path)
    for back in (Locator.load(path), pickle.loads(pickle.dumps(loc))):
        assert back.key_column("grid") == "name"
        assert back.locate_one(xs[2], ys[2]) == loc.locate_one(xs[2], ys[2])
        pd.testing.assert_frame_equal(back.locate(xs, ys), loc.locate(xs, ys))
    with pytest.raises(InputError, match=r"no layer 'beat'; the layers are \['grid', 'g2'\]"):
        loc.key_column("beat")
    with pytest.raises(InputError, match=r"no layer 'beat'"):
        loc.attributes("beat")


def test_nan_rows_are_counted_not_dropped() -> None:
    zone = gpd.GeoDataFrame(
        {"code": ["A"]}, geometry=[shapely.box(X0, Y0, X0 + 1, Y0 + 1)], crs="EPSG:4326"
    )
    res = Locator({"z": zone}).locate([X0 + 0.5, np.nan], [Y0 + 0.5, Y0])
    assert len(res) == 2 and res.attrs["invalid"] == 1 and pd.isna(res["z"].iloc[1])


def test_save_and_load(tmp_path, county) -> None:
    loc = Locator.from_workspace(county, nearest=30)
    path = tmp_path / "loc.npz"
    loc.save(path)
    back = Locator.load(path)
    inc = county["incidents"]
    pd.testing.assert_frame_equal(loc.locate(inc), back.locate(inc))
    assert back.locate_one(114.93, 25.40) == loc.locate_one(114.93, 25.40)


def test_load_rejects_other_files(tmp_path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError, match="is not a saved gridgeo locator"):
        Locator.load(bad)


def test_errors() -> None:
    zone = gpd.GeoDataFrame(
        {"code": ["A", "A"]}, geometry=[shapely.box(X0, Y0, X0 + 1, Y0 + 1)] * 2, crs="EPSG:4326"
    )
    with pytest.raises(InputError, match=r"layer 'z' has duplicate code \['A'\]"):
        Locator({"z": zone})
    with pytest.raises(CRSError, match="layer 'z' has no CRS"):
        Locator({"z": zone.head(1).set_crs(None, allow_override=True)})
    with pytest.raises(InputError, match=r"layer 'z' is missing column\(s\) \['gid'\] \(the key="):
        Locator({"z": zone.head(1)}, key="gid")
    with pytest.raises(InputError, match="no layers given"):
        Locator({})
    with pytest.raises(InputError, match=r"layer 'z' must hold polygon geometries; found \['Poi"):
        Locator(
            {"z": gpd.GeoDataFrame({"code": ["p"]}, geometry=[shapely.Point(X0, Y0)], crs=4326)}
        )
    bow = shapely.Polygon([(X0, Y0), (X0 + 1, Y0 + 1), (X0 + 1, Y0), (X0, Y0 + 1)])
    with pytest.raises(InputError, match=r"layer 'z' has 1 invalid geometry for code \['B'\]"):
        Locator({"z": gpd.GeoDataFrame({"code": ["B"]}, geometry=[bow], crs=4326)})
    loc = Locator({"z": zone.head(1)})
    with pytest.raises(InputError, match="infinite coordinates at rows"):
        loc.locate([np.inf], [Y0])
    with pytest.raises(InputError, match="latitude outside ±90° at rows"):
        loc.locate([X0], [95.0])
    with pytest.raises(InputError, match="x and y must be 1-d of one length"):
        loc.locate([X0, X0], [Y0])
    with pytest.raises(InputError, match="nearest was -5"):
        Locator({"z": zone.head(1)}, nearest=-5)
    with pytest.raises(InputError, match="invalid coordinate"):
        loc.locate_one(X0, 91.0)


def test_route_sends_categories_to_department_zones(county, loc) -> None:
    inc = county["incidents"].head(2000).copy()
    inc.loc[inc.index[0], "category"] = "外星人"
    r = route(inc, loc)
    assert r.index.equals(inc.index)
    assert r.attrs["unknown_categories"] == {"外星人": 1}
    assert r["routed_by"].iloc[0] == "grid" and r["department"].iloc[0] is None
    known = r.iloc[1:]
    assert (known["department"] == inc["department"].iloc[1:]).all()
    located = loc.locate(inc)
    for lay in known["layer"].unique():
        rows = known.index[known["layer"] == lay]
        assert (
            known.loc[rows, "zone"].fillna("-") == located.loc[rows, lay].astype(object).fillna("-")
        ).all()
    with pytest.raises(InputError, match="routes name layer"):
        route(inc, loc, {"消防安全": "firemen"})
    with pytest.raises(InputError, match=r"incidents is missing column\(s\) \['kind'\] \(the cat"):
        route(inc, loc, category="kind")


def test_link_table_on_demo(county) -> None:
    t = link_table(county["grids"], county["beats"])
    assert t.rate == 1.0 and t.unlinked_grids == []
    shares = t.links.groupby("grid")["share"].sum()
    assert np.allclose(shares, 1.0, atol=1e-6)  # beats tile the county
    assert t.links.groupby("grid")["primary"].sum().eq(1).all()
