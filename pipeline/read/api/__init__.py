"""The read API on Powertools' REST resolver: one Router per resource (`files`, `changes`,
`summary`, `buckets`), their shared context, the error mapping (`app`) and the OpenAPI document."""

from pipeline.read.api.app import build_app, feed_for
from pipeline.read.api.context import BadRequest, FileNotFound, UnknownBucket
from pipeline.read.api.files import filename_from_path
from pipeline.read.api.openapi import main, openapi_document, openapi_text
from pipeline.read.api.schemas import (
    BUCKET_MESSAGE,
    CURSOR_AND_SINCE_MESSAGE,
    CURSOR_MESSAGE,
    DELIMITER_MESSAGE,
    DEPTH_MESSAGE,
    FOLDER_MESSAGE,
    KEY_ALONE_MESSAGE,
    KEY_MESSAGE,
    LIMIT_MESSAGE,
    PREFIX_MESSAGE,
    REPEATED_MESSAGE,
    START_AFTER_MESSAGE,
    TOKEN_MESSAGE,
)

__all__ = [
    "BUCKET_MESSAGE",
    "CURSOR_AND_SINCE_MESSAGE",
    "CURSOR_MESSAGE",
    "DELIMITER_MESSAGE",
    "DEPTH_MESSAGE",
    "FOLDER_MESSAGE",
    "KEY_ALONE_MESSAGE",
    "KEY_MESSAGE",
    "LIMIT_MESSAGE",
    "PREFIX_MESSAGE",
    "REPEATED_MESSAGE",
    "START_AFTER_MESSAGE",
    "TOKEN_MESSAGE",
    "BadRequest",
    "FileNotFound",
    "UnknownBucket",
    "build_app",
    "feed_for",
    "filename_from_path",
    "main",
    "openapi_document",
    "openapi_text",
]
