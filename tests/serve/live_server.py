"""Helpers of the tests that start the real ``gridgeo serve`` (a module, not conftest.py:
tests/conftest.py would shadow a second conftest module of that name)."""

from __future__ import annotations

import subprocess
import time

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
