"""Stable codes on a county-sized re-run: ``make_grids(..., previous=)`` (issue 15).

Target (issue 15): re-running ``make_grids`` on the 350k-household county with one
community's buildings changed keeps 100 % of the other communities' codes and geometry.

Data: the demo county at :data:`gridgeo.datasets.SCALE_350K` (≈350k households in
building points, streets as barriers, exclusive areas, urban/rural rules as in
``benchmarks/partition.py``). Every change is drawn from a seeded generator.

* **first run**: ``make_grids`` once, timed.
* **one community changed**: one urban community (drawn) gets +10 % households (and
  people) in 3 buildings, 3 new buildings at random points inside it, and loses one
  building; then ``make_grids(..., previous=first)``, timed. The peer, in the same run
  on the same data: the same call without ``previous`` (codes numbered from 001, so a
  code is kept only by chance).
* **communities shuffled, one removed**: the communities' rows in a seeded random order,
  one other community dropped with its buildings and exclusive areas; ``previous=first``.
* **buildings shuffled**: the buildings' rows in a seeded random order; ``previous=first``.

A grid of another community counts as kept when the new run has a grid with its code
whose geometry is the same: exactly (``shapely.equals_exact`` with tolerance 0, in the
output CRS) or with IoU ≥ 0.99 (in the metric CRS make_grids works in), both reported.

Usage: ``python benchmarks/plans.py [--scale 12] [--seed 0]`` (writes
``benchmarks/results/plans.md``; ``python benchmarks/collect.py`` joins it into
BENCHMARKS.md). ``--quick`` runs the scale-1 county.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import gridgeo
from gridgeo import datasets
from gridgeo.crs import metric_crs

log = logging.getLogger("bench.plans")
RULES = {
    "urban": {"max_households": 500},
    "rural": {"max_households": 300, "max_population": 1000},
}
LOAD_AT_START = os.getloadavg()


@dataclass
class Took:
    """Wall and CPU seconds of one call (CPU of the whole process: all its threads)."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.1f} ({self.cpu:.1f})"


def run(county: dict[str, gpd.GeoDataFrame], **kw: Any) -> tuple[gpd.GeoDataFrame, Took]:
    """make_grids on a county (its communities, streets and exclusive areas unless given)."""
    args = {
        "within": county["communities"],
        "rules": RULES,
        "barriers": county["streets"],
        "exclusive": county["exclusive"],
        "seed": 0,
    }
    args.update(kw)
    units = args.pop("units", county["buildings"])
    t, c = time.perf_counter(), time.process_time()
    grids = gridgeo.make_grids(units, **args)
    return grids, Took(time.perf_counter() - t, time.process_time() - c)


def without(county: dict[str, gpd.GeoDataFrame], code: str) -> dict[str, gpd.GeoDataFrame]:
    """The county without one community, its buildings and its exclusive areas."""
    return {
        "communities": county["communities"][county["communities"]["code"] != code],
        "buildings": county["buildings"][county["buildings"]["community_code"] != code],
        "exclusive": county["exclusive"][county["exclusive"]["community_code"] != code],
        "streets": county["streets"],
    }


def onto_zone_border(
    county: dict[str, gpd.GeoDataFrame],
) -> tuple[dict[str, gpd.GeoDataFrame], str, float]:
    """The county moved west–east so that its centre lies just west of the nearest border of
    the 3° Gauss–Krüger zones, by half of what dropping one community moves it east; and that
    community (dropping it moves the centre across the border), and the border's longitude."""
    comm = county["communities"]
    x0, _, x1, _ = comm.total_bounds
    best, gain = "", 0.0
    for code in comm["code"]:
        r = comm.loc[comm["code"] != code].total_bounds
        g = (r[0] + r[2]) / 2 - (x0 + x1) / 2
        if g > gain:
            best, gain = str(code), float(g)
    centre = (x0 + x1) / 2
    border = 3 * round(centre / 3) + (1.5 if centre >= 3 * round(centre / 3) else -1.5)
    dx = border - gain / 2 - centre
    moved = {}
    for name in ("communities", "buildings", "exclusive", "streets"):
        layer = county[name].copy()
        layer.geometry = layer.geometry.translate(xoff=dx)
        moved[name] = layer
    return moved, best, border


