"""Regroup grids: merge base grids into business grids by workload.

``core`` holds :func:`regroup` (and re-exports :func:`plan_diff`, which lives in
:mod:`gridgeo.partition.crosswalk`); the private modules are
its solvers: ``_mip`` (min-max MIP with HiGHS), ``_search`` (seeded local
search) and ``_setpart`` (set partitioning over connected subsets).
"""

from gridgeo.partition.regroup.core import plan_diff, regroup

__all__ = ["plan_diff", "regroup"]
