"""What became of each grid of a crosswalk, and where each new grid came from.

:func:`grid_changes` (per old grid: label, successors, IoU) and
:func:`grid_predecessors` (per new grid: the old grids it took ground from) are
computed from the rows of :func:`~gridgeo.partition.crosswalk.crosswalk`, with
the same rule for relationships as its labels. Both are importable from
:mod:`gridgeo.partition.crosswalk` too.

Examples
--------
>>> import geopandas as gpd, shapely
>>> from gridgeo.partition import crosswalk
>>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4549",
...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
>>> new = gpd.GeoDataFrame({"code": ["AB"]}, crs="EPSG:4549",
...     geometry=[shapely.box(0, 0, 200, 100)])
>>> cw = crosswalk(old, new)
>>> grid_changes(cw)["successors"].tolist(), grid_predecessors(cw)["predecessors"].tolist()
([('AB',), ('AB',)], [('A', 'B')])
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from gridgeo.errors import InputError
from gridgeo.partition._overlay import MIN_SHARE

__all__ = ["grid_changes", "grid_predecessors"]

_ROW_COLUMNS = ("old_code", "new_code", "area_m2", "area_share_old", "area_share_new", "change")


def _significant(cw: pd.DataFrame, min_share: float | None, what: str) -> pd.DataFrame:
    """The rows of ``cw`` that are relationships, with their ``iou``, in row order."""
    missing = [c for c in _ROW_COLUMNS if c not in cw.columns]
    if missing:
        raise InputError(
            f"{what} needs a crosswalk (from crosswalk()); columns {missing} are missing, "
            f"columns are {list(cw.columns)}"
        )
    if min_share is None:
        min_share = cw.attrs.get("min_share", MIN_SHARE)
    if not isinstance(min_share, numbers.Real) or not 0 <= min_share < 1:
        raise InputError(f"min_share was {min_share!r}; expected a number from 0 to below 1")
    rows = pd.DataFrame(
        {
            "old": cw["old_code"].astype(object).to_numpy(),
            "new": cw["new_code"].astype(object).to_numpy(),
            "area": cw["area_m2"].to_numpy(np.float64),
            "share_old": cw["area_share_old"].to_numpy(np.float64),
            "share_new": cw["area_share_new"].to_numpy(np.float64),
        }
    )
    both = (rows["old"].notna() & rows["new"].notna()).to_numpy()
    sig = both & (
        (rows["share_old"].to_numpy() >= min_share) | (rows["share_new"].to_numpy() >= min_share)
    )
    if "households" in cw.columns:  # as crosswalk(units=...) labels: by households too
        hh = cw["households"].to_numpy(np.float64)
        frame = rows.assign(hh=hh)
        hh_o = frame.groupby("old", dropna=True)["hh"].transform("sum").to_numpy()
        hh_n = frame.groupby("new", dropna=True)["hh"].transform("sum").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            by_hh = (hh / hh_o >= min_share) | (hh / hh_n >= min_share)
        sig |= both & (rows["area"].to_numpy() > 0) & by_hh
    out = rows[sig].copy()
    # area IoU = A / (A_old + A_new - A) with A_old = A / share_old, A_new = A / share_new
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = 1.0 / (1.0 / out["share_old"] + 1.0 / out["share_new"] - 1.0)
    out["iou"] = np.where(out["area"] > 0, iou, 0.0)
    return out


def _ranked(sig: pd.DataFrame, mine: str, theirs: str, share: str) -> pd.DataFrame:
    """``sig`` ordered by ``mine`` (first appearance), then largest ``share`` first."""
    first = pd.Index(pd.unique(sig[mine].to_numpy(dtype=object))).get_indexer(sig[mine])
    order = np.lexsort((-sig[share].to_numpy(), first))  # stable: row order breaks ties
    return sig.iloc[order]


def grid_changes(cw: pd.DataFrame, *, min_share: float | None = None) -> pd.DataFrame:
    """What became of each old grid of a crosswalk: its label, successors and IoU.

    Computed from the rows of :func:`~gridgeo.partition.crosswalk.crosswalk`'s
    result (pass all of them: a grid whose rows were filtered out is missing here),
    with the same rule for relationships as its labels: a pair sharing at least
    ``min_share`` of either grid's area, or (when the crosswalk has ``households``)
    a pair sharing area and at least ``min_share`` of either grid's households.

    Parameters
    ----------
    cw
        A crosswalk, as :func:`~gridgeo.partition.crosswalk.crosswalk` returns it.
    min_share
        Default: the crosswalk's ``attrs["min_share"]``, else :data:`MIN_SHARE`.

    Returns
    -------
    pandas.DataFrame
        One row per old grid, in the old plan's row order: ``code``, ``change``
        (as in the rows), ``successors`` (tuple of the new codes of its
        relationships, largest share of the old grid first; ``()`` for a retired
        grid) and ``iou`` (area IoU with its first successor, 0 if none).

    Raises
    ------
    InputError
        If ``cw`` lacks a crosswalk column, or ``min_share`` is not from 0 to below 1.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridgeo.partition import crosswalk
    >>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4549",
    ...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    >>> new = gpd.GeoDataFrame({"code": ["A", "C", "D"]}, crs="EPSG:4549", geometry=[
    ...     shapely.box(0, 0, 100, 100), shapely.box(100, 0, 170, 100),
    ...     shapely.box(170, 0, 200, 100)])
    >>> grid_changes(crosswalk(old, new)).values.tolist()
    [['A', 'unchanged', ('A',), 1.0], ['B', 'split', ('C', 'D'), 0.7]]
    """
    sig = _significant(cw, min_share, "grid_changes")
    codes = pd.unique(cw["old_code"].dropna().astype(object).to_numpy())
    change = (
        pd.Series(cw["change"].astype(object).to_numpy(), index=cw["old_code"].astype(object))
        .loc[lambda c: c.index.notna()]
        .groupby(level=0, sort=False)
        .first()
    )
    succ: dict[Any, tuple[Any, ...]] = {}
    best: dict[Any, float] = {}
    for old, new, iou in _ranked(sig, "old", "new", "share_old")[["old", "new", "iou"]].values:
        if old not in succ:
            succ[old], best[old] = (), float(iou)
        succ[old] = (*succ[old], new)
    return pd.DataFrame(
        {
            "code": pd.array(codes, dtype=cw["old_code"].dtype),
            "change": pd.array(change.reindex(codes).to_numpy(), dtype=cw["change"].dtype),
            "successors": [succ.get(c, ()) for c in codes],
            "iou": np.array([best.get(c, 0.0) for c in codes], dtype=np.float64),
        }
    )


def grid_predecessors(cw: pd.DataFrame, *, min_share: float | None = None) -> pd.DataFrame:
    """Where each new grid of a crosswalk came from: the old grids it took ground from.

    Computed from the rows of :func:`~gridgeo.partition.crosswalk.crosswalk`'s
    result, with the relationships of :func:`grid_changes`.

    Parameters
    ----------
    cw
        A crosswalk, as :func:`~gridgeo.partition.crosswalk.crosswalk` returns it.
    min_share
        Default: the crosswalk's ``attrs["min_share"]``, else :data:`MIN_SHARE`.

    Returns
    -------
    pandas.DataFrame
        One row per new grid, in order of first appearance in the rows (which are
        ordered by old grid, so new ground with no old grid comes last): ``code``
        and ``predecessors`` (tuple of old codes, largest share of the new grid
        first; ``()`` for new ground).

    Raises
    ------
    InputError
        If ``cw`` lacks a crosswalk column, or ``min_share`` is not from 0 to below 1.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridgeo.partition import crosswalk
    >>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4549",
    ...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    >>> new = gpd.GeoDataFrame({"code": ["AB", "N"]}, crs="EPSG:4549", geometry=[
    ...     shapely.box(0, 0, 200, 100), shapely.box(200, 0, 300, 100)])
    >>> grid_predecessors(crosswalk(old, new)).values.tolist()
    [['AB', ('A', 'B')], ['N', ()]]
    """
    sig = _significant(cw, min_share, "grid_predecessors")
    codes = pd.unique(cw["new_code"].dropna().astype(object).to_numpy())
    pred: dict[Any, tuple[Any, ...]] = {}
    for new, old in _ranked(sig, "new", "old", "share_new")[["new", "old"]].values:
        pred[new] = (*pred.get(new, ()), old)
    return pd.DataFrame(
        {
            "code": pd.array(codes, dtype=cw["new_code"].dtype),
            "predecessors": [pred.get(c, ()) for c in codes],
        }
    )
