"""Fixtures of the service tests.

``system_tool`` finds a Debian program that some tests drive (``ogrinfo``, ``chromium``).
Without it the test is skipped, unless ``GRIDGEO_REQUIRE_SYSTEM_TOOLS=1``: ``.ci/run``
sets that when it could install the system packages, and then a missing program fails
the test, so that CI shows whether these tests ran.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

REQUIRE_ENV = "GRIDGEO_REQUIRE_SYSTEM_TOOLS"


def find_system_tool(name: str, *, package: str, also: Iterable[str] = ()) -> str:
    """Path of program ``name`` (on PATH, else one of ``also``); skip or fail without it."""
    found = shutil.which(name) or next((p for p in also if Path(p).exists()), None)
    if found:
        return found
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(
            f"'{name}' is not installed, but {REQUIRE_ENV}=1 says the system packages were "
            f"installed (.ci/run sets it after apt-get succeeds), so this test must run: "
            f"install Debian's '{package}' (apt-get install {package}) or unset {REQUIRE_ENV}",
            pytrace=False,
        )
    pytest.skip(f"Debian's '{package}' is not installed ('{name}' not found; .ci/run installs it)")


@pytest.fixture
def system_tool() -> Callable[..., str]:
    """:func:`find_system_tool`, as a fixture."""
    return find_system_tool
