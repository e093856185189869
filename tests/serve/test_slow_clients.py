"""Slow clients (phones on weak mobile networks) do not stop the service answering others.

These start the real ``gridgeo serve`` (gunicorn, 2 workers) and hold connections
open that trickle their request a byte at a time, while fast clients call it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from live_server import wait_until_serving

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
LOCATE = "/locate?lng=114.93&lat=25.40&crs=gcj02"
POINTS = {"crs": "gcj02", "points": [[114.93, 25.40], [114.95, 25.42]]}
BODY_BYTES = 100_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path, *options: str) -> tuple[str, subprocess.Popen]:
    data = tmp_path / "demo.gpkg"
    if not data.exists():
        shutil.copy(REPO / "data" / "demo.gpkg", data)
    port = _free_port()
    cmd = [sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(data)]
    cmd += ["--port", str(port), "--workers", "2", *options]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, proc)
    return url, proc


def _stop(proc: subprocess.Popen) -> None:
    """Kill the master and its workers (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    url, proc = _start(tmp_path)
    try:
        yield url
    finally:
        _stop(proc)


def _body() -> bytes:
    """A valid ``POST /locate`` body of exactly BODY_BYTES bytes (JSON, then spaces)."""
    text = json.dumps(POINTS).encode()
    return text + b" " * (BODY_BYTES - len(text))


def _header_trickle() -> bytes:
    """A request whose line and headers, a byte at a time, take minutes to arrive."""
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"


def _body_trickle_head() -> bytes:
    return (
        b"POST /locate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % BODY_BYTES
    )


class Trickler:
    """Connections that each send the next byte of their request every ``interval`` s,
    after its first ``at_once`` bytes at once."""

    def __init__(
        self, port: int, requests_: list[bytes], *, interval: float = 0.05, at_once: int = 0
    ) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in requests_]
        self.todo = list(requests_)
        for s, todo in zip(self.socks, self.todo):
            s.sendall(todo[:at_once])
        self.sent = [at_once] * len(requests_)
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for i, s in enumerate(self.socks):
                    if self.sent[i] < len(self.todo[i]) - 1:  # never the last byte
                        try:
                            s.send(self.todo[i][self.sent[i] : self.sent[i] + 1])
                        except OSError:
                            continue  # closed by the server: open() says so
                        self.sent[i] += 1

    def open(self) -> list[bool]:
        """Whether each connection is still open (the server has neither answered nor
        closed it)."""
        out = []
        for s in self.socks:
            try:
                out.append(s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"")
                # data: the server answered (an error, say) before the request was whole
                out[-1] = False
            except BlockingIOError:
                out.append(True)
            except OSError:
                out.append(False)
        return out

    def finish(self, i: int) -> bytes:
        """Send the rest of request ``i`` at once; its whole response."""
        with self._lock:
            rest, self.sent[i] = self.todo[i][self.sent[i] :], len(self.todo[i])
        s = self.socks[i]
        s.sendall(rest)
        s.settimeout(30)
        got = b""
        while b"\r\n\r\n" not in got or len(got) < _response_length(got):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def _response_length(raw: bytes) -> int:
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return sys.maxsize


def _fast_requests(url: str, n: int) -> list[tuple[str, object, float, object]]:
    """Up to ``n`` requests, each on a new connection: (what, status, seconds, JSON).

    A request that fails ends the list with the name of its error as its status.
    """
    kinds = ["GET /locate", "GET /healthz", "POST /locate"]
    out: list[tuple[str, object, float, object]] = []
    for i in range(n):
        kind = kinds[i % 3]
        t0 = time.perf_counter()
        try:
            if kind == "GET /locate":
                r = requests.get(url + LOCATE, timeout=10)
            elif kind == "GET /healthz":
                r = requests.get(url + "/healthz", timeout=10)
            else:
                r = requests.post(url + "/locate", json=POINTS, timeout=10)
        except requests.RequestException as err:
            out.append((kind, type(err).__name__, time.perf_counter() - t0, None))
            break
        out.append((kind, r.status_code, time.perf_counter() - t0, r.json()))
    return out


def _warm(url: str) -> None:
    """Until both workers have loaded their kernels: the first lookups compile or load them."""
    deadline = time.monotonic() + 120
    fast = 0
    while fast < 30 and time.monotonic() < deadline:
        (_, status, seconds, _), *_ = _fast_requests(url, 1)
        r = requests.post(url + "/locate", json=POINTS, timeout=60)
        assert status == 200 and r.status_code == 200, r.text
        fast = fast + 1 if seconds < 0.05 else 0


