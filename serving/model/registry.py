"""Load the champion (or any registered version) through the MLflow registry.

Edge module: talks to MLflow. The artifact is downloaded once per (name, version) into the
serving cache directory, so a restart or a reload of the same version reads local files.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contract.integrity import logged_digests
from contract.model import ContractError, ModelContract
from contract.scoring import SPEC_FILE
from features.definitions import FEATURE_COLUMNS, FeatureConfig
from serving.model.cache import mismatch, write_manifest
from serving.model.compiled import CompileError
from serving.model.spec import COMPILE_TIMEOUT_SECONDS, SpecModel
from serving.settings import PredictorKind

log = logging.getLogger(__name__)

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


#: MLflow error codes that mean "not registered", as opposed to "registry unreachable".
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


class ModelUnavailable(RuntimeError):
    """No model could be loaded; the message says why, for people."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    alias: str | None
    version: str
    run_id: str | None
    model_uri: str
    kind: str
    predictor: str
    feature_names: tuple[str, ...]
    feature_config: FeatureConfig
    horizon: timedelta | None
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: datetime | None = None


@dataclass(frozen=True)
class LoadedModel:
    model: SpecModel
    info: ModelInfo

    @property
    def feature_config(self) -> FeatureConfig:
        """How this model's inputs are computed: every path that scores with it uses this."""
        return self.model.feature_config

    @property
    def contract(self) -> ModelContract:
        return self.model.contract


