"""The read API over several tracked buckets: `bucket` chooses one, with a default; an
untracked bucket is a 404, a malformed one a 400; tokens are bound to their bucket; a bucket's
pages and GETs never read another bucket's rows."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.settings import Settings
from pipeline.read.api import BUCKET_MESSAGE, build_app
from tests.support.api import FakeFileReader, api_context, body, file_event, rest_event

OWN, ADOPTED = "own-bucket", "adopted.bucket-2"
SHARED = [f"shared/{i:03d}.txt" for i in range(30)]


def index() -> tuple[FakeFileReader, FakeFileReader]:
    """Two buckets holding the same 30 keys (different sizes) plus one key of their own."""
    own = FakeFileReader(
        [{"filename": k, "bucket": OWN, "size": 1} for k in [*SHARED, "only-own.txt"]],
        bucket=OWN,
    )
    adopted = own.add_bucket(
        ADOPTED,
        [{"filename": k, "bucket": ADOPTED, "size": 2} for k in [*SHARED, "only-adopted.txt"]],
    )
    return own, adopted


def get(app: Any, path: str, **query: str) -> tuple[int, Any]:
    response = app.resolve(rest_event(path, query=query), api_context())
    return response["statusCode"], body(response)


def walk(app: Any, **query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        more = {"next_token": token} if token else {}
        status, page = get(app, "/files", limit="7", **query, **more)
        assert status == 200, page
        items += page["items"]
        token = page["next_token"]
        if token is None:
            return items


def test_each_bucket_lists_its_own_rows_and_reads_no_other_buckets_shards() -> None:
    own, adopted = index()
    app = build_app(own, Settings(table_name="files", tracked_bucket=OWN))
    # When the adopted bucket is walked
    theirs = walk(app, bucket=ADOPTED)
    # Then the walk is exactly its files, and the other bucket's index was never read
    assert [i["filename"] for i in theirs] == ["only-adopted.txt", *SHARED]
    assert {(i["bucket"], i["size"]) for i in theirs} == {(ADOPTED, 2)}
    assert (own.rows_read, own.queries) == (0, [])
    read = adopted.rows_read
    # And the same for the stack's own bucket (the default)
    mine = walk(app)
    assert [i["filename"] for i in mine] == ["only-own.txt", *SHARED]
    assert {(i["bucket"], i["size"]) for i in mine} == {(OWN, 1)}
    assert adopted.rows_read == read and own.rows_read > 0


def test_a_get_reads_the_named_buckets_row() -> None:
    own, adopted = index()
    app = build_app(own, Settings(table_name="files", tracked_bucket=OWN))
    assert get(app, "/files/only-own.txt")[0] == 200
    assert get(app, "/files/only-adopted.txt")[0] == 404  # not in the default bucket
    status, item = get(app, "/files/shared/004.txt", bucket=ADOPTED)
    assert (status, item["bucket"], item["size"]) == (200, ADOPTED, 2)
    response = app.resolve(file_event("only-adopted.txt"), api_context())
    assert response["statusCode"] == 404
    assert own.get_calls == ["only-own.txt", "only-adopted.txt", "only-adopted.txt"]
    assert adopted.get_calls == ["shared/004.txt"]


@pytest.mark.parametrize("path", ["/files", "/files/shared/001.txt"])
def test_an_untracked_bucket_is_a_404_that_says_so(path: str) -> None:
    own, _ = index()
    app = build_app(own, Settings(table_name="files", tracked_bucket=OWN))
    status, error = get(app, path, bucket="not-tracked-here")
    assert status == 404
    assert error == {
        "message": "Bucket 'not-tracked-here' is not tracked by this API "
        "(the bucket parameter must name a tracked bucket)"
    }


@pytest.mark.parametrize(
    "bad", ["ab", "UPPER", "a/b", "-leading", "trailing-", "two..dots", "x" * 64, "é-bucket", "a b"]
)
@pytest.mark.parametrize("path", ["/files", "/files/shared/001.txt"])
def test_a_malformed_bucket_is_a_400_saying_what_is_allowed(path: str, bad: str) -> None:
    own, _ = index()
    app = build_app(own, Settings(table_name="files", tracked_bucket=OWN))
    status, error = get(app, path, bucket=bad)
    assert (status, error) == (400, {"message": BUCKET_MESSAGE})
    assert "lowercase letters, digits, dots and hyphens" in BUCKET_MESSAGE


def test_a_token_of_one_bucket_is_refused_with_another() -> None:
    own, _ = index()
    app = build_app(own, Settings(table_name="files", tracked_bucket=OWN))
    status, page = get(app, "/files", limit="3", bucket=ADOPTED)
    assert status == 200 and page["next_token"]
    for other in ({}, {"bucket": OWN}):
        status, error = get(app, "/files", next_token=page["next_token"], **other)
        assert (status, error) == (400, {"message": "next_token was issued for a different bucket"})


def test_without_a_stack_bucket_the_only_tracked_one_is_the_default() -> None:
    only = FakeFileReader([{"filename": "a", "bucket": ADOPTED, "size": 1}], bucket=ADOPTED)
    app = build_app(only, Settings(table_name="files"))
    status, page = get(app, "/files")
    assert status == 200 and [i["filename"] for i in page["items"]] == ["a"]


def test_without_a_stack_bucket_several_tracked_ones_need_a_bucket() -> None:
    own, _ = index()
    app = build_app(own, Settings(table_name="files"))
    status, error = get(app, "/files")
    assert status == 400
    assert error["message"] == f"bucket is required: this API tracks 2 buckets ({ADOPTED}, {OWN})"
    assert get(app, "/files", bucket=OWN)[0] == 200
