"""Run a :class:`~gridgeo.assign.Locator` over a dask dataframe, partition by partition.

The locator enters the task graph once: on a distributed cluster it is
scattered to every worker (``broadcast=True``) before the tasks run, so each
worker receives it once and every task there reuses it; without a cluster it is
one delayed object.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from gridgeo.assign.locator import Locator
from gridgeo.errors import InputError

__all__ = ["locate_dask"]


def _locate_partition(
    part: pd.DataFrame, loc: Locator, x: str, y: str, crs: Any, geometry: bool
) -> pd.DataFrame:
    if geometry:
        res = loc.locate(part)
    else:
        res = loc.locate(part[x].to_numpy(float), part[y].to_numpy(float), crs=crs)
        res.index = part.index
    return res.astype({c: "string" for c in loc.layer_names})


def _distributed_client() -> Any:
    """The current ``distributed`` client, or None (no cluster, or distributed not installed)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client
        return None


def locate_dask(
    ddf: Any, loc: Locator | Any, *, x: str = "lng", y: str = "lat", crs: Any = "EPSG:4326"
) -> Any:
    """Locate the points of a dask (or dask-geopandas) dataframe in every layer.

    Parameters
    ----------
    ddf
        A ``dask.dataframe.DataFrame`` with ``x``/``y`` columns in ``crs``, or a
        ``dask_geopandas.GeoDataFrame`` of points (its CRS is used).
    loc
        The locator, or a ``dask.delayed``/scattered future of one.
    x, y, crs
        Coordinate columns and their CRS (ignored for a GeoDataFrame).

    Returns
    -------
    dask.dataframe.DataFrame
        One ``string`` column of keys per layer, partitioned and indexed like ``ddf``.

    Raises
    ------
    InputError
        If the coordinate columns are missing.

    Examples
    --------
    >>> import dask.dataframe as dd, geopandas as gpd, pandas as pd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["G1"]}, geometry=[shapely.box(115, 25, 116, 26)],
    ...                          crs="EPSG:4326")
    >>> pts = dd.from_pandas(pd.DataFrame({"lng": [115.5, 117.0], "lat": [25.5, 25.5]}),
    ...                      npartitions=2)
    >>> locate_dask(pts, Locator({"grid": grids})).compute()["grid"].tolist()
    ['G1', <NA>]
    """
    import dask

    geometry = hasattr(ddf, "crs") and getattr(ddf, "geometry", None) is not None
    if not geometry and not {x, y} <= set(ddf.columns):
        raise InputError(
            f"the dataframe has no columns '{x}' and '{y}'; it has {list(ddf.columns)}"
        )
    layer_names = loc.layer_names if isinstance(loc, Locator) else dask.compute(loc)[0].layer_names
    handle = loc
    if isinstance(loc, Locator):
        client = _distributed_client()
        # on a cluster, the locator is sent to every worker before any task and held there
        # while the graph lives; as a delayed object, a worker that had released it (its
        # tasks done) fetched it again when it stole another partition
        handle = (
            client.scatter(loc, broadcast=True, hash=False)
            if client is not None
            else dask.delayed(loc, pure=True)
        )
    meta = pd.DataFrame({name: pd.Series(dtype="string") for name in layer_names})
    return ddf.map_partitions(_locate_partition, handle, x, y, crs, geometry, meta=meta)
