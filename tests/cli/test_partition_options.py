"""``gridgeo partition``: rules from a pipe, one town or a list of communities."""

from __future__ import annotations

import json
import os

import geopandas as gpd
import pytest
from click.testing import CliRunner

from gridgeo.cli import main


def _pipe(text: str) -> str:
    """A /dev/fd path to a pipe holding ``text``, readable once, as ``<(echo …)`` gives."""
    r, w = os.pipe()
    os.write(w, text.encode())
    os.close(w)
    return f"/dev/fd/{r}"


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_rules_from_a_pipe(workspace, tmp_path) -> None:
    rules = {"urban": {"max_households": 300}, "rural": {"max_households": 200}}
    path = _pipe(json.dumps(rules))
    out = tmp_path / "g.gpkg"
    try:
        result = CliRunner().invoke(
            main, ["partition", str(workspace), "--workers", "1", "--rules", path, "-o", str(out)]
        )
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
    assert result.exit_code == 0, result.output
    grids = gpd.read_file(out, layer="grids")
    kind = grids["community_code"].map(
        gpd.read_file(workspace, layer="communities").set_index("code")["type"]
    )
    ceiling = kind.map({k: r["max_households"] for k, r in rules.items()})
    assert ((grids["households"] <= ceiling) | grids["oversize"]).all()
    assert (grids["households"] > 200).any()  # the urban ceiling (300) was used, not 500 or 200
    assert "GridReport" in result.output  # the check after the write used the same rules


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_bad_rules_from_a_pipe_fail_before_anything_is_written(workspace, tmp_path) -> None:
    path = _pipe('{"urban": 300}')
    out = tmp_path / "g.gpkg"
    try:
        result = CliRunner().invoke(
            main, ["partition", str(workspace), "--rules", path, "-o", str(out)]
        )
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
    assert result.exit_code == 2, result.output
    assert "the rules for ['urban'] are not objects" in result.output
    assert not out.exists()


def _units_in(workspace, codes: set[str]) -> int:
    """Households of the buildings inside the communities ``codes`` (a plain spatial join)."""
    comms = gpd.read_file(workspace, layer="communities")
    units = gpd.read_file(workspace, layer="buildings")
    joined = gpd.sjoin(units, comms[comms["code"].isin(codes)], predicate="within")
    return int(joined["households"].sum())


def test_partition_one_town(workspace, tmp_path, towns) -> None:
    out = tmp_path / "g.gpkg"
    town = "360722001"
    args = ["partition", str(workspace), "--town", town, "--workers", "1", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    grids = gpd.read_file(out, layer="grids")
    in_town = {c for c, t in towns.items() if t == town}
    assert set(grids["community_code"]) == in_town
    assert int(grids["households"].sum()) == _units_in(workspace, in_town)
    assert "GridReport" in result.output and "in 3 communities" in result.output


def test_partition_listed_communities(workspace, tmp_path) -> None:
    out = tmp_path / "g.gpkg"
    codes = ["360722001003", "360722001005"]
    args = ["partition", str(workspace), "--workers", "1", "-o", str(out)]
    for code in codes:
        args += ["--community", code]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    grids = gpd.read_file(out, layer="grids")
    assert set(grids["community_code"]) == set(codes)
    assert int(grids["households"].sum()) == _units_in(workspace, set(codes))


@pytest.mark.parametrize(
    ("option", "code", "message"),
    [
        ("--town", "360722009", "unknown town code(s) ['360722009']; the towns are "
         "['360722001', '360722002']"),
        ("--community", "360722001099", "unknown community code(s) ['360722001099']; "
         "the communities are ['360722001001'"),
    ],
)
def test_partition_unknown_codes_list_the_valid_ones(
    workspace, tmp_path, option, code, message
) -> None:
    out = tmp_path / "g.gpkg"
    result = CliRunner().invoke(main, ["partition", str(workspace), option, code, "-o", str(out)])
    assert result.exit_code == 2
    assert message in result.output and not out.exists()
