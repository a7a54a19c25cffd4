"""The Stripe client's HTTP session is closed when the process stops: Runtime.stop (serve) and the worker's
shutdown close the session the billing worker's sync step opened (an unclosed aiohttp session warns when it is
collected, which is what these tests look for)."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest

from tests.support.fake_stripe import FakeStripe
from tollway.adapters.stripe.client import StripeApi, StripeCustomerParams
from tollway.bootstrap import build_runtime, build_worker
from tollway.config.schema import TollwayConfig
from tollway.settings import Settings


def settings(tmp_path: Path, stripe: FakeStripe) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'tollway.db'}",
        journal_dir=str(tmp_path / "journal"),
        stripe_secret_key="sk_test_shutdown",
        stripe_api_base=stripe.origin,
        billing_worker=False,
    )


def unclosed_sessions(caught: list[warnings.WarningMessage]) -> list[str]:
    gc.collect()
    return [str(w.message) for w in caught if "Unclosed client session" in str(w.message)]


async def open_session(api: StripeApi) -> None:
    """One request, so that the client has a live HTTP session."""
    await api.create_customer(StripeCustomerParams(name="Acme"), idempotency_key="shutdown-test")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the leak this test makes on purpose
async def test_an_unclosed_stripe_session_is_detected(fake_stripe: FakeStripe) -> None:
    """The check below can fail: a client that is never closed leaves the warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api = StripeApi("sk_test_shutdown", api_base=fake_stripe.origin)
        await open_session(api)
        del api
        assert len(unclosed_sessions(caught)) == 1


async def test_runtime_stop_closes_the_stripe_session(tmp_path: Path, fake_stripe: FakeStripe) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime = build_runtime(settings(tmp_path, fake_stripe), TollwayConfig())
        assert runtime.stripe is not None
        await runtime.start()
        await open_session(runtime.stripe)
        await runtime.stop()
        del runtime
        assert unclosed_sessions(caught) == []
    assert [call.path for call in fake_stripe.calls] == ["/v1/customers"]


async def test_worker_shutdown_closes_the_stripe_session(tmp_path: Path, fake_stripe: FakeStripe) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = build_worker(settings(tmp_path, fake_stripe))
        assert worker.stripe is not None
        await open_session(worker.stripe)
        await worker.close()
        del worker
        assert unclosed_sessions(caught) == []
