"""schemathesis, with every check, against a live `tollway serve`: the OpenAPI document describes what the
management API does (request bodies, parameters, every status with its problem+json body, the admin bearer
scheme), schema-valid requests are accepted, schema-violating ones refused, no 5xx, 405 with `Allow`.

Every check is on (schemathesis' default; the CLI's `--checks all` would also override the per-operation
exceptions below). The run is bounded (a fixed seed, a few examples per operation) to stay within ~30 s on a
2-core machine. A check is switched off only for the operation where it cannot hold, each with its reason
(CONFIG below). The
gateway (/v1/...) is not part of this document: it speaks the OpenAI, Anthropic and Gemini APIs, whose own
specifications describe it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tollway_process import ADMIN_TOKEN, TollwayProcess

MAX_EXAMPLES = 5
ENV = {
    "TOLLWAY_STRIPE_WEBHOOK_SECRET": "whsec_schemathesis",  # the webhook answers 503 without one
    # schemathesis sends hundreds of requests without the admin token on purpose (the 401 checks): no throttling
    "TOLLWAY_AUTH_FAILURE_LIMIT": "0",
    "TOLLWAY_ALLOW_EMPTY_CONFIG": "1",  # the process runs with an empty config file (the catalog comes from the API)
}
SEED = 20261207

# Per-operation exceptions, each for a reason no schema can carry.
CONFIG = """
[[operations]]
# A valid Stripe-Signature is an HMAC of the body with the endpoint's secret: a generated request carries none,
# so schema-valid requests are refused (400) by design.
include-name = "POST /api/v1/stripe/webhook"
checks.positive_data_acceptance.enabled = false

[[operations]]
# An event's time may be at most 5 minutes ahead of the server's clock: a bound relative to the time of the
# request, which a schema cannot state.
include-name = ["POST /api/v1/events", "POST /api/v3/openmeter/events"]
checks.positive_data_acceptance.enabled = false

[[operations]]
# OpenMeter's "invoice pending lines": Tollway cannot express it and answers a documented 501 problem
include-name = "POST /api/v1/billing/invoices/invoice"
checks.not_a_server_error.enabled = false

[[operations]]
# an event listing's and a meter query's time range must be ordered; a v3 meter's JSONPaths must parse
include-name = [
    "GET /api/v1/events",
    "POST /api/v1/meters/{slug}/query",
    "GET /api/v1/meters/{slug}/subjects",
    "GET /api/v1/meters/{slug}/group-by/{key}/values",
    "POST /api/v3/openmeter/meters",
]
checks.positive_data_acceptance.enabled = false

[[operations]]
# groupBy must name the queried meter's own dimensions (stored state, not the schema), and from must be before to.
include-name = "GET /api/v1/meters/{slug}/query"
checks.positive_data_acceptance.enabled = false

[[operations]]
# models must name models of the running configuration (it changes on reload); a key's expiresAt must be in the
# future of the server's clock and its models within the consumer's.
include-name = [
    "POST /api/v1/consumers",
    "PATCH /api/v1/consumers/{username}",
    "POST /api/v1/consumers/{username}/keys",
]
checks.positive_data_acceptance.enabled = false

[[operations]]
# A feature's filters need its meter (meterSlug) and must name that stored meter's groupBy dimensions.
include-name = "POST /api/v1/features"
checks.positive_data_acceptance.enabled = false

[[operations]]
# Plans and subscriptions are valid only together with the stored catalog and by rules across fields (a rate
# card's feature must exist and match its price type, tiers ascend, phases other than the last have a duration,
# exactly one of customerId and customerKey, a change needs a published plan version ...).
include-name = [
    "POST /api/v1/plans",
    "PUT /api/v1/plans/{planId}",
    "POST /api/v1/subscriptions",
    "POST /api/v1/subscriptions/{subscriptionId}/cancel",
    "POST /api/v1/subscriptions/{subscriptionId}/change",
    "POST /api/v1/subscriptions/{subscriptionId}/migrate",
]
checks.positive_data_acceptance.enabled = false

