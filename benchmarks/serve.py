"""Serve benchmark: the real `gridgeo serve` (gunicorn, 2 workers) on loopback.

Measures, with ``wrk`` when Debian's is installed (else a keep-alive Python client,
both with 8 connections for a fixed time):

* single-point ``GET /locate`` throughput and p50/p99 latency, beside ``/healthz``
  (the HTTP floor);
* ``POST /locate`` with 100,000 points, end to end;
* reading every grid through the items pages (``next`` links);
* start-up (process start → first 200 on /healthz), from the workspace and from a
  saved locator index, with the latency of the first ``GET /locate`` right after it
  (a point on a grid edge, so the exact test runs; checked against the library) and
  of the first heat tile; beside ``--preload-heatmap``, which builds the heat-map index
  before the workers fork (and so loads numba in the master), as the service did
  before it deferred that work. Each start-up is repeated (median and worst).

Usage::

    python benchmarks/serve.py [--quick] [--seconds 10]

Writes ``benchmarks/results/serve.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

import gridgeo

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo.gpkg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str]) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridgeo.cli", "serve", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - t0 < 120:
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return proc, url, time.perf_counter() - t0
        except requests.ConnectionError:
            time.sleep(0.01)
    proc.kill()
    raise RuntimeError("server did not start")


def edge_point() -> tuple[float, float, str]:
    """A point on a grid edge of the demo (its cell needs the exact test), and its grid."""
    import shapely

    from gridgeo.assign import Locator
    from gridgeo.io import read_workspace

    grids = read_workspace(DEMO, only=["grids"])["grids"].to_crs(4326)
    xy = shapely.get_coordinates(grids.geometry.iloc[5])
    lon, lat = (float(v) for v in (xy[0] + xy[1]) / 2)
    code = Locator({"grid": grids}).locate_one(lon, lat)["grid"]["code"]
    return lon, lat, code


def startup(args: list[str], runs: int, point: tuple[float, float, str]) -> dict[str, list[float]]:
    """Start the server ``runs`` times: ready time, then the first /locate and heat tile."""
    lon, lat, code = point
    out: dict[str, list[float]] = {"ready": [], "locate": [], "answered": [], "tile": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        proc, url, ready = start(args)
        try:
            t = time.perf_counter()
            r = requests.get(f"{url}/locate?lng={lon!r}&lat={lat!r}", timeout=60)
            out["locate"].append(time.perf_counter() - t)
            out["answered"].append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["grid"]["code"] == code, r.text
            t = time.perf_counter()
            tile = requests.get(url + "/heatmap/tiles/12/3353/1759.png", timeout=60)
            out["tile"].append(time.perf_counter() - t)
            assert tile.status_code == 200
            out["ready"].append(ready)
        finally:
            stop(proc)
    return out


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def wrk(url: str, seconds: int, conns: int = 8) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def python_load(base: str, paths: list[str], seconds: int, conns: int = 8) -> dict[str, float]:
    """Keep-alive clients in threads, each cycling through ``paths``."""
    host, port = base.removeprefix("http://").split(":")
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(k: int) -> None:
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        mine, i = [], k
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            c.request("GET", paths[i % len(paths)])
            r = c.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
            if r.status != 200:
                errors[0] += 1
            i += conns
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    a = np.array(lat) * 1000
    return {
        "rps": len(a) / seconds,
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "errors": float(errors[0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 s load runs")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--starts", type=int, default=5, help="start-ups per configuration")
    args = ap.parse_args()
    seconds = 3 if args.quick else args.seconds
    starts = 2 if args.quick else args.starts
    use_wrk = shutil.which("wrk") is not None
    rng = np.random.default_rng(0)
    lng = rng.uniform(114.80, 115.05, 10_000)
    lat = rng.uniform(25.27, 25.55, 10_000)
    rows: list[str] = []

    # start-ups: from the workspace, from a saved locator, and with the heat index preloaded
    from gridgeo.assign import Locator
    from gridgeo.io import read_workspace

    tmp = Path(tempfile.mkdtemp()) / "locator.npz"
    Locator.from_workspace(read_workspace(DEMO)).save(tmp)  # the one the service builds
    point = edge_point()
    base = ["--data", str(DEMO), "--workers", "2"]
    configs = {
        "from the workspace": base,
        "from a saved index (`--locator`)": [*base, "--locator", str(tmp)],
        "from a saved index, `--preload-heatmap`": [
            *base,
            "--locator",
            str(tmp),
            "--preload-heatmap",
        ],
    }
    ups: dict[str, dict[str, list[float]]] = {name: {} for name in configs}
    for _ in range(starts):  # interleaved, so that other load on the machine hits all alike
        for name, cfg in configs.items():
            for k, v in startup(cfg, 1, point).items():
                ups[name].setdefault(k, []).extend(v)

    proc, url, _ = start(["--data", str(DEMO), "--workers", "2"])
    try:
        if use_wrk:
            floor = wrk(url + "/healthz", seconds)
            # wrk repeats one URL; a few points inside the county, one run each
            runs = [
                wrk(f"{url}/locate?lng={lng[i]:.6f}&lat={lat[i]:.6f}", seconds) for i in range(3)
            ]
            loc = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            tool = "wrk (2 threads, 8 connections)"
        else:
            floor = python_load(url, ["/healthz"], seconds)
            paths = [f"/locate?lng={x:.6f}&lat={y:.6f}" for x, y in zip(lng, lat)]
            loc = python_load(url, paths, seconds)
            tool = "Python keep-alive client (8 threads)"
        # POST 100k points
        pts = np.column_stack(
            [rng.uniform(114.80, 115.05, 100_000), rng.uniform(25.27, 25.55, 100_000)]
        )
        body = json.dumps({"crs": "wgs84", "points": pts.round(6).tolist()})
        posts = []
        for _ in range(3):
            t = time.perf_counter()
            r = requests.post(
                url + "/locate", data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
            posts.append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["count"] == 100_000
        # paging all grids
        t = time.perf_counter()
        n_pages = n_feats = 0
        nxt: str | None = url + "/collections/grids/items?limit=20"
        while nxt:
            page = requests.get(nxt, timeout=30).json()
            n_pages += 1
            n_feats += page["numberReturned"]
            nxt = next((lk["href"] for lk in page["links"] if lk["rel"] == "next"), None)
        t_paging = time.perf_counter() - t
    finally:
        stop(proc)

    ratio = loc["rps"] / floor["rps"]
    med = {name: {k: float(np.median(v)) for k, v in u.items()} for name, u in ups.items()}
    worst = {name: {k: float(np.max(v)) for k, v in u.items()} for name, u in ups.items()}
    saved = "from a saved index (`--locator`)"
    pre = "from a saved index, `--preload-heatmap`"
    startup_rows = [
        f"| {name} | {med[name]['ready']:.2f} / {worst[name]['ready']:.2f} "
        f"| {1000 * med[name]['locate']:.0f} / {1000 * worst[name]['locate']:.0f} "
        f"| {med[name]['answered']:.2f} / {worst[name]['answered']:.2f} "
        f"| {1000 * med[name]['tile']:.0f} / {1000 * worst[name]['tile']:.0f} |"
        for name in ups
    ]
    rows = [
        "## Serve (issue 5, `benchmarks/serve.py`)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores; gridgeo "
        f"{gridgeo.__version__}; `gridgeo serve` (gunicorn, 2 workers) on the bundled demo, "
        f"loopback; load by {tool}, {seconds} s per run, on the same 2 cores as the server.",
        "",
        "| request | requests/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
        f"| GET /healthz (HTTP floor) | {floor['rps']:,.0f} | {floor['p50']:.2f} "
        f"| {floor['p99']:.2f} | {floor['errors']:.0f} |",
        f"| GET /locate (one point, 9 layers) | {loc['rps']:,.0f} | {loc['p50']:.2f} "
        f"| {loc['p99']:.2f} | {loc['errors']:.0f} |",
        "",
        f"- GET /locate runs at {ratio:.0%} of the /healthz floor (target ≥ 80 %, p99 ≤ 20 ms).",
        f"- POST /locate, 100,000 points as JSON, end to end: best {min(posts):.2f} s, median "
        f"{sorted(posts)[1]:.2f} s (target ≤ 1 s).",
        f"- All {n_feats} grids through {n_pages} items pages of 20 (following `next`): "
        f"{t_paging:.2f} s.",
        "",
        f"Start-up, process start of `python -m gridgeo.cli serve … --workers 2` on the same "
        f"server ({starts} starts each; median / worst). The first GET /locate is sent as soon as "
        "/healthz answers, for a point on a grid edge (the exact test runs), and its answer is "
        "checked; then the first heat tile.",
        "",
        "| start-up | first 200 on /healthz, s | first GET /locate, ms "
        "| start → first /locate answered, s | first heat tile, ms |",
        "|---|---:|---:|---:|---:|",
        *startup_rows,
        "",
        f"- Start-up from a saved index: {med[saved]['ready']:.2f} s to the first 200 "
        f"(target ≤ 2 s), {med[saved]['answered']:.2f} s to the first /locate answered; "
        f"{med[saved]['ready'] / med[pre]['ready']:.0%} of the time with `--preload-heatmap` "
        f"({med[pre]['ready']:.2f} s).",
        "- What start-up defers: numba and the lookup kernels load in each worker, in a "
        "background thread, once it accepts requests (meanwhile GET /locate answers "
        "boundary-cell points with shapely, the same answers; POST /locate waits for the "
        "load); the heat-map index is built on the first heat-map request, once per worker "
        "(the first tile above pays it).",
        "",
    ]
    out = Path(__file__).parent / "results" / "serve.md"
    out.write_text("\n".join(rows), encoding="utf-8")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
