"""read_manifest and import_workspace: manifest errors, and the example county built in tmp_path.

The example files come from ``data/examples/make_examples.py`` (the script that wrote the
shipped ones), so the truth they were written from is known: the import must give it back
within 1 cm, with the names byte for byte, and the boundaries a clean coverage with every
change reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridgeo.errors import InputError, NotFound, ValidationError
from gridgeo.io import read_workspace
from gridgeo.io.importer import LayerSource, Manifest, import_workspace, read_manifest

EXAMPLES = Path(__file__).parents[2] / "data" / "examples"
sys.path.insert(0, str(EXAMPLES))
import make_examples  # noqa: E402

METRIC = "EPSG:4547"  # CGCS2000 3-degree GK, 114°E, without zone number


def hausdorff_m(a: gpd.GeoSeries, b: gpd.GeoSeries) -> np.ndarray:
    """Hausdorff distance in metres between two aligned geometry columns."""
    assert len(a) == len(b)
    return shapely.hausdorff_distance(a.to_crs(METRIC).to_numpy(), b.to_crs(METRIC).to_numpy())


def utf8(values) -> list[bytes]:
    return [str(v).encode("utf-8") for v in values]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example county written to a temporary folder and imported: (truth, result)."""
    folder = tmp_path_factory.mktemp("example")
    truth = make_examples.write_examples(folder)
    result = import_workspace(folder / "manifest.toml", folder / "county.gpkg")
    return truth, result


# --------------------------------------------------------------------------- manifest


def write(folder: Path, text: str, name: str = "manifest.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def beats_file(tmp_path) -> Path:
    gpd.GeoDataFrame(
        {"code": ["JW1"], "name": ["一区"]},
        geometry=[shapely.box(114.90, 25.40, 114.91, 25.41)],
        crs="EPSG:4490",
    ).to_file(tmp_path / "beats.geojson")
    return tmp_path / "beats.geojson"


def test_manifest_is_read_with_paths_relative_to_it(tmp_path, beats_file) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(
        sub,
        '[beats]\npath = "../beats.geojson"\ncrs = 4490\nencoding = "GBK"\n'
        'columns = { "名称" = "name" }\n',
    )
    m = read_manifest(path)
    assert m == Manifest(
        path=path,
        layers={
            "beats": LayerSource(
                "beats", sub / "../beats.geojson", None, 4490, "GBK", {"名称": "name"}
            )
        },
    )
    assert m.layers["beats"].path.resolve() == beats_file


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[beat]\npath = "beats.geojson"\n', r"\[beat\]: unknown layer 'beat'; the workspace"),
        ('[beats]\npath = "beats.geojson"\nfile = "x"\n', r"\[beats\]: unknown key\(s\) \['file'"),
        ("[beats]\ncrs = 'bd09'\n", r'\[beats\]: no path; add path = "<file>"'),
        ('[beats]\npath = "nope.kml"\n', r"\[beats\]: path 'nope.kml': no such file '.*nope.kml'"),
        ('[beats]\npath = "beats.geojson"\ncrs = "baidu"\n', r"\[beats\]: crs 'baidu': "),
        ('[beats]\npath = "beats.geojson"\ncrs = 1.5\n', r"crs must be a string or an EPSG"),
        ('[beats]\npath = "beats.geojson"\nencoding = "gbk2"\n', r"unknown encoding 'gbk2'"),
        ("[beats]\npath = 3\n", r"\[beats\]: path must be a string, got 3"),
        ('[beats]\npath = "beats.geojson"\nlayer = 1\n', r"layer must be a string, got 1"),
        (
            '[beats]\npath = "beats.geojson"\ncolumns = ["名称"]\n',
            r"columns must be a table of strings, e\.g\. columns = \{ \"名称\" = \"name\" \}",
        ),
        ('[beats]\npath = "beats.geojson"\ncolumns = { "名称" = 1 }\n', r"table of strings"),
        ('beats = "beats.geojson"\n', r"\[beats\]: expected a table with path = "),
        ("# nothing yet\n", r"names no layer; add a table per layer"),
    ],
)
def test_manifest_errors_name_the_table_and_key(tmp_path, beats_file, text, match) -> None:
    with pytest.raises(ValidationError, match=match) as err:
        read_manifest(write(tmp_path, text))
    assert len(err.value.problems) == 1
    assert "manifest '" in str(err.value)


