"""`tollway serve` and friends as a newcomer meets them: a taken port, warnings at start, a read-only
command run in the wrong folder."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.cli import run_tollway
from tests.support.net import free_port

CONFIG = """\
providers:
  - {name: local, type: simulator}
"""


def test_a_taken_port_is_one_clear_line_and_exit_2_before_anything_is_announced(tmp_path: Path) -> None:
    (tmp_path / "tollway.yaml").write_text(CONFIG)
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        result = run_tollway("serve", "--config", "tollway.yaml", "--port", str(port), cwd=tmp_path)
    finally:
        holder.close()
    assert result.returncode == 2, result.stderr
    assert f"port {port} is in use; choose another with --port or TOLLWAY_PORT" in result.stderr
    assert "serving on" not in result.stderr
    assert "Traceback" not in result.stderr


def test_start_warns_once_for_no_models_no_consumers_and_no_admin_token(tmp_path: Path) -> None:
    (tmp_path / "tollway.yaml").write_text(CONFIG)
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:  # the port is taken so the command stops right after its start-up checks
        result = run_tollway("serve", "--config", "tollway.yaml", "--port", str(port), cwd=tmp_path)
    finally:
        holder.close()
    lines = result.stderr.splitlines()
    assert sum("no models in the config" in line for line in lines) == 1
    assert sum("no consumers in the config" in line for line in lines) == 1
    assert sum("TOLLWAY_ADMIN_TOKEN is not set" in line for line in lines) == 1


def test_usage_outside_the_project_folder_refuses_instead_of_creating_a_database(tmp_path: Path) -> None:
    result = run_tollway("usage", cwd=tmp_path)
    assert result.returncode == 2
    assert "no database at sqlite:///./tollway.db" in result.stderr
    assert "TOLLWAY_DATABASE_URL" in result.stderr
    assert not (tmp_path / "tollway.db").exists()
