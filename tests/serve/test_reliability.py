"""Reports survive a worker killed mid-load and a whole server killed: nothing lost or doubled.

These start the real ``gridgeo serve`` (gunicorn master + 2 waitress workers) over
each incident store: the workspace GeoPackage itself, and PostGIS (``--store``).
Six clients POST 3,000 incidents with unique work-order numbers, one Feature per
request; a send that fails (connection reset, 5xx, timeout) is sent again with
the same id until the service acknowledges it (201 created, or 200 when the
first attempt had been stored before its answer was lost). Once ~1,000 are
acknowledged one worker is killed with SIGKILL; gunicorn starts another.

Afterwards the store holds exactly the acknowledged ids, counted through the
API (``numberMatched``) and directly (``open_store(...).count()``), and each one
reads back. Then the master and its workers are killed at once (SIGKILL to the
process group: a GeoPackage is left with its WAL file, uncheckpointed) and the
server is started again on the same workspace and store: the count is unchanged
and every incident still reads back.

Slow: the service acknowledges about 30 single POSTs a second to these 6 clients
on a shared 2-core machine (``benchmarks/results/ingest.md``), so the load takes
~1.5-2 minutes per backend and the whole test ~2 minutes per backend.
``_load(..., retry=False)`` shows what a client that gives up loses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import psutil
import pytest
import requests
from live_server import wait_until_serving

pytestmark = [pytest.mark.server, pytest.mark.slow]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
REPORTS = 3_000
CLIENTS = 6
KILL_AFTER = 1_000
ITEMS = "/collections/incidents/items"
HEADERS = {"Content-Type": "application/geo+json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``gridgeo serve`` (its master process leads its own process group)."""

    data: Path
    store: str | None
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_target(self) -> str:
        return self.store or str(self.data)

    def start(self) -> None:
        cmd = [sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(self.data)]
        if self.store:
            cmd += ["--store", self.store]
        cmd += ["--port", str(self.port), "--workers", "2"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until_serving(self.url, self.proc)

    def workers(self) -> dict[int, int]:
        """The master's children (the workers): pid -> client connections it holds."""
        assert self.proc is not None
        out = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                conns = child.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            out[child.pid] = sum(
                c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.port for c in conns
            )
        return out

    def kill(self) -> None:
        """SIGKILL the master and its workers at once (nothing shuts down cleanly)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)


@pytest.fixture(params=["gpkg", "postgis"])
def server(request, tmp_path) -> Iterator[Server]:
    """A live server with 2 workers over a copy of the demo workspace, for each store."""
    data = tmp_path / "workspace.gpkg"
    shutil.copy(REPO / "data" / "demo.gpkg", data)  # never serve (and migrate) the bundled file
    store = request.getfixturevalue("postgresql") if request.param == "postgis" else None
    srv = Server(data, store)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


def _points(path: Path, n: int, *, seed: int) -> np.ndarray:
    """``n`` CGCS2000 lon/lat points drawn uniformly inside the workspace's grids."""
    grids = gpd.read_file(path, layer="grids").to_crs("EPSG:4490")
    per = -(-n // len(grids))
    drawn = grids.geometry.sample_points(per, rng=np.random.default_rng(seed))
    xy = drawn.explode(index_parts=False).get_coordinates().to_numpy()
    assert len(xy) >= n, len(xy)
    return xy[np.random.default_rng(seed).permutation(len(xy))[:n]]


@dataclass
class Ledger:
    """What the clients saw: the acknowledged ids and every failed attempt."""

    acked: dict[str, int] = field(default_factory=dict)  # id -> final status (201/200)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _send_all(
    url: str,
    reports: list[dict],
    ledger: Ledger,
    *,
    retry: bool = True,
    deadline: float,
) -> None:
    """POST each report on one kept-alive session; resend failures with the same id."""
    session = requests.Session()
    for feature in reports:
        body = json.dumps(feature)
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{feature['id']} not acknowledged before the deadline")
            try:
                r = session.post(f"{url}{ITEMS}?crs=cgcs2000", data=body, headers=HEADERS,
                                 timeout=30)  # fmt: skip
                status = r.status_code
                why = f"HTTP {status}: {r.text[:200]}"
            except requests.RequestException as err:
                status, why = None, f"{type(err).__name__}: {err}"
                session.close()  # drop the dead connection; the next send opens another
                session = requests.Session()
            if status in (200, 201):
                with ledger.lock:
                    assert feature["id"] not in ledger.acked, feature["id"]
                    ledger.acked[feature["id"]] = status
                break
            if status is not None and status < 500:
                raise AssertionError(f"{feature['id']}: refused, {why}")  # a bad report
            with ledger.lock:
                ledger.failures.append(f"{feature['id']}: {why}")
            if not retry:
                break
            time.sleep(0.05)
    session.close()


def _load(srv: Server, tag: str, *, retry: bool = True) -> tuple[Ledger, int, list[int]]:
    """Send REPORTS reports from CLIENTS threads; kill one worker after KILL_AFTER acks.

    Returns the ledger, the killed worker and the workers at the end.
    """
    xy = _points(srv.data, REPORTS, seed=13)
    reports = [
        {
            "type": "Feature",
            "id": f"{tag}-{i:05d}",
            "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
            "properties": {
                "category": "消防安全",
                "reported_at": "2025-03-01T08:00:00+08:00",
                "source": tag,
            },
        }
        for i, (x, y) in enumerate(xy)
    ]
    ledger = Ledger()
    errors: list[BaseException] = []
    deadline = time.monotonic() + 600

    def client(part: list[dict]) -> None:
        try:
            _send_all(srv.url, part, ledger, retry=retry, deadline=deadline)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [
        threading.Thread(target=client, args=(reports[c::CLIENTS],), daemon=True)
        for c in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    while ledger.count() < KILL_AFTER and any(t.is_alive() for t in threads):
        time.sleep(0.02)
    before = srv.workers()
    assert len(before) == 2, f"expected 2 workers under the master, found {before}"
    # the worker holding the most client connections: it is serving some of them now
    victim = max(before, key=before.__getitem__)
    os.kill(victim, signal.SIGKILL)
    log.info(
        "killed worker %d (of %s: pid -> client connections) after %d acknowledged reports",
        victim, before, ledger.count(),
    )  # fmt: skip
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    return ledger, victim, list(srv.workers())


def _count(url: str, **filters: str) -> int:
    r = requests.get(f"{url}{ITEMS}", params={"limit": 1, **filters}, timeout=30)
    r.raise_for_status()
    return r.json()["numberMatched"]


def _ids_over_http(url: str, tag: str) -> list[str]:
    """Every incident of this run, paged through the items endpoint."""
    ids: list[str] = []
    offset = 0
    while True:
        r = requests.get(
            f"{url}{ITEMS}",
            params={"source": tag, "limit": 1000, "offset": offset},
            timeout=60,
        )
        r.raise_for_status()
        feats = r.json()["features"]
        ids += [f["id"] for f in feats]
        if len(feats) < 1000:
            return ids
        offset += 1000


def _check_stored(srv: Server, tag: str, acked: set[str], baseline: int) -> None:
    """The store holds exactly ``acked`` (and the ``baseline`` incidents), readable."""
    from gridgeo.io import open_store

    assert _count(srv.url) == baseline + len(acked)
    assert _count(srv.url, source=tag) == len(acked)
    with open_store(srv.store_target) as store:
        assert store.count() == baseline + len(acked)
        assert store.count(where={"source": tag}) == len(acked)
        stored = store.query(where={"source": tag})
    assert stored["id"].is_unique
    assert set(stored["id"]) == acked
    assert stored["grid_code"].notna().all(), "every report was located in a grid"
    over_http = _ids_over_http(srv.url, tag)
    assert len(over_http) == len(acked) and set(over_http) == acked
    # and one by one, a sample (each GET reads the store through a worker)
    rng = np.random.default_rng(0)
    for fid in rng.choice(sorted(acked), size=min(50, len(acked)), replace=False):
        r = requests.get(f"{srv.url}{ITEMS}/{fid}", timeout=30)
        assert r.status_code == 200, (fid, r.status_code, r.text[:200])
        assert r.json()["id"] == fid


def test_reports_survive_a_killed_worker_and_a_killed_server(server: Server) -> None:
    tag = f"rel-{os.getpid()}-{time.monotonic_ns()}"
    baseline = _count(server.url)
    t0 = time.monotonic()
    ledger, victim, after = _load(server, tag)
    took = time.monotonic() - t0
    acked = set(ledger.acked)
    log.info(
        "%d acknowledged in %.1f s (%d sends failed and were sent again, %d answered 200): %s",
        len(acked), took, len(ledger.failures),
        sum(s == 200 for s in ledger.acked.values()), ledger.failures[:5],
    )  # fmt: skip
    assert len(acked) == REPORTS
    assert victim not in after, f"worker {victim} still runs: {after}"
    assert len(after) == 2, f"gunicorn should have replaced the killed worker: {after}"
    # the kill cut requests in flight (else this test proved nothing about them)
    assert ledger.failures, "no send failed: the killed worker was serving nobody"
    _check_stored(server, tag, acked, baseline)

    # the whole server dies at once (master and workers), then starts on the same files
    server.kill()
    server.port = _free_port()
    server.start()
    _check_stored(server, tag, acked, baseline)
