"""/api/v1/notification: OpenMeter's notification API — channels, rules (+ /test), events (+ /resend).

Lists are paginated (`{"items", "page", "pageSize", "totalCount"}`). A channel's `signingSecret` appears only
in the answer to its creation. Events list newest first and filter by `rule`, `channel`, `feature`, `subject`
(each repeatable), `from`/`to` (creation time) and `deliveryStatus` (PENDING, SENDING, SUCCESS, FAILED,
RESENDING: events with a delivery in that state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.listing import FLAG_SCHEMA, PAGE_SCHEMA, PAGE_SIZE_SCHEMA, items_of, paginated, parse_flag, parse_page
from tollway.api.notification_codec import (
    as_list,
    decode_channel,
    decode_rule,
    encode_channel,
    encode_event,
    encode_rule,
)
from tollway.api.openapi import TIME, body_schema, or_empty, problem_responses
from tollway.api.wire import Json, parse_body, parse_moment
from tollway.billing.catalog.feature_service import FeatureService
from tollway.errors import NotFoundError, ValidationError
from tollway.notifications.model import DELIVERY_STATES, EVENT_TYPES, THRESHOLD_TYPES, Event, EventFilter
from tollway.notifications.service import NotificationService, RuleInput


class ChannelCreate(BaseModel):
    """A webhook channel. `signingSecret` (whsec_ + base64) is generated when absent and shown once."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["WEBHOOK"]
    name: str = Field(min_length=1, max_length=255)
    url: str = Field(description="https, public address (http and private ones with TOLLWAY_WEBHOOK_ALLOW_PRIVATE=1)")
    customHeaders: dict[str, str] | None = None
    signingSecret: str | None = Field(None, pattern="^whsec_")
    disabled: bool | None = None
    metadata: dict[str, str] | None = None


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float | str = Field(description="A number (or a decimal string) >= 0; a percentage for PERCENT")
    type: Literal[THRESHOLD_TYPES]  # type: ignore[valid-type]


class RuleCreate(BaseModel):
    """A rule: which events (its type; for entitlement rules the features and thresholds) go to which channels."""

    model_config = ConfigDict(extra="forbid")
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    name: str = Field(min_length=1, max_length=255)
    channels: list[str] = Field(min_length=1)
    features: list[str] | None = None
    thresholds: list[ThresholdIn] | None = Field(None, max_length=10)
    disabled: bool | None = None
    metadata: dict[str, str] | None = None


