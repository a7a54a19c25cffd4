"""/api/v1/customers: billable entities and the subjects whose usage they pay for (OpenMeter's shapes)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.customer_codec import decode_customer, encode_customer
from tollway.api.listing import FLAG_SCHEMA, PAGE_SCHEMA, PAGE_SIZE_SCHEMA, items_of, paginated, parse_flag, parse_page
from tollway.api.openapi import NON_BLANK, SPACE, body_schema, problem_responses
from tollway.api.subscription_codec import encode_subscription
from tollway.api.wire import Json, one_of, parse_body
from tollway.billing.catalog.customer_service import CustomerService
from tollway.billing.catalog.subscription_service import SubscriptionService
from tollway.billing.countries import COUNTRY_CODES
from tollway.billing.customers import Customer
from tollway.billing.subscriptions import Subscription, active_at
from tollway.billing.validation import EMAIL, KEY
from tollway.clock import Clock
from tollway.money import CURRENCY_EXPONENTS

_CURRENCIES: dict[str, Any] = {"enum": sorted(CURRENCY_EXPONENTS)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UsageAttributionIn(_Strict):
    subjectKeys: list[str] | None = Field(
        None,
        description="Subjects whose usage this customer pays for (each at most one); absent: none.",
        json_schema_extra={"uniqueItems": True, "items": {"type": "string", **NON_BLANK}},
    )


_COUNTRIES: dict[str, Any] = {"enum": sorted(COUNTRY_CODES)}


class AddressIn(_Strict):
    country: str | None = Field(None, description="ISO 3166-1 alpha-2 (and XK).", json_schema_extra=_COUNTRIES)
    postalCode: str | None = Field(None, json_schema_extra=NON_BLANK)
    state: str | None = Field(None, json_schema_extra=NON_BLANK)
    city: str | None = Field(None, json_schema_extra=NON_BLANK)
    line1: str | None = Field(None, json_schema_extra=NON_BLANK)
    line2: str | None = Field(None, json_schema_extra=NON_BLANK)
    phoneNumber: str | None = Field(None, json_schema_extra=NON_BLANK)


class CustomerIn(_Strict):
    key: str = Field(json_schema_extra={"pattern": KEY.pattern})
    name: str = Field(json_schema_extra=NON_BLANK)
    description: str | None = None
    primaryEmail: str | None = Field(
        None, json_schema_extra={"maxLength": 254, "pattern": EMAIL.pattern.replace("\\s", SPACE)}
    )
    currency: str | None = Field(None, description="ISO 4217; defaults to the plan's.", json_schema_extra=_CURRENCIES)
    billingAddress: AddressIn | None = None
    usageAttribution: UsageAttributionIn | None = None
    stripeCustomerId: str | None = Field(
        None, description="Tollway's extension: the linked Stripe customer.", json_schema_extra=NON_BLANK
    )
    metadata: dict[str, str] | None = None


def customers_router(
    customer_service: CustomerService, subscription_service: SubscriptionService, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

    async def customer_json(
        customer: Customer, expand: list[str] | None = None, stored: list[Subscription] | None = None
    ) -> Json:
        """`stored`: the customer's subscriptions when the caller has them already (one read for a list)."""
        now = clock.now()
        if stored is None:
            stored = await subscription_service.subscriptions(customer=customer.id)
        shown = [encode_subscription(s, now) for s in stored] if expand and "subscriptions" in expand else None
        return encode_customer(customer, active_at(stored, now), shown)

    @router.post(
        "",
        summary="Create a customer",
        status_code=201,
        responses=problem_responses(400, 409),
        openapi_extra=body_schema(CustomerIn),
    )
    async def create_customer(request: Request) -> Json:
        given = decode_customer(parse_body(await request.body()))
        customer = await customer_service.create_customer(
            key=given.key,
            name=given.name,
            subjects=given.subjects,
            email=given.email,
            currency=given.currency,
            billing_address=given.billing_address,
            description=given.description,
            stripe_customer_id=given.stripe_customer_id,
            metadata=given.metadata,
        )
        return await customer_json(customer)

    @router.get("", summary="List customers", responses=problem_responses(400), response_model=None)
    async def list_customers(
        request: Request,
        key: Annotated[str | None, Query()] = None,
        subject: Annotated[str | None, Query(description="Customers whose usage attribution holds it.")] = None,
        name: Annotated[str | None, Query(description="Case-insensitive, partial.")] = None,
        primary_email: Annotated[str | None, Query(alias="primaryEmail")] = None,
        plan_key: Annotated[str | None, Query(alias="planKey", description="With an active subscription.")] = None,
        include_deleted: Annotated[str | None, Query(alias="includeDeleted", json_schema_extra=FLAG_SCHEMA)] = None,
        order_by: Annotated[
            str | None, Query(alias="orderBy", json_schema_extra={"enum": ["id", "name", "createdAt"]})
        ] = None,
        order: Annotated[str | None, Query(json_schema_extra={"enum": ["ASC", "DESC"]})] = None,
        expand: Annotated[list[str] | None, Query(description="subscriptions")] = None,
        page: Annotated[str | None, Query(json_schema_extra=PAGE_SCHEMA)] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> Json:
        params = request.query_params
        pages = parse_page(params)
        customers = await customer_service.customers(include_deleted=parse_flag(params, "includeDeleted"))
        if key is not None:
            customers = [c for c in customers if c.key == key]
        if subject is not None:
            customers = [c for c in customers if subject in c.subjects]
        if name is not None:
            customers = [c for c in customers if name.lower() in c.name.lower()]
        if primary_email is not None:
            customers = [c for c in customers if c.email and primary_email.lower() in c.email.lower()]
        by_customer: dict[str, list[Subscription]] = {c.id: [] for c in customers}
        for subscription in await subscription_service.subscriptions():  # one read for the whole list
            by_customer.get(subscription.customer_id, []).append(subscription)
        if plan_key is not None:
            now = clock.now()
            customers = [
                c for c in customers if (s := active_at(by_customer[c.id], now)) is not None and s.plan_key == plan_key
            ]
        by = one_of(order_by or "id", ("id", "name", "createdAt"), "orderBy")
        descending = one_of(order or "ASC", ("ASC", "DESC"), "order") == "DESC"
        customers.sort(key=lambda c: _sort_key(c, by), reverse=descending)
        start = (pages.page - 1) * pages.size
        shown = {c.id: await customer_json(c, expand, by_customer[c.id]) for c in customers[start : start + pages.size]}
        return paginated(customers, pages, lambda c: shown[c.id])

    @router.get("/{customerIdOrKey}", summary="Get a customer (by id or key)", responses=problem_responses(404))
    async def get_customer(
        customerIdOrKey: str,
        expand: Annotated[list[str] | None, Query(description="subscriptions")] = None,
    ) -> Json:
        return await customer_json(await customer_service.customer(customerIdOrKey), expand)

    @router.put(
        "/{customerIdOrKey}",
        summary="Replace a customer",
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(CustomerIn),
    )
    async def update_customer(customerIdOrKey: str, request: Request) -> Json:
        given = decode_customer(parse_body(await request.body()))
        stored = await customer_service.customer(customerIdOrKey)
        changed = dataclasses.replace(
            stored,
            key=given.key,
            name=given.name,
            subjects=given.subjects,
            email=given.email,
            currency=given.currency,
            billing_address=given.billing_address,
            description=given.description,
            # the Stripe link is kept unless given: OpenMeter's clients do not know the field
            stripe_customer_id=given.stripe_customer_id or stored.stripe_customer_id,
            metadata=given.metadata,
        )
        return await customer_json(await customer_service.update_customer(changed))

    @router.delete(
        "/{customerIdOrKey}",
        summary="Delete a customer (refused while it has an active or scheduled subscription)",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404, 409),
    )
    async def delete_customer(customerIdOrKey: str) -> Response:
        await customer_service.delete_customer(customerIdOrKey)
        return Response(status_code=204)

    @router.get(
        "/{customerIdOrKey}/subscriptions",
        summary="List a customer's subscriptions",
        responses=problem_responses(400, 404),
    )
    async def list_customer_subscriptions(
        customerIdOrKey: str,
        request: Request,
        status: Annotated[
            list[str] | None, Query(json_schema_extra=items_of("active", "inactive", "canceled", "scheduled"))
        ] = None,
        page: Annotated[str | None, Query(json_schema_extra=PAGE_SCHEMA)] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> Json:
        pages = parse_page(request.query_params)
        wanted = {one_of(s, ("active", "inactive", "canceled", "scheduled"), "status") for s in status or ()}
        customer = await customer_service.customer(customerIdOrKey)
        now = clock.now()
        subscriptions = await subscription_service.subscriptions(customer=customer.id)
        subscriptions = [s for s in subscriptions if not wanted or s.status(now) in wanted]
        return paginated(subscriptions, pages, lambda s: encode_subscription(s, now))

    return router


def _sort_key(customer: Customer, by: str) -> str:
    if by == "name":
        return customer.name.lower()
    if by == "createdAt":
        return (customer.created_at or datetime.min).isoformat()
    return customer.id
