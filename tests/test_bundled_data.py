"""The bundled data (data/demo.gpkg, data/points.csv) and the README's examples over it.

The README's command lines and its Python tour are read from README.md and run
as they are written, so that the README cannot drift from what the code does.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal
from PIL import Image

from gridgeo.cli import main
from gridgeo.crs import to_wgs84
from gridgeo.datasets import demo_county
from gridgeo.io import read_workspace
from gridgeo.partition import check_grids

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "data" / "demo.gpkg"
POINTS = ROOT / "data" / "points.csv"
README = ROOT / "README.md"

needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="data/demo.gpkg not in this checkout")


def readme_block(heading: str, lang: str) -> str:
    """The first ``lang`` code block after the README line ``heading`` (or the CLI sentence)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no {lang} block after {heading!r} in README.md"
    return match.group(1)


def readme_cli_line(prefix: str) -> list[str]:
    """The README's command line starting with ``prefix``, split as a shell would, no comment."""
    block = readme_block("The command line is a thin layer", "bash")
    lines = [ln for ln in block.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, f"README.md has {len(lines)} command lines starting with {prefix!r}"
    return shlex.split(lines[0], comments=True)


def run_readme_cli(prefix: str) -> tuple[int, str]:
    """Run a README ``gridgeo …`` line through click's runner (in the current directory)."""
    argv = readme_cli_line(prefix)
    assert argv[0] == "gridgeo"
    result = CliRunner().invoke(main, argv[1:])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def in_readme_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory whose ``data/`` holds copies of the bundled files."""
    (tmp_path / "data").mkdir()
    for src in (DEMO, POINTS):
        shutil.copyfile(src, tmp_path / "data" / src.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def read_layers(path: Path) -> dict[str, gpd.GeoDataFrame]:
    names = [str(row[0]) for row in pyogrio.list_layers(path)]
    return {name: gpd.read_file(path, layer=name, engine="pyogrio") for name in names}


@needs_demo
def test_bundled_demo_is_valid_and_current() -> None:
    layers = read_workspace(DEMO)
    fresh = demo_county(seed=0)
    assert DEMO.stat().st_size <= 10 * 1024 * 1024
    assert set(layers) == set(fresh)
    for name, gdf in fresh.items():
        assert len(layers[name]) == len(gdf), name
    assert list(layers["grids"]["code"]) == list(fresh["grids"]["code"])
    assert int(layers["buildings"]["households"].sum()) == int(
        fresh["buildings"]["households"].sum()
    )


@needs_demo
def test_gridgeo_demo_rebuilds_every_layer_of_the_bundled_file_and_the_same_bytes(
    tmp_path: Path,
) -> None:
    argv = readme_cli_line("gridgeo demo")
    assert argv[:2] == ["gridgeo", "demo"] and "data/demo.gpkg" not in argv  # not into the repo
    runner = CliRunner()
    outs = [tmp_path / "a.gpkg", tmp_path / "b.gpkg"]
    for out in outs:
        result = runner.invoke(main, [*argv[1:-1], str(out)])  # README's options, our output
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes(), "gridgeo demo is not byte-reproducible"
    bundled, rebuilt = read_layers(DEMO), read_layers(outs[0])
    assert list(rebuilt) == list(bundled)
    for name in bundled:
        assert list(rebuilt[name].columns) == list(bundled[name].columns), name
        assert_geodataframe_equal(rebuilt[name], bundled[name], check_less_precise=False)


def _readme_check_claims() -> dict[str, int]:
    text = " ".join(README.read_text(encoding="utf-8").split())
    m = re.search(
        r"`gridgeo check` says so: (\d+) grids hold more than (\d+) households "
        r"\(up to ([\d,]+)\) and (\d+) are in two parts",
        text,
    )
    assert m is not None, "README.md no longer says what `gridgeo check` finds in the demo"
    over, ceiling, most, multi = m.groups()
    return {
        "over": int(over),
        "ceiling": int(ceiling),
        "most": int(most.replace(",", "")),
        "multi": int(multi),
    }


@needs_demo
def test_readme_says_what_check_finds_in_the_demo_grids(in_readme_dir: Path) -> None:
    claims = _readme_check_claims()
    code, output = run_readme_cli("gridgeo check data/demo.gpkg")
    assert code == 1 and output.rstrip().endswith("NOT ok"), output

    layers = read_layers(DEMO)
    grids = layers["grids"]
    report = check_grids(
        grids, within=layers["communities"], max_households=claims["ceiling"]
    )
    counts = report.summary().set_index("problem")["count"]
    breaking = report.summary().query("breaks_rules & count > 0")["problem"].tolist()
    assert sorted(breaking) == ["multipart", "over_ceiling"]
    assert counts["over_ceiling"] == claims["over"]
    assert counts["multipart"] == claims["multi"]
    assert grids["households"].max() == claims["most"]
    assert (grids["households"] > claims["ceiling"]).sum() == claims["over"]


@needs_demo
def test_readme_partition_fixes_the_demo_grids(in_readme_dir: Path) -> None:
    cp = readme_cli_line("cp ")
    shutil.copyfile(cp[1], cp[2])
    code, output = run_readme_cli("gridgeo partition")
    assert code == 0, output
    code, output = run_readme_cli("gridgeo check county.gpkg")
    assert code == 0 and output.rstrip().endswith("ok") and "NOT ok" not in output, output
    grids = gpd.read_file("county.gpkg", layer="new_grids", engine="pyogrio")
    ceiling = _readme_check_claims()["ceiling"]
    over = grids["households"] > ceiling
    assert over.any()  # the estates the README mentions…
    assert grids.loc[over, "oversize"].all()  # …are single buildings over the ceiling


def test_points_csv_is_small_gcj02_in_the_demo_county() -> None:
    pts = pd.read_csv(POINTS)
    assert list(pts.columns) == ["id", "category", "reported_at", "lng", "lat"]
    assert pd.to_datetime(pts["reported_at"], format="ISO8601").dt.tz is not None
    assert 10 <= len(pts) <= 50 and pts["id"].is_unique
    assert pts[["lng", "lat"]].notna().all().all()


@needs_demo
def test_readme_locate_example_runs_and_finds_every_point(in_readme_dir: Path) -> None:
    code, output = run_readme_cli("gridgeo locate data/points.csv")
    assert code == 0, output
    out = Path(readme_cli_line("gridgeo locate")[-1])
    located = pd.read_parquet(out)
    pts = pd.read_csv(POINTS)
    assert list(located["id"]) == list(pts["id"])  # every row, in order, none dropped

    # the grid of each point, found independently: GCJ-02 → WGS84, then a spatial join
    grids = gpd.read_file(DEMO, layer="grids", engine="pyogrio")
    lon, lat = to_wgs84(pts["lng"].to_numpy(), pts["lat"].to_numpy(), "gcj02")
    points = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=grids.crs)
    i, j = grids.sindex.query(points, predicate="covered_by")
    assert np.bincount(i, minlength=len(pts)).max() <= 1
    expected = pd.Series(pd.NA, index=pts.index, dtype="string")
    expected.iloc[i] = grids["code"].to_numpy()[j]
    assert located["grid"].astype("string").tolist() == expected.tolist()

    # what the README says: the last report lies outside the county, the others inside
    n = len(pts)
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"`data/points.csv` holds {n} phone reports in GCJ-02" in text
    assert "the last lies just outside the county line" in text
    assert located["grid"].isna().tolist() == [False] * (n - 1) + [True]


@pytest.mark.slow
def test_readme_tour_runs_and_its_heat_tile_is_not_empty() -> None:
    block = readme_block("## A short tour of the library", "python")
    namespace: dict = {}
    exec(compile(block, "README.md tour", "exec"), namespace)
    tile = Image.open(io.BytesIO(namespace["png"]))
    assert tile.size == (256, 256)
    assert tile.convert("RGBA").getchannel("A").getextrema()[1] > 0, "the tour's tile is empty"
    assert namespace["report"].ok
    assert len(namespace["business"]) == 17


@needs_demo
def test_readme_live_incidents_lines_run_as_written(in_readme_dir: Path) -> None:
    """The first command's copy, then the README's `gridgeo ingest` line, twice: one row each."""
    import shlex

    from gridgeo.io.store import open_store

    text = README.read_text(encoding="utf-8")
    first = text.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()[0]
    assert "cp data/demo.gpkg county.gpkg" in first and "--data county.gpkg" in first
    shutil.copyfile(in_readme_dir / "data" / "demo.gpkg", in_readme_dir / "county.gpkg")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("gridgeo ingest")]
    assert len(lines) == 1, lines
    argv = shlex.split(lines[0])
    before = len(gpd.read_file(in_readme_dir / "county.gpkg", layer="incidents"))
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, argv[1:])
        assert result.exit_code == 0, result.output
    with open_store(in_readme_dir / "county.gpkg") as store:
        assert store.count() == before + len(pd.read_csv(POINTS))
        inside = store.query(where={"id": "P001"})
        assert inside["grid_code"].notna().all()
