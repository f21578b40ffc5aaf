"""Training speed: our path (snapshot frame -> out-of-time split -> LightGBM with validation
and early stopping) next to a plain ``lightgbm.train`` on the same matrix, in the same run.

    python -m benchmarks.training [--quick]

1M training rows (100k with ``--quick``) x the full feature list (``features.definitions``;
60 when it is not importable), 200 trees, 2 threads; a validation and a test snapshot of a
tenth of that size each. Early stopping patience is 200, so both sides boost all 200
rounds (ours then keeps the trees up to the best validation round).
Last line: ``RESULT train_s=... ratio_vs_lightgbm=...``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import lightgbm as lgb
import numpy as np
import polars as pl

from training.boosting import base_params, fit_booster
from training.data import split_by_time
from training.settings import TrainingSettings

TREES = 200
THREADS = 2


def feature_names() -> list[str]:
    try:
        from features.definitions import FEATURE_COLUMNS
    except ImportError:
        return [f"f{i}" for i in range(60)]
    return list(FEATURE_COLUMNS)


def snapshot_frame(train_rows: int, names: list[str], seed: int = 0) -> pl.DataFrame:
    """Three cutoffs (train, validation, test) of count-like features with a known signal."""
    rng = np.random.default_rng(seed)
    sizes = [train_rows, train_rows // 10, train_rows // 10]
    total = sum(sizes)
    features = rng.poisson(rng.uniform(0.1, 3.0, len(names)), (total, len(names))).astype(
        np.float64
    )
    features[rng.random(features.shape) < 0.05] = np.nan
    signal = np.nan_to_num(features[:, :5]) @ np.array([0.5, 0.3, -0.2, 0.1, 0.05]) - 4.0
    label = (rng.random(total) < 1 / (1 + np.exp(-signal))).astype(np.int64)
    first = datetime(2024, 1, 1, tzinfo=UTC)
    cutoffs = pl.Series("as_of", [first + timedelta(days=7 * i) for i in range(3)])
    as_of = cutoffs.gather(np.repeat(np.arange(3), sizes))
    return pl.DataFrame({"visitor_id": np.arange(total), "label": label}).with_columns(
        as_of, *pl.from_numpy(features, schema=names).get_columns()
    )


def ours(snapshots: pl.DataFrame, names: list[str], settings: TrainingSettings) -> float:
    started = time.perf_counter()
    split = split_by_time(snapshots, names)
    train, validation = split.train, split.validation
    fit_booster(
        (train.features, train.label), (validation.features, validation.label), names, settings
    )
    return time.perf_counter() - started


def plain(features: np.ndarray, label: np.ndarray, settings: TrainingSettings) -> float:
    started = time.perf_counter()
    lgb.train(base_params(settings), lgb.Dataset(features, label=label), TREES)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k training rows")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each side")
    args = parser.parse_args()
    rows = 100_000 if args.quick else 1_000_000
    names = feature_names()
    snapshots = snapshot_frame(rows, names)
    settings = TrainingSettings(
        n_estimators=TREES, early_stopping_rounds=TREES, num_threads=THREADS
    )
    print(f"{rows:,} training rows x {len(names)} features, {TREES} trees, {THREADS} threads")
    split = split_by_time(snapshots, names)
    times: dict[str, list[float]] = {"ours": [], "lightgbm": []}
    # Alternate the two sides and keep each one's best: the machine is shared, and a busy
    # neighbour slows OpenMP threads by large factors for seconds at a time.
    for _ in range(args.repeats):
        times["ours"].append(ours(snapshots, names, settings))
        times["lightgbm"].append(plain(split.train.features, split.train.label, settings))
        print("  ".join(f"{side} {t[-1]:.1f} s" for side, t in times.items()), flush=True)
    best_ours, best_plain = min(times["ours"]), min(times["lightgbm"])
    print(f"ours: split + train with validation and early stopping, best {best_ours:.1f} s")
    print(f"plain lightgbm.train on the same matrix, best {best_plain:.1f} s")
    print(f"RESULT train_s={best_ours:.2f} ratio_vs_lightgbm={best_ours / best_plain:.2f}")


if __name__ == "__main__":
    main()
