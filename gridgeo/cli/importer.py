"""``gridgeo import``: a county's own files, as a manifest lists them, into one workspace."""

from __future__ import annotations

from pathlib import Path

import click

from gridgeo.cli._files import OutPath

__all__ = ["register"]


@click.command("import")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out",
    type=OutPath((".gpkg",)),
    required=True,
    help="The workspace GeoPackage to write (replaced if it exists).",
)
@click.option(
    "--report",
    "report",
    type=OutPath((".html",)),
    default=None,
    help="Write an HTML page mapping every change (works offline).",
)
@click.option(
    "--tolerance-m",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Gaps between neighbours thinner than this (metres) are absorbed.",
)
def import_command(manifest: Path, out: Path, report: Path | None, tolerance_m: float) -> None:
    """Read the files MANIFEST lists, clean them into a coverage and write a workspace.

    MANIFEST is a TOML file with one table per workspace layer: path (relative
    to the manifest) and, where the file cannot say, crs, encoding, layer and
    columns. Example:

        gridgeo import data/examples/manifest.toml -o county.gpkg --report import.html
    """
    from gridgeo.io.importer import import_workspace
    from gridgeo.io.report import write_report

    result = import_workspace(manifest, out, tolerance_m=tolerance_m, progress=True)
    for name, gdf in result.layers.items():
        source = result.manifest.layers.get(name)
        where = source.path.name if source is not None else "made from the communities"
        click.echo(f"{name:<12} {len(gdf):>7} rows  {where}")
        for line in result.read_reports.get(name, []):
            click.echo(f"{'':<14}{line}")
    changes = result.changes
    if len(changes):
        # "overlap with 360722001001" and "… with 360722002200" count as one kind
        kind = changes["problem"].astype(str).str.split(":").str[0]
        kind = kind.str.replace(r"[A-Za-z]*\d{3,}", "…", regex=True)
        counts = changes.groupby(["layer", kind], sort=False).size()
        click.echo(f"{len(changes)} changes:")
        for (layer, problem), n in counts.items():
            click.echo(f"  {layer:<12} {n:>4}  {problem}")
    else:
        click.echo("no changes: the layers were a clean coverage as read")
    click.echo(f"wrote {result.path}")
    if report is not None:
        click.echo(f"wrote {write_report(result, report)}")


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(import_command)
