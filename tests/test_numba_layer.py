"""numba's threading layer is chosen by what loads, and is always fork-safe.

Each case runs in a fresh interpreter: the layer is fixed for a process once a
kernel has run. The fork cases fork after the kernels ran in the parent, as
gunicorn does after preloading the app.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

_PRELUDE = """
import json, os, threading
import numpy as np
import shapely, geopandas as gpd
"""

# a lattice of 400 square zones; points in it and their brute-force answers
_LATTICE = """
cells = [shapely.box(114 + i * 0.01, 25 + j * 0.01, 114 + (i + 1) * 0.01, 25 + (j + 1) * 0.01)
         for i in range(20) for j in range(20)]
grids = gpd.GeoDataFrame({"code": [f"G{k:03d}" for k in range(len(cells))]},
                         geometry=cells, crs="EPSG:4490")
from gridgeo.assign import Locator
loc = Locator({"grids": grids})
rng = np.random.default_rng(1)
x, y = rng.uniform(113.99, 114.21, 20_000), rng.uniform(24.99, 25.21, 20_000)
tree = shapely.STRtree(cells)
pts = shapely.points(x, y)
want = np.full(len(x), "-", dtype=object)
p, g = tree.query(pts, predicate="covered_by")
for i, j in sorted(zip(p.tolist(), g.tolist()), reverse=True):
    want[i] = f"G{j:03d}"   # the smallest code wins on a shared edge, as the locator does
def same(frame):
    got = frame["grids"].astype(object).fillna("-").to_numpy()
    return bool((got == want).all())
"""

_FORK_AND_THREADS = """
assert same(loc.locate(x, y)), "parent"
import gridgeo._numba as gn
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    try:
        ok = same(loc.locate(x, y))
        # four threads launching kernels at once, as a gthread worker does
        res = []
        ts = [threading.Thread(target=lambda: res.append(same(loc.locate(x, y))))
              for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        os.write(w, json.dumps({"fork": ok, "threads": res}).encode())
    finally:
        os._exit(0)
os.close(w)
_, status = os.waitpid(pid, 0)
child = json.loads(os.read(r, 4096).decode() or "{}")
import numba
print(json.dumps({"status": status, "child": child, "layer": numba.threading_layer(),
                  "report": {k: str(v) for k, v in gn.threading_report().items()}}))
"""


def _run(code: str, env: dict[str, str] | None = None) -> dict:
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Terminating" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _has_tbb_wheel() -> bool:
    try:
        importlib.metadata.distribution("tbb")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _has_tbb_wheel(), reason="the tbb wheel is not installed")
def test_tbb_from_the_wheel_loads_whatever_its_layout() -> None:
    """The tbb wheel's libtbb is found and numba runs on it, before and after a fork."""
    out = _run(_PRELUDE + _LATTICE + _FORK_AND_THREADS)
    assert out["layer"] == "tbb", out
    assert out["status"] == 0 and out["child"] == {"fork": True, "threads": [True] * 4}, out


def test_without_tbb_the_fallback_is_fork_safe_and_serialises_launches() -> None:
    """No loadable libtbb: workqueue (fork-safe), launches serialised, answers exact."""
    code = (
        "import gridgeo._numba as gn\n"
        "gn._state['layer'] = None\n"
        "gn._load_libtbb = lambda: None\n"
        "import logging; logging.basicConfig()\n"
        "assert gn.configure_threading() == 'workqueue'\n"
        + _PRELUDE
        + _LATTICE
        + _FORK_AND_THREADS
    )
    out = _run(code)
    assert out["layer"] == "workqueue", out
    assert "does not load" in out["report"]["reason"], out
    assert out["status"] == 0 and out["child"] == {"fork": True, "threads": [True] * 4}, out


def test_a_user_layer_is_kept_but_a_server_replaces_an_unsafe_one() -> None:
    code = """
import gridgeo._numba as gn
assert gn.configure_threading() == "omp"
assert gn.threading_report()["fork_safe"] is False
layer = gn.ensure_fork_safe()
""" + _PRELUDE + _LATTICE + _FORK_AND_THREADS
    out = _run(code, {"NUMBA_THREADING_LAYER": "omp"})
    assert out["layer"] in ("tbb", "workqueue"), out
    assert out["status"] == 0 and out["child"]["fork"] is True, out


def test_too_late_to_change_an_unsafe_layer_is_an_error() -> None:
    code = """
import numpy as np, numba, json
import gridgeo._numba as gn
@numba.njit(parallel=True)
def f(a):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s
f(np.ones(10))
try:
    gn.ensure_fork_safe()
    print(json.dumps({"raised": None}))
except RuntimeError as err:
    print(json.dumps({"raised": str(err)}))
"""
    out = _run(code, {"NUMBA_THREADING_LAYER": "omp"})
    assert out["raised"] and "kills forked workers" in out["raised"], out
