"""The read API's folder totals: `GET /summary` and the totals of `common_prefixes`."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from pipeline.core.settings import Settings
from pipeline.read.api import DEPTH_MESSAGE, FOLDER_MESSAGE, build_app
from pipeline.totals.deltas import Totals
from pipeline.totals.folders import MAX_DEPTH
from tests.support.api import FakeFileReader, api_context, body, rest_event
from tests.support.totals import FakeTotals, expected_totals

BUCKET = "uploads"
SETTINGS = Settings(table_name="files", tracked_bucket=BUCKET)
NAMES = ["a.txt", "photos/1.jpg", "photos/2.jpg", "photos/raw/3.raw", "zeta/z", "zeta/y/x"]


@pytest.fixture
def totals() -> FakeTotals:
    fake = FakeTotals()
    rows = [{"filename": n, "size": 10 * (i + 1)} for i, n in enumerate(NAMES)]
    for folder, value in expected_totals(rows).items():
        fake.add(BUCKET, folder, value)
    return fake


@pytest.fixture
def app(totals: FakeTotals) -> APIGatewayRestResolver:
    rows = [
        {"filename": n, "bucket": BUCKET, "size": 10 * (i + 1), "event_time": "t"}
        for i, n in enumerate(NAMES)
    ]
    reader = FakeFileReader(rows, bucket=BUCKET)
    reader.add_bucket("other")
    return build_app(reader, SETTINGS, totals=totals)


def get(app: APIGatewayRestResolver, path: str, **query: str) -> tuple[int, Any]:
    response = app.resolve(rest_event(path, query=query), api_context())
    return response["statusCode"], body(response)


def test_a_summary_is_one_counter_read(app: APIGatewayRestResolver, totals: FakeTotals) -> None:
    assert get(app, "/summary", prefix="photos/") == (
        200,
        {"bucket": BUCKET, "prefix": "photos/", "files": 3, "bytes": 20 + 30 + 40},
    )
    assert totals.gets == 1
    assert get(app, "/summary")[1] == {"bucket": BUCKET, "prefix": "", "files": 6, "bytes": 210}
    assert get(app, "/summary", prefix="", bucket="other")[1]["files"] == 0  # tracked, empty
    status, body = get(app, "/summary", bucket="untracked")
    assert status == 404 and "not tracked" in body["message"]


def test_a_folder_with_nothing_under_it_is_zero(app: APIGatewayRestResolver) -> None:
    assert get(app, "/summary", prefix="nothing/here/")[1]["files"] == 0


@pytest.mark.parametrize("prefix", ["photos", "photos/1.jpg", "a"])
def test_a_prefix_that_is_not_a_folder_is_400_saying_so(
    app: APIGatewayRestResolver, prefix: str
) -> None:
    assert get(app, "/summary", prefix=prefix) == (400, {"message": FOLDER_MESSAGE})


def test_a_folder_deeper_than_the_counted_ones_is_400_saying_so(
    app: APIGatewayRestResolver,
) -> None:
    assert get(app, "/summary", prefix="d/" * MAX_DEPTH)[0] == 200
    assert get(app, "/summary", prefix="d/" * (MAX_DEPTH + 1)) == (400, {"message": DEPTH_MESSAGE})


def test_bad_parameters_are_400_never_500(app: APIGatewayRestResolver) -> None:
    assert get(app, "/summary", prefix="x/" * 600)[0] == 400
    assert get(app, "/summary", bucket="B_")[0] == 400
    two = FakeFileReader([], bucket="one-bucket")
    two.add_bucket("two-bucket")
    no_default = build_app(two, Settings(table_name="files"), totals=FakeTotals())
    status, body = get(no_default, "/summary")
    assert status == 400 and body["message"].startswith("bucket is required")


def test_common_prefixes_carry_the_totals_under_them(
    app: APIGatewayRestResolver, totals: FakeTotals
) -> None:
    status, page = get(app, "/files", delimiter="/")
    assert status == 200
    assert [item["filename"] for item in page["items"]] == ["a.txt"]
    assert page["common_prefixes"] == [
        {"prefix": "photos/", "files": 3, "bytes": 90},
        {"prefix": "zeta/", "files": 2, "bytes": 110},
    ]
    assert totals.batch_gets == [["photos/", "zeta/"]]  # one read for the page
    _, inner = get(app, "/files", delimiter="/", prefix="photos/")
    assert inner["common_prefixes"] == [{"prefix": "photos/raw/", "files": 1, "bytes": 40}]


def test_other_delimiters_give_prefixes_without_totals(
    app: APIGatewayRestResolver, totals: FakeTotals
) -> None:
    _, page = get(app, "/files", delimiter=".")
    assert all(set(entry) == {"prefix"} for entry in page["common_prefixes"])
    assert page["common_prefixes"] and totals.batch_gets == []


def test_counters_carry_what_ingest_added(totals: FakeTotals) -> None:
    assert totals.totals(BUCKET, "zeta/") == Totals(2, 110)
