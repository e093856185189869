"""Fixtures for the command tests: workspaces written to GeoPackages in tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "partition"))
from territory_gen import make_territory

#: town of each community of the generated territory (A, B, C | D, E)
TOWNS = {
    "360722001001": "360722001",
    "360722001002": "360722001",
    "360722001003": "360722001",
    "360722001004": "360722002",
    "360722001005": "360722002",
}


@pytest.fixture
def towns() -> dict[str, str]:
    """Community code → town code of the ``workspace`` fixture."""
    return dict(TOWNS)


@pytest.fixture
def workspace(tmp_path) -> Path:
    """Communities (with ``town_code``), buildings and streets of a random territory."""
    t = make_territory(11, n_units=80)
    path = tmp_path / "t.gpkg"
    comms = t["communities"]
    comms["town_code"] = comms["code"].map(TOWNS)
    comms.to_file(path, layer="communities")
    t["units"].to_file(path, layer="buildings")
    t["streets"].to_file(path, layer="streets")
    return path


@pytest.fixture
def tiny_gpkg(tmp_path, tiny_workspace) -> Path:
    """The suite's tiny hand-built workspace (tests/conftest.py) as a GeoPackage."""
    from gridgeo.io import write_workspace

    path = tmp_path / "tiny.gpkg"
    write_workspace(tiny_workspace, path)
    return path
