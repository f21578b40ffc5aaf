"""The input formats ``propensity ingest`` understands, by name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from features.ingest.batch import RawBatch
from features.ingest.cdnow import cdnow_mapping, iter_cdnow
from features.ingest.ga4 import ga4_mapping, iter_ga4
from features.ingest.mapping import BUILTIN_MAPPINGS, SourceMapping, builtin_mapping, load_mapping
from features.ingest.pipeline import BatchReader
from features.ingest.segment_reader import iter_segment, segment_mapping
from features.ingest.tabular import iter_tabular


@dataclass(frozen=True)
class EventSource:
    """A way to read one kind of file: a reader of raw batches and the mapping to apply."""

    mapping: SourceMapping
    reader: BatchReader


def _tabular(mapping: SourceMapping) -> EventSource:
    def read(path: Path, batch_rows: int) -> Iterator[RawBatch]:
        return iter_tabular(path, mapping, batch_rows)

    return EventSource(mapping, read)


def _special_sources() -> dict[str, EventSource]:
    """Formats that need their own reader before the shared mapping and validation."""
    return {
        "ga4": EventSource(ga4_mapping(), iter_ga4),
        "cdnow": EventSource(cdnow_mapping(), iter_cdnow),
        "segment": EventSource(segment_mapping(), iter_segment),
    }


EVENT_FORMATS: tuple[str, ...] = (*BUILTIN_MAPPINGS,)


def resolve_source(fmt: str | None, mapping_file: Path | None) -> EventSource:
    """The source for ``--format NAME`` or ``--mapping FILE`` (exactly one of them)."""
    if mapping_file is not None:
        if fmt is not None:
            raise ValueError("give either --format or --mapping, not both")
        return _tabular(load_mapping(mapping_file))
    name = fmt or "canonical"
    special = _special_sources()
    if name in special:
        return special[name]
    if name in BUILTIN_MAPPINGS:
        return _tabular(builtin_mapping(name))
    raise ValueError(f"unknown format {name!r}; known: {list(EVENT_FORMATS)} or --mapping FILE")
