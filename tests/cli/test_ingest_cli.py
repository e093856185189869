"""``gridgeo ingest``: bulk history into the incident store, each row located."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner, Result

from gridgeo.cli import main
from gridgeo.crs import from_wgs84, to_wgs84
from gridgeo.io.store import open_store

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"
SUMMARY = re.compile(
    r"^ingested ([\d,]+) rows into (.+): ([\d,]+) new, ([\d,]+) already stored, "
    r"in [\d.]+ s \([\d,]+ rows/s\)$",
    re.M,
)


@pytest.fixture(autouse=True)
def _no_store_from_env(monkeypatch) -> None:
    monkeypatch.delenv("GRIDGEO_STORE", raising=False)


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["ingest", *map(str, args)], env=env)


def _summary(result: Result) -> tuple[int, int, int]:
    """(rows, new, existing) of a successful run's summary line."""
    assert result.exit_code == 0, (result.output, result.exception)
    found = SUMMARY.findall(result.stdout)  # the progress bar goes to stderr
    assert len(found) == 1, result.output
    assert "ingest: 100%" in result.stderr
    rows, _, new, existing = found[0]
    return tuple(int(v.replace(",", "")) for v in (rows, new, existing))


def _inside(grids: gpd.GeoDataFrame, n_per_grid: int, seed: int) -> tuple[np.ndarray, ...]:
    """WGS84 lon/lat of random points well inside the grids (shrunk 20 m from every edge)."""
    rng = np.random.default_rng(seed)
    metric = grids.to_crs(4547)
    inner = metric.buffer(-20).to_crs(grids.crs)
    pts = inner[~inner.is_empty].sample_points(n_per_grid, rng=rng).explode()
    return pts.x.to_numpy(), pts.y.to_numpy()


def _brute_force_codes(zones: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray) -> list:
    """Code of the zone containing each point, zone by zone (None outside all)."""
    out = np.full(len(x), None, dtype=object)
    for code, geom in zip(zones["code"], zones.geometry):
        out[shapely.contains_xy(geom, x, y)] = code
    return out.tolist()


#: Descriptions that CSV and COPY must carry through unchanged (None: missing).
TRICKY = ["楼道堆物, 占用通道", 'he said "no"', "第一行\n第二行", "\\N", "", None]


def _gcj_csv(path: Path, lon: np.ndarray, lat: np.ndarray, *, encoding: str) -> pd.DataFrame:
    """A CSV as exported from a phone app: GCJ-02 coordinates, Chinese headers."""
    gx, gy = from_wgs84(lon, lat, "gcj02")
    n = len(lon)
    table = pd.DataFrame(
        {
            "编号": [f"{i:07d}" for i in range(n)],  # leading zeros must survive
            "类别": np.resize(["消防安全", "乱停乱放", "矛盾纠纷"], n),
            "上报时间": "2025-03-01 08:00",
            "经度": gx,
            "纬度": gy,
            "描述": np.resize(np.array(TRICKY, dtype=object), n),
        }
    )
    table.to_csv(path, index=False, encoding=encoding)
    return table


def test_gcj02_csv_with_chinese_headers_is_located_into_the_workspace(tmp_path) -> None:
    ws = tmp_path / "demo.gpkg"
    shutil.copy(DEMO, ws)
    grids = gpd.read_file(ws, layer="grids")
    before = len(gpd.read_file(ws, layer="incidents"))
    lon, lat = _inside(grids, 20, seed=3)  # over 1000 rows: the store's bulk path
    csv = tmp_path / "history.csv"
    table = _gcj_csv(csv, lon, lat, encoding="gbk")  # as Excel saves it on Chinese Windows
    assert len(table) >= 1000

    result = _run(csv, "--data", ws, "--crs", "gcj02")
    assert _summary(result) == (len(table), len(table), 0)

    with open_store(ws) as store:
        assert store.count() == before + len(table)
        got = store.query().set_index("id").loc[table["编号"]]
    # the stored point is the GCJ-02 report taken back to WGS84; the report is kept as given
    wx, wy = to_wgs84(table["经度"].to_numpy(), table["纬度"].to_numpy(), "gcj02")
    np.testing.assert_allclose(got.geometry.x, wx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.geometry.y, wy, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got["lng"], table["经度"])
    assert got["grid_code"].tolist() == _brute_force_codes(grids, wx, wy)
    assert got["grid_code"].notna().all()
    communities = gpd.read_file(ws, layer="communities")
    assert got["community_code"].tolist() == _brute_force_codes(communities, wx, wy)
    assert got["category"].tolist() == table["类别"].tolist()
    # the layer stays a GeoPackage layer GDAL reads: its feature count, its R-tree
    assert len(gpd.read_file(ws, layer="incidents")) == before + len(table)
    assert pyogrio.read_info(ws, layer="incidents")["features"] == before + len(table)
    box = (wx.min(), wy.min(), wx.max(), wy.max())
    seen = gpd.read_file(ws, layer="incidents", bbox=box, columns=["id"])["id"]
    assert set(table["编号"]) <= set(seen)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "geojson"])
