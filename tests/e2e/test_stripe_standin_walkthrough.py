"""docs/billing.md's "See an invoice in five minutes", as a user runs it: `tollway stripe-standin` in one
terminal, the quickstart served with Stripe pointed at it, one request, the subscription cancelled (which cuts
the period short: billing semantics unchanged), and the invoice reaches the stand-in, finalized."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import yaml

from tests.support.closing import Closing
from tests.support.net import free_port, plain_http, wait_until
from tests.support.tollway_process import TollwayProcess

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def test_an_invoice_reaches_the_stand_in_after_a_cancellation(tmp_path: Path, closing: Closing) -> None:
    port = free_port()
    standin = subprocess.Popen(
        [sys.executable, "-m", "tollway", "stripe-standin", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert standin.stdout is not None
        first = standin.stdout.readline()
        assert first.startswith(f"Stripe stand-in on http://127.0.0.1:{port} "), first
        exports = standin.stdout.readline().split()
        assert exports[:2] == ["export", "TOLLWAY_STRIPE_SECRET_KEY=sk_test_local"]
        api_base = exports[2].split("=", 1)[1]
        gateway = TollwayProcess(
            tmp_path,
            yaml.safe_load(QUICKSTART.read_text()),
            env={
                "TOLLWAY_STRIPE_SECRET_KEY": "sk_test_local",
                "TOLLWAY_STRIPE_API_BASE": api_base,
                "TOLLWAY_INVOICE_GRACE_S": "0",
                "TOLLWAY_BILLING_INTERVAL_S": "0.2",
            },
        ).start()
        try:
            client = closing(openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="acme-secret-key", max_retries=0))
            client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hello"}])
            wait_until(lambda: gateway.tokens_by_type("acme-corp").get("output", 0) > 0)
            with gateway.admin() as admin:
                subscription = admin.get("/api/v1/customers/acme").json()["currentSubscriptionId"]
                ended = admin.post(f"/api/v1/subscriptions/{subscription}/cancel", json={"timing": "immediate"})
                assert ended.status_code == 200, ended.text

            def stripe_invoices() -> list[dict[str, Any]]:
                with plain_http(base_url=api_base) as stripe_side:
                    answer = stripe_side.get("/v1/invoices", auth=("sk_test_local", ""))
                return answer.json()["data"]  # type: ignore[no-any-return]

            wait_until(lambda: any(i["status"] != "draft" for i in stripe_invoices()), 30)
            with gateway.admin() as admin:
                issued = admin.get("/api/v1/invoices", params={"customer": "acme"}).json()
            issued = issued["items"] if isinstance(issued, dict) else issued
            assert len(issued) == 1
            [invoice] = stripe_invoices()
            assert invoice["total"] == issued[0]["totalMinor"]
            assert invoice["metadata"]["tollway_invoice_id"] == issued[0]["id"]
        finally:
            assert gateway.stop() == 0
    finally:
        standin.terminate()
        output, _ = standin.communicate(timeout=10)
    assert standin.returncode == 0, output
    assert "POST /v1/invoices -> 200 " in output
