"""The architecture as the code has it: the import contract holds, and the diagrams in
docs/architecture.md draw exactly the arrows the imports make."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "contract", "training", "serving", "propensity", "benchmarks")
TOP = ("propensity", "training", "serving", "contract", "features")
ROOMS = ("api", "batch", "campaign", "monitoring", "model", "store", "settings", "policy")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES)


def _drawn(section: str) -> set[tuple[str, str]]:
    """The ``a --> b`` arrows of the first mermaid diagram after heading ``section``."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    after = page.split(f"## {section}\n", 1)[1]
    diagram = after.split("```mermaid\n", 1)[1].split("```", 1)[0]
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", diagram, flags=re.MULTILINE))


def _imports(graph: grimp.ImportGraph, nodes: tuple[str, ...], prefix: str) -> set[tuple[str, str]]:
    return {
        (a, b)
        for a, b in itertools.permutations(nodes, 2)
        if graph.direct_import_exists(
            importer=f"{prefix}{a}", imported=f"{prefix}{b}", as_packages=True
        )
    }


def test_the_import_contract_holds() -> None:
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_the_package_diagram_draws_the_imports(graph: grimp.ImportGraph) -> None:
    assert _drawn("Packages") == _imports(graph, TOP, "")


def test_the_serving_diagram_draws_the_imports(graph: grimp.ImportGraph) -> None:
    assert _drawn("Inside serving") == _imports(graph, ROOMS, "serving.")


def test_every_serving_room_says_what_it_is_for() -> None:
    for room in ROOMS:
        if room == "settings":
            continue
        init = ROOT / "serving" / room / "__init__.py"
        text = init.read_text(encoding="utf-8").strip()
        assert text.startswith('"""') and text.endswith('"""') and "\n" not in text, init
