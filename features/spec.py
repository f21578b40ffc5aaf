"""The vocabulary features are declared in: data, not code, so one declaration compiles to
both the batch engines (narwhals expressions, see ``features.batch``) and the online
evaluator (numpy, see ``features.online``).

A feature is either an ``Aggregate`` of the *rows* of one visitor (the row model of
``features.rows``: one row per event row in the lookback window, with derived columns such
as ``offset_us`` and ``session_start``) that pass a ``RowFilter``, or a ``Derived`` value
computed from other features of the same visitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AggKind = Literal["count", "sum", "min", "max", "mean", "n_distinct", "any"]
DerivedOp = Literal["ratio", "scale"]
Dtype = Literal["int", "float"]


@dataclass(frozen=True)
class Range:
    """Keep rows whose ``column`` lies in ``[lo, hi)``."""

    column: str
    lo: float
    hi: float


@dataclass(frozen=True)
class RowFilter:
    """A conjunction: event name in ``events`` (None: any), every range, and ``flag`` true."""

    events: tuple[str, ...] | None = None
    ranges: tuple[Range, ...] = ()
    flag: str | None = None


ALL_ROWS = RowFilter()


@dataclass(frozen=True)
class Aggregate:
    """One value per visitor from the rows passing ``where``.

    ``count`` counts rows; ``sum``/``min``/``max``/``mean`` ignore null values of ``column``
    (a sum of no values is 0; a min, max or mean of no values is null); ``n_distinct`` counts
    distinct non-null values; ``any`` is 1 when some row passes, else 0.
    """

    name: str
    doc: str
    kind: AggKind
    column: str | None = None
    where: RowFilter = ALL_ROWS
    public: bool = True

    @property
    def dtype(self) -> Dtype:
        return "int" if self.kind in ("count", "n_distinct", "any") else "float"


@dataclass(frozen=True)
class Derived:
    """``ratio``: ``numerator / denominator * factor``, null when the denominator is 0 or null;
    ``scale``: ``numerator * factor``, null when the numerator is null. Always float."""

    name: str
    doc: str
    op: DerivedOp
    numerator: str
    denominator: str | None = None
    factor: float = 1.0
    public: bool = True

    @property
    def dtype(self) -> Dtype:
        return "float"


Feature = Aggregate | Derived
