"""Compare two business plans over the same base grids: which grids changed group.

A business plan groups base grids (grid code → group code, no geometry). The
crosswalk of two such plans has the base grids as the units moved
(:func:`group_crosswalk`: one row per pair of groups sharing grids, labelled as
:func:`~gridgeo.partition.crosswalk.crosswalk` labels grids), and
:func:`plan_diff` gives each grid its before and after group with a one-to-one
matching of new groups to old ones. Both are importable from
:mod:`gridgeo.partition.crosswalk` and :mod:`gridgeo.partition` too.

Examples
--------
>>> import pandas as pd
>>> before = pd.Series({"a": "G1", "b": "G1", "c": "G2"})
>>> after = pd.Series({"a": "X", "b": "Y", "c": "Y"})
>>> plan_diff(before, after)["moved"].tolist()
[False, True, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gridgeo.errors import InputError
from gridgeo.partition._overlay import _changes, _codes

__all__ = ["group_crosswalk", "plan_diff"]


def _assignment(plan: Any, what: str) -> pd.Series:
    if isinstance(plan, pd.Series):
        return plan
    if isinstance(plan, Mapping):  # regroup's attrs["assignment"]
        return pd.Series(dict(plan), dtype=object, name="group")
    assignment = getattr(plan, "assignment", None)
    if not isinstance(assignment, pd.Series):
        raise InputError(
            f"plan {what!r} must be a Series or dict grid code -> group code, or a business plan "
            f"with an .assignment Series, not {type(plan).__name__}"
        )
    return assignment


def _group_pairs(
    before: Any, after: Any, weights: pd.Series | None
) -> tuple[pd.DataFrame, pd.DataFrame, NDArray[np.object_], NDArray[np.int64]]:
    """Per grid frame (before, after, weight), the group crosswalk, labels, before index."""
    before, after = _assignment(before, "before"), _assignment(after, "after")
    for name, plan in (("before", before), ("after", after)):
        if plan.index.duplicated().any():
            dup = sorted(map(str, plan.index[plan.index.duplicated()]))[:5]
            raise InputError(f"plan {name!r} lists grids more than once: {dup}")
    codes = before.index.union(after.index, sort=False)
    out = pd.DataFrame(
        {"before": before.reindex(codes), "after": after.reindex(codes)}, index=codes
    ).astype(object)
    if weights is None:
        wt = pd.Series(1.0, index=codes)
    else:
        missing = codes.difference(weights.index)
        if len(missing):
            raise InputError(f"weights lack grids {sorted(map(str, missing))[:5]}")
        wt = weights.reindex(codes).astype(float)
    out["weight"] = wt.to_numpy()

    # the crosswalk of the groups, the base grids being the units moved
    old_groups = pd.unique(before.dropna().to_numpy(dtype=object))
    new_groups = pd.unique(after.dropna().to_numpy(dtype=object))
    o = pd.Index(old_groups).get_indexer(out["before"]).astype(np.int64)
    n = pd.Index(new_groups).get_indexer(out["after"]).astype(np.int64)
    pairs = (
        pd.DataFrame({"o": o, "n": n, "grids": 1, "weight": out["weight"].to_numpy()})
        .groupby(["o", "n"], sort=True)[["grids", "weight"]]
        .sum()
        .reset_index()
    )
    po, pn = pairs["o"].to_numpy(np.int64), pairs["n"].to_numpy(np.int64)
    count = pairs["grids"].to_numpy(np.float64)
    size_o = np.bincount(o[o >= 0], minlength=len(old_groups)).astype(np.float64)
    size_n = np.bincount(n[n >= 0], minlength=len(new_groups)).astype(np.float64)
    both = (po >= 0) & (pn >= 0)
    bo, bn = po[both], pn[both]
    iou = count[both] / (size_o[bo] + size_n[bn] - count[both])
    same = old_groups[bo].astype(str) == new_groups[bn].astype(str)
    labels = _changes(bo, bn, iou, same, len(old_groups), len(new_groups), 1.0)
    w = pairs["weight"].to_numpy(np.float64)
    w_o = np.bincount(po[po >= 0], weights=w[po >= 0], minlength=len(old_groups))
    w_n = np.bincount(pn[pn >= 0], weights=w[pn >= 0], minlength=len(new_groups))
    with np.errstate(divide="ignore", invalid="ignore"):
        cw = pd.DataFrame(
            {
                "old_code": _codes(old_groups, po),
                "new_code": _codes(new_groups, pn),
                "grids": pairs["grids"].to_numpy(np.int64),
                "weight": w,
                "weight_share_old": np.where(po >= 0, w / w_o[np.maximum(po, 0)], np.nan),
                "weight_share_new": np.where(pn >= 0, w / w_n[np.maximum(pn, 0)], np.nan),
                "change": _codes(labels, po),
            }
        )
    # order: old groups, then new groups, in order of appearance; <NA> last
    order = np.lexsort(
        (np.where(pn < 0, len(new_groups), pn), np.where(po < 0, len(old_groups), po))
    )
    cw = cw.iloc[order].reset_index(drop=True)

    return out, cw, labels, o


def group_crosswalk(
    before: pd.Series, after: pd.Series, *, weights: pd.Series | None = None
) -> pd.DataFrame:
    """The crosswalk of two groupings of the same base grids, with the grids as units.

    What :func:`plan_diff` shows per grid, per pair of groups: one row per (before
    group, after group) pair sharing grids, each before group labelled as in
    :func:`~gridgeo.partition.crosswalk.crosswalk` (a group is ``unchanged`` or
    ``recoded`` only when its members are exactly those of one after group).

    Parameters
    ----------
    before, after
        Plans, as for :func:`plan_diff`.
    weights
        Series indexed by grid code (e.g. households); 1 per grid when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``old_code``, ``new_code``, ``grids``, ``weight``,
        ``weight_share_old``, ``weight_share_new``, ``change`` (``<NA>`` for grids
        in one plan only), ordered by before group then after group, in order of
        appearance, ``<NA>`` last.

    Raises
    ------
    InputError
        As :func:`plan_diff`.

    Examples
    --------
    >>> import pandas as pd
    >>> b = pd.Series({"a": "G1", "b": "G1", "c": "G2", "d": "G3"})
    >>> a = pd.Series({"a": "X", "b": "Y", "c": "Z", "d": "Z"})
    >>> for row in group_crosswalk(b, a)[["old_code", "new_code", "grids", "change"]].values:
    ...     print(*row)
    G1 X 1 split
    G1 Y 1 split
    G2 Z 1 merged
    G3 Z 1 merged
    """
    return _group_pairs(before, after, weights)[1]


def plan_diff(
    before: pd.Series, after: pd.Series, *, weights: pd.Series | None = None
) -> pd.DataFrame:
    """Which grids changed group between two plans, and how much workload moved.

    This is the crosswalk of two groupings of the same base grids, with the base
    grids as the units moved (:func:`group_crosswalk`: one row per (before group,
    after group) pair sharing grids), each before group labelled as in
    :func:`~gridgeo.partition.crosswalk.crosswalk` (a group is ``unchanged`` or
    ``recoded`` only when its members are exactly those of one after group). Group
    codes of two plans need not share a vocabulary (``G01`` of a 17-group plan is
    not ``G01`` of an 11-group plan), so each group of ``after`` is also matched to
    the group of ``before`` it shares the most weight with (a one-to-one assignment;
    unmatched new groups match nothing). A grid has *moved* when its ``after`` group
    is not matched to its ``before`` group.

    Parameters
    ----------
    before, after
        Plans: Series indexed by grid code with the group code as value (e.g.
        ``groups.attrs["assignment"]``), or business plans with such an
        ``.assignment`` (a ``Plan``).
    weights
        Series indexed by grid code (e.g. households); 1 per grid when omitted.

    Returns
    -------
    pandas.DataFrame
        One row per grid code of either plan (none dropped), indexed by code, with
        ``before``, ``after``, ``matched`` (the ``before`` group that ``after`` group
        continues, or ``<NA>``), ``moved`` (bool), ``weight`` and ``change`` (the
        label of the ``before`` group, ``<NA>`` for a grid not in ``before``).
        ``attrs`` holds ``n_moved`` and ``weight_moved`` (scalars only, so that
        pandas operations work on the result); the per-group pairs are
        :func:`group_crosswalk` of the same plans.

    Raises
    ------
    InputError
        If a plan has duplicate grid codes or ``weights`` lacks a grid, or is
        neither a Series nor has an ``.assignment`` Series.

    Examples
    --------
    >>> import pandas as pd
    >>> b = pd.Series({"a": "G1", "b": "G1", "c": "G2", "d": "G3"})
    >>> a = pd.Series({"a": "X", "b": "X", "c": "Y", "d": "Y"})
    >>> d = plan_diff(b, a, weights=pd.Series({"a": 10, "b": 20, "c": 30, "d": 5}))
    >>> d["matched"].tolist(), d["moved"].tolist(), d.attrs["weight_moved"]
    (['G1', 'G1', 'G2', 'G2'], [False, False, False, True], 5.0)
    >>> d["change"].tolist()
    ['recoded', 'recoded', 'merged', 'merged']
    """
    from scipy.optimize import linear_sum_assignment

    out, _, labels, o = _group_pairs(before, after, weights)
    # each after group continues the before group it shares the most weight with
    pairs_in_both = out.dropna(subset=["before", "after"])
    shared = pairs_in_both.groupby(["after", "before"])["weight"].sum().unstack(fill_value=0)
    ri, ci = linear_sum_assignment(shared.to_numpy(), maximize=True)
    match = dict(zip(shared.index[ri], shared.columns[ci]))
    out["matched"] = pd.array([match.get(g, pd.NA) for g in out["after"]], dtype=object)
    out["moved"] = [
        not (pd.notna(b) and pd.notna(m) and b == m) for b, m in zip(out["before"], out["matched"])
    ]
    out["change"] = _codes(labels, o)
    out = out[["before", "after", "matched", "moved", "weight", "change"]]
    out.attrs["n_moved"] = int(out["moved"].sum())
    out.attrs["weight_moved"] = float(out.loc[out["moved"], "weight"].sum())
    return out