def _version(client: Any, name: str, alias: str | None, version: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as problem:
        wanted = f"alias @{alias}" if alias else f"version {version}"
        said = problem.message if hasattr(problem, "message") else str(problem)
        if problem.error_code not in _ABSENT:
            raise ModelUnavailable(
                f"the model registry did not answer for {name!r} {wanted}: {said}"
            ) from problem
        raise ModelUnavailable(
            f"no registered model {name!r} with {wanted}: train and promote one first ({said})"
        ) from problem


def _run_facts(client: Any, run_id: str | None) -> tuple[dict[str, float], datetime | None]:
    if not run_id:
        return {}, None
    try:
        run = client.get_run(run_id)
    except Exception:  # metrics are informative; a missing run must not block serving
        log.warning("run %s of the model is not readable; serving without its metrics", run_id)
        return {}, None
    started = run.info.end_time or run.info.start_time
    trained_at = datetime.fromtimestamp(started / 1000, tz=UTC) if started else None
    return {k: float(v) for k, v in run.data.metrics.items()}, trained_at


def _download(artifact_uri: str, target: Path, tracking_uri: str | None) -> None:
    """Download into a private folder, then move it into place (never a half-copied model)."""
    import mlflow

    staging = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    mlflow.artifacts.download_artifacts(
        artifact_uri=artifact_uri, dst_path=str(staging), tracking_uri=tracking_uri
    )
    shutil.rmtree(target, ignore_errors=True)
    try:
        staging.replace(target)
    except OSError:  # another process moved the same version into place first
        shutil.rmtree(staging, ignore_errors=True)
    log.info("downloaded %s to %s", artifact_uri, target)


def _matched(model_uri: str) -> re.Match[str]:
    matched = REGISTRY_URI.match(model_uri)
    if matched is None:
        raise ModelUnavailable(
            f"model URI {model_uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return matched


def _artifact(
    client: Any,
    name: str,
    version: Any,
    cache_dir: Path,
    tracking_uri: str | None,
    *,
    marker: str = SPEC_FILE,
    refresh: bool = False,
) -> Path:
    """The version's artifact folder in the cache, verified (``serving.model.cache``) and
    downloaded again when it is missing, altered or ``refresh`` is asked for."""
    target = cache_dir / "artifacts" / f"{name}-v{version.version}"
    logged = logged_digests(version.tags)
    why = "refresh asked" if refresh else mismatch(target, marker, logged)
    if why is None:
        return target
    if target.exists():
        log.warning("cached artifact %s not used (%s): downloading it again", target, why)
    source = client.get_model_version_download_uri(name, version.version)
    _download(source, target, tracking_uri)
    write_manifest(target)
    why = mismatch(target, marker, logged)
    if why is not None:
        raise ModelUnavailable(
            f"{name} version {version.version}: the registry's copy of its artifact is not "
            f"usable ({why})"
        )
    return target


def registered_contract(
    model_uri: str, version: str, *, tracking_uri: str | None, cache_dir: Path
) -> ModelContract:
    """The contract of version ``version`` of the model ``model_uri`` names (any alias or
    version of it): how that version's inputs are computed and what its label window is.
    For the jobs that look back at a run scored by a version that may no longer be served."""
    from mlflow import MlflowClient

    name = _matched(model_uri)["name"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = _version(client, name, None, version)
    target = _artifact(client, name, found, cache_dir, tracking_uri)
    spec = json.loads(sorted(target.rglob(SPEC_FILE))[0].read_text())
    try:
        return ModelContract.from_spec(spec)
    except ContractError as problem:
        raise ModelUnavailable(f"{name} version {version}: {problem}") from problem


def _load_verified(
    client: Any,
    name: str,
    version: Any,
    cache_dir: Path,
    tracking_uri: str | None,
    predictor: PredictorKind,
    compile_timeout_seconds: float,
) -> SpecModel:
    """The version's model from its verified cached artifact; a copy that still fails to
    read is fetched again once before the version counts as unavailable."""
    # The causes below name the server's files: they go to the log, the message to callers.
    for attempt in ("cached", "downloaded again"):
        try:
            target = _artifact(
                client, name, version, cache_dir, tracking_uri, refresh=attempt != "cached"
            )
        except ModelUnavailable:
            raise
        except Exception as problem:
            log.error(
                "artifact of %s version %s not downloaded: %s", name, version.version, problem
            )
            raise ModelUnavailable(
                f"{name} version {version.version}: its artifact could not be downloaded from "
                f"the registry ({type(problem).__name__}; the detail is in the server's log)"
            ) from problem
        try:
            return SpecModel.from_directory(
                target,
                predictor=predictor,
                cache_dir=cache_dir / "compiled",
                compile_timeout_seconds=compile_timeout_seconds,
            )
        except (ContractError, CompileError) as problem:  # says what is wrong, for people
            raise ModelUnavailable(f"{name} version {version.version}: {problem}") from problem
        except (OSError, ValueError, KeyError, TypeError) as problem:
            log.error(
                "artifact of %s version %s (%s) not loaded: %s",
                name,
                version.version,
                attempt,
                problem,
            )
            failure = problem
    raise ModelUnavailable(
        f"{name} version {version.version}: its artifact is incomplete or unreadable, also as "
        f"downloaded again ({type(failure).__name__}; the detail is in the server's log)"
    ) from failure


def load_registered_model(
    model_uri: str,
    *,
    tracking_uri: str | None,
    cache_dir: Path,
    predictor: PredictorKind,
    compile_timeout_seconds: float = COMPILE_TIMEOUT_SECONDS,
) -> LoadedModel:
    """Resolve ``models:/name@alias`` (or ``models:/name/version``), download, load. A
    version whose spec does not record how its inputs are computed is ``ModelUnavailable``
    (retrain it): it is never scored with the defaults."""
    matched = _matched(model_uri)
    from mlflow import MlflowClient

    name, alias = matched["name"], matched["alias"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = _version(client, name, alias, matched["version"])
    model = _load_verified(
        client, name, version, cache_dir, tracking_uri, predictor, compile_timeout_seconds
    )
    unknown = [c for c in model.feature_names if c not in FEATURE_COLUMNS]
    if unknown:
        raise ModelUnavailable(
            f"{name} version {version.version} needs features this code does not compute: {unknown}"
        )
    metrics, trained_at = _run_facts(client, version.run_id)
    # Training tags each version with its out-of-time test metrics: the ones to show.
    tagged = (version.tags or {}).get("test_metrics")
    if tagged:
        try:
            metrics = {k: float(v) for k, v in json.loads(tagged).items()}
        except (ValueError, TypeError, AttributeError):
            log.warning("version %s has unreadable test_metrics tag", version.version)
    info = ModelInfo(
        name=name,
        alias=alias,
        version=str(version.version),
        run_id=version.run_id,
        model_uri=model_uri,
        kind=model.kind,
        predictor=model.predictor,
        feature_names=model.feature_names,
        feature_config=model.feature_config,
        horizon=None if model.contract.label is None else model.contract.label.horizon,
        metrics=metrics,
        trained_at=trained_at,
    )
    return LoadedModel(model, info)


def alias_version(model_uri: str, tracking_uri: str | None) -> str | None:
    """The version an alias URI points at now; None for a version URI or when unknown."""
    from mlflow import MlflowClient

    matched = REGISTRY_URI.match(model_uri)
    if matched is None or matched["alias"] is None:
        return None
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        return str(client.get_model_version_by_alias(matched["name"], matched["alias"]).version)
    except Exception:  # a registry hiccup is not an outage: the caller retries later
        log.warning("could not resolve %s", model_uri, exc_info=True)
        return None


def download_version(
    model_uri: str, *, tracking_uri: str | None, cache_dir: Path, marker: str
) -> Path:
    """The artifact folder of the registered version ``model_uri`` names, in the cache
    (downloaded the first time: when no file named ``marker`` is there yet). For models
    other than the champion, read by their own module (``serving.model.uplift``)."""
    from mlflow import MlflowClient

    matched = _matched(model_uri)
    name = matched["name"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = _version(client, name, matched["alias"], matched["version"])
    return _artifact(client, name, version, cache_dir, tracking_uri, marker=marker)
