"""The scrubber cuts every known secret out of text and log records; failed authentications are counted,
logged once per address per window, and block an address past the limit until its window ends (fake clock)."""

from __future__ import annotations

import io
import logging

import pytest

from tollway.auth_failures import AuthFailures, client_address
from tollway.config.schema import TollwayConfig
from tollway.metrics import Counter
from tollway.scrub import PRESENTED, Scrubber, ScrubbingFilter, scrub_logs
from tollway.settings import Settings
from tollway.wiring.gateway import secrets_of

PROVIDER_KEY = "sk-provider-abcdef123456"
ADMIN_TOKEN = "tw-admin-0123456789"
CONSUMER_KEY = "tw-consumer-9876543210"


def test_scrubber_cuts_every_configured_secret_and_the_presented_key() -> None:
    scrubber = Scrubber([PROVIDER_KEY, ADMIN_TOKEN, None, "short"])
    text = f"Incorrect API key provided: Bearer {PROVIDER_KEY}; admin {ADMIN_TOKEN}; you sent {CONSUMER_KEY}"
    assert scrubber.text(text, CONSUMER_KEY.encode()) == (
        "Incorrect API key provided: Bearer [REDACTED]; admin [REDACTED]; you sent [REDACTED]"
    )
    assert scrubber.bytes(text.encode(), CONSUMER_KEY.encode()) == (
        b"Incorrect API key provided: Bearer [REDACTED]; admin [REDACTED]; you sent [REDACTED]"
    )
    # a value under 8 characters is not treated as a secret (it would cut ordinary words out of answers)
    assert scrubber.text("a short answer", b"short") == "a short answer"


def test_scrubber_takes_new_secrets_on_update() -> None:
    scrubber = Scrubber([PROVIDER_KEY])
    scrubber.update(["sk-rotated-key-000000"])
    assert scrubber.text(f"{PROVIDER_KEY} sk-rotated-key-000000") == f"{PROVIDER_KEY} [REDACTED]"


def test_log_filter_scrubs_message_arguments_and_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubbingFilter(Scrubber([PROVIDER_KEY])))
    logger = logging.getLogger("tollway.test_scrub")
    logger.addHandler(handler)
    logger.propagate = False
    token = PRESENTED.set(CONSUMER_KEY.encode())
    try:
        logger.warning("upstream said %s for %s", f"Bearer {PROVIDER_KEY}", CONSUMER_KEY)
        try:
            raise RuntimeError(f"broken with {PROVIDER_KEY}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        PRESENTED.reset(token)
        logger.removeHandler(handler)
        logger.propagate = True
    written = stream.getvalue()
    assert "upstream said Bearer [REDACTED] for [REDACTED]" in written
    assert "RuntimeError: broken with [REDACTED]" in written
    assert PROVIDER_KEY not in written
    assert CONSUMER_KEY not in written


def test_scrub_logs_filters_root_handlers_until_removed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        remove = scrub_logs(Scrubber([PROVIDER_KEY]))
        logging.getLogger("tollway.test_scrub_root").error("key %s", PROVIDER_KEY)
        assert logging.lastResort is not None  # used when no handler is configured (a spawned worker)
        assert any(isinstance(f, ScrubbingFilter) for f in logging.lastResort.filters)
        remove()
        assert not logging.lastResort.filters
        logging.getLogger("tollway.test_scrub_root").error("after %s", "removal")
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "key [REDACTED]\nafter removal\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_an_address_is_blocked_at_the_limit_until_its_window_ends(clock: FakeClock) -> None:
    counter = Counter("tollway_auth_failures_total", "", ("surface",))
    failures = AuthFailures(counter, limit=3, window_s=60, now=clock)
    for _ in range(2):
        failures.failed("10.0.0.1", "gateway")
    assert failures.retry_after("10.0.0.1") is None  # 2 of 3
    clock.now += 10
    failures.failed("10.0.0.1", "admin")
    assert failures.retry_after("10.0.0.1") == 50  # the window began at 1000, ends at 1060
    assert failures.retry_after("10.0.0.2") is None  # other addresses are not affected
    clock.now += 49.5
    assert failures.retry_after("10.0.0.1") == 1  # rounded up, never 0
    clock.now += 0.5
    assert failures.retry_after("10.0.0.1") is None  # the window is over
    assert counter.value(("gateway",)) == 2
    assert counter.value(("admin",)) == 1


def test_a_limit_of_zero_never_blocks(clock: FakeClock) -> None:
    counter = Counter("c", "", ("surface",))
    failures = AuthFailures(counter, limit=0, now=clock)
    for _ in range(1000):
        failures.failed("10.0.0.1", "gateway")
    assert failures.retry_after("10.0.0.1") is None
    assert counter.value(("gateway",)) == 1000  # still counted


def test_one_log_line_per_address_per_window(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.auth")
    failures = AuthFailures(Counter("c", "", ("surface",)), limit=100, window_s=60, now=clock)
    for _ in range(5):
        failures.failed("10.0.0.1", "gateway")
    failures.failed("10.0.0.2", "admin")
    clock.now += 60
    failures.failed("10.0.0.1", "gateway")
    failures.failed("10.0.0.1", "gateway")
    assert [r.getMessage() for r in caplog.records if r.name == "tollway.auth"] == [
        "authentication failed from 10.0.0.1 on the gateway surface",
        "authentication failed from 10.0.0.2 on the admin surface",
        "authentication failed from 10.0.0.1 on the gateway surface (5 failures from it in the window before)",
    ]


def test_memory_is_bounded_least_recently_seen_dropped(clock: FakeClock) -> None:
    failures = AuthFailures(Counter("c", "", ("surface",)), limit=2, max_addresses=3, now=clock)
    failures.failed("10.0.0.1", "gateway")
    failures.failed("10.0.0.1", "gateway")  # blocked
    for n in range(2, 5):
        failures.failed(f"10.0.0.{n}", "gateway")
    assert len(failures) == 3
    assert failures.retry_after("10.0.0.1") is None  # dropped first: seen least recently
    for _ in range(10_000):
        failures.failed("10.0.0.9", "gateway")
    assert len(failures) == 3


def test_client_address_of_an_asgi_scope() -> None:
    assert client_address(("203.0.113.7", 51000)) == "203.0.113.7"
    assert client_address(None) == "-"


def test_every_credential_tollway_holds_is_scrubbed() -> None:
    settings = Settings(
        admin_token="admin-canary-0001",
        metrics_token="metrics-canary-0002",
        stripe_secret_key="sk_test_canary_0003",
        stripe_webhook_secret="whsec_canary_0004",
    )
    config = TollwayConfig.model_validate(
        {"providers": [{"name": "up", "type": "openai", "base_url": "http://up.example/v1", "api_key": "sk-up-0005"}]}
    )
    assert sorted(s for s in secrets_of(settings, config) if s) == [
        "admin-canary-0001",
        "metrics-canary-0002",
        "sk-up-0005",
        "sk_test_canary_0003",
        "whsec_canary_0004",
    ]
