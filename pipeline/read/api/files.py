"""`GET /files` (a page of a listing, or one file by `key`) and `GET /files/{filename+}`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from pipeline.core.model import MAX_BUCKET_CHARS, MAX_KEY_BYTES
from pipeline.core.tokens import MAX_PREFIX_CHARS, MAX_TOKEN_CHARS
from pipeline.read.api.context import BadRequest, FileNotFound, ReadContext, check_query, is_text
from pipeline.read.api.schemas import (
    BUCKET_DESCRIPTION,
    GET_RESPONSES,
    KEY_ALONE_MESSAGE,
    KEY_MESSAGE,
    LIST_RESPONSES,
    MESSAGES,
    FilePage,
    FileRecord,
)
from pipeline.read.keys import MAX_KEY_BYTES_LISTED
from pipeline.read.listing import DEFAULT_LIMIT, MAX_LIMIT, public_view, read_page, start_cursor
from pipeline.totals.folders import SEPARATOR, is_counted

LIST_DESCRIPTION = (
    "Files (and, with `delimiter`, common prefixes) in the order of S3's ListObjectsV2: "
    "ascending UTF-8 bytes of the name. At most `limit` entries per page; a page holds "
    "fewer only at the end of the listing, when the next entry would take the response "
    "past 5 MB, or when a delimiter walk used its rounds of index queries. Pass the "
    "returned `next_token` (with the same `bucket`, `prefix` and `delimiter`) to get the "
    "next page; it is null exactly on the last page. The listing is eventually "
    "consistent (a write shows up within about a second); `GET /files/{filename}` is "
    "not. `bucket` defaults to the stack's own bucket (or the only tracked one). "
    "With `key`, the page holds that one file (or nothing): the form that reaches every "
    "key, including keys with empty or dot segments (`a//b`, `..`), which no URL path "
    "can carry through API Gateway's path normalization."
)
GET_DESCRIPTION = (
    "The file's record. Percent-encode the name in the path (it is decoded once): "
    "`/` may stay as is or be `%2F`, space is `%20`, `%` is `%25`; `+` is a plus. "
    "A key with an empty or dot segment (`a//b`, `./x`, `..`) has no path of its own "
    "(the path is normalized before it is signed and routed): use `GET /files?key=`."
)


BucketParam = Annotated[
    str | None, Query(max_length=MAX_BUCKET_CHARS, description=BUCKET_DESCRIPTION)
]
LimitParam = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Entries per page, 1-{MAX_LIMIT}.")
]
NextTokenParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_TOKEN_CHARS,
        description="The `next_token` of the previous page, unchanged.",
    ),
]
PrefixParam = Annotated[
    str | None,
    Query(
        max_length=MAX_PREFIX_CHARS,
        description="Only files whose name starts with this; empty means all.",
    ),
]
DelimiterParam = Annotated[
    str | None,
    Query(
        max_length=MAX_PREFIX_CHARS,
        description=(
            "Roll names that contain it after the prefix up into `common_prefixes` "
            "(up to and including its first occurrence), like S3's Delimiter."
        ),
    ),
]
StartAfterParam = Annotated[
    str | None,
    Query(
        max_length=MAX_PREFIX_CHARS,
        description="Start with the first name after this one (any string).",
    ),
]
KeyParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_PREFIX_CHARS,
        description=(
            "Exactly this file: the page holds it, or no item if it does not exist "
            "(alone: not with prefix, delimiter, start_after or next_token)."
        ),
    ),
]


def filename_from_path(segment: str) -> str | None:
    """The filename named by the end of the request path, or None if no file can have it.

    A REST API's `path` keeps the percent-encoding the client sent, so it is decoded exactly
    once here (`+` stays `+`: it only means space in query strings). `pathParameters` is not
    used: whether it arrives decoded differs between API Gateway and its emulators, and
    decoding a name twice would turn `100%2541` into `100A` instead of `100%41`.
    """
    try:
        name = unquote(segment, errors="strict")
        size = len(name.encode("utf-8"))
    except UnicodeError:  # invalid UTF-8 escapes, lone surrogates
        return None
    return name if 0 < size <= MAX_KEY_BYTES else None


def prefixes_with_totals(
    ctx: ReadContext, bucket: str, prefixes: list[str], delimiter: str | None
) -> list[dict[str, Any]]:
    """Common prefixes as entries; with "/" each counted folder's totals, read in one
    consistent BatchGetItem (per 100 folders)."""
    entries: list[dict[str, Any]] = [{"prefix": prefix} for prefix in prefixes]
    if ctx.totals is None or delimiter != SEPARATOR or not prefixes:
        return entries
    counted = [prefix for prefix in prefixes if is_counted(prefix)]
    stored = ctx.totals.get_many(bucket, counted) if counted else {}
    for entry in entries:
        found = stored.get(entry["prefix"])
        if found is not None:
            entry["files"], entry["bytes"] = found.totals.files, found.totals.bytes
    return entries


def _ok(body: Any) -> Response[Any]:
    return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)


def _one_file(ctx: ReadContext, bucket: str, key: str, listing: dict[str, Any]) -> Response[Any]:
    """The page of `GET /files?key=`: the live file named `key`, or no item."""
    if any(listing.values()):
        raise BadRequest(KEY_ALONE_MESSAGE)
    if not is_text(key) or not 0 < len(key.encode("utf-8")) <= MAX_KEY_BYTES_LISTED:
        raise BadRequest(KEY_MESSAGE)
    row = ctx.index.for_bucket(bucket).get(key)
    view = public_view(row) if row is not None else None
    ctx.count("KeyLookups")
    return _ok({"items": [view] if view is not None else [], "next_token": None})


def _page(
    ctx: ReadContext,
    bucket: str,
    limit: int,
    prefix: str | None,
    delimiter: str | None,
    start_after: str | None,
    next_token: str | None,
) -> Response[Any]:
    """One page of `bucket`'s listing, resumed from `next_token` (or after `start_after`)."""
    codec = ctx.codec
    resume = (
        codec.decode(next_token, prefix, delimiter, bucket=bucket)
        if next_token is not None
        else None
    )
    page = read_page(
        ctx.index.for_bucket(bucket),
        limit,
        prefix=prefix,
        delimiter=delimiter,
        cursor=start_cursor(start_after, resume),
        max_rounds=ctx.max_rounds,
    )
    token = (
        codec.encode(page.cursor, prefix, delimiter, bucket=bucket)
        if page.cursor is not None
        else None
    )
    ctx.count("PagesServed")
    ctx.count("ItemsReturned", len(page.items))
    ctx.count("IndexQueries", page.stats.calls)
    ctx.count("IndexRowsRead", page.stats.rows_read)
    body: dict[str, Any] = {"items": page.items, "next_token": token}
    if delimiter is not None:
        body["common_prefixes"] = prefixes_with_totals(ctx, bucket, page.common_prefixes, delimiter)
    return _ok(body)


