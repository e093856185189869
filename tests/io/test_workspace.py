"""Workspace read/write/validate: every problem named, nothing dropped."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.errors import InputError, NotFound, ValidationError
from gridgeo.io import SCHEMA, read_workspace, validate_workspace, write_workspace


def test_roundtrip(tiny_workspace, tmp_path) -> None:
    path = tmp_path / "w.gpkg"
    write_workspace(tiny_workspace, path)
    back = read_workspace(path)
    assert set(back) == set(tiny_workspace)
    for name, gdf in tiny_workspace.items():
        assert_geodataframe_equal(
            back[name], gdf, check_dtype=False, check_index_type=False, check_less_precise=True
        )
    assert back["incidents"]["reported_at"].dtype.kind == "M"


def test_valid_passes_and_does_not_mutate(tiny_workspace) -> None:
    before = {k: v.copy() for k, v in tiny_workspace.items()}
    out = validate_workspace(tiny_workspace)
    for k in before:
        assert_geodataframe_equal(tiny_workspace[k], before[k])
        assert len(out[k]) == len(before[k])


def test_missing_file(tmp_path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        read_workspace(tmp_path / "nope.gpkg")


def test_not_a_geopackage(tmp_path) -> None:
    bad = tmp_path / "bad.gpkg"
    bad.write_text("not sqlite")
    with pytest.raises(InputError, match="cannot open"):
        read_workspace(bad)


def test_missing_layer(tiny_workspace) -> None:
    del tiny_workspace["beats"]
    with pytest.raises(ValidationError, match="layer 'beats' is missing"):
        validate_workspace(tiny_workspace)


def test_unknown_required_layer(tiny_workspace) -> None:
    with pytest.raises(InputError, match=r"unknown workspace layer\(s\) \['grid'\]"):
        validate_workspace(tiny_workspace, layers=["grid"])


def test_missing_column(tiny_workspace) -> None:
    tiny_workspace["communities"] = tiny_workspace["communities"].drop(columns="type")
    with pytest.raises(
        ValidationError, match=r"layer 'communities' is missing column\(s\) \['type'\]"
    ):
        validate_workspace(tiny_workspace)


def test_duplicate_code(tiny_workspace) -> None:
    g = tiny_workspace["grids"]
    g.loc[1, "code"] = g.loc[0, "code"]
    with pytest.raises(
        ValidationError, match=r"layer 'grids' has duplicate code \['360722001001001'\] \(2 rows\)"
    ):
        validate_workspace(tiny_workspace)


def test_malformed_and_orphan_codes(tiny_workspace) -> None:
    g = tiny_workspace["grids"]
    g.loc[0, "code"] = "36072200100101"  # 14 digits
    g.loc[1, "community_code"] = "360722009009"
    g.loc[1, "code"] = "360722009009001"
    with pytest.raises(ValidationError) as info:
        validate_workspace(tiny_workspace)
    msg = str(info.value)
    assert "malformed code(s) ['36072200100101']" in msg
    assert "15 digits (community + 3)" in msg
    assert "community_code ['360722009009'] not found in layer 'communities'" in msg
    assert len(info.value.problems) == 2


def test_code_must_start_with_parent(tiny_workspace) -> None:
    tiny_workspace["communities"].loc[0, "town_code"] = "360722002"
    with pytest.raises(ValidationError, match=r"malformed code\(s\) \['360722001001'\]"):
        validate_workspace(tiny_workspace)


def test_every_problem_listed_at_once(tiny_workspace) -> None:
    del tiny_workspace["beats"]
    tiny_workspace["towns"] = tiny_workspace["towns"].drop(columns="name")
    tiny_workspace["zones"] = tiny_workspace["zones"].set_crs(None, allow_override=True)
    with pytest.raises(ValidationError, match="workspace has 3 problems") as info:
        validate_workspace(tiny_workspace)
    assert any("no CRS" in p for p in info.value.problems)


def test_outside_china(tiny_workspace) -> None:
    # projected metres wrongly labelled as degrees, a classic
    t = tiny_workspace["towns"]
    tiny_workspace["towns"] = t.set_geometry(t.geometry.translate(xoff=-100.0), crs=t.crs)
    with pytest.raises(
        ValidationError, match=r"layer 'towns' has 2 geometries outside China .*; extent lon"
    ):
        validate_workspace(tiny_workspace)


def test_swapped_axes_outside_china(tiny_workspace) -> None:
    b = tiny_workspace["boundary"]
    tiny_workspace["boundary"] = b.set_geometry(
        b.geometry.map(lambda g: shapely.transform(g, lambda c: c[:, ::-1])), crs=b.crs
    )
    with pytest.raises(ValidationError, match="lon/lat swapped"):
        validate_workspace(tiny_workspace)


def test_projected_crs_inside_china_is_fine(tiny_workspace) -> None:
    tiny_workspace["beats"] = tiny_workspace["beats"].to_crs("EPSG:4547")
    validate_workspace(tiny_workspace)


def bowtie(x0: float, y0: float, d: float) -> shapely.Polygon:
    return shapely.Polygon([(x0, y0), (x0 + d, y0 + d), (x0 + d, y0), (x0, y0 + d)])


def test_invalid_geometry_reported_then_repaired(tiny_workspace, caplog) -> None:
    b = tiny_workspace["beats"]
    b.loc[0, "geometry"] = bowtie(114.90, 25.30, 0.01)
    with pytest.raises(
        ValidationError, match=r"layer 'beats' has 1 invalid geometry at rows \['0'\] .*repair=True"
    ):
        validate_workspace(tiny_workspace)
    out = validate_workspace(tiny_workspace, repair=True)
    fixed = out["beats"].geometry.iloc[0]
    assert fixed.is_valid and fixed.geom_type in ("Polygon", "MultiPolygon")
    assert fixed.area > 0
    assert out["beats"].attrs["repaired"] == ["0"]
    assert "layer 'beats': repaired 1 invalid geometries at rows ['0']" in caplog.text
    assert not tiny_workspace["beats"].geometry.iloc[0].is_valid  # input untouched


def test_repair_on_read(tiny_workspace, tmp_path) -> None:
    path = tmp_path / "w.gpkg"
    write_workspace(tiny_workspace, path)
    bad = tiny_workspace["beats"].copy()
    bad.loc[0, "geometry"] = bowtie(114.90, 25.30, 0.01)
    bad.to_file(path, layer="beats", driver="GPKG", engine="pyogrio")
    with pytest.raises(ValidationError, match="1 invalid geometry"):
        read_workspace(path)
    assert read_workspace(path, repair=True)["beats"].is_valid.all()


def test_wrong_geometry_kind_and_empty(tiny_workspace) -> None:
    tiny_workspace["buildings"].loc[0, "geometry"] = shapely.box(114.9, 25.3, 114.91, 25.31)
    tiny_workspace["grids"].loc[2, "geometry"] = shapely.Polygon()
    with pytest.raises(ValidationError) as info:
        validate_workspace(tiny_workspace)
    msg = str(info.value)
    assert "layer 'buildings' must hold point geometries; found ['Polygon'] at rows ['0']" in msg
    assert "layer 'grids' has 1 empty geometry at rows ['2']" in msg


def test_bad_counts_and_types(tiny_workspace) -> None:
    tiny_workspace["grids"].loc[3, "households"] = -1
    tiny_workspace["communities"].loc[0, "type"] = "city"
    with pytest.raises(ValidationError) as info:
        validate_workspace(tiny_workspace)
    msg = str(info.value)
    assert "'households' must hold counts ≥ 0 (finite, not missing); 1 bad at rows ['3']" in msg
    assert "type must be one of ['rural', 'urban'], found ['city']" in msg


def test_write_refuses_invalid_and_writes_nothing(tiny_workspace, tmp_path) -> None:
    del tiny_workspace["grids"]
    path = tmp_path / "w.gpkg"
    with pytest.raises(ValidationError, match="layer 'grids' is missing"):
        write_workspace(tiny_workspace, path)
    assert not path.exists()


def test_write_no_overwrite(tiny_workspace, tmp_path) -> None:
    path = tmp_path / "w.gpkg"
    write_workspace(tiny_workspace, path)
    with pytest.raises(InputError, match="exists; pass overwrite=True"):
        write_workspace(tiny_workspace, path, overwrite=False)


def test_not_a_geodataframe(tiny_workspace) -> None:
    tiny_workspace["towns"] = pd.DataFrame(tiny_workspace["towns"].drop(columns="geometry"))
    with pytest.raises(ValidationError, match="layer 'towns' must be a GeoDataFrame, got DataF"):
        validate_workspace(tiny_workspace)


def test_schema_names_every_layer() -> None:
    assert {
        "boundary",
        "towns",
        "communities",
        "grids",
        "beats",
        "zones",
        "buildings",
        "incidents",
    } <= {n for n, s in SCHEMA.items() if s.required}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))
def test_every_invalid_row_is_named(tiny_workspace, rows) -> None:
    g = tiny_workspace["grids"].copy()
    for r in rows:
        x0, y0 = g.geometry.iloc[r].bounds[:2]
        g.loc[r, "geometry"] = bowtie(x0, y0, 0.005)
    ws = dict(tiny_workspace, grids=g)
    with pytest.raises(ValidationError) as info:
        validate_workspace(ws)
    msg = str(info.value)
    assert f"{len(rows)} invalid geometr{'y' if len(rows) == 1 else 'ies'} at rows" in msg
    for r in sorted(rows):
        assert str(r) in msg.split("at rows ")[1]
    repaired = validate_workspace(ws, repair=True)["grids"]
    assert len(repaired) == len(g) and repaired.is_valid.all()
    assert isinstance(repaired, gpd.GeoDataFrame)
