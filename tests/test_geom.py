"""Tests for gridgeo.geom: shared boundary lengths between polygons cut separately."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.errors import InputError
from gridgeo.geom import adjacency, shared_boundaries

METRIC = "EPSG:4549"  # CGCS2000 3° GK zone, metres
X0, Y0 = 500_000.0, 3_000_000.0  # GK-sized coordinates, where rounding errors live


def _right_with_bumps(y0: float, y1: float, bumps: list[tuple[float, float]]) -> shapely.Polygon:
    """Rectangle [X0+100, X0+200] × [y0, y1] whose left edge has extra vertices.

    ``bumps`` are (fraction along the edge, x offset in metres): vertices the left
    polygon does not have, each a little off the common line x = X0 + 100.
    """
    x = X0 + 100.0
    down = [(x + dx, y1 - f * (y1 - y0)) for f, dx in sorted(bumps)]
    return shapely.Polygon([(x, y0), (X0 + 200.0, y0), (X0 + 200.0, y1), (x, y1), *down])


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(0.0, 80.0),
    hi=st.floats(100.0, 200.0),
    bumps=st.lists(
        st.tuples(st.floats(0.01, 0.99), st.floats(-5e-4, 5e-4)), min_size=1, max_size=8,
        unique_by=lambda b: round(b[0], 3),
    ),
)
def test_extra_vertices_off_the_line_still_share_the_true_length(lo, hi, bumps):
    # the left square [0, 100]² meets the right rectangle along x = 100 for y in [lo, 100]
    left = shapely.box(X0, Y0, X0 + 100.0, Y0 + 100.0)
    right = _right_with_bumps(Y0 + lo, Y0 + hi, bumps)
    g = gpd.GeoSeries([left, right], crs=METRIC)
    a = adjacency(g)
    true = min(hi, 100.0) - lo
    assert a[0, 1] == pytest.approx(true, abs=1e-3)
    assert a[1, 0] == a[0, 1]
    assert a.diagonal().tolist() == [0.0, 0.0]


def test_exact_matching_misses_what_the_tolerance_finds():
    left = shapely.box(X0, Y0, X0 + 100.0, Y0 + 100.0)
    right = _right_with_bumps(Y0, Y0 + 100.0, [(0.3, 3e-4), (0.6, -2e-4)])
    g = gpd.GeoSeries([left, right], crs=METRIC)
    assert adjacency(g, tolerance_m=0)[0, 1] < 1.0  # only points (or nothing) in common
    assert adjacency(g)[0, 1] == pytest.approx(100.0, abs=1e-3)


@pytest.mark.parametrize("offset", [2e-4, -3e-4, 4e-3])
def test_whole_edge_shifted_by_less_than_the_tolerance(offset):
    # the right polygon's left edge runs parallel to the left one's, ``offset`` away,
    # with vertices at different places along it
    left = shapely.Polygon(
        [(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 + 40), (X0 + 100, Y0 + 100), (X0, Y0 + 100)]
    )
    x = X0 + 100 + offset
    right = shapely.Polygon([(x, Y0), (X0 + 200, Y0), (X0 + 200, Y0 + 100), (x, Y0 + 100),
                             (x, Y0 + 77)])
    g = gpd.GeoSeries([left, right], crs=METRIC)
    assert adjacency(g)[0, 1] == pytest.approx(100.0, abs=1e-2)


def test_tolerance_does_not_invent_neighbours():
    g = gpd.GeoSeries(
        [
            shapely.box(X0, Y0, X0 + 1, Y0 + 1),
            shapely.box(X0 + 1, Y0 + 1, X0 + 2, Y0 + 2),  # corner contact
            shapely.box(X0 + 1.0005, Y0 - 1, X0 + 2, Y0 + 1e-3),  # corner 0.5 mm away
            shapely.box(X0 - 1, Y0 + 1.05, X0 + 0.5, Y0 + 2),  # 5 cm gap
        ],
        crs=METRIC,
    )
    a = adjacency(g).toarray()
    assert a.tolist() == np.zeros((4, 4)).tolist()


def test_matches_exact_lengths_on_a_clean_lattice():
    boxes = np.array([shapely.box(X0 + i * 7.0, Y0 + j * 5.0, X0 + i * 7.0 + 7.0,
                                  Y0 + j * 5.0 + 5.0) for j in range(4) for i in range(5)])
    assert (shared_boundaries(boxes) != shared_boundaries(boxes, tolerance=0)).nnz == 0


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf")])
def test_bad_tolerance(bad):
    g = gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=METRIC)
    with pytest.raises(InputError, match="tolerance must be a finite number of metres"):
        adjacency(g, tolerance_m=bad)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), step=st.floats(3.0, 40.0))
def test_a_coverage_segmentized_cell_by_cell_shares_all_its_inner_edges(seed, step):
    # each cell's edges densified on its own: the two sides of an edge get vertices
    # that differ in the last bits, as polygons cut or reprojected separately do
    rng = np.random.default_rng(seed)
    env = shapely.box(X0, Y0, X0 + 1000, Y0 + 1000)
    pts = shapely.MultiPoint(rng.uniform(0, 1000, (40, 2)) + np.array([X0, Y0]))
    cells = shapely.intersection(
        shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=env)), env
    )
    cells = shapely.segmentize(cells, step)
    a = shared_boundaries(cells)
    inner = float(shapely.length(cells).sum()) - 4000.0  # each inner edge counted twice
    assert a.sum() == pytest.approx(inner, rel=1e-9)
    assert (a != a.T).nnz == 0
