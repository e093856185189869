"""Outputs follow their extension, in every command, through one writer."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from gridgeo.cli import main

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("ext", [".geojson", ".shp", ".parquet", ".csv", ".gpkg"])
def test_partition_output_follows_its_extension(workspace, tmp_path, ext) -> None:
    out = tmp_path / f"grids{ext}"
    result = CliRunner().invoke(
        main, ["partition", str(workspace), "--workers", "1", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    households = gpd.read_file(workspace, layer="buildings")["households"].sum()
    head = out.read_bytes()[:16]
    if ext == ".geojson":
        doc = json.loads(out.read_text(encoding="utf-8"))  # text, not a GeoPackage
        assert doc["type"] == "FeatureCollection" and doc["features"]
        grids = gpd.read_file(out)
    elif ext == ".shp":
        assert (tmp_path / "grids.cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
        assert pyogrio.read_info(out)["driver"] == "ESRI Shapefile"
        grids = gpd.read_file(out)
    elif ext == ".parquet":
        assert head.startswith(b"PAR1")
        grids = gpd.read_parquet(out)
    elif ext == ".csv":
        assert head.startswith(BOM)  # Excel on Chinese Windows reads it as UTF-8
        grids = pd.read_csv(out, encoding="utf-8-sig", dtype={"code": str})
        assert grids["geometry"].str.startswith(("POLYGON", "MULTIPOLYGON")).all()
    else:
        assert head.startswith(b"SQLite format 3")
        assert [str(n) for n, _ in pyogrio.list_layers(out)] == ["grids"]
        grids = gpd.read_file(out, layer="grids")
    assert len(grids) >= 5 and grids["households"].sum() == households
    if ext != ".gpkg":
        assert not head.startswith(b"SQLite format 3")


@pytest.mark.parametrize("name", ["grids.txt", "grids.json", "grids"])
def test_an_unknown_extension_is_refused_before_any_work(workspace, tmp_path, name) -> None:
    out = tmp_path / name
    result = CliRunner().invoke(main, ["partition", str(workspace), "-o", str(out)])
    assert result.exit_code == 2
    assert "write one of .gpkg, .geojson, .shp, .parquet, .csv" in result.output
    assert "make_grids" not in result.output  # refused before the work started
    assert not out.exists()


def test_regroup_shapefile_keeps_chinese_text_and_writes_the_assignment_beside(
    tmp_path, tiny_workspace
) -> None:
    src = tmp_path / "tiny.gpkg"
    grids = tiny_workspace["grids"]
    grids["name"] = [f"第{i + 1}网格" for i in range(len(grids))]
    grids.to_file(src, layer="grids")
    out = tmp_path / "groups.shp"
    args = ["regroup", str(src), "-k", "4", "--within", "community_code", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "groups.cpg").exists() and (tmp_path / "groups-assignment.cpg").exists()
    assignment = gpd.read_file(tmp_path / "groups-assignment.shp")
    assert sorted(assignment["name"]) == sorted(grids["name"])
    assert len(gpd.read_file(out)) == 4
    assert "community_code → community_" in result.output  # the 10-character cut is said


def test_regroup_csv_has_a_bom_and_readable_chinese(tmp_path, tiny_workspace) -> None:
    src = tmp_path / "tiny.gpkg"
    grids = tiny_workspace["grids"]
    grids["name"] = [f"第{i + 1}网格" for i in range(len(grids))]
    grids.to_file(src, layer="grids")
    out = tmp_path / "groups.csv"
    result = CliRunner().invoke(main, ["regroup", str(src), "-k", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    raw = (tmp_path / "groups-assignment.csv").read_bytes()
    assert raw.startswith(BOM) and out.read_bytes().startswith(BOM)
    assignment = pd.read_csv(tmp_path / "groups-assignment.csv", encoding="utf-8-sig")
    assert sorted(assignment["name"]) == sorted(grids["name"])
    assert pd.read_csv(out, encoding="utf-8-sig").columns[0] == "code"


def test_locate_writes_geojson_for_points_with_geometry(tmp_path, tiny_gpkg, tiny_workspace):
    pts = tmp_path / "pts.gpkg"
    tiny_workspace["incidents"].to_file(pts, layer="incidents")
    out = tmp_path / "located.geojson"
    args = ["locate", str(pts), "--workspace", str(tiny_gpkg), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert len(doc["features"]) == len(tiny_workspace["incidents"])
    assert all(f["properties"]["grid"] for f in doc["features"])


def test_locate_csv_input_cannot_become_a_geopackage(tmp_path, tiny_gpkg) -> None:
    csv = tmp_path / "pts.csv"
    csv.write_text("id,lng,lat\na,114.905,25.305\n", encoding="utf-8")
    out = tmp_path / "o.gpkg"
    args = ["locate", str(csv), "--workspace", str(tiny_gpkg), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "has no geometry" in result.output and not out.exists()


def test_demo_writes_only_a_geopackage(tmp_path) -> None:
    out = tmp_path / "demo.geojson"
    result = CliRunner().invoke(main, ["demo", "--scale", "0.2", "--out", str(out)])
    assert result.exit_code == 2 and "write one of .gpkg" in result.output
    assert not out.exists()
