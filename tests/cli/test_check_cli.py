"""``gridgeo check`` of a partition output against the workspace it came from."""

from __future__ import annotations

import geopandas as gpd
import pytest
from click.testing import CliRunner

from gridgeo.cli import main


@pytest.fixture
def grids_file(workspace, tmp_path):
    """A partition output holding nothing but its grids."""
    out = tmp_path / "grids.gpkg"
    result = CliRunner().invoke(
        main, ["partition", str(workspace), "--workers", "1", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("form", ["file", "file:layer"])
def test_check_against_the_source_workspace(workspace, grids_file, form) -> None:
    ref = str(workspace) if form == "file" else f"{workspace}:communities"
    units = str(workspace) if form == "file" else f"{workspace}:buildings"
    args = ["check", str(grids_file), "--communities", ref, "--units", units]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("ok") and "NOT ok" not in result.output


def test_check_finds_a_gap_against_the_other_file(workspace, grids_file, tmp_path) -> None:
    grids = gpd.read_file(grids_file, layer="grids")
    grids.drop(index=0).to_file(grids_file, layer="grids")
    problems = tmp_path / "problems.geojson"
    args = ["check", str(grids_file), "--communities", str(workspace), "-o", str(problems)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1  # a broken rule, not a user error
    assert "gap" in result.output and "NOT ok" in result.output
    assert (gpd.read_file(problems)["problem"] == "gap").any()


def test_check_without_the_communities_says_where_to_find_them(grids_file, tmp_path) -> None:
    result = CliRunner().invoke(main, ["check", str(grids_file)])
    assert result.exit_code == 2
    assert "layer 'communities' is not in" in result.output
    missing = tmp_path / "nope.gpkg"
    result = CliRunner().invoke(
        main, ["check", str(grids_file), "--communities", f"{missing}:communities"]
    )
    assert result.exit_code == 2 and "no such file" in result.output
