"""/api/v1/features: create, list, get and archive features (OpenMeter's shapes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import Response

from tollway.api.feature_codec import decode_feature, encode_feature
from tollway.api.listing import FLAG_SCHEMA, PAGE_SCHEMA, PAGE_SIZE_SCHEMA, paginated, parse_flag, parse_page
from tollway.api.openapi import body_schema, problem_responses
from tollway.api.wire import parse_body
from tollway.billing.catalog.feature_service import FeatureService
from tollway.billing.validation import KEY


class FilterIn(BaseModel):
    """Exactly one of $eq and $in (the model describes the body; the route decodes it)."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )
    eq: str | SkipJsonSchema[None] = Field(None, alias="$eq", min_length=1)  # absent, never null
    in_: list[str] | SkipJsonSchema[None] = Field(
        None, alias="$in", json_schema_extra={"minItems": 1, "items": {"type": "string", "minLength": 1}}
    )


class FeatureCreate(BaseModel):
    """A meter narrowed by filters on its group-by dimensions."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(json_schema_extra={"pattern": KEY.pattern})
    name: str | None = Field(None, description="Defaults to the key.")
    meterSlug: str | None = None
    meterGroupByFilters: dict[str, str | list[str]] | None = Field(
        None, description="Dimension -> value; a list of values means any of them (Tollway's extension)."
    )
    advancedMeterGroupByFilters: dict[str, FilterIn] | None = Field(None, description="Only $eq and $in.")
    metadata: dict[str, str] | None = None


def features_router(service: FeatureService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/features", tags=["features"])

    @router.get("", summary="List features", responses=problem_responses(400), response_model=None)
    async def list_features(
        request: Request,
        meter_slug: Annotated[list[str] | None, Query(alias="meterSlug")] = None,
        include_archived: Annotated[str | None, Query(alias="includeArchived", json_schema_extra=FLAG_SCHEMA)] = None,
        page: Annotated[
            str | None,
            Query(description="With page or pageSize the answer is paginated.", json_schema_extra=PAGE_SCHEMA),
        ] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> list[dict[str, Any]] | dict[str, Any]:
        params = request.query_params
        pages = parse_page(params)
        features = await service.features(include_archived=parse_flag(params, "includeArchived"))
        if meter_slug:
            features = [f for f in features if f.meter_slug in meter_slug]
        if pages.given:
            return paginated(features, pages, encode_feature)
        return [encode_feature(f) for f in features]

    @router.post(
        "",
        summary="Create a feature",
        status_code=201,
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(FeatureCreate),
    )
    async def create_feature(request: Request) -> dict[str, Any]:
        given = decode_feature(parse_body(await request.body()))
        feature = await service.create_feature(
            key=given.key,
            name=given.name,
            meter_slug=given.meter_slug,
            filters=given.filters,
            metadata=given.metadata,
        )
        return encode_feature(feature)

    @router.get("/{featureId}", summary="Get a feature (by id or key)", responses=problem_responses(404))
    async def get_feature(featureId: str) -> dict[str, Any]:
        return encode_feature(await service.feature(featureId))

    @router.delete(
        "/{featureId}",
        summary="Archive a feature (refused while a published plan uses it)",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404, 409),
    )
    async def archive_feature(featureId: str) -> Response:
        await service.archive_feature(featureId)
        return Response(status_code=204)

    return router
