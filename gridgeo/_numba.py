"""One place that chooses numba's threading layer, before any parallel kernel runs.

The service forks its workers after building the locator (gunicorn preloads the
app), and GNU OpenMP, numba's default layer on Linux, kills a process that
forks after using it ("Terminating: fork() called from a process already using
GNU OpenMP"). gridgeo therefore picks the layer by asking numba what actually
loads, not by looking for a Python module:

1. ``NUMBA_THREADING_LAYER`` set by the user is left alone.
2. Intel TBB (fork-safe and thread-safe) when numba's TBB backend loads. The
   ``tbb`` wheel puts ``libtbb.so.12`` under ``<env>/lib``, which the dynamic
   linker does not search, and its layout has changed between releases (2023.2
   ships no Python module at all), so the library is found through the wheel's
   own file list (and the environment's ``lib`` folders) and loaded before
   numba's backend asks for it.
3. Otherwise numba's ``workqueue`` layer, which is fork-safe but not
   thread-safe; :func:`launch_guard` then serialises kernel launches, so that
   threaded servers stay correct. The reason is logged.

``gridgeo.assign`` runs every parallel kernel inside :func:`launch_guard`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numba

__all__ = [
    "FORK_SAFE_LAYERS",
    "configure_threading",
    "ensure_fork_safe",
    "launch_guard",
    "threading_report",
]

log = logging.getLogger(__name__)

#: Layers that survive a fork after use (GNU OpenMP does not).
FORK_SAFE_LAYERS = frozenset({"tbb", "workqueue"})

_LIBTBB = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}
_state: dict[str, object] = {"layer": None, "reason": "", "libtbb": None}
_launch_lock = threading.RLock()


def _candidates(name: str) -> Iterator[Path]:
    """Where a pip-installed ``libtbb`` may be: the ``tbb`` wheel's own files first."""
    try:
        files = importlib.metadata.distribution("tbb").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    dist = None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("tbb")
    for f in files:
        if Path(str(f)).name == name and dist is not None:
            yield Path(str(dist.locate_file(f))).resolve()
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix)):
        yield Path(prefix) / ("Library/bin" if sys.platform == "win32" else "lib") / name


def _load_libtbb() -> str | None:
    """Load ``libtbb`` globally so that numba's TBB backend links to it; its path or None."""
    name = _LIBTBB.get(sys.platform if sys.platform in _LIBTBB else "linux")
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        return name  # the dynamic linker finds it by itself
    except OSError:
        pass
    for path in _candidates(name):
        if path.is_file():
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError as err:
                log.debug("cannot load %s: %s", path, err)
                continue
            return str(path)
    return None


def _tbb_backend_loads() -> tuple[bool, str]:
    """Ask numba whether its TBB backend loads (version check and extension import)."""
    try:
        from numba.np.ufunc import parallel

        parallel._check_tbb_version_compatible()
        from numba.np.ufunc import tbbpool  # noqa: F401  (links libtbb.so.12)
    except ImportError as err:
        return False, str(err)
    return True, ""


def configure_threading() -> str:
    """Choose a fork-safe threading layer for numba; return the configured layer.

    Returns
    -------
    str
        ``"tbb"`` when numba's TBB backend loads, else ``"workqueue"``; or the
        user's own ``NUMBA_THREADING_LAYER``.

    Examples
    --------
    >>> configure_threading() in {"tbb", "workqueue"} | {os.environ.get("NUMBA_THREADING_LAYER")}
    True
    """
    if _state["layer"] is not None:
        return str(_state["layer"])
    chosen = os.environ.get("NUMBA_THREADING_LAYER")
    if chosen:
        reason = "NUMBA_THREADING_LAYER is set"
    else:
        libtbb = _load_libtbb()
        _state["libtbb"] = libtbb
        ok, why = _tbb_backend_loads() if libtbb else (False, "libtbb was not found")
        if ok:
            chosen, reason = "tbb", f"numba's TBB backend loads ({libtbb})"
        else:
            chosen = "workqueue"
            reason = (
                f"numba's TBB backend does not load ({why}); using the fork-safe "
                "'workqueue' layer with kernel launches serialised (install tbb>=2021.6 "
                "for parallel lookups in threaded servers)"
            )
            log.warning("%s", reason)
        numba.config.THREADING_LAYER = chosen  # type: ignore[attr-defined]
    _state["layer"], _state["reason"] = chosen, reason
    return chosen


def threading_report() -> dict[str, object]:
    """The chosen layer, why, where ``libtbb`` came from, and whether it is fork-safe.

    Examples
    --------
    >>> sorted(threading_report())
    ['fork_safe', 'layer', 'libtbb', 'reason']
    """
    layer = configure_threading()
    return {
        "layer": layer,
        "reason": _state["reason"],
        "libtbb": _state["libtbb"],
        "fork_safe": layer in FORK_SAFE_LAYERS,
    }


def ensure_fork_safe() -> str:
    """Make sure the layer survives a fork, before a server forks its workers.

    A layer the user forced with ``NUMBA_THREADING_LAYER`` that is not fork-safe
    (``omp``, ``default``…) is replaced, with a warning, by TBB when it loads,
    else by ``workqueue``: a preloaded server must never run on a layer that
    kills its forked workers.

    Returns
    -------
    str
        The layer in force.

    Raises
    ------
    RuntimeError
        When a kernel already ran on an unsafe layer in this process (too late
        to change it).

    Examples
    --------
    >>> ensure_fork_safe() in FORK_SAFE_LAYERS
    True
    """
    layer = configure_threading()
    if layer in FORK_SAFE_LAYERS:
        return layer
    from numba.np.ufunc import parallel

    if parallel._is_initialized:
        running = numba.threading_layer()
        if running in FORK_SAFE_LAYERS:
            return str(running)
        raise RuntimeError(
            f"numba already runs the {running!r} threading layer, which kills forked "
            "workers; unset NUMBA_THREADING_LAYER (or set it to 'tbb' or 'workqueue')"
        )
    libtbb = _load_libtbb()
    ok, _ = _tbb_backend_loads() if libtbb else (False, "")
    safe = "tbb" if ok else "workqueue"
    log.warning(
        "NUMBA_THREADING_LAYER=%s is not fork-safe and the server forks its workers; "
        "using %r instead",
        layer,
        safe,
    )
    numba.config.THREADING_LAYER = safe  # type: ignore[attr-defined]
    _state["layer"], _state["libtbb"] = safe, libtbb
    _state["reason"] = f"NUMBA_THREADING_LAYER={layer} is not fork-safe; replaced by {safe}"
    return safe


@contextlib.contextmanager
def launch_guard() -> Iterator[None]:
    """Serialise parallel kernel launches when the layer is not thread-safe.

    TBB and OpenMP take concurrent launches from many threads; ``workqueue``
    terminates the process on one, so under it launches take a lock.

    Examples
    --------
    >>> with launch_guard():
    ...     pass
    """
    if configure_threading() == "workqueue":
        with _launch_lock:
            yield
    else:
        yield


configure_threading()
