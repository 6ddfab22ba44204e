"""The API's OpenAPI document, generated from the routes (`openapi.json` at the repo root):

python -m pipeline.read.api --openapi openapi.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from pipeline.core.settings import Settings
from pipeline.feed.reader import ShardPage, ShardRange
from pipeline.read.api.app import build_app, feed_for
from pipeline.read.api.schemas import (
    API_DESCRIPTION,
    API_TITLE,
    API_VERSION,
    SCHEMAS,
    SERVER_ERRORS,
)


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
        "description": SERVER_ERRORS[500]["description"],
        "content": {"application/json": {"schema": {"$ref": f"{SCHEMAS}ErrorMessage"}}},
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
        for name in re.findall(rf'"{SCHEMAS}([^"]+)"', text):
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
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.read.api", description=__doc__.splitlines()[0]
    )
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
