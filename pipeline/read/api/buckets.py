"""`GET /buckets`: the tracked buckets with their totals, as a Powertools `Router`.

`pipeline.read.api.build_app` includes it; the error handlers of that resolver answer for it too
(a store that is down is a 503 `{"message"}`, never a stack trace).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, NotRequired, Protocol

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts on Python < 3.12

from pipeline.core.settings import Settings
from pipeline.totals.ports import TotalsReader

MAX_BUCKETS = 1000
"""At most this many buckets are listed (each costs one consistent read of its totals)."""


class TrackedBucket(TypedDict):
    """One tracked bucket; `files` and `bytes` are its whole-bucket totals."""

    bucket: str
    default: bool
    """Whether requests without `bucket` read this one (the stack's own bucket)."""
    files: NotRequired[int]
    bytes: NotRequired[int]


class BucketList(TypedDict):
    """The tracked buckets in name order (`truncated` when there were more than 1,000)."""

    items: list[TrackedBucket]
    truncated: bool


class BucketDirectory(Protocol):
    """Which buckets the table tracks (the file reader of `pipeline.read.api` fits)."""

    def tracked_buckets(self) -> list[str]: ...


LIST_RESPONSE: OpenAPIResponse = {
    "description": "The tracked buckets",
    "content": {"application/json": {"model": BucketList}},
}


def tracked_buckets(
    directory: BucketDirectory, settings: Settings, totals: TotalsReader | None
) -> BucketList:
    """The stack's own bucket and every registered one, in name order, each with its totals
    (one consistent read of its `""` counter) when `totals` is given."""
    names = set(directory.tracked_buckets())
    if settings.tracked_bucket:
        names.add(settings.tracked_bucket)
    ordered = sorted(names, key=lambda name: name.encode("utf-8"))
    items: list[TrackedBucket] = []
    for name in ordered[:MAX_BUCKETS]:
        item: TrackedBucket = {"bucket": name, "default": name == settings.tracked_bucket}
        if totals is not None:
            stored = totals.get(name, "")
            item["files"], item["bytes"] = stored.totals.files, stored.totals.bytes
        items.append(item)
    if not settings.tracked_bucket and len(items) == 1:
        items[0]["default"] = True  # the API's default when exactly one bucket is tracked
    return {"items": items, "truncated": len(ordered) > MAX_BUCKETS}


def buckets_router(
    directory: BucketDirectory,
    settings: Settings,
    totals: TotalsReader | None,
    *,
    errors: dict[int, OpenAPIResponse] | None = None,
) -> Router:
    """The `GET /buckets` route over `directory` and `totals`; `errors` documents the error
    responses the including resolver's handlers give."""
    router = Router()

    @router.get(
        "/buckets",
        summary="List the tracked buckets",
        description=(
            "Every bucket this API answers for (the stack's own and the adopted ones), in name "
            "order, each with the files and bytes of the whole bucket from its totals counter "
            "(exact within seconds of the last event). `default` marks the bucket the other "
            "routes read when `bucket` is not given."
        ),
        operation_id="listBuckets",
        tags=["buckets"],
        responses={200: LIST_RESPONSE, **(errors or {})},
    )
    def list_buckets() -> Response[BucketList]:
        body: Any = tracked_buckets(directory, settings, totals)
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)

    return router
