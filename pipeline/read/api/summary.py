"""`GET /summary`: the files and bytes under a folder, from its counter."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from pipeline.core.model import MAX_BUCKET_CHARS
from pipeline.core.tokens import MAX_PREFIX_CHARS
from pipeline.read.api.context import BadRequest, ReadContext, check_query, is_text
from pipeline.read.api.schemas import (
    BUCKET_DESCRIPTION,
    DEPTH_MESSAGE,
    FOLDER_MESSAGE,
    PREFIX_MESSAGE,
    SUMMARY_RESPONSES,
    FolderSummary,
)
from pipeline.totals.folders import MAX_DEPTH, depth, is_folder

DESCRIPTION = (
    "How many live files, and how many bytes, are under `prefix` (the whole bucket "
    "when empty), in one read of a counter the ingest function keeps. Exact within "
    "seconds of the last event; see docs/api.md for how counters stay exact and how "
    "reconcile repairs them. A folder with nothing under it answers 0 and 0."
)


def summary_router(ctx: ReadContext) -> APIGatewayRouter:
    """The route of the `summary` resource over `ctx`."""
    router = APIGatewayRouter()

    @router.get(
        "/summary",
        summary="Files and bytes under a folder",
        description=DESCRIPTION,
        operation_id="getSummary",
        tags=["totals"],
        responses=SUMMARY_RESPONSES,
    )
    def get_summary(
        prefix: Annotated[
            str,
            Query(
                max_length=MAX_PREFIX_CHARS,
                description='A folder: empty (the whole bucket) or ending in "/".',
            ),
        ] = "",
        bucket: Annotated[
            str | None,
            Query(max_length=MAX_BUCKET_CHARS, description=BUCKET_DESCRIPTION),
        ] = None,
    ) -> Response[FolderSummary]:
        check_query(router.current_event)
        if not is_text(prefix):
            raise BadRequest(PREFIX_MESSAGE)
        if not is_folder(prefix):
            raise BadRequest(FOLDER_MESSAGE)
        if depth(prefix) > MAX_DEPTH:
            raise BadRequest(DEPTH_MESSAGE)
        if ctx.totals is None:
            raise NotFoundError
        chosen = ctx.choose_bucket(bucket)
        stored = ctx.totals.get(chosen, prefix)
        ctx.count("SummariesServed")
        body: FolderSummary = {
            "bucket": chosen,
            "prefix": prefix,
            "files": stored.totals.files,
            "bytes": stored.totals.bytes,
        }
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)

    return router
