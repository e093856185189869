"""Synthetic Chinese place and shop names for the demo county (deterministic for an rng).

Examples
--------
>>> names = place_names(3, np.random.default_rng(0), suffix="村")
>>> len(set(names)), all(n.endswith("村") for n in names)
(3, True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["URBAN_NAMES", "place_names", "shop_names"]

_FIRST = list("大小新古安东西南北龙虎油铁正崇万坪石金银桃杨柳黄青白长高上下河塘岭")
_SECOND = list("塘田坑陂岭山江坝湖口源背洲岗桥头圩溪坳亭塅垄寨")
#: Names of urban communities of a county seat, in the order they are used.
URBAN_NAMES = [
    "东门",
    "西门",
    "南门",
    "北门",
    "桃江",
    "文化",
    "人民",
    "建设",
    "解放",
    "中山",
    "新华",
    "阳光",
    "和平",
    "滨江",
    "花园",
    "工业",
    "站前",
    "城南",
    "城北",
    "嘉定",
]
_SHOP_WORDS = list("兴旺福发鑫隆祥顺昌盛源利达恒嘉华美佳乐康泰")
_KIND_SUFFIX = {
    "shop": "商店",
    "restaurant": "饭店",
    "company": "有限公司",
    "stall": "摊点",
    "farmers_market": "农贸市场",
}


def place_names(
    n: int, rng: np.random.Generator, *, suffix: str, taken: set[str] | None = None
) -> list[str]:
    """``n`` distinct two-character names plus ``suffix``, avoiding ``taken`` (updated).

    Examples
    --------
    >>> taken = {"大塘村"}
    >>> "大塘村" in place_names(5, np.random.default_rng(1), suffix="村", taken=taken)
    False
    """
    taken = set() if taken is None else taken
    pool = [a + b for a in _FIRST for b in _SECOND if a != b]
    order = rng.permutation(len(pool))
    out: list[str] = []
    round_ = 0
    while len(out) < n:
        for i in order:
            name = pool[i] + (str(round_ + 1) if round_ else "") + suffix
            if name not in taken:
                taken.add(name)
                out.append(name)
                if len(out) == n:
                    break
        round_ += 1
    return out


def shop_names(kinds: NDArray[np.str_], rng: np.random.Generator) -> NDArray[np.str_]:
    """A shop-like name for each market entity kind (vectorised, not unique).

    Examples
    --------
    >>> shop_names(np.array(["shop", "stall"]), np.random.default_rng(0)).tolist()[0][-2:]
    '商店'
    """
    n = len(kinds)
    words = np.asarray(_SHOP_WORDS)
    a = words[rng.integers(len(words), size=n)]
    b = words[rng.integers(len(words), size=n)]
    suffix = np.vectorize(_KIND_SUFFIX.__getitem__, otypes=[object])(kinds) if n else kinds
    return np.char.add(np.char.add(a, b), np.asarray(suffix, dtype=str))