def test_loading_twice_stores_each_incident_once(tmp_path, tiny_gpkg, fmt) -> None:
    grids = gpd.read_file(tiny_gpkg, layer="grids")
    lon, lat = _inside(grids, 3, seed=1)
    n = len(lon)
    frame = gpd.GeoDataFrame(
        {
            "id": [f"H{i}" for i in range(n)],
            "category": "消防安全",
            "reported_at": "2025-03-01T08:00:00+08:00",
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4490",
    )
    path = tmp_path / f"history.{fmt}"
    if fmt == "csv":  # UTF-8 with lng/lat columns
        pd.DataFrame(frame.drop(columns="geometry")).assign(lng=lon, lat=lat).to_csv(
            path, index=False
        )
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    stored = len(gpd.read_file(tiny_gpkg, layer="incidents"))

    first = _summary(_run(path, "--data", tiny_gpkg, "--chunk", "5"))
    assert first == (n, n, 0)
    with open_store(tiny_gpkg) as store:
        assert store.count() == stored + n
    second = _summary(_run(path, "--data", tiny_gpkg))
    assert second == (n, 0, n)
    with open_store(tiny_gpkg) as store:
        assert store.count() == stored + n
        codes = store.query().set_index("id").loc[frame["id"], "grid_code"].tolist()
    assert codes == _brute_force_codes(grids, lon, lat)


def test_an_id_repeated_in_the_file_is_stored_once_from_its_first_row(tmp_path, tiny_gpkg) -> None:
    table = pd.DataFrame(
        {
            "id": ["R1", "R2", "R1", "R3", "R2"],
            "category": ["first", "first", "second", "first", "second"],
            "reported_at": "2025-03-01T08:00:00+08:00",
            "lng": [114.905, 114.915, 114.925, 114.905, 114.915],
            "lat": 25.305,
        }
    )
    csv = _csv(tmp_path, table)
    with open_store(tiny_gpkg) as store:
        before = store.count()
    result = _run(csv, "--data", tiny_gpkg)
    assert _summary(result) == (5, 3, 0)
    assert "2 id(s) appear more than once in" in result.stderr
    assert "the others skipped: R1, R2" in result.stderr
    with open_store(tiny_gpkg) as store:
        assert store.count() == before + 3
        got = store.query(where={"category": "first"})
        assert sorted(got["id"]) == ["R1", "R2", "R3"]
        assert store.count(where={"category": "second"}) == 0
        assert got.set_index("id").loc["R1", "lng"] == 114.905


@pytest.mark.parametrize("how", ["--store", "GRIDGEO_STORE"])
def test_into_postgis_with_zones_from_the_workspace(tmp_path, tiny_gpkg, postgresql, how) -> None:
    grids = gpd.read_file(tiny_gpkg, layer="grids")
    lon, lat = _inside(grids, 4, seed=2)
    csv = tmp_path / "history.csv"
    table = _gcj_csv(csv, lon, lat, encoding="utf-8")
    in_workspace = len(gpd.read_file(tiny_gpkg, layer="incidents"))

    args: list = [csv, "--data", tiny_gpkg, "--crs", "gcj02", "--chunk", "7"]
    env = None
    if how == "--store":
        args += ["--store", postgresql]
    else:
        env = {"GRIDGEO_STORE": postgresql}
    result = _run(*args, env=env)
    assert _summary(result) == (len(table), len(table), 0)
    dbname = postgresql.split("///", 1)[1].split("?", 1)[0]
    assert SUMMARY.findall(result.stdout)[0][1].endswith(f"/{dbname}")  # named, not the gpkg
    assert _summary(_run(*args, env=env)) == (len(table), 0, len(table))

    with open_store(postgresql) as store:
        assert store.count() == len(table)
        got = store.query().set_index("id").loc[table["编号"]]
    wx, wy = to_wgs84(table["经度"].to_numpy(), table["纬度"].to_numpy(), "gcj02")
    assert got["grid_code"].tolist() == _brute_force_codes(grids, wx, wy)
    np.testing.assert_array_equal(got.geometry.x, wx)  # COPY carries doubles exactly
    np.testing.assert_array_equal(got["lat"], table["纬度"])
    expected = [d if isinstance(d, str) and d else None for d in table["描述"]]  # blank: missing
    assert got["description"].tolist() == expected
    beats = gpd.read_file(tiny_gpkg, layer="beats")
    assert got["beat_code"].tolist() == _brute_force_codes(beats, wx, wy)
    # the workspace only lent its zones
    assert len(gpd.read_file(tiny_gpkg, layer="incidents")) == in_workspace


def _csv(tmp_path: Path, table: pd.DataFrame) -> Path:
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    return path


GOOD = {"id": ["A", "B"], "category": ["c", "c"], "reported_at": ["2025-03-01"] * 2}
XY = {"lng": [114.905, 114.915], "lat": [25.305, 25.305]}


@pytest.mark.parametrize(
    ("table", "extra", "match"),
    [
        pytest.param(
            {k: v for k, v in GOOD.items() if k != "id"} | XY,
            [],
            r"has no column\(s\) \['id'\] \(also accepted: id: 编号",
            id="no-id",
        ),
        pytest.param(
            {"id": ["A", "B"], "category": ["c", "c"]} | XY,
            [],
            r"has no column\(s\) \['reported_at'\].*上报时间",
            id="no-time",
        ),
        pytest.param(GOOD | XY, ["--crs", "amap"], r"unknown CRS 'amap'.*gcj02", id="bad-crs"),
        pytest.param(
            GOOD | {"x": [114.9, 114.9], "y": [25.3, 25.3]},
            [],
            r"has no column\(s\) \['lng', 'lat'\].*use --x/--y",
            id="no-coordinates",
        ),
        pytest.param(
            GOOD | {"lng": [114.905, None], "lat": [25.305, None]},
            [],
            r"1 row\(s\) without coordinates in 'lng'/'lat': line 3",
            id="blank-coordinates",
        ),
        pytest.param(
            GOOD | {"reported_at": ["2025-03-01", "yesterday"]} | XY,
            [],
            r"row 1 \(id 'B'\): 'reported_at' is missing or not an ISO 8601 time",
            id="bad-time",
        ),
    ],
)
def test_user_errors_are_one_line(tmp_path, tiny_gpkg, table, extra, match) -> None:
    csv = _csv(tmp_path, pd.DataFrame(table))
    args = ["ingest", str(csv), "--data", str(tiny_gpkg), *extra]
    with pytest.raises(click.ClickException, match=match):
        main.main(args, standalone_mode=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert len([ln for ln in result.output.splitlines() if ln.startswith("Error: ")]) == 1
    with open_store(tiny_gpkg) as store:  # nothing stored
        assert store.count() == len(gpd.read_file(tiny_gpkg, layer="incidents"))
        assert not set(store.query()["id"]) & set(table.get("id", []))


def test_a_file_that_does_not_exist(tmp_path, tiny_gpkg) -> None:
    args = ["ingest", str(tmp_path / "nope.csv"), "--data", str(tiny_gpkg)]
    with pytest.raises(click.BadParameter, match=r"File '.*nope\.csv' does not exist"):
        main.main(args, standalone_mode=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.count("Error: ") == 1


def test_an_unreachable_store_is_one_line(tmp_path, tiny_gpkg) -> None:
    csv = _csv(tmp_path, pd.DataFrame(GOOD | XY))
    dsn = "postgresql://nobody@127.0.0.1:1/none"
    args = ["ingest", str(csv), "--data", str(tiny_gpkg), "--store", dsn]
    with pytest.raises(click.ClickException, match=r"cannot connect to PostgreSQL at"):
        main.main(args, standalone_mode=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.output.count("Error: ") == 1
