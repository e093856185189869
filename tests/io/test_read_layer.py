"""read_layer: messy bureau files built in tmp_path from a known lon/lat truth."""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.crs import from_wgs84
from gridgeo.errors import CRSError, InputError
from gridgeo.io import read_layer

NAMES = ["东门社区", "大塘埠村", "新田村"]
CODES = ["360722001001", "360722002001", "360722002002"]
TYPES = ["城镇", "农村", "乡村"]
HOUSEHOLDS = [512, 230, 97]
METRIC = "EPSG:4547"  # CGCS2000 3-degree GK, CM 114°E, where 114.9°E lies
PREFIXED, UNPREFIXED = "EPSG:4526", "EPSG:4547"  # zone 38 with / without zone number


def _truth_polygons() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"社区名称": NAMES, "行政区划代码": CODES, "户数": HOUSEHOLDS, "类型": TYPES},
        geometry=[
            shapely.box(114.90, 25.40, 114.913, 25.412),
            shapely.Polygon([(114.92, 25.40), (114.934, 25.401), (114.927, 25.415)]),
            shapely.box(114.94, 25.39, 114.96, 25.41).difference(
                shapely.box(114.945, 25.395, 114.95, 25.40)
            ),
        ],
        crs="EPSG:4490",
    )


def _truth_points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"社区名称": NAMES, "行政区划代码": [int(c) for c in CODES], "城乡类型": TYPES},
        geometry=gpd.points_from_xy([114.9012, 114.9234, 114.9501], [25.4043, 25.4101, 25.3987]),
        crs="EPSG:4490",
    )


