"""``gridgeo partition`` and ``gridgeo check``: make grids, check grids (thin over the library)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from gridgeo.cli._files import OutPath, UserError, read_layer, resolve_layer, write_frames

__all__ = ["register"]


def _load_rules(
    ctx: click.Context, param: click.Parameter, path: Path | None
) -> dict[str, Any] | None:
    """Read ``--rules`` once, while the command line is parsed.

    The file may be a pipe (``--rules <(echo '{…}')``), readable only once, so it is
    read here and never again; a bad file stops the command before any work.
    """
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8-sig") as f:  # open(): a /dev/fd pipe has no size
            text = f.read()
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}", ctx, param) from err
    except UnicodeDecodeError as err:
        raise click.BadParameter(f"{path} is not UTF-8 text: {err}", ctx, param) from err
    try:
        rules = json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"{path} is not valid JSON: {err}", ctx, param) from err
    example = '{"urban": {"max_households": 500}}'
    if not isinstance(rules, dict):
        raise click.BadParameter(f"rules must be an object like {example}", ctx, param)
    bad = [kind for kind, rule in rules.items() if not isinstance(rule, dict)]
    if bad:
        raise click.BadParameter(
            f"the rules for {bad} are not objects; write e.g. {example}", ctx, param
        )
    return rules


_SRC = click.Path(exists=True, dir_okay=False, path_type=Path)
# a pipe from process substitution (/dev/fd/63) passes: it exists and is readable,
# and _load_rules reads it once
_RULES = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def _select(
    within: Any, towns: tuple[str, ...], codes: tuple[str, ...], layer: str
) -> tuple[Any, bool]:
    """The communities of ``towns`` and the communities ``codes`` (all when both are empty)."""
    if not towns and not codes:
        return within, False
    keep = within["code"].astype(str).isin(codes) if "code" in within else None
    if keep is None:
        raise UserError(f"layer {layer!r} has no column 'code'; columns are {list(within.columns)}")
    if towns:
        if "town_code" not in within:
            columns = list(within.columns)
            raise UserError(f"--town needs a column 'town_code' in {layer!r}; it has {columns}")
        valid = sorted(set(within["town_code"].astype(str)))
        unknown = sorted(set(towns) - set(valid))
        if unknown:
            raise UserError(f"unknown town code(s) {unknown}; the towns are {valid}")
        keep |= within["town_code"].astype(str).isin(towns)
    unknown = sorted(set(codes) - set(within["code"].astype(str)))
    if unknown:
        valid = sorted(within["code"].astype(str))
        raise UserError(f"unknown community code(s) {unknown}; the communities are {valid}")
    return within[keep.to_numpy()], True


def _inside(frame: Any, communities: Any, *, area: bool) -> Any:
    """Rows of ``frame`` that belong to ``communities`` as :func:`make_grids` assigns them.

    Units by their representative point covered by a community; exclusive areas
    (``area=True``) by a positive area shared with one. In the communities' metric CRS.
    """
    import numpy as np
    import shapely

    from gridgeo.crs import metric_crs

    crs = metric_crs(communities)
    comm = shapely.union_all(communities.to_crs(crs).geometry.to_numpy())
    geoms = frame.to_crs(crs).geometry.to_numpy()
    if area:
        keep = shapely.area(shapely.intersection(geoms, comm)) > 0
    else:
        keep = shapely.covered_by(shapely.point_on_surface(geoms), comm)
    return frame[np.asarray(keep, dtype=bool)]


@click.command("partition")
@click.argument("source", type=_SRC)
@click.option(
    "--communities", default="communities", show_default=True, help="Layer of communities."
)
@click.option(
    "--town",
    "towns",
    multiple=True,
    help="Only the communities of this town code (repeat for more), e.g. 360722001.",
)
@click.option(
    "--community",
    "community_codes",
    multiple=True,
    help="Only this community code (repeat for more); adds to --town.",
)
@click.option("--units", default="buildings", show_default=True, help="Layer of buildings/blocks.")
@click.option("--barriers", default=None, help="Layer of street/river lines to follow.")
@click.option("--exclusive", default=None, help="Layer of exclusive areas (schools, hospitals…).")
@click.option("--max-households", type=float, default=500, show_default=True)
@click.option("--max-population", type=float, default=None)
@click.option(
    "--rules",
    type=_RULES,
    default=None,
    callback=_load_rules,
    help='JSON ceilings per community type, e.g. {"rural": {"max_households": 300}}; '
    "a file or a pipe such as <(echo '{…}').",
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
@click.option(
    "-o",
    "--out",
    "out",
    type=OutPath(),
    default=None,
    help="Output: .gpkg, .geojson, .shp, .parquet or .csv (UTF-8 with BOM, geometry as WKT); "
    "optional with --save-plan.",
)
@click.option("--layer", default="grids", show_default=True, help="Layer name (GeoPackage).")
@click.option(
    "--save-plan",
    "save_plan",
    default=None,
    metavar="PLAN_ID",
    help="Also store the grids in SOURCE as the draft base plan PLAN_ID "
    "(then: gridgeo plan adopt SOURCE PLAN_ID --from DATE). With --town/--community, "
    "the other communities keep the grids of the previous plan.",
)
@click.option(
    "--previous",
    default=None,
    metavar="PLAN_ID",
    help="Base plan of SOURCE whose unchanged grids keep their codes (default with "
    "--save-plan: the base plan in force today); no code any base plan used is reused.",
)
@click.option("--plan-name", default="", help="Name of the plan saved by --save-plan.")
def partition_command(
    source: Path,
    communities: str,
    towns: tuple[str, ...],
    community_codes: tuple[str, ...],
    units: str,
    barriers: str | None,
    exclusive: str | None,
    max_households: float,
    max_population: float | None,
    rules: dict[str, Any] | None,
    seed: int,
    units_are: str,
    workers: int | None,
    out: Path | None,
    layer: str,
    save_plan: str | None,
    previous: str | None,
    plan_name: str,
) -> None:
    """Cut each community of SOURCE into grids under household/population ceilings.

    Example: gridgeo partition demo.gpkg --town 360722001 --barriers streets -o grids.gpkg

    A new version of the grids, with the codes of unchanged grids kept:
    gridgeo partition demo.gpkg --save-plan base-2026
    """
    from gridgeo.partition import check_grids, make_grids

    if out is None and save_plan is None:
        raise UserError("give -o/--out, --save-plan PLAN_ID, or both")
    past = None
    if save_plan is not None or previous is not None:
        from gridgeo.cli.plan import previous_plans

        past = previous_plans(source, "base", previous) or None
    within, selected = _select(
        read_layer(source, communities), towns, community_codes, communities
    )
    unit_frame = read_layer(source, units)
    exclusive_frame = read_layer(source, exclusive) if exclusive else None
    if selected:
        unit_frame = _inside(unit_frame, within, area=False)
        if exclusive_frame is not None:
            exclusive_frame = _inside(exclusive_frame, within, area=True)
    t0 = time.perf_counter()
    grids = make_grids(
        unit_frame,
        within=within,
        max_households=max_households,
        max_population=max_population,
        rules=rules,
        barriers=read_layer(source, barriers) if barriers else None,
        exclusive=exclusive_frame,
        seed=seed,
        progress=True,
        workers=workers,
        tessellate={"auto": None, "buildings": True, "blocks": False}[units_are],
        previous=past,
    )
    took = time.perf_counter() - t0
    written = write_frames({layer: grids}, out) if out is not None else []
    lb = grids.attrs["lower_bound"]
    click.echo(
        f"{len(grids)} grids in {within.shape[0]} communities in {took:.1f} s "
        f"(lower bound {lb}, {len(grids) / max(lb, 1):.2f}×); "
        f"households per grid max {grids['households'].max():g}, "
        f"{int(grids['oversize'].sum())} oversize single units; "
        f"mean Polsby–Popper {grids['compactness'].mean():.2f}"
    )
    if past:
        kept = grids.attrs.get("kept_codes", ())
        click.echo(f"{len(kept)} of {len(grids)} grids keep their code from {past[-1].plan_id!r}")
    if written:
        click.echo(f"wrote {', '.join(map(str, written))}")
    report = check_grids(
        grids,
        within=within,
        rules=rules,
        max_households=max_households,
        max_population=max_population,
    )
    click.echo(repr(report))
    if save_plan is not None:
        from gridgeo.cli.plan import save_draft

        save_draft(source, _draft(grids, within, selected, past, save_plan, plan_name))


def _draft(
    grids: Any, within: Any, selected: bool, past: list[Any] | None, plan_id: str, name: str
) -> Any:
    """The base plan of ``grids``; a selection is completed with the previous plan's grids."""
    from gridgeo.partition import Plan

    if not (selected and past):
        if selected:
            click.echo("note: no previous base plan; the plan holds the selected communities only")
        return Plan.from_grids(grids, plan_id=plan_id, name=name)
    import geopandas as gpd
    import pandas as pd

    from gridgeo.partition.plan import used_codes

    prev = past[-1].grids.to_crs(grids.crs)
    others = prev[~prev["community_code"].astype(str).isin(set(within["code"].astype(str)))]
    both = pd.concat([others, grids], ignore_index=True).sort_values("code", ignore_index=True)
    both = gpd.GeoDataFrame(both, geometry=grids.geometry.name, crs=grids.crs)
    retired = used_codes(past) - set(both["code"].astype(str))
    return Plan.from_grids(both, plan_id=plan_id, name=name, retired_codes=retired)


