"""Column mappings: how a vendor's tabular file becomes canonical events.

A mapping is data (TOML), not code, so a user can load their own CSV/Parquet export with
nothing but a mapping file. The built-in vendor formats (Taobao, REES46, RetailRocket,
canonical) are mappings too; see ``features/ingest/mappings/``.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.events.schema import EVENT_NAMES

MappableField = Literal[
    "visitor_id",
    "event_time",
    "event_name",
    "item_id",
    "item_category",
    "price",
    "quantity",
    "revenue",
    "transaction_id",
    "session_id",
    "user_id",
]


class MappingError(ValueError):
    """A mapping file that cannot be used, with a message that says why."""


class TimeSpec(BaseModel):
    """How ``event_time`` is written in the source.

    ``format`` is ``iso`` (ISO 8601, with or without offset), ``unix_s``, ``unix_ms``,
    ``unix_us``, or a strftime pattern such as ``%m/%d/%Y %H:%M``. ``timezone`` applies to
    values that carry no offset of their own.
    """

    model_config = ConfigDict(extra="forbid")
    format: str = "iso"
    timezone: str = "UTC"


class RefundRule(BaseModel):
    """Rows whose ``column`` starts with ``prefix`` are refunds (e.g. invoices ``C…``)."""

    model_config = ConfigDict(extra="forbid")
    column: str
    prefix: str


class SourceMapping(BaseModel):
    """Everything needed to read one vendor's tabular export into canonical events."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="written to the `source` column of every event")
    format: Literal["csv", "parquet"] = "csv"
    delimiter: str = ","
    encoding: str = "utf8"
    columns: dict[MappableField, str] = Field(description="canonical field -> source column name")
    constants: dict[MappableField, str] = Field(
        default_factory=dict, description="canonical field -> value, where the file has none"
    )
    event_names: dict[str, str] = Field(
        default_factory=dict,
        description="source event value -> canonical event name; unmapped values pass through",
    )
    time: TimeSpec = TimeSpec()
    refund: RefundRule | None = None
    integer_ids: list[MappableField] = Field(
        default_factory=list,
        description="id fields written as floats by the source ('17850.0' -> '17850')",
    )
    derive_revenue: bool = Field(
        True, description="revenue = price * quantity on purchases/refunds when not mapped"
    )
    synthesize_transaction_id: bool = Field(
        False,
        description="purchases without a transaction id get one per visitor and timestamp",
    )

    @field_validator("event_names")
    @classmethod
    def _known_targets(cls, names: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(names.values()) - set(EVENT_NAMES))
        if unknown:
            raise ValueError(f"maps to unknown event names {unknown}; known: {list(EVENT_NAMES)}")
        return names

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, delimiter: str) -> str:
        if len(delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {delimiter!r}")
        return delimiter

    @model_validator(mode="after")
    def _required_present(self) -> SourceMapping:
        both = set(self.columns) & set(self.constants)
        if both:
            raise ValueError(f"fields given both a column and a constant: {sorted(both)}")
        for required in ("visitor_id", "event_time", "event_name"):
            if required not in self.columns and required not in self.constants:
                raise ValueError(f"no column or constant for required field {required!r}")
        return self

    @property
    def source_columns(self) -> list[str]:
        """Source columns the mapping reads, in first-use order."""
        used = [*self.columns.values()]
        if self.refund is not None:
            used.append(self.refund.column)
        return list(dict.fromkeys(used))


def load_mapping(path: Path) -> SourceMapping:
    """Read and validate a TOML mapping file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf8"))
    except OSError as err:
        raise MappingError(f"cannot read mapping {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"mapping {path} is not valid TOML: {err}") from err
    try:
        return SourceMapping.model_validate(raw)
    except ValidationError as err:
        raise MappingError(f"mapping {path} is invalid:\n{err}") from err


BUILTIN_MAPPINGS: tuple[str, ...] = (
    "canonical",
    "taobao",
    "rees46",
    "retailrocket",
    "ga4",
    "cdnow",
    "segment",
)


def builtin_mapping(name: str) -> SourceMapping:
    """One of the mappings shipped with the package, by name."""
    if name not in BUILTIN_MAPPINGS:
        raise MappingError(f"no built-in mapping {name!r}; known: {list(BUILTIN_MAPPINGS)}")
    text = resources.files("features.ingest.mappings").joinpath(f"{name}.toml").read_text()
    return SourceMapping.model_validate(tomllib.loads(text))
