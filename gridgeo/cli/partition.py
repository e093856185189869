"""``gridgeo partition`` and ``gridgeo check``: make grids, check grids (thin over the library)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def _read(path: Path, layer: str) -> Any:
    import geopandas as gpd
    import pyogrio

    names = [str(r[0]) for r in pyogrio.list_layers(path)]
    if layer not in names:
        raise click.BadParameter(f"{path} has no layer {layer!r}; it has {names}")
    return gpd.read_file(path, layer=layer, engine="pyogrio")


def _rules(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"{path} is not valid JSON: {err}", param_hint="--rules") from err
    if not isinstance(rules, dict):
        raise click.BadParameter(
            'rules must be an object like {"urban": {"max_households": 500}}', param_hint="--rules"
        )
    return rules


_SRC = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.command("partition")
@click.argument("source", type=_SRC)
@click.option(
    "--communities", default="communities", show_default=True, help="Layer of communities."
)
@click.option("--units", default="buildings", show_default=True, help="Layer of buildings/blocks.")
@click.option("--barriers", default=None, help="Layer of street/river lines to follow.")
@click.option("--exclusive", default=None, help="Layer of exclusive areas (schools, hospitals…).")
@click.option("--max-households", type=float, default=500, show_default=True)
@click.option("--max-population", type=float, default=None)
@click.option(
    "--rules",
    "rules_path",
    type=_SRC,
    default=None,
    help='JSON ceilings per community type, e.g. {"rural": {"max_households": 300}}.',
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--units-are",
    type=click.Choice(["auto", "buildings", "blocks"]),
    default="auto",
    show_default=True,
    help="buildings: tessellate around them; blocks: grids are unions of whole units; "
    "auto: blocks when the units are polygons covering half the land or more.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Threads (default: CPUs)")
@click.option("-o", "--out", "out", type=_OUT, required=True, help="Output GeoPackage.")
@click.option("--layer", default="grids", show_default=True, help="Layer name to write.")
def partition_command(
    source: Path,
    communities: str,
    units: str,
    barriers: str | None,
    exclusive: str | None,
    max_households: float,
    max_population: float | None,
    rules_path: Path | None,
    seed: int,
    units_are: str,
    workers: int | None,
    out: Path,
    layer: str,
) -> None:
    """Cut each community of SOURCE into grids under household/population ceilings."""
    from gridgeo.errors import GridGeoError
    from gridgeo.partition import check_grids, make_grids

    within = _read(source, communities)
    t0 = time.perf_counter()
    try:
        grids = make_grids(
            _read(source, units),
            within=within,
            max_households=max_households,
            max_population=max_population,
            rules=_rules(rules_path),
            barriers=_read(source, barriers) if barriers else None,
            exclusive=_read(source, exclusive) if exclusive else None,
            seed=seed,
            progress=True,
            workers=workers,
            tessellate={"auto": None, "buildings": True, "blocks": False}[units_are],
        )
    except GridGeoError as err:
        raise click.ClickException(f"{type(err).__name__}: {err}") from err
    took = time.perf_counter() - t0
    grids.to_file(out, layer=layer, driver="GPKG", engine="pyogrio")
    lb = grids.attrs["lower_bound"]
    click.echo(
        f"{len(grids)} grids in {within.shape[0]} communities in {took:.1f} s "
        f"(lower bound {lb}, {len(grids) / max(lb, 1):.2f}×); "
        f"households per grid max {grids['households'].max():g}, "
        f"{int(grids['oversize'].sum())} oversize single units; "
        f"mean Polsby–Popper {grids['compactness'].mean():.2f}"
    )
    click.echo(f"wrote layer {layer!r} to {out}")
    report = check_grids(
        grids,
        within=within,
        rules=_rules(rules_path),
        max_households=max_households,
        max_population=max_population,
    )
    click.echo(repr(report))


@click.command("check")
@click.argument("source", type=_SRC)
@click.option("--grids", "grids_layer", default="grids", show_default=True)
@click.option(
    "--within",
    "within_layer",
    default="communities",
    show_default=True,
    help="Layer of communities ('' to skip coverage and nesting).",
)
@click.option("--units", "units_layer", default=None, help="Layer of buildings to count.")
@click.option("--zones", "zones_layer", default=None, help="Department zones to check alignment.")
@click.option("--max-households", type=float, default=500, show_default=True)
@click.option("--max-population", type=float, default=None)
@click.option("--rules", "rules_path", type=_SRC, default=None, help="JSON ceilings per type.")
@click.option(
    "-o",
    "--out",
    "out",
    type=_OUT,
    default=None,
    help="Write the problems to this GeoPackage (open it in QGIS).",
)
def check_command(
    source: Path,
    grids_layer: str,
    within_layer: str,
    units_layer: str | None,
    zones_layer: str | None,
    max_households: float,
    max_population: float | None,
    rules_path: Path | None,
    out: Path | None,
) -> None:
    """Check the grids of SOURCE; exit 1 when a rule is broken."""
    from gridgeo.partition import check_alignment, check_grids

    grids = _read(source, grids_layer)
    report = check_grids(
        grids,
        within=_read(source, within_layer) if within_layer else None,
        units=_read(source, units_layer) if units_layer else None,
        rules=_rules(rules_path),
        max_households=max_households,
        max_population=max_population,
    )
    click.echo(report.summary().to_string(index=False))
    for row in report.problems.head(20).itertuples():
        click.echo(f"  {row.problem:<18} {row.code}: {row.detail}")
    if len(report.problems) > 20:
        click.echo(f"  … and {len(report.problems) - 20} more")
    ok = report.ok
    if zones_layer:
        align = check_alignment(_read(source, zones_layer), grids)
        click.echo(f"department zones: {len(align)} alignment problems")
        for row in align.head(20).itertuples():
            click.echo(
                f"  {row.department} {row.problem} zone {row.zone} grid {row.grid} "
                f"({row.share:.0%} of the grid)"
            )
        ok = ok and align.empty
        if out is not None and len(align):
            align.to_file(out, layer="alignment", driver="GPKG", engine="pyogrio")
    if out is not None:
        report.problems.to_file(out, layer="problems", driver="GPKG", engine="pyogrio")
        click.echo(f"wrote problems to {out}")
    click.echo("ok" if ok else "NOT ok")
    if not ok:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    """Add the commands to the ``gridgeo`` group."""
    group.add_command(partition_command)
    group.add_command(check_command)
