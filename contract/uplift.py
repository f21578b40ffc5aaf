"""A per-visitor uplift model as training logs it and serving reads it: two LightGBM
boosters (fitted on the contacted and on the held-out visitors of past runs) and a small
spec. Self-contained (numpy, lightgbm, the feature configuration), like ``contract.scoring``.

Artifacts of the logged model::

    uplift.json   {"format_version": 1, "channel": "email" | "ads",
                   "feature_columns": [...],      model inputs, in matrix order
                   "feature_config": {...},       how they are computed (``contract.model``)
                   "validation": {...}}           what it was judged on (run, Qini figures)
    treated.txt   LightGBM model text: P(purchase | contacted, x)
    control.txt   LightGBM model text: P(purchase | not contacted, x)

``uplift(x) = P(purchase | contacted, x) − P(purchase | not contacted, x)``: only its
*ranking* is used by routing, which values each visitor with the effect measured on the
holdouts of the visitors ranked alike (``serving.policy.lift``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from features.definitions import FeatureConfig

UPLIFT_SPEC_FILE = "uplift.json"
TREATED_FILE = "treated.txt"
CONTROL_FILE = "control.txt"
UPLIFT_FORMAT_VERSION = 1
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UpliftScorer:
    """Predicts uplift from the spec and the two booster texts."""

    spec: dict[str, Any]
    treated_text: str
    control_text: str

    def __post_init__(self) -> None:
        import lightgbm as lgb

        if self.spec.get("format_version") != UPLIFT_FORMAT_VERSION:
            raise ValueError(f"uplift spec format {self.spec.get('format_version')!r} unknown")
        object.__setattr__(self, "_treated", lgb.Booster(model_str=self.treated_text))
        object.__setattr__(self, "_control", lgb.Booster(model_str=self.control_text))

    @classmethod
    def from_directory(cls, folder: Path) -> UpliftScorer:
        """From a downloaded artifact folder (the files may sit in a subfolder)."""
        found = sorted(folder.rglob(UPLIFT_SPEC_FILE))
        if not found:
            raise FileNotFoundError(f"no {UPLIFT_SPEC_FILE} under {folder}")
        spec = json.loads(found[0].read_text())
        texts = (
            next(iter(sorted(folder.rglob(name)))).read_text()
            for name in (TREATED_FILE, CONTROL_FILE)
        )
        return cls(spec, *texts)

    @property
    def channel(self) -> str:
        return str(self.spec["channel"])

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return tuple(self.spec["feature_columns"])

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.model_validate(self.spec["feature_config"])

    def uplift(self, features: Matrix) -> Matrix:
        """Per row of ``features`` (columns in ``feature_columns`` order)."""
        rows = np.ascontiguousarray(features, dtype=np.float64)
        if not len(rows):
            return np.zeros(0)
        treated = self._treated.predict(rows, num_threads=1)  # type: ignore[attr-defined]
        control = self._control.predict(rows, num_threads=1)  # type: ignore[attr-defined]
        return np.asarray(treated, dtype=np.float64) - np.asarray(control, dtype=np.float64)


def uplift_spec(
    channel: str,
    feature_columns: tuple[str, ...],
    feature_config: FeatureConfig,
    validation: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format_version": UPLIFT_FORMAT_VERSION,
        "channel": channel,
        "feature_columns": list(feature_columns),
        "feature_config": feature_config.model_dump(mode="json"),
        "validation": validation,
    }
