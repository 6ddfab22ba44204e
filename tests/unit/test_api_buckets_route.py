"""`GET /buckets`: the tracked buckets with their whole-bucket totals, in name order."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from pipeline.core.settings import Settings
from pipeline.read.api import build_app, openapi_document
from pipeline.read.ports import StoreUnavailableError
from pipeline.totals.deltas import Totals
from tests.support.api import FakeFileReader, api_context, body, rest_event
from tests.support.totals import FakeTotals


def resolve(app: Any, path: str = "/buckets") -> tuple[int, Any]:
    response = app.resolve(rest_event(path), api_context())
    return response["statusCode"], body(response)


def validate(status: int, answer: Any) -> None:
    document = openapi_document()
    schema = dict(
        document["paths"]["/buckets"]["get"]["responses"][str(status)]["content"][
            "application/json"
        ]["schema"]
    )
    schema["components"] = document["components"]
    Draft202012Validator(schema).validate(answer)


def test_own_and_adopted_buckets_come_in_name_order_with_their_totals() -> None:
    # Given the stack's own bucket and two adopted ones, one of them with files counted
    reader = FakeFileReader([], bucket="own")
    reader.add_bucket("zeta.adopted")
    reader.add_bucket("alpha-adopted")
    totals = FakeTotals()
    totals.add("alpha-adopted", "", Totals(3, 300))
    totals.add("own", "", Totals(1, 5))
    app = build_app(reader, Settings(table_name="files", tracked_bucket="own"), totals=totals)
    # When the buckets are listed
    status, answer = resolve(app)
    # Then each comes once, in name order, the own one marked default, with its totals
    assert status == 200
    assert answer == {
        "items": [
            {"bucket": "alpha-adopted", "default": False, "files": 3, "bytes": 300},
            {"bucket": "own", "default": True, "files": 1, "bytes": 5},
            {"bucket": "zeta.adopted", "default": False, "files": 0, "bytes": 0},
        ],
        "truncated": False,
    }
    validate(200, answer)
    assert totals.gets == 3  # one counter read per bucket, never a walk


def test_the_only_tracked_bucket_is_the_default_without_a_stack_bucket() -> None:
    app = build_app(FakeFileReader([], bucket="solo"), Settings(table_name="files"))
    status, answer = resolve(app)
    assert status == 200
    assert answer == {"items": [{"bucket": "solo", "default": True}], "truncated": False}


def test_a_store_that_is_down_is_a_503_message() -> None:
    class Down(FakeFileReader):
        def tracked_buckets(self) -> list[str]:
            raise StoreUnavailableError("throttled")

    app = build_app(Down([]), Settings(table_name="files"))
    status, answer = resolve(app)
    assert status == 503
    assert set(answer) == {"message"}
    validate(503, answer)


def test_a_post_is_not_a_route() -> None:
    app = build_app(FakeFileReader([]), Settings(table_name="files"))
    response = app.resolve(rest_event("/buckets", method="POST"), api_context())
    assert response["statusCode"] == 404
