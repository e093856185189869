"""Partition a territory: make grids, regroup them, check them."""

from gridgeo.partition.align import align_zones, check_alignment
from gridgeo.partition.check import PROBLEM_KINDS, GridReport, check_grids
from gridgeo.partition.make import make_grids
from gridgeo.partition.regroup import plan_diff, regroup

__all__ = [
    "PROBLEM_KINDS",
    "GridReport",
    "align_zones",
    "check_alignment",
    "check_grids",
    "make_grids",
    "plan_diff",
    "regroup",
]
