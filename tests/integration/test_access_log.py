"""The opt-in access log: one line per request with what an operator needs, and never a key or a prompt."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from tests.support.closing import Closing
from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess

CONFIG = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": ["acme-secret-canary-key"]}],
}
PROMPT = "the prompt canary 7f3e9a"


def test_json_access_log_has_one_line_per_request_without_secrets(workdir: Path, closing: Closing) -> None:
    log_file = workdir / "access.log"
    gateway = TollwayProcess(
        workdir, CONFIG, env={"TOLLWAY_ACCESS_LOG": "json", "TOLLWAY_ACCESS_LOG_FILE": str(log_file)}
    ).start()
    try:
        sdk = closing(openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="acme-secret-canary-key", max_retries=0))
        reply = sdk.chat.completions.with_raw_response.create(
            model="demo", messages=[{"role": "user", "content": PROMPT}]
        )
        usage = reply.parse().usage
        assert usage is not None
        request_id = reply.headers["x-request-id"]
        bad = closing(openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="wrong-key-canary-123", max_retries=0))
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="demo", messages=[{"role": "user", "content": PROMPT}])
        wait_until(lambda: log_file.exists() and len(log_file.read_text().splitlines()) >= 2, 10)
    finally:
        assert gateway.stop() == 0
    text = log_file.read_text()
    for secret in ("acme-secret-canary-key", "wrong-key-canary-123", "7f3e9a"):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 2
    served = next(line for line in lines if line["request_id"] == request_id)
    assert served["consumer"] == "acme-corp"
    assert served["model"] == "demo"
    assert served["provider"] == "local"
    assert served["status"] == 200
    assert served["route"] == "/v1/chat/completions"
    # the simulator reports these counts itself; the log must carry them unchanged
    assert served["tokens"]["input"] + served["tokens"]["cache_read"] == usage.prompt_tokens
    assert served["tokens"]["output"] == usage.completion_tokens
    assert served["latency_ms"] > 0
    refused = next(line for line in lines if line["request_id"] != request_id)
    assert refused["status"] == 401
    assert refused["consumer"] == "-"


def test_access_log_is_off_by_default(workdir: Path, closing: Closing) -> None:
    gateway = TollwayProcess(workdir, CONFIG).start()
    try:
        sdk = closing(openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="acme-secret-canary-key", max_retries=0))
        sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": PROMPT}])
    finally:
        gateway.stop()
    assert "consumer=acme-corp" not in gateway.log()
    assert '"consumer"' not in gateway.log()
