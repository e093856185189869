"""Private building blocks of :mod:`gridgeo.datasets` (the synthetic demo county).

Everything here works in a local metric frame (metres east/north of the
county's nominal centre) and is converted to EPSG:4490 lon/lat once, at the
end, by an affine map (:func:`gridgeo._demo.common.to_lonlat`), which keeps
shared vertices shared, so exact tilings stay exact.
"""
