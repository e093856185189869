"""The locator keeps working in a process forked after it ran (gunicorn preloads the app,
builds and uses the locator, then forks its workers)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gridgeo.assign import Locator


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_locate_in_a_forked_worker(county) -> None:
    loc = Locator.from_workspace(county)
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = county["boundary"].total_bounds
    x, y = rng.uniform(x0, x1, 50_000), rng.uniform(y0, y1, 50_000)
    want = loc.locate(x, y)  # runs the parallel kernels in this (parent) process
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(r)
        try:
            got = loc.locate(x, y)
            same = all(
                (got[c].astype(object).fillna("-") == want[c].astype(object).fillna("-")).all()
                for c in want
            )
            os.write(w, b"ok" if same else b"different")
        except BaseException as err:  # report anything to the parent
            os.write(w, repr(err).encode()[:200])
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    answer = os.read(r, 256).decode()
    os.close(r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"worker died: {status}"
    assert answer == "ok", answer
