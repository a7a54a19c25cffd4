"""`make audit`: known vulnerabilities in the locked packages, from pip-audit's PyPI advisory lookup.

    python -m tests.audit_lock requirements/dev.lock requirements/no-deps.lock

Fails (exit 1) on a vulnerability a newer release fixes: pin the fixed version (`make lock`). A vulnerability
with no fix yet is listed and does not fail the build (nothing to upgrade to; decide by hand). Packages the
advisory service could not answer for (no network, or an index that is not PyPI) are counted as not audited:
a loud warning, and a failure when TOLLWAY_REQUIRE_AUDIT=1. The advisory service is outside the machine, like
PyPI itself, so it is not one of the services TOLLWAY_REQUIRE_SERVICES asks for (docs/deployment.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    fixable: list[str] = field(default_factory=list)  # "name version: id (fixed in ...)"
    unfixable: list[str] = field(default_factory=list)
    not_audited: list[str] = field(default_factory=list)
    audited: int = 0

    def exit_code(self, *, require_audit: bool) -> int:
        if self.fixable or (self.not_audited and require_audit):
            return 1
        return 0


def judge(report: dict[str, Any]) -> Verdict:
    """pip-audit's JSON report (`-f json`) -> what fails the build."""
    verdict = Verdict()
    for dependency in report.get("dependencies", []):
        name, version = dependency.get("name", "?"), dependency.get("version", "?")
        if "skip_reason" in dependency:
            verdict.not_audited.append(f"{name}: {dependency['skip_reason']}")
            continue
        verdict.audited += 1
        for vuln in dependency.get("vulns", []):
            fixes = vuln.get("fix_versions") or []
            if fixes:
                verdict.fixable.append(f"{name} {version}: {vuln.get('id')} (fixed in {', '.join(fixes)})")
            else:
                verdict.unfixable.append(f"{name} {version}: {vuln.get('id')} (no fixed release yet)")
    return verdict


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.audit_lock LOCK...", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "pip_audit", "--vulnerability-service", "pypi", "--disable-pip"]
    command += ["--require-hashes", "-f", "json", "--progress-spinner", "off"]
    for lock in argv:
        command += ["-r", lock]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    require_audit = os.environ.get("TOLLWAY_REQUIRE_AUDIT") == "1"
    if report is None:  # pip-audit itself failed before auditing (e.g. the service unreachable)
        print(done.stderr.strip(), file=sys.stderr)
        print(
            "audit: NOT AUDITED: pip-audit could not query the advisory service"
            + ("" if require_audit else " (passing; TOLLWAY_REQUIRE_AUDIT=1 makes this fail)"),
            file=sys.stderr,
        )
        return 1 if require_audit else 0
    verdict = judge(report)
    for line in verdict.fixable:
        print(f"audit: VULNERABLE, fix available: {line}", file=sys.stderr)
    for line in verdict.unfixable:
        print(f"audit: vulnerable, no fix yet: {line}", file=sys.stderr)
    if verdict.not_audited:
        print(
            f"audit: NOT AUDITED: {len(verdict.not_audited)} of {len(verdict.not_audited) + verdict.audited} "
            f"packages (the advisory service did not know them; first: {verdict.not_audited[0]})"
            + ("" if require_audit else "; passing, TOLLWAY_REQUIRE_AUDIT=1 makes this fail"),
            file=sys.stderr,
        )
    code = verdict.exit_code(require_audit=require_audit)
    if code == 0 and not verdict.not_audited:
        print(f"audit: {verdict.audited} locked packages, no known vulnerability with a fix")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