def test_every_manifest_problem_is_reported_at_once(tmp_path, beats_file) -> None:
    text = (
        '[beats]\npath = "beats.geojson"\ncrs = "baidu"\n'
        '[comunities]\npath = "c.shp"\n'
        '[towns]\npath = "towns.shp"\nfile = "x"\n'
    )
    with pytest.raises(ValidationError, match=r"has 4 problems") as err:
        read_manifest(write(tmp_path, text))
    assert [p.split(":")[0] for p in err.value.problems] == [
        "[beats]",
        "[comunities]",
        "[towns]",
        "[towns]",
    ]


def test_manifest_that_is_not_toml_names_the_line(tmp_path) -> None:
    with pytest.raises(InputError, match=r"is not valid TOML: .*line 2"):
        read_manifest(write(tmp_path, '[beats]\npath = "a.kml\n'))
    (tmp_path / "gbk.toml").write_bytes('[beats]\npath = "警格.kml"\n'.encode("gbk"))
    with pytest.raises(InputError, match=r"is not UTF-8 text"):
        read_manifest(tmp_path / "gbk.toml")
    with pytest.raises(NotFound, match=r"no such manifest '.*none.toml'"):
        read_manifest(tmp_path / "none.toml")


# --------------------------------------------------------------------------- import errors


@pytest.mark.parametrize("tolerance", [0, -1.0, float("nan"), "1", True])
def test_import_refuses_a_bad_tolerance(tmp_path, beats_file, tolerance) -> None:
    path = write(tmp_path, '[beats]\npath = "beats.geojson"\n')
    with pytest.raises(InputError, match=r"tolerance_m must be a number of metres > 0"):
        import_workspace(path, tmp_path / "ws.gpkg", tolerance_m=tolerance)
    assert not (tmp_path / "ws.gpkg").exists()


def test_import_writes_a_geopackage_only(tmp_path, beats_file) -> None:
    path = write(tmp_path, '[beats]\npath = "beats.geojson"\n')
    with pytest.raises(InputError, match=r"write ws\.gpkg, not ws\.shp"):
        import_workspace(path, tmp_path / "ws.shp")


def test_every_unreadable_layer_is_reported_at_once(tmp_path) -> None:
    """The towns without .prj and the buildings table without crs= both name their likely CRS."""
    make_examples.write_examples(tmp_path)
    text = (tmp_path / "manifest.toml").read_text(encoding="utf-8")
    text = text.replace('crs = "EPSG:4547"', "").replace('crs = "gcj02"', "")
    with pytest.raises(ValidationError, match=r"import of '.*manifest.toml' has 2 problems") as err:
        import_workspace(write(tmp_path, text), tmp_path / "ws.gpkg")
    towns, buildings = err.value.problems
    assert towns.startswith("[towns] towns.shp: ") and "has no CRS" in towns
    assert "without zone number" in towns
    assert buildings.startswith("[buildings] buildings.xlsx: ") and "crs='gcj02'" in buildings
    assert not (tmp_path / "ws.gpkg").exists()


def test_an_invalid_workspace_is_not_written(tmp_path, beats_file) -> None:
    gpd.GeoDataFrame(
        {"代码": ["12"], "名称": ["城关镇"]},
        geometry=[shapely.box(114.90, 25.40, 114.91, 25.41)],
        crs="EPSG:4490",
    ).to_file(tmp_path / "towns.geojson")
    path = write(tmp_path, '[towns]\npath = "towns.geojson"\n')
    with pytest.raises(ValidationError, match=r"layer 'towns': malformed code\(s\) \['12'\]"):
        import_workspace(path, tmp_path / "ws.gpkg")
    assert not (tmp_path / "ws.gpkg").exists()


# --------------------------------------------------------------------------- the example


def test_example_layers_are_read_as_the_truth_within_1_cm(example) -> None:
    truth, result = example
    read = result.read
    assert list(read) == ["boundary", "towns", "communities", "buildings", "beats"]
    for name in ("boundary", "towns", "beats"):
        assert np.all(hausdorff_m(read[name].geometry, truth[name].geometry) < 0.01), name
    # the communities as drawn, bow-tie and all (invalid rings compared vertex by vertex)
    got = shapely.get_coordinates(read["communities"].to_crs(METRIC).geometry.to_numpy())
    want = shapely.get_coordinates(truth["messy_communities"].to_crs(METRIC).geometry.to_numpy())
    assert got.shape == want.shape and np.abs(got - want).max() < 0.01
    b = read["buildings"]
    dist = shapely.distance(
        b.to_crs(METRIC).geometry.to_numpy(), truth["buildings"].to_crs(METRIC).geometry.to_numpy()
    )
    assert dist.max() < 0.01
    assert b["households"].tolist() == truth["buildings"]["households"].astype(int).tolist()
    assert b["population"].tolist() == truth["buildings"]["population"].astype(int).tolist()


