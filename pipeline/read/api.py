"""The read API: routes, parameter checks and error mapping on Powertools' REST resolver.

`build_app(reader, settings)` returns a ready `APIGatewayRestResolver`; `handlers/api.py`
wires it to DynamoDB, tests to an in-memory fake. Every error leaves as `{"message": "..."}`
with the right status; exception text never reaches a client.

The OpenAPI document (`openapi.json` at the repo root) is generated from these routes:

    python -m pipeline.read.api --openapi > openapi.json
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from http import HTTPStatus
from typing import Annotated, Any, NotRequired, Protocol
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts on Python < 3.12

from pipeline.core.model import BUCKET_RULE, MAX_BUCKET_CHARS, MAX_KEY_BYTES, bucket_problem
from pipeline.core.settings import Settings
from pipeline.core.tokens import (
    MAX_PREFIX_CHARS,
    MAX_TOKEN_CHARS,
    InvalidTokenError,
    TokenCodec,
    TokenPrefixMismatchError,
)
from pipeline.feed.cursors import CursorCodec
from pipeline.feed.reader import ChangeIndex, ShardPage, ShardRange
from pipeline.feed.service import (
    SINCE_MESSAGE,
    BadSinceError,
    ChangeFeed,
    CursorExpiredError,
)
from pipeline.read.api.buckets import buckets_router
from pipeline.read.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_ROUNDS,
    FileReader,
    StoreUnavailableError,
    public_view,
    read_page,
    start_cursor,
)
from pipeline.totals.folders import MAX_DEPTH, SEPARATOR, depth, is_counted, is_folder
from pipeline.totals.ports import TotalsReader

logger = logging.getLogger(__name__)

API_TITLE = "S3 File Tracker API"
API_VERSION = "1.0.0"
API_DESCRIPTION = (
    "Lists the files of a tracked S3 bucket, page by page, and returns one file's record. "
    "One table tracks the stack's own bucket and any adopted ones: `bucket` chooses one. "
    "Every error is a JSON object with a single `message`."
)
LIMIT_MESSAGE = f"limit must be an integer between 1 and {MAX_LIMIT}"
TOKEN_MESSAGE = "next_token is invalid: pass the next_token of the previous page unchanged"
PREFIX_MESSAGE = f"prefix must be a string of at most {MAX_PREFIX_CHARS} characters"
DELIMITER_MESSAGE = f"delimiter must be a string of at most {MAX_PREFIX_CHARS} characters"
START_AFTER_MESSAGE = f"start_after must be a string of at most {MAX_PREFIX_CHARS} characters"
FOLDER_MESSAGE = 'prefix must be empty (the whole bucket) or a folder ending in "/"'
DEPTH_MESSAGE = f"prefix is deeper than {MAX_DEPTH} folders, the deepest that totals are kept for"
CURSOR_MESSAGE = "cursor is invalid: pass the next_cursor of the previous page unchanged"
CURSOR_AND_SINCE_MESSAGE = "pass either cursor or since, not both"
BUCKET_MESSAGE = f"bucket must be an S3 bucket name: {BUCKET_RULE}"
BUCKET_DESCRIPTION = (
    "The tracked bucket to read (see `GET /files`'s description for the default). "
    "An untracked bucket is a 404."
)
REPEATED_MESSAGE = (
    "query parameter {name} was given {count} times: the API accepts one value per name"
)
_MESSAGES = {
    "bucket": BUCKET_MESSAGE,
    "limit": LIMIT_MESSAGE,
    "next_token": TOKEN_MESSAGE,
    "prefix": PREFIX_MESSAGE,
    "delimiter": DELIMITER_MESSAGE,
    "start_after": START_AFTER_MESSAGE,
    "cursor": CURSOR_MESSAGE,
    "since": SINCE_MESSAGE,
}
_LIMIT_TEXT = re.compile(r"[1-9][0-9]{0,3}")
_TAIL_PARAMETER = re.compile(r"<(\w+)>$")
_SCHEMAS = "#/components/schemas/"


@with_config(ConfigDict(extra="allow"))
class FileRecord(TypedDict):
    """One file as the API returns it: the stored attributes, internal ones left out."""

    filename: str
    bucket: NotRequired[str]
    size: NotRequired[int]
    etag: NotRequired[str]
    event_time: NotRequired[str]
    event_name: NotRequired[str]
    sequencer: NotRequired[str]
    version_id: NotRequired[str]


class CommonPrefix(TypedDict):
    """A common prefix of a page; with `delimiter=/` (a folder), the files and bytes of
    everything under it (absent for folders deeper than the totals are kept)."""

    prefix: str
    files: NotRequired[int]
    bytes: NotRequired[int]


class FilePage(TypedDict):
    """One page of `GET /files`; `next_token` is null exactly on the last page.

    `common_prefixes` is present when a `delimiter` was given.
    """

    items: list[FileRecord]
    next_token: str | None
    common_prefixes: NotRequired[list[CommonPrefix]]


class FolderSummary(TypedDict):
    """Live files and their bytes under `prefix` (all of `bucket` when empty)."""

    bucket: str
    prefix: str
    files: int
    bytes: int


class Change(TypedDict):
    """One change of the feed: the key's state at `position` (its latest change)."""

    key: str
    bucket: str
    kind: str
    """`created`, `overwritten` or `deleted`."""
    position: str
    """Where the change sits in the feed (ascending; opaque, comparable as strings)."""
    size: NotRequired[int]
    etag: NotRequired[str]
    version_id: NotRequired[str]
    event_time: NotRequired[str]
    sequencer: NotRequired[str]