_REF = (
    "a layer of SOURCE, another file (its layer of the default name) or FILE:LAYER, "
    "e.g. workspace.gpkg or workspace.gpkg:communities"
)


@click.command("check")
@click.argument("source", type=_SRC)
@click.option("--grids", "grids_layer", default="grids", show_default=True, help=f"Grids: {_REF}.")
@click.option(
    "--communities",
    "--within",
    "within_layer",
    default="communities",
    show_default=True,
    help=f"Communities ('' to skip coverage and nesting): {_REF}.",
)
@click.option("--units", "units_layer", default=None, help=f"Buildings to count: {_REF}.")
@click.option("--zones", "zones_layer", default=None, help=f"Department zones to align: {_REF}.")
@click.option("--max-households", type=float, default=500, show_default=True)
@click.option("--max-population", type=float, default=None)
@click.option(
    "--rules",
    type=_RULES,
    default=None,
    callback=_load_rules,
    help="JSON ceilings per type (a file or a pipe).",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=OutPath(),
    default=None,
    help="Write the problems here (e.g. problems.gpkg, to open in QGIS).",
)
def check_command(
    source: Path,
    grids_layer: str,
    within_layer: str,
    units_layer: str | None,
    zones_layer: str | None,
    max_households: float,
    max_population: float | None,
    rules: dict[str, Any] | None,
    out: Path | None,
) -> None:
    """Check the grids of SOURCE; exit 1 when a rule is broken.

    Example, against the workspace the grids were made from:
    gridgeo check grids.gpkg --communities demo.gpkg --units demo.gpkg
    """
    from gridgeo.partition import check_alignment, check_grids

    def layer(ref: str, default: str) -> Any:
        return read_layer(*resolve_layer(source, ref, default))

    grids = layer(grids_layer, "grids")
    report = check_grids(
        grids,
        within=layer(within_layer, "communities") if within_layer else None,
        units=layer(units_layer, "buildings") if units_layer else None,
        rules=rules,
        max_households=max_households,
        max_population=max_population,
    )
    click.echo(report.summary().to_string(index=False))
    for row in report.problems.head(20).itertuples():
        click.echo(f"  {row.problem:<18} {row.code}: {row.detail}")
    if len(report.problems) > 20:
        click.echo(f"  … and {len(report.problems) - 20} more")
    ok = report.ok
    frames = {"problems": report.problems}
    if zones_layer:
        align = check_alignment(layer(zones_layer, "zones"), grids)
        click.echo(f"department zones: {len(align)} alignment problems")
        for row in align.head(20).itertuples():
            click.echo(
                f"  {row.department} {row.problem} zone {row.zone} grid {row.grid} "
                f"({row.share:.0%} of the grid)"
            )
        ok = ok and align.empty
        if len(align):
            frames["alignment"] = align
    if out is not None:
        written = write_frames(frames, out)
        click.echo(f"wrote problems to {', '.join(map(str, written))}")
    click.echo("ok" if ok else "NOT ok")
    if not ok:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    """Add the commands to the ``gridgeo`` group."""
    group.add_command(partition_command)
    group.add_command(check_command)