def test_example_names_codes_and_types_come_through_byte_for_byte(example) -> None:
    truth, result = example
    for name in ("towns", "communities", "beats"):
        got, want = result.layers[name], truth[name]
        assert utf8(got["name"]) == utf8(want["name"]), name
        assert got["code"].tolist() == want["code"].tolist(), name
    comms = result.layers["communities"]
    assert comms["type"].tolist() == truth["communities"]["type"].tolist()
    assert comms["town_code"].tolist() == truth["communities"]["town_code"].tolist()


def test_example_is_conformed_into_clean_coverages(example) -> None:
    truth, result = example
    for name in ("towns", "communities", "beats"):
        geoms = result.layers[name].geometry.to_numpy()
        assert shapely.is_valid(geoms).all(), name
        assert shapely.coverage_is_valid(result.layers[name].to_crs(METRIC).geometry.to_numpy())
    # the layers nobody drew by hand are written as they were read
    for name in ("towns", "beats"):
        assert np.all(hausdorff_m(result.layers[name].geometry, truth[name].geometry) < 0.01)
    assert shapely.equals(
        result.layers["buildings"].geometry.to_numpy(), result.read["buildings"].geometry.to_numpy()
    ).all()
    # the redrawn communities come back to the truth within the wobble, the bow-tie within its
    # overshoot; the others within the tolerance (slivers absorbed from the wobbly neighbours)
    dist = hausdorff_m(result.layers["communities"].geometry, truth["communities"].geometry)
    for row, d in enumerate(dist):
        limit = make_examples.BOWTIE_M * 1.5 if row == make_examples.BOWTIE else 1.0
        assert d < limit, (row, d)


def test_every_changed_community_is_reported(example) -> None:
    truth, result = example
    changes = result.changes
    assert list(changes.columns[:5]) == ["layer", "code", "problem", "action", "area_m2"]
    comms = changes[changes["layer"] == "communities"]
    before = shapely.make_valid(result.read["communities"].to_crs(METRIC).geometry.to_numpy())
    after = result.layers["communities"].to_crs(METRIC).geometry.to_numpy()
    moved = shapely.area(shapely.symmetric_difference(before, after)) > 1e-3
    codes = result.layers["communities"]["code"].to_numpy()
    assert set(codes[moved]) <= set(comms["code"])
    # what the example was made to show
    bow = truth["communities"]["code"].iloc[make_examples.BOWTIE]
    assert comms[comms["code"] == bow]["problem"].str.contains("invalid geometry").any()
    for row in make_examples.WOBBLY:
        code = truth["communities"]["code"].iloc[row]
        assert comms["code"].eq(code).any() and moved[row]
    assert comms["problem"].str.contains("overlap").any()
    assert comms["problem"].str.contains("gap").any()
    assert (comms["problem"] == "no town_code").sum() == len(codes)


def test_the_written_workspace_reads_back_as_the_result(example) -> None:
    _, result = example
    back = read_workspace(result.path, layers=list(result.layers))
    assert list(back) == list(result.layers)
    for name, gdf in result.layers.items():
        got = back[name]
        assert len(got) == len(gdf), name
        assert np.all(hausdorff_m(got.geometry, gdf.geometry) < 0.01), name
        for col in ("code", "name", "town_code", "households"):
            if col in gdf.columns:
                assert got[col].tolist() == gdf[col].tolist(), (name, col)


def test_shipped_example_matches_its_generator(tmp_path) -> None:
    """data/examples holds what make_examples.py writes (re-run it after changing it)."""
    make_examples.write_examples(tmp_path)
    assert (EXAMPLES / "manifest.toml").read_text(encoding="utf-8") == (
        tmp_path / "manifest.toml"
    ).read_text(encoding="utf-8")
    shipped = read_manifest(EXAMPLES / "manifest.toml")
    made = read_manifest(tmp_path / "manifest.toml")
    for name, source in shipped.layers.items():
        a, b = source.read(), made.layers[name].read()
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), 1e-9).all()
    total = sum(f.stat().st_size for f in EXAMPLES.iterdir() if f.is_file())
    assert total < 1_000_000, total
