"""Heat tiles, per-grid statistics and hot spots."""

from __future__ import annotations

import io
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gridgeo.analyze import EMPTY_TILE, IncidentIndex, grid_stats, heat_tile, hotspots, tile_of
from gridgeo.analyze.stats import previous_window
from gridgeo.errors import CRSError, InputError

X0, Y0 = 114.9, 25.38
CATS = ["消防安全", "乱停乱放", "矛盾纠纷"]


def lattice(n: int = 4, step: float = 0.01) -> gpd.GeoDataFrame:
    boxes = [
        shapely.box(X0 + i * step, Y0 + j * step, X0 + (i + 1) * step, Y0 + (j + 1) * step)
        for i in range(n)
        for j in range(n)
    ]
    return gpd.GeoDataFrame(
        {
            "code": [f"G{k:02d}" for k in range(n * n)],
            "households": np.arange(n * n) * 10,  # G00 has none: rate <NA>
        },
        geometry=boxes,
        crs="EPSG:4490",
    )


def incidents(rng: np.random.Generator, n: int, grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    x0, y0, x1, y1 = grids.total_bounds
    x = rng.uniform(x0 - 0.003, x1 + 0.003, n)  # some outside every grid
    y = rng.uniform(y0 - 0.003, y1 + 0.003, n)
    # some exactly on shared edges and vertices
    k = n // 10
    x[:k] = np.round(x[:k], 2)
    days = rng.integers(0, 730, n)
    return gpd.GeoDataFrame(
        {
            "category": rng.choice(CATS, n),
            "reported_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D"),
        },
        geometry=gpd.points_from_xy(x, y),
        crs="EPSG:4490",
    )


def brute_counts(inc, grids, lo, hi, category=None) -> pd.Series:
    """Reference: every incident in the window goes to the covering grid whose code sorts first."""
    d = inc["reported_at"].dt.normalize()
    sel = inc[(d >= lo) & (d <= hi)]
    if category:
        sel = sel[sel["category"] == category]
    pi, gi = shapely.STRtree(grids.geometry.values).query(
        sel.geometry.values, predicate="covered_by"
    )
    codes = grids["code"].to_numpy()
    first = pd.Series(codes[gi]).groupby(pi).min()
    return first.value_counts().reindex(grids["code"], fill_value=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), category=st.sampled_from([None, *CATS]))
def test_grid_counts_equal_a_brute_force_reference(seed: int, category) -> None:
    rng = np.random.default_rng(seed)
    grids = lattice()
    inc = incidents(rng, 3000, grids)
    s = grid_stats(inc, grids, start="2024-03-01", end="2024-08-31", category=category)
    want = brute_counts(inc, grids, "2024-03-01", "2024-08-31", category)
    assert s["count"].tolist() == want.tolist()
    assert s.index.equals(grids.index) and s["code"].tolist() == grids["code"].tolist()
    # the previous window is the same calendar span just before: the six months before
    assert s.attrs["previous_window"] == ("2023-09-01", "2024-02-29")
    before = brute_counts(inc, grids, "2023-09-01", "2024-02-29", category)
    assert s["previous"].tolist() == before.tolist()
    # nothing dropped: counted + outside = all incidents of the window
    d = inc["reported_at"].dt.normalize()
    in_window = (d >= "2024-03-01") & (d <= "2024-08-31")
    n = (in_window & (inc["category"] == category if category else in_window)).sum()
    assert s["count"].sum() + s.attrs["outside"] == n


