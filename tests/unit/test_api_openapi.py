"""The committed openapi.json is what the code generates, and responses match it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.core.settings import Settings
from pipeline.read.api import build_app, main, openapi_document
from pipeline.read.ports import StoreUnavailableError
from pipeline.totals.deltas import Totals
from tests.support.api import FakeFileReader, api_context, body, file_event, rest_event
from tests.support.totals import FakeTotals

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
REGENERATE = "python -m pipeline.read.api --openapi openapi.json"


def test_the_committed_document_matches_the_code() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == openapi_document(), f"openapi.json is stale: run `{REGENERATE}`"


def test_the_cli_writes_the_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main(["--openapi", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == openapi_document()


def test_the_document_describes_the_routes_and_their_responses() -> None:
    document = openapi_document()
    listing = document["paths"]["/files"]["get"]
    one = document["paths"]["/files/{filename}"]["get"]
    assert set(listing["responses"]) == {"200", "400", "404", "500", "503"}
    assert set(one["responses"]) == {"200", "400", "404", "500", "503"}
    for operation in (listing, one):
        bucket = next(p for p in operation["parameters"] if p["name"] == "bucket")
        assert bucket["in"] == "query" and not bucket.get("required")
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 1000
    assert limit["schema"]["default"] == 100
    summary = document["paths"]["/summary"]["get"]
    assert set(summary["responses"]) == {"200", "400", "404", "500", "503"}
    changes = document["paths"]["/changes"]["get"]
    assert set(changes["responses"]) == {"200", "400", "404", "410", "500", "503"}
    assert {p["name"] for p in changes["parameters"]} == {
        "limit",
        "cursor",
        "since",
        "prefix",
        "bucket",
    }
    assert set(document["components"]["schemas"]) == {
        "CommonPrefix",
        "ErrorMessage",
        "FilePage",
        "FileRecord",
        "FolderSummary",
        "Change",
        "ChangePageBody",
        "BucketList",
        "TrackedBucket",
    }
    assert "422" not in json.dumps(document["paths"])


def _validator(document: dict[str, Any], operation: dict[str, Any], status: int) -> Any:
    response = operation["responses"][str(status)]
    schema = dict(response["content"]["application/json"]["schema"])
    schema["components"] = document["components"]
    return Draft202012Validator(schema)


ROWS = [
    {"filename": "a b/ü+%.txt", "bucket": "b", "size": 3, "etag": "e", "event_time": "t"},
    {"filename": "z", "size": 0, "event_name": "ObjectCreated:Put", "version_id": "v"},
    {"filename": "gone", "deleted": True, "expires_at": 1},
]


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (rest_event("/files"), 200),
        (rest_event("/files", query={"limit": "1"}), 200),
        (rest_event("/files", query={"limit": "0"}), 400),
        (rest_event("/files", query={"next_token": "x.y"}), 400),
        (rest_event("/files", query={"prefix": "p" * 2_000}), 400),
        (file_event("a b/ü+%.txt"), 200),
        (file_event("gone"), 404),
        (rest_event("/files", query={"delimiter": "/"}), 200),
        (rest_event("/summary", query={"prefix": "a b/"}), 200),
        (rest_event("/summary", query={"prefix": "a b"}), 400),
    ],
)
def test_responses_match_the_document(event: dict[str, Any], status: int) -> None:
    document = openapi_document()
    totals = FakeTotals()
    totals.add("b", "a b/", Totals(1, 3))
    app = build_app(
        FakeFileReader(ROWS), Settings(table_name="files", reconcile_bucket="b"), totals=totals
    )
    response = app.resolve(event, api_context())
    assert response["statusCode"] == status
    route = event["path"] if event["path"] in ("/files", "/summary") else "/files/{filename}"
    _validator(document, document["paths"][route]["get"], status).validate(body(response))


def test_unavailable_store_response_matches_the_document() -> None:
    class Down(FakeFileReader):
        def query(self, *args: Any) -> Any:
            raise StoreUnavailableError("throttled")

    document = openapi_document()
    app = build_app(Down(), Settings(table_name="files"))
    response = app.resolve(rest_event("/files"), api_context())
    assert response["statusCode"] == 503
    _validator(document, document["paths"]["/files"]["get"], 503).validate(body(response))
