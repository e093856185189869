"""Start-up: what waits for first use (the heat-map index, the compiled lookup kernels)
still answers exactly, once, and right after the server reports ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import shapely
from live_server import wait_until_serving

from gridgeo.assign import Locator
from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.app import SERVED_LAYERS, load_layers
from gridgeo.serve.heatmap import HeatmapService


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, scale=0.3, n_incidents=1500)


def _covering_grid(grids, lon: float, lat: float) -> str | None:
    """Brute force: the grid codes that cover the point, the smallest first."""
    wgs = grids.to_crs(4326)
    hit = wgs.loc[shapely.covers(wgs.geometry.to_numpy(), shapely.Point(lon, lat)), "code"]
    return min(map(str, hit)) if len(hit) else None


# ---- the heat-map index, built on first use ------------------------------------------------


def test_the_heat_index_waits_for_the_first_heat_request(county) -> None:
    app = create_app(ServiceConfig(), layers=county)
    heat = app.extensions["gridgeo"].heatmap
    client = app.test_client()
    assert not heat.prepared
    assert client.get("/locate?lng=114.93&lat=25.40").status_code == 200
    api = client.get("/api").json
    assert not heat.prepared  # the OpenAPI document lists categories without the index
    want = sorted(county["incidents"]["category"].astype(str).unique())
    assert api["paths"]["/heatmap/tiles/{z}/{x}/{y}.png"]["get"]["parameters"]
    assert want == heat.categories
    assert client.get("/heatmap").status_code == 200
    assert heat.prepared and heat.index.categories == want


def test_a_lazily_built_index_counts_every_incident_in_its_grid(county) -> None:
    svc = HeatmapService(county)
    page, status, _ = svc.page({})
    assert status == 200 and svc.prepared
    assert f"{len(county['incidents']):,}" in page
    idx = svc.index
    assert idx.grid is not None and idx.grid_codes is not None
    per_grid = np.bincount(idx.grid[idx.grid >= 0], minlength=len(idx.grid_codes))
    counts = dict(zip(map(str, idx.grid_codes), per_grid.tolist()))
    # brute force: each incident in the grid that covers it
    inc = county["incidents"].to_crs(4326)
    grids = county["grids"].to_crs(4326)
    j = inc.sjoin(grids[["code", "geometry"]], predicate="covered_by", how="left")
    j = j[~j.index.duplicated()]
    want = j["code"].value_counts()
    assert sum(counts.values()) == want.sum()
    for code, n in counts.items():
        assert n == want.get(code, 0), code


def test_concurrent_first_requests_build_the_index_once(county, monkeypatch) -> None:
    from gridgeo.analyze import IncidentIndex

    calls: list[int] = []
    real = IncidentIndex.build.__func__  # type: ignore[attr-defined]

    def counting_build(cls, *args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.05)  # widen the window in which a second build could start
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(IncidentIndex, "build", classmethod(counting_build))
    svc = HeatmapService(county)
    n = 8
    barrier = threading.Barrier(n)
    seen: list[object] = []
    tiles: list[bytes] = []

    def first_request() -> None:
        barrier.wait()
        tiles.append(svc.tile(12, 3354, 1760, {})[0])
        seen.append(svc.index)

    threads = [threading.Thread(target=first_request) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(seen) == n and all(s is seen[0] for s in seen)
    assert len(set(tiles)) == 1


def test_preload_builds_the_index_at_start_up(county, monkeypatch) -> None:
    app = create_app(ServiceConfig(preload_heatmap=True), layers=county)
    assert app.extensions["gridgeo"].heatmap.prepared
    monkeypatch.setenv("GRIDGEO_PRELOAD_HEATMAP", "1")
    assert ServiceConfig.from_env().preload_heatmap
    monkeypatch.setenv("GRIDGEO_PRELOAD_HEATMAP", "0")
    assert not ServiceConfig.from_env().preload_heatmap


def test_only_the_served_layers_are_read(county, tmp_path) -> None:
    from gridgeo.io import write_workspace

    path = tmp_path / "w.gpkg"
    write_workspace(county, path)
    layers = load_layers(ServiceConfig(data=path))
    # the workspace is the incident store: its incidents are read from it, live, not here
    assert set(layers) == set(SERVED_LAYERS) - {"incidents"}
    assert "buildings" in county and "buildings" not in layers
    pd.testing.assert_series_equal(
        layers["grids"]["code"].astype(str), county["grids"]["code"].astype(str)
    )


def test_a_missing_served_layer_is_an_error(county, tmp_path) -> None:
    from gridgeo.errors import ValidationError
    from gridgeo.io import write_workspace

    path = tmp_path / "w.gpkg"
    write_workspace({k: v for k, v in county.items() if k != "beats"}, path, layers=[])
    with pytest.raises(ValidationError, match="beats"):
        load_layers(ServiceConfig(data=path))


# ---- the real server, right after it reports ready -----------------------------------------


def _boundary_points(county, n: int) -> tuple[list[float], list[float]]:
    """Points on and beside grid edges: their lookups need the exact test."""
    wgs = county["grids"].to_crs(4326)
    xy = shapely.get_coordinates(wgs.geometry.to_numpy())
    rng = np.random.default_rng(1)
    pick = rng.choice(len(xy) - 1, n, replace=False)
    t = rng.uniform(0, 1, n)[:, None]
    pts = xy[pick] * (1 - t) + xy[pick + 1] * t  # on an edge (of a ring, mostly)
    pts[: n // 2] += rng.normal(0, 2e-5, (n // 2, 2))  # and a couple of metres off
    return pts[:, 0].tolist(), pts[:, 1].tolist()


@pytest.mark.server
@pytest.mark.parametrize("extra", [[], ["--preload-heatmap"]], ids=["lazy", "preload"])
def test_locate_is_exact_as_soon_as_the_server_is_ready(county, tmp_path, extra) -> None:
    import requests

    from gridgeo.io import write_workspace

    path, saved = tmp_path / "w.gpkg", tmp_path / "loc.npz"
    write_workspace(county, path)
    Locator.from_workspace(county).save(saved)
    lon, lat = _boundary_points(county, 40)
    want = [_covering_grid(county["grids"], x, y) for x, y in zip(lon, lat)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(path)]
    cmd += ["--locator", str(saved), "--port", str(port), "--workers", "2", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc, poll=0.02)
        # at once, while the workers may still be loading their kernels
        got = []
        with requests.Session() as http:
            for x, y in zip(lon, lat):
                r = http.get(f"{url}/locate?lng={x!r}&lat={y!r}", timeout=30)
                assert r.status_code == 200, r.text
                got.append((r.json()["grid"] or {}).get("code"))
            r = http.post(
                url + "/locate",
                json={"crs": "wgs84", "points": np.column_stack([lon, lat]).tolist()},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            batch = r.json()["results"]["grid"]
            tile = http.get(url + "/heatmap/tiles/12/3354/1760.png", timeout=60)
            assert tile.status_code == 200 and tile.headers["Content-Type"] == "image/png"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert got == want
    assert batch == want


@pytest.mark.server
def test_a_server_stopped_while_it_warms_up_exits_promptly(county, tmp_path) -> None:
    import requests

    from gridgeo.io import write_workspace

    path, saved = tmp_path / "w.gpkg", tmp_path / "loc.npz"
    write_workspace(county, path)
    Locator.from_workspace(county).save(saved)
    # Two causes made this slow, one of them intermittent: a worker's exit waited for
    # its warm-up thread (5-10 s on a busy machine), and a stop signal that reached a
    # worker before its handlers were installed was lost, so the master waited 30 s.
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(path)]
        cmd += ["--locator", str(saved), "--port", str(port), "--workers", "2"]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.01)
            proc.terminate()  # at once: the workers are still loading their kernels
            proc.wait(timeout=12)  # well below gunicorn's 30 s kill of stuck workers
        finally:
            if proc.poll() is None:  # the master and its workers, which would be orphaned
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
