"""``gridgeo import`` of the shipped example, then ``partition`` and ``check`` on the result."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from gridgeo.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "data" / "examples"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def readme_lines() -> list[list[str]]:
    """The command lines of the README's 'Bring your own county' section, split as a shell would."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Bring your own county")
    block = re.compile(r"```sh\n(.*?)```", re.S).search(text, start).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_readme_import_of_the_shipped_example_then_partition_and_check(
    tmp_path, monkeypatch
) -> None:
    """The README's lines as written, on a copy of data/examples (the 'Done when' of issue 14)."""
    shutil.copytree(EXAMPLES, tmp_path / "data" / "examples")
    monkeypatch.chdir(tmp_path)
    imp, part, check = readme_lines()
    assert imp[:3] == ["gridgeo", "import", "data/examples/manifest.toml"]
    assert part[:2] == ["gridgeo", "partition"] and check[:2] == ["gridgeo", "check"]
    ws, page = Path(imp[imp.index("-o") + 1]), Path(imp[imp.index("--report") + 1])

    result = run(*imp[1:])
    assert result.exit_code == 0, result.output
    assert f"wrote {ws}" in result.output and f"wrote {page}" in result.output
    # what was read, and the kinds of change, are on the terminal
    assert "encoding: GB18030 (.dbf without .cpg, detected from its bytes)" in result.output
    assert "crs: converted bd09 → EPSG:4490" in result.output
    assert "invalid geometry" in result.output and "overlap with …" in result.output
    comms = gpd.read_file(ws, layer="communities")
    assert comms["name"].iloc[0] == "东门社区" and set(comms["type"]) == {"urban", "rural"}
    assert "东门社区" in page.read_text(encoding="utf-8")

    result = run(*part[1:])
    assert result.exit_code == 0, result.output
    grids = Path(part[part.index("-o") + 1])
    n = len(gpd.read_file(grids, layer="grids"))
    assert f"{n} grids in {len(comms)} communities" in result.output

    result = run(*check[1:])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("ok") and "NOT ok" not in result.output


@pytest.fixture
def example(tmp_path) -> Path:
    """A copy of the shipped example, to spoil."""
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def spoil(folder: Path, old: str, new: str) -> Path:
    path = folder / "manifest.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("[beats]", "[beat]", "[beat]: unknown layer 'beat'; the workspace layers are"),
        ('path = "beats.kml"', 'path = "beat.kml"', "[beats]: path 'beat.kml': no such file"),
        ('crs = "bd09"', 'crs = "baidu"', "[beats]: crs 'baidu': "),
        ('crs = "bd09"', 'srs = "bd09"', "[beats]: unknown key(s) ['srs']"),
        ('crs = "EPSG:4547"', "", "towns.shp' has no CRS and no crs= was passed; eastings"),
        ("[towns]", "[towns", "is not valid TOML"),
    ],
)
def test_a_bad_manifest_is_one_error_and_exit_2(example, tmp_path, old, new, match) -> None:
    manifest = spoil(example, old, new)
    result = run("import", manifest, "-o", tmp_path / "ws.gpkg")
    assert result.exit_code == 2, result.output
    assert result.output.count("Error: ") == 1 and match in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "ws.gpkg").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-o", "ws.shp"], "ws.shp has '.shp'; write one of .gpkg"),
        (["-o", "ws.gpkg", "--report", "r.pdf"], "r.pdf has '.pdf'; write one of .html"),
        (["-o", "ws.gpkg", "--tolerance-m", "0"], "0.0 is not in the range x>0"),
        (["-o", "nowhere/ws.gpkg"], "folder 'nowhere' does not exist"),
        ([], "Missing option '-o' / '--out'"),
    ],
)
def test_bad_options_are_one_error_and_exit_2(tmp_path, monkeypatch, args, match) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("import", EXAMPLES / "manifest.toml", *args)
    assert result.exit_code == 2, result.output
    assert result.output.count("Error: ") == 1 and match in result.output


def test_a_missing_manifest_is_one_error_and_exit_2(tmp_path) -> None:
    result = run("import", tmp_path / "none.toml", "-o", tmp_path / "ws.gpkg")
    assert result.exit_code == 2
    assert result.output.count("Error: ") == 1 and "does not exist" in result.output
