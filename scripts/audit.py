"""Dependency audit: pip-audit over the installed environment, for CI (``make audit``).

The verdict is honest about what was checked:
- a known vulnerability fails (exit 1);
- an audit that checked no package at all fails too (exit 1), and says so: "nothing was
  audited" is not "no known vulnerabilities";
- otherwise it passes, and reports how many packages could not be checked and why.

pip-audit asks PyPI's vulnerability feed, the per-version JSON (``/pypi/NAME/VERSION/json``).
Where that route is not served (a registry mirror that only serves the project JSON), every
package comes back skipped. The project JSON (``/pypi/NAME/json``) describes the latest
release and lists that release's known vulnerabilities, so for a package installed at its
latest version it is the same record: those packages are audited from it, the others stay
skipped and are counted. ``--json`` prints the summary as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 900
PROJECT_JSON_URL = "https://pypi.org/pypi/{name}/json"
PROJECT_JSON_TIMEOUT_SECONDS = 60
# Few parallel requests: enough to audit ~200 packages in seconds, polite to the index.
PROJECT_JSON_WORKERS = 4
NOT_ON_PYPI = "not found on PyPI"


def _run_pip_audit() -> tuple[dict[str, Any] | None, str]:
    binary = Path(sys.executable).with_name("pip-audit")
    command = [str(binary), "--skip-editable", "--format", "json", "--progress-spinner", "off"]
    # The PyPI feed goes through the package index, the one service a CI machine is sure
    # to reach; OSV (the default) is a separate host.
    command += ["--vulnerability-service", "pypi"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as problem:
        return None, str(problem)
    try:
        return json.loads(done.stdout), done.stderr
    except json.JSONDecodeError:
        return None, (done.stderr or done.stdout)[-2000:]


def _fetch_project_json(name: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(
            PROJECT_JSON_URL.format(name=name), timeout=PROJECT_JSON_TIMEOUT_SECONDS
        ) as answer:
            document: dict[str, Any] = json.load(answer)
            return document
    except (OSError, ValueError):
        return None


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def audit_from_latest_release(
    report: dict[str, Any],
    installed: dict[str, str | None],
    project_documents: dict[str, dict[str, Any] | None],
) -> dict[str, Any]:
    """pip-audit's report with its 'not found on PyPI' skips audited from the project JSON.

    ``installed`` maps a skipped package's name to its installed version; ``project_documents``
    maps it to PyPI's project JSON (None when it could not be fetched). A package is audited
    from that document only when the installed version is the latest release, the one the
    document's ``vulnerabilities`` describe; otherwise it stays skipped, with the reason.
    Returns a new report; the given one is not changed.
    """
    dependencies: list[dict[str, Any]] = []
    for package in report.get("dependencies", []):
        name = package["name"]
        if NOT_ON_PYPI not in package.get("skip_reason", ""):
            dependencies.append(package)
            continue
        version = installed.get(name)
        document = project_documents.get(name)
        latest = document.get("info", {}).get("version") if document else None
        if document is None or version is None:
            reason = f"{name}: neither the per-version nor the project record could be read"
            dependencies.append({"name": name, "skip_reason": reason})
        elif latest != version:
            reason = f"{name} {version}: no per-version record, and PyPI's latest is {latest}"
            dependencies.append({"name": name, "skip_reason": reason})
        else:
            vulns = [
                {"id": found["id"], "fix_versions": found.get("fixed_in", [])}
                for found in document.get("vulnerabilities") or []
                if found.get("withdrawn") is None
            ]
            dependencies.append({"name": name, "version": version, "vulns": vulns})
    return {**report, "dependencies": dependencies}


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    packages = report.get("dependencies", [])
    skipped = [p for p in packages if "skip_reason" in p]
    vulnerable = [
        {"name": p["name"], "version": p["version"], "id": v["id"], "fix": v.get("fix_versions")}
        for p in packages
        for v in p.get("vulns", [])
    ]
    return {
        "packages": len(packages),
        "audited": len(packages) - len(skipped),
        "skipped": len(skipped),
        "vulnerabilities": vulnerable,
        "skip_example": skipped[0]["skip_reason"] if skipped else None,
    }


def verdict(summary: dict[str, Any]) -> tuple[int, str]:
    """The exit status and its one-line reason: fail on a vulnerability or on an empty audit."""
    if summary["vulnerabilities"]:
        return 1, f"FAILED: {len(summary['vulnerabilities'])} known vulnerabilities"
    if summary["audited"] == 0:
        return 1, (
            f"FAILED: nothing was audited, all {summary['packages']} packages were skipped "
            f"(e.g. {summary['skip_example']}); that is no evidence of no vulnerabilities"
        )
    message = f"passed: no known vulnerability in the {summary['audited']} audited packages"
    if summary["skipped"]:
        message += f"; {summary['skipped']} could not be checked (e.g. {summary['skip_example']})"
    return 0, message


def _complete_from_latest_release(report: dict[str, Any]) -> dict[str, Any]:
    names = [
        p["name"] for p in report.get("dependencies", []) if NOT_ON_PYPI in p.get("skip_reason", "")
    ]
    with ThreadPoolExecutor(PROJECT_JSON_WORKERS) as pool:
        documents = dict(zip(names, pool.map(_fetch_project_json, names), strict=True))
    installed = {name: _installed_version(name) for name in names}
    return audit_from_latest_release(report, installed, documents)


def main(argv: list[str]) -> int:
    report, diagnostics = _run_pip_audit()
    if report is None:
        print(f"FAILED: the dependency audit did not run (service unreachable?): {diagnostics}")
        return 1
    summary = summarise(_complete_from_latest_release(report))
    if "--json" in argv:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"pip-audit: {summary['packages']} packages, {summary['audited']} audited, "
            f"{summary['skipped']} skipped, {len(summary['vulnerabilities'])} vulnerabilities"
        )
        for found in summary["vulnerabilities"]:
            print(f"  {found['name']} {found['version']}: {found['id']} (fixed in {found['fix']})")
    status, message = verdict(summary)
    print(message)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