def test_grid_stats_columns_rates_and_change() -> None:
    rng = np.random.default_rng(1)
    grids = lattice()
    inc = incidents(rng, 2000, grids)
    s = grid_stats(inc, grids, period="M", end="2025-06-30")
    assert s.attrs["window"] == ("2025-06-01", "2025-06-30")
    assert list(s.columns) == [
        "code",
        "count",
        "previous",
        "change",
        "change_pct",
        "per_1000_households",
        "geometry",
    ]
    assert (s["change"] == s["count"] - s["previous"]).all()
    hh = grids["households"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.round(s["count"].to_numpy() / hh * 1000, 3)
    got = s["per_1000_households"].to_numpy(dtype=float, na_value=np.nan)
    assert np.isnan(got[0]) and np.allclose(got[1:], want[1:])  # G00: no households
    nz = s["previous"] > 0
    pct = s.loc[nz, "change"] / s.loc[nz, "previous"] * 100
    assert np.allclose(s.loc[nz, "change_pct"].astype(float), pct.round(1))
    assert s.loc[~nz, "change_pct"].isna().all()
    yoy = grid_stats(inc, grids, start="2025-01-01", end="2025-03-31", compare="year")
    assert yoy.attrs["previous_window"] == ("2024-01-01", "2024-03-31")
    by = grid_stats(inc, grids, start="2025-01-01", end="2025-03-31", by="category")
    assert len(by) == len(grids) * len(CATS)
    assert by.groupby("code", sort=False)["count"].sum().tolist() == yoy["count"].tolist()


@pytest.mark.parametrize(
    ("window", "previous"),
    [
        (("2025-01-01", "2025-12-31"), ("2024-01-01", "2024-12-31")),  # a year after a leap year
        (("2024-01-01", "2024-12-31"), ("2023-01-01", "2023-12-31")),  # a leap year
        (("2024-02-01", "2024-02-29"), ("2024-01-01", "2024-01-31")),
        (("2024-03-01", "2024-03-31"), ("2024-02-01", "2024-02-29")),
        (("2025-03-01", "2025-03-31"), ("2025-02-01", "2025-02-28")),
        (("2025-04-01", "2025-06-30"), ("2025-01-01", "2025-03-31")),  # a quarter
        (("2025-01-01", "2025-01-31"), ("2024-12-01", "2024-12-31")),  # across the new year
        (("2025-03-10", "2025-03-16"), ("2025-03-03", "2025-03-09")),  # 7 days
        (("2024-03-15", "2024-04-14"), ("2024-02-13", "2024-03-14")),  # 31 days, not a month
        (("2025-05-05", "2025-05-05"), ("2025-05-04", "2025-05-04")),
    ],
)
def test_previous_window_is_the_same_calendar_span_before(window, previous) -> None:
    assert previous_window(*window) == previous


def test_grid_stats_compare_a_year_with_the_year_before() -> None:
    grids = lattice()
    inc = incidents(np.random.default_rng(4), 2000, grids)
    s = grid_stats(inc, grids, start="2025-01-01", end="2025-12-31")
    assert s.attrs["previous_window"] == ("2024-01-01", "2024-12-31")
    assert s["previous"].tolist() == brute_counts(inc, grids, "2024-01-01", "2024-12-31").tolist()
    m = grid_stats(inc, grids, period="M", end="2024-03-31")
    assert m.attrs["window"] == ("2024-03-01", "2024-03-31")
    assert m.attrs["previous_window"] == ("2024-02-01", "2024-02-29")


def test_previous_window_rejects_bad_windows() -> None:
    with pytest.raises(InputError, match="start 2025-02-01 is after end 2025-01-31"):
        previous_window("2025-02-01", "2025-01-31")
    with pytest.raises(InputError, match="start='2025-02-30' is not a date"):
        previous_window("2025-02-30", "2025-03-31")


_days = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))


@settings(max_examples=200, deadline=None)
@given(a=_days, b=_days)
def test_previous_window_ends_the_day_before_and_spans_as_long(a, b) -> None:
    lo, hi = sorted([pd.Timestamp(a), pd.Timestamp(b)])
    p0, p1 = map(pd.Timestamp, previous_window(lo, hi))
    assert p1 == lo - pd.Timedelta(days=1)
    assert p0 <= p1
    if lo.day == 1 and hi.is_month_end:  # whole months: as many whole months before
        months = (hi.year - lo.year) * 12 + hi.month - lo.month + 1
        assert p0.day == 1 and p1.is_month_end
        assert (p1.year - p0.year) * 12 + p1.month - p0.month + 1 == months
    else:  # any other span of N days: the N days before
        assert p1 - p0 == hi - lo


