"""``make audit``'s verdicts: a vulnerability fails, an unreachable service only warns."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

AUDIT = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "audit.py"))


def _report(*packages: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(packages), "fixes": []}


CLEAN = {"name": "requests", "version": "2.34.2", "vulns": []}
VULNERABLE = {
    "name": "oldlib",
    "version": "1.0",
    "vulns": [{"id": "PYSEC-0000-1", "fix_versions": ["1.1"], "aliases": []}],
}
SKIPPED = {"name": "mirror-only", "version": "1.0", "skip_reason": "Dependency not found on PyPI"}


@pytest.mark.parametrize(
    ("report", "status", "said"),
    [
        (_report(CLEAN, SKIPPED), 0, "2 packages, 1 audited, 1 skipped, 0 vulnerabilities"),
        (_report(CLEAN, VULNERABLE), 1, "oldlib 1.0: PYSEC-0000-1"),
        (_report(SKIPPED), 0, "answered for no package"),
        (None, 0, "did not run"),
    ],
)
def test_verdicts(
    report: dict[str, Any] | None,
    status: int,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main = AUDIT["main"]
    monkeypatch.setitem(main.__globals__, "_run_pip_audit", lambda: (report, "connection refused"))
    assert main([]) == status
    assert said in capsys.readouterr().out