class ChangePageBody(TypedDict):
    """One page of `GET /changes`; `next_cursor` is always present."""

    items: list[Change]
    next_cursor: str


class ErrorMessage(TypedDict):
    """The body of every error response."""

    message: str


class BadRequest(Exception):
    """A request parameter is invalid; the message is safe to show to the client."""


class FileNotFound(Exception):
    """No live file has the requested name."""


class UnknownBucket(Exception):
    """The `bucket` parameter names a bucket this API does not track (the message says so)."""


class MetricsSink(Protocol):
    """Where counters go (Powertools `Metrics` fits)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        """Add `value` to the metric `name`."""
        ...


def _error_doc(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": ErrorMessage}}}


_SERVER_ERRORS: dict[int, OpenAPIResponse] = {
    500: _error_doc("Internal error (details are logged, never returned)"),
    503: _error_doc("The table is throttling or unreachable; retry later"),
}
LIST_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "A page of files",
        "content": {"application/json": {"model": FilePage}},
    },
    400: _error_doc(
        "Invalid bucket, limit, prefix, delimiter, start_after or next_token "
        "(or no bucket given while several are tracked)"
    ),
    404: _error_doc("The bucket is not tracked"),
    **_SERVER_ERRORS,
}
SUMMARY_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "The folder's totals",
        "content": {"application/json": {"model": FolderSummary}},
    },
    400: _error_doc(
        "Invalid bucket or prefix (not empty and not ending in /, or too deep), "
        "or no bucket given while several are tracked"
    ),
    404: _error_doc("The bucket is not tracked"),
    **_SERVER_ERRORS,
}
CHANGES_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "A page of changes (possibly empty) and the cursor to continue from",
        "content": {"application/json": {"model": ChangePageBody}},
    },
    400: _error_doc(
        "Invalid limit, prefix, bucket, since or cursor "
        "(or no bucket given while several are tracked)"
    ),
    404: _error_doc("The bucket is not tracked"),
    410: _error_doc("The cursor (or since) is older than the feed's retention"),
    **_SERVER_ERRORS,
}
GET_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "The file", "content": {"application/json": {"model": FileRecord}}},
    400: _error_doc("Invalid bucket (or no bucket given while several are tracked)"),
    404: _error_doc("No such file (or it was deleted), or the bucket is not tracked"),
    **_SERVER_ERRORS,
}


class FileTrackerResolver(APIGatewayRestResolver):
    """REST resolver whose trailing `<name>` route parameter is greedy, like `{name+}`.

    API Gateway has already routed `/files/{filename+}` here; the parameter at the end of a
    rule takes the rest of the path, slashes included.
    """

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}$") -> re.Pattern[str]:
        tail = _TAIL_PARAMETER.search(rule)
        if tail is None:
            return APIGatewayRestResolver._compile_regex(rule, base_regex)
        head = ApiGatewayResolver._compile_regex(rule[: tail.start()], "{}").pattern
        return re.compile(rf"^{head}(?P<{tail.group(1)}>[\s\S]+)\Z")


def _message(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body={"message": message},
        headers=headers,
    )


def _validation_message(exc: RequestValidationError) -> str:
    """Our message for the first invalid parameter (pydantic's text is not shown)."""
    for error in exc.errors():
        location = error.get("loc") or ()
        name = location[-1] if location else None
        if isinstance(name, str) and name in _MESSAGES:
            return _MESSAGES[name]
    return "invalid request parameters"


def _repeated_parameter(multi: dict[str, list[str]] | None) -> str | None:
    """The message for the first query parameter given more than once, if any.

    API Gateway passes every value (`multiValueQueryStringParameters`); the API takes one value
    per name and says so instead of picking one.
    """
    for name, values in sorted((multi or {}).items()):
        if len(values) > 1 and name in _MESSAGES:
            return REPEATED_MESSAGE.format(name=name, count=len(values))
    return None


def _cors(settings: Settings) -> CORSConfig | None:
    """CORS from `CORS_ALLOW_ORIGIN`: one origin, `*`, or a comma-separated list."""
    if not settings.cors_origin:
        return None
    origins = [origin.strip() for origin in settings.cors_origin.split(",") if origin.strip()]
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], max_age=600)


