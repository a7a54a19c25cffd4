"""The tests' fake Stripe API: Tollway's local Stripe stand-in (tollway.demo.stripe_standin), one piece of code
that `tollway demo` uses too. It speaks Stripe's documented wire format for the calls Tollway makes, where
localstripe lacks them, and can inject faults (`fail(...)`) and forget idempotency keys (`idempotency = False`)."""

from __future__ import annotations

from tollway.demo.stripe_standin import Call, Fault, StripeStandIn, StripeState, StripeUserError, parse_form

FakeStripe = StripeStandIn

__all__ = ["Call", "FakeStripe", "Fault", "StripeState", "StripeUserError", "parse_form"]
