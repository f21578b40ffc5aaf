"""Daily loads: ingest a folder (or glob) of export files in order, each file once.

A file already ingested is recognised by its content fingerprint (in the lake's manifest),
not its name: a re-sent file under a new name is skipped, a corrected file under the old
name is not. Each file is its own transaction (``features.ingest.transaction``), so a
failure or a crash in file 7 keeps files 1-6 and a re-run carries on from file 7. A late
file for an earlier day is simply another file: its events are de-duplicated against that
day's partition.
"""

from __future__ import annotations

import glob
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.ingest.batch import IngestError
from features.ingest.mapping import MappingError
from features.ingest.pipeline import IngestReport, file_fingerprint
from features.ingest.transaction import ingested_fingerprints

IngestOne = Callable[[Path, str], IngestReport]
_GLOB_CHARS = frozenset("*?[")


def is_pattern(target: str) -> bool:
    return bool(_GLOB_CHARS & set(target))


def expand_inputs(targets: list[str]) -> list[Path]:
    """Files named by ``targets`` (files, folders, glob patterns), in order.

    A folder gives its files sorted by name (``events_YYYYMMDD`` sorts by day), leaving out
    hidden files and names starting with ``_`` (markers such as ``_SUCCESS``). A file named
    twice is ingested once.
    """
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and p.name[0] not in "._"))
        elif is_pattern(target):
            # glob.glob, not Path.glob: a user's pattern may be absolute.
            matches = glob.glob(target)  # noqa: PTH207
            found.extend(sorted(Path(p) for p in matches if Path(p).is_file()))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


@dataclass
class FilesReport:
    """What a multi-file ingest did, per file and in total. Serialises to ``--json``."""

    files: list[dict[str, Any]] = field(default_factory=list)

    def _count(self, status: str) -> int:
        return sum(1 for f in self.files if f["status"] == status)

    @property
    def failed(self) -> int:
        return self._count("failed")

    def total(self) -> dict[str, Any]:
        ingested = [f for f in self.files if f["status"] == "ingested"]
        quarantined: Counter[str] = Counter()
        for entry in ingested:
            quarantined.update(entry["quarantined"])
        return {
            "files": len(self.files),
            "ingested": len(ingested),
            "skipped": self._count("skipped"),
            "failed": self.failed,
            "rows_read": sum(f["rows_read"] for f in ingested),
            "accepted": sum(f["accepted"] for f in ingested),
            "duplicates": sum(f["duplicates"] for f in ingested),
            "quarantined": dict(quarantined.most_common()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "total": self.total()}


def ingest_files(paths: list[Path], lake_dir: Path, ingest_one: IngestOne) -> FilesReport:
    """Ingest ``paths`` in order with ``ingest_one(path, fingerprint)``; skip files whose
    content the lake already holds; a file that cannot be ingested is reported as failed
    (with the reason) and the next one is ingested all the same."""
    report = FilesReport()
    seen = ingested_fingerprints(lake_dir)
    for path in paths:
        try:
            fingerprint = file_fingerprint(path)
        except OSError as problem:
            report.files.append({"file": str(path), "status": "failed", "error": str(problem)})
            continue
        if fingerprint in seen:
            report.files.append(
                {"file": str(path), "status": "skipped", "fingerprint": fingerprint}
            )
            continue
        try:
            done = ingest_one(path, fingerprint)
        except (IngestError, MappingError, ValueError, OSError) as problem:
            report.files.append({"file": str(path), "status": "failed", "error": str(problem)})
            continue
        seen.add(fingerprint)
        report.files.append({"status": "ingested", **done.to_dict()})
    return report
