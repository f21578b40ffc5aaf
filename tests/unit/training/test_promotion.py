"""The promotion gate: a challenger must win on ROC-AUC and log loss on the same test."""

from __future__ import annotations

from pathlib import Path

from training.registry import promotion_decision
from training.tracking import resolve_store

CHAMPION = {"roc_auc": 0.80, "log_loss": 0.30}


def test_a_worse_challenger_is_refused() -> None:
    decision = promotion_decision({"roc_auc": 0.78, "log_loss": 0.32}, CHAMPION)
    assert not decision.promote
    assert "does not beat" in decision.reason


def test_winning_on_one_metric_only_is_not_enough() -> None:
    assert not promotion_decision({"roc_auc": 0.81, "log_loss": 0.31}, CHAMPION).promote
    assert not promotion_decision({"roc_auc": 0.79, "log_loss": 0.29}, CHAMPION).promote


def test_a_better_challenger_or_no_champion_is_promoted() -> None:
    better = promotion_decision({"roc_auc": 0.81, "log_loss": 0.29}, CHAMPION)
    assert better.promote and "beats" in better.reason
    assert promotion_decision({"roc_auc": 0.5, "log_loss": 1.0}, None).promote


def test_a_gain_within_the_margin_is_refused() -> None:
    """A retrain on the same events wins or loses by float noise: the margin refuses it."""
    noise = {"roc_auc": 0.80004, "log_loss": 0.29999}
    assert promotion_decision(noise, CHAMPION).promote
    refused = promotion_decision(noise, CHAMPION, min_auc_gain=0.001)
    assert not refused.promote and "must gain more than 0.001" in refused.reason
    clear = promotion_decision({"roc_auc": 0.802, "log_loss": 0.29}, CHAMPION, min_auc_gain=0.001)
    assert clear.promote


def test_force_promotes_and_says_so() -> None:
    forced = promotion_decision({"roc_auc": 0.7, "log_loss": 0.4}, CHAMPION, force=True)
    assert forced.promote and forced.reason.startswith("forced")


def test_tracking_store_defaults_under_data_dir_and_env_overrides(tmp_path: Path) -> None:
    store = resolve_store(tmp_path, environ={})
    assert store.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert store.artifact_location == (tmp_path.resolve() / "mlflow" / "artifacts").as_uri()
    override = resolve_store(tmp_path, environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert override.tracking_uri == "http://127.0.0.1:5000"
    assert override.artifact_location is None


def test_our_own_store_exported_by_mlflow_keeps_its_artifact_folder(tmp_path: Path) -> None:
    """``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI; seeing our embedded store
    there again must not drop its artifact folder (artifacts would go to ./mlruns)."""
    default = resolve_store(tmp_path, environ={})
    again = resolve_store(tmp_path, environ={"MLFLOW_TRACKING_URI": default.tracking_uri})
    assert again == default
