"""Folium maps that work on an intranet: Leaflet inlined, nothing loaded from a CDN.

folium's pages load Leaflet, jQuery, Bootstrap and Font Awesome from public
CDNs, so on a machine without internet access they come up blank.
:func:`offline` swaps those for the Leaflet that gridgeo ships (inlined as
``data:`` URLs) and drops the rest, which plain maps (GeoJSON layers,
tooltips, a layer control) do not need. Marker icons and folium plugins that
bring their own scripts are not covered.

Examples
--------
>>> import folium
>>> m = offline(folium.Map(location=[25.4, 114.93], zoom_start=10, tiles=None))
>>> external_urls(m.get_root().render())
[]
"""

from __future__ import annotations

import base64
import re
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["external_urls", "offline"]

_LEAFLET = Path(__file__).resolve().parents[1] / "serve" / "static" / "leaflet"


@cache
def _data_url(name: str, mime: str) -> str:
    data = (_LEAFLET / name).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def offline(m: Any) -> Any:
    """Make a folium map self-contained (in place) and return it.

    Parameters
    ----------
    m
        A ``folium.Map``; create it with ``tiles=None`` (or a tile URL on your
        intranet) so that no basemap is fetched from the internet.

    Returns
    -------
    folium.Map
        The same map, with Leaflet inlined and no CDN script or stylesheet.
    """
    m.default_js = [("leaflet", _data_url("leaflet.js", "text/javascript"))]
    m.default_css = [("leaflet_css", _data_url("leaflet.css", "text/css"))]
    return m


def external_urls(html: str) -> list[str]:
    """The ``http(s)://`` or protocol-relative URLs a page's tags would load.

    >>> external_urls('<script src="https://cdn.example/x.js"></script><a href="#">')
    ['https://cdn.example/x.js']
    """
    found = re.findall(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)["']""", html)
    return sorted(set(found))
