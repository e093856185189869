"""``gridgeo plan``: the plan versions of a workspace (list, show, diff, adopt, refresh).

A workspace stores every version of its grids as a plan (:mod:`gridgeo.partition.plan`,
:func:`gridgeo.io.workspace.save_plan`); ``gridgeo partition`` and ``gridgeo regroup``
save drafts with ``--save-plan``. ``adopt`` puts a draft in force from a date, closes
the plan it replaces and re-aligns the department zones to the grids they follow.

Department zones (the ``zones`` layer, all departments, and the police ``beats``)
follow the business plan in force today, or the base plan when no business plan is
in force. A zone left with no grid by the re-alignment is kept, flagged: it moves,
with the geometry it had, to the layer ``<layer>_no_grid`` (``zones_no_grid``,
``beats_no_grid``), since an empty zone would make the workspace unreadable to the
locator and the service; the next re-alignment takes it back in.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from gridgeo.cli._files import OutPath, UserError, layer_names, read_layer, write_frames

__all__ = ["ZONE_LAYERS", "previous_plans", "register", "save_draft", "zones_follow"]

#: Workspace layers of department zones re-aligned on adoption.
ZONE_LAYERS = ("zones", "beats")
#: Columns an alignment adds to a zone layer (dropped before the next one).
_ALIGN_COLUMNS = ("members", "moved_area_km2", "no_grid", "aligned_to")

_WS = click.Path(dir_okay=False, path_type=Path)


def _day(text: str, option: str) -> date:
    from gridgeo.partition.plan import as_date

    day = as_date(text, option)
    if day is None:
        raise UserError(f"{option} is empty; give a date such as 2026-01-01")
    return day


def _when(plan: Any) -> tuple[str, str]:
    if plan.valid_from is None:
        return "draft", ""
    start = "" if plan.valid_from == date.min else str(plan.valid_from)
    return start or "(always)", "" if plan.valid_to is None else str(plan.valid_to)


def zones_follow(ws: Path, today: date) -> Any | None:
    """The plan department zones follow on ``today``: business if one is in force, else base."""
    from gridgeo.io.workspace import read_plans

    plans = [q for q in read_plans(ws) if q.in_force(today)]
    for level in ("business", "base"):
        for plan in plans:
            if plan.level == level:
                return plan
    return None


def _realign(ws: Path, plan: Any) -> None:
    """Re-align the zone layers of ``ws`` to ``plan``'s grids, write them back, say so."""
    import pandas as pd

    from gridgeo.partition import check_alignment, realign_departments

    names = layer_names(ws)
    layers: dict[str, Any] = {}
    for name in ZONE_LAYERS:
        if name not in names:
            continue
        frame = read_layer(ws, name)
        if f"{name}_no_grid" in names:  # zones left without a grid last time come back in
            parked = read_layer(ws, f"{name}_no_grid")
            if len(parked):
                frame = pd.concat([frame, parked.to_crs(frame.crs)], ignore_index=True)
        layers[name] = frame.drop(columns=[c for c in _ALIGN_COLUMNS if c in frame.columns])
    if not layers:
        click.echo(f"no department zone layers ({', '.join(ZONE_LAYERS)}) to re-align")
        return
    result = realign_departments(layers, plan.grids)
    for name, out in result.layers.items():
        lost = out["no_grid"].to_numpy(dtype=bool)
        kept = out[~lost].copy()
        kept["members"] = [",".join(m) for m in kept["members"]]
        kept["aligned_to"] = plan.plan_id
        parked = layers[name][lost].assign(no_grid=True, aligned_to=plan.plan_id)
        write_frames({name: kept, f"{name}_no_grid": parked}, ws)
        by = "department" if "department" in kept.columns else None
        problems = check_alignment(kept, plan.grids, by=by)
        moved = float(out["moved_area_km2"].sum())
        lost_note = (
            f"; {int(lost.sum())} left with no grid, kept in layer '{name}_no_grid'"
            if lost.any()
            else ""
        )
        click.echo(
            f"layer {name!r}: {len(kept)} zones re-aligned to plan {plan.plan_id!r} "
            f"({moved:.3f} km² changed hands, {len(problems)} alignment problems){lost_note}"
        )
    for line in result.messages():
        click.echo(f"  warning: {line.split(';')[0]}; kept, flagged, in its '_no_grid' layer")


