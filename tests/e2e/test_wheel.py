"""The built wheel carries everything `tollway serve` needs (migrations, templates, package data): built from a
copy of the project, installed into a fresh venv that holds no source tree, and started once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
providers:
  - {name: local, type: simulator}
models:
  - {name: demo, targets: [{provider: local, model: demo}]}
consumers:
  - {username: acme, keys: [acme-wheel-key]}
"""


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_serves_and_meters(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(project), "-w", str(dist)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("tollway-*.whl")

    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    # The dependencies come from this venv's site-packages, appended after the fresh venv's own (where the wheel
    # is): a plain path line, so the editable install's finder in that directory is not loaded.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLWAY_", "PYTHON"))}
    env |= {"TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'tollway.db'}", "TOLLWAY_ADMIN_TOKEN": "wheel-admin"}
    where = subprocess.run(
        [str(python), "-c", "import tollway; print(tollway.__file__)"], env=env, capture_output=True, text=True
    )
    assert where.stdout.startswith(purelib), where.stdout + where.stderr  # the wheel's code, not a source tree

    (tmp_path / "tollway.yaml").write_text(CONFIG)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [str(fresh / "bin" / "tollway"), "serve", "--config", "tollway.yaml", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: serve.poll() is not None or http_ok(base + "/readyz"), 60)
        assert serve.poll() is None, log_path.read_text()
        with httpx.Client(base_url=base, timeout=10) as client:
            answer = client.post(
                "/v1/chat/completions",
                headers={"Authorization": "Bearer acme-wheel-key"},
                json={"model": "demo", "messages": [{"role": "user", "content": "hello wheel"}]},
            )
            assert answer.status_code == 200, answer.text
            admin = {"Authorization": "Bearer wheel-admin"}

            def counted() -> bool:
                query = client.get("/api/v1/meters/llm_requests/query", headers=admin, params={"subject": "acme"})
                return [row["value"] for row in query.json()["data"]] == ["1"]

            wait_until(counted, 20)  # migrations ran from the wheel, and the usage was stored
            # the dashboard's templates and vendored scripts are in the wheel
            signin = client.get("/dashboard/signin")
            assert signin.status_code == 200, signin.text
            assert "Admin token" in signin.text
            script = client.get("/dashboard/static/vendor/chart-4.6.2.umd.min.js")
            assert script.status_code == 200
            assert b"Chart.js v4.6.2" in script.content
    finally:
        serve.terminate()
        serve.wait(20)
    assert serve.returncode == 0, log_path.read_text()
