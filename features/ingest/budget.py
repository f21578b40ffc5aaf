"""How much an ingest holds in memory at once, derived from one number of megabytes.

The factors are measured, not derived: ``python -m benchmarks.ingest`` reports the peak
they give (docs/benchmarks.md). What a batch costs is several times its Polars size (the
raw text, the parsed columns and validation's intermediate columns are alive together, and
string views keep their source buffers), hence the margins below.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Records validated per batch, per megabyte of budget (1536 MB -> ~250k records).
_BATCH_ROWS_PER_MB = 160
#: Polars-estimated bytes of accepted events held before spilling, per megabyte of budget:
#: held events take about four times their estimate in resident memory.
_HELD_BYTES_PER_MB = 1 << 16
#: New events of one date de-duplicated at once, per megabyte of budget.
_DAY_ROWS_PER_MB = 500


@dataclass(frozen=True)
class IngestBudget:
    """Batch size, events held before spilling, and events of one day de-duplicated at once."""

    batch_rows: int
    held_bytes: int
    day_rows: int

    @classmethod
    def from_memory(cls, max_memory_mb: int) -> IngestBudget:
        if max_memory_mb < 64:
            raise ValueError(f"max_memory_mb must be at least 64, got {max_memory_mb}")
        return cls(
            batch_rows=max_memory_mb * _BATCH_ROWS_PER_MB,
            held_bytes=max_memory_mb * _HELD_BYTES_PER_MB,
            day_rows=max_memory_mb * _DAY_ROWS_PER_MB,
        )
