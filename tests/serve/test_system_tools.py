"""The ``system_tool`` fixture: skip without the program, fail when CI says it installed it."""

from __future__ import annotations

import sys

import pytest

MISSING = "gridgeo-no-such-program"


def test_missing_program_skips_by_default(system_tool, monkeypatch) -> None:
    monkeypatch.delenv("GRIDGEO_REQUIRE_SYSTEM_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Debian's 'pkg' is not installed"):
        system_tool(MISSING, package="pkg")


@pytest.mark.parametrize("value", ["0", ""])
def test_other_values_of_the_variable_still_skip(system_tool, monkeypatch, value) -> None:
    monkeypatch.setenv("GRIDGEO_REQUIRE_SYSTEM_TOOLS", value)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        system_tool(MISSING, package="pkg", also=["/nonexistent/" + MISSING])


def test_missing_program_fails_when_required(system_tool, monkeypatch) -> None:
    monkeypatch.setenv("GRIDGEO_REQUIRE_SYSTEM_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"'gridgeo-no-such-program' is not installed"):
        system_tool(MISSING, package="pkg")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install pkg"):
        system_tool(MISSING, package="pkg")


def test_found_on_path_or_in_a_fallback(system_tool, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GRIDGEO_REQUIRE_SYSTEM_TOOLS", "1")
    monkeypatch.setenv("PATH", str(tmp_path))
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    assert system_tool("prog", package="pkg") == str(prog)
    assert system_tool(MISSING, package="pkg", also=[sys.executable]) == sys.executable
