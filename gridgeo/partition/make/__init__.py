"""Make grids: cut communities into grids under household and population ceilings.

``core`` holds :func:`make_grids`; the private modules are its stages:
``_atoms`` (street blocks into atoms), ``_bisect`` (ceiling-aware recursive
bisection), ``_refine`` (boundary-atom moves) and ``_recom`` (pair re-splitting).
"""

from gridgeo.partition.make.core import make_grids

__all__ = ["make_grids"]
