"""The workers of ``gridgeo serve`` share the kept-alive connections: 8 clients that connect
at once end up 4/4 or 5/3 on 2 workers, not 8/0 (both workers accept on one listening
socket, and a kept-alive client stays with the worker that accepted it)."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import free_port, wait_until_serving

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_workers(tmp_path) -> Iterator[tuple[int, int]]:
    """``gridgeo serve --workers 2`` on the demo data: (port, pid of gunicorn's master)."""
    data = tmp_path / "demo.gpkg"
    shutil.copy(REPO / "data" / "demo.gpkg", data)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(data),
         "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", proc)
        yield port, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def holders(master: int, port: int, local_ports: list[int]) -> dict[int, int]:
    """Which worker (pid) holds the server end of each of our connections (by local port)."""
    import psutil

    found: dict[int, int] = {}
    for child in psutil.Process(master).children():
        with contextlib.suppress(psutil.Error):
            for c in child.net_connections(kind="tcp"):
                if c.laddr.port == port and c.raddr and c.raddr.port in local_ports:
                    found[c.raddr.port] = child.pid
    return found


def open_eight(port: int) -> list[http.client.HTTPConnection]:
    """8 connections opened at once, then a request on each (so each is accepted, kept alive)."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(8)]
    for c in conns:  # all in the listen queue before the workers take any
        c.connect()
    for c in conns:
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200 and not r.will_close
    return conns


def close_all(conns: list[http.client.HTTPConnection], master: int, port: int) -> None:
    """Close the connections and wait until the workers have closed their ends."""
    local = [c.sock.getsockname()[1] for c in conns]
    for c in conns:
        c.close()
    deadline = time.monotonic() + 10
    while holders(master, port, local) and time.monotonic() < deadline:
        time.sleep(0.05)


def both_accepting(master: int, port: int, workers: list[int]) -> None:
    """Wait until each worker has accepted a connection (serving starts when one answers;
    a worker still starting, or stalled, is rightly not waited for by the other)."""
    deadline = time.monotonic() + 60
    while True:
        conns = open_eight(port)
        both = set(holders(master, port, [c.sock.getsockname()[1] for c in conns]).values())
        close_all(conns, master, port)
        if both == set(workers):
            break
        assert time.monotonic() < deadline, "one worker never accepted a connection"
        time.sleep(0.5)


def balanced_rounds(master: int, port: int, workers: list[int], rounds: int) -> None:
    for _ in range(rounds):
        conns = open_eight(port)
        local = [c.sock.getsockname()[1] for c in conns]
        held = holders(master, port, local)
        assert sorted(held) == sorted(local)  # every connection still open, on a worker
        split = Counter(held.values())
        assert all(3 <= split[w] <= 5 for w in workers), dict(split)
        close_all(conns, master, port)


def test_eight_kept_alive_connections_are_shared_by_two_workers(two_workers) -> None:
    port, master = two_workers
    import psutil

    # serving starts when one worker answers; the master may fork the second a moment later
    deadline = time.monotonic() + 30
    while len(workers := [p.pid for p in psutil.Process(master).children()]) < 2:
        assert time.monotonic() < deadline, f"gunicorn started {len(workers)} worker(s), not 2"
        time.sleep(0.1)
    assert len(workers) == 2
    both_accepting(master, port, workers)
    balanced_rounds(master, port, workers, 5)  # unbalanced, 6 rounds in 10 were 8/0 to 6/2
    # a worker killed: every connection is taken at once (the dead one's share is not
    # waited for: its slot is freed when gunicorn reaps it, within ms; its heartbeat would
    # take 2 s to go stale), and gunicorn's new worker gets a slot and its share
    killed = workers[1]
    os.kill(killed, signal.SIGKILL)
    t0 = time.monotonic()
    conns = open_eight(port)
    assert time.monotonic() - t0 < 1.5
    held = holders(master, port, [c.sock.getsockname()[1] for c in conns])
    assert len(held) == 8 and killed not in held.values()
    close_all(conns, master, port)
    deadline = time.monotonic() + 60
    gone = [psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD]
    while len(workers := [p.pid for p in psutil.Process(master).children()
                          if p.pid != killed and p.status() not in gone]) < 2:  # fmt: skip
        assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
        time.sleep(0.2)
    both_accepting(master, port, workers)
    balanced_rounds(master, port, workers, 3)
