"""Every user error ends in one ``Error: …`` line and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from gridgeo.cli import main


def _user_error(result: Result) -> str:
    """The error line of a run that failed as a user error should."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # click's exit, not an escaped exception
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return result.output[result.output.index("Error: ") :]


@pytest.fixture
def points(tiny_workspace) -> pd.DataFrame:
    """Points of the tiny workspace with Chinese categories, in WGS84-like lng/lat."""
    inc = tiny_workspace["incidents"]
    return pd.DataFrame(
        {
            "id": list(inc["id"]),
            "category": list(inc["category"]),
            "lng": inc["lng"],
            "lat": inc["lat"],
        }
    )


def _locate(csv: Path, ws: Path, out: Path, *extra: str) -> Result:
    args = ["locate", str(csv), "--workspace", str(ws), "-o", str(out), *extra]
    return CliRunner().invoke(main, args)


def test_locate_reads_a_gbk_csv(tmp_path, tiny_gpkg, points) -> None:
    csv = tmp_path / "gbk.csv"
    points.to_csv(csv, index=False, encoding="gbk")  # as Excel saves it on Chinese Windows
    out = tmp_path / "o.csv"
    result = _locate(csv, tiny_gpkg, out)
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out, encoding="utf-8-sig")
    assert list(got["category"]) == list(points["category"])
    assert got["grid"].notna().all()


def test_locate_names_an_encoding_it_cannot_read(tmp_path, tiny_gpkg, points) -> None:
    csv = tmp_path / "gbk.csv"
    points.to_csv(csv, index=False, encoding="gbk")
    msg = _user_error(_locate(csv, tiny_gpkg, tmp_path / "o.csv", "--encoding", "ascii"))
    assert "is not text in ascii" in msg and "--encoding" in msg


def test_locate_names_a_cell_that_is_not_a_number(tmp_path, tiny_gpkg, points) -> None:
    bad = points.astype({"lat": object})
    bad.loc[1, "lat"] = "25.3O5"  # a letter O typed for a zero
    csv = tmp_path / "bad.csv"
    bad.to_csv(csv, index=False)
    out = tmp_path / "o.csv"
    msg = _user_error(_locate(csv, tiny_gpkg, out))
    assert "column 'lat'" in msg and "line 3 '25.3O5'" in msg
    assert not out.exists()


def test_locate_swapped_columns_say_so(tmp_path, tiny_gpkg, points) -> None:
    csv = tmp_path / "swapped.csv"
    points.rename(columns={"lng": "lat", "lat": "lng"}).to_csv(csv, index=False)
    msg = _user_error(_locate(csv, tiny_gpkg, tmp_path / "o.csv"))
    assert "swapped" in msg


def test_locate_unknown_crs(tmp_path, tiny_gpkg, points) -> None:
    csv = tmp_path / "pts.csv"
    points.to_csv(csv, index=False)
    msg = _user_error(_locate(csv, tiny_gpkg, tmp_path / "o.csv", "--crs", "amap"))
    assert "unknown CRS 'amap'" in msg and "gcj02" in msg


def test_serve_data_that_is_not_a_workspace(tmp_path) -> None:
    not_gis = tmp_path / "notes.gpkg"
    not_gis.write_text("not a GeoPackage\n")
    msg = _user_error(CliRunner().invoke(main, ["serve", "--data", str(not_gis)]))
    assert "cannot open" in msg
    csv = tmp_path / "points.csv"
    csv.write_text("id,lng,lat\na,114.9,25.3\n")
    msg = _user_error(CliRunner().invoke(main, ["serve", "--data", str(csv)]))
    assert "layer 'grids' is missing" in msg


def test_library_errors_exit_2(workspace, tmp_path) -> None:
    # make_grids refuses a ceiling of 0 (InfeasibleError): a user error, not a crash
    out = tmp_path / "g.gpkg"
    args = ["partition", str(workspace), "--max-households", "0", "-o", str(out)]
    msg = _user_error(CliRunner().invoke(main, args))
    assert "max_households" in msg and not out.exists()


def test_an_output_folder_that_does_not_exist(workspace, tmp_path) -> None:
    out = tmp_path / "nope" / "g.gpkg"
    msg = _user_error(CliRunner().invoke(main, ["partition", str(workspace), "-o", str(out)]))
    assert "does not exist" in msg


def test_a_bug_is_not_hidden_as_a_user_error() -> None:
    from gridgeo.cli import user_error

    assert user_error(KeyError("code")) is None
    assert user_error(ValueError("x")) is None
