"""``gridgeo regroup``: point layers as weights, a silent solver and one progress bar."""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import shapely
from click.testing import CliRunner

from gridgeo.cli import main


def _row_of_grids(n: int, households: list[float] | None = None) -> gpd.GeoDataFrame:
    """``n`` unit squares in a row (metric CRS), codes g00, g01, …"""
    return gpd.GeoDataFrame(
        {
            "code": [f"g{i:02d}" for i in range(n)],
            "households": households if households is not None else [1.0] * n,
        },
        geometry=[shapely.box(i * 100, 0, (i + 1) * 100, 100) for i in range(n)],
        crs="EPSG:4547",
    )


def test_weight_counts_the_incidents_of_the_workspace(tmp_path) -> None:
    grids = _row_of_grids(6, [10, 20, 10, 20, 10, 20])
    rng = np.random.default_rng(3)
    per_grid = [5, 0, 7, 1, 3, 2]  # incidents placed in each grid, by construction
    pts = [
        shapely.Point(i * 100 + x, y)
        for i, n in enumerate(per_grid)
        for x, y in rng.uniform(5, 95, size=(n, 2))
    ]
    incidents = gpd.GeoDataFrame({"id": range(len(pts))}, geometry=pts, crs="EPSG:4547")
    ws = tmp_path / "ws.gpkg"
    grids.to_file(ws, layer="grids")
    incidents.to_crs("EPSG:4490").to_file(ws, layer="incidents")  # another CRS on purpose
    out = tmp_path / "groups.gpkg"
    args = ["regroup", str(ws), "-k", "3", "--weight", "households=1,incidents=2", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "counted incidents per grid" in result.output
    assignment = gpd.read_file(out, layer="assignment").set_index("code")
    assert assignment["incidents"].tolist() == per_grid
    groups = gpd.read_file(out, layer="groups")
    assert groups["incidents"].sum() == sum(per_grid)
    np.testing.assert_allclose(groups["weight"], groups["households"] + 2 * groups["incidents"])


def test_weight_that_is_neither_column_nor_layer(tmp_path) -> None:
    ws = tmp_path / "ws.gpkg"
    _row_of_grids(4).to_file(ws, layer="grids")
    out = tmp_path / "g.gpkg"
    args = ["regroup", str(ws), "-k", "2", "--weight", "households=1,calls=2", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "weight ['calls'] is neither a column of the grids" in result.output
    assert not out.exists()


# HiGHS prints its banner once per process, on the first solver made: each check runs
# in a fresh interpreter, so that no earlier test has used the banner up


def test_regroup_command_prints_no_solver_banner(tmp_path) -> None:
    # three equal grids into two groups: the search cannot meet the bound (1.5), so
    # HiGHS runs; it used to print "Running HiGHS …" straight to the process's stdout
    ws = tmp_path / "ws.gpkg"
    _row_of_grids(3).to_file(ws, layer="grids")
    out = tmp_path / "g.gpkg"
    run = subprocess.run(
        [sys.executable, "-m", "gridgeo.cli", "regroup", str(ws), "-k", "2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "HiGHS" not in run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2, run.stdout  # the summary and the file written, nothing else
    assert "(exact)" in lines[0] and "proven optimal" in lines[0]


def test_library_regroup_prints_nothing(tmp_path) -> None:
    ws = tmp_path / "ws.gpkg"
    _row_of_grids(5, [1, 3, 1, 3, 1]).to_file(ws, layer="grids")  # optimum 5 > bound 4.5
    code = (
        "import geopandas as gpd, sys\n"
        "from gridgeo.partition import regroup\n"
        "grids = gpd.read_file(sys.argv[1])\n"
        "for method in ('exact', 'heuristic'):\n"
        "    regroup(grids, 2, method=method, time_limit=5)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(ws)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""


def test_regroup_shows_one_progress_bar(tmp_path) -> None:
    # 30 equal grids in a row into 4 groups: the bound (7.5) is never met, so the
    # heuristic runs all its restarts; each used to draw a bar of its own
    ws = tmp_path / "ws.gpkg"
    _row_of_grids(30).to_file(ws, layer="grids")
    out = tmp_path / "g.gpkg"
    args = ["regroup", str(ws), "-k", "4", "--time-limit", "4", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(heuristic)" in result.output
    bars = [line for line in result.stderr.split("\n") if "regroup" in line]
    assert len(bars) == 1, result.stderr
    assert "HiGHS" not in result.stderr