@settings(max_examples=100, deadline=None)
@given(
    year=st.integers(1990, 2090),
    month=st.integers(1, 12),
    unit=st.sampled_from(["month", "quarter", "year"]),
)
def test_previous_window_of_a_calendar_unit_is_the_unit_before(year, month, unit) -> None:
    freq = {"month": "M", "quarter": "Q", "year": "Y"}[unit]
    unit_before = pd.Timestamp(year=year, month=month, day=1).to_period(freq) - 1
    start = (unit_before + 1).start_time
    end = (unit_before + 1).end_time.normalize()
    got = tuple(map(pd.Timestamp, previous_window(start, end)))
    # the unit before, whole, of its own length (28, 29, 30, 31, 90-92, 365 or 366 days)
    assert got == (unit_before.start_time, unit_before.end_time.normalize())


def test_index_reused_for_stats_matches_a_fresh_build() -> None:
    rng = np.random.default_rng(2)
    grids = lattice()
    inc = incidents(rng, 1000, grids)
    idx = IncidentIndex.build(inc, grids=grids)
    a = grid_stats(idx, grids, start="2024-01-01", end="2024-12-31")
    b = grid_stats(inc, grids, start="2024-01-01", end="2024-12-31")
    assert a["count"].tolist() == b["count"].tolist()
    assert idx.count() == len(inc)
    assert idx.count(category=CATS[0]) == int((inc["category"] == CATS[0]).sum())


def test_hotspots_of_a_grid_next_to_every_grid_is_none_not_an_error() -> None:
    # the middle of three grids in a row neighbours all of them: Gi* has no variance there
    s = gpd.GeoDataFrame(
        {"count": [5, 1, 2]},
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(3)],
        crs="EPSG:4547",
    )
    h = hotspots(s)
    assert np.isnan(h["gi_z"].iloc[1]) and h["hotspot"].iloc[1] == "none"
    assert h["hotspot"].isin(["hot", "cold", "none"]).all()


def test_hotspots_find_a_planted_cluster() -> None:
    grids = lattice(6)
    counts = np.ones(len(grids), dtype=int)
    hot_idx = [0, 1, 6, 7]  # a 2x2 corner block (i*6 + j)
    counts[hot_idx] = 60
    stats = grids.assign(count=counts)
    h = hotspots(stats)
    assert set(hot_idx) <= set(np.flatnonzero(h["hotspot"] == "hot"))
    assert (h.loc[h["hotspot"] == "hot", "gi_z"] > 0).all()
    assert (h["gi_p"].between(0, 1)).all()
    # the far corner is far below the mean: cold, never hot
    assert h["hotspot"].iloc[-1] in ("cold", "none")
    noise = np.random.default_rng(0).poisson(5, len(grids))
    assert (hotspots(grids.assign(count=noise), alpha=0.001)["hotspot"] == "none").all()


def tile_image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_heat_tiles_show_incidents_where_they_are_and_follow_filters() -> None:
    rng = np.random.default_rng(3)
    grids = lattice()
    inc = incidents(rng, 4000, grids)
    idx = IncidentIndex.build(inc)
    z = 13
    tx, ty = tile_of(X0 + 0.02, Y0 + 0.02, z)
    full = tile_image(heat_tile(idx, z, tx, ty))
    assert full.shape == (256, 256, 4) and full[..., 3].max() > 0
    far = heat_tile(idx, z, tx + 50, ty)
    assert far == EMPTY_TILE
    # a window with no incident gives an empty tile; a category filter changes the tile
    assert heat_tile(idx, z, tx, ty, start="2030-01-01", end="2030-12-31") == EMPTY_TILE
    one = tile_image(heat_tile(idx, z, tx, ty, category=CATS[0]))
    assert one[..., 3].sum() > 0 and not np.array_equal(one, full)
    # colour depends on zoom and filters only: the same pixel rendered from two
    # neighbouring tiles' views agrees (no seams), checked on the shared edge
    left = tile_image(heat_tile(idx, z, tx, ty)).astype(float)
    right = tile_image(heat_tile(idx, z, tx + 1, ty)).astype(float)
    pl = left[:, -1, :3] * left[:, -1, 3:] / 255  # premultiplied colour at the shared edge
    pr = right[:, 0, :3] * right[:, 0, 3:] / 255
    assert np.abs(pl - pr).max() <= 40


