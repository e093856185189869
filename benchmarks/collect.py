"""Assemble BENCHMARKS.md from the per-benchmark tables in benchmarks/results/.

Each benchmark script (partition, regroup, locate, serve, heatmap) writes its
own ``results/<name>.md``; this joins them in a fixed order under one header.

Usage: ``python benchmarks/collect.py``
"""

from __future__ import annotations

from pathlib import Path

ORDER = ["partition", "regroup", "locate", "serve", "heatmap"]
HEADER = """# Benchmarks

Measured by the scripts in `benchmarks/`, each in one process on the same
data for gridgeo and its peer library, so that the ratio holds on a shared,
noisy machine. Targets come from the issues; a figure that misses its target
says so. Re-run a section with `python benchmarks/<name>.py` and then
`python benchmarks/collect.py`.
"""


def main() -> None:
    here = Path(__file__).parent
    results = here / "results"
    names = ORDER + sorted(p.stem for p in results.glob("*.md") if p.stem not in ORDER)
    parts = [HEADER]
    for name in names:
        path = results / f"{name}.md"
        if path.exists():
            parts.append(path.read_text(encoding="utf-8").strip() + "\n")
    (here.parent / "BENCHMARKS.md").write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    main()
