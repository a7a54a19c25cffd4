"""Run the `tollway` command as a user would, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def tollway_command() -> list[str]:
    script = Path(sys.executable).parent / "tollway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tollway"]


def run_tollway(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    return subprocess.run(
        [*tollway_command(), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