def _write_shp(gdf: gpd.GeoDataFrame, path: Path, *, encoding: str = "GBK", cpg: bool = False):
    with warnings.catch_warnings():
        # GDAL truncates '行政区划代码' to 10 bytes ('行政区划代'), as in real bureau files,
        # and says so in a RuntimeWarning
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(gdf, path, encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink()
    return path


def _assert_same_geometry(got: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> None:
    assert got.crs.to_epsg() == 4490
    a = got.geometry.to_crs(METRIC).values
    b = truth.geometry.to_crs(METRIC).values
    assert len(a) == len(b)
    dist = shapely.hausdorff_distance(a, b)
    assert np.all(dist < 0.01), dist  # 1 cm


def _assert_schema(got: gpd.GeoDataFrame) -> None:
    assert got["name"].tolist() == NAMES  # byte for byte
    assert [n.encode("utf-8") for n in got["name"]] == [n.encode("utf-8") for n in NAMES]
    assert got["code"].tolist() == CODES
    assert got["type"].tolist() == ["urban", "rural", "rural"]


def _has(report: list[str], *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in report)


# --------------------------------------------------------------------------- Shapefiles


@pytest.mark.parametrize("epsg", [PREFIXED, UNPREFIXED])
def test_gbk_shapefile_without_cpg_in_gauss_kruger(tmp_path: Path, epsg: str) -> None:
    truth = _truth_polygons()
    path = _write_shp(truth.to_crs(epsg), tmp_path / "社区.shp")
    assert not path.with_suffix(".cpg").exists()
    got = read_layer(path)
    _assert_same_geometry(got, truth)
    _assert_schema(got)
    assert got["households"].tolist() == HOUSEHOLDS
    report = got.attrs["read_report"]
    assert _has(report, "encoding: GB18030", ".cpg")
    assert _has(report, f"crs: {epsg} from the file")
    assert _has(report, "'社区名称' → 'name'")
    assert _has(report, "'行政区划代' → 'code'", "truncated")
    assert _has(report, "'户数' → 'households'")
    assert _has(report, "type '城镇' → 'urban' (1 rows)")
    assert _has(report, "type '农村' → 'rural' (1 rows)")
    assert _has(report, "type '乡村' → 'rural' (1 rows)")


def test_utf8_dbf_without_cpg_is_read_as_utf8(tmp_path: Path) -> None:
    truth = _truth_polygons()
    path = _write_shp(truth, tmp_path / "utf8.shp", encoding="UTF-8")
    got = read_layer(path)
    _assert_schema(got)
    report = got.attrs["read_report"]
    assert _has(report, "encoding: UTF-8")
    # 社区名称 is 12 bytes in UTF-8: GDAL cut it at 10, in the middle of 称
    assert _has(report, "header '社区名' was cut mid-character")
    assert _has(report, "'社区名' → 'name' (truncated header)")


def test_dbf_with_cpg_is_left_to_gdal(tmp_path: Path) -> None:
    path = _write_shp(_truth_polygons(), tmp_path / "cpg.shp", cpg=True)
    got = read_layer(path)
    assert got["name"].tolist() == NAMES
    assert not _has(got.attrs["read_report"], "encoding")


def test_encoding_argument_overrides_detection(tmp_path: Path) -> None:
    path = _write_shp(_truth_polygons(), tmp_path / "a.shp")
    got = read_layer(path, encoding="GBK")
    assert got["name"].tolist() == NAMES
    report = got.attrs["read_report"]
    assert _has(report, "encoding: GBK as passed")
    assert not _has(report, "detected")


@pytest.mark.parametrize(
    ("epsg", "match"),
    [
        (PREFIXED, r"zone 38 with zone number \(EPSG:4526\); pass crs='EPSG:4526'"),
        (UNPREFIXED, r"without zone number .*EPSG:4547"),
    ],
)
def test_no_prj_is_an_error_naming_the_likely_crs(tmp_path: Path, epsg: str, match: str) -> None:
    truth = _truth_polygons()
    path = _write_shp(truth.to_crs(epsg), tmp_path / "noprj.shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(CRSError, match=r"noprj\.shp' has no CRS and no crs= was passed"):
        read_layer(path)
    with pytest.raises(CRSError, match=match):
        read_layer(path)
    got = read_layer(path, crs=epsg)
    _assert_same_geometry(got, truth)
    assert _has(got.attrs["read_report"], f"crs: {epsg} as passed")


def test_lonlat_without_crs_suggests_cgcs2000(tmp_path: Path) -> None:
    truth = _truth_polygons()
    path = _write_shp(truth, tmp_path / "lonlat.shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(CRSError, match=r"look like CGCS2000; pass crs='cgcs2000' \(or 'gcj02'"):
        read_layer(path)
    _assert_same_geometry(read_layer(path, crs="cgcs2000"), truth)


@pytest.mark.parametrize(
    ("written", "passed", "match"),
    [
        (UNPREFIXED, PREFIXED, r"no zone number, but EPSG:4526 .* pass crs='EPSG:4547'"),
        (PREFIXED, UNPREFIXED, r"too large for EPSG:4547 .* zone number 38 .*crs='EPSG:4526'"),
        (PREFIXED, "EPSG:4525", r"do not start with zone 37 of EPSG:4525.*crs='EPSG:4526'"),
        (PREFIXED, "cgcs2000", r"not lon/lat, so cgcs2000 cannot be right.*crs='EPSG:4526'"),
    ],
)
def test_wrong_gauss_kruger_crs_is_detected(
    tmp_path: Path, written: str, passed: str, match: str
) -> None:
    path = _write_shp(_truth_polygons().to_crs(written), tmp_path / "gk.shp")
    with pytest.raises(CRSError, match=match):
        read_layer(path, crs=passed)


def test_zipped_shapefile(tmp_path: Path) -> None:
    truth = _truth_polygons()
    folder = tmp_path / "src"
    folder.mkdir()
    shp = _write_shp(truth.to_crs(PREFIXED), folder / "村界.shp")
    archive = tmp_path / "村界.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    assert shp.with_suffix(".prj").name in zipfile.ZipFile(archive).namelist()
    got = read_layer(archive)
    _assert_same_geometry(got, truth)
    _assert_schema(got)
    assert _has(got.attrs["read_report"], "encoding: GB18030")


def test_zip_with_two_shapefiles_needs_layer(tmp_path: Path) -> None:
    truth = _truth_polygons()
    _write_shp(truth.to_crs(PREFIXED), tmp_path / "村界.shp")
    _write_shp(truth.to_crs(UNPREFIXED), tmp_path / "社区.shp")
    archive = tmp_path / "两层.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in tmp_path.glob("*.*"):
            if f != archive:
                zf.write(f, f.name)
    with pytest.raises(InputError, match=r"两层\.zip' has 2 layers .*'社区'.*pass layer="):
        read_layer(archive)
    got = read_layer(archive, layer="社区")
    _assert_same_geometry(got, truth)
    _assert_schema(got)
    assert _has(got.attrs["read_report"], "crs: EPSG:4547 from the file")


def test_kmz_in_gcj02(tmp_path: Path) -> None:
    truth = _truth_polygons()

    def to_gcj(c: np.ndarray) -> np.ndarray:
        return np.column_stack(from_wgs84(c[:, 0], c[:, 1], "gcj02"))

    drawn = truth.set_geometry(shapely.transform(truth.geometry.values, to_gcj), crs="EPSG:4326")
    path = tmp_path / "drawn.kmz"
    pyogrio.write_dataframe(drawn, path, driver="LIBKML")
    got = read_layer(path, crs="gcj02")
    _assert_same_geometry(got, truth)
    _assert_schema(got)


# --------------------------------------------------------------------------- tables


def _gcj_table(truth: gpd.GeoDataFrame) -> pd.DataFrame:
    x, y = from_wgs84(truth.geometry.x, truth.geometry.y, "gcj02")
    df = pd.DataFrame(truth.drop(columns="geometry"))
    df["经度"], df["纬度"] = x, y
    return df


def test_xlsx_with_chinese_headers_in_gcj02(tmp_path: Path) -> None:
    truth = _truth_points()
    path = tmp_path / "上报.xlsx"
    _gcj_table(truth).to_excel(path, index=False)
    with pytest.raises(CRSError, match=r"上报\.xlsx' has no CRS.*usually GCJ-02, pass crs='gcj02'"):
        read_layer(path)
    got = read_layer(path, crs="gcj02")
    _assert_same_geometry(got, truth)
    _assert_schema(got)  # integer codes come back as strings
    report = got.attrs["read_report"]
    assert _has(report, "x from column '经度', y from column '纬度'")
    assert _has(report, "crs: converted gcj02 → EPSG:4490")
    assert _has(report, "'城乡类型' → 'type'")
    assert _has(report, "code numbers → strings")


def test_gbk_csv_and_named_coordinate_columns(tmp_path: Path) -> None:
    truth = _truth_points()
    df = _gcj_table(truth).rename(columns={"经度": "X坐标", "纬度": "Y坐标"})
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False, encoding="gbk")
    with pytest.raises(InputError, match=r"table\.csv': no coordinate column .*'X坐标', 'Y坐标'"):
        read_layer(path, crs="gcj02")
    got = read_layer(path, crs="gcj02", columns={"X坐标": "x", "Y坐标": "y", "社区名称": "label"})
    _assert_same_geometry(got, truth)
    assert got["label"].tolist() == NAMES
    assert "name" not in got.columns
    report = got.attrs["read_report"]
    assert _has(report, "encoding: GB18030")
    assert _has(report, "'社区名称' → 'label' as passed")


def test_columns_naming_a_missing_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _gcj_table(_truth_points()).to_csv(path, index=False)
    match = r"columns= names '村名称', which is not a column.*'社区名称'"
    with pytest.raises(InputError, match=match):
        read_layer(path, crs="gcj02", columns={"村名称": "name"})


def test_unmapped_type_values_are_reported(tmp_path: Path) -> None:
    df = _gcj_table(_truth_points())
    df["城乡类型"] = ["城镇", "城乡结合部", "村"]
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    got = read_layer(path, crs="gcj02")
    assert got["type"].tolist() == ["urban", "城乡结合部", "rural"]
    assert _has(got.attrs["read_report"], "left unmapped: ['城乡结合部']")


def test_non_numeric_coordinates_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("名称,lng,lat\n甲,114.9,25.4\n乙,东经114度,25.5\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"'lng'/'lat' hold non-numbers in rows \[1\].*东经114度"):
        read_layer(path, crs="gcj02")


# --------------------------------------------------------------------------- web maps


def test_kml_in_bd09(tmp_path: Path) -> None:
    truth = _truth_polygons()

    def to_bd(c: np.ndarray) -> np.ndarray:
        return np.column_stack(from_wgs84(c[:, 0], c[:, 1], "bd09"))

    drawn = truth.set_geometry(shapely.transform(truth.geometry.values, to_bd), crs="EPSG:4326")
    path = tmp_path / "百度.kml"
    pyogrio.write_dataframe(drawn, path, driver="KML")
    got = read_layer(path, crs="bd09")
    _assert_same_geometry(got, truth)
    assert got["name"].tolist() == NAMES
    report = got.attrs["read_report"]
    assert _has(report, "crs: bd09 as passed (the file says wgs84)")
    assert _has(report, "converted bd09 → EPSG:4490")
    # without crs= the file's WGS84 is taken at its word: off by the BD-09 shift (hundreds of m)
    off = read_layer(path)
    shift = shapely.hausdorff_distance(
        off.geometry.to_crs(METRIC).values, truth.geometry.to_crs(METRIC).values
    )
    assert np.all(shift > 100)


def test_kml_placemark_fields_that_no_row_sets_are_dropped(tmp_path: Path) -> None:
    """GDAL gives every placemark description/timestamp/…/icon fields; a web map's drawing
    sets none of them. Those are dropped (and reported); a field a row sets is kept."""
    path = tmp_path / "警务区.kml"
    rings = ["114.90,25.30 114.91,25.30 114.91,25.31 114.90,25.30",
             "114.91,25.30 114.92,25.30 114.92,25.31 114.91,25.30"]  # fmt: skip
    marks = "".join(
        f"<Placemark><name>第{i + 1}警务区</name>"
        + ("<description>夜间巡逻</description>" if i == 1 else "")
        + "<ExtendedData><Data name='beat_code'><value>JW00"
        + f"{i + 1}</value></Data></ExtendedData><Polygon><outerBoundaryIs><LinearRing>"
        + f"<coordinates>{ring}</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
        for i, ring in enumerate(rings)
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        f"<Document>{marks}</Document></kml>",
        encoding="utf-8",
    )
    got = read_layer(path)
    assert got["name"].tolist() == ["第1警务区", "第2警务区"]
    assert got["description"].tolist()[1] == "夜间巡逻"  # set by a row: kept
    for field in ("timestamp", "begin", "end", "altitudeMode", "tessellate", "extrude",
                  "visibility", "drawOrder", "icon"):  # fmt: skip
        assert field not in got.columns
    assert set(got.columns) <= {"id", "name", "description", "beat_code", "geometry"}
    assert got["beat_code"].tolist() == ["JW001", "JW002"]
    assert _has(got.attrs["read_report"], "KML placemark fields that no row sets, dropped")
    assert _has(got.attrs["read_report"], "column: 'Name' → 'name'")


def test_geojson_in_gcj02(tmp_path: Path) -> None:
    truth = _truth_polygons()

    def to_gcj(c: np.ndarray) -> np.ndarray:
        return np.column_stack(from_wgs84(c[:, 0], c[:, 1], "gcj02"))

    drawn = truth.set_geometry(shapely.transform(truth.geometry.values, to_gcj), crs="EPSG:4326")
    path = tmp_path / "amap.geojson"
    drawn.to_file(path, driver="GeoJSON")
    got = read_layer(path, crs="gcj02")
    _assert_same_geometry(got, truth)
    _assert_schema(got)


# --------------------------------------------------------------------------- containers and errors


def test_gpkg_with_several_layers_needs_layer(tmp_path: Path) -> None:
    path = tmp_path / "multi.gpkg"
    truth = _truth_polygons()
    truth.to_crs(UNPREFIXED).to_file(path, layer="村界")
    _truth_points().to_file(path, layer="点")
    with pytest.raises(InputError, match=r"multi\.gpkg' has 2 layers \['村界', '点'\]; pass"):
        read_layer(path)
    with pytest.raises(InputError, match=r"has no layer '街道'"):
        read_layer(path, layer="街道")
    got = read_layer(path, layer="村界")
    _assert_same_geometry(got, truth)
    _assert_schema(got)


def test_filegdb(tmp_path: Path) -> None:
    truth = _truth_polygons()
    path = tmp_path / "county.gdb"
    with warnings.catch_warnings():
        # OpenFileGDB writes Integer64 as Float64 and says so
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(truth.to_crs(PREFIXED), path, driver="OpenFileGDB", layer="村界")
    got = read_layer(path)
    _assert_same_geometry(got, truth)
    _assert_schema(got)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file '.*nothere\.shp'"):
        read_layer(tmp_path / "nothere.shp")
    junk = tmp_path / "junk.geojson"
    junk.write_text("this is not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"cannot read '.*junk\.geojson'"):
        read_layer(junk)


def test_unknown_crs(tmp_path: Path) -> None:
    path = _write_shp(_truth_polygons(), tmp_path / "a.shp")
    with pytest.raises(CRSError, match=r"unknown CRS 'gcj03'"):
        read_layer(path, crs="gcj03")


# --------------------------------------------------------------------------- hypothesis

_china = st.tuples(st.floats(73.6, 134.4, allow_nan=False), st.floats(18.0, 53.0, allow_nan=False))


def _zone_of(lon: float) -> int:
    return round(lon / 3.0)  # 3-degree zone number; central meridian 3 * zone


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=st.lists(_china, min_size=1, max_size=4))
def test_prefixed_eastings_name_their_own_epsg(points: list[tuple[float, float]]) -> None:
    lon0 = points[0][0]
    zone = _zone_of(lon0)
    epsg = 4513 + zone - 25
    assert pyproj.CRS.from_epsg(epsg).name.endswith(f"zone {zone}")
    # the other points near the first, so that all lie in one zone
    lons = [lon0] + [lon0 + (p[0] - lon0) * 0.001 for p in points[1:]]
    lats = [p[1] for p in points]
    x, y = pyproj.Transformer.from_crs(4490, epsg, always_xy=True).transform(lons, lats)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gk.csv"
        pd.DataFrame({"x": x, "y": y}).to_csv(path, index=False)
        with pytest.raises(CRSError, match=rf"pass crs='EPSG:{epsg}'"):
            read_layer(path)
        got = read_layer(path, crs=f"EPSG:{epsg}")
    back = shapely.get_coordinates(got.geometry.values)
    assert np.allclose(back[:, 0], lons, atol=1e-7) and np.allclose(back[:, 1], lats, atol=1e-7)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point=_china, prefixed_written=st.booleans())
def test_wrong_member_of_the_gk_pair_names_the_right_one(
    point: tuple[float, float], prefixed_written: bool
) -> None:
    zone = _zone_of(point[0])
    prefixed, unprefixed = 4513 + zone - 25, 4534 + zone - 25
    written, passed = (prefixed, unprefixed) if prefixed_written else (unprefixed, prefixed)
    x, y = pyproj.Transformer.from_crs(4490, written, always_xy=True).transform(*point)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gk.csv"
        pd.DataFrame({"x": [x], "y": [y]}).to_csv(path, index=False)
        with pytest.raises(CRSError, match=rf"crs='EPSG:{written}'"):
            read_layer(path, crs=f"EPSG:{passed}")
