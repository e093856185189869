"""Helpers of the tests that start the real ``gridgeo serve`` (a module, not conftest.py:
tests/conftest.py would shadow a second conftest module of that name)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests


def wait_until_serving(
    url: str, proc: subprocess.Popen, *, timeout: float = 90.0, poll: float = 0.3
) -> None:
    """Wait for a 200 on ``url``/healthz; kill ``proc`` and fail the test if none comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).ok:
                return
        except requests.ConnectionError:
            time.sleep(poll)
    proc.kill()
    pytest.fail(f"gridgeo serve did not start within {timeout:.0f} s")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(data: str | os.PathLike[str], *args: str, workers: int = 1) -> Iterator[str]:
    """``gridgeo serve --data DATA ARGS`` in its own process; yields its URL, stops it after."""
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gridgeo.cli", "serve", "--data", str(data)),
            *("--port", str(port), "--workers", str(workers), *args),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
