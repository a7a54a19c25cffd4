"""Off Kong in one command: the walkthrough's decK snippets (tests/fixtures/kong/) through `tollway import kong`,
served by Tollway, and the walkthrough's own curl requests replayed unchanged against it (POST /chat with an
`apikey` header and no model); plus a key a customer already holds, set through the management API."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.cli import run_tollway
from tests.support.fake_upstream import FakeOpenAI
from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess

SNIPPETS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "kong").glob("*.yaml"))

# Step 2 and step 7 of the walkthrough, as printed there ($KONNECT_PROXY_URL is Tollway's address here).
CURL_STEP_2 = """curl -X POST "$KONNECT_PROXY_URL/chat" \\
  -H "Content-Type: application/json" \\
  -H "apikey: acme-secret-key" \\
  --json '{
    "messages": [
      {"role": "system", "content": "You are a mathematician."},
      {"role": "user", "content": "What is 1+1?"}
    ]
  }'"""
CURL_STEP_7 = """for i in {1..6}; do
  curl -s -X POST "$KONNECT_PROXY_URL/chat" \\
    -H "Content-Type: application/json" \\
    -H "apikey: acme-secret-key" \\
    --json '{
      "messages": [
        {"role": "user", "content": "Explain what a Fourier transform does in two sentences."}
      ]
    }'
  echo ""
done"""


def test_the_walkthrough_moves_off_kong_unchanged(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    imported = run_tollway("import", "kong", *map(str, SNIPPETS), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stderr.splitlines() == [
        "note: route 'ai-chat' (ai-proxy): logging.log_payloads not translated (Tollway never logs payloads)"
    ]
    config: dict[str, Any] = yaml.safe_load(imported.stdout)
    assert config == {
        "providers": [{"name": "openai", "type": "openai", "api_key": "${DECK_OPENAI_API_KEY}"}],
        "models": [{"name": "gpt-4o", "targets": [{"provider": "openai", "model": "gpt-4o"}]}],
        "consumers": [{"username": "acme-corp", "keys": ["acme-secret-key"]}],
        "routes": [{"path": "/chat", "model": "gpt-4o", "type": "chat"}],
    }
    config["providers"][0]["base_url"] = fake_openai.base_url  # the one change: no real OpenAI here
    gateway = TollwayProcess(tmp_path, config, env={"DECK_OPENAI_API_KEY": "sk-from-deck-env"}).start()
    try:
        env = {**os.environ, "KONNECT_PROXY_URL": gateway.base_url}
        step2 = subprocess.run(["bash", "-c", CURL_STEP_2], env=env, capture_output=True, text=True, timeout=30)
        assert step2.returncode == 0, step2.stderr
        assert '"content":"Hello from the fake upstream."' in step2.stdout.replace(": ", ":"), step2.stdout
        step7 = subprocess.run(["bash", "-c", CURL_STEP_7], env=env, capture_output=True, text=True, timeout=60)
        assert step7.returncode == 0, step7.stderr
        assert step7.stdout.count('"chat.completion"') == 6, step7.stdout

        sent = [r for r in fake_openai.received if r.path == "/v1/chat/completions"]
        assert len(sent) == 7
        assert {r.body["model"] for r in sent} == {"gpt-4o"}  # the route's model, as Kong's ai-proxy set it
        assert {r.headers["Authorization"] for r in sent} == {"Bearer sk-from-deck-env"}
        assert sent[0].body["messages"][0] == {"role": "system", "content": "You are a mathematician."}

        # the storage process stores the journal in flushes: wait until the last call is stored, not the first
        def by_route() -> list[tuple[str, str]]:
            counted = gateway.query("llm_requests", subject="acme-corp", groupBy="route")["data"]
            return [(row["groupBy"]["route"], row["value"]) for row in counted]

        wait_until(lambda: sum(int(value) for _, value in by_route()) >= 7)
        assert by_route() == [("/chat", "7")]

        # A key a customer already holds, set through the API (imported), works and is never shown again.
        with gateway.admin() as admin:
            assert admin.post("/api/v1/consumers", json={"username": "globex"}).status_code == 201
            short = admin.post("/api/v1/consumers/globex/keys", json={"key": "short"})
            assert (short.status_code, short.json()["status"]) == (400, 400)
            made = admin.post("/api/v1/consumers/globex/keys", json={"key": "globex-kong-key-1", "name": "from kong"})
            assert made.status_code == 201, made.text
            again = admin.post("/api/v1/consumers/globex/keys", json={"key": "globex-kong-key-1"})
            assert again.status_code == 409, again.text
            listed = admin.get("/api/v1/consumers/globex/keys").text
        assert "globex-kong-key-1" not in listed
        replay = CURL_STEP_2.replace("acme-secret-key", "globex-kong-key-1").replace(
            "-X POST", "-s -o /dev/null -w '%{http_code}' -X POST"
        )

        def answered() -> str:
            return subprocess.run(["bash", "-c", replay], env=env, capture_output=True, text=True, timeout=30).stdout

        wait_until(lambda: answered() == "200", 5)
    finally:
        assert gateway.stop() == 0