def _is_text(value: str) -> bool:
    """Whether `value` is valid Unicode text (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeError:
        return False
    return True


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


def build_app(
    index: FileReader,
    settings: Settings,
    *,
    metrics: MetricsSink | None = None,
    max_rounds: int = MAX_ROUNDS,
    totals: TotalsReader | None = None,
    feed: ChangeFeed | None = None,
) -> APIGatewayRestResolver:
    """The read API over `index` and the change `feed`, configured by `settings` (token key,
    CORS, default bucket)."""
    codec = TokenCodec.for_table(settings.table_name, settings.page_token_secret)
    known: set[str] = {settings.tracked_bucket} if settings.tracked_bucket else set()

    def choose_bucket(bucket: str | None) -> str:
        """The bucket a request reads: the one named (if tracked), else the default."""
        if not bucket:
            if settings.tracked_bucket:
                return settings.tracked_bucket
            tracked = index.tracked_buckets()
            if len(tracked) == 1:
                return tracked[0]
            if not tracked:
                raise UnknownBucket("No bucket is tracked yet: nothing to list")
            names = ", ".join(tracked[:5]) + (", ..." if len(tracked) > 5 else "")
            raise BadRequest(
                f"bucket is required: this API tracks {len(tracked)} buckets ({names})"
            )
        problem = bucket_problem(bucket)
        if problem is not None:
            raise BadRequest(BUCKET_MESSAGE)
        if bucket not in known:
            if not index.is_tracked(bucket):
                raise UnknownBucket(
                    f"Bucket {bucket!r} is not tracked by this API "
                    "(the bucket parameter must name a tracked bucket)"
                )
            known.add(bucket)  # buckets are never untracked: no need to ask again
        return bucket

    def prefixes_with_totals(
        bucket: str, prefixes: list[str], delimiter: str | None
    ) -> list[dict[str, Any]]:
        """Common prefixes as entries; with "/" each counted folder's totals, read in one
        consistent BatchGetItem (per 100 folders)."""
        entries: list[dict[str, Any]] = [{"prefix": prefix} for prefix in prefixes]
        if totals is None or delimiter != SEPARATOR or not prefixes:
            return entries
        counted = [prefix for prefix in prefixes if is_counted(prefix)]
        stored = totals.get_many(bucket, counted) if counted else {}
        for entry in entries:
            found = stored.get(entry["prefix"])
            if found is not None:
                entry["files"], entry["bytes"] = found.totals.files, found.totals.bytes
        return entries

    app = FileTrackerResolver(
        enable_validation=True,
        # a response that breaks the document is our bug: 500 (via `_unexpected`), not 4xx
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        cors=_cors(settings),
        debug=False,
    )

    def count(name: str, value: float = 1) -> None:
        if metrics is not None:
            metrics.add_metric(name=name, unit="Count", value=value)

    def bad_request(message: str) -> Response:
        count("BadRequests")
        return _message(HTTPStatus.BAD_REQUEST, message)

    @app.get(
        "/files",
        summary="List files",
        description=(
            "Files (and, with `delimiter`, common prefixes) in the order of S3's ListObjectsV2: "
            "ascending UTF-8 bytes of the name. At most `limit` entries per page; a page holds "
            "fewer only at the end of the listing, when the next entry would take the response "
            "past 5 MB, or when a delimiter walk used its rounds of index queries. Pass the "
            "returned `next_token` (with the same `bucket`, `prefix` and `delimiter`) to get the "
            "next page; it is null exactly on the last page. The listing is eventually "
            "consistent (a write shows up within about a second); `GET /files/{filename}` is "
            "not. `bucket` defaults to the stack's own bucket (or the only tracked one)."
        ),
        operation_id="listFiles",
        tags=["files"],
        responses=LIST_RESPONSES,
    )
    def list_files(
        bucket: Annotated[
            str | None,
            Query(max_length=MAX_BUCKET_CHARS, description=BUCKET_DESCRIPTION),
        ] = None,
        limit: Annotated[
            int,
            Query(ge=1, le=MAX_LIMIT, description=f"Entries per page, 1-{MAX_LIMIT}."),
        ] = DEFAULT_LIMIT,
        next_token: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_TOKEN_CHARS,
                description="The `next_token` of the previous page, unchanged.",
            ),
        ] = None,
        prefix: Annotated[
            str | None,
            Query(
                max_length=MAX_PREFIX_CHARS,
                description="Only files whose name starts with this; empty means all.",
            ),
        ] = None,
        delimiter: Annotated[
            str | None,
            Query(
                max_length=MAX_PREFIX_CHARS,
                description=(
                    "Roll names that contain it after the prefix up into `common_prefixes` "
                    "(up to and including its first occurrence), like S3's Delimiter."
                ),
            ),
        ] = None,
        start_after: Annotated[
            str | None,
            Query(
                max_length=MAX_PREFIX_CHARS,
                description="Start with the first name after this one (any string).",
            ),
        ] = None,
    ) -> Response[FilePage]:
        if app.current_event.path.endswith("/"):
            raise FileNotFound  # GET /files/ (API Gateway ignores the slash): the empty name
        repeated = _repeated_parameter(app.current_event.multi_value_query_string_parameters)
        if repeated is not None:
            raise BadRequest(repeated)
        raw_limit = app.current_event.query_string_parameters.get("limit")
        if raw_limit is not None and not _LIMIT_TEXT.fullmatch(raw_limit):
            raise BadRequest(LIMIT_MESSAGE)  # pydantic also takes "+5", " 5", "05", "1_0"
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(LIMIT_MESSAGE)
        for name, value in (
            ("prefix", prefix),
            ("delimiter", delimiter),
            ("start_after", start_after),
        ):
            if value is not None and not _is_text(value):
                raise BadRequest(_MESSAGES[name])
        prefix, delimiter, start_after = prefix or None, delimiter or None, start_after or None
        chosen = choose_bucket(bucket)
        resume = (
            codec.decode(next_token, prefix, delimiter, bucket=chosen)
            if next_token is not None
            else None
        )
        page = read_page(
            index.for_bucket(chosen),
            limit,
            prefix=prefix,
            delimiter=delimiter,
            cursor=start_cursor(start_after, resume),
            max_rounds=max_rounds,
        )
        token = (
            codec.encode(page.cursor, prefix, delimiter, bucket=chosen)
            if page.cursor is not None
            else None
        )
        count("PagesServed")
        count("ItemsReturned", len(page.items))
        count("IndexQueries", page.stats.calls)
        count("IndexRowsRead", page.stats.rows_read)
        body: dict[str, Any] = {"items": page.items, "next_token": token}
        if delimiter is not None:
            body["common_prefixes"] = prefixes_with_totals(chosen, page.common_prefixes, delimiter)
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)  # type: ignore[arg-type]

    @app.get(
        "/changes",
        summary="Follow the changes",
        description=(
            "Creates, overwrites and deletes of a bucket's files in the order they became "
            "visible, compacted per key: each key appears at the position of its latest change, "
            "so a consumer that follows the feed sees the latest state of every key that "
            "changed after its cursor, each once; versions overwritten before it read them are "
            "not delivered. Only changes older than the settle window (FEED_SETTLE_MS) are "
            "returned, which is what makes the feed complete. Start from `since` (an ISO 8601 "
            "time) or, with neither `since` nor `cursor`, from now; then pass `next_cursor` "
            "(always present, also on an empty page) with the same `bucket` and `prefix`. "
            "A cursor older than the retention (FEED_RETENTION_DAYS) is a 410."
        ),
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
        repeated = _repeated_parameter(app.current_event.multi_value_query_string_parameters)
        if repeated is not None:
            raise BadRequest(repeated)
        raw_limit = app.current_event.query_string_parameters.get("limit")
        if raw_limit is not None and not _LIMIT_TEXT.fullmatch(raw_limit):
            raise BadRequest(LIMIT_MESSAGE)
        if prefix is not None and not _is_text(prefix):
            raise BadRequest(PREFIX_MESSAGE)
        if cursor is not None and since is not None:
            raise BadRequest(CURSOR_AND_SINCE_MESSAGE)
        if feed is None:
            raise NotFoundError
        chosen = choose_bucket(bucket)
        body, page = feed.page(
            bucket=chosen, limit=limit, prefix=prefix or None, cursor=cursor, since=since
        )
        count("ChangePagesServed")
        count("ChangesReturned", len(body["items"]))
        count("FeedQueries", page.queries)
        count("FeedRowsRead", page.rows_read)
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)  # type: ignore[arg-type]

    @app.get(
        "/files/<filename>",
        summary="Get one file",
        description=(
            "The file's record. Percent-encode the name in the path (it is decoded once): "
            "`/` may stay as is or be `%2F`, space is `%20`, `%` is `%25`; `+` is a plus."
        ),
        operation_id="getFile",
        tags=["files"],
        responses=GET_RESPONSES,
    )
    def get_file(
        filename: str,
        bucket: Annotated[
            str | None,
            Query(max_length=MAX_BUCKET_CHARS, description=BUCKET_DESCRIPTION),
        ] = None,
    ) -> Response[FileRecord]:
        chosen = choose_bucket(bucket)
        name = filename_from_path(filename)
        row = index.for_bucket(chosen).get(name) if name is not None else None
        view = public_view(row) if row is not None else None
        if view is None:
            raise FileNotFound
        body: FileRecord = view  # type: ignore[assignment]
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)

    @app.get(
        "/summary",
        summary="Files and bytes under a folder",
        description=(
            "How many live files, and how many bytes, are under `prefix` (the whole bucket "
            "when empty), in one read of a counter the ingest function keeps. Exact within "
            "seconds of the last event; see docs/api.md for how counters stay exact and how "
            "reconcile repairs them. A folder with nothing under it answers 0 and 0."
        ),
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
        repeated = _repeated_parameter(app.current_event.multi_value_query_string_parameters)
        if repeated is not None:
            raise BadRequest(repeated)
        if not _is_text(prefix):
            raise BadRequest(PREFIX_MESSAGE)
        if not is_folder(prefix):
            raise BadRequest(FOLDER_MESSAGE)
        if depth(prefix) > MAX_DEPTH:
            raise BadRequest(DEPTH_MESSAGE)
        if totals is None:
            raise NotFoundError
        chosen = choose_bucket(bucket)
        stored = totals.get(chosen, prefix)
        count("SummariesServed")
        body: FolderSummary = {
            "bucket": chosen,
            "prefix": prefix,
            "files": stored.totals.files,
            "bytes": stored.totals.bytes,
        }
        return Response(HTTPStatus.OK.value, content_types.APPLICATION_JSON, body)

    app.include_router(buckets_router(index, settings, totals, errors=_SERVER_ERRORS))

    @app.exception_handler(RequestValidationError)
    def _invalid_parameters(exc: RequestValidationError) -> Response:
        repeated = _repeated_parameter(app.current_event.multi_value_query_string_parameters)
        return bad_request(repeated or _validation_message(exc))

    @app.exception_handler(BadRequest)
    def _bad_request(exc: BadRequest) -> Response:
        return bad_request(str(exc))

    @app.exception_handler(InvalidTokenError)
    def _bad_token(exc: InvalidTokenError) -> Response:
        if isinstance(exc, TokenPrefixMismatchError):
            return bad_request(str(exc))
        is_cursor = app.current_event.path.rstrip("/").endswith("/changes")
        logger.info("Rejected %s: %s", "cursor" if is_cursor else "next_token", exc)
        return bad_request(CURSOR_MESSAGE if is_cursor else TOKEN_MESSAGE)

    @app.exception_handler(BadSinceError)
    def _bad_since(exc: BadSinceError) -> Response:
        return bad_request(SINCE_MESSAGE)

    @app.exception_handler(CursorExpiredError)
    def _expired(exc: CursorExpiredError) -> Response:
        count("ExpiredCursors")
        return _message(HTTPStatus.GONE, str(exc))

    @app.exception_handler(FileNotFound)
    def _no_file(exc: FileNotFound) -> Response:
        return _message(HTTPStatus.NOT_FOUND, "File not found")

    @app.exception_handler(UnknownBucket)
    def _unknown_bucket(exc: UnknownBucket) -> Response:
        return _message(HTTPStatus.NOT_FOUND, str(exc))

    @app.exception_handler(NotFoundError)
    def _no_route(exc: NotFoundError) -> Response:
        return _message(HTTPStatus.NOT_FOUND, "Not found")

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        status = HTTPStatus(exc.status_code)
        return _message(status, status.phrase)

    @app.exception_handler(StoreUnavailableError)
    def _unavailable(exc: StoreUnavailableError) -> Response:
        logger.warning("File store unavailable: %s", exc, exc_info=exc)
        return _message(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "Service temporarily unavailable, retry later",
            {"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.error("Unhandled error", exc_info=exc)
        return _message(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")

    return app


class _NoReader:
    """An index for building the app without a table (OpenAPI generation)."""

    def for_bucket(self, bucket: str) -> Any:
        raise NotImplementedError

    def tracked_buckets(self) -> list[str]:
        raise NotImplementedError

    def is_tracked(self, bucket: str) -> bool:
        raise NotImplementedError


class _NoIndex:
    """A feed index for building the app without a table (OpenAPI generation)."""

    def query_changes(self, ranges: Sequence[ShardRange]) -> list[ShardPage]:
        raise NotImplementedError


def feed_for(index: ChangeIndex, settings: Settings) -> ChangeFeed:
    """The change feed of `settings`' table over `index`."""
    return ChangeFeed(
        index,
        CursorCodec.for_table(settings.table_name, settings.page_token_secret),
        settle_ms=settings.feed_settle_ms,
        retention_ms=settings.feed_retention_days * 86_400_000,
    )


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, generated from the routes above."""
    settings = Settings(table_name="files")
    app = build_app(_NoReader(), settings, feed=feed_for(_NoIndex(), settings))
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION
        )
    )
    # Our exception handlers answer validation errors with 400 and response validation
    # failures with 500, both `{"message"}`: not Powertools' 422 / `{"detail"}` shapes.
    internal_error = {
        "description": _SERVER_ERRORS[500]["description"],
        "content": {"application/json": {"schema": {"$ref": f"{_SCHEMAS}ErrorMessage"}}},
    }
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if "500" in responses:
                responses["500"] = internal_error
    _prune_schemas(document)
    return document


def _prune_schemas(document: dict[str, Any]) -> None:
    """Drop component schemas that no path refers to, directly or through other schemas."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = [document.get("paths", {})]
    while pending:
        text = json.dumps(pending.pop())
        for name in re.findall(rf'"{_SCHEMAS}([^"]+)"', text):
            if name not in used and name in schemas:
                used.add(name)
                pending.append(schemas[name])
    for name in set(schemas) - used:
        del schemas[name]


def openapi_text() -> str:
    """`openapi_document()` as committed in `openapi.json`."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.read.api --openapi [FILE]`: print or write the OpenAPI document."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.read.api", description=__doc__)
    parser.add_argument("--openapi", action="store_true", help="emit the OpenAPI document")
    parser.add_argument("output", nargs="?", help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    if not args.openapi:
        parser.print_help()
        return 2
    text = openapi_text()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
