"""Ingest of damaged files: random byte flips, truncated or corrupt gzip, mixed encodings.
The ingest never crashes, quarantines what it cannot read with a reason, and accounts for
every line: ``rows_read = accepted + quarantined + duplicates``, the lake holds exactly the
accepted rows and the quarantine file exactly the quarantined ones."""

from __future__ import annotations

import gzip
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.ingest.lake_writer import EVENTS_DIR
from features.ingest.mapping import builtin_mapping
from features.ingest.pipeline import IngestReport, ingest_file
from features.ingest.validate import ValidationLimits
from tests.reliability.test_faults_ingest import _events_file

LIMITS = ValidationLimits(
    min_event_time=datetime(2000, 1, 1, tzinfo=UTC), max_event_time=datetime(2030, 1, 1, tzinfo=UTC)
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("clean")
    return _events_file(folder / "clean.csv", days=2, per_day=300).read_bytes()


def _ingest(data: bytes, name: str, folder: Path) -> tuple[IngestReport, Path]:
    path = folder / name
    path.write_bytes(data)
    report = ingest_file(
        path,
        mapping=builtin_mapping("canonical"),
        lake_dir=folder / "lake",
        quarantine_dir=folder / "quarantine",
        limits=LIMITS,
        batch_rows=128,
        ingest_id="damaged",
    )
    return report, folder


def _check_accounting(report: IngestReport, folder: Path) -> None:
    report.check_balance()
    lake_files = list((folder / "lake" / EVENTS_DIR).rglob("*.parquet"))
    in_lake = pl.read_parquet(lake_files).height if lake_files else 0
    assert in_lake == report.accepted
    if report.quarantined_total:
        quarantined = pl.read_csv(report.quarantine_file or "", infer_schema=False)
        assert quarantined.height == report.quarantined_total
        assert quarantined.get_column("reason").is_not_null().all()
    else:
        assert report.quarantine_file is None


def _data_lines(data: bytes, breaks: bytes) -> int:
    return sum(1 for line in re.split(breaks, data)[1:] if line.strip())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=60))
def test_random_byte_flips_never_crash_nor_drop_a_line(
    clean: bytes, flips: list[tuple[int, int]]
) -> None:
    damaged = bytearray(clean)
    header = clean.index(b"\n") + 1  # the header stays intact: a file needs its columns
    for position, bit in flips:
        at = header + position % (len(clean) - header)
        damaged[at] ^= 1 << bit
    with tempfile.TemporaryDirectory() as folder:
        report, where = _ingest(bytes(damaged), "flipped.csv", Path(folder))
        _check_accounting(report, where)
        # A flipped byte can make a lone CR, a line break to the fast reader (Arrow) but not
        # to the line-by-line one: either way every line is counted.
        assert (
            _data_lines(bytes(damaged), rb"\n")
            <= report.rows_read
            <= _data_lines(bytes(damaged), rb"\r\n|\r|\n")
        )


def test_a_stray_quote_does_not_swallow_the_lines_after_it(clean: bytes, tmp_path: Path) -> None:
    """Arrow reads from a stray quote to the next one as one value, across lines; every line
    must still be read on its own (the quoted ones quarantined), with its own line number."""
    lines = clean.split(b"\n")
    lines[5] = lines[5].replace(b",", b',"', 1)  # opens a quote that line 40 closes
    lines[40] = lines[40].replace(b",", b'",', 1)
    damaged = b"\n".join(lines)
    report, folder = _ingest(damaged, "quoted.csv", tmp_path)
    _check_accounting(report, folder)
    assert report.rows_read == _data_lines(damaged, rb"\n")
    quarantined = pl.read_csv(folder / "quarantine" / "damaged.csv", infer_schema=False)
    # Line 6 no longer splits into the header's fields; line 41 does (its id keeps the quote).
    assert set(quarantined.get_column("line").cast(int)) == {6}


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.95])
def test_truncated_gzip_keeps_what_was_read_and_quarantines_the_tail(
    clean: bytes, keep: float, tmp_path: Path
) -> None:
    packed = gzip.compress(clean)
    report, folder = _ingest(packed[: int(len(packed) * keep)], "cut.csv.gz", tmp_path)
    _check_accounting(report, folder)
    assert report.quarantined.get("unreadable_tail") == 1
    original = pl.read_csv(clean, infer_schema=False).height
    assert report.accepted < original
    if keep > 0.4:
        assert report.accepted > 0  # the lines before the cut are not thrown away


def test_corrupt_gzip_stream_never_crashes(clean: bytes, tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(clean))
    for at in range(len(packed) // 3, len(packed), len(packed) // 7):
        packed[at] ^= 0xFF
    report, folder = _ingest(bytes(packed), "corrupt.csv.gz", tmp_path)
    _check_accounting(report, folder)
    assert report.quarantined_total > 0


def test_mixed_encodings_quarantine_exactly_the_lines_that_are_not_utf8(
    clean: bytes, tmp_path: Path
) -> None:
    lines = clean.rstrip(b"\n").split(b"\n")
    latin1 = "catégorie".encode("latin-1")
    utf8 = "catégorie".encode()
    mixed = [lines[0]] + [
        line.replace(b",c1,", b"," + (latin1 if i % 4 == 0 else utf8) + b",")
        for i, line in enumerate(lines[1:])
    ]
    report, folder = _ingest(b"\n".join(mixed) + b"\n", "mixed.csv", tmp_path)
    _check_accounting(report, folder)
    bad = sum(1 for i in range(len(lines) - 1) if i % 4 == 0)
    assert report.quarantined == {"bad_encoding": bad}
    assert report.accepted == len(lines) - 1 - bad
    categories = pl.read_parquet(list((folder / "lake" / EVENTS_DIR).rglob("*.parquet")))
    assert set(categories.get_column("item_category")) == {"catégorie"}