def previous_plans(ws: Path, level: str, plan_id: str | None) -> list[Any]:
    """The plans of ``level`` in ``ws`` for ``previous=``, oldest first, ``plan_id`` last.

    Every stored plan of the level brings the codes it used (codes are never
    reused); the last one is the plan whose unchanged grids keep their codes:
    ``plan_id``, else the plan of ``level`` in force today. Empty when ``ws``
    holds no plan of the level (nor a legacy ``grids`` layer, for base plans).

    Raises
    ------
    UserError
        If ``plan_id`` is not a plan of ``ws`` of that level.
    """
    from gridgeo.io.workspace import read_plans

    plans = [q for q in read_plans(ws) if q.level == level] if ws.exists() else []
    if plan_id is None:
        latest = next((q for q in plans if q.in_force(date.today())), None)
        if latest is None:
            return plans
    else:
        latest = next((q for q in plans if q.plan_id == plan_id), None)
        if latest is None:
            raise UserError(
                f"--previous {plan_id!r} is not a {level} plan of {ws}; its {level} plans are "
                f"{[q.plan_id for q in plans]}"
            )
    return [q for q in plans if q.plan_id != latest.plan_id] + [latest]


def save_draft(ws: Path, plan: Any) -> None:
    """Store ``plan`` in ``ws`` as a draft and say how to adopt it."""
    from gridgeo.io.workspace import save_plan

    save_plan(ws, plan)
    click.echo(
        f"saved draft {plan.level} plan {plan.plan_id!r} ({len(plan.grids)} grids) in {ws}; "
        f"adopt it with: gridgeo plan adopt {ws} {plan.plan_id} --from YYYY-MM-DD"
    )


