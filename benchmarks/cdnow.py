"""CDNOW, the classic repeat-purchase benchmark: the chosen model against BG/NBD.

    python -m benchmarks.cdnow [--data DIR]   (default: $PROPENSITY_SHARED_DATA)

The master file goes through the project's own path: ingest (``--format cdnow``) into a
temporary lake, ``features.snapshots.build_snapshots`` (purchases are the only events),
``training.pipeline.fit_and_evaluate``. Standard split: the test cutoff ends the 39-week
calibration period (1997-01-01..09-30), label = a purchase in the first 13 weeks after it;
the validation cutoff is 13 weeks earlier and training cutoffs end their label windows by the
validation cutoff. Cutoffs are at midnight and features read every purchase before them
(full history): labels are ``[T, T + 13 weeks)``, so a purchase dated on the cutoff day (CDNOW
has dates, not times) is a label, and one dated the day before is history.

Targets (issue 4): ROC-AUC >= 0.773 and log loss <= 0.389 for the chosen model.
Last line: ``RESULT chosen=... roc_auc=... log_loss=... bgnbd_roc_auc=... bgnbd_log_loss=...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from benchmarks.vendor_lake import vendor_events
from features.definitions import FEATURE_COLUMNS
from features.ingest.sources import resolve_source
from features.snapshots import SnapshotConfig, build_snapshots
from training.pipeline import fit_and_evaluate
from training.settings import TrainingSettings

HORIZON = timedelta(weeks=13)
TEST_CUTOFF = datetime(1997, 10, 1, tzinfo=UTC)
VALIDATION_CUTOFF = TEST_CUTOFF - HORIZON
#: Training cutoffs: every two weeks from early March (the cohort joined in Q1 1997) to one
#: horizon before validation.
TRAIN_CUTOFFS = (datetime(1997, 3, 5, tzinfo=UTC), VALIDATION_CUTOFF - HORIZON)
LOOKBACK = None  # full history: every purchase since 1997-01-01


def snapshots_for(events: pl.DataFrame) -> pl.DataFrame:
    def build(start: datetime, end: datetime, slide: timedelta) -> pl.DataFrame:
        config = SnapshotConfig(
            start=start, end=end, slide=slide, lookback=LOOKBACK, horizon=HORIZON
        )
        frame = build_snapshots(events, config)
        assert isinstance(frame, pl.LazyFrame)
        return frame.collect()

    train = build(*TRAIN_CUTOFFS, timedelta(weeks=2))
    held_out = build(VALIDATION_CUTOFF, TEST_CUTOFF, HORIZON)
    return pl.concat([train, held_out])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("PROPENSITY_SHARED_DATA"))
    args = parser.parse_args()
    master = Path(args.data or "") / "cdnow" / "CDNOW_master.txt.gz"
    if not args.data or not master.is_file():
        sys.exit(f"CDNOW master file not found ({master}); set PROPENSITY_SHARED_DATA")
    events = vendor_events(master, resolve_source("cdnow", None), years=(1990, 2000))
    snapshots = snapshots_for(events)
    settings = TrainingSettings(num_threads=2)
    outcome = fit_and_evaluate(
        snapshots,
        FEATURE_COLUMNS,
        settings,
        horizon=HORIZON,
        events=events,
        snapshot_config={"data": "CDNOW master"},
    )
    print(
        f"{events.height:,} purchase rows; rows per split {outcome.lineage['rows']}, "
        f"positives {outcome.lineage['positives']}"
    )
    for name, parts in outcome.table.items():
        test, validation = parts["test"], parts["validation"]
        print(
            f"{name:9s} test ROC-AUC {test['roc_auc']:.4f} log loss {test['log_loss']:.4f} "
            f"PR-AUC {test['pr_auc']:.4f} ECE {test['ece']:.4f} | validation ROC-AUC "
            f"{validation['roc_auc']:.4f}"
        )
    chosen, bgnbd = outcome.table[outcome.chosen.name]["test"], outcome.table["bgnbd"]["test"]
    print(
        f"RESULT chosen={outcome.chosen.name} roc_auc={chosen['roc_auc']:.4f} "
        f"log_loss={chosen['log_loss']:.4f} bgnbd_roc_auc={bgnbd['roc_auc']:.4f} "
        f"bgnbd_log_loss={bgnbd['log_loss']:.4f}"
    )


if __name__ == "__main__":
    main()
