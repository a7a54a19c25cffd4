"""The quickstart, as the README tells a newcomer: serve examples/quickstart.yaml, call model `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import yaml

from tests.support.cli import run_tollway
from tests.support.closing import Closing
from tests.support.tollway_process import TollwayProcess

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def test_quickstart_answers_streamed_and_not_and_meters_exactly_what_it_reported(
    workdir: Path, closing: Closing
) -> None:
    gateway = TollwayProcess(workdir, yaml.safe_load(QUICKSTART.read_text())).start()
    try:
        sdk = closing(openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="acme-secret-key", max_retries=0))
        reported: list[Any] = []
        hello: Any = [{"role": "user", "content": "Hello"}]

        completion = sdk.chat.completions.create(model="demo", messages=hello)
        answer = completion.choices[0].message.content
        assert answer
        assert completion.usage is not None
        reported.append(completion.usage)

        chunks = list(
            sdk.chat.completions.create(
                model="demo",
                messages=[{"role": "user", "content": "Tell me about toll roads, please."}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        reported.append(chunks[-1].usage)

        # Without include_usage the client sees no usage; the simulator is deterministic, so the same
        # prompt streams the same answer, with the same usage, as the unary call above.
        chunks = list(sdk.chat.completions.create(model="demo", messages=hello, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
        assert all(c.usage is None for c in chunks)
        reported.append(completion.usage)
        sdk.close()

        # The simulator's documented count (docs/configuration.md): each word and each punctuation mark is a
        # token, 3 per message plus 3 for the reply. "Hello": 3 + 3 + 1 = 7. "Tell me about toll roads,
        # please.": 3 + 3 + 8 (six words, a comma, a full stop) = 14. Each reply: its default 24 tokens.
        assert [(u.prompt_tokens, u.completion_tokens) for u in reported] == [(7, 24), (14, 24), (7, 24)]
        expected = {"input": 7 + 14 + 7, "output": 24 * 3}
        gateway.expect_tokens(expected)
        with gateway.admin() as admin:
            body = admin.get("/api/v1/meters/llm_tokens/query", params={"subject": "acme-corp"}).json()
        assert set(body) == {"from", "to", "windowSize", "data"}
        assert [row["value"] for row in body["data"]] == ["100"]
    finally:
        gateway.stop()


def test_check_accepts_the_quickstart_and_names_the_path_of_a_typo(tmp_path: Path) -> None:
    ok = run_tollway("check", str(QUICKSTART), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    summary = "1 providers, 1 models, 1 consumers, 0 meters, 2 features, 2 plans, 1 customers"
    assert ok.stdout.strip() == f"{QUICKSTART}: ok ({summary})"

    typo = tmp_path / "quickstart.yaml"
    typo.write_text(QUICKSTART.read_text().replace("tokens_per_second:", "tokens_per_secnd:"))
    result = run_tollway("check", "quickstart.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: quickstart.yaml: providers[0].tokens_per_secnd: unknown field 'tokens_per_secnd';"
        " did you mean 'tokens_per_second'?"
    ]
