"""Pure notification logic: Standard Webhooks signatures (checked with the standardwebhooks library), the
retry schedule, thresholds (PERCENT, NUMBER, usage_*, balance_value) and the SSRF guard."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tollway.errors import ValidationError
from tollway.notifications.delivery import Poller
from tollway.notifications.model import Threshold
from tollway.notifications.retry import MAX_ATTEMPTS, next_attempt, outcome
from tollway.notifications.signing import new_secret, secret_key, signature, signed_headers
from tollway.notifications.thresholds import Reading, check_thresholds, reached_thresholds
from tollway.notifications.urls import check_url, forbidden_address

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"id":"01J","type":"invoice.created","timestamp":"2026-12-07T18:00:00.000Z","data":{}}'


def test_signature_matches_the_standard_webhooks_library() -> None:
    at = datetime.now(UTC)
    headers = signed_headers(SECRET, "msg_01J", at, BODY, {"x-team": "billing", "Webhook-Signature": "forged"})
    assert headers["webhook-id"] == "msg_01J"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert headers["x-team"] == "billing"
    assert "Webhook-Signature" not in headers  # a custom header cannot override the signature
    assert Webhook(SECRET).verify(BODY, headers) == {
        "id": "01J",
        "type": "invoice.created",
        "timestamp": "2026-12-07T18:00:00.000Z",
        "data": {},
    }
    # the library's own signature of the same message is the same string
    assert headers["webhook-signature"] == Webhook(SECRET).sign("msg_01J", at, BODY)


def test_the_spec_example_signature() -> None:
    # the example in the Standard Webhooks specification
    assert (
        signature(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_tampered_and_stale_deliveries_fail_verification() -> None:
    now = datetime.now(UTC)
    headers = signed_headers(SECRET, "msg_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"invoice.created", b"invoice.paid"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    stale = signed_headers(SECRET, "msg_1", now - timedelta(minutes=10), BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(BODY, stale)


def test_generated_secrets_and_refused_ones() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret
    for bad in ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ="):
        with pytest.raises(ValidationError) as caught:
            secret_key(bad)
        assert caught.value.field == "signingSecret"


def test_retry_schedule() -> None:
    failed = datetime(2026, 12, 1, tzinfo=UTC)
    waits = [next_attempt(n, failed) for n in range(1, MAX_ATTEMPTS + 1)]
    assert [None if w is None else w - failed for w in waits] == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
        None,
    ]
    assert [outcome(c) for c in (200, 204, 299, 410, 500, 301, 404, None)] == [
        "success",
        "success",
        "success",
        "gone",
        "retry",
        "retry",
        "retry",
        "retry",
    ]


def t(value: str, kind: str) -> Threshold:
    return Threshold(Decimal(value), kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("usage", "fired"),
    [
        ("499", []),
        ("500", ["PERCENT:50"]),
        ("799.9", ["PERCENT:50"]),
        ("800", ["PERCENT:50", "NUMBER:800", "PERCENT:80"]),
        ("1000", ["PERCENT:50", "NUMBER:800", "PERCENT:80", "PERCENT:100"]),
    ],
)
def test_percent_and_number_thresholds_both_fire(usage: str, fired: list[str]) -> None:
    thresholds = [t("100", "PERCENT"), t("800", "NUMBER"), t("50", "PERCENT"), t("80", "PERCENT")]
    hits = reached_thresholds(thresholds, Reading(total=Decimal(1000), usage=Decimal(usage)))
    assert [h.key for h in hits] == fired


def test_openmeter_threshold_types() -> None:
    reading = Reading(total=Decimal(200), usage=Decimal(150))
    assert reading.balance == Decimal(50)
    types = [t("75", "usage_percentage"), t("150", "usage_value"), t("50", "balance_value"), t("49", "balance_value")]
    assert [h.key for h in reached_thresholds(types, reading)] == [
        "usage_percentage:75",
        "usage_value:150",
        "balance_value:50",
    ]
    # a zero limit reaches no percentage (nothing to be a share of), but a number still fires
    zero = Reading(total=Decimal(0), usage=Decimal(5))
    assert [h.key for h in reached_thresholds([t("50", "PERCENT"), t("5", "NUMBER")], zero)] == ["NUMBER:5"]


@pytest.mark.parametrize(
    ("thresholds", "field"),
    [
        ([], "thresholds"),
        ([t("80", "PERCENT"), t("80.0", "PERCENT")], "thresholds[1]"),
        ([t("-1", "NUMBER")], "thresholds[0].value"),
        ([t("0", "PERCENT")], "thresholds[0].value"),
        ([t("80", "PERCENTAGE")], "thresholds[0].type"),
    ],
)
def test_bad_thresholds_name_the_field(thresholds: Sequence[Threshold], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_thresholds(thresholds)
    assert caught.value.field == field


def test_forbidden_addresses() -> None:
    for address in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "fe80::1", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"):  # fmt: skip
        assert forbidden_address(address) is not None, address
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert forbidden_address(address) is None, address


async def fake_resolve(host: str, port: int) -> Sequence[str]:
    table = {"hooks.example.com": ["93.184.216.34"], "internal.example.com": ["93.184.216.34", "10.0.0.7"]}
    if host not in table:
        raise OSError("Name or service not known")
    return table[host]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://internal.example.com/hook", "10.0.0.7, a private address"),
        ("http://hooks.example.com/hook", "https://"),
        ("https://[::1]:8443/", "loopback"),
        ("https://metadata.google.internal/", "metadata"),
        ("https://nowhere.example.com/", "does not resolve"),
        ("ftp://hooks.example.com/", "https://"),
        ("https://user:pw@hooks.example.com/", "credentials"),
    ],
)
async def test_ssrf_guard_refuses_naming_the_field(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        await check_url(url, allow_private=False, resolve=fake_resolve)
    assert caught.value.field == "url"


async def test_allow_private_lets_http_and_loopback_through() -> None:
    await check_url("https://hooks.example.com/hook", allow_private=False, resolve=fake_resolve)
    await check_url("http://127.0.0.1:9/hook", allow_private=True, resolve=fake_resolve)
    with pytest.raises(ValidationError):
        await check_url("ftp://127.0.0.1/", allow_private=True, resolve=fake_resolve)


async def test_a_poked_poller_runs_its_next_round_at_once() -> None:
    rounds: list[int] = []
    poller = Poller("test", lambda: rounds.append(1), interval_s=3600)
    poller.start()
    try:
        for _ in range(100):
            if rounds:
                break
            await asyncio.sleep(0.01)
        assert rounds == [1]  # the first round runs at start
        poller.wake()
        for _ in range(100):
            if len(rounds) == 2:
                break
            await asyncio.sleep(0.01)
        assert rounds == [1, 1]  # not an hour later
    finally:
        await poller.stop()
