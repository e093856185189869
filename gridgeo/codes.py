"""Codes and vocabularies: division codes, grid codes, departments, incident categories.

Division codes follow Chinese practice: a 6-digit county code (GB/T 2260), a
9-digit town code (+3), a 12-digit community/village code (+3), and a 15-digit
grid code (community code + 3-digit serial, as in Beijing DB11/T 2157-2023).

Examples
--------
>>> is_code("360722001002003", "grid"), is_code("36072200100", "community")
(True, False)
>>> DEPARTMENTS["消防"]
'fire'
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORY_DEPARTMENT",
    "CODE_DIGITS",
    "DEPARTMENTS",
    "bad_codes",
    "is_code",
]

#: Number of digits of a code at each level.
CODE_DIGITS = {"county": 6, "town": 9, "community": 12, "grid": 15}

#: Departments that "enter the grid", by Chinese name → layer name used by the
#: locator and the service (``zones`` rows carry the Chinese name in ``department``).
DEPARTMENTS = {
    "住管": "housing",
    "综治": "governance",
    "消防": "fire",
    "市场监管": "market",
    "交警": "traffic",
}

#: Incident category → responsible department (Chinese name, a key of DEPARTMENTS).
CATEGORY_DEPARTMENT = {
    "消防安全": "消防",
    "市场监管": "市场监管",
    "食品安全": "市场监管",
    "交通秩序": "交警",
    "乱停乱放": "交警",
    "市容环境": "住管",
    "物业管理": "住管",
    "矛盾纠纷": "综治",
    "治安隐患": "综治",
    "民生服务": "综治",
}


def is_code(code: object, level: str) -> bool:
    """Whether ``code`` is a well-formed code of ``level`` (all digits, right length).

    Examples
    --------
    >>> is_code("360722001", "town"), is_code(360722001, "town"), is_code("36072200a", "town")
    (True, False, False)
    """
    n = CODE_DIGITS[level]
    return isinstance(code, str) and re.fullmatch(rf"\d{{{n}}}", code) is not None


def bad_codes(codes: pd.Series, level: str, *, parent: pd.Series | None = None) -> pd.Series:
    """Which codes are malformed, or do not start with their parent's code.

    Parameters
    ----------
    codes
        Codes to check.
    level
        A key of :data:`CODE_DIGITS`.
    parent
        Parent codes aligned with ``codes``; a child code must start with it.

    Returns
    -------
    pandas.Series of bool
        True where the code is bad, aligned with ``codes``.

    Examples
    --------
    >>> s = pd.Series(["360722001001", "360722001x01", "360722002001"])
    >>> p = pd.Series(["360722001", "360722001", "360722001"])
    >>> bad_codes(s, "community", parent=p).tolist()
    [False, True, True]
    """
    n = CODE_DIGITS[level]
    as_str = codes.astype("string")
    ok = as_str.str.fullmatch(rf"\d{{{n}}}").fillna(False).astype(bool)
    ok &= codes.map(lambda c: isinstance(c, str)).astype(bool)
    if parent is not None:
        starts = np.array(
            [
                isinstance(c, str) and isinstance(p, str) and c.startswith(p)
                for c, p in zip(codes, parent)
            ],
            dtype=bool,
        )
        ok &= starts
    return ~ok
