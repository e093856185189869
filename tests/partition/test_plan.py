"""Plan: validation (every error named), dates in force, constructors, used codes."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from gridgeo.errors import CRSError, InputError, ValidationError
from gridgeo.partition import Plan, regroup, used_codes

CRS = "EPSG:4547"
X0, Y0 = 600_000.0, 2_800_000.0


def boxes(n: int, *, prefix: str = "360722001001") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": [f"{prefix}{i + 1:03d}" for i in range(n)],
            "community_code": [prefix] * n,
            "households": [100 + i for i in range(n)],
        },
        geometry=[shapely.box(X0 + 100 * i, Y0, X0 + 100 * (i + 1), Y0 + 100) for i in range(n)],
        crs=CRS,
    )


@pytest.fixture
def grids() -> gpd.GeoDataFrame:
    return boxes(3)


def test_from_grids_copies_and_reads_retired_codes(grids) -> None:
    grids.attrs["retired_codes"] = ["360722001001009"]
    plan = Plan.from_grids(grids, plan_id="base-1", name="一期")
    assert plan.level == "base" and plan.members is None and plan.is_draft
    assert plan.retired_codes == frozenset({"360722001001009"})
    assert plan.used_codes == frozenset(grids["code"]) | {"360722001001009"}
    grids.loc[0, "households"] = -1  # the plan holds its own copy
    assert plan.grids.loc[0, "households"] == 100
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.plan_id = "x"  # type: ignore[misc]


def test_from_regroup_keeps_members_and_assignment(grids) -> None:
    groups = regroup(grids, 2)
    plan = Plan.from_regroup(groups, plan_id="biz-1", base_plan="base-1")
    assert plan.level == "business" and plan.base_plan == "base-1"
    assert "members" not in plan.grids.columns
    assert dict(plan.members) == dict(zip(groups["code"], groups["members"]))
    assign = plan.assignment
    assert assign.to_dict() == groups.attrs["assignment"]


def test_replace_validates_again(grids) -> None:
    plan = Plan.from_grids(grids, plan_id="p", valid_from="2025-01-01")
    assert plan.replace(valid_to=date(2026, 1, 1)).valid_to == date(2026, 1, 1)
    with pytest.raises(InputError, match="valid_to 2024-01-01 must be after valid_from"):
        plan.replace(valid_to="2024-01-01")


@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 1, 1)),
    days=st.one_of(st.none(), st.integers(1, 4000)),
    probe=st.dates(min_value=date(1999, 1, 1), max_value=date(2052, 1, 1)),
)
def test_in_force_is_the_half_open_interval(start, days, probe) -> None:
    end = None if days is None else start + timedelta(days=days)
    plan = Plan.from_grids(boxes(1), plan_id="p", valid_from=start, valid_to=end)
    expected = start <= probe and (end is None or probe < end)
    assert plan.in_force(probe) is expected
    assert plan.in_force(datetime(probe.year, probe.month, probe.day, 23, 59)) is expected
    assert plan.in_force(probe.isoformat()) is expected
    assert Plan.from_grids(boxes(1), plan_id="d").in_force(probe) is False  # a draft


def test_repr(grids) -> None:
    plan = Plan.from_grids(grids, plan_id="p", valid_from="2025-01-01", valid_to="2026-01-01")
    assert repr(plan) == "Plan('p', level='base', 3 grids, in force 2025-01-01..2026-01-01)"
    assert repr(Plan.from_grids(grids, plan_id="q")) == "Plan('q', level='base', 3 grids, draft)"


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"plan_id": ""}, InputError, "plan_id was ''; use a letter or digit"),
        ({"plan_id": "a b"}, InputError, "plan_id was 'a b'"),
        ({"plan_id": 7}, InputError, "plan_id was 7"),
        ({"level": "county"}, InputError, r"level was 'county'; expected one of \('base'"),
        ({"name": None}, InputError, "name was None; give a string"),
        ({"name": "a\x00b"}, InputError, r"name was 'a\\x00b'; give a string without NUL"),
        ({"valid_from": "soon"}, InputError, "valid_from was 'soon'; give a date"),
        ({"valid_to": "2025-01-01"}, InputError, "valid_to is 2025-01-01 but valid_from is None"),
        (
            {"valid_from": "2025-01-01", "valid_to": "2025-01-01"},
            InputError,
            "valid_to 2025-01-01 must be after valid_from 2025-01-01",
        ),
        ({"base_plan": "b"}, InputError, "base_plan is for business plans only"),
        ({"members": {"x": ["a"]}}, ValidationError, "a base plan has no members"),
    ],
)
def test_bad_fields_are_named(grids, changes, error, match) -> None:
    kwargs = {"plan_id": "p", "grids": grids, **changes}
    with pytest.raises(error, match=match):
        Plan(**kwargs)


def test_grids_must_be_a_geodataframe_with_a_crs(grids) -> None:
    with pytest.raises(InputError, match="grids must be a GeoDataFrame, not DataFrame"):
        Plan(plan_id="p", grids=pd.DataFrame(grids.drop(columns="geometry")))
    with pytest.raises(CRSError, match="plan 'p': the grids have no CRS"):
        Plan(plan_id="p", grids=grids.set_crs(None, allow_override=True))


def test_every_grid_problem_is_listed_at_once(grids) -> None:
    bad = grids.copy()
    bad.loc[1, "code"] = bad.loc[0, "code"]
    bad.loc[2, "code"] = "360722009009001"  # not in its community
    bad["plan_id"] = "x"
    bad = pd.concat(
        [bad, bad.iloc[[0]].assign(code="z", geometry=[shapely.Point(0, 0)])], ignore_index=True
    )
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    bad = pd.concat([bad, bad.iloc[[0]].assign(code="bow", geometry=[bowtie])], ignore_index=True)
    bad = pd.concat(
        [bad, bad.iloc[[0]].assign(code=None, geometry=[shapely.Polygon()])], ignore_index=True
    )
    with pytest.raises(ValidationError, match="plan 'p' has 8 problems") as info:
        Plan(plan_id="p", grids=gpd.GeoDataFrame(bad, crs=CRS), retired_codes={"z"})
    text = "\n".join(info.value.problems)
    for part in (
        r"reserved column\(s\) \['plan_id'\]",
        r"codes must be non-empty strings; bad at rows \['5'\]",
        r"duplicate codes \['360722001001001'\]",
        r"codes \['z'\] are retired; codes are never reused",
        r"codes \['360722009009001', 'z', 'bow'\] do not start with their community_code",
        r"grids must be polygons; not at rows \['z'\]",
        r"invalid geometries at rows \['bow'\]",
    ):
        assert pd.Series([text]).str.contains(part).iloc[0], part
    assert "empty geometries at rows ['None']" in text


def test_empty_grids_and_missing_code(grids) -> None:
    with pytest.raises(ValidationError, match="the grids are empty"):
        Plan(plan_id="p", grids=grids.iloc[:0])
    with pytest.raises(ValidationError, match="the grids have no 'code' column"):
        Plan(plan_id="p", grids=grids.drop(columns="code"))


@pytest.mark.parametrize(
    ("members", "match"),
    [
        (None, "a business plan needs members"),
        ([("G1", "a")], "members must be a mapping code → base codes, not list"),
        ({"G1": "a", "G2": ["b"]}, "members of 'G1' must be a list of base codes, not 'a'"),
        ({"G1": ["a"]}, r"business grids \['G2'\] have no members"),
        ({"G1": ["a"], "G2": ["b"], "G3": ["c"]}, r"members name business grids \['G3'\]"),
        ({"G1": ["a"], "G2": []}, r"business grids \['G2'\] have an empty member list"),
        ({"G1": ["a", "b"], "G2": ["b"]}, r"base grids are in two business grids: b \(in G1"),
    ],
)
def test_business_members_are_checked(members, match) -> None:
    groups = gpd.GeoDataFrame(
        {"code": ["G1", "G2"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
        crs=CRS,
    )
    with pytest.raises(ValidationError, match=match):
        Plan(plan_id="b", grids=groups, level="business", members=members)


def test_from_regroup_needs_members_and_code(grids) -> None:
    with pytest.raises(InputError, match="regroup output needs a 'members' column"):
        Plan.from_regroup(grids, plan_id="b")
    groups = regroup(grids, 2)
    with pytest.raises(InputError, match="the groups have no 'code' column"):
        Plan.from_regroup(groups.drop(columns="code"), plan_id="b")


def test_assignment_of_a_base_plan(grids) -> None:
    with pytest.raises(InputError, match="plan 'p' is a base plan; it has no members"):
        _ = Plan.from_grids(grids, plan_id="p").assignment


def test_in_force_needs_a_date(grids) -> None:
    plan = Plan.from_grids(grids, plan_id="p", valid_from="2025-01-01")
    with pytest.raises(InputError, match="on was None"):
        plan.in_force(None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="on was 3; give a date"):
        plan.in_force(3)  # type: ignore[arg-type]


def test_used_codes_over_a_sequence(grids) -> None:
    first = Plan.from_grids(grids, plan_id="p1")
    second = grids.iloc[1:].copy()
    second.attrs["retired_codes"] = [grids["code"].iloc[0], "360722001001077"]
    assert used_codes([first, second]) == frozenset(grids["code"]) | {"360722001001077"}
    assert used_codes(None) == frozenset()
    with pytest.raises(InputError, match=r"previous\[1\] is str; give a Plan or grids"):
        used_codes([first, "grids"])
    with pytest.raises(InputError, match=r"previous\[0\] is a frame with columns \['x'\]"):
        used_codes(pd.DataFrame({"x": [1]}))
    with pytest.raises(CRSError, match=r"previous\[0\] has no CRS"):
        used_codes(grids.set_crs(None, allow_override=True))
