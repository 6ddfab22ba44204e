"""`GET /files?key=`: one file by its key, whatever its segments (issue 24, part 6).

Keys with empty or dot segments (`..`, `a/./b`, `a//b`) have no path form: API Gateway
normalizes the path before it checks the signature and routes it. The query form reaches them.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from pipeline.core.settings import Settings
from pipeline.read.api import KEY_ALONE_MESSAGE, KEY_MESSAGE, build_app
from tests.support.api import FakeFileReader, MetricsRecorder, api_context, body, rest_event

SETTINGS = Settings(table_name="files")
DOTTED = ["..", ".", "a/../b", "a/./b", "a//b", "/lead", "trail/", "../../etc/passwd", "%2E%2E"]


@pytest.fixture
def app() -> APIGatewayRestResolver:
    reader = FakeFileReader(
        [{"filename": name, "bucket": "uploads", "size": i} for i, name in enumerate(DOTTED)]
        + [{"filename": "gone", "bucket": "uploads", "deleted": True}]
    )
    return build_app(reader, SETTINGS, metrics=MetricsRecorder())


def get(app: APIGatewayRestResolver, **query: str) -> tuple[int, Any]:
    response: dict[str, Any] = app.resolve(rest_event("/files", query=query), api_context())
    return response["statusCode"], body(response)


@pytest.mark.parametrize("key", DOTTED)
def test_every_key_is_returned_by_the_query_form(app: APIGatewayRestResolver, key: str) -> None:
    status, page = get(app, key=key)
    assert status == 200
    assert page["next_token"] is None
    assert [item["filename"] for item in page["items"]] == [key]
    assert page["items"][0]["size"] == DOTTED.index(key)


@pytest.mark.parametrize("key", ["missing", "gone", "A/../B"])
def test_a_missing_or_deleted_key_is_an_empty_page(app: APIGatewayRestResolver, key: str) -> None:
    assert get(app, key=key) == (200, {"items": [], "next_token": None})


@pytest.mark.parametrize(
    "other", [{"prefix": "a"}, {"delimiter": "/"}, {"start_after": "a"}, {"next_token": "x"}]
)
def test_key_names_one_file_and_takes_no_listing_parameter(
    app: APIGatewayRestResolver, other: dict[str, str]
) -> None:
    assert get(app, key="..", **other) == (400, {"message": KEY_ALONE_MESSAGE})


@pytest.mark.parametrize("key", ["", "é" * 513, "x" * 1_025])
def test_an_impossible_key_is_400_saying_what_is_allowed(
    app: APIGatewayRestResolver, key: str
) -> None:
    assert get(app, key=key) == (400, {"message": KEY_MESSAGE})


def test_a_repeated_key_is_400(app: APIGatewayRestResolver) -> None:
    response = app.resolve(rest_event("/files", query={"key": ["a", "b"]}), api_context())
    assert response["statusCode"] == 400
    assert "key was given 2 times" in body(response)["message"]