def change_community(
    buildings: gpd.GeoDataFrame, community: gpd.GeoSeries, code: str, rng: np.random.Generator
) -> tuple[gpd.GeoDataFrame, str]:
    """+10 % households in 3 buildings, 3 new buildings, one removed, all in ``code``."""
    b = buildings.copy()
    mine = np.flatnonzero((b["community_code"] == code).to_numpy())
    picks = rng.choice(mine, size=4, replace=False)
    grow, drop = picks[:3], picks[3]
    h = b["households"].to_numpy().copy()
    p = b["population"].to_numpy().copy()
    new_h = np.maximum(h[grow] + 1, np.ceil(h[grow] * 1.1)).astype(h.dtype)
    p[grow] = np.rint(p[grow] * new_h / np.maximum(h[grow], 1)).astype(p.dtype)
    h[grow] = new_h
    b["households"], b["population"] = h, p
    # new buildings at random points strictly inside the community
    geom = community.iloc[0]
    x0, y0, x1, y1 = geom.bounds
    pts: list[shapely.Point] = []
    while len(pts) < 3:
        pt = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if shapely.contains_properly(geom, pt):
            pts.append(pt)
    hh = rng.integers(10, 60, size=3)
    new = gpd.GeoDataFrame(
        {
            "id": [f"N{k:06d}" for k in range(1, 4)],
            "households": hh.astype(h.dtype),
            "population": (hh * 3).astype(p.dtype),
            "community_code": code,
            "kind": "house",
            "grid_code": None,
        },
        geometry=pts,
        crs=b.crs,
    )
    b = pd.concat([b.drop(index=b.index[drop]), new], ignore_index=True)
    what = (
        f"+10 % households in 3 buildings ({', '.join(buildings['id'].iloc[grow])}), "
        f"3 new buildings ({int(hh.sum())} households), 1 removed ({buildings['id'].iloc[drop]})"
    )
    return gpd.GeoDataFrame(b, crs=buildings.crs), what


@dataclass
class Kept:
    """How the grids of a set of communities came through a re-run."""

    before: int  # grids of those communities in the first run
    after: int  # and in the re-run
    code: int  # first-run codes present again
    exact: int  # ... with exactly the same geometry
    iou: int  # ... with IoU ≥ 0.99
    min_iou: float  # lowest IoU among the codes present again (1.0 when none)

    def share(self, n: int) -> str:
        return f"{n:,} / {self.before:,} ({100 * n / max(self.before, 1):.2f} %)"


def kept(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, codes: set[str], crs: Any) -> Kept:
    """Grids of communities ``codes`` in ``old`` that ``new`` holds under the same code."""
    o = old[old["community_code"].isin(codes)].set_index("code")
    n = new[new["community_code"].isin(codes)].set_index("code")
    common = o.index.intersection(n.index)
    a = o.geometry.loc[common].to_numpy()
    b = n.geometry.loc[common].to_numpy()
    exact = shapely.equals_exact(a, b, tolerance=0.0)
    am = o.geometry.loc[common].to_crs(crs).to_numpy()
    bm = n.geometry.loc[common].to_crs(crs).to_numpy()
    inter = shapely.area(shapely.intersection(am, bm))
    union = shapely.area(am) + shapely.area(bm) - inter
    iou = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    return Kept(
        before=len(o),
        after=len(n),
        code=len(common),
        exact=int(exact.sum()),
        iou=int((iou >= 0.99).sum()),
        min_iou=float(iou.min()) if len(iou) else 1.0,
    )


