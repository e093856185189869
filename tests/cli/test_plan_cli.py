"""``gridgeo plan list|show|diff|adopt|refresh`` and ``--save-plan`` of partition/regroup.

The workspace is the suite's tiny county (4 communities of 2 base grids, 2 towns) with
two business plans: ``biz-a``, one business grid per community, in force since
2024-01-01, and the draft ``biz-b``, one per town. A third 消防 zone, a sliver inside
town 1, keeps no business grid once aligned.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner, Result

from gridgeo.cli import main
from gridgeo.io.workspace import adopt_plan, read_plan, read_plans, save_plan, write_workspace
from gridgeo.partition import Plan, check_alignment, crosswalk
from gridgeo.partition.crosswalk import CHANGES, grid_changes


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(*args: str) -> str:
    result = _run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _user_error(result: Result) -> str:
    """The one ``Error: …`` line of a run that failed as a user error should."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def _business(grids: gpd.GeoDataFrame, by: str, prefix: str, plan_id: str) -> Plan:
    """A business plan grouping the base grids by ``by``; codes ``prefix01``…"""
    groups = []
    for k, (_, part) in enumerate(grids.groupby(by, sort=True)):
        groups.append(
            {
                "code": f"{prefix}{k + 1:02d}",
                "members": tuple(sorted(part["code"])),
                "households": int(part["households"].sum()),
                "geometry": shapely.union_all(part.geometry.to_numpy()),
            }
        )
    frame = gpd.GeoDataFrame(groups, crs=grids.crs)
    return Plan.from_regroup(frame, plan_id=plan_id, name=f"by {by}", base_plan="legacy")


@pytest.fixture
def ws(tmp_path, tiny_workspace) -> Path:
    """The tiny workspace with biz-a adopted from 2024-01-01 and the draft biz-b."""
    layers = dict(tiny_workspace)
    zones = layers["zones"]
    sliver = shapely.box(114.9001, 25.3001, 114.9002, 25.3002)
    zones.loc[len(zones)] = ["消防", "XF03", "消防三区", sliver]
    path = tmp_path / "ws.gpkg"
    write_workspace(layers, path)
    grids = layers["grids"]
    grids["town_code"] = grids["community_code"].str[:9]
    save_plan(path, _business(grids, "community_code", "C", "biz-a"))
    adopt_plan(path, "biz-a", valid_from="2024-01-01")
    save_plan(path, _business(grids, "town_code", "T", "biz-b"))
    return path


def test_list_marks_the_plans_in_force_today(ws) -> None:
    out = _ok("plan", "list", ws)
    rows = {ln.split()[1] if ln.startswith("*") else ln.split()[0]: ln for ln in out.splitlines()}
    assert rows["legacy"].startswith("*") and rows["biz-a"].startswith("*")
    assert not rows["biz-b"].startswith("*") and "draft" in rows["biz-b"]
    assert "2024-01-01" in rows["biz-a"]
    assert f"in force today ({date.today()})" in out


def test_show_lists_codes_and_members(ws) -> None:
    out = _ok("plan", "show", ws, "biz-b")
    plan = read_plan(ws, "biz-b")
    assert "level      business (over legacy)" in out and "draft" in out
    for code, members in plan.members.items():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(code))
        assert " ".join(members) in line


def test_diff_counts_changes_and_writes_the_crosswalk(ws, tmp_path) -> None:
    csv = tmp_path / "cw.csv"
    out = _ok("plan", "diff", ws, "biz-a", "biz-b", "-o", csv)
    layers = {n: gpd.read_file(ws, layer=n) for n in ("buildings", "incidents")}
    want = crosswalk(
        read_plan(ws, "biz-a"),
        read_plan(ws, "biz-b"),
        units=layers["buildings"],
        incidents=layers["incidents"],
    )
    counts = grid_changes(want)["change"].value_counts()
    assert counts.get("merged") == 4  # each community merged into its town, by construction
    assert "  ".join(f"{c} {counts.get(c, 0)}" for c in CHANGES) in out
    assert "with the buildings and incidents of ws.gpkg" in out
    got = pd.read_csv(csv, encoding="utf-8-sig")
    assert got["new_code"].tolist() == want["new_code"].tolist()
    assert got["households"].tolist() == want["households"].tolist()
    assert got["incidents"].sum() == len(layers["incidents"])


