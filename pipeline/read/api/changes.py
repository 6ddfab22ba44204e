"""`GET /changes`: the change feed of a bucket, from a cursor or a time."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from pipeline.core.model import MAX_BUCKET_CHARS
from pipeline.core.tokens import MAX_PREFIX_CHARS, MAX_TOKEN_CHARS
from pipeline.read.api.context import BadRequest, ReadContext, check_query, is_text
from pipeline.read.api.schemas import (
    BUCKET_DESCRIPTION,
    CHANGES_RESPONSES,
    CURSOR_AND_SINCE_MESSAGE,
    PREFIX_MESSAGE,
    ChangePageBody,
)
from pipeline.read.listing import DEFAULT_LIMIT, MAX_LIMIT

DESCRIPTION = (
    "Creates, overwrites and deletes of a bucket's files in the order they became "
    "visible, compacted per key: each key appears at the position of its latest change, "
    "so a consumer that follows the feed sees the latest state of every key that "
    "changed after its cursor, each once; versions overwritten before it read them are "
    "not delivered. Only changes older than the settle window (FEED_SETTLE_MS) are "
    "returned, which is what makes the feed complete. Start from `since` (an ISO 8601 "
    "time) or, with neither `since` nor `cursor`, from now; then pass `next_cursor` "
    "(always present, also on an empty page) with the same `bucket` and `prefix`. "
    "A cursor older than the retention (FEED_RETENTION_DAYS) is a 410."
)


def changes_router(ctx: ReadContext) -> APIGatewayRouter:
    """The route of the `changes` resource over `ctx`."""
    router = APIGatewayRouter()

    @router.get(
        "/changes",
        summary="Follow the changes",
        description=DESCRIPTION,
        operation_id="listChanges",
        tags=["changes"],
        responses=CHANGES_RESPONSES,
    )
    def list_changes(
        limit: Annotated[
            int,
            Query(ge=1, le=MAX_LIMIT, description=f"Changes per page, 1-{MAX_LIMIT}."),
        ] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_TOKEN_CHARS,
                description="The `next_cursor` of the previous page, unchanged.",
            ),
        ] = None,
        since: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=64,
                description="Start with the changes made at or after this ISO 8601 time.",
            ),
        ] = None,
        prefix: Annotated[
            str | None,
            Query(
                max_length=MAX_PREFIX_CHARS,
                description="Only keys starting with this (filtered after reading).",
            ),
        ] = None,
        bucket: Annotated[
            str | None,
            Query(max_length=MAX_BUCKET_CHARS, description=BUCKET_DESCRIPTION),
        ] = None,
    ) -> Response[ChangePageBody]:
        check_query(router.current_event, limit=limit, max_limit=MAX_LIMIT)
        if prefix is not None and not is_text(prefix):
            raise BadRequest(PREFIX_MESSAGE)
        if cursor is not None and since is not None:
            raise BadRequest(CURSOR_AND_SINCE_MESSAGE)
        if ctx.feed is None:
            raise NotFoundError
        chosen = ctx.choose_bucket(bucket)
        body, page = ctx.feed.page(
            bucket=chosen, limit=limit, prefix=prefix or None, cursor=cursor, since=since
        )
        ctx.count("ChangePagesServed")
        ctx.count("ChangesReturned", len(body["items"]))
        ctx.count("FeedQueries", page.queries)
        ctx.count("FeedRowsRead", page.rows_read)
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)  # type: ignore[arg-type]

    return router
