"""Answers larger than the in-memory limit are relayed as they arrive, with their usage still exact."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.support.closing import Closing
from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.scenario import KEY, gateway_config
from tests.support.tollway_process import TollwayProcess


def test_large_embeddings_answer_is_streamed_through_and_metered(
    workdir: Path, fake_openai: FakeOpenAI, closing: Closing
) -> None:
    tollway = TollwayProcess(
        workdir, gateway_config(fake_openai), env={"TOLLWAY_MAX_BUFFERED_RESPONSE_BYTES": "2048"}
    ).start()
    try:
        fake_openai.enqueue(Reply(usage={"prompt_tokens": 777, "total_tokens": 777}))
        client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
        raw = client.embeddings.with_raw_response.create(model="embed", input=[f"text {i}" for i in range(3000)])
        assert "content-length" not in raw.headers, "relayed as it arrived, not buffered"
        result = raw.parse()
        assert len(result.data) == 3000
        assert result.data[2999].embedding == [0.1, 0.2, 0.3]
        assert result.usage.prompt_tokens == 777
        tollway.expect_tokens({"input": 777, "output": 0})
    finally:
        tollway.stop()
