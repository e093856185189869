"""Matplotlib helpers for the notebooks and reports: Chinese labels that render.

Matplotlib's default font (DejaVu Sans) has no Chinese glyphs: community
names, categories and departments come out as empty boxes ("tofu").
:func:`use_cjk_font` picks an installed CJK font and puts it first in
``font.family``, keeping the families that were there behind it for the glyphs
the CJK font lacks, such as the minus sign (matplotlib falls back glyph by
glyph across the families listed in ``font.family``).

Examples
--------
>>> family = use_cjk_font()
>>> family is None or family in CJK_FONTS
True
"""

from __future__ import annotations

import logging

from matplotlib import font_manager, rcParams

__all__ = ["CJK_FONTS", "use_cjk_font"]

log = logging.getLogger(__name__)

#: CJK font families tried in order, with where to get each one.
CJK_FONTS: dict[str, str] = {
    "WenQuanYi Zen Hei": "Debian/Ubuntu: apt install fonts-wqy-zenhei",
    "Noto Sans CJK SC": "Debian/Ubuntu: apt install fonts-noto-cjk; macOS/Windows: Google Noto",
    "Source Han Sans SC": "Adobe's Source Han Sans (思源黑体)",
    "SimHei": "Windows (黑体)",
    "Microsoft YaHei": "Windows (微软雅黑)",
    "PingFang SC": "macOS (苹方)",
    "Heiti SC": "macOS (黑体-简)",
}


def use_cjk_font() -> str | None:
    """Make matplotlib draw Chinese text with the first installed CJK font.

    Puts the font first in ``rcParams["font.family"]``; the families that
    were there stay behind it and draw the glyphs it lacks. Wrap the call in
    ``matplotlib.rc_context()`` to undo it.

    Returns
    -------
    str or None
        The family chosen (from :data:`CJK_FONTS`), or None when none is
        installed; then a warning is logged that names the packages to install
        and rcParams are left as they were.

    Examples
    --------
    >>> import matplotlib
    >>> with matplotlib.rc_context():
    ...     family = use_cjk_font()
    ...     family is None or matplotlib.rcParams["font.family"][0] == family
    True
    """
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    family = next((name for name in CJK_FONTS if name in installed), None)
    if family is None:
        hints = "; ".join(f"{name} ({where})" for name, where in CJK_FONTS.items())
        log.warning(
            "no CJK font found: Chinese labels will show as empty boxes. Install one of: %s; "
            "then delete matplotlib's font cache (matplotlib.get_cachedir()) if it still is not "
            "found",
            hints,
        )
        return None
    rcParams["font.family"] = [family, *(f for f in rcParams["font.family"] if f != family)]
    # CJK fonts often come in one weight (WenQuanYi Zen Hei is 500): matplotlib would log
    # "Failed to find font weight normal for …" once per text style; that is expected here
    logging.getLogger("matplotlib.font_manager").addFilter(_quiet_weight_fallback)
    log.debug("matplotlib draws Chinese with %s", family)
    return family


def _quiet_weight_fallback(record: logging.LogRecord) -> bool:
    """False for matplotlib's 'no such weight' warning about one of :data:`CJK_FONTS`."""
    if not record.getMessage().startswith("findfont: Failed to find font weight"):
        return True
    return not any(f" for {name}," in record.getMessage() for name in CJK_FONTS)

