"""``make audit``'s verdicts: a vulnerability fails, an audit that checked nothing fails, a
partial audit passes and counts its skips. No network: pip-audit's JSON is given."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

AUDIT = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "audit.py"))
audit_from_latest_release = AUDIT["audit_from_latest_release"]
summarise = AUDIT["summarise"]
verdict = AUDIT["verdict"]


def _report(*packages: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(packages), "fixes": []}


CLEAN = {"name": "requests", "version": "2.34.2", "vulns": []}
VULNERABLE = {
    "name": "oldlib",
    "version": "1.0",
    "vulns": [{"id": "PYSEC-0000-1", "fix_versions": ["1.1"], "aliases": []}],
}


def _not_found(name: str, version: str) -> dict[str, Any]:
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


def _project(latest: str, *vulns: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": latest}, "vulnerabilities": list(vulns)}


@pytest.mark.parametrize(
    ("report", "status", "said"),
    [
        (_report(CLEAN, _not_found("mirror-only", "1.0")), 0, "1 could not be checked"),
        (_report(CLEAN), 0, "no known vulnerability in the 1 audited"),
        (_report(CLEAN, VULNERABLE), 1, "1 known vulnerabilities"),
        (_report(_not_found("a", "1"), _not_found("b", "2")), 1, "nothing was audited"),
        (_report(), 1, "nothing was audited"),
    ],
)
def test_verdicts(report: dict[str, Any], status: int, said: str) -> None:
    got_status, message = verdict(summarise(report))
    assert got_status == status
    assert said in message


def test_a_package_at_its_latest_release_is_audited_from_the_project_record() -> None:
    report = _report(_not_found("fresh", "2.0"), _not_found("stale", "1.0"), CLEAN)
    documents = {
        "fresh": _project("2.0", {"id": "PYSEC-1", "fixed_in": [], "withdrawn": None}),
        "stale": _project("3.0", {"id": "PYSEC-2", "fixed_in": ["3.1"]}),
    }
    completed = audit_from_latest_release(report, {"fresh": "2.0", "stale": "1.0"}, documents)
    summary = summarise(completed)
    assert (summary["audited"], summary["skipped"]) == (2, 1)
    assert [v["id"] for v in summary["vulnerabilities"]] == ["PYSEC-1"]
    assert "PyPI's latest is 3.0" in summary["skip_example"]
    assert verdict(summary)[0] == 1
    assert "skip_reason" in report["dependencies"][0], "the given report is not changed"


def test_a_withdrawn_record_or_an_unreadable_project_is_no_finding() -> None:
    report = _report(_not_found("fresh", "2.0"), _not_found("gone", "1.0"))
    documents = {"fresh": _project("2.0", {"id": "PYSEC-1", "withdrawn": "2024-01-01"})}
    summary = summarise(audit_from_latest_release(report, {"fresh": "2.0"}, documents))
    assert (summary["audited"], summary["skipped"], summary["vulnerabilities"]) == (1, 1, [])
    assert verdict(summary)[0] == 0


def test_an_audit_that_did_not_run_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = AUDIT["main"]
    monkeypatch.setitem(main.__globals__, "_run_pip_audit", lambda: (None, "connection refused"))
    assert main([]) == 1
    assert "did not run" in capsys.readouterr().out
