"""Pair re-splitting: merge two neighbouring grids and cut the union again.

Single-atom moves (``_refine``) stop at a local optimum: a boundary that
should turn as a whole cannot, because every one-atom step on the way is
worse or would break a ceiling. This pass takes each grid of low
Polsby–Popper score, merges it in turn with each neighbouring grid, cuts the
union again with the bisection's sweep (both sides connected, both under the
ceilings) and keeps the most compact new pair if it beats the old one. It is
the recombination move of districting Markov chains (merge two districts,
draw a new cut), made greedy: only improving moves are taken.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit
from numpy.typing import NDArray

from gridgeo.partition.make._bisect import _side_pps, _sweep_cut

__all__ = ["resplit_pairs"]


class _CSR(NamedTuple):
    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    data: NDArray[np.float64]


@njit(cache=True, nogil=True)
def _sub_csr(indptr, indices, data, idx, loc):  # pragma: no cover - compiled
    """The rows and columns ``idx`` of a CSR matrix (``loc`` is all -1 on entry and exit)."""
    m = idx.shape[0]
    for i in range(m):
        loc[idx[i]] = i
    nnz = 0
    for i in range(m):
        a = idx[i]
        for k in range(indptr[a], indptr[a + 1]):
            if loc[indices[k]] >= 0:
                nnz += 1
    s_ptr = np.zeros(m + 1, dtype=np.int64)
    s_ind = np.empty(nnz, dtype=np.int64)
    s_dat = np.empty(nnz)
    t = 0
    for i in range(m):
        a = idx[i]
        for k in range(indptr[a], indptr[a + 1]):
            j = loc[indices[k]]
            if j >= 0:
                s_ind[t] = j
                s_dat[t] = data[k]
                t += 1
        s_ptr[i + 1] = t
    for i in range(m):
        loc[idx[i]] = -1
    return s_ptr, s_ind, s_dat


@njit(cache=True, nogil=True)
def _neighbour_groups(indptr, indices, label, atoms, g):  # pragma: no cover - compiled
    """Groups (other than ``g``) that share an edge with ``atoms``."""
    out = []
    for a in atoms:
        for k in range(indptr[a], indptr[a + 1]):
            x = label[indices[k]]
            if x >= 0 and x != g:
                out.append(x)
    return np.unique(np.array(out, dtype=np.int64)) if out else np.empty(0, dtype=np.int64)


def _group_pp(adj: sp.csr_matrix, label, area, perim, n_groups) -> NDArray[np.float64]:
    ok = label >= 0
    g_area = np.bincount(label[ok], weights=area[ok], minlength=n_groups)
    g_perim = np.bincount(label[ok], weights=perim[ok], minlength=n_groups)
    coo = adj.tocoo()
    same = (label[coo.row] == label[coo.col]) & (label[coo.row] >= 0)
    inner = np.bincount(label[coo.row[same]], weights=coo.data[same], minlength=n_groups)
    q = np.maximum(g_perim - inner, 1e-12)
    return 4 * np.pi * g_area / (q * q)


def resplit_pairs(
    adj: sp.csr_matrix,
    xy: NDArray[np.float64],
    area: NDArray[np.float64],
    perim: NDArray[np.float64],
    h: NDArray[np.float64],
    p: NDArray[np.float64],
    label: NDArray[np.int64],
    fixed: NDArray[np.bool_],
    cap_h: float,
    cap_p: float,
    rng: np.random.Generator,
    *,
    below: float = 0.65,
    rounds: int = 2,
) -> tuple[NDArray[np.int64], int]:
    """Re-split pairs of neighbouring grids where that makes them more compact.

    Parameters
    ----------
    adj
        Symmetric CSR adjacency of the atoms; values are shared boundary lengths.
    xy, area, perim, h, p
        Atom centroids, areas, perimeters, households and population.
    label
        Grid of each atom (``0..G-1``) or ``-1`` for atoms left out.
    fixed
        Per grid: True for grids that must not change (oversize single units).
    cap_h, cap_p
        Ceilings (``math.inf`` for none).
    rng
        Random generator (the sweep's random directions).
    below
        Only grids whose Polsby–Popper score is below this are tried.
    rounds
        Passes over the grids.

    Returns
    -------
    label, changes
        The new labels (a new array) and how many pairs were re-split.

    Examples
    --------
    Four unit squares in a row, split as [0 | 1, 1, 1] under a ceiling of 2:
    the pair becomes two 1×2 rectangles (Polsby–Popper 0.70 each).

    >>> import numpy as np, scipy.sparse as sp
    >>> adj = sp.diags([1.0, 1.0], [-1, 1], shape=(4, 4)).tocsr()
    >>> ones = np.ones(4)
    >>> xy = np.column_stack([np.arange(4) + 0.5, np.full(4, 0.5)])
    >>> lab, n = resplit_pairs(adj, xy, ones, 4 * ones, ones, ones, np.array([0, 1, 1, 1]),
    ...                        np.zeros(2, bool), 3.0, 3.0, np.random.default_rng(0))
    >>> [bool(x == lab[0]) for x in lab], n
    ([True, True, False, False], 1)
    """
    adj = sp.csr_matrix(adj)
    adj.sort_indices()
    indptr = adj.indptr.astype(np.int64)
    indices = adj.indices.astype(np.int64)
    data = adj.data.astype(np.float64)
    out = np.asarray(label, dtype=np.int64).copy()
    n_groups = int(out.max()) + 1 if len(out) else 0
    if n_groups < 2:
        return out, 0
    h = np.asarray(h, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    area = np.asarray(area, dtype=np.float64)
    perim = np.asarray(perim, dtype=np.float64)
    loc = np.full(len(out), -1, dtype=np.int64)
    pp = _group_pp(adj, out, area, perim, n_groups)
    order = np.argsort(out, kind="stable")
    starts = np.searchsorted(out[order], np.arange(n_groups + 1))
    members = [order[starts[g] : starts[g + 1]] for g in range(n_groups)]
    changes = 0
    for _ in range(rounds):
        changed = 0
        for g in np.argsort(pp, kind="stable"):
            if pp[g] >= below or fixed[g] or len(members[g]) == 0:
                continue
            best = None
            for g2 in _neighbour_groups(indptr, indices, out, members[g], g):
                if fixed[g2]:
                    continue
                idx = np.sort(np.concatenate([members[g], members[g2]]))
                sub = _CSR(*_sub_csr(indptr, indices, data, idx, loc))
                mask = _sweep_cut(
                    sub, xy[idx], h[idx], p[idx], 1, 1, cap_h, cap_p, rng, area[idx], perim[idx]
                )
                if mask is None:
                    continue
                new = _side_pps(sub, mask, area[idx], perim[idx])
                gain = sum(new) - pp[g] - pp[g2]
                if gain > 1e-9 and (best is None or gain > best[0]):
                    best = (gain, g2, idx, mask, new)
            if best is None:
                continue
            _, g2, idx, mask, (pp[g], pp[g2]) = best
            out[idx] = np.where(mask, g, g2)
            members[g], members[g2] = idx[mask], idx[~mask]
            changed += 1
        changes += changed
        if changed == 0:
            break
    return out, changes
