"""Ingest benchmark (bulk part): gridgeo's ``ingest()`` against writing without location.

Synthetic incident history inside the demo county (GCJ-02 coordinates, as phones
report them; unique ids) is loaded, in the same process:

* by :func:`gridgeo.assign.ingest.ingest` (GCJ-02 → CGCS2000, grid / community /
  town / beat / department-zone codes, routing, idempotent append by ``id``) into
  a fresh copy of the demo workspace (its ``incidents`` layer) and into PostGIS;
* by the peers, which store the points as they are, with no location:
  ``GeoDataFrame.to_file(gpkg, layer=..., engine="pyogrio")`` into another copy
  of the workspace, and ``GeoDataFrame.to_postgis(...)`` (SQLAlchemy +
  GeoAlchemy2) into the same PostgreSQL database.

PostgreSQL runs as a throwaway cluster (``initdb`` + ``pg_ctl`` in a temporary
directory, unix socket only, default durability settings), like the tests'
``postgresql`` fixture. Usage::

    python benchmarks/ingest.py [--quick] [--rows N] [--chunk N]

Writes ``benchmarks/results/ingest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import platform
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import gridgeo
from gridgeo.assign import Locator
from gridgeo.assign.ingest import ingest, locate_for_store
from gridgeo.crs import from_wgs84
from gridgeo.io.store import TZ, open_store

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo.gpkg"


def synthetic(n: int, *, seed: int = 0) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``n`` incidents uniform inside the demo county: (GCJ-02 report, CGCS2000 peer copy).

    The report has no CRS (GCJ-02 cannot be one; ``ingest(crs="gcj02")`` says so);
    the peer copy holds the same rows with the true CGCS2000 points.
    """
    rng = np.random.default_rng(seed)
    county = gpd.read_file(DEMO, layer="boundary").to_crs(4490).geometry.union_all()
    shapely.prepare(county)
    x0, y0, x1, y1 = county.bounds
    xs, ys, have = [], [], 0
    while have < n:
        x = rng.uniform(x0, x1, 2 * n)
        y = rng.uniform(y0, y1, 2 * n)
        keep = shapely.contains_xy(county, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    categories = gpd.read_file(DEMO, layer="incidents", columns=["category"])["category"].unique()
    seconds = rng.integers(0, 365 * 86400, n)
    gx, gy = from_wgs84(x, y, "gcj02")
    attrs = pd.DataFrame(
        {
            "id": np.char.add("H", np.char.zfill(np.arange(n).astype(str), 8)).astype(object),
            "category": rng.choice(categories, n),
            "reported_at": pd.Timestamp("2024-01-01", tz=TZ) + pd.to_timedelta(seconds, "s"),
            "source": "history",
        }
    )
    report = gpd.GeoDataFrame(attrs, geometry=shapely.points(gx, gy), crs=None)
    peer = gpd.GeoDataFrame(
        attrs.assign(lng=gx, lat=gy), geometry=shapely.points(x, y), crs="EPSG:4490"
    )
    return report, peer


# -- a throwaway PostgreSQL cluster ---------------------------------------------------------


def _bindir() -> str:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return out.stdout.strip()
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not found:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql postgis)")
    return str(Path(found[0]).parent)