def test_adopt_closes_the_previous_plan_and_realigns_zones(ws) -> None:
    out = _ok("plan", "adopt", ws, "biz-b", "--from", "2025-01-01")
    plans = {q.plan_id: q for q in read_plans(ws)}
    assert plans["biz-a"].valid_to == date(2025, 1, 1)
    assert plans["biz-b"].valid_from == date(2025, 1, 1) and plans["biz-b"].valid_to is None
    assert "plan 'biz-a' now ends on 2025-01-01" in out

    grids = plans["biz-b"].grids
    zones = gpd.read_file(ws, layer="zones")
    beats = gpd.read_file(ws, layer="beats")
    assert check_alignment(zones, grids).empty
    assert check_alignment(beats, grids, by=None).empty
    assert set(zones["aligned_to"]) == {"biz-b"}
    assert {m for ms in zones["members"] for m in ms.split(",")} <= set(grids["code"])
    # the sliver zone keeps no business grid: kept, flagged, with its drawn geometry
    parked = gpd.read_file(ws, layer="zones_no_grid")
    assert parked["code"].tolist() == ["XF03"] and parked["no_grid"].all()
    assert not parked.geometry.is_empty.any()
    assert "消防 zone XF03 (layer 'zones') has no grid" in out
    assert "1 left with no grid, kept in layer 'zones_no_grid'" in out
    assert len(zones) + len(parked) == 4


def test_refresh_takes_parked_zones_back_in(ws) -> None:
    _ok("plan", "adopt", ws, "biz-b", "--from", "2025-01-01")
    drawn = gpd.read_file(ws, layer="zones")
    out = _ok("plan", "refresh", ws)
    assert "re-aligned to plan 'biz-b'" in out and "XF03" in out
    again = gpd.read_file(ws, layer="zones")
    assert again["members"].tolist() == drawn["members"].tolist()
    assert gpd.read_file(ws, layer="zones_no_grid")["code"].tolist() == ["XF03"]


def test_adopt_from_a_later_day_leaves_zones(ws) -> None:
    before = gpd.read_file(ws, layer="zones")
    out = _ok("plan", "adopt", ws, "biz-b", "--from", "2999-01-01")
    assert "comes into force on 2999-01-01" in out and "gridgeo plan refresh" in out
    assert gpd.read_file(ws, layer="zones").geometry.geom_equals(before.geometry).all()


def test_adopt_base_plan_leaves_zones_to_the_business_plan(ws) -> None:
    grids = read_plan(ws, "legacy").grids
    new = grids.assign(households=grids["households"] + 1)
    new["code"] = [c[:-3] + f"{int(c[-3:]) + 10:03d}" for c in new["code"]]
    save_plan(ws, Plan.from_grids(new, plan_id="base-2", retired_codes=grids["code"]))
    out = _ok("plan", "adopt", ws, "base-2", "--from", "2026-01-01")
    assert "layer 'grids' now holds this plan" in out
    assert "department zones follow business plan 'biz-a', not re-aligned" in out
    assert gpd.read_file(ws, layer="grids")["code"].tolist() == new["code"].tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "{ws}", "nope"), "has no plan 'nope'; its plans are"),
        (("diff", "{ws}", "biz-a", "nope"), "has no plan 'nope'"),
        (("adopt", "{ws}", "nope", "--from", "2025-01-01"), "has no plan 'nope'"),
        (("adopt", "{ws}", "biz-b", "--from", "2025-13-01"), "--from was '2025-13-01'"),
        (("adopt", "{ws}", "biz-b", "--from", "soon"), "--from was 'soon'"),
        (
            ("adopt", "{ws}", "biz-b", "--from", "2023-06-01"),
            "plan 'biz-a' is in force from 2024-01-01, not before 2023-06-01",
        ),
        (("adopt", "{ws}", "biz-a", "--from", "2025-01-01"), "plan 'biz-a' is already adopted"),
        (("list", "{missing}"), "missing.gpkg' does not exist"),
        (("show", "{missing}", "biz-a"), "missing.gpkg' does not exist"),
        (("adopt", "{missing}", "biz-a", "--from", "2025-01-01"), "does not exist"),
    ],
)
def test_user_errors_are_one_line(ws, tmp_path, args, message) -> None:
    names = {"ws": ws, "missing": tmp_path / "missing.gpkg"}
    line = _user_error(_run("plan", *(a.format(**names) for a in args)))
    assert message in line
    assert read_plan(ws, "biz-b").is_draft  # nothing adopted by a failed command


