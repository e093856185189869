"""One place that chooses numba's threading layer, before any parallel kernel runs.

The service forks its workers after building the locator (gunicorn preloads the
app), and GNU OpenMP, numba's default layer on Linux, kills a process that
forks after using it. Intel TBB is both fork-safe and thread-safe, so gridgeo
uses it when it is installed (it is a dependency on x86-64). A layer chosen
with ``NUMBA_THREADING_LAYER`` is left alone.
"""

from __future__ import annotations

import importlib.util
import os

import numba

__all__ = ["configure_threading"]


def configure_threading() -> str:
    """Select TBB when available and not overridden; return the configured layer."""
    if not os.environ.get("NUMBA_THREADING_LAYER") and importlib.util.find_spec("tbb"):
        numba.config.THREADING_LAYER = "tbb"  # type: ignore[attr-defined]
    return str(numba.config.THREADING_LAYER)  # type: ignore[attr-defined]


configure_threading()
