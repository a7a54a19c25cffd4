"""`make audit`'s verdict on pip-audit's JSON report (tests/audit_lock.py): what fails the build."""

from __future__ import annotations

from tests.audit_lock import judge

REPORT = {
    "dependencies": [
        {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}]},
        {"name": "orjson", "version": "3.13.0", "vulns": []},
        {"name": "somepkg", "version": "1.0", "vulns": [{"id": "PYSEC-2099-1", "fix_versions": []}]},
    ],
    "fixes": [],
}


def test_a_vulnerability_with_a_fix_fails_the_build() -> None:
    verdict = judge(REPORT)
    assert verdict.fixable == ["jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)"]
    assert verdict.exit_code(require_audit=False) == 1


def test_a_vulnerability_without_a_fix_is_listed_not_failed() -> None:
    verdict = judge({"dependencies": REPORT["dependencies"][1:]})
    assert verdict.unfixable == ["somepkg 1.0: PYSEC-2099-1 (no fixed release yet)"]
    assert verdict.audited == 2
    assert verdict.exit_code(require_audit=True) == 0


def test_packages_the_service_did_not_answer_for_fail_only_when_the_audit_is_required() -> None:
    skipped = {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI and could not be audited: aiohttp"}
    verdict = judge({"dependencies": [skipped, {"name": "orjson", "version": "3.13.0", "vulns": []}]})
    assert verdict.not_audited == [f"aiohttp: {skipped['skip_reason']}"]
    assert verdict.audited == 1
    assert verdict.exit_code(require_audit=False) == 0
    assert verdict.exit_code(require_audit=True) == 1