def test_fast_clients_are_answered_while_64_slow_clients_trickle_in(server) -> None:
    _warm(server)
    port = int(server.rsplit(":", 1)[1])
    head = _body_trickle_head()
    slow = [_header_trickle()] * 32 + [head + _body()] * 32
    with Trickler(port, slow) as trickle:
        time.sleep(1.0)  # every slow client connected and part-way into its request
        results: list[list] = [[], []]  # two fast clients at once
        threads = [
            threading.Thread(target=lambda out: out.extend(_fast_requests(server, 100)), args=(r,))
            for r in results
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = [x for r in results for x in r]
        assert [s for _, s, _, _ in done] == [200] * 200
        assert all(trickle.open()), "a slow client was dropped before its deadlines"
        assert all(0 < n < len(r) - 1 for n, r in zip(trickle.sent, slow))
        # a slow upload that completes is served like a fast one
        slow_answer = trickle.finish(40)
    by_kind = {kind: body for kind, _, _, body in done}
    assert by_kind["GET /healthz"]["status"] == "ok"
    assert by_kind["GET /locate"]["grid"]["code"] == by_kind["POST /locate"]["results"]["grid"][0]
    status_line, _, rest = slow_answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 200"), slow_answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == by_kind["POST /locate"]
    latencies = np.array([seconds for _, _, seconds, _ in done])
    p99 = float(np.percentile(latencies, 99))
    assert p99 <= 0.100, f"p99 {p99 * 1000:.0f} ms of the fast requests (median " + (
        f"{np.median(latencies) * 1000:.0f} ms, max {latencies.max() * 1000:.0f} ms)"
    )


# ---- the deadlines that drop slow clients ----------------------------------------------------

DEADLINE = 2.0  # --header-timeout, --body-timeout and --keepalive of the server below


@pytest.fixture(scope="module")
def short_deadlines(tmp_path_factory) -> Iterator[str]:
    seconds = str(DEADLINE)
    options = ["--header-timeout", seconds, "--body-timeout", seconds, "--keepalive", seconds]
    url, proc = _start(tmp_path_factory.mktemp("deadlines"), *options)
    try:
        yield url
    finally:
        _stop(proc)


def _closed_after(socks: list[socket.socket], trickle: Trickler | None, limit: float) -> float:
    """Seconds until every one of ``socks`` is closed by the server (inf: not by ``limit``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if trickle is not None and not any(trickle.open()):
            return time.monotonic() - t0
        if trickle is None and not any(_is_open(s) for s in socks):
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("inf")


def _is_open(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_headers_that_keep_trickling_past_the_header_timeout_are_dropped(short_deadlines) -> None:
    port = int(short_deadlines.rsplit(":", 1)[1])
    # a byte every 0.1 s: never idle, so only a deadline from the first byte stops it
    with Trickler(port, [_header_trickle()] * 4, interval=0.1) as trickle:
        took = _closed_after(trickle.socks, trickle, 4 * DEADLINE)
        assert DEADLINE * 0.9 <= took <= DEADLINE + 1.5, took
        assert all(0 < n < 100 for n in trickle.sent)
    assert requests.get(short_deadlines + "/healthz", timeout=10).status_code == 200


def test_a_steady_upload_outlives_the_body_timeout_and_a_stalled_one_does_not(
    short_deadlines,
) -> None:
    port = int(short_deadlines.rsplit(":", 1)[1])
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        for s in stalled:
            s.sendall(_body_trickle_head() + _body()[:100])
        head = _body_trickle_head()
        with Trickler(port, [head + _body()] * 2, interval=0.1, at_once=len(head)) as steady:
            took = _closed_after(stalled, None, 4 * DEADLINE)
            assert DEADLINE * 0.9 <= took <= DEADLINE + 1.5, took
            time.sleep(DEADLINE)
            assert all(steady.open())  # 2 deadlines on, still uploading
            answer = steady.finish(0)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    finally:
        for s in stalled:
            s.close()


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive(short_deadlines) -> None:
    port = int(short_deadlines.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < _response_length(answer):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" not in answer.lower()
        sock.settimeout(None)  # for _is_open's non-blocking peek
        assert _is_open(sock)
        took = _closed_after([sock], None, 4 * DEADLINE)
        assert DEADLINE * 0.9 <= took <= DEADLINE + 1.5, took


def test_the_trusted_proxys_scheme_makes_the_links(short_deadlines) -> None:
    # nginx on this machine sets X-Forwarded-Proto (docs/deploy.md); gunicorn's own workers
    # believed it from 127.0.0.1 too
    accept = {"Accept": "application/json"}
    plain = requests.get(short_deadlines + "/", headers=accept, timeout=10).json()
    behind = requests.get(
        short_deadlines + "/", headers={**accept, "X-Forwarded-Proto": "https"}, timeout=10
    ).json()
    hrefs = [link["href"] for link in plain["links"]]
    assert hrefs and all(h.startswith("http://127.0.0.1:") for h in hrefs)
    assert [link["href"] for link in behind["links"]] == ["https" + h[4:] for h in hrefs]
