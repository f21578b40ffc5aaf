"""The data scientist's loop on a real lake and MLflow store in tmp, through the CLI:
``propensity retrain`` twice (the second trains nothing and says why), a retrain that fails
mid-way (champion and score store untouched, exit 1 naming the step), then ``propensity
monitor`` on the scored population as it was and with prices tripled."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import mlflow
import polars as pl
import pytest
from typer.testing import CliRunner

from features.simulation import SimulationConfig, simulate
from features.simulation.writer import write_simulation
from propensity.cli import app

# The tests share one data directory per worker; each asks for the state it needs through
# the module fixtures below, so they pass in file order on one worker or split across two.
pytestmark = pytest.mark.xdist_group("retrain_monitor")
runner = CliRunner()
#: Features computed from prices or revenue: the only ones tripling prices may move.
PRICE_FEATURES = {
    "value_carts_abandoned", "mean_price_viewed", "max_price_viewed", "revenue",
    "avg_order_value", "refund_amount",
}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("loop")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield {
            "PROPENSITY_DATA_DIR": str(root / "data"),
            "PROPENSITY_LOG_LEVEL": "WARNING",
            "PROPENSITY_TRAINING__N_ESTIMATORS": "60",
            "PROPENSITY_TRAINING__NUM_THREADS": "1",
            "PROPENSITY_RETRAIN__INBOX": str(root / "inbox"),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }


@pytest.fixture(scope="module")
def shop(env: dict[str, str]) -> dict[str, Path]:
    data = simulate(SimulationConfig(visitors=3_000, days=90, seed=3))
    return write_simulation(data, Path(env["PROPENSITY_DATA_DIR"]).parent / "sim", "csv")


def _json(args: list[str], env: dict[str, str], code: int = 0) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == code, result.output
    payload: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return payload


def _champion(env: dict[str, str]) -> str | None:
    from training.registry import CHAMPION, alias_version
    from training.tracking import client_for, resolve_store

    client = client_for(resolve_store(Path(env["PROPENSITY_DATA_DIR"])))
    return alias_version(client, "propensity", CHAMPION)


@pytest.fixture(scope="module")
def first(env: dict[str, str], shop: dict[str, Path]) -> dict[str, object]:
    """The first retrain: ingests the shop and makes the first champion."""
    return _json(
        ["retrain", "--source", str(shop["events"]), "--contacts", str(shop["contacts"])], env
    )


@pytest.fixture(scope="module")
def scored(env: dict[str, str], first: dict[str, object]) -> dict[str, object]:
    """The champion's scoring run of the unchanged shop."""
    return _json(["score"], env)


def test_retrain_twice_promotes_once_and_says_why(
    env: dict[str, str], shop: dict[str, Path], first: dict[str, object]
) -> None:
    assert first["promoted"] is True and first["champion_after"] == first["challenger_version"]
    assert first["ingested"][0]["accepted"] > 0  # type: ignore[index]
    # The same events again, dropped in the inbox: nothing new, nothing trained.
    inbox = Path(env["PROPENSITY_RETRAIN__INBOX"])
    inbox.mkdir(exist_ok=True)
    shutil.copy(shop["events"], inbox / "events.csv")
    second = _json(["retrain"], env)
    assert second["promoted"] is False
    assert second["ingested"][0]["accepted"] == 0  # type: ignore[index]
    assert (inbox / "ingested" / "events.csv").is_file() and not (inbox / "events.csv").exists()
    assert second["data_hash"] == first["data_hash"]
    assert second["steps"]["train"] == "skipped"  # type: ignore[index]
    assert second["reason"].startswith(  # type: ignore[attr-defined]
        f"training data unchanged since champion v{first['champion_after']}"
    )
    assert second["champion_after"] == first["champion_after"] == _champion(env)


def test_retrain_without_the_shortcut_is_refused_by_the_gate(
    env: dict[str, str], first: dict[str, object]
) -> None:
    """Same data, trained again: the challenger must not win on the champion's test."""
    champion = _champion(env)
    third = _json(["retrain"], {**env, "PROPENSITY_RETRAIN__SKIP_UNCHANGED": "false"})
    assert third["promoted"] is False and third["steps"]["train"] == "ok"  # type: ignore[index]
    assert "does not beat champion on the same test" in third["reason"]  # type: ignore[operator]
    assert _champion(env) == champion


def test_a_failing_step_leaves_champion_and_score_store_and_exits_non_zero(
    env: dict[str, str], scored: dict[str, object]
) -> None:
    store = Path(env["PROPENSITY_DATA_DIR"]) / "serving" / "scores.sqlite"
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    champion = _champion(env)
    # More test snapshots than the lake has: training itself fails.
    broken = {**env, "PROPENSITY_TRAINING__TEST_SNAPSHOTS": "6"}
    result = runner.invoke(app, ["retrain"], env=broken)
    assert result.exit_code == 1
    assert "retrain failed at step 'train'" in result.output
    assert f"champion v{champion} unchanged" in result.output
    assert "Traceback" not in result.output
    assert _champion(env) == champion
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    runs = mlflow.search_runs(experiment_names=["propensity-retrain"], output_format="list")
    latest = max(runs, key=lambda run: run.info.start_time)
    assert latest.info.status == "FAILED"
    assert latest.data.tags["retrain.step.train"] == "failed"
    assert scored["model_version"] == champion


def test_monitor_on_the_unchanged_population_flags_nothing(
    env: dict[str, str], scored: dict[str, object]
) -> None:
    report = _json(["monitor"], env)
    assert report["flagged"] == [], report["flagged"]
    assert report["current_rows"] > 500 and report["reference_rows"] > 500  # type: ignore[operator]
    assert Path(str(report["report"])).is_file()


def test_monitor_flags_the_shifted_features_and_not_the_others(
    env: dict[str, str], shop: dict[str, Path], scored: dict[str, object]
) -> None:
    """Last in the file: it replaces the lake with the shifted events."""
    data_dir = Path(env["PROPENSITY_DATA_DIR"])
    events = pl.read_csv(shop["events"], infer_schema_length=None)
    shifted = data_dir.parent / "shifted.csv"
    events.with_columns(pl.col("price") * 3, pl.col("revenue") * 3).write_csv(shifted)
    shutil.rmtree(data_dir / "lake" / "events")
    assert _json(["ingest", str(shifted)], env)["accepted"] == events.height
    last = events.get_column("event_time").str.to_datetime(time_zone="UTC").max()
    assert isinstance(last, datetime)
    older = f"{last:%Y-%m}-01T00:00:00Z"
    # An older run (its purchases have arrived since), then the latest population.
    _json(["score", "--as-of", older], env)
    _json(["score", "--as-of", f"{last:%Y-%m-%d}T23:59:59Z"], env)
    report = _json(["monitor", "--fail-on-drift"], env, code=2)
    flagged = set(report["flagged"])  # type: ignore[call-overload]
    assert {"mean_price_viewed", "max_price_viewed"} <= flagged
    assert flagged - {"score"} <= PRICE_FEATURES, flagged
    realised = report["realised"]
    assert isinstance(realised, dict)
    assert realised["run_id"].startswith(f"{last:%Y%m}01T000000")
    assert 0 <= realised["roc_auc"] <= 1 and realised["positives"] > 0
    prom = Path(str(report["textfile"])).read_text()
    assert 'propensity_monitor_psi{column="mean_price_viewed"}' in prom
    assert "propensity_monitor_realised_roc_auc" in prom
    html = Path(str(report["report"])).read_text()
    assert "mean_price_viewed" in html and "psi.png" in html
    assert (Path(str(report["report"])).parent / "psi.png").is_file()
