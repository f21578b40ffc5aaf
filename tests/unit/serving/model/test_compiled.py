"""lleaves models compile once per booster text, in a child process, and load from the cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from serving.model.compiled import CompileError, compiled_model
from serving.model.spec import SpecModel
from serving.testing import tiny_spec, tiny_training_data

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lleaves") is None, reason="lleaves is not installed"
)


def test_compiles_once_then_loads_the_cached_object(tmp_path: Path) -> None:
    spec, text = tiny_spec(20)
    first = compiled_model(text, tmp_path, timeout_seconds=120)
    (library,) = tmp_path.glob("*.raw.o")
    built = library.stat().st_mtime_ns
    second = compiled_model(text, tmp_path, timeout_seconds=120)
    assert library.stat().st_mtime_ns == built, "a cached model was compiled again"
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"
    features, _ = tiny_training_data(rows=50, seed=3)
    booster = SpecModel.from_parts(spec, text, predictor="booster")
    expected = booster.raw_score(features)
    assert_allclose(first.predict(features), expected, rtol=1e-12, atol=1e-12)
    assert_allclose(second.predict(np.ascontiguousarray(features)), expected, rtol=1e-12)


def test_a_broken_booster_text_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="could not compile"):
        compiled_model("tree\nversion=v4\nnot a model\n", tmp_path, timeout_seconds=120)
    assert not list(tmp_path.glob("*.raw.o")), "no library may be left for a failed compile"
