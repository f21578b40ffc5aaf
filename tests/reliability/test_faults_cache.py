"""The model cache is a cache: a damaged compiled object or cached ``scoring.json`` is
detected by its checksum before use and rebuilt or fetched again from the registry; it never
aborts the process (a mapped bad object file did: exit 134/139, the API crash-looping)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from contract.integrity import file_sha256
from serving.api.app import create_app
from serving.model.compiled import compiled_model
from serving.model.registry import ModelUnavailable, load_registered_model
from serving.testing import tiny_spec
from tests.integration.serving.world import World, register_tiny_model, settings
from tests.reliability.conftest import KEY

lleaves_missing = pytest.mark.skipif(
    importlib.util.find_spec("lleaves") is None, reason="lleaves is not installed"
)

_DAMAGE = {
    "random_bytes": lambda data: os.urandom(len(data)),
    "truncated": lambda data: data[: len(data) // 3],
    "empty": lambda data: b"",
}

_LOAD_AND_PREDICT = """
import sys
from pathlib import Path
import numpy as np
from serving.model.compiled import compiled_model
text = Path(sys.argv[1]).read_text()
model = compiled_model(text, Path(sys.argv[2]), timeout_seconds=120)
print(model.predict(np.zeros((2, model.num_feature()), dtype=np.float64)))
"""


def _damage(path: Path, how: str) -> None:
    path.write_bytes(_DAMAGE[how](path.read_bytes()))


@lleaves_missing
@pytest.mark.parametrize("how", sorted(_DAMAGE))
def test_a_damaged_compiled_object_is_compiled_again_not_mapped(tmp_path: Path, how: str) -> None:
    _, text = tiny_spec(20)
    compiled_model(text, tmp_path / "compiled", timeout_seconds=120)
    (library,) = (tmp_path / "compiled").glob("*.raw.o")
    _damage(library, how)
    booster = tmp_path / "booster.txt"
    booster.write_text(text)
    # In a child: mapping the damaged object used to abort (134) or crash (139) the process.
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_PREDICT, str(booster), str(tmp_path / "compiled")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "compiling again" in done.stderr


def _registry_folder(shared: World, name: str, version: str) -> Path:
    client = MlflowClient(shared.tracking_uri, registry_uri=shared.tracking_uri)
    return Path(urlparse(client.get_model_version_download_uri(name, version)).path)


def test_versions_carry_the_checksums_of_what_serving_reads(shared: World) -> None:
    name = "cache-tags"
    version = register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name)
    tags = (
        MlflowClient(shared.tracking_uri, shared.tracking_uri).get_model_version(name, version).tags
    )
    folder = _registry_folder(shared, name, version)
    assert tags["scoring_sha256"] == file_sha256(next(folder.rglob("scoring.json")))
    assert tags["booster_sha256"] == file_sha256(next(folder.rglob("booster.txt")))


@pytest.mark.parametrize("broken", ["scoring.json", "booster.txt", "MLmodel"])
def test_a_damaged_cached_artifact_is_downloaded_again(
    shared: World, tmp_path: Path, broken: str
) -> None:
    name = "cache-heal"
    register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=3)
    load = lambda: load_registered_model(  # noqa: E731
        f"models:/{name}@champion",
        tracking_uri=shared.tracking_uri,
        cache_dir=tmp_path,
        predictor="booster",
    )
    first = load()
    cached = next((tmp_path / "artifacts").rglob(broken))
    intact = cached.read_bytes()
    cached.write_text("{\n")  # "Expecting value: line 2 column 1" for a JSON file
    again = load()
    assert again.info.version == first.info.version
    assert cached.read_bytes() == intact, "the cache was not healed from the registry"


def test_a_registry_copy_that_fails_its_checksum_is_a_clear_error(
    shared: World, tmp_path: Path
) -> None:
    name = "cache-bad-registry"
    version = register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name)
    spec_file = next(_registry_folder(shared, name, version).rglob("scoring.json"))
    spec = json.loads(spec_file.read_text())
    spec_file.write_text(json.dumps({**spec, "calibrator": None}))
    with pytest.raises(ModelUnavailable, match="does not match the checksum logged"):
        load_registered_model(
            f"models:/{name}@champion",
            tracking_uri=shared.tracking_uri,
            cache_dir=tmp_path,
            predictor="booster",
        )


@lleaves_missing
def test_the_api_restarts_ready_on_a_damaged_cache(shared: World) -> None:
    name = "cache-api"
    register_tiny_model(shared.tracking_uri, shared.root / "artifacts", name=name, seed=4)
    paths = shared.paths(name)
    compiled = settings(model_uri=f"models:/{name}@champion", predictor="lleaves")
    with TestClient(create_app(compiled, paths)) as live:
        assert live.get("/readyz").status_code == 200
    for library in paths.model_cache_dir.rglob("*.raw.o"):
        _damage(library, "random_bytes")
    spec = next((paths.model_cache_dir / "artifacts").rglob("scoring.json"))
    spec.write_text("{\n")
    with TestClient(create_app(compiled, paths)) as live:
        assert live.get("/readyz").status_code == 200, live.get("/readyz").text
        for library in paths.model_cache_dir.rglob("*.raw.o"):
            _damage(library, "empty")
        reloaded = live.post("/v1/admin/reload", headers=KEY)
        assert reloaded.status_code == 200, reloaded.text
        assert live.get("/v1/model").json()["predictor"] == "lleaves"
