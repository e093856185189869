"""One error tree for gridgeo.

Every error derives from :class:`GridGeoError` and carries the HTTP ``status``
that the service answers with, so :mod:`gridgeo.serve` maps all of them in one
handler.  Messages name the column, row, code or value at fault.

Examples
--------
>>> from gridgeo.errors import InputError, GridGeoError
>>> err = InputError("column 'households' is missing")
>>> isinstance(err, (GridGeoError, ValueError)), err.status
(True, 400)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CRSError",
    "CRSValidationError",
    "GridGeoError",
    "InfeasibleError",
    "InputError",
    "NotFound",
    "PayloadTooLarge",
    "RepairWarning",
    "Unauthorized",
    "ValidationError",
]


class GridGeoError(Exception):
    """Root of every error raised by gridgeo.

    Attributes
    ----------
    status : int
        HTTP status code the service answers with.
    code : str
        Short machine-readable name, used as the OGC exception ``code``.
    """

    status: int = 500
    code: str = "ServerError"


class InputError(GridGeoError, ValueError):
    """Bad input data or parameter: a missing column, a malformed value, …"""

    status = 400
    code = "InvalidParameterValue"


class CRSError(InputError):
    """A CRS is missing, unknown, or not usable for the data."""

    code = "InvalidCRS"


class ValidationError(InputError):
    """Every problem found in one input, collected into a single message.

    Parameters
    ----------
    problems
        One human-readable line per problem.
    what
        What was validated, e.g. ``"workspace 'demo.gpkg'"``.

    Examples
    --------
    >>> problems = ["layer 'grids' is missing", "layer 'towns': column 'name' is missing"]
    >>> err = ValidationError(problems, what="workspace 'x.gpkg'")
    >>> print(err)
    workspace 'x.gpkg' has 2 problems:
      - layer 'grids' is missing
      - layer 'towns': column 'name' is missing
    >>> err.problems[0]
    "layer 'grids' is missing"
    """

    def __init__(self, problems: Iterable[str], *, what: str = "input") -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{what} has {n} problem{'s' if n != 1 else ''}:\n{lines}")


class CRSValidationError(ValidationError, CRSError):
    """A :class:`ValidationError` one of whose problems is a missing or unusable CRS.

    It is caught as either, so ``except CRSError`` keeps working where a
    function once stopped at its first problem, the missing CRS.

    Examples
    --------
    >>> err = CRSValidationError(["units has no CRS"], what="make_grids() input")
    >>> isinstance(err, CRSError), isinstance(err, ValidationError), err.code
    (True, True, 'InvalidCRS')
    """

    code = "InvalidCRS"


class RepairWarning(UserWarning):
    """Input geometries were invalid and have been repaired (:func:`shapely.make_valid`).

    Examples
    --------
    >>> issubclass(RepairWarning, UserWarning)
    True
    """


class InfeasibleError(GridGeoError):
    """A constraint cannot be met, e.g. a ceiling no split of a community satisfies."""

    status = 422
    code = "Infeasible"


class NotFound(GridGeoError, LookupError):
    """A named thing (collection, feature, layer, code) does not exist."""

    status = 404
    code = "NotFound"


class PayloadTooLarge(InputError):
    """A request body or batch is larger than the configured limit."""

    status = 413
    code = "PayloadTooLarge"


class Unauthorized(GridGeoError):
    """A protected resource was requested without a valid API key."""

    status = 401
    code = "Unauthorized"
