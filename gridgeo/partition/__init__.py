"""Partition a territory: make grids, regroup them, check them."""

from gridgeo.partition.regroup import plan_diff, regroup

__all__ = ["plan_diff", "regroup"]
