"""The journal line of a gateway call, one direction at a time, against literals.

`decode_record(call_record(call)) == llm_call_events(call)` (test_simulator_and_events.py) passes when
both directions share a mistake; a journal written by one version and replayed by the next needs each
direction to be right on its own. The expected events are worked out by hand from the literal line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, call_record
from tollway.metering.records import decode_record

# A line without `requested_model` (written before the field existed): it reads as the model itself.
LINE = (
    b'{"record":"llm.call","request_id":"req_7","subject":"acme","time":"2026-11-03T10:15:00.250000Z",'
    b'"model":"gpt-4o","upstream_model":"gpt-4o-2024-08-06","provider":"up","route":"/v1/chat/completions",'
    b'"status_code":200,"streamed":true,"partial":false,"estimated":false,"usage":[176,300,1024,0,128],'
    b'"price":["0.0000025","0.00001","0.00000125",null]}'
)
AT = datetime(2026, 11, 3, 10, 15, 0, 250_000, tzinfo=UTC)
COMMON = {
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "upstream_model": "gpt-4o-2024-08-06",
    "provider": "up",
    "status_code": 200,
    "route": "/v1/chat/completions",
    "streamed": True,
    "partial": False,
    "estimated": False,
}


def test_a_journal_line_is_read_as_these_events() -> None:
    events = decode_record(LINE)
    assert [(e.id, e.type, e.source, e.subject, e.time) for e in events] == [
        ("req_7:input", "llm.tokens", "tollway/gateway", "acme", AT),
        ("req_7:output", "llm.tokens", "tollway/gateway", "acme", AT),
        ("req_7:cache_read", "llm.tokens", "tollway/gateway", "acme", AT),  # no cache_write: it was 0
        ("req_7:request", "llm.request", "tollway/gateway", "acme", AT),
    ]
    input_, output, cache_read, request = (e.data for e in events)
    # 176 x 0.0000025 = 0.00044; 300 x 0.00001 = 0.003; 1024 x 0.00000125 = 0.00128; total 0.00472
    assert input_ == {"tokens": 176, "type": "input", **COMMON, "cost_usd": "0.00044"}
    assert output == {"tokens": 300, "type": "output", **COMMON, "reasoning_tokens": 128, "cost_usd": "0.003"}
    assert cache_read == {"tokens": 1024, "type": "cache_read", **COMMON, "cost_usd": "0.00128"}
    assert request == {
        **COMMON,
        "input_tokens": 176,
        "output_tokens": 300,
        "cache_read_tokens": 1024,
        "cache_write_tokens": 0,
        "reasoning_tokens": 128,
        "cost_usd": "0.00472",
    }


def test_a_call_is_written_as_this_journal_line() -> None:
    call = LlmCall(
        request_id="req_7",
        subject="acme",
        time=AT,
        model="gpt-4o",
        upstream_model="gpt-4o-2024-08-06",
        provider="up",
        route="/v1/chat/completions",
        status_code=200,
        streamed=True,
        usage=TokenUsage(input=176, output=300, cache_read=1024, reasoning=128),
        price=TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"), cache_read=Decimal("0.00000125")),
    )
    assert call_record(call) == LINE.replace(b'"model":"gpt-4o",', b'"model":"gpt-4o","requested_model":null,')
