"""Daily loads: many files, in any order, overlapping, give the lake one whole file gives."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.events.schema import EVENT_COLUMNS
from features.ingest.incremental import expand_inputs, ingest_files
from features.ingest.lake_writer import EVENTS_DIR
from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits
from tests.conftest import NOW
from tests.reliability.test_faults_ingest import _events_file

LIMITS = ValidationLimits(
    min_event_time=NOW.replace(year=2000), max_event_time=NOW.replace(year=2030)
)


def _ingest(path: Path, data: Path, fingerprint: str | None = None) -> IngestReport:
    return ingest_file(
        path,
        mapping=builtin_mapping("canonical"),
        lake_dir=data / "lake",
        quarantine_dir=data / "quarantine",
        limits=LIMITS,
        batch_rows=50,
        day_rows=70,  # small: days are de-duplicated in several hash slices
        held_bytes=4_000,  # small: events are spilled to disk several times per file
        ingest_id=f"i{random.getrandbits(40):010x}",
        fingerprint=fingerprint,
    )


def lake_events(data: Path) -> pl.DataFrame:
    """Every event of the lake, in a canonical order (a lake is a set of rows, not a list)."""
    files = sorted((data / "lake" / EVENTS_DIR).rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    events = pl.read_parquet(files, hive_partitioning=False).select(EVENT_COLUMNS)
    return events.sort(EVENT_COLUMNS, nulls_last=True)


def _split(lines: list[bytes], cuts: list[int], overlap: int) -> list[list[bytes]]:
    """Consecutive pieces of ``lines`` at ``cuts``, each reaching ``overlap`` lines into
    the next piece (the same events in two exports)."""
    bounds = [0, *sorted(set(cuts)), len(lines)]
    return [lines[a : min(b + overlap, len(lines))] for a, b in itertools.pairwise(bounds) if a < b]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    cuts=st.lists(st.integers(1, 239), max_size=6),
    overlap=st.integers(0, 30),
    order=st.randoms(use_true_random=False),
)
def test_any_split_in_any_order_with_overlaps_gives_the_same_lake(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], overlap: int, order: random.Random
) -> None:
    work = tmp_path_factory.mktemp("split")
    whole = _events_file(work / "whole.csv", days=4, per_day=60)
    header, *lines = whole.read_bytes().splitlines(keepends=True)
    _ingest(whole, work / "whole")
    pieces = _split(lines, cuts, overlap)
    order.shuffle(pieces)
    folder = work / "pieces"
    folder.mkdir()
    for number, piece in enumerate(pieces):
        (folder / f"events_{number:03d}.csv").write_bytes(header + b"".join(piece))
    report = ingest_files(
        expand_inputs([str(folder)]),
        work / "split" / "lake",
        lambda p, d: _ingest(p, work / "split", d),
    )
    total = report.total()
    assert total["accepted"] == len(lines)
    assert total["accepted"] + total["duplicates"] == total["rows_read"]
    assert lake_events(work / "split").equals(lake_events(work / "whole"))


def test_a_folder_is_ingested_in_order_once_and_a_late_day_is_deduplicated(
    tmp_path: Path,
) -> None:
    whole = _events_file(tmp_path / "whole.csv", days=3, per_day=40)
    header, *lines = whole.read_bytes().splitlines(keepends=True)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "events_20250302.csv").write_bytes(header + b"".join(lines[40:80]))
    (inbox / "events_20250303.csv").write_bytes(header + b"".join(lines[80:]))
    (inbox / "_SUCCESS").write_bytes(b"")
    data = tmp_path / "data"

    def run() -> dict[str, object]:
        paths = expand_inputs([str(inbox)])
        return ingest_files(paths, data / "lake", lambda p, d: _ingest(p, data, d)).to_dict()

    first = run()
    assert [f["status"] for f in first["files"]] == ["ingested", "ingested"]  # type: ignore[index]
    # The next run: the same files (one re-sent under a new name) and a late, overlapping
    # file for the first day.
    (inbox / "events_20250303_resent.csv").write_bytes((inbox / "events_20250303.csv").read_bytes())
    (inbox / "events_20250301_late.csv").write_bytes(header + b"".join(lines[:45]))
    second = run()
    statuses = {Path(f["file"]).name: f["status"] for f in second["files"]}  # type: ignore[index]
    assert statuses == {
        "events_20250301_late.csv": "ingested",
        "events_20250302.csv": "skipped",
        "events_20250303.csv": "skipped",
        "events_20250303_resent.csv": "skipped",
    }
    late = next(f for f in second["files"] if "late" in f["file"])  # type: ignore[union-attr]
    assert (late["accepted"], late["duplicates"]) == (40, 5)
    _ingest(whole, tmp_path / "whole")
    assert lake_events(data).equals(lake_events(tmp_path / "whole"))
