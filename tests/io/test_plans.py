"""Plans in the workspace: round trip, legacy workspaces, adoption, the grids layer in force."""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import date, timedelta

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.errors import InputError, NotFound, ValidationError
from gridgeo.io import (
    adopt_plan,
    plan_in_force,
    read_plan,
    read_plans,
    read_workspace,
    refresh_grids,
    save_plan,
    write_workspace,
)
from gridgeo.io.workspace import LEGACY_PLAN_ID, PLAN_TABLES
from gridgeo.partition import Plan, regroup

X0, Y0, STEP = 114.90, 25.30, 0.01


def cell_grids(households: list[int], *, serial0: int = 1, crs: str = "EPSG:4490"):
    n = len(households)
    comm = "360722001001"
    gdf = gpd.GeoDataFrame(
        {
            "code": [f"{comm}{serial0 + i:03d}" for i in range(n)],
            "community_code": [comm] * n,
            "households": households,
            "population": [3 * h for h in households],
            "kind": ["comprehensive"] * n,
            "oversize": [False] * n,
            "area_km2": [1.0 + i / 7 for i in range(n)],
        },
        geometry=[
            shapely.box(X0 + STEP * i, Y0, X0 + STEP * (i + 1), Y0 + STEP) for i in range(n)
        ],
        crs="EPSG:4490",
    )
    return gdf.to_crs(crs)


@pytest.fixture
def ws(tmp_path, tiny_workspace) -> str:
    """The tiny workspace (grids layer, no plans table): a legacy workspace."""
    path = str(tmp_path / "ws.gpkg")
    write_workspace(tiny_workspace, path)
    return path


def assert_same_plan(a: Plan, b: Plan) -> None:
    for field in ("plan_id", "name", "level", "valid_from", "valid_to", "retired_codes"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.base_plan == b.base_plan
    assert (None if a.members is None else dict(a.members)) == (
        None if b.members is None else dict(b.members)
    )
    assert list(a.grids.columns) == list(b.grids.columns)
    assert a.grids.crs.equals(b.grids.crs)
    ga, gb = a.grids, b.grids
    for col in ga.columns:
        if col == ga.geometry.name:
            assert ga.geometry.geom_equals_exact(gb.geometry, tolerance=1e-9).all()
        else:
            assert ga[col].tolist() == gb[col].tolist(), col
            assert ga[col].dtype == gb[col].dtype, col


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    households=st.lists(st.integers(0, 900), min_size=1, max_size=6),
    k=st.integers(1, 6),
    start=st.one_of(st.none(), st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1))),
    days=st.one_of(st.none(), st.integers(1, 3000)),
    retired=st.sets(st.integers(50, 99), max_size=3),
    crs=st.sampled_from(["EPSG:4490", "EPSG:4547"]),
    name=st.text(st.characters(exclude_characters="\x00"), max_size=12),  # Plan refuses NUL
)
def test_plans_round_trip(households, k, start, days, retired, crs, name) -> None:
    grids = cell_grids(households, crs=crs)
    end = None if start is None or days is None else start + timedelta(days=days)
    base = Plan.from_grids(
        grids,
        plan_id="base-1",
        name=name,
        valid_from=start,
        valid_to=end,
        retired_codes=[f"360722001001{r:03d}" for r in retired],
    )
    groups = regroup(grids, min(k, len(grids)), within="community_code")
    business = Plan.from_regroup(groups, plan_id="biz.1", base_plan="base-1", name="业务网格")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ws.gpkg")
        save_plan(path, base)
        save_plan(path, business)
        back = {p.plan_id: p for p in read_plans(path)}
        assert sorted(back) == ["base-1", "biz.1"]
        assert_same_plan(base, back["base-1"])
        assert_same_plan(business, back["biz.1"])
        assert_same_plan(business, read_plan(path, "biz.1"))


def test_a_legacy_workspace_is_one_implicit_plan(ws) -> None:
    grids = read_workspace(ws)["grids"]
    (plan,) = read_plans(ws)
    assert plan.plan_id == LEGACY_PLAN_ID and plan.level == "base"
    assert plan.valid_from == date.min and plan.valid_to is None
    assert plan.codes == tuple(grids["code"])
    assert plan_in_force(ws, "1990-01-01").plan_id == LEGACY_PLAN_ID
    assert read_plan(ws, LEGACY_PLAN_ID).codes == plan.codes
    assert refresh_grids(ws) is None  # nothing to refresh without plans


