"""One way to turn a ``seed`` argument into a generator (never the global RNG)."""

from __future__ import annotations

import numbers

import numpy as np

from gridgeo.errors import InputError

__all__ = ["as_generator"]


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