def notifications_router(service: NotificationService, features: FeatureService | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/notification", tags=["notifications"])

    async def channel_map() -> dict[str, Any]:
        return {c.id: c for c in await service.channels(include_disabled=True, include_deleted=True)}

    async def feature_ids() -> dict[str, str]:
        if features is None:
            return {}
        return {f.key: f.id for f in await features.features()}

    async def checked_features(data: RuleInput) -> RuleInput:
        """Features named by id or key become keys; an unknown one is a 400 naming it."""
        if features is None or not data.features:
            return data
        keys: list[str] = []
        for n, given in enumerate(data.features):
            try:
                keys.append((await features.feature(given)).key)
            except NotFoundError:
                raise ValidationError(f"features[{n}]: no feature {given!r}", field=f"features[{n}]") from None
        return RuleInput(
            type=data.type,
            name=data.name,
            channels=data.channels,
            features=tuple(keys),
            thresholds=data.thresholds,
            disabled=data.disabled,
            metadata=data.metadata,
        )

    # -- channels -------------------------------------------------------------------------------

    @router.get("/channels", summary="List notification channels", responses=problem_responses(400))
    async def list_channels(
        request: Request,
        include_disabled: Annotated[str | None, Query(alias="includeDisabled", json_schema_extra=FLAG_SCHEMA)] = None,
        include_deleted: Annotated[str | None, Query(alias="includeDeleted", json_schema_extra=FLAG_SCHEMA)] = None,
        page: Annotated[str | None, Query(json_schema_extra=PAGE_SCHEMA)] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> Json:
        params = request.query_params
        channels = await service.channels(
            include_disabled=parse_flag(params, "includeDisabled"), include_deleted=parse_flag(params, "includeDeleted")
        )
        return paginated(channels, parse_page(params), encode_channel)

    @router.post(
        "/channels",
        summary="Create a webhook channel (the signing secret is in this answer only)",
        status_code=201,
        responses=problem_responses(400),
        openapi_extra=body_schema(ChannelCreate),
    )
    async def create_channel(request: Request) -> Json:
        channel = await service.create_channel(decode_channel(parse_body(await request.body())))
        return encode_channel(channel, with_secret=True)

    @router.get("/channels/{channelId}", summary="Get a channel", responses=problem_responses(404))
    async def get_channel(channelId: str) -> Json:
        return encode_channel(await service.channel(channelId, include_deleted=True))

    @router.put(
        "/channels/{channelId}",
        summary="Replace a channel (a signingSecret given replaces the secret; absent keeps it)",
        responses=problem_responses(400, 404),
        openapi_extra=body_schema(ChannelCreate),
    )
    async def update_channel(channelId: str, request: Request) -> Json:
        return encode_channel(await service.update_channel(channelId, decode_channel(parse_body(await request.body()))))

    @router.delete(
        "/channels/{channelId}",
        summary="Delete a channel (refused while a rule uses it)",
        status_code=204,
        response_class=Response,
        responses=problem_responses(400, 404),
    )
    async def delete_channel(channelId: str) -> Response:
        await service.delete_channel(channelId)
        return Response(status_code=204)

    # -- rules ----------------------------------------------------------------------------------

    async def rule_json(rule: Any) -> Json:
        ids = await feature_ids()
        return encode_rule(rule, await channel_map(), ids.get)

    @router.get("/rules", summary="List notification rules", responses=problem_responses(400))
    async def list_rules(
        request: Request,
        include_disabled: Annotated[str | None, Query(alias="includeDisabled", json_schema_extra=FLAG_SCHEMA)] = None,
        include_deleted: Annotated[str | None, Query(alias="includeDeleted", json_schema_extra=FLAG_SCHEMA)] = None,
        feature: Annotated[list[str] | None, Query()] = None,
        channel: Annotated[list[str] | None, Query()] = None,
        page: Annotated[str | None, Query(json_schema_extra=PAGE_SCHEMA)] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> Json:
        params = request.query_params
        rules = await service.rules(
            include_disabled=parse_flag(params, "includeDisabled"),
            include_deleted=parse_flag(params, "includeDeleted"),
            features=as_list(feature or []),
            channels=as_list(channel or []),
        )
        channels, ids = await channel_map(), await feature_ids()
        return paginated(rules, parse_page(params), lambda r: encode_rule(r, channels, ids.get))

    @router.post(
        "/rules",
        summary="Create a notification rule",
        status_code=201,
        responses=problem_responses(400),
        openapi_extra=body_schema(RuleCreate),
    )
    async def create_rule(request: Request) -> Json:
        data = await checked_features(decode_rule(parse_body(await request.body())))
        return await rule_json(await service.create_rule(data))

    @router.get("/rules/{ruleId}", summary="Get a rule", responses=problem_responses(404))
    async def get_rule(ruleId: str) -> Json:
        return await rule_json(await service.rule(ruleId, include_deleted=True))

    @router.put(
        "/rules/{ruleId}",
        summary="Replace a rule (its type cannot change)",
        responses=problem_responses(400, 404),
        openapi_extra=body_schema(RuleCreate),
    )
    async def update_rule(ruleId: str, request: Request) -> Json:
        data = await checked_features(decode_rule(parse_body(await request.body())))
        return await rule_json(await service.update_rule(ruleId, data))

    @router.delete(
        "/rules/{ruleId}",
        summary="Delete a rule",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404),
    )
    async def delete_rule(ruleId: str) -> Response:
        await service.delete_rule(ruleId)
        return Response(status_code=204)

    @router.post(
        "/rules/{ruleId}/test",
        summary="Send a sample event of the rule's type to its channels",
        status_code=201,
        responses=problem_responses(404),
    )
    async def test_rule(ruleId: str) -> Json:
        return await event_json(await service.test_rule(ruleId))

    # -- events ---------------------------------------------------------------------------------

    async def event_json(event: Event) -> Json:
        rule = None
        if event.rule_id is not None:
            found = await service.store.get_rule(event.rule_id)
            rule = None if found is None else await rule_json(found)
        return encode_event(event, rule, await channel_map())

    @router.get("/events", summary="List notification events (newest first)", responses=problem_responses(400))
    async def list_events(
        request: Request,
        from_: Annotated[str | None, Query(alias="from", json_schema_extra=or_empty(TIME))] = None,
        to: Annotated[str | None, Query(json_schema_extra=or_empty(TIME))] = None,
        rule: Annotated[list[str] | None, Query()] = None,
        channel: Annotated[list[str] | None, Query()] = None,
        feature: Annotated[list[str] | None, Query()] = None,
        subject: Annotated[list[str] | None, Query()] = None,
        delivery_status: Annotated[
            list[str] | None, Query(alias="deliveryStatus", json_schema_extra=items_of(*DELIVERY_STATES))
        ] = None,
        page: Annotated[str | None, Query(json_schema_extra=PAGE_SCHEMA)] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> Json:
        states = as_list(delivery_status or [])
        for state in states:
            if state not in DELIVERY_STATES:
                raise ValidationError(
                    f"deliveryStatus must be one of {', '.join(DELIVERY_STATES)}, got {state!r}", field="deliveryStatus"
                )
        query = EventFilter(
            rule_ids=tuple(as_list(rule or [])),
            channel_ids=tuple(as_list(channel or [])),
            feature_keys=tuple(as_list(feature or [])),
            subject_keys=tuple(as_list(subject or [])),
            states=tuple(states),  # type: ignore[arg-type]
            start=parse_moment(from_, "from") if from_ else None,
            end=parse_moment(to, "to") if to else None,
        )
        pages = parse_page(request.query_params)
        events = await service.events(replace(query, limit=pages.size, offset=(pages.page - 1) * pages.size))
        channels, ids = await channel_map(), await feature_ids()
        rules = {
            r.id: encode_rule(r, channels, ids.get)
            for r in await service.rules(include_disabled=True, include_deleted=True)
        }
        return {  # one page read from the store (events can be many), counted there
            "items": [encode_event(e, rules.get(e.rule_id or ""), channels) for e in events],
            "page": pages.page,
            "pageSize": pages.size,
            "totalCount": await service.count_events(query),
        }

    @router.get(
        "/events/{eventId}", summary="Get an event with its delivery attempts", responses=problem_responses(404)
    )
    async def get_event(eventId: str) -> Json:
        return await event_json(await service.event(eventId))

    @router.post(
        "/events/{eventId}/resend",
        summary="Deliver the event again to its channels (a new round of the retry schedule)",
        status_code=202,
        response_class=Response,
        responses=problem_responses(404),
    )
    async def resend_event(eventId: str) -> Response:
        await service.resend(eventId)
        return Response(status_code=202)

    return router
