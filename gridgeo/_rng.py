"""One way to turn a ``seed`` argument into a generator (never the global RNG)."""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterable

import numpy as np

from gridgeo.errors import InputError

__all__ = ["as_generator", "keyed_generators"]


def as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from an int seed, or the generator itself.

    Examples
    --------
    >>> as_generator(3).integers(100) == as_generator(3).integers(100)
    np.True_
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise InputError(f"seed was {seed!r}; pass an int or a numpy.random.Generator")


def keyed_generators(
    seed: int | np.random.Generator, keys: Iterable[object]
) -> list[np.random.Generator]:
    """One independent generator per key, each depending only on ``seed`` and its key.

    Unlike :meth:`numpy.random.Generator.spawn`, a key's stream does not depend on
    which other keys are asked for, nor in what order: a community keeps its random
    stream when communities are added, dropped or reordered. A generator ``seed``
    is drawn from once, for the root entropy.

    Examples
    --------
    >>> a = keyed_generators(7, ["360722001001", "360722001002"])
    >>> b = keyed_generators(7, ["360722001002"])
    >>> a[1].integers(1000) == b[0].integers(1000)
    np.True_
    """
    entropy: int | list[int]
    if isinstance(seed, np.random.Generator):
        entropy = seed.integers(0, 2**63, size=2).tolist()
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        entropy = int(seed)
    else:
        raise InputError(f"seed was {seed!r}; pass an int >= 0 or a numpy.random.Generator")
    return [
        np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_key_int(k),)))
        for k in keys
    ]


def _key_int(key: object) -> int:
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")