def test_heat_tile_counts_only_its_incidents() -> None:
    """One incident: its pixel is the hottest of its tile, and other tiles are empty."""
    inc = gpd.GeoDataFrame(
        {"category": ["消防安全"], "reported_at": [pd.Timestamp("2025-05-05")]},
        geometry=[shapely.Point(114.93, 25.40)],
        crs="EPSG:4490",
    )
    idx = IncidentIndex.build(inc)
    z = 15
    tx, ty = tile_of(114.93, 25.40, z)
    img = tile_image(heat_tile(idx, z, tx, ty))
    n = 2**z
    fx = (114.93 + 180) / 360 * n - tx
    s = np.sin(np.radians(25.40))
    fy = (0.5 - np.log((1 + s) / (1 - s)) / (4 * np.pi)) * n - ty
    peak = np.unravel_index(np.argmax(img[..., 3]), img.shape[:2])
    assert abs(peak[0] - fy * 256) <= 2 and abs(peak[1] - fx * 256) <= 2
    assert heat_tile(idx, z, tx, (ty + 3) % n) == EMPTY_TILE


def test_errors_name_the_problem() -> None:
    grids = lattice()
    rng = np.random.default_rng(4)
    inc = incidents(rng, 100, grids)
    idx = IncidentIndex.build(inc, grids=grids)
    with pytest.raises(InputError, match="unknown category '火灾'"):
        heat_tile(idx, 10, 0, 0, category="火灾")
    with pytest.raises(InputError, match="zoom 25 is out of range"):
        heat_tile(idx, 25, 0, 0)
    with pytest.raises(InputError, match="tile 2/4/0 does not exist"):
        heat_tile(idx, 2, 4, 0)
    with pytest.raises(InputError, match="start='2025-02-30' is not a date"):
        heat_tile(idx, 10, 0, 0, start="2025-02-30")
    with pytest.raises(InputError, match="start 2025-03-01 is after end"):
        grid_stats(idx, grids, start="2025-03-01", end="2025-01-01")
    with pytest.raises(InputError, match="period was 'X'"):
        grid_stats(idx, grids, period="X")
    with pytest.raises(InputError, match="incidents have no column 'category'"):
        IncidentIndex.build(inc.drop(columns="category"))
    with pytest.raises(CRSError, match="incidents have no CRS"):
        IncidentIndex.build(inc.set_crs(None, allow_override=True))
    bad = inc.copy()
    bad.loc[bad.index[3], "reported_at"] = pd.NaT
    with pytest.raises(InputError, match="bad times at rows \\['3'\\]"):
        IncidentIndex.build(bad)
    poly = inc.copy()
    poly.geometry = shapely.buffer(poly.geometry.values, 0.001)
    with pytest.raises(InputError, match="must be non-empty points"):
        IncidentIndex.build(poly)
    with pytest.raises(InputError, match="built with tiles=False"):
        heat_tile(IncidentIndex.build(inc, tiles=False), 10, 0, 0)
    with pytest.raises(InputError, match="built without grids"):
        grid_stats(IncidentIndex.build(inc), grids)
    with pytest.raises(InputError, match="hotspots needs at least 3 grids"):
        hotspots(grids.iloc[:2].assign(count=1))
    with pytest.raises(InputError, match="stats have no column 'n'"):
        hotspots(grids.assign(count=1), column="n")