def unit_share(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, ids_old, ids_new, keep) -> str:
    """Share of buildings (of communities kept) that lie in a grid of the same code."""
    a = pd.Series(old.attrs["unit_grid"], index=ids_old)
    b = pd.Series(new.attrs["unit_grid"], index=ids_new)
    ids = a.index[keep(a)].intersection(b.index)
    same = int((a.loc[ids].astype(str) == b.loc[ids].astype(str)).sum())
    return f"{same:,} / {len(ids):,}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=datasets.SCALE_350K)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the scale-1 county")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    scale = 1.0 if args.quick else args.scale
    rng = np.random.default_rng(args.seed)

    t = time.perf_counter()
    county = datasets.demo_county(seed=args.seed, scale=scale, n_incidents=0)
    log.info("county ×%g built in %.1f s", scale, time.perf_counter() - t)
    comm, b = county["communities"], county["buildings"]
    crs = metric_crs(comm)
    all_codes = set(comm["code"].astype(str))

    first, t_first = run(county)
    log.info("first run: %d grids in %s s", len(first), t_first)

    # -- scenario 1: one community's buildings changed ------------------------------------
    n_bld = b.groupby("community_code").size()
    urban = comm.loc[comm["type"] == "urban", "code"]
    candidates = sorted(c for c in urban if n_bld.get(c, 0) >= 20)
    code = str(rng.choice(candidates))
    changed_b, what = change_community(b, comm.loc[comm["code"] == code].geometry, code, rng)
    others = all_codes - {code}
    second, t_second = run(county, units=changed_b, previous=first)
    fresh, t_fresh = run(county, units=changed_b)
    log.info("re-run: %s s with previous, %s s without", t_second, t_fresh)
    k_prev = kept(first, second, others, crs)
    k_fresh = kept(first, fresh, others, crs)
    in_first = set(first.loc[first["community_code"] == code, "code"])
    c_fresh = kept(first, fresh, {code}, crs)
    used = set(first["code"])

    def codes_of(g: gpd.GeoDataFrame) -> set[str]:
        return set(g.loc[g["community_code"] == code, "code"])

    new_prev = codes_of(second) - set(second.attrs.get("kept_codes", []))
    reused_prev = new_prev & used
    # without previous: codes that come back on a different grid (the hazard stable codes
    # remove): same code, geometry IoU < 0.99
    reused_fresh = c_fresh.code - c_fresh.iou
    top_before = max(int(c[-3:]) for c in in_first)
    other_units = unit_share(
        first,
        second,
        b["id"].to_numpy(),
        changed_b["id"].to_numpy(),
        lambda s: ~s.str.startswith(code).fillna(False).to_numpy(),
    )

    # -- scenario 2: communities shuffled, one removed -------------------------------------
    drop = str(rng.choice(sorted(others)))
    order = rng.permutation(len(comm))
    comm2 = comm.iloc[order]
    comm2 = comm2[comm2["code"] != drop]
    county2 = {**without(county, drop), "communities": comm2}
    third, t_third = run(county2, previous=first)
    k_shuf = kept(first, third, all_codes - {drop}, crs)
    retired = set(third.attrs["retired_codes"])
    dropped_codes = set(first.loc[first["community_code"] == drop, "code"])

    # -- scenario 3: buildings' rows shuffled ----------------------------------------------
    b3 = b.iloc[rng.permutation(len(b))]
    fourth, t_fourth = run(county, units=b3, previous=first)
    k_bshuf = kept(first, fourth, all_codes, crs)

    # -- scenario 4: the county moved onto a zone border, one community removed -------------
    moved, zdrop, border = onto_zone_border(county)
    mcomm = moved["communities"]
    crs_all, crs_less = metric_crs(mcomm), metric_crs(mcomm[mcomm["code"] != zdrop])
    zfirst, t_zfirst = run(moved)
    zsecond, t_zsecond = run(without(moved, zdrop), previous=zfirst)
    zfresh, t_zfresh = run(without(moved, zdrop))
    k_z = kept(zfirst, zsecond, all_codes - {zdrop}, crs_all)
    k_zfresh = kept(zfirst, zfresh, all_codes - {zdrop}, crs_all)
    load = os.getloadavg()
    log.info("done; load %.1f", load[0])

    hh = int(b["households"].sum())
    nb = int((first["community_code"] == code).sum())
    lines = [
        "## Plans: stable codes on a re-run (issue 15, `benchmarks/plans.py`)",
        "",
        f"{dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores; "
        + ", ".join(f"{p} {version(p)}" for p in ("gridgeo", "geopandas", "shapely", "numpy"))
        + f"; load average (1 min) {LOAD_AT_START[0]:.1f} at the start, {load[0]:.1f} at "
        "the end (wall times on a shared machine grow with its load).",
        "",
        f"Demo county ×{scale:g} (seed {args.seed}): {len(b):,} buildings, {len(comm)} "
        f"communities, {hh:,} households; `make_grids` with streets, exclusive areas and "
        f"urban/rural rules, seed 0: **{len(first):,} grids** "
        f"({int((first['kind'] == 'exclusive').sum())} exclusive) in {t_first} s "
        "(wall (CPU); this first call also loads numba's kernels once). "
        f"Community changed: {code} ({nb} grids): {what}.",
        "",
        "| re-run | time s, wall (CPU) | other communities' grids | same code | same code + exact "
        "geometry | same code + IoU ≥ 0.99 | lowest IoU | 100 % |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def row(name: str, secs: Took, k: Kept, n_comm: int) -> str:
        ok = "yes" if k.exact == k.before == k.after else "no"
        return (
            f"| {name} | {secs} | {k.before:,} in {n_comm} → {k.after:,} | "
            f"{k.share(k.code)} | {k.share(k.exact)} | {k.share(k.iou)} | {k.min_iou:.4f} | {ok} |"
        )

    lines += [
        row(f"**{code} changed, `previous=first`**", t_second, k_prev, len(others)),
        row(f"peer: {code} changed, no `previous`", t_fresh, k_fresh, len(others)),
        row(
            f"communities shuffled, {drop} removed, `previous=first`",
            t_third,
            k_shuf,
            len(all_codes) - 1,
        ),
        row("buildings' rows shuffled, `previous=first`", t_fourth, k_bshuf, len(all_codes)),
        row(
            f"county on the {border:g}°E zone border, {zdrop} removed, `previous=first`",
            t_zsecond,
            k_z,
            len(all_codes) - 1,
        ),
        row(
            f"peer: county on the zone border, {zdrop} removed, no `previous`",
            t_zfresh,
            k_zfresh,
            len(all_codes) - 1,
        ),
        "",
        f"- Changed community {code}, `previous=first`: {nb} grids before, "
        f"{len(codes_of(second))} after; {len(codes_of(second)) - len(new_prev)} codes kept "
        f"(same grid: IoU ≥ 0.99), {len(new_prev)} new codes "
        f"({', '.join(sorted(c[-3:] for c in new_prev)) or 'none'}; the serials before ran to "
        f"{top_before:03d}); new codes that reuse an earlier code: "
        f"**{len(reused_prev)}**.",
        f"- Peer (no `previous`), same community: {c_fresh.code} codes of the first run come "
        f"back, {c_fresh.iou} of them on the same grid (IoU ≥ 0.99) and **{reused_fresh} on a "
        "different grid** (a code reused for another area: what stable codes prevent).",
        f"- Buildings of the other communities in a grid of the same code after the change: "
        f"{other_units}.",
        f"- Communities shuffled, {drop} removed: its {len(dropped_codes)} codes are all in "
        f"`retired_codes`: {dropped_codes <= retired}; no grid of {drop} left: "
        f"{not (third['community_code'] == drop).any()}.",
        "- County on the zone border: the county moved along the parallel so "
        f"that its centre lies just west of {border:g}°E, where removing {zdrop} moves it "
        f"east across: the communities alone choose {crs_all.to_string()}, without "
        f"{zdrop} {crs_less.to_string()}. First run there: {len(zfirst):,} grids in "
        f"{t_zfirst} s. With `previous=`, make_grids chooses the metric CRS for the "
        "communities and the previous grids together (the first run's CRS); the peer "
        "without `previous` works in the CRS of the remaining communities, as `previous=` "
        "did before that fix, and redraws the other communities' grids.",
        "- Target (issue 15): 100 % of the other communities' codes and geometry kept.",
    ]
    out = Path(__file__).parent / "results" / "plans.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote %s", out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
