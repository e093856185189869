"""Locator on dask: a distributed ``locate`` equals the local one, and ships the locator once.

Split from test_locator.py: each test starts a dask cluster (the process cluster takes
~40 s on a loaded 2-core machine), and in a file of their own pytest-xdist's
``--dist loadfile`` can run them on one worker while test_locator.py runs on the other.
"""

from __future__ import annotations

import pandas as pd
import pytest

from gridgeo.assign import Locator
from gridgeo.errors import InputError


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, n_incidents=500)


@pytest.fixture(scope="module")
def loc(county) -> Locator:
    """The county's locator, built once: a Locator is immutable, so tests share it."""
    return Locator.from_workspace(county)


def test_locate_dask_on_a_local_cluster(county, loc) -> None:
    pytest.importorskip("distributed")
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from gridgeo.assign.dask import locate_dask

    inc = pd.DataFrame({"lng": county["incidents"]["lng"], "lat": county["incidents"]["lat"]})
    ddf = dd.from_pandas(inc, npartitions=4)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        got = locate_dask(ddf, loc, crs="gcj02").compute()
    want = loc.locate(inc["lng"].to_numpy(), inc["lat"].to_numpy(), crs="gcj02")
    assert got.index.equals(inc.index)
    for layer in loc.layer_names:
        assert (
            got[layer].fillna("-").to_numpy() == want[layer].astype(object).fillna("-").to_numpy()
        ).all()
    with pytest.raises(InputError, match="has no columns 'x' and 'y'"):
        locate_dask(ddf, loc, x="x", y="y")


def _unpickled() -> int:
    from gridgeo.assign import locator

    return locator.UNPICKLED["count"]


@pytest.mark.slow
def test_locate_dask_ships_the_locator_once_per_worker_process(county, loc) -> None:
    """Two worker processes, 24 partitions: each worker unpickles the locator at most once."""
    pytest.importorskip("distributed")
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from gridgeo.assign.dask import locate_dask

    inc = pd.DataFrame({"lng": county["incidents"]["lng"], "lat": county["incidents"]["lat"]})
    ddf = dd.from_pandas(inc, npartitions=24)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        got = locate_dask(ddf, loc, crs="gcj02").compute()
        per_worker = client.run(_unpickled)
    assert len(got) == len(inc)
    assert len(per_worker) == 2
    assert all(n <= 1 for n in per_worker.values()), per_worker
    assert sum(per_worker.values()) >= 1  # it did travel to a worker