def files_router(ctx: ReadContext) -> APIGatewayRouter:
    """The routes of the `files` resource over `ctx`."""
    router = APIGatewayRouter()

    @router.get(
        "/files",
        summary="List files",
        description=LIST_DESCRIPTION,
        operation_id="listFiles",
        tags=["files"],
        responses=LIST_RESPONSES,
    )
    def list_files(
        bucket: BucketParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
        next_token: NextTokenParam = None,
        prefix: PrefixParam = None,
        delimiter: DelimiterParam = None,
        start_after: StartAfterParam = None,
        key: KeyParam = None,
    ) -> Response[FilePage]:
        if router.current_event.path.endswith("/"):
            raise FileNotFound  # GET /files/ (API Gateway ignores the slash): the empty name
        check_query(router.current_event, limit=limit, max_limit=MAX_LIMIT)
        for name, value in (
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("start_after", start_after),
        ):
            if value is not None and not is_text(value):
                raise BadRequest(MESSAGES[name])
        chosen = ctx.choose_bucket(bucket)
        if key is not None:
            listing = {
                "prefix": prefix,
                "delimiter": delimiter,
                "start_after": start_after,
                "next_token": next_token,
            }
            return _one_file(ctx, chosen, key, listing)
        return _page(
            ctx, chosen, limit, prefix or None, delimiter or None, start_after or None, next_token
        )

    @router.get(
        "/files/<filename>",
        summary="Get one file",
        description=GET_DESCRIPTION,
        operation_id="getFile",
        tags=["files"],
        responses=GET_RESPONSES,
    )
    def get_file(filename: str, bucket: BucketParam = None) -> Response[FileRecord]:
        chosen = ctx.choose_bucket(bucket)
        name = filename_from_path(filename)
        row = ctx.index.for_bucket(chosen).get(name) if name is not None else None
        view = public_view(row) if row is not None else None
        if view is None:
            raise FileNotFound
        return _ok(view)

    return router
