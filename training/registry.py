"""Registered model ``propensity`` with aliases ``champion`` and ``challenger`` (never stages).

A new model becomes ``challenger``. At training time the current champion is scored on the
challenger's out-of-time test set, and both results are tagged on the challenger's version,
so ``promote`` compares the two on the same test. Every promotion decision leaves audit tags.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contract.model import ContractError, ModelContract
from contract.scoring import BOOSTER_FILE, SPEC_FILE, Scorer
from features.definitions import FeatureConfig
from training.metrics import evaluate_probabilities

log = logging.getLogger(__name__)
CHAMPION = "champion"
CHALLENGER = "challenger"
#: Version tags written at training time (metrics of this version and of the champion then).
TEST_METRICS_TAG = "test_metrics"
CHAMPION_COMPARED_TAG = "champion_version_compared"
CHAMPION_METRICS_TAG = "champion_test_metrics"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def promotion_decision(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    force: bool = False,
    *,
    min_auc_gain: float = 0.0,
) -> Decision:
    """Promote only when the challenger has higher ROC-AUC (by more than ``min_auc_gain``)
    *and* lower log loss than the champion on the same out-of-time test; with no champion,
    promote; ``force`` overrides. The margin keeps a retrain on the same events, whose
    features differ only by float summation order, from winning by noise."""
    if champion is None:
        return Decision(True, "no champion yet")
    auc, champion_auc = challenger["roc_auc"], champion["roc_auc"]
    loss, champion_loss = challenger["log_loss"], champion["log_loss"]
    comparison = (
        f"ROC-AUC {auc:.4f} vs {champion_auc:.4f}, log loss {loss:.4f} vs {champion_loss:.4f}"
    )
    if min_auc_gain > 0:
        comparison += f" (ROC-AUC must gain more than {min_auc_gain:g})"
    if auc - champion_auc > min_auc_gain and loss < champion_loss:
        return Decision(True, f"challenger beats champion on the same test: {comparison}")
    if force:
        return Decision(True, f"forced although the challenger does not beat it: {comparison}")
    return Decision(False, f"challenger does not beat champion on the same test: {comparison}")


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load_scorer(model_uri: str) -> Scorer:
    """The scoring spec and booster of a logged model, without the pyfunc wrapper: the same
    files serving reads (``<model>/artifacts/scoring.json`` and ``booster.txt``)."""
    with tempfile.TemporaryDirectory() as folder:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=folder))
        spec = json.loads((local / "artifacts" / SPEC_FILE).read_text())
        booster = local / "artifacts" / BOOSTER_FILE
        return Scorer.from_parts(spec, booster.read_text() if booster.exists() else None)


def _same_features(scorer: Scorer, feature_config: FeatureConfig | None) -> bool:
    """The champion's inputs mean what the test set's columns mean: computed with the same
    feature configuration (a champion without one cannot be compared)."""
    try:
        contract = ModelContract.from_spec(scorer.spec)
    except ContractError:
        return False
    return contract.feature_config == feature_config


def champion_on_test(
    client: MlflowClient,
    name: str,
    features: Mapping[str, npt.NDArray[np.float64]],
    label: npt.ArrayLike,
    feature_config: FeatureConfig | None = None,
) -> tuple[str, dict[str, float]] | None:
    """(version, test metrics) of the current champion on this test set (its features
    computed with ``feature_config``); None without a champion, when the test set lacks the
    champion's features, or when the champion reads features computed another way."""
    version = alias_version(client, name, CHAMPION)
    if version is None:
        return None
    scorer = load_scorer(f"models:/{name}/{version}")
    if not set(scorer.feature_columns) <= set(features):
        return None
    if not _same_features(scorer, feature_config):
        log.info("champion v%s was trained with another feature configuration", version)
        return None
    matrix = np.column_stack([features[c] for c in scorer.feature_columns])
    return version, evaluate_probabilities(label, scorer.probability(matrix))


def mark_challenger(
    client: MlflowClient,
    name: str,
    version: str,
    test_metrics: Mapping[str, float],
    champion: tuple[str, Mapping[str, float]] | None,
) -> None:
    client.set_model_version_tag(name, version, TEST_METRICS_TAG, json.dumps(test_metrics))
    if champion is not None:
        client.set_model_version_tag(name, version, CHAMPION_COMPARED_TAG, champion[0])
        client.set_model_version_tag(name, version, CHAMPION_METRICS_TAG, json.dumps(champion[1]))
    client.set_registered_model_alias(name, CHALLENGER, version)


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    challenger_version: str | None
    champion_version: str | None  # the champion after the decision

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _champion_metrics(tags: Mapping[str, str], champion: str | None) -> dict[str, float] | None:
    if champion is None or tags.get(CHAMPION_COMPARED_TAG) != champion:
        return None
    return dict(json.loads(tags[CHAMPION_METRICS_TAG]))


def promote(
    client: MlflowClient,
    now: datetime,
    *,
    name: str = "propensity",
    force: bool = False,
    min_auc_gain: float = 0.0,
) -> PromotionResult:
    """Move ``champion`` to the challenger when it wins (see ``promotion_decision``)."""
    challenger = alias_version(client, name, CHALLENGER)
    champion = alias_version(client, name, CHAMPION)
    if challenger is None:
        return PromotionResult(False, "no challenger to promote", None, champion)
    if challenger == champion:
        return PromotionResult(False, "the challenger is already champion", challenger, champion)
    tags = client.get_model_version(name, challenger).tags
    challenger_metrics = json.loads(tags[TEST_METRICS_TAG])
    champion_metrics = _champion_metrics(tags, champion)
    if champion is not None and champion_metrics is None and not force:
        decision = Decision(
            False,
            f"champion v{champion} was not scored on the challenger's test set (it changed, "
            "lacks features, or reads features computed with another window): retrain, or "
            "--force",
        )
    else:
        decision = promotion_decision(
            challenger_metrics, champion_metrics, force, min_auc_gain=min_auc_gain
        )
        if champion is not None and champion_metrics is None:
            decision = Decision(True, f"forced without comparison to champion v{champion}")
    _audit(client, name, challenger, now, decision, challenger_metrics, champion_metrics, champion)
    if not decision.promote:
        return PromotionResult(False, decision.reason, challenger, champion)
    client.set_registered_model_alias(name, CHAMPION, challenger)
    client.delete_registered_model_alias(name, CHALLENGER)
    return PromotionResult(True, decision.reason, challenger, challenger)


def _audit(
    client: MlflowClient,
    name: str,
    version: str,
    now: datetime,
    decision: Decision,
    metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    champion: str | None,
) -> None:
    prefix = "promotion" if decision.promote else "promotion_refused"
    audit = {
        f"{prefix}.at": now.isoformat(),
        f"{prefix}.reason": decision.reason,
        f"{prefix}.previous_champion": champion or "",
        f"{prefix}.metrics": json.dumps(
            {
                "challenger": {k: metrics[k] for k in ("roc_auc", "log_loss")},
                "champion": None
                if champion_metrics is None
                else {k: champion_metrics[k] for k in ("roc_auc", "log_loss")},
            }
        ),
    }
    for key, value in audit.items():
        client.set_model_version_tag(name, version, key, value)
