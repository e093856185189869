"""``gridgeo regroup``: merge grids into k contiguous groups of balanced workload."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from gridgeo.cli._files import OutPath, UserError, layer_names, read_layer, write_frames

__all__ = ["parse_weight", "register"]


def parse_weight(text: str) -> str | dict[str, float]:
    """Parse ``--weight``: a column name, or ``col=coef,col=coef`` for a composite workload.

    Examples
    --------
    >>> parse_weight("households")
    'households'
    >>> parse_weight("households=1,incidents=2")
    {'households': 1.0, 'incidents': 2.0}
    """
    if "=" not in text:
        return text.strip()
    spec: dict[str, float] = {}
    for part in text.split(","):
        name, _, coef = part.partition("=")
        try:
            spec[name.strip()] = float(coef)
        except ValueError as err:
            raise click.BadParameter(
                f"{part!r} is not column=number; e.g. households=1,incidents=2",
                param_hint="--weight",
            ) from err
    return spec


def _count_points(grids: Any, points: Any, key: str) -> Any:
    """Points per grid (a point on a shared edge counts once), aligned with ``grids``."""
    from gridgeo.assign import Locator

    located = Locator({"grid": grids}, key=key).locate(points)["grid"]
    counts = located.value_counts()
    return grids[key].astype(str).map(counts).fillna(0).astype("int64")


def _point_weights(
    file: Path, grids: Any, spec: str | dict[str, float], key: str
) -> tuple[Any, list[str]]:
    """Add a count column for each weight named after a point layer of FILE, not a column.

    ``--weight households=1,incidents=2`` counts the layer ``incidents`` per grid.
    """
    names = [spec] if isinstance(spec, str) else list(spec)
    missing = [n for n in names if n not in grids.columns and n != "area_km2"]
    if not missing:
        return grids, []
    layers = layer_names(file)
    unknown = [n for n in missing if n not in layers]
    if unknown:
        columns = [c for c in grids.columns if c != grids.geometry.name]
        raise UserError(
            f"weight {unknown} is neither a column of the grids {columns} nor a point layer "
            f"of {file} {layers} (the special name 'area_km2' is computed)"
        )
    grids = grids.copy()
    for name in missing:
        points = read_layer(file, name)
        kinds = set(points.geom_type.dropna())
        if not kinds <= {"Point", "MultiPoint"}:
            raise UserError(f"layer {name!r} of {file} must hold points to count; it has {kinds}")
        grids[name] = _count_points(grids, points, key)
    return grids, missing


@click.command("regroup")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", "k", type=int, required=True, help="Number of groups.")
@click.option("--layer", default="grids", show_default=True, help="Layer of grids in FILE.")
@click.option(
    "--weight",
    default="households",
    show_default=True,
    help="Workload column, or col=coef,… (e.g. households=1,incidents=2,area_km2=50). "
    "A name that is a point layer of FILE (incidents) counts its points per grid.",
)
@click.option("--within", default=None, help="Column groups never cross (e.g. community_code).")
@click.option("--key", default="code", show_default=True, help="Column of unique grid codes.")
@click.option("--time-limit", type=float, default=None, help="Seconds for the search.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "-o",
    "--out",
    "out",
    type=OutPath(),
    default=None,
    help="Output: a .gpkg gets layers 'groups' and 'assignment' (the grids with their "
    "group); .geojson, .shp, .parquet or .csv get the groups in the file and the "
    "assignment beside it (NAME-assignment.EXT). Optional with --save-plan.",
)
@click.option(
    "--save-plan",
    "save_plan",
    default=None,
    metavar="PLAN_ID",
    help="Also store the groups in FILE as the draft business plan PLAN_ID "
    "(then: gridgeo plan adopt FILE PLAN_ID --from DATE).",
)
@click.option(
    "--previous",
    default=None,
    metavar="PLAN_ID",
    help="Business plan of FILE whose unchanged groups keep their codes (default with "
    "--save-plan: the business plan in force today); no code any business plan used is reused.",
)
@click.option("--plan-name", default="", help="Name of the plan saved by --save-plan.")
def regroup_command(
    file: Path,
    k: int,
    layer: str,
    weight: str,
    within: str | None,
    key: str,
    time_limit: float | None,
    seed: int,
    out: Path | None,
    save_plan: str | None,
    previous: str | None,
    plan_name: str,
) -> None:
    """Merge the grids of FILE into K contiguous groups minimising the heaviest workload.

    Example: gridgeo regroup demo.gpkg -k 17 --within town_code -o groups17.gpkg

    A new version of the business grids, with the codes of unchanged groups kept:
    gridgeo regroup demo.gpkg -k 11 --save-plan business-2026
    """
    from gridgeo.partition import regroup

    if out is None and save_plan is None:
        raise UserError("give -o/--out, --save-plan PLAN_ID, or both")
    past = None
    if save_plan is not None or previous is not None:
        from gridgeo.cli.plan import previous_plans

        past = previous_plans(file, "business", previous) or None
    spec = parse_weight(weight)
    grids = read_layer(file, layer)
    if key not in grids.columns:
        columns = list(grids.columns)
        raise UserError(f"key column {key!r} is not in {layer!r}; columns are {columns}")
    grids, counted = _point_weights(file, grids, spec, key)
    t0 = time.perf_counter()
    groups = regroup(
        grids,
        k,
        weight=spec,
        within=within,
        key=key,
        seed=seed,
        time_limit=time_limit,
        progress=True,
        previous=past,
    )
    seconds = time.perf_counter() - t0
    assignment = grids.copy()
    assignment["group"] = list(groups.attrs["assignment"].values())  # in the rows' order
    written = groups.copy()
    written["members"] = [",".join(map(str, m)) for m in written["members"]]
    paths = write_frames({"groups": written, "assignment": assignment}, out) if out else []
    a = groups.attrs
    proof = "proven optimal" if a["optimal"] else f"{a['gap']:.1%} above the lower bound"
    if counted:
        click.echo(f"counted {', '.join(counted)} per grid from the layers of {file}")
    click.echo(
        f"{len(grids)} grids → {len(groups)} groups in {seconds:.1f} s ({a['method']}); "
        f"heaviest workload {groups['weight'].max():,.6g}, lower bound "
        f"{a['lower_bound']:,.6g}: {proof}"
    )
    if past:
        kept = groups.attrs.get("kept_codes", ())
        click.echo(f"{len(kept)} of {len(groups)} groups keep their code from {past[-1].plan_id!r}")
    if paths:
        click.echo(f"wrote {', '.join(map(str, paths))}")
    if save_plan is not None:
        from gridgeo.cli.plan import save_draft
        from gridgeo.partition import Plan

        base = _base_plan(file) if layer == "grids" else None
        save_draft(
            file, Plan.from_regroup(groups, plan_id=save_plan, name=plan_name, base_plan=base)
        )


def _base_plan(file: Path) -> str | None:
    """The base plan in force today in ``file``, whose codes the members are (None: none)."""
    from gridgeo.errors import NotFound
    from gridgeo.io.workspace import plan_in_force

    try:
        return plan_in_force(file, level="base").plan_id
    except NotFound:
        return None


def register(group: click.Group) -> None:
    """Add ``regroup`` to the ``gridgeo`` command group."""
    group.add_command(regroup_command)
