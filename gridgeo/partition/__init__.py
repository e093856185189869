"""Partition a territory: make grids, regroup them, check them, and keep plan versions."""

from gridgeo.partition.align import (
    Realignment,
    align_zones,
    check_alignment,
    realign_departments,
)
from gridgeo.partition.check import PROBLEM_KINDS, GridReport, check_grids
from gridgeo.partition.crosswalk import (
    crosswalk,
    grid_changes,
    grid_predecessors,
    group_crosswalk,
    plan_diff,
)
from gridgeo.partition.make import make_grids
from gridgeo.partition.plan import LEVELS, Plan, used_codes
from gridgeo.partition.regroup import regroup

__all__ = [
    "LEVELS",
    "PROBLEM_KINDS",
    "GridReport",
    "Plan",
    "Realignment",
    "align_zones",
    "check_alignment",
    "check_grids",
    "crosswalk",
    "grid_changes",
    "grid_predecessors",
    "group_crosswalk",
    "make_grids",
    "plan_diff",
    "realign_departments",
    "regroup",
    "used_codes",
]
