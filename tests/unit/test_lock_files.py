"""The lock files cover pyproject.toml: a dependency added there without `make lock` fails here, not in a fresh
install (pip --require-hashes refuses what the lock does not list)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _locked(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line):
            pins[_name(match.group(1))] = match.group(2)
    return pins


def test_every_dependency_is_pinned_with_hashes_in_its_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    run, dev = _locked(ROOT / "requirements/run.lock"), _locked(ROOT / "requirements/dev.lock")
    assert {_name(r) for r in [*project["dependencies"], *extras["demo"]]} - run.keys() == set()
    assert {_name(r) for r in [*project["dependencies"], *extras["demo"], *extras["dev"]]} - dev.keys() == set()
    assert {name: version for name, version in run.items() if dev.get(name) != version} == {}  # one version each
    for lock in ("run.lock", "dev.lock", "no-deps.lock"):
        text = (ROOT / "requirements" / lock).read_text()
        blocks = re.findall(r"^[A-Za-z0-9][^\n]*==[^\n]*(?:\n    [^\n]*)*", text, flags=re.MULTILINE)
        assert blocks, lock
        assert [block.split()[0] for block in blocks if "--hash=sha256:" not in block] == [], lock
