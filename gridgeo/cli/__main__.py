"""``python -m gridgeo.cli``: the gridgeo command."""

from gridgeo.cli import main

main()
