"""The MLflow edge: where runs go, and logging one training run with its single model.

Default store: SQLite at ``<data_dir>/mlflow/mlflow.db`` with artifacts under
``<data_dir>/mlflow/artifacts``; ``MLFLOW_TRACKING_URI`` in the environment overrides it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import contract.calibration
import contract.scoring
import contract.uplift
import training.pyfunc
from contract.integrity import digest_tags
from contract.scoring import BOOSTER_FILE, SPEC_FILE, Scorer
from contract.uplift import CONTROL_FILE, TREATED_FILE, UPLIFT_SPEC_FILE, UpliftScorer
from training.pyfunc import (
    BOOSTER_ARTIFACT,
    CONTROL_ARTIFACT,
    SPEC_ARTIFACT,
    TREATED_ARTIFACT,
    UPLIFT_SPEC_ARTIFACT,
    PropensityModel,
    UpliftModel,
)

MODEL_NAME = "propensity"
EXPERIMENT = "propensity"
#: Run artifact: a sample of the test features and scores, the monitoring reference.
REFERENCE_ARTIFACT = "monitoring/reference.parquet"


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    artifact_location: str | None  # None: the server decides (an overriding URI)


def resolve_store(data_dir: Path, environ: Mapping[str, str] | None = None) -> Store:
    """The embedded default under ``data_dir``, unless ``MLFLOW_TRACKING_URI`` is set."""
    env = os.environ if environ is None else environ
    root = (data_dir / "mlflow").resolve()
    embedded = f"sqlite:///{root / 'mlflow.db'}"
    # mlflow.set_tracking_uri (in client_for) exports MLFLOW_TRACKING_URI: our own embedded
    # store seen there again keeps its artifact folder (else artifacts would land in ./mlruns).
    configured = env.get("MLFLOW_TRACKING_URI")
    if configured and configured != embedded:
        return Store(configured, None)
    root.mkdir(parents=True, exist_ok=True)
    return Store(embedded, (root / "artifacts").as_uri())


def client_for(store: Store) -> MlflowClient:
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    return MlflowClient(store.tracking_uri, store.tracking_uri)


def experiment_id(client: MlflowClient, store: Store, name: str = EXPERIMENT) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    return str(client.create_experiment(name, artifact_location=store.artifact_location))


@contextmanager
def pickled_by_value() -> Iterator[None]:
    """Pickle the pyfunc and scoring code into the model, so loading needs no project code."""
    modules = (contract.calibration, contract.scoring, contract.uplift, training.pyfunc)
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


def log_scoring_model(
    spec: Mapping[str, Any],
    booster_text: str | None,
    example: pd.DataFrame,
    registered_model_name: str | None,
) -> Any:
    """Log the one model artifact in the active run; returns MLflow's ``ModelInfo``.

    Its artifacts hold ``scoring.json`` (feature order, calibrator, model parameters) and,
    for LightGBM, ``booster.txt``: serving can score from these two files alone.
    """
    with tempfile.TemporaryDirectory() as folder:
        spec_path = Path(folder) / SPEC_FILE
        spec_path.write_text(json.dumps(spec, indent=1))
        artifacts = {SPEC_ARTIFACT: str(spec_path)}
        if booster_text is not None:
            (Path(folder) / BOOSTER_FILE).write_text(booster_text)
            artifacts[BOOSTER_ARTIFACT] = str(Path(folder) / BOOSTER_FILE)
        scorer = Scorer.from_parts(dict(spec), booster_text)
        probability = scorer.probability(example[scorer.feature_columns].to_numpy(np.float64))
        signature = infer_signature(example, probability)
        with pickled_by_value():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=PropensityModel(),
                artifacts=artifacts,
                signature=signature,
                input_example=example,
                registered_model_name=registered_model_name,
                pip_requirements=_requirements(),
            )
        if registered_model_name and info.registered_model_version is not None:
            # Serving verifies its cached copy against these before loading it.
            files = {Path(path).name: Path(path).read_bytes() for path in artifacts.values()}
            client = MlflowClient()
            for tag, digest in digest_tags(files).items():
                client.set_model_version_tag(
                    registered_model_name, str(info.registered_model_version), tag, digest
                )
        return info


def log_uplift_model(
    spec: Mapping[str, Any],
    treated_text: str,
    control_text: str,
    example: pd.DataFrame,
    registered_model_name: str,
) -> str:
    """Log and register an uplift model (``contract.uplift``) in the active run; returns its
    registry URI, ``models:/NAME/VERSION``, which serving loads it by."""
    with tempfile.TemporaryDirectory() as folder:
        files = {
            UPLIFT_SPEC_ARTIFACT: (UPLIFT_SPEC_FILE, json.dumps(spec, indent=1)),
            TREATED_ARTIFACT: (TREATED_FILE, treated_text),
            CONTROL_ARTIFACT: (CONTROL_FILE, control_text),
        }
        artifacts = {}
        for key, (name, text) in files.items():
            (Path(folder) / name).write_text(text)
            artifacts[key] = str(Path(folder) / name)
        uplift = UpliftScorer(dict(spec), treated_text, control_text)
        predicted = uplift.uplift(example[list(uplift.feature_columns)].to_numpy(np.float64))
        with pickled_by_value():
            info = mlflow.pyfunc.log_model(
                name="uplift",
                python_model=UpliftModel(),
                artifacts=artifacts,
                signature=infer_signature(example, predicted),
                input_example=example,
                registered_model_name=registered_model_name,
                pip_requirements=_requirements(),
            )
    return f"models:/{registered_model_name}/{info.registered_model_version}"


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("mlflow", "numpy", "pandas", "lightgbm", "cloudpickle")
    ]


def log_json(payload: Any, name: str) -> None:
    mlflow.log_dict(json.loads(json.dumps(payload, default=str)), name)


def flat_metrics(table: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``model.part.metric`` -> value for MLflow (NaN dropped; MLflow rejects it in SQL)."""
    flat = {}
    for model, parts in table.items():
        for part in ("validation", "test"):
            for key, value in parts[part].items():
                if value == value:
                    flat[f"{model}.{part}.{key}"] = float(value)
    return flat
