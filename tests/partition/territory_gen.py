"""Random territories for the partition tests, in a metric CRS (CGCS2000 GK CM 114E)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

CRS = "EPSG:4547"
X0, Y0 = 600_000.0, 2_800_000.0


def make_territory(
    seed: int, *, n_units: int = 120, oversize: int = 2
) -> dict[str, gpd.GeoDataFrame]:
    """Communities that tile a 3 km × 2 km box, with a hole, a two-part community and an empty one.

    Layout (1 km cells)::

        A A E        A: an urban community with a hole (the enclave E)
        B C B        B: a rural community in two parts; C: urban; D: empty rural
        D D D        (rows from north to south)
    """
    rng = np.random.default_rng(seed)
    cell = 1000.0

    def box(i: float, j: float, w: float = 1, h: float = 1) -> shapely.Polygon:
        return shapely.box(X0 + i * cell, Y0 + j * cell, X0 + (i + w) * cell, Y0 + (j + h) * cell)

    enclave = shapely.box(X0 + 700, Y0 + 2300, X0 + 1300, Y0 + 2700)
    a = shapely.difference(box(0, 2, 2, 1), enclave)
    e = shapely.union(box(2, 2), enclave)
    b = shapely.MultiPolygon([box(0, 1), box(2, 1)])
    comms = gpd.GeoDataFrame(
        {
            "code": [
                "360722001001",
                "360722001002",
                "360722001003",
                "360722001004",
                "360722001005",
            ],
            "name": ["A", "B", "C", "D", "E"],
            "type": ["urban", "rural", "urban", "rural", "urban"],
        },
        geometry=[a, b, box(1, 1), box(0, 0, 3, 1), e],
        crs=CRS,
    )
    # units everywhere but D (empty)
    xs = rng.uniform(X0 + 5, X0 + 3 * cell - 5, n_units * 3)
    ys = rng.uniform(Y0 + cell + 5, Y0 + 3 * cell - 5, n_units * 3)
    xs, ys = xs[:n_units], ys[:n_units]
    hh = rng.integers(1, 60, n_units)
    big = rng.choice(n_units, size=min(oversize, n_units), replace=False)
    hh[big] = rng.integers(600, 900, len(big))
    pop = hh * 3 + rng.integers(0, 3, n_units)
    units = gpd.GeoDataFrame(
        {"households": hh, "population": pop}, geometry=gpd.points_from_xy(xs, ys), crs=CRS
    )
    streets = gpd.GeoDataFrame(
        {"name": ["east road", "river"]},
        geometry=[
            shapely.LineString([(X0 + 1500, Y0 - 10), (X0 + 1500, Y0 + 3 * cell + 10)]),
            shapely.LineString([(X0 - 10, Y0 + 1700), (X0 + 3 * cell + 10, Y0 + 1650)]),
        ],
        crs=CRS,
    )
    return {"communities": comms, "units": units, "streets": streets}
