"""The demo's script and its plumbing: the customer, key and model it uses, the six questions, the config it reads
(the repository's quickstart, else a built-in copy), what it returns, and how it keeps the components' logs to
itself."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import tollway
from tollway.config.loader import load_config, parse_config
from tollway.config.schema import TollwayConfig
from tollway.money import format_quantity

QUICKSTART = Path(tollway.__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
CUSTOMER = "acme"
SUBJECT = "acme-corp"
API_KEY = "acme-secret-key"
MODEL = "demo"
INPUT_FEATURE = "input-tokens"
OUTPUT_FEATURE = "output-tokens"
STRIPE_KEY = "sk_test_tollway_demo"
USAGE_TIMEOUT_S = 20.0
PAID_AFTER = timedelta(days=3)

# The six requests: (question, streamed). Each question comes with a pasted log (see `prompt`).
REQUESTS: tuple[tuple[str, bool], ...] = (
    ("Summarise these support tickets in one paragraph.", False),
    ("Which of these tickets are about billing?", True),
    ("Draft a reply to the oldest ticket below.", False),
    ("Group these tickets by product area.", True),
    ("Which tickets below need an engineer?", False),
    ("Write release notes that answer these tickets.", True),
)
TICKETS_PER_PROMPT = 150
# The simulator answers at length and without a streaming delay here, so the amounts are not all zero cents.
REPLY_TOKENS = 800


def prompt(index: int, question: str) -> str:
    """A question followed by a log of support tickets (a different slice of the log for each request)."""
    lines = [
        f"Ticket {index * TICKETS_PER_PROMPT + n:05d}: the customer reports that request {n} to model demo "
        f"was slow at peak hours and asks for a refund of the tokens it used."
        for n in range(TICKETS_PER_PROMPT)
    ]
    return question + "\n\n" + "\n".join(lines)


# The quickstart's story, for an installation without the repository's examples/ folder.
FALLBACK_CONFIG = """
providers:
  - {name: local, type: simulator, tokens_per_second: 200}
models:
  - {name: demo, targets: [{provider: local, model: demo}]}
consumers:
  - {username: acme-corp, keys: [acme-secret-key]}
features:
  - {key: input-tokens, meter: llm_tokens, filters: {type: input}}
  - {key: output-tokens, meter: llm_tokens, filters: {type: output}}
plans:
  - key: starter
    name: Starter
    currency: USD
    billing_cadence: P1M
    rate_cards:
      - {feature: input-tokens, price: {type: unit, amount: "0.000003"}}
      - {feature: output-tokens, price: {type: unit, amount: "0.00001"}}
customers:
  - {key: acme, name: Acme Corp, usage_from: [acme-corp], subscription: {plan: starter}}
"""


class DemoFailed(Exception):
    """A step could not be completed; the message says which and why, in one line."""


@dataclass(frozen=True)
class Reply:
    prompt: str
    streamed: bool
    answer: str
    input_tokens: int  # prompt tokens not served from the provider's cache (Tollway's `input` type)
    output_tokens: int


@dataclass(frozen=True)
class DemoResult:
    invoice_id: str
    invoice_number: str
    status: str
    html: Path
    pdf: Path
    stripe_invoice_id: str | None = None
    stripe_status: str | None = None  # the Stripe invoice's status once the sync finalized it


class CapturedLogs(logging.Handler):
    """Keeps the warnings of the components instead of printing them (the demo prints its own lines)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def captured_logs() -> Iterator[CapturedLogs]:
    root = logging.getLogger()
    handler = CapturedLogs()
    saved = (root.level, root.handlers[:])
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]


class QuietServer(uvicorn.Server):
    """uvicorn in a task of the demo's loop: Ctrl-C stays the demo's, not the server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def load_demo_config() -> tuple[TollwayConfig, str]:
    """The quickstart's config (gateway and catalog) when the repository's examples/ is here, else its copy;
    its simulator providers answer with REPLY_TOKENS tokens, at once."""
    config: TollwayConfig | None = None
    source = "the built-in copy of examples/quickstart.yaml"
    if QUICKSTART.exists():
        config = load_config(QUICKSTART, {})
        source = str(QUICKSTART)
    if config is None or not any(c.key == CUSTOMER for c in config.customers):
        config = parse_config(FALLBACK_CONFIG, {}, "<demo>")
        source = "the built-in copy of examples/quickstart.yaml"
    providers = [
        p.model_copy(update={"reply_tokens": REPLY_TOKENS, "tokens_per_second": 0}) if p.type == "simulator" else p
        for p in config.providers
    ]
    return config.model_copy(update={"providers": providers}), source


def token_count(tokens: int) -> str:
    return format_quantity(Decimal(tokens))


def first_reason(record: str) -> str:
    """The first line of a failed sync's reason, without the logger's prefix."""
    text = record.split("): ", 1)[-1] if "): " in record else record
    return text.strip().splitlines()[0] if text.strip() else record


def cached_tokens(usage: Any) -> int:
    details = getattr(usage, "prompt_tokens_details", None)
    return int(getattr(details, "cached_tokens", 0) or 0)


def line_quantities(invoice: dict[str, Any]) -> dict[str, int]:
    return {
        line["featureKey"]: int(Decimal(line["quantity"]))
        for line in invoice["lines"]
        if line.get("featureKey") and line.get("quantity") is not None
    }


def json_body(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise DemoFailed(
            f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}: {detail}"
        )
    body: dict[str, Any] = response.json()
    return body