def test_a_file_without_grids_has_no_plans(tmp_path, tiny_workspace) -> None:
    path = str(tmp_path / "w.gpkg")
    ws = tiny_workspace
    write_workspace({"towns": ws["towns"]}, path, layers=["towns"])
    assert read_plans(path) == []
    with pytest.raises(NotFound, match=r"has no plan 'x'; its plans are \[\]"):
        read_plan(path, "x")
    with pytest.raises(NotFound, match=r"no base plan of workspace .* is in force on 2025-01-01"):
        plan_in_force(path, "2025-01-01")


def next_plan(ws: str, plan_id: str, *, households: int) -> Plan:
    """The legacy grids with one grid redrawn as a new one (a new code)."""
    old = read_plan(ws, LEGACY_PLAN_ID)
    grids = old.grids.copy()
    grids.loc[0, "code"] = grids.loc[0, "community_code"] + "003"
    grids.loc[0, "households"] = households
    return Plan.from_grids(grids, plan_id=plan_id, retired_codes=[old.codes[0]])


def test_adopt_closes_the_previous_plan_and_rewrites_grids(ws) -> None:
    plan = next_plan(ws, "base-2026", households=999)
    save_plan(ws, plan)
    # saving keeps the legacy layer as a plan and leaves the grids layer alone
    assert [p.plan_id for p in read_plans(ws)] == [LEGACY_PLAN_ID, "base-2026"]
    assert read_workspace(ws)["grids"]["households"].iloc[0] != 999
    adopted = adopt_plan(ws, "base-2026", valid_from="2026-01-01", today="2026-02-01")
    assert adopted.valid_from == date(2026, 1, 1)
    legacy, new = read_plans(ws)
    assert legacy.valid_to == date(2026, 1, 1) and new.valid_from == date(2026, 1, 1)
    assert plan_in_force(ws, "2025-12-31").plan_id == LEGACY_PLAN_ID
    assert plan_in_force(ws, "2026-01-01").plan_id == "base-2026"
    layers = read_workspace(ws)  # the grids layer is the plan in force, and still valid
    assert layers["grids"]["code"].tolist() == list(plan.codes)
    assert layers["grids"]["households"].iloc[0] == 999
    assert not set(PLAN_TABLES) & set(layers)
    assert set(PLAN_TABLES) <= set(read_workspace(ws, only=["grids", *PLAN_TABLES]))


def _hold_the_store(path: str, held, release) -> None:
    """In another process (SQLite's locks are per process): a report being stored, slowly."""
    from gridgeo.io.store import open_store

    with open_store(path) as store, store._write():
        held.set()
        release.wait(20)


def test_plans_are_written_beside_a_store_that_is_writing(ws) -> None:
    """A plan saved and adopted while a live store (another process) is writing waits for
    it; GDAL does not wait for SQLite's lock, and its layer rewrite failed now and then."""
    import multiprocessing as mp
    import time

    plan = next_plan(ws, "base-2026", households=999)
    ctx = mp.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_the_store, args=(ws, held, release))
    proc.start()
    try:
        assert held.wait(60), "the store process did not start writing"
        t0 = time.monotonic()
        threading.Timer(1.0, release.set).start()
        save_plan(ws, plan)
        adopt_plan(ws, "base-2026", valid_from="2026-01-01", today="2026-02-01")
        waited = time.monotonic() - t0
    finally:
        release.set()
        proc.join(30)
    assert proc.exitcode == 0
    assert waited >= 0.9  # it waited for the store's write
    assert [p.plan_id for p in read_plans(ws)] == [LEGACY_PLAN_ID, "base-2026"]
    assert read_workspace(ws)["grids"]["households"].iloc[0] == 999


def test_a_plan_adopted_ahead_reaches_grids_on_its_day(ws) -> None:
    save_plan(ws, next_plan(ws, "base-2027", households=777))
    adopt_plan(ws, "base-2027", valid_from="2027-01-01", today="2026-06-01")
    assert read_workspace(ws)["grids"]["households"].iloc[0] != 777
    assert refresh_grids(ws, today="2026-12-31").plan_id == LEGACY_PLAN_ID
    assert read_workspace(ws)["grids"]["households"].iloc[0] != 777
    assert refresh_grids(ws, today="2027-01-01").plan_id == "base-2027"
    assert read_workspace(ws)["grids"]["households"].iloc[0] == 777


