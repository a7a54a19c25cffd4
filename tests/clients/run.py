"""`make test-clients`: real Node clients against a running Tollway (the quickstart config), opt-in.

Installs the Claude Code CLI and the Anthropic and OpenAI Node SDKs with npm into .tollway/clients,
starts `tollway serve` on a free port with examples/quickstart.yaml and a fresh SQLite database, then:

- `claude -p "say hi" --model demo` (the model's own name) and `--model claude-sonnet-4-5` (an alias),
  each with `--output-format json`, whose `usage` is what Claude Code was told;
- the Anthropic SDK streaming a message and the OpenAI SDK streaming a chat completion;
- `codex exec --json "say hi"` (OpenAI's Codex CLI, configured with a `model_providers.tollway` entry,
  `wire_api = "responses"`), whose `turn.completed` usage is what Codex was told.

After each client the metered tokens per type (the llm_tokens meter, through the management API) must
equal the sum of the usage the clients reported. Exits 1 on the first mismatch or failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / ".tollway" / "clients"
PACKAGES = ["@anthropic-ai/claude-code", "@anthropic-ai/sdk", "openai", "@openai/codex"]
KEY = "acme-secret-key"
SUBJECT = "acme-corp"
# Claude Code names its Agent tool in every prompt and the simulator calls a tool the prompt names: with
# the alias (where the names land in the last user message) each call would start a background agent
# whose end starts the next. The run with the model's own name keeps every tool.
CLAUDE_RUNS = [["--model", "demo"], ["--model", "claude-sonnet-4-5", "--disallowedTools", "Agent"]]


def install() -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            sys.exit(f"test-clients needs {tool} on PATH")
    CLIENTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CLIENTS), *PACKAGES],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for script in (Path(__file__).parent / "node").glob("*.mjs"):
        shutil.copy(script, CLIENTS / script.name)  # ESM resolves packages from the script's directory
    return CLIENTS / "node_modules" / ".bin" / "claude"


def client_env(tollway: TollwayProcess, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_"))}
    env.update(
        HOME=str(home),  # no user settings, credentials or history
        ANTHROPIC_BASE_URL=tollway.base_url,
        ANTHROPIC_API_KEY=KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        TOLLWAY_URL=tollway.base_url,
        TOLLWAY_KEY=KEY,
    )
    return env


def claude_usage(claude: Path, args: list[str], env: dict[str, str], cwd: Path) -> dict[str, int]:
    done = subprocess.run(
        [str(claude), "-p", "say hi", *args, "--output-format", "json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"claude {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout)
    if result.get("is_error"):
        sys.exit(f"claude {' '.join(args)} answered an error: {result.get('result')}")
    usage = result["usage"]
    print(f"claude {' '.join(args)}: {result['result'][:60]!r} ({result.get('num_turns')} turns)")
    return {
        "input": usage["input_tokens"],
        "cache_read": usage.get("cache_read_input_tokens") or 0,
        "cache_write": usage.get("cache_creation_input_tokens") or 0,
        "output": usage["output_tokens"],
    }


def codex_config(tollway: TollwayProcess, home: Path) -> None:
    """Codex's own config file in the scratch HOME: Tollway as a model provider speaking the Responses API."""
    (home / ".codex").mkdir(exist_ok=True)
    (home / ".codex" / "config.toml").write_text(
        'model = "demo"\n'
        'model_provider = "tollway"\n\n'
        "[model_providers.tollway]\n"
        'name = "Tollway"\n'
        f'base_url = "{tollway.base_url}/v1"\n'
        'env_key = "TOLLWAY_KEY"\n'
        'wire_api = "responses"\n'
    )


def codex_usage(env: dict[str, str], cwd: Path) -> dict[str, int]:
    codex = CLIENTS / "node_modules" / ".bin" / "codex"
    done = subprocess.run(
        [str(codex), "exec", "--json", "--skip-git-repo-check", "-C", str(cwd), "say hi"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    finished = [e for e in events if e.get("type") == "turn.completed"]
    if done.returncode != 0 or not finished:
        sys.exit(f"codex exec exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    said = [
        e["item"]["text"] for e in events if e.get("type") == "item.completed" and e["item"]["type"] == "agent_message"
    ]
    print(f"codex exec: {said[-1][:60]!r}" if said else "codex exec: (no message)")
    usage = finished[-1]["usage"]
    cached = usage.get("cached_input_tokens") or 0
    return {
        "input": usage["input_tokens"] - cached,
        "cache_read": cached,
        "cache_write": usage.get("cache_write_input_tokens") or 0,
        "output": usage["output_tokens"],
    }


def node_usage(script: str, env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        ["node", str(CLIENTS / script), "demo"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        sys.exit(f"node {script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    print(f"node {script}: {done.stdout.strip()}")
    usage: dict[str, int] = json.loads(done.stdout)
    return usage


def add(total: dict[str, int], usage: dict[str, int]) -> None:
    for kind, tokens in usage.items():
        total[kind] = total.get(kind, 0) + tokens


def expect_metered(tollway: TollwayProcess, told: dict[str, int], who: str) -> None:
    want = {k: v for k, v in told.items() if v}
    try:
        wait_until(lambda: {k: v for k, v in tollway.tokens_by_type(SUBJECT).items() if v} == want, timeout_s=15)
    except AssertionError:
        sys.exit(f"after {who}: metered {tollway.tokens_by_type(SUBJECT)}, the clients were told {want}")
    print(f"  metered = told = {want}")


def main() -> None:
    claude = install()
    version = subprocess.run([str(claude), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"Claude Code {version}")
    config: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="tollway-clients-") as scratch:
        work = Path(scratch)
        (work / "home").mkdir()
        (work / "project").mkdir()
        tollway = TollwayProcess(work, config).start()
        try:
            env = client_env(tollway, work / "home")
            told: dict[str, int] = {}
            for args in CLAUDE_RUNS:
                add(told, claude_usage(claude, args, env, work / "project"))
                expect_metered(tollway, told, f"claude {' '.join(args)}")
            for script in ("anthropic_stream.mjs", "openai_chat.mjs"):
                add(told, node_usage(script, env))
                expect_metered(tollway, told, script)
            codex_config(tollway, work / "home")
            add(told, codex_usage(env, work / "project"))
            expect_metered(tollway, told, "codex exec")
        finally:
            tollway.stop()
    print("test-clients: every client answered and was metered to the token")


if __name__ == "__main__":
    main()