def test_regroup_save_plan_keeps_codes_of_unchanged_groups(ws) -> None:
    out = _ok("regroup", ws, "-k", "2", "--save-plan", "biz-c")
    assert "saved draft business plan 'biz-c' (2 grids)" in out
    assert "groups keep their code from 'biz-a'" in out  # the business plan in force
    first = read_plan(ws, "biz-c")
    assert first.is_draft and first.base_plan == "legacy"
    out = _ok("regroup", ws, "-k", "2", "--save-plan", "biz-d", "--previous", "biz-c")
    assert "2 of 2 groups keep their code from 'biz-c'" in out
    assert dict(read_plan(ws, "biz-d").members) == dict(first.members)


def test_regroup_save_plan_issues_new_codes_for_new_groups(ws) -> None:
    _ok("regroup", ws, "-k", "2", "--save-plan", "biz-c", "--previous", "biz-b")
    plan = read_plan(ws, "biz-c")
    used = read_plan(ws, "biz-a").used_codes | read_plan(ws, "biz-b").used_codes
    kept = {c for c in plan.codes if plan.members[c] in read_plan(ws, "biz-b").members.values()}
    assert set(plan.codes) - kept, "k=2 without towns should change a group"
    assert not (set(plan.codes) - kept) & used  # codes are never reused


def test_partition_save_plan(workspace, towns) -> None:
    _ok("partition", workspace, "--save-plan", "base-1", "--plan-name", "first cut")
    first = read_plan(workspace, "base-1")
    assert first.name == "first cut" and first.is_draft
    _ok("plan", "adopt", workspace, "base-1", "--from", "2025-01-01")
    # one town re-cut: the other town keeps its grids and codes, the plan holds both
    town = sorted(set(towns.values()))[0]
    out = _ok(
        "partition", workspace, "--town", town, "--max-households", "300", "--save-plan", "base-2"
    )
    assert "keep their code from 'base-1'" in out
    second = read_plan(workspace, "base-2")
    others = [c for c, t in towns.items() if t != town]
    mine = first.grids[first.grids["community_code"].isin(others)]
    theirs = second.grids[second.grids["community_code"].isin(others)]
    assert theirs["code"].tolist() == mine["code"].tolist()
    assert set(second.grids["community_code"]) == set(first.grids["community_code"])
    recut = set(second.codes) - set(first.codes)
    assert recut and not recut & first.used_codes


def test_save_plan_errors(ws, workspace) -> None:
    line = _user_error(_run("regroup", ws, "-k", "2"))
    assert "give -o/--out, --save-plan PLAN_ID, or both" in line
    line = _user_error(_run("regroup", ws, "-k", "2", "--save-plan", "x", "--previous", "legacy"))
    assert "--previous 'legacy' is not a business plan" in line
    line = _user_error(_run("regroup", ws, "-k", "2", "--save-plan", "biz-a"))
    assert "already has plan 'biz-a'" in line
    line = _user_error(_run("partition", workspace, "--save-plan", "bad id!"))
    assert "plan_id was 'bad id!'" in line
