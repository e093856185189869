"""Locate points in zone layers (grid, community, town, police beat, department zones)."""

from gridgeo.assign.locator import Locator
from gridgeo.assign.route import LinkTable, default_routes, link_table, route

__all__ = ["LinkTable", "Locator", "default_routes", "link_table", "locate_dask", "route"]


def __getattr__(name: str):  # dask is an optional extra: import it only when asked for
    if name == "locate_dask":
        from gridgeo.assign.dask import locate_dask

        return locate_dask
    raise AttributeError(name)
