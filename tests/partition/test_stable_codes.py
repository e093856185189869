"""Stable codes: make_grids(previous=) and regroup(previous=) keep unchanged grids' codes,
never reuse a code, and a community's grids depend on nothing but its own units."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from territory_gen import CRS, X0, Y0, make_territory

from gridgeo.errors import InfeasibleError, InputError
from gridgeo.partition import Plan, make_grids, regroup, used_codes

RULES = {"urban": {"max_households": 300}, "rural": {"max_households": 200, "max_population": 500}}
WITH_UNITS = ["360722001001", "360722001002", "360722001003", "360722001005"]  # D is empty


def grids_of(t: dict, units: gpd.GeoDataFrame | None = None, **kw) -> gpd.GeoDataFrame:
    units = t["units"] if units is None else units
    within = kw.pop("within", t["communities"])
    return make_grids(units, within=within, rules=RULES, barriers=t["streets"], seed=11, **kw)


def by_code(grids: gpd.GeoDataFrame) -> dict[str, shapely.Geometry]:
    return dict(zip(grids["code"], grids.geometry))


def community_of(t: dict, code: str) -> np.ndarray:
    comm = t["communities"].set_index("code").geometry[code]
    return shapely.covered_by(t["units"].geometry.to_numpy(), comm)


def assert_same_grids(a: dict, b: dict, community: str | None = None) -> None:
    if community is not None:
        a = {c: g for c, g in a.items() if c.startswith(community)}
        b = {c: g for c, g in b.items() if c.startswith(community)}
    assert sorted(a) == sorted(b)
    for code in a:
        assert shapely.equals_exact(a[code], b[code], tolerance=0), code


def iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    inter = shapely.area(shapely.intersection(a, b))
    return inter / (a.area + b.area - inter)


def change(t: dict, community: str, how: str, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """The units with those of one community changed: more households, some dropped, or new."""
    units = t["units"].copy()
    mine = community_of(t, community)
    if how == "households":
        units.loc[mine, "households"] += rng.integers(20, 80)
        units.loc[mine, "population"] = units.loc[mine, "households"] * 3
    elif how == "drop" and mine.sum() > 1:
        idx = np.flatnonzero(mine)
        units = units.drop(index=units.index[rng.choice(idx, size=len(idx) // 2, replace=False)])
    else:
        comm = t["communities"].set_index("code").geometry[community]
        x0, y0, x1, y1 = comm.bounds
        pts = shapely.points(rng.uniform(x0, x1, 60), rng.uniform(y0, y1, 60))
        pts = pts[shapely.contains_properly(comm, pts)][:15]
        new = gpd.GeoDataFrame(
            {"households": rng.integers(10, 60, len(pts)), "population": 0}, geometry=pts, crs=CRS
        )
        new["population"] = new["households"] * 3
        units = pd.concat([units, new], ignore_index=True)
    return units


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.randoms(use_true_random=False), data=st.data())
def test_grids_do_not_depend_on_community_order_or_count(seed, order, data) -> None:
    t = make_territory(seed, n_units=100)
    full = by_code(grids_of(t))
    dropped = data.draw(st.sets(st.sampled_from(WITH_UNITS), max_size=2))
    rows = [i for i, c in enumerate(t["communities"]["code"]) if c not in dropped]
    order.shuffle(rows)
    keep = np.ones(len(t["units"]), dtype=bool)
    for code in dropped:
        keep &= ~community_of(t, code)
    part = by_code(grids_of(t, t["units"][keep], within=t["communities"].iloc[rows]))
    for code in t["communities"]["code"]:
        if code not in dropped:
            assert_same_grids(full, part, code)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    community=st.sampled_from(WITH_UNITS),
    how=st.sampled_from(["households", "drop", "add"]),
    as_plan=st.booleans(),
)
def test_unchanged_community_keeps_its_codes_and_geometry(seed, community, how, as_plan) -> None:
    t = make_territory(seed, n_units=100)
    before = grids_of(t)
    previous = Plan.from_grids(before, plan_id="p0") if as_plan else before
    units = change(t, community, how, np.random.default_rng(seed))
    after = grids_of(t, units, previous=previous)
    old, new = by_code(before), by_code(after)
    for code in t["communities"]["code"]:
        if code != community:
            assert_same_grids(old, new, code)
    # in the changed community: a kept code is the same grid, a new one was never used
    for code, geom in new.items():
        if code in old:
            assert iou(geom, old[code]) >= 0.99
        else:
            assert code.startswith(community)
            assert int(code[-3:]) > max(int(c[-3:]) for c in old if c.startswith(community))
    assert set(after.attrs["retired_codes"]) == set(old) - set(new)
    assert set(after.attrs["kept_codes"]) == set(old) & set(new)


def assert_never_reused(plans: list[Plan]) -> None:
    """A code lives in one unbroken run of plans, and is the same grid all along it."""
    seen_in: dict[str, list[int]] = {}
    for i, plan in enumerate(plans):
        assert len(set(plan.codes)) == len(plan.codes)
        for code in plan.codes:
            seen_in.setdefault(code, []).append(i)
    for code, where in seen_in.items():
        assert where == list(range(where[0], where[-1] + 1)), f"{code} came back: {where}"
    for a, b in itertools.pairwise(plans):
        assert used_codes(a) <= used_codes(b)  # history is carried forward
        ga, gb = a.grids.set_index("code"), b.grids.set_index("code")
        for code in set(ga.index) & set(gb.index):
            same_members = a.members is not None and a.members[code] == b.members[code]
            assert same_members or iou(ga.geometry[code], gb.geometry[code]) >= 0.99, code


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    steps=st.lists(
        st.tuples(st.sampled_from(WITH_UNITS), st.sampled_from(["households", "drop", "add"])),
        min_size=1,
        max_size=3,
    ),
    whole_history=st.booleans(),
)
def test_make_grids_never_reuses_a_code_across_a_sequence_of_plans(
    seed, steps, whole_history
) -> None:
    t = make_territory(seed, n_units=80)
    rng = np.random.default_rng(seed)
    frames = [grids_of(t)]
    plans = [Plan.from_grids(frames[0], plan_id="p0")]
    for i, (community, how) in enumerate(steps, start=1):
        t = {**t, "units": change(t, community, how, rng)}
        # the whole history as bare frames (attrs dropped), or only the last plan
        previous = [f.copy() for f in frames] if whole_history else plans[-1]
        for f in previous if whole_history else []:
            f.attrs = {}
        frames.append(grids_of(t, previous=previous))
        plans.append(Plan.from_grids(frames[-1], plan_id=f"p{i}"))
    assert_never_reused(plans)
    for plan in plans:
        assert plan.grids["code"].str.fullmatch(r"\d{15}").all()
        assert all(c.startswith(p) for c, p in zip(plan.codes, plan.grids["community_code"]))


def lattice(weights: list[int], cols: int = 4, within: bool = False) -> gpd.GeoDataFrame:
    n = len(weights)
    return gpd.GeoDataFrame(
        {
            "code": [f"360722001001{i + 1:03d}" for i in range(n)],
            "households": weights,
            "town": ["t1" if (i % cols) < cols // 2 or not within else "t2" for i in range(n)],
        },
        geometry=[
            shapely.box(X0 + 100 * (i % cols), Y0 + 100 * (i // cols), X0 + 100 * (i % cols + 1),
                        Y0 + 100 * (i // cols + 1))
            for i in range(n)
        ],
        crs=CRS,
    )


@settings(max_examples=15, deadline=None)
@given(
    rounds=st.lists(
        st.tuples(st.lists(st.integers(1, 50), min_size=8, max_size=8), st.integers(2, 5)),
        min_size=2,
        max_size=4,
    ),
    within=st.booleans(),
)
def test_regroup_never_reuses_a_code_across_a_sequence_of_plans(rounds, within) -> None:
    plans: list[Plan] = []
    for i, (weights, k) in enumerate(rounds):
        base = lattice(weights, within=within)
        groups = regroup(
            base, k, within="town" if within else None, previous=plans[-1] if plans else None
        )
        plans.append(Plan.from_regroup(groups, plan_id=f"b{i}"))
    assert_never_reused(plans)


def test_previous_with_identical_input_gives_identical_grids() -> None:
    t = make_territory(5, n_units=120)
    first = grids_of(t)
    again = grids_of(t, previous=Plan.from_grids(first, plan_id="p"))
    assert again.attrs["kept_codes"] == sorted(first["code"])
    assert again.attrs["retired_codes"] == []
    for frame in (first, again):
        frame.attrs = {}
    assert_geodataframe_equal(first, again)

    base = lattice([5, 9, 3, 7, 1, 8, 2, 6, 4, 5, 3, 7])
    groups = regroup(base, 4)
    same = regroup(base, 4, previous=Plan.from_regroup(groups, plan_id="b"))
    assert same.attrs["kept_codes"] == sorted(groups["code"])
    for frame in (groups, same):
        frame.attrs = {}
    assert_geodataframe_equal(groups, same)


def test_new_serials_go_above_every_retired_serial() -> None:
    t = make_territory(2, n_units=120)
    first = grids_of(t)
    ghost = "360722001003050"  # retired long ago
    plan = Plan.from_grids(first, plan_id="p", retired_codes=[ghost])
    units = change(t, "360722001003", "households", np.random.default_rng(0))
    after = grids_of(t, units, previous=plan)
    new = sorted(set(after["code"]) - set(first["code"]))
    assert new and all(c.startswith("360722001003") and int(c[-3:]) > 50 for c in new)
    assert ghost in after.attrs["retired_codes"]
    # a plan of the new grids carries the whole history forward
    assert Plan.from_grids(after, plan_id="q").used_codes == plan.used_codes | set(new)


def test_a_grid_keeps_its_code_by_members_when_geometry_moved() -> None:
    base = lattice([5, 9, 3, 7, 1, 8, 2, 6, 4, 5, 3, 7])
    groups = regroup(base, 4)
    plan = Plan.from_regroup(groups, plan_id="b")
    # the base grids are redrawn (shifted 40 m): the same members keep the same codes
    moved = base.set_geometry(base.geometry.translate(40, 0))
    again = regroup(moved, 4, previous=plan)
    assert dict(zip(again["code"], again["members"])) == dict(plan.members)


def test_regroup_previous_keeps_codes_within_their_class() -> None:
    base = lattice([5, 9, 3, 7, 1, 8, 2, 6, 4, 5, 3, 7], within=True)
    groups = regroup(base, 4, within="town")
    assert all(c.startswith(("t1-", "t2-")) for c in groups["code"])
    plan = Plan.from_regroup(groups, plan_id="b")
    same = regroup(base, 4, within="town", previous=plan)
    assert same["code"].tolist() == groups["code"].tolist()
    changed = base.assign(households=base["households"].where(base["town"] == "t1", 20))
    again = regroup(changed, 5, within="town", previous=plan)
    old = dict(zip(groups["code"], groups["members"]))
    for code, members in zip(again["code"], again["members"]):
        town = base.set_index("code").loc[members[0], "town"]
        assert code.startswith(f"{town}-")
        if code in old:
            assert old[code] == members or iou(
                again.set_index("code").geometry[code], groups.set_index("code").geometry[code]
            ) >= 0.99
        else:
            top = max(int(c.split("-")[1]) for c in old if c.startswith(f"{town}-"))
            assert int(code.split("-")[1]) > top


def test_previous_of_the_wrong_level_or_kind() -> None:
    t = make_territory(1, n_units=40)
    base = lattice([5, 9, 3, 7])
    business = Plan.from_regroup(regroup(base, 2), plan_id="b")
    with pytest.raises(InputError, match="make_grids: previous plan 'b' is a business plan"):
        grids_of(t, previous=business)
    with pytest.raises(InputError, match="regroup: previous plan 'p' is a base plan"):
        regroup(base, 2, previous=Plan.from_grids(base, plan_id="p"))
    with pytest.raises(InputError, match="make_grids: previous is an empty sequence"):
        grids_of(t, previous=[])
    with pytest.raises(InputError, match=r"previous\[0\] is dict; give a Plan or grids"):
        regroup(base, 2, previous=[{"code": "x"}])


def test_serials_run_out_at_999() -> None:
    t = make_territory(2, n_units=120)
    first = grids_of(t)
    plan = Plan.from_grids(first, plan_id="p", retired_codes=["360722001003999"])
    units = change(t, "360722001003", "households", np.random.default_rng(0))
    with pytest.raises(InfeasibleError, match="community 360722001003 needs serial 1000"):
        grids_of(t, units, previous=plan)


def zone_border_row(n: int, frac: float, seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``n`` communities of 0.01° in a west–east row (EPSG:4490) whose centre lies
    ``frac`` half-widths west of 115.5°E, the border of the Gauss–Krüger zones of
    114°E and 117°E: dropping the westernmost moves the centre east across it."""
    w = 0.01
    x0 = 115.5 - frac * w / 2 - n * w / 2
    comms = gpd.GeoDataFrame(
        {"code": [f"360722001{i + 1:03d}" for i in range(n)], "type": "urban"},
        geometry=[shapely.box(x0 + i * w, 25.3, x0 + (i + 1) * w, 25.31) for i in range(n)],
        crs="EPSG:4490",
    )
    rng = np.random.default_rng(seed)
    m = 30 * n
    xs = x0 + n * w * rng.uniform(0.001, 0.999, m)
    ys = 25.3 + 0.01 * rng.uniform(0.01, 0.99, m)
    hh = rng.integers(10, 60, m)
    units = gpd.GeoDataFrame(
        {"households": hh, "population": hh * 3},
        geometry=gpd.points_from_xy(xs, ys),
        crs="EPSG:4490",
    )
    return comms, units


@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(2, 4),
    frac=st.floats(0.1, 0.9),
    seed=st.integers(0, 10_000),
    as_plan=st.booleans(),
)
def test_dropping_a_community_across_a_zone_border_keeps_the_others(n, frac, seed, as_plan) -> None:
    from gridgeo.crs import metric_crs

    comms, units = zone_border_row(n, frac, seed)
    rest = comms.iloc[1:]
    assert metric_crs(rest) != metric_crs(comms)  # the county's centre crosses the border
    first = make_grids(units, within=comms, max_households=300, seed=3)
    previous = Plan.from_grids(first, plan_id="p0") if as_plan else first
    kept = units[shapely.covered_by(units.geometry.to_numpy(), rest.union_all())]
    after = make_grids(kept, within=rest, max_households=300, seed=3, previous=previous)
    old, new = by_code(first), by_code(after)
    for code in rest["code"]:
        assert_same_grids(old, new, code)
    dropped = first["community_code"] == comms["code"].iloc[0]
    assert set(after.attrs["retired_codes"]) == set(first["code"][dropped])