def _left(rows: list[dict[str, Any]]) -> str:
    """Rows as a text table, left-aligned (names and dates read better so)."""
    cols = list(rows[0])
    width = {c: max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(str(c).ljust(width[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


@click.group("plan")
def plan_group() -> None:
    """Plan versions of a workspace: list, show, diff, adopt (see also --save-plan)."""


@plan_group.command("list")
@click.argument("ws", type=_WS)
def list_command(ws: Path) -> None:
    """List the plans of the workspace WS; * marks the plans in force today.

    Example: gridgeo plan list demo.gpkg
    """
    from gridgeo.io.workspace import read_plans

    today = date.today()
    plans = read_plans(ws)
    if not plans:
        raise UserError(f"workspace '{ws}' has no plans and no 'grids' layer")
    rows = []
    for q in plans:
        start, end = _when(q)
        rows.append(
            {
                " ": "*" if q.in_force(today) else "",
                "plan_id": q.plan_id,
                "level": q.level,
                "name": q.name,
                "valid_from": start,
                "valid_to": end,
                "grids": len(q.grids),
            }
        )
    click.echo(_left(rows))
    click.echo(f"* in force today ({today})")


@plan_group.command("show")
@click.argument("ws", type=_WS)
@click.argument("plan_id")
def show_command(ws: Path, plan_id: str) -> None:
    """Show the plan PLAN_ID of WS: its dates, counts and grid codes.

    Example: gridgeo plan show demo.gpkg business-2025
    """
    import pandas as pd

    from gridgeo.io.workspace import read_plan

    plan = read_plan(ws, plan_id)
    start, end = _when(plan)
    today = date.today()
    status = "(in force today)" if plan.in_force(today) else ""
    click.echo(f"plan {plan.plan_id!r}: {plan.name or '(no name)'}")
    over = f" (over {plan.base_plan})" if plan.base_plan else ""
    click.echo(f"  level      {plan.level}{over}")
    if plan.is_draft:
        click.echo("  in force   never: a draft (gridgeo plan adopt puts it in force)")
    else:
        click.echo(f"  in force   {start}..{end} {status}".rstrip())
    click.echo(f"  grids      {len(plan.grids)}; retired codes {len(plan.retired_codes)}")
    grids = plan.grids
    cols = [c for c in ("code", "name", "community_code", "households", "population")
            if c in grids.columns]
    table = pd.DataFrame(grids[cols])
    if plan.members is not None:
        table["members"] = [len(plan.members[c]) for c in table["code"]]
        table["member_codes"] = [" ".join(plan.members[c]) for c in table["code"]]
    click.echo(table.to_string(index=False))


@plan_group.command("diff")
@click.argument("ws", type=_WS)
@click.argument("old")
@click.argument("new")
@click.option(
    "-o",
    "--out",
    "out",
    type=OutPath((".csv", ".parquet")),
    default=None,
    help="Write the crosswalk here (.csv: UTF-8 with BOM, for Excel).",
)
def diff_command(ws: Path, old: str, new: str, out: Path | None) -> None:
    """What became of each grid of plan OLD in plan NEW: the crosswalk.

    One row per (old grid, new grid) intersection with the shared area and, when WS
    has them, the households, population and incidents that moved (each building
    and incident located in both plans).

    Example: gridgeo plan diff demo.gpkg business-2024 business-2025 -o crosswalk.csv
    """
    import pandas as pd

    from gridgeo.io.workspace import read_plan
    from gridgeo.partition.crosswalk import CHANGES, crosswalk, grid_changes

    before, after = read_plan(ws, old), read_plan(ws, new)
    names = layer_names(ws)
    units = read_layer(ws, "buildings") if "buildings" in names else None
    incidents = read_layer(ws, "incidents") if "incidents" in names else None
    cw = crosswalk(before, after, units=units, incidents=incidents)
    changes = grid_changes(cw)
    counts = changes["change"].value_counts().reindex(list(CHANGES), fill_value=0)
    used = [n for n, f in (("buildings", units), ("incidents", incidents)) if f is not None]
    click.echo(
        f"{old} ({len(before.grids)} grids) → {new} ({len(after.grids)} grids)"
        + (f", with the {' and '.join(used)} of {ws.name}" if used else "")
    )
    click.echo("  ".join(f"{label} {n}" for label, n in counts.items()))
    shown = cw.round({"area_m2": 0, "area_share_old": 3, "area_share_new": 3})
    with pd.option_context("display.max_rows", None, "display.width", 200):
        click.echo(shown.to_string(index=False))
    if out is not None:
        written = write_frames({"crosswalk": cw}, out)
        click.echo(f"wrote {', '.join(map(str, written))}")


@plan_group.command("adopt")
@click.argument("ws", type=_WS)
@click.argument("plan_id")
@click.option("--from", "start", required=True, help="First day in force, e.g. 2026-01-01.")
@click.option(
    "--align/--no-align",
    default=True,
    show_default=True,
    help="Re-align the department zones (layers zones, beats) to the plan they follow.",
)
def adopt_command(ws: Path, plan_id: str, start: str, align: bool) -> None:
    """Put the draft PLAN_ID of WS in force from --from, closing the plan before it.

    A base plan in force today also becomes the 'grids' layer. The department zones
    are re-aligned when the plan is the one they follow (the business plan in
    force, else the base plan); a zone left with no grid is kept and flagged.

    Example: gridgeo plan adopt demo.gpkg business-2026 --from 2026-01-01
    """
    from gridgeo.io.workspace import adopt_plan, read_plans

    day = _day(start, "--from")
    today = date.today()
    before = {q.plan_id: q for q in read_plans(ws)}
    plan = adopt_plan(ws, plan_id, valid_from=day, today=today)
    click.echo(f"plan {plan_id!r} ({plan.level}, {len(plan.grids)} grids) is in force from {day}")
    for q in read_plans(ws):
        old = before.get(q.plan_id)
        if old is not None and q.plan_id != plan_id and old.valid_to != q.valid_to:
            click.echo(f"plan {q.plan_id!r} now ends on {q.valid_to} (was in force from "
                       f"{_when(q)[0]})")
    if plan.level == "base" and plan.in_force(today):
        click.echo("layer 'grids' now holds this plan")
    if not align:
        click.echo("department zones not re-aligned (--no-align)")
        return
    if not plan.in_force(today):
        click.echo(
            f"department zones not re-aligned: the plan comes into force on {day}; "
            f"run `gridgeo plan refresh {ws}` on or after that day"
        )
        return
    follow = zones_follow(ws, today)
    if follow is not None and follow.plan_id != plan_id:
        click.echo(
            f"department zones follow business plan {follow.plan_id!r}, not re-aligned; "
            "regroup these grids (gridgeo regroup --save-plan) and adopt that business plan"
        )
        return
    _realign(ws, plan)


@plan_group.command("refresh")
@click.argument("ws", type=_WS)
def refresh_command(ws: Path) -> None:
    """Bring WS up to today: 'grids' to the base plan in force, zones re-aligned.

    Run it on the first day of a plan adopted ahead of time.

    Example: gridgeo plan refresh demo.gpkg
    """
    from gridgeo.io.workspace import refresh_grids

    today = date.today()
    base = refresh_grids(ws, today=today)
    if base is not None:
        click.echo(f"layer 'grids' holds base plan {base.plan_id!r}")
    follow = zones_follow(ws, today)
    if follow is None:
        raise UserError(f"no plan of workspace '{ws}' is in force today ({today})")
    _realign(ws, follow)


def register(group: click.Group) -> None:
    """Add ``plan`` to the ``gridgeo`` command group."""
    group.add_command(plan_group)
