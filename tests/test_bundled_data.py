"""The bundled demo workspace is valid and is what `gridgeo demo` makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridgeo.datasets import demo_county
from gridgeo.io import read_workspace

DEMO = Path(__file__).parents[1] / "data" / "demo.gpkg"


@pytest.mark.skipif(not DEMO.exists(), reason="data/demo.gpkg not in this checkout")
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
