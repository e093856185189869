"""The gridgeo command: demo, partition and check through click's runner."""

from __future__ import annotations

import json

import geopandas as gpd
from click.testing import CliRunner

from gridgeo import __version__
from gridgeo.cli import main


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_demo_writes_a_valid_workspace(tmp_path) -> None:
    out = tmp_path / "demo.gpkg"
    result = CliRunner().invoke(main, ["demo", "--scale", "0.3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "grids" in result.output and "households" in result.output
    from gridgeo.io import read_workspace

    layers = read_workspace(out)
    assert {"communities", "grids", "incidents"} <= set(layers)


def test_partition_then_check(workspace, tmp_path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"urban": {"max_households": 300}, "rural": {"max_households": 200}})
    )
    out = tmp_path / "grids.gpkg"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "partition",
            str(workspace),
            "--barriers",
            "streets",
            "--rules",
            str(rules),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lower bound" in result.output and "ok" in result.output
    grids = gpd.read_file(out, layer="grids")
    assert (
        grids["households"].sum() == gpd.read_file(workspace, layer="buildings")["households"].sum()
    )
    # check the grids against the communities of the source
    for layer in ("communities", "buildings"):
        gpd.read_file(workspace, layer=layer).to_file(out, layer=layer)
    ok = runner.invoke(main, ["check", str(out), "--units", "buildings", "--rules", str(rules)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().endswith("ok")
    # a broken layer: drop a grid, the check fails and writes the gap for QGIS
    grids.drop(index=0).to_file(out, layer="grids")
    problems = tmp_path / "problems.gpkg"
    bad = runner.invoke(main, ["check", str(out), "--rules", str(rules), "-o", str(problems)])
    assert bad.exit_code == 1
    assert "gap" in bad.output and "NOT ok" in bad.output
    assert (gpd.read_file(problems, layer="problems")["problem"] == "gap").any()


def test_partition_blocks_and_workers(workspace, tmp_path) -> None:
    out = tmp_path / "g.gpkg"
    args = ["partition", str(workspace), "--workers", "1", "-o", str(out)]
    # the buildings are points: as blocks they are refused, with the reason
    bad = CliRunner().invoke(main, [*args, "--units-are", "blocks"])
    assert bad.exit_code == 2
    assert "Error: " in bad.output and "not polygons" in bad.output
    ok = CliRunner().invoke(main, [*args, "--units-are", "buildings"])
    assert ok.exit_code == 0, ok.output
    assert len(gpd.read_file(out, layer="grids")) >= 5


def test_partition_names_a_missing_layer(workspace, tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["partition", str(workspace), "--units", "houses", "-o", str(tmp_path / "g.gpkg")]
    )
    assert result.exit_code == 2
    assert "layer 'houses' is not in" in result.output


def test_partition_rejects_bad_rules_json(workspace, tmp_path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text("{urban: 300")
    result = CliRunner().invoke(
        main, ["partition", str(workspace), "--rules", str(rules), "-o", str(tmp_path / "g.gpkg")]
    )
    assert result.exit_code == 2 and "is not valid JSON" in result.output


def test_locate_csv_in_gcj02(tmp_path) -> None:
    from gridgeo.datasets import demo_county
    from gridgeo.io import write_workspace

    county = demo_county(seed=0, scale=0.3, n_incidents=300)
    ws = tmp_path / "w.gpkg"
    write_workspace(county, ws)
    pts = county["incidents"][["id", "lng", "lat"]]
    csv = tmp_path / "pts.csv"
    pts.to_csv(csv, index=False)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        main, ["locate", str(csv), "--workspace", str(ws), "--crs", "gcj02", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    import pandas as pd

    from gridgeo.assign import Locator

    got = pd.read_csv(out, dtype=str)
    want = Locator.from_workspace(county).locate(county["incidents"])
    assert len(got) == len(pts)
    assert (
        got["grid"].fillna("-").to_numpy() == want["grid"].astype(object).fillna("-").to_numpy()
    ).all()


def test_locate_names_missing_columns(tmp_path) -> None:
    from gridgeo.datasets import demo_county
    from gridgeo.io import write_workspace

    ws = tmp_path / "w.gpkg"
    write_workspace(demo_county(seed=0, scale=0.2, n_incidents=10), ws)
    csv = tmp_path / "pts.csv"
    csv.write_text("x,y\n115,25\n")
    result = CliRunner().invoke(
        main, ["locate", str(csv), "--workspace", str(ws), "-o", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 2 and "has no column(s) ['lng', 'lat']" in result.output
