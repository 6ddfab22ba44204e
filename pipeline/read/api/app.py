"""The read API's resolver: one Router per resource, and the error mapping of them all.

`build_app(reader, settings)` returns a ready `APIGatewayRestResolver`; `handlers/api.py`
wires it to DynamoDB, tests to an in-memory fake. Every error leaves as `{"message": "..."}`
with the right status; exception text never reaches a client.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from pipeline.core.settings import Settings
from pipeline.core.tokens import InvalidTokenError, TokenPrefixMismatchError
from pipeline.feed.cursors import CursorCodec
from pipeline.feed.reader import ChangeIndex
from pipeline.feed.service import BadSinceError, ChangeFeed, CursorExpiredError
from pipeline.read.api.buckets import buckets_router
from pipeline.read.api.changes import changes_router
from pipeline.read.api.context import (
    BadRequest,
    FileNotFound,
    MetricsSink,
    ReadContext,
    UnknownBucket,
    repeated_parameter,
)
from pipeline.read.api.files import files_router
from pipeline.read.api.schemas import (
    CURSOR_MESSAGE,
    MESSAGES,
    SERVER_ERRORS,
    SINCE_MESSAGE,
    TOKEN_MESSAGE,
)
from pipeline.read.api.summary import summary_router
from pipeline.read.listing import MAX_ROUNDS
from pipeline.read.ports import FileReader, StoreUnavailableError
from pipeline.totals.ports import TotalsReader

logger = logging.getLogger(__name__)

_TAIL_PARAMETER = re.compile(r"<(\w+)>$")


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
        if isinstance(name, str) and name in MESSAGES:
            return MESSAGES[name]
    return "invalid request parameters"


def _cors(settings: Settings) -> CORSConfig | None:
    """CORS from `CORS_ALLOW_ORIGIN`: one origin, `*`, or a comma-separated list."""
    if not settings.cors_origin:
        return None
    origins = [origin.strip() for origin in settings.cors_origin.split(",") if origin.strip()]
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], max_age=600)


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
    ctx = ReadContext(
        index, settings, metrics=metrics, max_rounds=max_rounds, totals=totals, feed=feed
    )
    app = FileTrackerResolver(
        enable_validation=True,
        # a response that breaks the document is our bug: 500 (via `_unexpected`), not 4xx
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        cors=_cors(settings),
        debug=False,
    )
    routers = (
        files_router(ctx),
        changes_router(ctx),
        summary_router(ctx),
        buckets_router(index, settings, totals, errors=SERVER_ERRORS),
    )
    for router in routers:
        app.include_router(router)
    _map_errors(app, ctx)
    return app


def _map_errors(app: APIGatewayRestResolver, ctx: ReadContext) -> None:
    """Each exception type to its status and public message; anything else is a logged 500."""

    def bad_request(message: str) -> Response:
        ctx.count("BadRequests")
        return _message(HTTPStatus.BAD_REQUEST, message)

    @app.exception_handler(RequestValidationError)
    def _invalid_parameters(exc: RequestValidationError) -> Response:
        repeated = repeated_parameter(app.current_event.multi_value_query_string_parameters)
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
        ctx.count("ExpiredCursors")
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


def feed_for(index: ChangeIndex, settings: Settings) -> ChangeFeed:
    """The change feed of `settings`' table over `index`."""
    return ChangeFeed(
        index,
        CursorCodec.for_table(settings.table_name, settings.page_token_secret),
        settle_ms=settings.feed_settle_ms,
        retention_ms=settings.feed_retention_days * 86_400_000,
    )
