"""The read API's documented shapes: error messages, response bodies and OpenAPI responses."""

from __future__ import annotations

from typing import NotRequired

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts on Python < 3.12

from pipeline.core.model import BUCKET_RULE
from pipeline.core.tokens import MAX_PREFIX_CHARS
from pipeline.feed.service import SINCE_MESSAGE
from pipeline.read.keys import MAX_KEY_BYTES_LISTED
from pipeline.read.listing import MAX_LIMIT
from pipeline.totals.folders import MAX_DEPTH

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
KEY_MESSAGE = f"key must be an S3 object key: 1 to {MAX_KEY_BYTES_LISTED} bytes of UTF-8"
KEY_ALONE_MESSAGE = (
    "key names one file: it cannot be combined with prefix, delimiter, start_after or next_token"
)
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
MESSAGES = {
    "bucket": BUCKET_MESSAGE,
    "limit": LIMIT_MESSAGE,
    "next_token": TOKEN_MESSAGE,
    "prefix": PREFIX_MESSAGE,
    "delimiter": DELIMITER_MESSAGE,
    "start_after": START_AFTER_MESSAGE,
    "cursor": CURSOR_MESSAGE,
    "since": SINCE_MESSAGE,
    "key": KEY_MESSAGE,
}
SCHEMAS = "#/components/schemas/"


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


def error_doc(description: str) -> OpenAPIResponse:
    """An error response of the document: `description` and the `{"message"}` body."""
    return {"description": description, "content": {"application/json": {"model": ErrorMessage}}}


SERVER_ERRORS: dict[int, OpenAPIResponse] = {
    500: error_doc("Internal error (details are logged, never returned)"),
    503: error_doc("The table is throttling or unreachable; retry later"),
}
LIST_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "A page of files",
        "content": {"application/json": {"model": FilePage}},
    },
    400: error_doc(
        "Invalid bucket, limit, prefix, delimiter, start_after, next_token or key "
        "(or no bucket given while several are tracked)"
    ),
    404: error_doc("The bucket is not tracked"),
    **SERVER_ERRORS,
}
SUMMARY_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "The folder's totals",
        "content": {"application/json": {"model": FolderSummary}},
    },
    400: error_doc(
        "Invalid bucket or prefix (not empty and not ending in /, or too deep), "
        "or no bucket given while several are tracked"
    ),
    404: error_doc("The bucket is not tracked"),
    **SERVER_ERRORS,
}
CHANGES_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "A page of changes (possibly empty) and the cursor to continue from",
        "content": {"application/json": {"model": ChangePageBody}},
    },
    400: error_doc(
        "Invalid limit, prefix, bucket, since or cursor "
        "(or no bucket given while several are tracked)"
    ),
    404: error_doc("The bucket is not tracked"),
    410: error_doc("The cursor (or since) is older than the feed's retention"),
    **SERVER_ERRORS,
}
GET_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "The file", "content": {"application/json": {"model": FileRecord}}},
    400: error_doc("Invalid bucket (or no bucket given while several are tracked)"),
    404: error_doc("No such file (or it was deleted), or the bucket is not tracked"),
    **SERVER_ERRORS,
}