def test_a_business_plan_never_changes_grids(ws) -> None:
    before = read_workspace(ws)["grids"]
    groups = regroup(before, 4, within="community_code")
    save_plan(ws, Plan.from_regroup(groups, plan_id="biz-1", base_plan=LEGACY_PLAN_ID))
    adopt_plan(ws, "biz-1", valid_from="2025-01-01", today="2025-06-01")
    assert plan_in_force(ws, "2025-06-01", level="business").plan_id == "biz-1"
    assert read_workspace(ws)["grids"]["code"].tolist() == before["code"].tolist()
    with pytest.raises(NotFound, match=r"no business plan .* on 2024-12-31; adopted: \['biz-1"):
        plan_in_force(ws, "2024-12-31", level="business")


def test_adopt_errors(ws) -> None:
    save_plan(ws, next_plan(ws, "base-2026", households=10))
    with pytest.raises(NotFound, match=r"has no plan 'nope'; its plans are \['legacy'"):
        adopt_plan(ws, "nope", valid_from="2026-01-01")
    with pytest.raises(InputError, match=r"plan 'legacy' is already adopted \(in force 0001-01-01"):
        adopt_plan(ws, LEGACY_PLAN_ID, valid_from="2026-01-01")
    with pytest.raises(InputError, match="valid_from was None"):
        adopt_plan(ws, "base-2026", valid_from=None)  # type: ignore[arg-type]
    adopt_plan(ws, "base-2026", valid_from="2026-01-01", today="2025-01-01")
    save_plan(ws, next_plan(ws, "base-2025", households=20).replace(retired_codes=()))
    with pytest.raises(InputError, match="'base-2026' is in force from 2026-01-01, not before"):
        adopt_plan(ws, "base-2025", valid_from="2025-06-01")
    with pytest.raises(NotFound, match=r"workspace file '.*missing.gpkg' does not exist"):
        adopt_plan(os.path.join(os.path.dirname(ws), "missing.gpkg"), "x", valid_from="2026-01-01")


def test_save_errors(ws) -> None:
    plan = next_plan(ws, "base-2026", households=10)
    save_plan(ws, plan)
    with pytest.raises(InputError, match="already has plan 'base-2026'; pass overwrite=True"):
        save_plan(ws, plan)
    save_plan(ws, plan.replace(name="renamed"), overwrite=True)
    assert read_plan(ws, "base-2026").name == "renamed"
    # a code the new plan retired may not come back in another plan
    reuse = read_plan(ws, LEGACY_PLAN_ID).replace(plan_id="again", valid_from=None)
    with pytest.raises(InputError, match=r"codes \['360722001001001'\] that plan 'base-2026'"):
        save_plan(ws, reuse)
    dated = plan.replace(plan_id="dated", valid_from="2020-01-01")
    with pytest.raises(InputError, match=r"overlaps base plan 'legacy' \(0001-01-01..\)"):
        save_plan(ws, dated)
    bad = plan.grids.drop(columns="households")
    with pytest.raises(ValidationError, match=r"missing column\(s\) \['households'\]"):
        save_plan(ws, Plan.from_grids(bad, plan_id="bad"))
    with pytest.raises(InputError, match=r"plan must be a gridgeo\.partition\.Plan, not dict"):
        save_plan(ws, {"plan_id": "x"})  # type: ignore[arg-type]


def test_plans_read_in_their_own_crs(tmp_path) -> None:
    path = str(tmp_path / "w.gpkg")
    first = Plan.from_grids(cell_grids([100, 200]), plan_id="a")
    second = Plan.from_grids(cell_grids([100, 200], serial0=3, crs="EPSG:4547"), plan_id="b")
    save_plan(path, first)
    save_plan(path, second)
    back = {p.plan_id: p for p in read_plans(path)}
    assert back["a"].grids.crs.equals(first.grids.crs)
    assert back["b"].grids.crs.equals(second.grids.crs)
    assert np.allclose(back["b"].grids.total_bounds, second.grids.total_bounds, atol=1e-3)
