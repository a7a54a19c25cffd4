"""StripeApi against localstripe (a Stripe API emulator, started here as a process) for the calls it implements
the way Stripe does: customers, and the errors Stripe returns. localstripe creates invoices only for its own
subscriptions, has no finalize, takes no invoice items for a given invoice (nor `period[start]`) and ignores
idempotency keys: the invoice steps run against tests/support/fake_stripe.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import stripe

from tests.support.net import free_port, wait_until
from tollway.adapters.stripe.client import StripeApi
from tollway.adapters.stripe.mapping import customer_params
from tollway.billing.customers import Address, Customer
from tollway.errors import UnavailableError, ValidationError

KEY = "sk_test_tollway"


def accepting(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("localstripe")
    log = (workdir / "localstripe.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: accepting(port) or process.poll() is not None, timeout_s=20)
        assert process.poll() is None, (workdir / "localstripe.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture
async def api(localstripe: str) -> AsyncIterator[StripeApi]:
    client = StripeApi(KEY, api_base=localstripe)
    yield client
    await client.close()


@pytest.fixture
def sdk(localstripe: str) -> stripe.StripeClient:
    """The official SDK, used directly to read back what Tollway created and to set up invoices."""
    return stripe.StripeClient(KEY, base_addresses={"api": localstripe}, max_network_retries=0)


async def test_the_stripe_customer_carries_name_email_address_and_tollway_ids(
    api: StripeApi, sdk: stripe.StripeClient
) -> None:
    customer = Customer(
        id="01HCUST",
        key="globex",
        name="Globex <Corp>",
        email="ap@globex.test",
        billing_address=Address(
            country="US", state="CA", city="Cypress Creek", line1="1 Globex Way", postal_code="90210"
        ),
    )

    created = await api.create_customer(customer_params(customer), idempotency_key="tollway:customer:01HCUST")

    assert created.startswith("cus_")
    stored = sdk.v1.customers.retrieve(created)
    assert stored.name == "Globex <Corp>"
    assert stored.email == "ap@globex.test"
    assert stored.address is not None
    assert stored.address.to_dict() == {
        "country": "US",
        "state": "CA",
        "city": "Cypress Creek",
        "line1": "1 Globex Way",
        "postal_code": "90210",
    }
    assert stored.metadata is not None
    assert stored.metadata.to_dict() == {"tollway_customer_id": "01HCUST", "tollway_customer_key": "globex"}


async def test_stripe_errors_become_domain_errors(api: StripeApi, localstripe: str) -> None:
    with pytest.raises(ValidationError) as missing:
        await api.retrieve_invoice("in_doesnotexist")
    assert missing.value.message == "Stripe: Not Found"

    refused_key = StripeApi("rk_not_a_secret_key", api_base=localstripe)
    try:
        with pytest.raises(ValidationError) as unauthorized:
            await refused_key.retrieve_invoice("in_doesnotexist")
        assert unauthorized.value.message == "Stripe: Unauthorized"
    finally:
        await refused_key.close()

    nobody = StripeApi(KEY, api_base=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UnavailableError):
            await nobody.retrieve_invoice("in_any")
    finally:
        await nobody.close()
