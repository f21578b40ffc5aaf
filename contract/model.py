"""What a model needs to be scored as it was trained: the *model contract* in its spec.

A model is a function of features, and the features are a function of events *and* of the
feature configuration (the lookback window, the session timeout, the shop's local time
offset). Its probability is of a purchase within a label horizon. Both travel with the model
in its scoring spec (``scoring.json``, ``contract.scoring``), format 2::

    feature_config  {"lookback": "P30D", "session_timeout": "PT30M",
                     "local_time_offset": "PT0S"}     (ISO 8601 durations)
                    null: the inputs came from a ready feature table, not from events
    label           {"horizon": "P14D", "prediction_gap": "PT0S"}   (null when unknown)

Serving builds every feature of a model from its ``feature_config``, never from its own
defaults; a spec without one (format 1, written before models carried it) cannot be scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.scoring import FORMAT_VERSION
from features.definitions import FeatureConfig


class ContractError(ValueError):
    """A spec that does not say how its model's inputs are computed; the message says what
    to do."""


class LabelWindow(BaseModel):
    """What the model's probability is of: a purchase in ``(T + prediction_gap, T +
    prediction_gap + horizon]`` after the scoring time ``T``."""

    model_config = ConfigDict(frozen=True)

    horizon: timedelta = Field(gt=timedelta(0))
    prediction_gap: timedelta = Field(timedelta(0), ge=timedelta(0))

    @property
    def reach(self) -> timedelta:
        """How long after ``T`` the outcome is known."""
        return self.prediction_gap + self.horizon


class ModelContract(BaseModel):
    """The parts of a scoring spec that say how to compute the model's inputs and what its
    output means."""

    model_config = ConfigDict(frozen=True)

    feature_columns: tuple[str, ...]
    feature_config: FeatureConfig | None = Field(
        description="how the inputs are computed from events; None: from a ready table"
    )
    label: LabelWindow | None = None

    def spec_fields(self) -> dict[str, Any]:
        """The contract as the spec carries it (merged into ``scoring.json``)."""
        return {
            "format_version": FORMAT_VERSION,
            "feature_config": None
            if self.feature_config is None
            else self.feature_config.model_dump(mode="json"),
            "label": None if self.label is None else self.label.model_dump(mode="json"),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ModelContract:
        """The contract of a spec; ``ContractError`` when the spec predates contracts."""
        if spec.get("format_version") != FORMAT_VERSION or "feature_config" not in spec:
            raise ContractError(
                "the model records no feature configuration (lookback, session timeout, "
                "local time offset): it was trained before models carried one, so the "
                "features it was trained on are unknown; retrain it (propensity train) and "
                "promote the new version"
            )
        return cls(
            feature_columns=tuple(spec["feature_columns"]),
            feature_config=spec["feature_config"],
            label=spec.get("label"),
        )

    def serving_config(self) -> FeatureConfig:
        """The configuration to compute this model's inputs with; ``ContractError`` for a
        model trained on a ready table, whose inputs serving cannot compute from events."""
        if self.feature_config is None:
            raise ContractError(
                "the model was trained on a ready feature table, not on features computed "
                "from events: serving cannot compute its inputs; train it from the lake"
            )
        return self.feature_config


def feature_params(config: FeatureConfig | None, label: LabelWindow | None) -> dict[str, str]:
    """The contract as MLflow run params (``features.*``, ``label.*``; ISO 8601 durations),
    so runs can be searched and compared by window."""
    params: dict[str, str] = {}
    if config is not None:
        params |= {f"features.{k}": str(v) for k, v in config.model_dump(mode="json").items()}
    if label is not None:
        params |= {f"label.{k}": str(v) for k, v in label.model_dump(mode="json").items()}
    return params
