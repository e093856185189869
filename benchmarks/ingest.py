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
``postgresql`` fixture.

HTTP part: the real ``gridgeo serve --workers 2`` (gunicorn + waitress) over each
store (another copy of the workspace; a fresh database of the same cluster),
with 8 client processes each POSTing one Feature per request on a kept-alive
``http.client`` connection (unique ids, GCJ-02 points of the same synthetic set):
acknowledged POSTs/s, the latency of each POST, and the CPU the clients and the
workers spent a POST (``psutil``). Then the freshness lag: one
report POSTed in the grid with the fewest incidents in ``/stats/grids``' window,
and the time until ``/stats/grids`` counts it, polled on one kept-alive
connection held by each worker (which worker holds a connection is read from
the workers' sockets with psutil). ``--profile`` samples one worker with py-spy
during the load (``pip install py-spy``) and lists where its time goes. There is
no HTTP peer: the rate is compared with the bulk ``ingest()`` of the same run.
Usage::

    python benchmarks/ingest.py [--quick] [--rows N] [--chunk N] [--seconds S]
        [--trials N] [--profile] [--clients N] [--threads N]
    python benchmarks/ingest.py --http-only [--stores gpkg,postgis] [--sweep 2,4,8]

Writes ``benchmarks/results/ingest.md``; ``--http-only`` runs only the HTTP part and
replaces only its section of that file (``--sweep`` adds a comparison of waitress
thread counts).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import http.client
import json
import logging
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import gridgeo
from gridgeo.assign import Locator
from gridgeo.assign.ingest import ingest, locate_for_store
from gridgeo.cli.serve import ServerOptions
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


def checkpoint(dsn: str) -> None:
    """Write out the cluster's dirty pages now, so that each timed load starts from the same
    state (not paying for the checkpoint of the one before)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def server_floor(dsn: str, report: gpd.GeoDataFrame, loc: Locator, chunk: int) -> float:
    """Seconds PostgreSQL alone takes for the work of a load: the binary COPY of the rows,
    located and encoded beforehand (not timed), into an empty ``incidents`` with its primary
    key, then the other indexes built, in one transaction. No client work overlaps it: a
    load with location included cannot beat this on the same server."""
    import psycopg

    from gridgeo.assign.ingest import _located_columns
    from gridgeo.io.store import _pgcopy
    from gridgeo.io.store.batch import prepare, prepare_points

    admin = dsn.replace("///bench", "///postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE floor")
    floor = dsn.replace("///bench", "///floor")
    with psycopg.connect(floor, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    open_store(floor).close()  # the schema, as gridgeo makes it
    parts = []
    for lo in range(0, len(report), chunk):
        part = report.iloc[lo : lo + chunk]
        cols, lon, lat = _located_columns(part, loc, crs="gcj02", routes=None)
        cols["id"] = part["id"]
        parts.append(_pgcopy.rows(prepare(prepare_points(cols, lon, lat)), seq=lo + 1))
    with psycopg.connect(floor) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'incidents' "
            "AND indexname <> 'incidents_pkey'"
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f"DROP INDEX {name}")
        conn.commit()
        checkpoint(floor)
        t = time.perf_counter()
        with cur.copy(f"COPY incidents ({', '.join(_pgcopy.COLUMNS)}, seq) FROM STDIN "
                      "(FORMAT binary)") as copy:  # fmt: skip
            copy.write(_pgcopy.SIGNATURE)
            for data in parts:
                copy.write(data)
            copy.write(_pgcopy.TRAILER)
        cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, ddl in indexes:
            cur.execute(ddl)
        conn.commit()
        seconds = time.perf_counter() - t
        cur.execute("SELECT count(*) FROM incidents")
        assert cur.fetchone()[0] == len(report)
    return seconds


# -- the HTTP part: a real server with 2 workers ---------------------------------------------

ITEMS = "/collections/incidents/items"
GEOJSON = {"Content-Type": "application/geo+json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(
    data: Path, store: str | None, *, workers: int = 2, threads: int | None = None
) -> Iterator[tuple[str, int]]:
    """``gridgeo serve`` on a free port: (base URL, master pid); killed (its group) at the end."""
    import requests

    port = _free_port()
    cmd = [sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(data)]
    cmd += ["--store", store] if store else []
    cmd += ["--port", str(port), "--workers", str(workers)]
    cmd += ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        warm = 0  # measured warm, as a service runs: every worker has loaded its kernels
        while warm < 5 * workers:  # consecutive answers, each on a new connection
            try:
                r = requests.get(url + "/healthz", timeout=2)
                warm = warm + 1 if r.ok and r.json().get("warm") else 0
            except requests.ConnectionError:
                warm = 0
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gridgeo serve did not start (and warm up): {' '.join(cmd)}")
            if not warm:
                time.sleep(0.3)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _features(report: gpd.GeoDataFrame, prefix: str) -> list[bytes]:
    """One GeoJSON Feature body per row (GCJ-02 coordinates, ids ``prefix-n``)."""
    out = []
    for i, (x, y, cat, when) in enumerate(
        zip(report.geometry.x, report.geometry.y, report["category"], report["reported_at"])
    ):
        doc = {
            "type": "Feature",
            "id": f"{prefix}-{i:07d}",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"category": cat, "reported_at": when.isoformat(), "source": "http"},
        }
        out.append(json.dumps(doc, ensure_ascii=False).encode())
    return out


def _client(url: str, bodies: list[bytes], start_at: float, stop_at: float, out) -> None:
    """One client process: POST ``bodies`` one after the other on one kept-alive
    ``http.client`` connection from ``start_at`` (wall clock) until done or ``stop_at``;
    send back the latencies, the failures, the span it ran and the CPU it used."""
    host, port = url.removeprefix("http://").split(":")
    path = f"{ITEMS}?crs=gcj02"
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    lat: list[float] = []
    failed: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, t0 = time.process_time(), time.time()
    for body in bodies:
        if time.time() > stop_at:
            break
        t = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=GEOJSON)
            r = conn.getresponse()
            r.read()
            ok, why = r.status == 201, f"HTTP {r.status}"
        except (OSError, http.client.HTTPException) as err:
            ok, why = False, type(err).__name__
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
        (lat.append(time.perf_counter() - t) if ok else failed.append(why))
    out.send((lat, failed, t0, time.time(), time.process_time() - cpu0))
    out.close()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (0 for one that is gone)."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def post_load(
    url: str, bodies: list[bytes], *, clients: int, seconds: float, master: int | None = None
) -> dict:
    """``clients`` client processes POST ``bodies`` (one Feature each, one kept-alive
    ``http.client`` connection each) until done or ``seconds`` pass.

    Processes, not threads: 8 client threads of one Python process share one GIL and,
    with ``requests``, cost about as much CPU a POST as the server. The CPU the clients
    and (given ``master``) the server's workers used is measured, per acknowledged POST.
    """
    import multiprocessing as mp

    import psutil

    ctx = mp.get_context("fork")
    start_at = time.time() + 0.5  # every client starts together, after all have forked
    stop_at = start_at + seconds
    pipes, procs = [], []
    for c in range(clients):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client, args=(url, bodies[c::clients], start_at, stop_at, send))
        proc.start()
        pipes.append(recv)
        procs.append(proc)
    workers = [p.pid for p in psutil.Process(master).children()] if master else []
    time.sleep(max(0.0, start_at - time.time()))
    server0 = _cpu_seconds(workers)
    results = [r.recv() for r in pipes]
    server = _cpu_seconds(workers) - server0
    for proc in procs:
        proc.join()
    lat = [x for r in results for x in r[0]]
    failed = [x for r in results for x in r[1]]
    wall = max(r[3] for r in results) - min(r[2] for r in results)
    client_cpu = sum(r[4] for r in results)
    ms = np.asarray(lat) * 1000
    acked = max(1, len(lat))
    return {
        "acked": len(lat),
        "failed": len(failed),
        "why": Counter(failed).most_common(3),
        "seconds": wall,
        "rate": len(lat) / wall,
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p90": float(np.percentile(ms, 90)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "client_ms": 1000 * client_cpu / acked,  # CPU ms a POST, all clients
        "server_ms": 1000 * server / acked,  # CPU ms a POST, both workers
        "load": os.getloadavg()[0],
    }


def _worker_of(master: int, local_port: int, server_port: int) -> int | None:
    """The worker (a child of ``master``) holding our connection from ``local_port``."""
    import psutil

    for child in psutil.Process(master).children():
        with contextlib.suppress(psutil.Error):
            for c in child.net_connections(kind="tcp"):
                if c.laddr.port == server_port and c.raddr and c.raddr.port == local_port:
                    return child.pid
    return None


def pinned_connections(
    url: str, master: int, *, tries: int = 40
) -> dict[int, http.client.HTTPConnection]:
    """One kept-alive connection held by each worker (pid -> connection), as far as found.

    Connections are opened until every worker holds one (the workers race to
    accept; whichever accepts a connection serves all of its requests).
    """
    import psutil

    host, port = url.removeprefix("http://").split(":")
    workers = {p.pid for p in psutil.Process(master).children()}
    held: dict[int, http.client.HTTPConnection] = {}
    for _ in range(tries):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        pid = _worker_of(master, conn.sock.getsockname()[1], int(port))
        if pid is not None and pid not in held:
            held[pid] = conn
        else:
            conn.close()
        if set(held) >= workers:
            break
        time.sleep(0.05)
    return held


def _grid_counts(conn: http.client.HTTPConnection, query: str) -> tuple[dict[str, int], dict]:
    conn.request("GET", "/stats/grids" + query)
    r = conn.getresponse()
    body = json.loads(r.read())
    if r.status != 200:
        raise RuntimeError(f"/stats/grids answered {r.status}: {body}")
    return {f["id"]: f["properties"]["count"] for f in body["features"]}, body


def freshness(
    url: str, master: int, grids: gpd.GeoDataFrame, *, trials: int, timeout: float = 10.0
) -> dict:
    """Seconds from a POST's 201 until ``/stats/grids`` counts it, seen by each worker."""
    import requests

    held = pinned_connections(url, master)
    first = next(iter(held.values()))
    counts, body = _grid_counts(first, "")
    window = body["window"]  # the data's current window; reports are put inside it
    query = f"?start={window[0]}&end={window[1]}"
    inside = grids.set_index("code").representative_point().to_crs("EPSG:4490")
    when = f"{window[0]}T12:00:00+08:00"
    lags: dict[int, list[float]] = {pid: [] for pid in held}
    cursors: dict[int, set[int]] = {pid: set() for pid in held}
    polls = 0
    with requests.Session() as s:
        for trial in range(trials):
            counts, _ = _grid_counts(first, query)
            code = min(counts, key=lambda c: (counts[c], c))  # the emptiest grid
            pt = inside[code]
            doc = {
                "type": "Feature",
                "id": f"fresh-{os.getpid()}-{trial}",
                "geometry": {"type": "Point", "coordinates": [pt.x, pt.y]},
                "properties": {"category": "消防安全", "reported_at": when},
            }
            before = {pid: _grid_counts(c, query)[0][code] for pid, c in held.items()}
            r = s.post(f"{url}{ITEMS}?crs=cgcs2000", json=doc, headers=GEOJSON, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"freshness POST answered {r.status_code}: {r.text[:300]}")
            if r.json()["properties"]["grid_code"] != code:
                raise RuntimeError(f"the point of grid {code} was located elsewhere")
            acked = time.perf_counter()
            waiting = dict(held)
            while waiting:
                for pid, conn in list(waiting.items()):
                    now_counts, b = _grid_counts(conn, query)
                    polls += 1
                    cursors[pid].add(b.get("cursor"))
                    if now_counts[code] > before[pid]:
                        lags[pid].append(time.perf_counter() - acked)
                        del waiting[pid]
                if time.perf_counter() - acked > timeout:
                    raise RuntimeError(f"workers {sorted(waiting)} did not count it in {timeout} s")
                time.sleep(0.02)
    for conn in held.values():
        conn.close()
    every = np.concatenate([np.asarray(v) for v in lags.values()])
    return {
        "workers": len(held),
        "per_worker": {pid: (float(np.median(v)), float(np.max(v))) for pid, v in lags.items()},
        "p50": float(np.median(every)),
        "max": float(np.max(every)),
        "trials": trials,
        "polls": polls,
        "cursors": {pid: len(c) for pid, c in cursors.items()},
    }


def profile_worker(master: int, seconds: float) -> subprocess.Popen | None:
    """Start py-spy sampling one worker (None without py-spy)."""
    import psutil

    spy = shutil.which("py-spy")
    if spy is None:
        logging.warning("--profile: py-spy is not installed (pip install py-spy)")
        return None
    pid = psutil.Process(master).children()[0].pid
    out = Path(tempfile.mkdtemp(prefix="gridgeo-bench-spy-")) / "raw.txt"
    cmd = [spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "100",
           "-f", "raw", "-o", str(out), "--nonblocking"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.out = out  # type: ignore[attr-defined]
    return proc


def _function(frame: str) -> str:
    """``name (path:line)`` of py-spy as ``name`` (the line dropped)."""
    return frame.split(" (")[0]


def profile_summary(proc: subprocess.Popen | None, *, top: int = 6) -> list[str]:
    """Shares of the POST handler's samples: what ``IncidentService.create`` calls, and
    how much of it runs inside pandas / geopandas."""
    if proc is None:
        return []
    proc.wait(timeout=120)
    out: Path = proc.out  # type: ignore[attr-defined]
    callees: Counter = Counter()
    busy = in_pandas = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        at = [i for i, f in enumerate(frames) if _function(f) == "IncidentService.create"]
        if not at:
            continue  # the idle event loop and waiting threads
        busy += n
        below = frames[at[0] + 1 : at[0] + 2]
        callees[_function(below[0]) if below else "IncidentService.create itself"] += n
        in_pandas += n * any(
            f"{sep}pandas/" in f for f in frames[at[0] :] for sep in ("(", "/", "(geo")
        )
    shutil.rmtree(out.parent, ignore_errors=True)
    if not busy:
        return []
    shares = [f"{100 * n / busy:.0f}% {f}" for f, n in callees.most_common(top)]
    return [*shares, f"({100 * in_pandas / busy:.0f}% of it inside pandas/geopandas code)"]


def client_connections(master: int, port: int) -> dict[int, int]:
    """Established client connections each worker holds (pid -> count)."""
    import psutil

    out = {}
    for child in psutil.Process(master).children():
        with contextlib.suppress(psutil.Error):
            out[child.pid] = sum(
                c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                for c in child.net_connections(kind="tcp")
            )
    return out


def run_http(
    data: Path, store: str | None, bodies: list[bytes], grids: gpd.GeoDataFrame, args
) -> dict:
    """The load and the freshness trials against one server."""
    t0 = time.perf_counter()
    with live_server(data, store, threads=args.threads) as (url, master):
        logging.info("HTTP: the server answers after %.1f s", time.perf_counter() - t0)
        post_load(url, bodies[: args.warm], clients=2, seconds=30)  # warm up the workers
        spy = profile_worker(master, args.seconds) if args.profile else None
        seen: list[dict[int, int]] = []
        port = int(url.rpartition(":")[2])
        timer = threading.Timer(
            min(2.0, args.seconds / 2), lambda: seen.append(client_connections(master, port))
        )
        timer.start()
        load = post_load(
            url, bodies[args.warm :], clients=args.clients, seconds=args.seconds, master=master
        )
        timer.join()
        load["connections"] = seen[0] if seen else {}
        load["profile"] = profile_summary(spy)
        logging.info("HTTP: %d POSTs acknowledged, %.1f s in all", load["acked"],
                     time.perf_counter() - t0)  # fmt: skip
        load["fresh"] = freshness(url, master, grids, trials=args.trials)
        logging.info("HTTP: freshness done, %.1f s in all", time.perf_counter() - t0)
    return load


HTTP_HEADING = "### Over HTTP: `POST /collections/incidents/items`, one Feature per request"


def http_section(web: dict[str, dict], args, bulk: dict[str, float | None]) -> list[str]:
    """The HTTP part of the results (from its heading on); ``bulk``: incidents/s of ingest()."""
    threads = args.threads or ServerOptions.threads
    lines = [
        HTTP_HEADING,
        "",
        f"{time.strftime('%Y-%m-%d')}: `gridgeo serve --workers 2` (gunicorn + waitress, "
        f"{threads} threads a worker) on the same 2 cores as the clients; {args.clients} client "
        "processes, each POSTing on one kept-alive `http.client` connection (processes, not "
        "threads: one GIL would cap the clients) for "
        f"{args.seconds:g} s (at most {args.posts:,} POSTs) one GCJ-02 Feature each (unique "
        "ids, from the synthetic set; `?crs=gcj02`), after "
        f"{args.warm} warm-up POSTs; latency is the client's, request to response. CPU a POST "
        "is the user + system CPU of all clients, and of both workers, over the load, divided "
        "by the acknowledged POSTs. "
        "Freshness (after the load, the server idle): one report POSTed (reported inside "
        "the window of `/stats/grids`) into the grid with the fewest incidents, then "
        "`/stats/grids` polled every ~20 ms on one kept-alive connection held by each "
        "worker until that grid's count rises; the lag runs from the 201 to "
        f"the first poll that counts it, over {args.trials} trials. No HTTP peer exists: the "
        "rate is compared with the bulk `ingest()` above.",
        "",
        "| store | acknowledged POSTs | acknowledged/s | × bulk `ingest()` | p50 ms | p90 ms "
        "| p99 ms | failed | server CPU ms a POST | client CPU ms a POST | load avg (1 min) "
        "| freshness p50 / max s | workers seen |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for store, w in web.items():
        f = w["fresh"]
        ratio = f"{w['rate'] / bulk[store]:.4f}" if bulk.get(store) else "–"
        lines.append(
            f"| {store} | {w['acked']:,} in {w['seconds']:.1f} s | {w['rate']:,.1f} | "
            f"{ratio} | {w['p50']:.1f} | {w['p90']:.1f} | {w['p99']:.1f} | {w['failed']} | "
            f"{w['server_ms']:.2f} | {w['client_ms']:.2f} | {w['load']:.1f} | "
            f"{f['p50']:.2f} / {f['max']:.2f} | {f['workers']} of 2 |"
        )
    lines += [
        "",
        "- Targets: single POST p99 ≤ 25 ms at 8 clients; ≥ 500 acknowledged POSTs/s on 2 "
        "workers; freshness ≤ 2 s in every worker.",
    ]
    for store, w in web.items():
        f = w["fresh"]
        per = "; ".join(
            f"worker {pid}: p50 {a:.2f} s, max {b:.2f} s" for pid, (a, b) in f["per_worker"].items()
        )
        lines.append(
            f"- {store} freshness per worker (which worker holds each polling connection is "
            f"read from its sockets): {per}; {f['polls']} polls."
        )
        lines.append(
            f"- {store}: client connections held by each worker during the POSTs (pid: "
            f"count, read from the workers' sockets): {w['connections']}."
        )
        if w["failed"]:
            lines.append(f"- {store}: {w['failed']} POSTs failed: {w['why']}.")
        if w["profile"]:
            lines.append(
                f"- {store}, where one worker's time goes during the POSTs (py-spy, share of "
                "the POST handler's samples by what `IncidentService.create` was calling): "
                + "; ".join(w["profile"])
                + "."
            )
    for store, sweep in (args.sweep_results or {}).items():
        lines += [
            "",
            f"{store}, waitress threads a worker (same load, {args.sweep_seconds:g} s each, no "
            "freshness trials):",
            "",
            "| threads | acknowledged/s | p50 ms | p99 ms | server CPU ms a POST "
            "| client CPU ms a POST | load avg |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for t, w in sweep.items():
            lines.append(
                f"| {t} | {w['rate']:,.1f} | {w['p50']:.1f} | {w['p99']:.1f} | "
                f"{w['server_ms']:.2f} | {w['client_ms']:.2f} | {w['load']:.1f} |"
            )
    return lines


def _bulk_rates(text: str) -> dict[str, float | None]:
    """incidents/s of the bulk ``ingest()`` rows of a results file (None where absent)."""
    import re

    out: dict[str, float | None] = {"GeoPackage": None, "PostGIS": None}
    for store in out:
        m = re.search(rf"^\| {store} \| gridgeo `ingest\(\)`[^|]*\|[^|]*\| ([\d,]+) \|", text,
                      re.MULTILINE)  # fmt: skip
        if m:
            out[store] = float(m.group(1).replace(",", ""))
    return out


def http_only(args) -> None:
    """Only the HTTP part: its section of ``results/ingest.md`` is replaced, the rest kept."""
    out = Path(__file__).parent / "results" / "ingest.md"
    old = out.read_text(encoding="utf-8") if out.exists() else "## Ingest (issue 13)\n"
    report, _ = synthetic(args.posts + args.warm + 200)
    bodies = _features(report, f"web{os.getpid()}")
    grids = gpd.read_file(DEMO, layer="grids")
    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-bench-http-"))
    web: dict[str, dict] = {}
    args.sweep_results = {}
    try:
        ws = tmp / "web.gpkg"
        shutil.copy(DEMO, ws)
        if "gpkg" in args.stores:
            web["GeoPackage"] = run_http(ws, None, bodies, grids, args)
            if args.sweep:
                args.sweep_results["GeoPackage"] = sweep_threads(ws, None, bodies, args)
        if "postgis" in args.stores:
            with pg_cluster() as dsn:
                web["PostGIS"] = run_http(ws, dsn, bodies, grids, args)
                if args.sweep:
                    args.sweep_results["PostGIS"] = sweep_threads(ws, dsn, bodies, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    head = old.split(HTTP_HEADING)[0].rstrip("\n") + "\n\n"
    lines = http_section(web, args, _bulk_rates(old))
    text = head + "\n".join(lines) + "\n"
    out.write_text(text, encoding="utf-8")
    print("\n".join(lines))


def sweep_threads(data: Path, store: str | None, bodies: list[bytes], args) -> dict[int, dict]:
    """The POST load against servers with each thread count of ``--sweep``."""
    out = {}
    for i, threads in enumerate(args.sweep):
        part = bodies[(i + 1) * 10_000 % len(bodies) :] + bodies[: (i + 1) * 10_000 % len(bodies)]
        # fresh ids for each server: a suffix keeps them unique
        part = [b.replace(b'"id": "web', f'"id": "t{threads}-web'.encode()) for b in part]
        with live_server(data, store, threads=threads) as (url, master):
            post_load(url, part[: args.warm], clients=2, seconds=30)
            out[threads] = post_load(url, part[args.warm :], clients=args.clients,
                                     seconds=args.sweep_seconds, master=master)  # fmt: skip
            logging.info("threads %d: %.1f/s, p99 %.1f ms", threads, out[threads]["rate"],
                         out[threads]["p99"])  # fmt: skip
    return out


class _BulkDone(Exception):
    """--bulk-only: the bulk runs are over, skip the HTTP part."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--quick", action="store_true", help="20,000 incidents, 2 s of POSTs, 2 trials (smoke)"
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=200_000, help="rows per transaction")
    ap.add_argument("--seconds", type=float, default=20.0, help="of POSTs at 8 clients")
    ap.add_argument("--posts", type=int, default=5_000, help="at most this many POSTs")
    ap.add_argument("--trials", type=int, default=20, help="freshness trials")
    ap.add_argument("--profile", action="store_true", help="py-spy one worker during the POSTs")
    ap.add_argument("--warm", type=int, default=40, help="warm-up POSTs (not counted)")
    ap.add_argument(
        "--http-only", action="store_true",
        help="only the HTTP part; its section of results/ingest.md is replaced, the rest kept",
    )  # fmt: skip
    ap.add_argument(
        "--bulk-only", action="store_true",
        help="only the bulk part; its section of results/ingest.md is replaced, the rest kept",
    )  # fmt: skip
    ap.add_argument("--clients", type=int, default=8, help="client processes of the HTTP load")
    ap.add_argument("--threads", type=int, default=None, help="waitress threads a worker")
    ap.add_argument("--stores", default="gpkg,postgis", help="with --http-only: which stores")
    ap.add_argument(
        "--sweep", default="", help="with --http-only: thread counts to compare, e.g. 2,4,8"
    )
    ap.add_argument("--sweep-seconds", type=float, default=10.0)
    args = ap.parse_args()
    args.sweep = [int(t) for t in args.sweep.split(",") if t]
    args.stores = args.stores.split(",")
    args.sweep_results = {}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("gridgeo.assign.route").setLevel(logging.ERROR)
    if args.quick:
        args.rows, args.seconds, args.trials, args.warm = 20_000, 2.0, 2, 8
    if args.http_only:
        http_only(args)
        return
    n = args.rows
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
    web: dict[str, dict] = {}
    bodies = _features(report.iloc[: min(n, args.posts + args.warm)], "web")
    grids = gpd.read_file(DEMO, layer="grids")
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
        web_ws = tmp / "web.gpkg"
        shutil.copy(DEMO, web_ws)
        if not args.bulk_only:
            web["GeoPackage"] = run_http(web_ws, None, bodies, grids, args)

        with pg_cluster() as dsn:
            checkpoint(dsn)
            g = run_gridgeo(dsn, report, loc, args.chunk)
            results["pg gridgeo"] = g["seconds"]
            notes["pg gridgeo"] = (
                f"loaded again (all already stored): {g['again']:.2f} s; "
                f"store open (creates the schema): {g['open']:.2f} s"
            )
            from sqlalchemy import create_engine, text

            engine = create_engine(sqlalchemy_url(dsn))
            checkpoint(dsn)
            results["pg peer"], _ = timed(
                lambda: peer.to_postgis("incidents_peer", engine, if_exists="append", index=False)
            )
            with engine.connect() as conn:
                written = conn.execute(text("SELECT count(*) FROM incidents_peer")).scalar()
            assert written == n, written
            engine.dispose()
            results["pg floor"] = server_floor(dsn, report, loc, args.chunk)
            import psycopg

            if args.bulk_only:
                raise _BulkDone
            with psycopg.connect(dsn.replace("///bench", "///postgres"), autocommit=True) as c:
                c.execute("CREATE DATABASE http")
            web_dsn = dsn.replace("///bench", "///http")
            with psycopg.connect(web_dsn, autocommit=True) as c:
                c.execute("CREATE EXTENSION postgis")
            web["PostGIS"] = run_http(web_ws, web_dsn, bodies, grids, args)
    except _BulkDone:
        pass
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
        f"{len(loc.layer_names)} zone layers and appends by id, {args.chunk:,} rows at a time "
        "(GeoPackage: a transaction each, the R-tree written packed; PostGIS: the load, larger "
        "than the table, in one transaction, its indexes other than the primary key built "
        "once at the end); the peers write the same rows, already in CGCS2000, with no "
        "location and no idempotence. Loading again first asks the store which ids it holds "
        "and skips them.",
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
        f"- PostgreSQL alone, no client work: the binary COPY of the same rows (located and "
        f"encoded beforehand) into an empty `incidents`, then its indexes built, one "
        f"transaction: {results['pg floor']:.2f} s ({rate('pg floor')} incidents/s, "
        f"{results['pg peer'] / results['pg floor']:.1f}× `to_postgis`). This is the "
        "server's own share of a load; a load with location included cannot go much "
        "below it on these cores (run-to-run noise on this shared machine is about 1 s). "
        "Each PostgreSQL run starts after a CHECKPOINT.",
        f"- GeoPackage: {notes['gpkg gridgeo']}.",
        f"- PostGIS: {notes['pg gridgeo']}.",
        f"- Generating the data: {t_gen:.2f} s (not counted).",
        "- Targets (issue 13): PostGIS ≥ 100,000 incidents/s with location and ≥ 5× "
        "`to_postgis`; GeoPackage ≥ 50,000 incidents/s.",
        "",
    ]
    bulk = {"GeoPackage": n / results["gpkg gridgeo"], "PostGIS": n / results["pg gridgeo"]}
    out = Path(__file__).parent / "results" / "ingest.md"
    if args.bulk_only:  # the HTTP section of the file is kept as it is
        old = out.read_text(encoding="utf-8") if out.exists() else ""
        kept = old[old.index(HTTP_HEADING) :] if HTTP_HEADING in old else ""
        out.write_text("\n".join(lines) + "\n" + kept, encoding="utf-8")
        print("\n".join(lines))
        return
    lines += http_section(web, args, bulk)
    lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
