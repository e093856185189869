"""Heuristic min–max contiguous partition: region growing + local search + merge–split.

Every state visited is a partition into exactly ``k`` non-empty connected groups of
the adjacency graph, so whatever the search returns is contiguous.

Private module: used by :func:`gridgeo.partition.regroup`.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
from numpy.typing import NDArray

__all__: list[str] = []

log = logging.getLogger(__name__)


def allocate(comp_weight: NDArray[np.float64], comp_size: NDArray[np.int64], k: int) -> list[int]:
    """Number of groups per connected component: one each, then to the heaviest per group."""
    kc = [1] * len(comp_weight)
    heap = [(-float(comp_weight[c]), c) for c in range(len(kc)) if comp_size[c] > 1]
    heapq.heapify(heap)
    for _ in range(k - len(kc)):
        _, c = heapq.heappop(heap)
        kc[c] += 1
        if kc[c] < comp_size[c]:
            heapq.heappush(heap, (-float(comp_weight[c]) / kc[c], c))
    return kc


def component_bound(comp_weight: NDArray[np.float64], w_max: float, k: int) -> float:
    """Smallest ``t >= w_max`` with ``sum_c ceil(W_c / t) <= k``: a lower bound on the min–max."""
    lo = max(w_max, float(comp_weight.sum()) / k)
    if len(comp_weight) <= 1 or lo <= 0:
        return lo
    hi = float(comp_weight.max())
    if np.ceil(comp_weight / lo - 1e-9).sum() <= k:
        return lo
    for _ in range(60):  # bisection to ~1e-12 relative
        mid = 0.5 * (lo + hi)
        if np.ceil(comp_weight / mid - 1e-9).sum() <= k:
            hi = mid
        else:
            lo = mid
    return hi


class _State:
    """Labels, member sets and group weights, kept in step."""

    def __init__(self, labels: NDArray[np.int64], w: NDArray[np.float64], k: int) -> None:
        self.labels = labels.copy()
        self.w = w
        self.members: list[set[int]] = [set() for _ in range(k)]
        for i, g in enumerate(self.labels):
            self.members[int(g)].add(i)
        self.gw = np.array([w[list(m)].sum() if m else 0.0 for m in self.members])

    def key(self) -> tuple[float, float]:
        return float(self.gw.max()), float((self.gw**2).sum())

    def move(self, u: int, b: int) -> None:
        a = int(self.labels[u])
        self.members[a].discard(u)
        self.members[b].add(u)
        self.labels[u] = b
        self.gw[a] -= self.w[u]
        self.gw[b] += self.w[u]


def _connected(units: set[int], nbrs: list[list[int]]) -> bool:
    if not units:
        return False
    start = next(iter(units))
    seen = {start}
    stack = [start]
    while stack:
        u = stack.pop()
        for v in nbrs[u]:
            if v in units and v not in seen:
                seen.add(v)
                stack.append(v)
    return len(seen) == len(units)


def grow(
    nbrs: list[list[int]],
    w: NDArray[np.float64],
    comps: NDArray[np.int64],
    kc: list[int],
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Seed ``kc[c]`` groups in component ``c`` far apart, then grow the lightest group first."""
    n = len(w)
    labels = np.full(n, -1, dtype=np.int64)
    seeds: list[int] = []
    for c, m in enumerate(kc):
        units = np.flatnonzero(comps == c)
        first = int(rng.choice(units))
        chosen = [first]
        dist = _hops(nbrs, [first], n)
        for _ in range(m - 1):
            d = np.where(comps == c, dist, -1)
            d[chosen] = -1
            far = np.flatnonzero(d == d.max())
            nxt = int(rng.choice(far))
            chosen.append(nxt)
            dist = np.minimum(dist, _hops(nbrs, [nxt], n))
        seeds += chosen
    gw = np.zeros(len(seeds))
    for g, s in enumerate(seeds):
        labels[s] = g
        gw[g] = w[s]
    frontier: list[set[int]] = [{v for v in nbrs[s] if labels[v] < 0} for s in seeds]
    heap = [(gw[g], g) for g in range(len(seeds))]
    heapq.heapify(heap)
    while heap:
        _, g = heapq.heappop(heap)
        front = {v for v in frontier[g] if labels[v] < 0}
        frontier[g] = front
        if not front:
            continue  # this group is boxed in; the others take the rest
        # the frontier unit most attached to the group (compact shapes), then lowest index
        best = max(front, key=lambda v: (sum(labels[u] == g for u in nbrs[v]), -v))
        labels[best] = g
        gw[g] += w[best]
        front.discard(best)
        front.update(v for v in nbrs[best] if labels[v] < 0)
        heapq.heappush(heap, (gw[g], g))
    return labels


