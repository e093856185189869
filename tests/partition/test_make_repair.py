"""make_grids on real footprints: invalid unit geometries are repaired, listed, warned about."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from territory_gen import make_territory

from gridgeo.errors import RepairWarning, ValidationError
from gridgeo.partition import make_grids


def _bowtie(x: float, y: float, r: float = 4.0) -> shapely.Polygon:
    return shapely.Polygon([(x - r, y - r), (x + r, y + r), (x + r, y - r), (x - r, y + r)])


def _self_touching(x: float, y: float, r: float = 4.0) -> shapely.Polygon:
    """A shell that touches itself at one point, enclosing an inverted hole."""
    pts = [(-1, -1), (1, -1), (1, 1), (0, 1), (0.5, 0), (-0.5, 0), (0, 1), (-1, 1)]
    return shapely.Polygon([(x + r * a, y + r * b) for a, b in pts])


@pytest.fixture
def footprints() -> tuple[dict, gpd.GeoDataFrame]:
    """Territory units as footprints: boxes, a bow-tie (row 3), a self-touching ring (row 7)."""
    t = make_territory(0, n_units=30)
    units = t["units"].copy()
    xs, ys = units.geometry.x.to_numpy(), units.geometry.y.to_numpy()
    geoms = [shapely.box(x - 3, y - 3, x + 3, y + 3) for x, y in zip(xs, ys)]
    geoms[3] = _bowtie(xs[3], ys[3])
    geoms[7] = _self_touching(xs[7], ys[7])
    units = units.set_geometry(gpd.GeoSeries(geoms, index=units.index, crs=units.crs))
    return t, units


def test_invalid_footprints_are_repaired_listed_and_warned_once(footprints) -> None:
    t, units = footprints
    before = units.geometry.copy()
    assert not units.geometry.is_valid[[3, 7]].any() and units.geometry.is_valid.sum() == 28
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grids = make_grids(units, within=t["communities"], max_households=300, seed=1)
    repairs = [w for w in caught if issubclass(w.category, RepairWarning)]
    assert len(repairs) == 1, [str(w.message) for w in caught]
    with pytest.warns(
        RepairWarning,
        match=r"units: repaired 2 invalid geometries with shapely.make_valid at rows \['3', '7'\] "
        r"\(Ring Self-intersection.*; Self-intersection.*\); they are listed in attrs",
    ):
        make_grids(units, within=t["communities"], max_households=300, seed=1)
    assert grids.attrs["repaired"] == [3, 7]
    # households and population conserved; every unit, repaired or not, has one grid
    assert grids["households"].sum() == units["households"].sum()
    assert grids["population"].sum() == units["population"].sum()
    assert grids["n_units"].sum() == len(units)
    unit_grid = pd.Series(grids.attrs["unit_grid"], index=units.index)
    for i in (3, 7):
        grid = grids.set_index("code").geometry[unit_grid[i]]
        assert grid.covers(shapely.make_valid(units.geometry[i]).point_on_surface())
    # the input is not modified
    assert before.geom_equals_exact(units.geometry, tolerance=0).all()
    # a repaired footprint keeps its area (both lobes of the bow-tie, the ring minus its hole)
    fixed = shapely.make_valid(units.geometry[[3, 7]].to_numpy())
    assert np.allclose(shapely.area(fixed), [2 * 4.0**2, 8.0**2 - 4.0 * 4.0 / 2])


def test_repaired_labels_are_json_whatever_the_index(footprints, tmp_path) -> None:
    """Labels that JSON lacks (timestamps here) are listed as their str, so to_parquet works."""
    t, units = footprints
    stamps = pd.date_range("2025-01-01", periods=len(units), freq="D")
    units = units.set_axis(stamps)
    with pytest.warns(RepairWarning, match="repaired 2 invalid geometries"):
        grids = make_grids(units, within=t["communities"], max_households=300, seed=1)
    assert grids.attrs["repaired"] == [str(stamps[3]), str(stamps[7])]
    grids.to_parquet(tmp_path / "grids.parquet")
    assert gpd.read_parquet(tmp_path / "grids.parquet").attrs == grids.attrs


def test_valid_footprints_give_no_warning_and_an_empty_list(footprints) -> None:
    t, units = footprints
    units = units.drop(index=[3, 7])
    grids = make_grids(units, within=t["communities"], max_households=300, seed=1)
    assert grids.attrs["repaired"] == []


def test_empty_footprints_remain_an_error(footprints) -> None:
    t, units = footprints
    units.loc[5, "geometry"] = shapely.Polygon()
    with pytest.raises(ValidationError, match=r"units has 1 empty geometry at rows \['5'\]"):
        make_grids(units, within=t["communities"], max_households=300)
