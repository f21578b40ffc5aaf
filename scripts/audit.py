"""Dependency audit: pip-audit over the installed environment, for CI (``make audit``).

Fails (exit 1) on a known vulnerability. When the vulnerability service cannot be reached
(offline machine, a registry mirror without the per-version JSON API), it prints a clear
warning and exits 0: an audit that could not run is reported, not mistaken for a pass or
for a failure. ``--json`` prints the summary as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 900


def _run_pip_audit() -> tuple[dict[str, object] | None, str]:
    binary = Path(sys.executable).with_name("pip-audit")
    try:
        done = subprocess.run(
            [str(binary), "--skip-editable", "--format", "json", "--progress-spinner", "off"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as problem:
        return None, str(problem)
    try:
        return json.loads(done.stdout), done.stderr
    except json.JSONDecodeError:
        return None, (done.stderr or done.stdout)[-2000:]


def summarise(report: dict[str, object]) -> dict[str, object]:
    packages = report.get("dependencies", [])
    assert isinstance(packages, list)
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


def main(argv: list[str]) -> int:
    report, diagnostics = _run_pip_audit()
    if report is None:
        print(f"WARNING: dependency audit did not run (service unreachable?): {diagnostics}")
        return 0
    summary = summarise(report)
    if "--json" in argv:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"pip-audit: {summary['packages']} packages, {summary['audited']} audited, "
            f"{summary['skipped']} skipped, {len(summary['vulnerabilities'])} vulnerabilities"  # type: ignore[arg-type]
        )
        for found in summary["vulnerabilities"]:  # type: ignore[attr-defined]
            print(f"  {found['name']} {found['version']}: {found['id']} (fixed in {found['fix']})")
    if summary["vulnerabilities"]:
        return 1
    if summary["audited"] == 0:
        print(
            "WARNING: the vulnerability service answered for no package, so nothing was "
            f"audited (e.g. {summary['skip_example']}); not failing the build for it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
