"""The dashboard works offline: no template or static file refers to another origin (only the license comments
at the top of the vendored libraries name their home pages), every vendored library has its license next to it,
the wheel carries them, and the templates escape what they show."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from jinja2 import Environment

from tollway.dashboard.web import environment

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tollway" / "dashboard"
URL = re.compile(r"https?://", re.IGNORECASE)
# a vendored library's (short) /*! ... */ license header, the only place a URL may appear
LICENSE_COMMENT = re.compile(r"/\*!(?:(?!\*/).){0,400}\*/", re.DOTALL)


def shipped_files() -> list[Path]:
    return sorted(p for folder in ("templates", "static") for p in (PACKAGE / folder).rglob("*") if p.is_file())


def without_license_header(path: Path, text: str) -> str:
    return LICENSE_COMMENT.sub("", text) if "vendor" in path.parts and path.suffix == ".js" else text


def test_no_template_or_static_file_refers_to_another_origin() -> None:
    files = shipped_files()
    assert len(files) > 20
    offenders: list[str] = []
    for path in files:
        text = without_license_header(path, path.read_text(encoding="utf-8"))
        offenders.extend(f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in URL.finditer(text))
    assert offenders == []


def test_the_check_finds_a_url_outside_the_license_header() -> None:
    vendored = PACKAGE / "static" / "vendor" / "chart-4.6.2.umd.min.js"
    text = vendored.read_text(encoding="utf-8")
    assert URL.search(text)  # the headers name chartjs.org and the bundled @kurkle/color's page ...
    assert not URL.search(without_license_header(vendored, text))  # ... and only the headers
    assert URL.search(without_license_header(vendored, text + '\nfetch("https://cdn.example/x.js")'))
    assert URL.search(without_license_header(PACKAGE / "templates" / "x.html", '<script src="//x"></script> http://a'))


def test_every_vendored_library_has_its_license_and_is_referenced() -> None:
    vendor = PACKAGE / "static" / "vendor"
    scripts = sorted(p.name for p in vendor.glob("*.js"))
    assert scripts == ["chart-4.6.2.umd.min.js", "htmx-2.0.11.min.js"]
    assert "MIT License" in (vendor / "chart.js-LICENSE.md").read_text(encoding="utf-8")
    assert "Zero-Clause BSD" in (vendor / "htmx-LICENSE.txt").read_text(encoding="utf-8")
    base = (PACKAGE / "templates" / "base.html").read_text(encoding="utf-8")
    for name in scripts:
        assert f"/dashboard/static/vendor/{name}" in base


def test_the_wheel_carries_templates_and_static_files() -> None:
    project = tomllib.loads((PACKAGE.parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["tollway"]
    assert "dashboard/templates/*" in patterns
    assert "dashboard/static/*" in patterns
    assert "dashboard/static/vendor/*" in patterns


def test_no_inline_script_and_autoescape_on() -> None:
    for path in (PACKAGE / "templates").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, path.name  # scripts come from files only
        assert re.search(r"\son[a-z]+=", text) is None, path.name  # no inline event handlers
        assert "|safe" not in text, path.name
    env: Environment = environment()
    assert env.from_string("{{ x }}").render(x="<img src=x onerror=alert(1)>") == ("&lt;img src=x onerror=alert(1)&gt;")
    for name in env.list_templates():
        env.get_template(name)  # every template compiles
