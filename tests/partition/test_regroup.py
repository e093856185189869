"""Tests for gridgeo.partition.regroup: invariants, exactness against brute force, errors."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from gridgeo.errors import CRSError, InfeasibleError, InputError
from gridgeo.geom import adjacency
from gridgeo.partition import plan_diff, regroup

METRIC = "EPSG:4549"  # CGCS2000 3° GK zone, metres: box lattices in metres


def lattice(
    rows: int, cols: int, weights: list[int] | None = None, *, size: float = 1000.0
) -> gpd.GeoDataFrame:
    """``rows × cols`` square grids of ``size`` metres, codes ``g00..``, row-major."""
    n = rows * cols
    weights = list(range(1, n + 1)) if weights is None else weights
    geoms, codes, cls = [], [], []
    for r in range(rows):
        for c in range(cols):
            geoms.append(shapely.box(c * size, r * size, (c + 1) * size, (r + 1) * size))
            codes.append(f"g{r * cols + c:02d}")
            cls.append(f"C{c // 2}")  # communities: pairs of columns
    return gpd.GeoDataFrame(
        {"code": codes, "households": weights, "community_code": cls}, geometry=geoms, crs=METRIC
    )


def _contiguous(grids: gpd.GeoDataFrame, members: tuple[str, ...]) -> bool:
    sub = grids[grids["code"].isin(members)]
    n, _ = connected_components(adjacency(sub), directed=False)
    return n == 1


def _check_plan(grids: gpd.GeoDataFrame, groups: gpd.GeoDataFrame, k: int) -> None:
    assert len(groups) == k
    assignment = pd.Series(groups.attrs["assignment"])
    assert list(assignment.index) == list(grids["code"])  # aligned with the input rows
    members = [m for ms in groups["members"] for m in ms]
    assert sorted(members) == sorted(grids["code"])  # each grid in exactly one group
    for row in groups.itertuples():
        assert _contiguous(grids, row.members), row.code
        assert set(assignment[list(row.members)]) == {row.code}
        assert row.n_members == len(row.members)
    assert groups["weight"].sum() == pytest.approx(float(grids["households"].sum()))
    assert groups["households"].sum() == grids["households"].sum()
    heaviest = groups["weight"].max()
    assert heaviest >= groups.attrs["lower_bound"] - 1e-9
    assert groups.attrs["gap"] >= -1e-9
    assert groups.crs == grids.crs


def brute_force_minmax(grids: gpd.GeoDataFrame, k: int) -> float:
    """Min over all contiguous k-partitions of the heaviest block (set partitions by RGS)."""
    n = len(grids)
    w = grids["households"].to_numpy(dtype=float)
    a = adjacency(grids)
    best = np.inf

    def contiguous(block: list[int]) -> bool:
        m, _ = connected_components(a[block][:, block], directed=False)
        return m == 1

    def rec(i: int, labels: list[int], used: int) -> None:
        nonlocal best
        if n - i < k - used:
            return
        if i == n:
            if used == k:
                blocks = [[j for j in range(n) if labels[j] == b] for b in range(k)]
                heaviest = max(w[b].sum() for b in blocks)
                if heaviest < best and all(contiguous(b) for b in blocks):
                    best = heaviest
            return
        for b in range(min(used + 1, k)):
            labels.append(b)
            rec(i + 1, labels, max(used, b + 1))
            labels.pop()

    rec(0, [], 0)
    return float(best)


# --- invariants -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4)),
    data=st.data(),
    method=st.sampled_from(["heuristic", "exact"]),
)
def test_invariants(shape, data, method):
    rows, cols = shape
    n = rows * cols
    weights = data.draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    k = data.draw(st.integers(1, n))
    grids = lattice(rows, cols, weights)
    before = grids.copy()
    groups = regroup(grids, k, method=method, seed=1)
    _check_plan(grids, groups, k)
    pd.testing.assert_frame_equal(grids, before)  # input untouched


@settings(max_examples=15, deadline=None)
@given(
    weights=st.lists(st.integers(1, 30), min_size=12, max_size=12),
    extra=st.integers(0, 4),
)
def test_within_respected(weights, extra):
    grids = lattice(3, 4, weights)  # classes C0, C1 (two columns each)
    k = 2 + extra
    groups = regroup(grids, k, within="community_code", method="heuristic", seed=3)
    _check_plan(grids, groups, k)
    cls = dict(zip(grids["code"], grids["community_code"]))
    for row in groups.itertuples():
        assert {cls[m] for m in row.members} == {row.community_code}
        assert row.code.startswith(f"{row.community_code}-")


def test_deterministic_by_seed():
    rng = np.random.default_rng(7)
    grids = lattice(5, 6, rng.integers(100, 600, 30).tolist())
    a = regroup(grids, 8, seed=11, method="heuristic")
    b = regroup(grids, 8, seed=11, method="heuristic")
    assert a.attrs["assignment"] == b.attrs["assignment"]
    c = regroup(grids, 8, seed=np.random.default_rng(11), method="heuristic")
    assert a.attrs["assignment"] == c.attrs["assignment"]


def test_heuristic_contiguous_on_larger_lattice():
    rng = np.random.default_rng(0)
    grids = lattice(6, 10, rng.integers(300, 700, 60).tolist())
    groups = regroup(grids, 17, method="heuristic", seed=0)
    _check_plan(grids, groups, 17)
    assert groups.attrs["method"] == "heuristic"
    # the lower bound is at least the mean and the heaviest single grid
    lb = max(grids["households"].sum() / 17, grids["households"].max())
    assert groups.attrs["lower_bound"] >= lb - 1e-9


# --- exactness --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "cols", "k", "seed"),
    [(2, 3, 2, 0), (2, 3, 3, 1), (2, 4, 3, 2), (2, 4, 4, 3), (1, 7, 3, 4), (2, 4, 2, 5)],
)
def test_exact_matches_brute_force(rows, cols, k, seed):
    rng = np.random.default_rng(seed)
    grids = lattice(rows, cols, rng.integers(1, 100, rows * cols).tolist())
    groups = regroup(grids, k, method="exact")
    assert groups.attrs["optimal"] is True
    assert groups["weight"].max() == pytest.approx(brute_force_minmax(grids, k))
    assert groups.attrs["gap"] == pytest.approx(0.0)
    _check_plan(grids, groups, k)


def test_exact_matches_brute_force_on_an_l_shape():
    # an L of 7 squares: the corner forces contiguity to matter
    grids = lattice(3, 3, [40, 5, 5, 5, 30, 5, 40, 5, 50]).drop(index=[5, 8])
    grids = grids.reset_index(drop=True)
    groups = regroup(grids, 3, method="exact")
    assert groups["weight"].max() == pytest.approx(brute_force_minmax(grids, 3))


# --- weights, nesting, output -----------------------------------------------------------


def test_composite_weight_with_computed_area():
    grids = lattice(1, 4, [10, 10, 10, 10])  # each 1 km²
    grids["incidents"] = [0, 5, 0, 1]
    spec = {"households": 1, "incidents": 2, "area_km2": 50}
    groups = regroup(grids, 2, weight=spec)
    assert groups["area_km2"].sum() == pytest.approx(4.0)
    total = 40 + 2 * 6 + 50 * 4
    assert groups["weight"].sum() == pytest.approx(total)
    assert groups["incidents"].sum() == 6
    # best split of [60, 70, 60, 62]: {60, 70} | {60, 62} → 130
    assert groups["weight"].max() == pytest.approx(130.0)


def test_geometry_is_the_union_of_members_and_codes():
    grids = lattice(2, 2, [1, 1, 1, 1])
    groups = regroup(grids, 2)
    assert list(groups["code"]) == ["G01", "G02"]
    for row in groups.itertuples():
        union = shapely.union_all(grids.set_index("code").loc[list(row.members)].geometry)
        assert row.geometry.equals(union)
    want = {m: row.code for row in groups.itertuples() for m in row.members}
    assert groups.attrs["assignment"] == want


def test_groups_write_to_parquet_with_their_attrs(tmp_path) -> None:
    """A planner saves the groups as GeoParquet: attrs (kept in its metadata) must be plain."""
    grids = lattice(3, 3, [100] * 9)
    groups = regroup(grids, 3)
    groups["members"] = [",".join(m) for m in groups["members"]]
    groups.to_parquet(tmp_path / "groups.parquet")
    back = gpd.read_parquet(tmp_path / "groups.parquet")
    assert back.attrs["assignment"] == groups.attrs["assignment"]
    assert back.attrs["optimal"] == groups.attrs["optimal"]


def test_lonlat_workspace_grids_within_community(tiny_workspace):
    grids = tiny_workspace["grids"]
    groups = regroup(grids, 4, within="community_code")
    assert sorted(groups["community_code"]) == sorted(grids["community_code"].unique())
    assert groups.attrs["optimal"] is True
    assert groups.crs == grids.crs


def test_noncontiguous_class_needs_more_groups():
    grids = lattice(1, 4, [1, 1, 1, 1])
    grids["community_code"] = ["A", "B", "A", "B"]  # each class in two pieces
    groups = regroup(grids, 4, within="community_code")
    assert len(groups) == 4
    with pytest.raises(InfeasibleError, match=r"not contiguous: A \(2 parts\).*at least 4"):
        regroup(grids, 3, within="community_code")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "match"),
    [(0, "k was 0"), (5, "k was 5; .* 4 grids"), (1.5, "k was 1.5"), (True, "k was")],
)
def test_bad_k(k, match):
    with pytest.raises(InputError, match=match):
        regroup(lattice(2, 2), k)


def test_missing_weight_column():
    with pytest.raises(InputError, match=r"missing column\(s\) \['people'\] \(a weight column"):
        regroup(lattice(2, 2), 2, weight="people")


def test_non_numeric_weights():
    grids = lattice(2, 2)
    grids["households"] = ["a", "b", "c", "d"]
    with pytest.raises(InputError, match=r"column 'households' has dtype .*; it must be numeric"):
        regroup(grids, 2)


@pytest.mark.parametrize("bad", [np.nan, -3.0, np.inf])
def test_nan_negative_weights(bad):
    grids = lattice(2, 2).astype({"households": float})
    grids.loc[2, "households"] = bad
    with pytest.raises(
        InputError, match=r"column 'households' must hold counts ≥ 0 .*1 bad for code \['g02'\]"
    ):
        regroup(grids, 2)


def test_bad_coefficient():
    with pytest.raises(InputError, match="coefficient for 'households' was -1"):
        regroup(lattice(2, 2), 2, weight={"households": -1})


def test_duplicate_codes():
    grids = lattice(2, 2)
    grids.loc[3, "code"] = "g00"
    with pytest.raises(InputError, match=r"grids has duplicate code \['g00'\] \(2 rows\)"):
        regroup(grids, 2)


def test_disconnected_graph():
    grids = lattice(1, 3)
    grids.loc[2, "geometry"] = shapely.box(9000, 0, 10000, 1000)
    assert len(regroup(grids, 2)) == 2
    with pytest.raises(InfeasibleError, match=r"2 disconnected pieces.*k >= 2"):
        regroup(grids, 1)


def test_within_fewer_groups_than_classes():
    with pytest.raises(InfeasibleError, match="k=1 is less than the 2 distinct values"):
        regroup(lattice(2, 4), 1, within="community_code")


def test_missing_crs():
    grids = lattice(2, 2).set_crs(None, allow_override=True)
    with pytest.raises(CRSError, match="no CRS"):
        regroup(grids, 2)


def test_other_input_errors():
    grids = lattice(2, 2)
    with pytest.raises(InputError, match=r"missing column\(s\) \['id'\] \(pass key=<code"):
        regroup(grids, 2, key="id")
    with pytest.raises(InputError, match=r"missing column\(s\) \['town'\] \(the within= column\)"):
        regroup(grids, 2, within="town")
    with pytest.raises(InputError, match="method was 'fast'"):
        regroup(grids, 2, method="fast")
    with pytest.raises(InputError, match="time_limit was -1"):
        regroup(grids, 2, time_limit=-1)
    with pytest.raises(InputError, match="seed was 'x'"):
        regroup(grids, 2, seed="x")
    with pytest.raises(InputError, match="must be a GeoDataFrame"):
        regroup(pd.DataFrame(grids), 2)


# --- plan_diff ----------------------------------------------------------------------------


def test_plan_diff_between_two_regroupings():
    grids = lattice(2, 4, [10, 20, 30, 40, 50, 60, 70, 80])
    fine = regroup(grids, 4)
    coarse = regroup(grids, 2)
    hh = grids.set_index("code")["households"]
    diff = plan_diff(fine.attrs["assignment"], coarse.attrs["assignment"], weights=hh)
    assert list(diff.index) == list(grids["code"])
    # 2 of the 4 fine groups are continued by a coarse group; the others' grids moved
    kept = diff.loc[~diff["moved"], "before"].nunique()
    assert kept == 2
    assert diff.attrs["weight_moved"] == pytest.approx(diff.loc[diff["moved"], "weight"].sum())
    same = plan_diff(fine.attrs["assignment"], fine.attrs["assignment"])
    assert same.attrs["n_moved"] == 0


def test_plan_diff_keeps_grids_missing_from_one_plan():
    before = pd.Series({"a": "G1", "b": "G1"})
    after = pd.Series({"a": "H1", "c": "H1"})
    diff = plan_diff(before, after)
    assert list(diff.index) == ["a", "b", "c"]
    assert diff["moved"].tolist() == [False, True, True]
    assert pd.isna(diff.loc["c", "before"])


def test_plan_diff_errors():
    dup = pd.Series(["G1", "G2"], index=["a", "a"])
    with pytest.raises(InputError, match=r"plan 'before' lists grids more than once: \['a'\]"):
        plan_diff(dup, pd.Series({"a": "G1"}))
    with pytest.raises(InputError, match=r"weights lack grids \['b'\]"):
        plan_diff(pd.Series({"a": 1, "b": 1}), pd.Series({"a": 1}), weights=pd.Series({"a": 1}))


def test_product_of_brute_force_helper_is_checked():
    # the brute-force helper itself: a 1×3 strip [1, 2, 3] into 2 → {1,2}|{3} → 3
    assert brute_force_minmax(lattice(1, 3, [1, 2, 3]), 2) == 3.0
    assert list(itertools.islice(iter(lattice(1, 3)["code"]), 1)) == ["g00"]


# --- CLI (gridgeo/cli/regroup.py) ---------------------------------------------------------


def test_cli_regroup_writes_groups_and_assignment(tmp_path, tiny_workspace):
    import pyogrio
    from click.testing import CliRunner

    from gridgeo.cli import main

    src = tmp_path / "tiny.gpkg"
    tiny_workspace["grids"].to_file(src, layer="grids", driver="GPKG")
    out = tmp_path / "out.gpkg"
    args = ["regroup", str(src), "-k", "4", "--weight", "households=1,population=0.5"]
    result = CliRunner().invoke(main, [*args, "--within", "community_code", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 grids → 4 groups" in result.output
    assert "proven optimal" in result.output
    assert sorted(name for name, _ in pyogrio.list_layers(out)) == ["assignment", "groups"]
    groups = gpd.read_file(out, layer="groups")
    assignment = gpd.read_file(out, layer="assignment")
    grids = tiny_workspace["grids"]
    assert len(groups) == 4 and len(assignment) == len(grids)
    # each community is one group: 2 grids, weight = households + population / 2
    expected = grids.groupby("community_code").apply(
        lambda d: d["households"].sum() + d["population"].sum() / 2, include_groups=False
    )
    got = groups.set_index("community_code")["weight"]
    assert got.sort_index().tolist() == pytest.approx(expected.sort_index().tolist())
    for row in groups.itertuples():
        members = row.members.split(",")
        assert set(assignment.loc[assignment["code"].isin(members), "group"]) == {row.code}


def test_cli_regroup_errors(tmp_path, tiny_workspace):
    from click.testing import CliRunner

    from gridgeo.cli import main

    src = tmp_path / "tiny.gpkg"
    tiny_workspace["grids"].to_file(src, layer="grids", driver="GPKG")
    out = str(tmp_path / "out.gpkg")
    runner = CliRunner()
    res = runner.invoke(main, ["regroup", str(src), "-k", "9", "-o", out])
    assert res.exit_code == 2  # a user error: one "Error: …" line, as click's own
    assert "k was 9; it must be an integer from 1 to the 8 grids" in res.output
    res = runner.invoke(main, ["regroup", str(src), "-k", "2", "--layer", "nope", "-o", out])
    assert res.exit_code == 2
    assert "layer 'nope' is not in" in res.output
    res = runner.invoke(
        main, ["regroup", str(src), "-k", "2", "--weight", "households=x", "-o", out]
    )
    assert res.exit_code == 2
    assert "'households=x' is not column=number" in res.output


# --- bounds of the heuristic (private helpers, checked against enumeration) ---------------


def _nbrs(grids: gpd.GeoDataFrame) -> list[list[int]]:
    a = adjacency(grids).tocsr()
    return [a.indices[a.indptr[i] : a.indptr[i + 1]].tolist() for i in range(len(grids))]


def test_connected_subsets_match_itertools():
    from gridgeo.partition.regroup._setpart import connected_subsets

    grids = lattice(2, 3, [1, 2, 3, 4, 5, 6])
    a = adjacency(grids)
    w = grids["households"].to_numpy(dtype=float)
    expected = set()
    for r in range(1, 7):
        for combo in itertools.combinations(range(6), r):
            idx = list(combo)
            if w[idx].sum() < 12 and connected_components(a[idx][:, idx], directed=False)[0] == 1:
                expected.add(combo)
    got = connected_subsets(_nbrs(grids), w, 12.0, limit=10_000)
    assert len(got) == len(set(got))  # no repeats
    assert set(got) == expected


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_heuristic_lower_bound_never_above_the_optimum(seed):
    rng = np.random.default_rng(seed)
    grids = lattice(2, 4, rng.integers(1, 100, 8).tolist())
    optimum = brute_force_minmax(grids, 3)
    groups = regroup(grids, 3, method="heuristic", seed=seed)
    assert groups.attrs["lower_bound"] <= optimum + 1e-9
    assert groups["weight"].max() >= optimum - 1e-9
    if groups.attrs["optimal"]:
        assert groups["weight"].max() == pytest.approx(optimum)
