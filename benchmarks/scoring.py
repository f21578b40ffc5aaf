"""Benchmark: score and route 1M visitors from precomputed features, next to raw
``Booster.predict`` on the same matrix in the same run.

    python -m benchmarks.scoring [--visitors 1000000] [--trees 200] [--workdir DIR]

Untimed setup: features of a small simulated lake (``features.batch``), tiled to
``--visitors`` rows with distinct visitor ids, contactability drawn at the simulator's rates;
a LightGBM model with ``--trees`` trees on every feature, trained on those features, with a
sigmoid calibrator, loaded through serving's scoring-spec loader. Its compiled predictor
(``lleaves``) is cached per model text in the work folder, so a second run skips the ~10 s
compile. Timed, best of ``--repeats``:

- ``booster``: ``Booster.predict(X, raw_score=True)`` on all cores (the baseline);
- ``compiled``: the compiled predictor alone (lleaves if installed, else the Booster);
- ``score+route``: ``serving.model.scoring.score_and_route``: model inputs, calibrated
  probabilities, expected values, consent, suppression, ad budget ranking and the hashed
  holdout, exactly what the batch job runs.

Probabilities are checked against the Booster path with ``assert_allclose``.
Last line: ``RESULT visitors_per_s=… ratio_vs_booster=…``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

CORES = os.cpu_count() or 1


def feature_matrix(
    visitors: int, seed: int
) -> tuple[np.ndarray, pl.Series, np.ndarray, np.ndarray]:
    """(features in FEATURE_COLUMNS order, visitor ids, email_status, ads_consent)."""
    from features.batch import build_features, collect
    from features.definitions import FEATURE_COLUMNS
    from features.simulation import SimulationConfig, simulate

    start = datetime(2024, 1, 1, tzinfo=UTC)
    data = simulate(SimulationConfig(visitors=20_000, days=40, seed=seed, start=start))
    features = collect(build_features(data.events, start + timedelta(days=40)))
    base = features.select(pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS).to_numpy()
    rows = np.resize(np.arange(len(base)), visitors)
    matrix = np.ascontiguousarray(base[rows])
    ids = pl.Series("visitor_id", [f"v{i:08d}" for i in range(visitors)])
    contacts = data.contacts.sample(visitors, with_replacement=True, seed=seed)
    return (
        matrix,
        ids,
        contacts.get_column("email_status").to_numpy(),
        contacts.get_column("ads_consent").to_numpy(),
    )


def train_model(matrix: np.ndarray, trees: int, seed: int) -> tuple[dict[str, Any], str]:
    import lightgbm

    from features.definitions import FEATURE_COLUMNS

    rng = np.random.default_rng(seed)
    sample = matrix[rng.choice(len(matrix), min(len(matrix), 100_000), replace=False)]
    position = {c: i for i, c in enumerate(FEATURE_COLUMNS)}
    logit = (
        -4
        + 0.6 * np.nan_to_num(sample[:, position["n_add_to_cart_1_7d"]])
        + 0.2 * np.nan_to_num(sample[:, position["n_sessions"]])
        - 0.05 * np.nan_to_num(sample[:, position["days_since_last_event"]], nan=30)
    )
    label = rng.uniform(size=len(sample)) < 1 / (1 + np.exp(-logit))
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "learning_rate": 0.05,
        "min_child_samples": 20,
        "verbosity": -1,
        "seed": seed,
        "num_threads": CORES,
    }
    booster = lightgbm.train(
        params,
        lightgbm.Dataset(sample, label.astype(int), feature_name=list(FEATURE_COLUMNS)),
        trees,
    )
    from contract.model import ModelContract
    from features.definitions import FeatureConfig

    contract = ModelContract(feature_columns=FEATURE_COLUMNS, feature_config=FeatureConfig())
    spec = {
        "kind": "lightgbm",
        "feature_columns": list(FEATURE_COLUMNS),
        "calibrator": {"method": "sigmoid", "slope": 0.95, "intercept": -0.05},
        "booster_file": "booster.txt",
        **contract.spec_fields(),
    }
    return spec, booster.model_to_string()


def best_of(repeats: int, step: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "propensity-bench-scoring"
    )
    args = parser.parse_args(argv)

    from numpy.testing import assert_allclose

    from contract.calibration import apply_calibrator
    from serving.model.scoring import score_and_route
    from serving.model.spec import SpecModel
    from serving.policy.routing import RoutingPolicy

    matrix, ids, email, ads = feature_matrix(args.visitors, args.seed)
    spec, text = train_model(matrix, args.trees, args.seed)
    started = time.perf_counter()
    model = SpecModel.from_parts(spec, text, predictor="auto", cache_dir=args.workdir / "compiled")
    load_s = time.perf_counter() - started
    policy = RoutingPolicy()

    def booster() -> np.ndarray:
        return np.asarray(model.scorer.booster.predict(matrix, raw_score=True, num_threads=CORES))

    def compiled() -> np.ndarray:
        return model.raw_score(matrix, threads=CORES)

    def ours() -> object:
        return score_and_route(
            model,
            matrix,
            visitor_id=ids,
            email_status=email,
            ads_consent=ads,
            policy=policy,
            threads=CORES,
        )

    reference = apply_calibrator(spec["calibrator"], booster())
    scored = score_and_route(
        model,
        matrix,
        visitor_id=ids,
        email_status=email,
        ads_consent=ads,
        policy=policy,
        threads=CORES,
    )
    assert_allclose(scored.score, reference, rtol=1e-12, atol=1e-15)
    booster_s = best_of(args.repeats, booster)
    compiled_s = best_of(args.repeats, compiled)
    ours_s = best_of(args.repeats, ours)
    n = args.visitors
    names, counts = np.unique(scored.routed.route_names(), return_counts=True)
    routes = {str(k): int(v) for k, v in zip(names, counts, strict=True)}
    print(
        f"visitors={n:,} trees={args.trees} features={matrix.shape[1]} cores={CORES} "
        f"predictor={model.predictor} (load/compile {load_s:.1f} s)"
    )
    print(f"{'step':<14}{'seconds':>10}{'rows/s':>14}")
    for name, seconds in (
        ("booster", booster_s),
        ("compiled", compiled_s),
        ("score+route", ours_s),
    ):
        print(f"{name:<14}{seconds:>10.3f}{n / seconds:>14,.0f}")
    print(f"routes: {routes}; max |p - booster p| checked with assert_allclose (rtol 1e-12)")
    print(f"RESULT visitors_per_s={n / ours_s:.0f} ratio_vs_booster={booster_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