@contextlib.contextmanager
def pg_cluster() -> Iterator[str]:
    """DSN of a fresh database with PostGIS in a throwaway cluster (unix socket only)."""
    bindir = _bindir()
    owner = "postgres" if os.geteuid() == 0 else None  # the server refuses to run as root
    wrap = ["runuser", "-u", owner, "--"] if owner else []
    user = owner or pwd.getpwuid(os.geteuid()).pw_name
    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-bench-pg-"))
    if owner:
        shutil.chown(tmp, user=owner)
    data, port = tmp / "data", str(55000 + os.getpid() % 1000)

    def run(*args: str) -> None:
        subprocess.run([*wrap, *args], check=True, capture_output=True, text=True)

    run(f"{bindir}/initdb", "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
        "--locale=C.UTF-8")  # fmt: skip
    run(f"{bindir}/pg_ctl", "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "60",
        "-o", f"-k {tmp} -c listen_addresses='' -p {port} -c max_wal_size=4GB",
        "start")  # fmt: skip
    dsn = f"postgresql:///bench?host={tmp}&port={port}&user={user}"
    try:
        import psycopg

        admin = dsn.replace("///bench", "///postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        yield dsn
    finally:
        subprocess.run([*wrap, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


def sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy (psycopg 3 dialect) URL of a libpq socket DSN."""
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


# -- the runs --------------------------------------------------------------------------------


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    res = fn()
    return time.perf_counter() - t, res


def run_gridgeo(store_url: str, report: gpd.GeoDataFrame, loc: Locator, chunk: int) -> dict:
    t_open, store = timed(lambda: open_store(store_url))
    with store:
        before = store.count()
        t, rep = timed(lambda: ingest(store, report, loc, crs="gcj02", chunk=chunk))
        assert len(rep.new) == len(report) and not rep.existing, "ids should all be new"
        t_again, again = timed(lambda: ingest(store, report, loc, crs="gcj02", chunk=chunk))
        assert len(again.existing) == len(report) and not again.new
        after = store.count()
    assert after - before == len(report), (before, after)
    return {"seconds": t, "again": t_again, "open": t_open}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100,000 incidents")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=200_000, help="rows per transaction")
    args = ap.parse_args()
    logging.getLogger("gridgeo.assign.route").setLevel(logging.ERROR)
    n = 100_000 if args.quick else args.rows
    load = os.getloadavg()[0]

    t_gen, (report, peer) = timed(lambda: synthetic(n))
    t_build, loc = timed(lambda: Locator.from_workspace(DEMO))
    locate_for_store(report.iloc[:1000], loc, crs="gcj02")  # warm up (compiled kernels load)
    t_locate, _ = timed(
        lambda: [
            locate_for_store(report.iloc[lo : lo + args.chunk], loc, crs="gcj02")
            for lo in range(0, n, args.chunk)
        ]
    )

    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-bench-ingest-"))
    results: dict[str, float] = {}
    notes: dict[str, str] = {}
    try:
        ws = tmp / "gridgeo.gpkg"
        shutil.copy(DEMO, ws)
        g = run_gridgeo(str(ws), report, loc, args.chunk)
        results["gpkg gridgeo"] = g["seconds"]
        notes["gpkg gridgeo"] = (
            f"loaded again (all already stored): {g['again']:.2f} s; "
            f"store open (migrates the demo's 7,000 incidents): {g['open']:.2f} s"
        )
        peer_ws = tmp / "peer.gpkg"
        shutil.copy(DEMO, peer_ws)
        results["gpkg peer"], _ = timed(
            lambda: peer.to_file(peer_ws, layer="incidents_peer", engine="pyogrio")
        )
        written = len(gpd.read_file(peer_ws, layer="incidents_peer", columns=["id"]))
        assert written == n, written

        with pg_cluster() as dsn:
            g = run_gridgeo(dsn, report, loc, args.chunk)
            results["pg gridgeo"] = g["seconds"]
            notes["pg gridgeo"] = (
                f"loaded again (all already stored): {g['again']:.2f} s; "
                f"store open (creates the schema): {g['open']:.2f} s"
            )
            from sqlalchemy import create_engine, text

            engine = create_engine(sqlalchemy_url(dsn))
            results["pg peer"], _ = timed(
                lambda: peer.to_postgis("incidents_peer", engine, if_exists="append", index=False)
            )
            with engine.connect() as conn:
                written = conn.execute(text("SELECT count(*) FROM incidents_peer")).scalar()
            assert written == n, written
            engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    import geoalchemy2
    import psycopg
    import pyogrio
    import sqlalchemy

    def rate(key: str) -> str:
        return f"{n / results[key]:,.0f}"

    rows = [
        ("GeoPackage", "gridgeo `ingest()`, located", "gpkg gridgeo", "gpkg peer", "≥ 50,000/s"),
        ("GeoPackage", "`to_file(engine='pyogrio')`, no location", "gpkg peer", None, ""),
        ("PostGIS", "gridgeo `ingest()`, located", "pg gridgeo", "pg peer",
         "≥ 100,000/s and ≥ 5× to_postgis"),
        ("PostGIS", "`to_postgis()`, no location", "pg peer", None, ""),
    ]  # fmt: skip
    lines = [
        "## Ingest (issue 13, `benchmarks/ingest.py`)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; gridgeo {gridgeo.__version__}, geopandas {gpd.__version__}, "
        f"pyogrio {pyogrio.__version__} (GDAL {pyogrio.__gdal_version_string__}), psycopg "
        f"{psycopg.__version__}, SQLAlchemy {sqlalchemy.__version__}, GeoAlchemy2 "
        f"{geoalchemy2.__version__}, pandas {pd.__version__}; PostgreSQL throwaway cluster "
        "on a unix socket with default durability settings, on the same cores; load average "
        f"{load:.2f} at the start and {os.getloadavg()[0]:.2f} at the end (shared machine).",
        "",
        f"{n:,} synthetic incidents uniform inside the demo county (GCJ-02 coordinates, unique "
        f"ids, 4 attribute columns); gridgeo locates each one in the demo workspace's "
        f"{len(loc.layer_names)} zone layers and appends by id in transactions of "
        f"{args.chunk:,} rows; the peers write the same rows, already in CGCS2000, with no "
        "location and no idempotence.",
        "",
        "| store | method | seconds | incidents/s | × peer | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for store, method, key, peer_key, target in rows:
        ratio = f"{results[peer_key] / results[key]:.1f}" if peer_key else "1.0"
        lines.append(
            f"| {store} | {method} | {results[key]:.2f} | {rate(key)} | {ratio} | {target} |"
        )
    lines += [
        "",
        f"- Location alone (`locate_for_store`: GCJ-02 → CGCS2000, {len(loc.layer_names)} "
        f"layers, routing), no store: {t_locate:.2f} s ({n / t_locate:,.0f} incidents/s); the "
        f"locator is built once beforehand ({t_build:.2f} s).",
        f"- GeoPackage: {notes['gpkg gridgeo']}.",
        f"- PostGIS: {notes['pg gridgeo']}.",
        f"- Generating the data: {t_gen:.2f} s (not counted).",
        "- Targets (issue 13): PostGIS ≥ 100,000 incidents/s with location and ≥ 5× "
        "`to_postgis`; GeoPackage ≥ 50,000 incidents/s.",
        "",
    ]
    out = Path(__file__).parent / "results" / "ingest.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