def _hops(nbrs: list[list[int]], sources: Iterable[int], n: int) -> NDArray[np.int64]:
    dist = np.full(n, np.iinfo(np.int64).max // 2, dtype=np.int64)
    frontier = list(sources)
    for s in frontier:
        dist[s] = 0
    d = 0
    while frontier:
        d += 1
        nxt = []
        for u in frontier:
            for v in nbrs[u]:
                if dist[v] > d:
                    dist[v] = d
                    nxt.append(v)
        frontier = nxt
    return dist


def descend(st: _State, nbrs: list[list[int]]) -> None:
    """Move boundary units from heavier to lighter neighbouring groups while it helps.

    A move of ``u`` from ``a`` to ``b`` is taken when ``gw[b] + w[u] < gw[a]`` and
    ``a`` stays connected: the sum of squared group weights strictly decreases and the
    heaviest weight never grows, so the descent ends.  Heaviest groups are served first.
    """
    w = st.w
    improved = True
    while improved:
        improved = False
        for a in np.argsort(-st.gw, kind="stable"):
            a = int(a)
            if len(st.members[a]) < 2:
                continue
            best: tuple[float, int, int] | None = None
            for u in sorted(st.members[a]):
                if w[u] <= 0:
                    continue
                for b in {int(st.labels[v]) for v in nbrs[u]} - {a}:
                    after = st.gw[b] + w[u]
                    score = max(after, st.gw[a] - w[u])
                    if (
                        after < st.gw[a]
                        and (best is None or (score, u, b) < best)
                        and _connected(st.members[a] - {u}, nbrs)
                    ):
                        best = (score, u, b)
            if best is not None:
                st.move(best[1], best[2])
                improved = True
                break


def split_two(
    units: set[int], nbrs: list[list[int]], w: NDArray[np.float64], roots: list[int]
) -> tuple[set[int], set[int]]:
    """Best balanced cut of a connected ``units`` set along a BFS spanning tree from each root."""
    best: tuple[float, set[int]] | None = None
    for r in roots:
        parent = {r: -1}
        order = [r]
        for u in order:
            for v in nbrs[u]:
                if v in units and v not in parent:
                    parent[v] = u
                    order.append(v)
        sub = {u: float(w[u]) for u in order}
        for v in reversed(order[1:]):
            sub[parent[v]] += sub[v]
        total = sub[r]
        for v in order[1:]:
            score = max(sub[v], total - sub[v])
            if best is None or score < best[0]:
                children: dict[int, list[int]] = {}
                for x in order[1:]:
                    children.setdefault(parent[x], []).append(x)
                part = {v}
                stack = [v]
                while stack:
                    x = stack.pop()
                    for c in children.get(x, []):
                        part.add(c)
                        stack.append(c)
                best = (score, part)
    assert best is not None
    return units - best[1], best[1]


def _merge_split(st: _State, nbrs: list[list[int]], rng: np.random.Generator) -> bool:
    """Merge two light adjacent groups and split a heavy one: a large move between basins."""
    k = len(st.members)
    heavy_order = np.argsort(-st.gw, kind="stable")
    splittable = [int(g) for g in heavy_order if len(st.members[int(g)]) >= 2]
    if not splittable:
        return False
    h = splittable[min(int(rng.integers(0, 2)), len(splittable) - 1)]
    pairs: set[tuple[float, int, int]] = set()
    for a in range(k):
        if a == h:
            continue
        for u in st.members[a]:
            for v in nbrs[u]:
                b = int(st.labels[v])
                if b != a and b != h:
                    x, y = min(a, b), max(a, b)
                    pairs.add((float(st.gw[x] + st.gw[y]), x, y))
    if not pairs:
        return False
    ranked = sorted(pairs)[:3]
    _, a, b = ranked[int(rng.integers(0, len(ranked)))]
    for u in list(st.members[b]):
        st.move(u, a)
    units = st.members[h]
    roots = [int(r) for r in rng.choice(sorted(units), size=min(4, len(units)), replace=False)]
    _, part = split_two(units, nbrs, st.w, roots)
    for u in part:
        st.move(u, b)
    return True


def _kick(st: _State, nbrs: list[list[int]], rng: np.random.Generator, moves: int) -> None:
    """A few random boundary moves that keep every group connected and non-empty."""
    n = len(st.labels)
    for _ in range(moves):
        for _try in range(20):
            u = int(rng.integers(0, n))
            a = int(st.labels[u])
            others = sorted({int(st.labels[v]) for v in nbrs[u]} - {a})
            if others and len(st.members[a]) > 1 and _connected(st.members[a] - {u}, nbrs):
                st.move(u, others[int(rng.integers(0, len(others)))])
                break


def search(
    nbrs: list[list[int]],
    w: NDArray[np.float64],
    comps: NDArray[np.int64],
    k: int,
    *,
    rng: np.random.Generator,
    lower_bound: float,
    iterations: int,
    deadline: float | None,
    tick: Callable[[int], object] | None = None,
    pool: set[tuple[int, ...]] | None = None,
) -> NDArray[np.int64]:
    """Iterated local search; returns labels ``0..k-1`` of a contiguous partition.

    When ``pool`` is given, the groups of every visited local optimum within 5 % of the
    best are added to it (as sorted unit tuples), for a final set-partitioning polish.
    ``tick(n)`` is called with the number of iterations done (e.g. a shared progress
    bar's ``update``); all ``iterations`` are counted by the return, even those skipped
    by an early stop, so the caller's bar ends full.
    """
    n_comp = int(comps.max()) + 1
    comp_weight = np.bincount(comps, weights=w, minlength=n_comp).astype(np.float64)
    comp_size = np.bincount(comps, minlength=n_comp).astype(np.int64)
    kc = allocate(comp_weight, comp_size, k)
    st = _State(grow(nbrs, w, comps, kc, rng), w, k)
    descend(st, nbrs)
    best_labels, best_key = st.labels.copy(), st.key()
    done = 0
    for i in range(iterations):
        if best_key[0] <= lower_bound * (1 + 1e-12):
            break
        if deadline is not None and time.monotonic() > deadline:
            log.info("regroup search stopped by the time limit after %d iterations", i)
            break
        if tick is not None:
            tick(1)
            done += 1
        st = _State(best_labels, w, k)
        if i % 3 == 2 or not _merge_split(st, nbrs, rng):
            _kick(st, nbrs, rng, moves=max(2, len(w) // 10))
        descend(st, nbrs)
        if pool is not None and st.gw.max() <= 1.05 * best_key[0]:
            pool.update(tuple(sorted(m)) for m in st.members)
        if st.key() < best_key:
            best_labels, best_key = st.labels.copy(), st.key()
            log.debug("iteration %d: heaviest group %.6g", i, best_key[0])
    if tick is not None and done < iterations:
        tick(iterations - done)
    return best_labels
