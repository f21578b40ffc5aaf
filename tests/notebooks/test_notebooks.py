"""Every notebook runs top to bottom without an error (stored without outputs).

Each runs in a fresh kernel of this interpreter with its own scratch folder
(``PROPENSITY_NOTEBOOK_DIR``); ``PROPENSITY_DATA_DIR`` and ``MLFLOW_TRACKING_URI`` are unset so a
notebook cannot touch a real store. Notebooks that need ``PROPENSITY_SHARED_DATA`` fall back or
skip their analysis with a message when it is absent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
KERNEL = "propensity-tests"


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder with a kernelspec for this very interpreter (the venv's), so the
    notebooks run with the project's packages whatever kernels the machine has."""
    root = tmp_path_factory.mktemp("jupyter")
    folder = root / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "propensity tests",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return root


def test_notebooks_are_stored_without_outputs() -> None:
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, jupyter_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("PROPENSITY_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.delenv("PROPENSITY_DATA_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
