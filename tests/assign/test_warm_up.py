"""Before its kernels are loaded, a process answers single points with shapely (no numba
import, no wait) and the same answers; ``warm_up`` loads them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import geopandas as gpd
import numpy as np
import pytest
import shapely

# Run in a fresh interpreter: this test process may have loaded numba already.
_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import geopandas as gpd
    from gridgeo.assign import Locator

    grids = gpd.read_file(sys.argv[1])
    pts = json.loads(sys.argv[2])
    loc = Locator({"grid": grids})
    cold = [(loc.locate_one(x, y)["grid"] or {}).get("code") for x, y in pts]
    numba_before = "numba" in sys.modules
    took = loc.warm_up()
    warm = [(loc.locate_one(x, y)["grid"] or {}).get("code") for x, y in pts]
    print(json.dumps({"cold": cold, "warm": warm, "numba_before": numba_before,
                      "numba_after": "numba" in sys.modules, "took": took}))
    """
)


@pytest.fixture(scope="module")
def lattice(tmp_path_factory):
    """A 6×4 lattice of grids: shared edges and vertices everywhere."""
    boxes = [
        shapely.box(115 + 0.01 * i, 25 + 0.01 * j, 115.01 + 0.01 * i, 25.01 + 0.01 * j)
        for i in range(6)
        for j in range(4)
    ]
    grids = gpd.GeoDataFrame(
        {"code": [f"G{k:02d}" for k in range(len(boxes))]}, geometry=boxes, crs="EPSG:4490"
    )
    path = tmp_path_factory.mktemp("warm") / "grids.gpkg"
    grids.to_file(path)
    return grids, path


def test_single_points_are_exact_before_and_after_warm_up(lattice) -> None:
    grids, path = lattice
    rng = np.random.default_rng(0)
    # on edges, on vertices, next to them, and anywhere
    xs = np.r_[115 + 0.01 * rng.integers(0, 7, 40), rng.uniform(114.999, 115.061, 60)]
    ys = np.r_[rng.uniform(24.999, 25.041, 40), 25 + 0.01 * rng.integers(0, 5, 60)]
    xs[::7] += rng.normal(0, 1e-9, len(xs[::7]))
    pts = np.column_stack([xs, ys]).tolist()
    geoms = grids.geometry.to_numpy()
    want = []
    for x, y in pts:
        hit = grids.loc[shapely.covers(geoms, shapely.Point(x, y)), "code"]
        want.append(min(hit) if len(hit) else None)  # the boundary rule: smallest key
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path), json.dumps(pts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["numba_before"] is False  # answered without loading numba
    assert got["numba_after"] is True and got["took"] > 0
    assert got["cold"] == want
    assert got["warm"] == want


_AFTER_BATCH = textwrap.dedent(
    """
    import json, sys
    import geopandas as gpd
    import numpy as np
    from gridgeo.assign import Locator

    grids = gpd.read_file(sys.argv[1])
    pts = np.array(json.loads(sys.argv[2]))
    loc = Locator({"grid": grids})
    loc.locate(pts[:, 0], pts[:, 1], crs="cgcs2000")  # a batch loads numba and its kernels
    one = [(loc.locate_one(x, y)["grid"] or {}).get("code") for x, y in pts.tolist()]
    from gridgeo.assign import _kernels
    print(json.dumps({"one": one, "compiled": bool(_kernels.exact_one.overloads)}))
    """
)


def test_single_points_use_the_compiled_kernel_once_a_batch_loaded_numba(lattice) -> None:
    """Without a server's warm-up, a process that ran a batch lookup must not stay on the
    slow shapely path for single points (the benchmark's p99 went 50 µs → 834 µs)."""
    grids, path = lattice
    xs = 115 + 0.01 * np.arange(7) + 1e-7
    ys = np.full(7, 25.005)
    pts = np.column_stack([xs, ys]).tolist()
    geoms = grids.geometry.to_numpy()
    want = []
    for x, y in pts:
        hit = grids.loc[shapely.covers(geoms, shapely.Point(x, y)), "code"]
        want.append(min(hit) if len(hit) else None)
    out = subprocess.run(
        [sys.executable, "-c", _AFTER_BATCH, str(path), json.dumps(pts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["one"] == want
    assert got["compiled"] is True