[[operations]]
# A channel's url must resolve to a public address (the SSRF guard: DNS, not the schema), its signingSecret be
# whsec_ + 24 to 64 bytes of base64, and its customHeaders valid header names other than the signature headers;
# a rule's channels must be stored channels, its features stored features, and thresholds go with
# entitlements.balance.threshold rules only.
include-name = [
    "POST /api/v1/notification/channels",
    "PUT /api/v1/notification/channels/{channelId}",
    "POST /api/v1/notification/rules",
    "PUT /api/v1/notification/rules/{ruleId}",
]
checks.positive_data_acceptance.enabled = false

[[operations]]
# A budget's limit is a decimal string > 0 with at most 12 places and at most 10^18 (no pattern bounds both),
# and a whole number for a token budget (a rule across fields).
include-name = ["POST /api/v1/budgets", "PATCH /api/v1/budgets/{budget}"]
checks.positive_data_acceptance.enabled = false

[[operations]]
# A rate limit's limit is a decimal string > 0 (no pattern bounds it), a whole number except for a cost limit, and
# an in-flight limit takes no window (rules across fields).
include-name = ["POST /api/v1/rate-limits", "PATCH /api/v1/rate-limits/{limit}"]
checks.positive_data_acceptance.enabled = false

[[operations]]
# A unit grant's rules across fields and stored state: maxRolloverAmount >= minRolloverAmount, a recurrence's
# anchor and an expiration within the duration bounds, the feature a metered entitlement of the customer's plan;
# an auto-recharge rule takes exactly one of rechargeTo (above the threshold) and amount, in the customer's currency.
include-name = [
    "POST /api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/grants",
    "POST /api/v2/customers/{customerIdOrKey}/entitlements/{featureKey}/grants",
    "POST /api/v1/subjects/{subjectIdOrKey}/entitlements/{featureKey}/grants",
    "PUT /api/v1/customers/{customerIdOrKey}/credits/auto-recharge",
]
checks.positive_data_acceptance.enabled = false

[[operations]]
# Valid only against stored state: grants, history and resets need a feature with a meter (a metered entitlement;
# a reset's effectiveAt also not in the future of the server's clock and after the last reset); a
# balance needs a currency (the customer's own, or the parameter when it has none); a money grant's amount must
# be above 0 and at most 10^15 (a numeric bound no decimal-string pattern states).
include-name = [
    "GET /api/v1/customers/{customerIdOrKey}/credits/balance",
    "GET /api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/grants",
    "GET /api/v2/customers/{customerIdOrKey}/entitlements/{featureKey}/grants",
    "GET /api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/history",
    "GET /api/v2/customers/{customerIdOrKey}/entitlements/{featureKey}/history",
    "GET /api/v1/subjects/{subjectIdOrKey}/entitlements/{featureKey}/grants",
    "POST /api/v1/customers/{customerIdOrKey}/credits/grants",
    "POST /api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/reset",
    "POST /api/v2/customers/{customerIdOrKey}/entitlements/{featureKey}/reset",
]
checks.positive_data_acceptance.enabled = false

[[operations]]
# A portal token names exactly one of subject and customer (a stored customer), and its expiresAt must be in the
# future of the server's clock (within 366 days).
include-name = "POST /api/v1/portal/tokens"
checks.positive_data_acceptance.enabled = false

[[operations]]
# Authenticated by a portal token, which schemathesis does not hold (it sends the admin token: always 401);
# tests/integration/test_dashboard_pages.py and test_openmeter_sdk_portal.py cover it.
include-name = "GET /api/v1/portal/meters/{slug}/query"
enabled = false
"""


@pytest.fixture
def tollway(tmp_path: Path) -> Iterator[TollwayProcess]:
    process = TollwayProcess(tmp_path, {}, env=ENV).start()
    try:
        yield process
    finally:
        process.stop()


def test_schemathesis_with_all_checks_finds_nothing(tollway: TollwayProcess, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{tollway.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "10",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-12000:]
    assert "Tested: " in report, report[-4000:]
