"""UCI Online Retail, the published out-of-time protocol: the chosen model against each
baseline, with full-history features.

    python -m benchmarks.online_retail [--data DIR] [--quick]   (default: $PROPENSITY_SHARED_DATA)

The untruncated file goes through the project's own path: ingest with
``examples/mappings/uci_online_retail.toml`` into a temporary lake, the cuts a user states
(``features.snapshot_plan.stated_cuts``: test 2011-09-01 at London midnight, validation and
training cuts 90 days apart before it), ``features.snapshots.build_snapshots`` with a
full-history lookback (every order before the cut, no anchor event) and a 90-day label
``[T, T + 90 days)``, then ``training.pipeline.fit_and_evaluate``. ``--quick`` caps LightGBM
at 100 rounds.

Last line: ``RESULT chosen=... roc_auc=... log_loss=... ece=... bgnbd_roc_auc=...
rule_roc_auc=... test_rows=... test_positive_rate=...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from benchmarks.vendor_lake import vendor_events
from features.definitions import FEATURE_COLUMNS
from features.ingest.sources import resolve_source
from features.snapshot_plan import StatedCuts, Windows, stated_cuts
from features.snapshots import SnapshotConfig, build_snapshots
from training.pipeline import fit_and_evaluate
from training.settings import TrainingSettings

RETAIL = Path("uci_online_retail") / "online_retail_2010_2011.csv.gz"
MAPPING = Path(__file__).parents[1] / "examples" / "mappings" / "uci_online_retail.toml"
ZONE = "Europe/London"
TEST_CUT = datetime(2011, 9, 1, tzinfo=ZoneInfo(ZONE))
HORIZON = timedelta(days=90)
#: Full history, a 90-day slide and horizon: the protocol's windows.
WINDOWS = Windows(lookback=None, slide=HORIZON, horizon=HORIZON)
MAX_SNAPSHOTS = 8


def snapshot_config(events: pl.DataFrame) -> SnapshotConfig:
    times = pl.col("event_time")
    first, last = events.select(times.min().alias("first"), times.max().alias("last")).row(0)
    cuts = stated_cuts(first, last, WINDOWS, StatedCuts(test=TEST_CUT), MAX_SNAPSHOTS)
    return SnapshotConfig(
        start=cuts[0], end=cuts[-1], cuts=tuple(cuts), slide=HORIZON, lookback=None,
        horizon=HORIZON, timezone=ZONE,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("PROPENSITY_SHARED_DATA"))
    parser.add_argument("--quick", action="store_true", help="at most 100 LightGBM rounds")
    args = parser.parse_args()
    raw = Path(args.data or "") / RETAIL
    if not args.data or not raw.is_file():
        sys.exit(f"Online Retail file not found ({raw}); set PROPENSITY_SHARED_DATA")
    events = vendor_events(raw, resolve_source(None, MAPPING), years=(2000, 2020))
    config = snapshot_config(events)
    frame = build_snapshots(events, config)
    assert isinstance(frame, pl.LazyFrame)
    snapshots = frame.collect().sort("as_of", "visitor_id")
    settings = TrainingSettings(num_threads=2, n_estimators=100 if args.quick else 500)
    outcome = fit_and_evaluate(
        snapshots,
        FEATURE_COLUMNS,
        settings,
        horizon=HORIZON,
        events=events,
        snapshot_config=config.model_dump(mode="json"),
    )
    rows, positives = outcome.lineage["rows"], outcome.lineage["positives"]
    print(
        f"{events.height:,} event rows; cuts {[c.date().isoformat() for c in config.cuts or ()]}"
        f"; rows per split {rows}, positives {positives}"
    )
    for name, parts in outcome.table.items():
        test, validation = parts["test"], parts["validation"]
        print(
            f"{name:9s} test ROC-AUC {test['roc_auc']:.4f} log loss {test['log_loss']:.4f} "
            f"ECE {test['ece']:.4f} | validation ROC-AUC {validation['roc_auc']:.4f}"
        )
    chosen = outcome.table[outcome.chosen.name]["test"]
    baselines = " ".join(
        f"{name}_roc_auc={outcome.table[name]['test']['roc_auc']:.4f}"
        for name in ("bgnbd", "rule")
        if name in outcome.table
    )
    print(
        f"RESULT chosen={outcome.chosen.name} roc_auc={chosen['roc_auc']:.4f} "
        f"log_loss={chosen['log_loss']:.4f} ece={chosen['ece']:.4f} {baselines} "
        f"test_rows={rows['test']} test_positive_rate={positives['test'] / rows['test']:.4f}"
    )


if __name__ == "__main__":
    main()
