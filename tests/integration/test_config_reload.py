"""SIGHUP re-reads the config file: keys, models and prices change without a restart."""

from __future__ import annotations

import signal
from pathlib import Path

import openai
import yaml

from tests.support.closing import Closing
from tests.support.fake_upstream import FakeOpenAI
from tests.support.net import wait_until
from tests.support.scenario import KEY, gateway_config
from tests.support.tollway_process import TollwayProcess


def can_use(base_url: str, key: str, model: str = "demo") -> bool:
    try:
        with openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0) as client:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    except (openai.AuthenticationError, openai.NotFoundError):
        return False
    return True


def test_sighup_swaps_consumers_and_models(workdir: Path, fake_openai: FakeOpenAI) -> None:
    config = gateway_config(fake_openai)
    tollway = TollwayProcess(workdir, config).start()
    try:
        assert can_use(tollway.base_url, KEY)
        assert not can_use(tollway.base_url, "newcomer-key-1")
        config["consumers"].append({"username": "newcomer", "keys": ["newcomer-key-1"]})
        config["consumers"] = [c for c in config["consumers"] if c["username"] != "acme-corp"]
        config["models"].append({"name": "demo2", "targets": [{"provider": "local", "model": "demo"}]})
        tollway.config_path.write_text(yaml.safe_dump(config))
        assert tollway.process is not None
        tollway.process.send_signal(signal.SIGHUP)
        wait_until(lambda: can_use(tollway.base_url, "newcomer-key-1", "demo2"))
        assert not can_use(tollway.base_url, KEY), "a removed key stops working"

        tollway.config_path.write_text("models: [{name: broken}]")
        tollway.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reload refused" in tollway.log())
        assert can_use(tollway.base_url, "newcomer-key-1"), "an invalid file changes nothing"
    finally:
        tollway.stop()


def test_reload_keeps_usage_exact(workdir: Path, fake_openai: FakeOpenAI, closing: Closing) -> None:
    tollway = TollwayProcess(workdir, gateway_config(fake_openai)).start()
    try:
        client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
        first = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert tollway.process is not None
        tollway.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in tollway.log())
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert first.usage is not None
        tollway.expect_tokens({"input": 352, "cache_read": 2048, "output": 600})
    finally:
        tollway.stop()
