"""The deployment files (Dockerfile, compose.yaml, deploy/haproxy.cfg) say what docs/deployment.md says, and the
image builds and serves where docker can run. Docker is not one of the CI services: without it the image test is
skipped with that reason (TOLLWAY_REQUIRE_SERVICES does not turn it into a failure); the same topology runs as
processes in tests/integration/test_topology.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_two_gateways_a_worker_postgres_redis_behind_a_load_balancer() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert sorted(services) == ["gateway-a", "gateway-b", "lb", "migrate", "postgres", "redis", "worker"]
    gateways = [services["gateway-a"], services["gateway-b"]]
    journals = [g["environment"]["TOLLWAY_JOURNAL_DIR"] for g in gateways]
    assert journals == ["/var/lib/tollway/journal/gateway-a", "/var/lib/tollway/journal/gateway-b"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["environment"]["TOLLWAY_JOURNAL_DIR"] == "/var/lib/tollway/journal"  # drains both
    for service in [*gateways, services["worker"]]:
        env = service["environment"]
        assert env["TOLLWAY_DATABASE_URL"].startswith("postgresql://")
        assert env["TOLLWAY_REDIS_URL"] == "redis://redis:6379/0"
        assert env["TOLLWAY_INGEST"] == "external"
        assert "journal:/var/lib/tollway/journal" in service["volumes"]
    haproxy = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in haproxy
    assert "server gateway-a gateway-a:8080 check" in haproxy
    assert "server gateway-b gateway-b:8080 check" in haproxy


def test_the_image_installs_from_the_lock_runs_unprivileged_and_checks_healthz() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements/run.lock" in dockerfile
    assert "pip install --no-cache-dir --no-deps /wheels/tollway-*.whl" in dockerfile
    assert "\nUSER tollway\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "/healthz" in dockerfile


@pytest.mark.slow
def test_the_image_builds_and_serves(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed here: the image is not built (test_topology runs the same processes)")
    if subprocess.run([docker, "info"], capture_output=True, check=False, timeout=30).returncode != 0:
        pytest.skip("docker is installed but its daemon does not answer: the image is not built")
    tag = "tollway:test-image"
    build = subprocess.run([docker, "build", "-q", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr
    version = subprocess.run([docker, "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert "serve" in version.stdout
    user = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True, timeout=120
    )
    assert user.stdout.strip() == "10001"
