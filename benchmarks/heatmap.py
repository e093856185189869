"""Heat-map benchmark: gridgeo's incident index, heat tiles and grid statistics, against a
folium HeatMap page of the same points, in one process.

Data: the demo county at the 350k-household scale with 2.3M incidents (one district's
count) and with 10M. Usage::

    python benchmarks/heatmap.py [--quick] [--sizes 2300000 10000000]

Writes ``benchmarks/results/heatmap.md``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import platform
import time
from pathlib import Path

import numpy as np

import gridgeo
from gridgeo.analyze import IncidentIndex, grid_stats, tile_of
from gridgeo.datasets import SCALE_350K, demo_county
from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.heatmap import HeatmapService

log = logging.getLogger("bench.heatmap")


def index_bytes(idx: IncidentIndex) -> int:
    arrays = [idx.key, idx.px, idx.py, idx.cat, idx.day, idx.counts, idx.sample]
    if idx.grid is not None:
        arrays.append(idx.grid)
    return sum(a.nbytes for a in arrays)


def tiles_to_request(county, n: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """Tiles a user looks at: around incidents, zooms 9–16."""
    rng = np.random.default_rng(seed)
    inc = county["incidents"]
    pick = rng.choice(len(inc), n, replace=False)
    xs = inc.geometry.x.to_numpy()[pick]
    ys = inc.geometry.y.to_numpy()[pick]
    zs = rng.integers(9, 17, n)
    tiles = {(int(z), *tile_of(float(x), float(y), int(z))) for x, y, z in zip(xs, ys, zs)}
    return sorted(tiles, key=lambda t: rng.random())  # distinct tiles, in random order


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1e3, q))


def run(n_incidents: int, scale: float, n_tiles: int) -> dict:
    t = time.perf_counter()
    county = demo_county(seed=0, scale=scale, n_incidents=n_incidents)
    log.info("county: %d incidents, %.1f s", len(county["incidents"]), time.perf_counter() - t)
    t = time.perf_counter()
    svc = HeatmapService(county).prepare()  # the index is otherwise built on first use
    build = time.perf_counter() - t
    idx = svc.index
    tiles = tiles_to_request(county, n_tiles)
    cold, cached, filtered = [], [], []
    for z, x, y in tiles:
        t = time.perf_counter()
        svc.tile(z, x, y, {})
        cold.append(time.perf_counter() - t)
    for z, x, y in tiles:
        t = time.perf_counter()
        svc.tile(z, x, y, {})
        cached.append(time.perf_counter() - t)
    for z, x, y in tiles:
        t = time.perf_counter()
        svc.tile(z, x, y, {"category": "消防安全", "start": "2025-01-01", "end": "2025-06-30"})
        filtered.append(time.perf_counter() - t)
    # best of 3 (a shared, noisy machine)
    stats_fast = stats_full = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        s = grid_stats(idx, county["grids"], start="2025-01-01", end="2025-12-31")
        stats_fast = min(stats_fast, time.perf_counter() - t)
        t = time.perf_counter()
        s2 = grid_stats(county["incidents"], county["grids"], start="2025-01-01", end="2025-12-31")
        stats_full = min(stats_full, time.perf_counter() - t)
    assert s["count"].tolist() == s2["count"].tolist()
    t = time.perf_counter()
    svc.stats({"start": "2025-01-01", "end": "2025-12-31"})
    stats_first = time.perf_counter() - t  # includes importing esda
    t = time.perf_counter()
    svc.stats({"start": "2025-01-01", "end": "2025-12-31", "category": "消防安全"})
    stats_http = time.perf_counter() - t
    out = {
        "n": len(county["incidents"]),
        "grids": len(county["grids"]),
        "build": build,
        "mem_mb": index_bytes(idx) / 1e6,
        "cold_p50": pct(cold, 50),
        "cold_p99": pct(cold, 99),
        "cached_p50": pct(cached, 50),
        "cached_p99": pct(cached, 99),
        "filt_p50": pct(filtered, 50),
        "filt_p99": pct(filtered, 99),
        "stats_fast": stats_fast,
        "stats_full": stats_full,
        "stats_http": stats_http,
        "stats_first": stats_first,
        "n_tiles": len(tiles),
    }
    log.info("%s", out)
    return out, county


def page_weight(county) -> int:
    client = create_app(ServiceConfig(), layers=county).test_client()
    total = len(client.get("/heatmap").data)
    for asset in ("leaflet/leaflet.js", "leaflet/leaflet.css"):
        r = client.get(f"/heatmap/static/{asset}")
        total += len(r.data)
        r.close()
    return total


def folium_page(county, n: int) -> tuple[float, int]:
    import folium
    from folium.plugins import HeatMap

    inc = county["incidents"].iloc[:n]
    pts = np.column_stack([inc.geometry.y.to_numpy(), inc.geometry.x.to_numpy()])
    t = time.perf_counter()
    m = folium.Map(location=[25.4, 114.93], zoom_start=10, tiles=None)
    HeatMap(pts.tolist(), radius=8).add_to(m)
    html = m.get_root().render()
    return time.perf_counter() - t, len(html.encode())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200k incidents at demo scale")
    ap.add_argument("--sizes", type=int, nargs="*", default=[2_300_000, 10_000_000])
    ap.add_argument("--tiles", type=int, default=300)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = [200_000] if args.quick else args.sizes
    scale = 1.0 if args.quick else SCALE_350K
    rows, folium_rows = [], []
    weight = None
    for n in sizes:
        res, county = run(n, scale, args.tiles)
        rows.append(res)
        if weight is None:
            weight = page_weight(county)
            for k in (100_000, 1_000_000) if not args.quick else (100_000,):
                folium_rows.append((k, *folium_page(county, k)))
                log.info("folium %d points: %s", k, folium_rows[-1])
        del county
        gc.collect()
    lines = [
        "## Heat maps (issue 6, `benchmarks/heatmap.py`)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}; gridgeo {gridgeo.__version__}. "
        f"Demo county at scale {scale:g} ({rows[0]['grids']} grids). Tiles: {rows[0]['n_tiles']} "
        "distinct tiles around random incidents at zooms 9–16, each rendered cold (first request, "
        "including the colour scale of its zoom), then again from the service's LRU cache, "
        "then cold with a filter (消防安全, first half of 2025). Times through "
        "`HeatmapService` (the service's core, without HTTP).",
        "",
        "| incidents | index build s | index MB | tile p50 / p99 ms cold | cached | filtered cold "
        "| grid_stats s, best of 3 (index / from points) "
        "| /stats/grids s with Gi* (first / next) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['build']:.1f} | {r['mem_mb']:.0f} | {r['cold_p50']:.1f} / "
            f"{r['cold_p99']:.1f} | {r['cached_p50']:.3f} / {r['cached_p99']:.3f} | "
            f"{r['filt_p50']:.1f} / {r['filt_p99']:.1f} | {r['stats_fast']:.2f} / "
            f"{r['stats_full']:.1f} | {r['stats_first']:.2f} / {r['stats_http']:.2f} |"
        )
    lines += [
        "",
        f"- `/heatmap` page plus Leaflet: {weight / 1e3:.0f} kB, whatever the number of "
        "incidents (tiles and statistics load on demand).",
    ]
    for k, secs, size in folium_rows:
        lines.append(
            f"- folium `HeatMap` of {k:,} of the same points: page built in {secs:.1f} s, "
            f"{size / 1e6:.1f} MB (every point inline; Leaflet and plugins from CDNs)."
        )
    lines += [
        "- Targets (issue 6): 10M incidents indexed in ≤ 30 s and ≤ 2 GB; tile p50 ≤ 30 ms "
        "cold and ≤ 2 ms cached; page plus assets ≤ 1 MB; grid_stats over 2.3M ≤ 2 s.",
        "- Index build includes locating every incident in its grid (exact Locator). "
        "`grid_stats` from points builds that index itself.",
        "",
    ]
    out = Path(__file__).parent / "results" / "heatmap.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
