"""use_cjk_font: Chinese renders with an installed CJK font, or a warning says what to install."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager

from gridgeo.plotting import CJK_FONTS, use_cjk_font

INSTALLED = [n for n in CJK_FONTS if n in {f.name for f in font_manager.fontManager.ttflist}]


@pytest.fixture(autouse=True)
def _restore_rcparams() -> Iterator[None]:
    with matplotlib.rc_context():
        yield


def _entry(name: str) -> font_manager.FontEntry:
    return font_manager.FontEntry(fname=f"/nowhere/{name}.ttf", name=name)


@pytest.mark.skipif(not INSTALLED, reason="no CJK font installed (Debian: fonts-wqy-zenhei)")
def test_picks_the_first_installed_cjk_font_and_chinese_renders_without_missing_glyphs() -> None:
    assert use_cjk_font() == INSTALLED[0]
    assert matplotlib.rcParams["font.family"][0] == INSTALLED[0]
    fig, ax = plt.subplots()
    try:
        ax.set_title("消防安全 −12 %")  # Chinese and a minus sign (from the fallback font)
        ax.set_xlabel("嘉定镇 网格 households")
        # a missing glyph is a UserWarning, an error under the test settings
        fig.canvas.draw()
    finally:
        plt.close(fig)


def test_prefers_the_list_order_among_installed_fonts(monkeypatch: pytest.MonkeyPatch) -> None:
    fonts = [_entry("DejaVu Sans"), _entry("Microsoft YaHei"), _entry("SimHei")]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", fonts)
    matplotlib.rcParams["font.family"] = ["serif", "SimHei"]
    assert use_cjk_font() == "SimHei"
    assert matplotlib.rcParams["font.family"] == ["SimHei", "serif"]
    assert use_cjk_font() == "SimHei"  # idempotent
    assert matplotlib.rcParams["font.family"] == ["SimHei", "serif"]


def test_no_cjk_font_returns_none_and_warns_what_to_install(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [_entry("DejaVu Sans")])
    before = dict(matplotlib.rcParams)
    with caplog.at_level(logging.WARNING, logger="gridgeo.plotting"):
        assert use_cjk_font() is None
    assert dict(matplotlib.rcParams) == before
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "no CJK font found" in record.getMessage()
    assert "fonts-wqy-zenhei" in record.getMessage()


def test_library_helper_does_not_print(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [])
    use_cjk_font()
    assert capsys.readouterr() == ("", "")
