"""The read API's resolver over an in-memory reader: routes, bad input, errors, CORS, metrics."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from pipeline.core.model import INDEX_SHARDS
from pipeline.core.settings import Settings
from pipeline.core.tokens import TokenCodec
from pipeline.read.api import LIMIT_MESSAGE, REPEATED_MESSAGE, TOKEN_MESSAGE, build_app
from pipeline.read.ports import StoreError, StoreUnavailableError
from tests.support.api import (
    FakeFileReader,
    MetricsRecorder,
    api_context,
    body,
    file_event,
    header,
    rest_event,
    sample_event,
)

SETTINGS = Settings(table_name="files")
NAMES = [
    "plain.txt",
    "dir/sub/file.txt",
    "with space.txt",
    "a+b.txt",
    "100%.txt",
    "100%41.txt",
    "%2F.txt",
    "файл/字/🙂 é.bin",
    "trailing/",
    "?#&=;.txt",
]


def make_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "filename": name,
            "bucket": "uploads",
            "size": 10 + i,
            "etag": f"etag{i}",
            "event_time": "2025-04-09T12:00:00.000Z",
            "event_name": "ObjectCreated:Put",
            "sequencer": f"{i:016X}",
        }
        for i, name in enumerate(NAMES)
    ]
    rows.append(
        {
            "filename": "gone.txt",
            "bucket": "uploads",
            "event_time": "2025-04-09T12:00:00.000Z",
            "event_name": "ObjectRemoved:Delete",
            "deleted": True,
            "expires_at": 1_900_000_000,
        }
    )
    return rows


@pytest.fixture
def reader() -> FakeFileReader:
    return FakeFileReader(make_rows())


@pytest.fixture
def metrics() -> MetricsRecorder:
    return MetricsRecorder()


@pytest.fixture
def app(reader: FakeFileReader, metrics: MetricsRecorder) -> APIGatewayRestResolver:
    return build_app(reader, SETTINGS, metrics=metrics)


def call(app: APIGatewayRestResolver, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, api_context())
    assert header(response, "Content-Type") == "application/json"
    return response


def list_files(app: APIGatewayRestResolver, **query: str | list[str]) -> dict[str, Any]:
    return call(app, rest_event("/files", query=query))


def assert_error(response: dict[str, Any], status: int, message: str | None = None) -> None:
    assert response["statusCode"] == status
    payload = body(response)
    assert list(payload) == ["message"]
    assert isinstance(payload["message"], str) and payload["message"]
    if message is not None:
        assert payload["message"] == message


# --- GET /files -------------------------------------------------------------------------


def test_list_returns_the_envelope_without_tombstones_or_internal_attributes(
    app: APIGatewayRestResolver, metrics: MetricsRecorder
) -> None:
    response = list_files(app)
    assert response["statusCode"] == 200
    payload = body(response)
    assert list(payload) == ["items", "next_token"]
    assert payload["next_token"] is None
    assert sorted(i["filename"] for i in payload["items"]) == sorted(NAMES)
    for item in payload["items"]:
        assert "deleted" not in item and "expires_at" not in item
        assert type(item["size"]) is int
    assert metrics.totals == {
        "PagesServed": 1,
        "ItemsReturned": len(NAMES),
        "IndexQueries": INDEX_SHARDS,
        "IndexRowsRead": len(NAMES),
    }
    assert [i["filename"] for i in payload["items"]] == sorted(NAMES)


def test_the_sample_list_event_gets_a_page_of_two(app: APIGatewayRestResolver) -> None:
    response = call(app, sample_event("api_list_files"))
    payload = body(response)
    assert response["statusCode"] == 200
    assert len(payload["items"]) == 2
    assert isinstance(payload["next_token"], str)


def test_walking_with_next_token_returns_every_file_once(app: APIGatewayRestResolver) -> None:
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = {"limit": "3"} | ({"next_token": token} if token else {})
        payload = body(list_files(app, **query))
        pages += 1
        assert len(payload["items"]) == 3 or payload["next_token"] is None
        seen += [i["filename"] for i in payload["items"]]
        token = payload["next_token"]
        if token is None:
            break
    assert sorted(seen) == sorted(NAMES)
    assert pages == 4


def test_prefix_filters_and_its_tokens_stay_with_it(app: APIGatewayRestResolver) -> None:
    first = body(list_files(app, prefix="dir/", limit="1"))
    assert [i["filename"] for i in first["items"]] == ["dir/sub/file.txt"]
    assert first["next_token"] is None
    everything = body(list_files(app, limit="1"))
    token = everything["next_token"]
    # A token of the unfiltered listing used with a prefix
    response = list_files(app, prefix="dir/", next_token=token)
    assert_error(response, 400, "next_token was issued for a different prefix")


def test_an_empty_prefix_means_no_prefix(app: APIGatewayRestResolver) -> None:
    token = body(list_files(app, limit="2"))["next_token"]
    response = list_files(app, prefix="", next_token=token)
    assert response["statusCode"] == 200


@pytest.mark.parametrize("limit", ["1", "7", "999", "1000"])
def test_valid_limits_are_honoured(app: APIGatewayRestResolver, limit: str) -> None:
    payload = body(list_files(app, limit=limit))
    assert len(payload["items"]) == min(int(limit), len(NAMES))


@pytest.mark.parametrize(
    "limit",
    [
        "0",
        "-1",
        "1001",
        "abc",
        "1e3",
        "",
        " ",
        "+5",
        " 5",
        "5 ",
        "05",
        "5.0",
        "1_000",
        "0x10",
        "١٢",
        "99999999999999999999999",
        "NaN",
    ],
)
def test_bad_limits_are_400_with_the_allowed_range(
    app: APIGatewayRestResolver,
    reader: FakeFileReader,
    metrics: MetricsRecorder,
    limit: str | list[str],
) -> None:
    response = list_files(app, limit=limit)
    assert_error(response, 400, LIMIT_MESSAGE)
    assert "1" in LIMIT_MESSAGE and "1000" in LIMIT_MESSAGE
    assert reader.queries == []
    assert metrics.totals == {"BadRequests": 1}


@pytest.mark.parametrize(
    "query",
    [
        {"limit": ["5", "6"]},
        {"limit": ["5", "5"]},
        {"prefix": ["a/", "b/"]},
        {"next_token": ["x", "y"], "limit": "5"},
        {"delimiter": ["/", "/"]},
        {"start_after": ["a", "b", "c"]},
    ],
)
def test_a_repeated_query_parameter_is_400_saying_one_value_per_name(
    app: APIGatewayRestResolver, reader: FakeFileReader, query: dict[str, str | list[str]]
) -> None:
    # API Gateway passes every value (multiValueQueryStringParameters); the API takes one
    name, values = next((k, v) for k, v in query.items() if isinstance(v, list))
    response = list_files(app, **query)
    assert_error(response, 400, REPEATED_MESSAGE.format(name=name, count=len(values)))
    assert "one value per name" in body(response)["message"]
    assert reader.queries == []


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.parametrize(
    "make_token",
    [
        lambda good: "",
        lambda good: "garbage",
        lambda good: "null",
        lambda good: good[:-1],
        lambda good: good[: len(good) // 2],
        lambda good: good + "A",
        lambda good: good + "=",
        lambda good: _tampered(good),
        lambda good: good.replace(".", ""),
        lambda good: "A" * 5_000,
        lambda good: TokenCodec.for_table("files", "another secret").encode("plain.txt", None),
        lambda good: TokenCodec.for_table("other-table").encode("plain.txt", None),
    ],
)
def test_bad_tokens_are_400_never_500(
    app: APIGatewayRestResolver, reader: FakeFileReader, make_token: Any
) -> None:
    good = body(list_files(app, limit="2"))["next_token"]
    reader.queries.clear()
    response = list_files(app, next_token=make_token(good))
    assert_error(response, 400, TOKEN_MESSAGE)
    assert reader.queries == []


def test_a_too_long_prefix_is_400(app: APIGatewayRestResolver) -> None:
    assert list_files(app, prefix="p" * 1_024)["statusCode"] == 200
    response = list_files(app, prefix="p" * 1_025)
    assert_error(response, 400)
    assert "prefix" in body(response)["message"]


def test_signed_tokens_work_when_a_secret_is_configured(reader: FakeFileReader) -> None:
    app = build_app(reader, Settings(table_name="files", page_token_secret="s3cr3t"))
    token = body(list_files(app, limit="2"))["next_token"]
    assert list_files(app, next_token=token)["statusCode"] == 200
    unsigned_app = build_app(reader, SETTINGS)
    assert_error(list_files(unsigned_app, next_token=token), 400, TOKEN_MESSAGE)


# --- GET /files/{filename+} --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("safe", ["/", ""])
def test_any_name_is_found_when_percent_encoded(
    app: APIGatewayRestResolver, name: str, safe: str
) -> None:
    response = call(app, file_event(name, safe=safe))
    assert response["statusCode"] == 200, (name, response["body"])
    payload = body(response)
    assert payload["filename"] == name
    assert payload["size"] == 10 + NAMES.index(name)
    assert "deleted" not in payload and "expires_at" not in payload


@pytest.mark.parametrize("path_parameters", [None, "encoded", "decoded"])
def test_the_name_comes_from_the_path_whatever_path_parameters_hold(
    app: APIGatewayRestResolver, path_parameters: str | None
) -> None:
    event = file_event("100%41.txt")  # sent as /files/100%2541.txt
    if path_parameters is None:
        event["pathParameters"] = None
    elif path_parameters == "decoded":
        event["pathParameters"] = {"filename": "100%41.txt"}
    assert body(call(app, event))["filename"] == "100%41.txt"


def test_the_sample_get_event_finds_its_file(reader: FakeFileReader) -> None:
    reader.put({"filename": "photos/2025/red flower+%é.jpg", "size": 3})
    app = build_app(reader, SETTINGS)
    response = call(app, sample_event("api_get_file"))
    assert response["statusCode"] == 200
    assert body(response) == {"filename": "photos/2025/red flower+%é.jpg", "size": 3}


@pytest.mark.parametrize(
    "path",
    [
        "/files/missing.txt",
        "/files/gone.txt",
        "/files/with+space.txt",
        "/files/%FF%FE",
        "/files/%ED%A0%80",
        "/files/" + "x" * 2_049,
        "/files/" + "é" * 1_025,
    ],
)
def test_missing_deleted_or_impossible_names_are_404(
    app: APIGatewayRestResolver, path: str
) -> None:
    assert_error(call(app, rest_event(path)), 404, "File not found")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/filesx"),
        ("POST", "/files"),
        ("DELETE", "/files/plain.txt"),
        ("GET", "/openapi.json"),
    ],
)
def test_unknown_routes_are_404_json(app: APIGatewayRestResolver, method: str, path: str) -> None:
    response = call(app, rest_event(path, method=method, resource="/{proxy+}"))
    assert_error(response, 404, "Not found")


class ExplodingReader(FakeFileReader):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def query(self, queries: Any) -> Any:
        raise self.error

    def get(self, filename: str) -> Any:
        raise self.error


SECRET = "arn:aws:dynamodb:ap-south-1:123456789012:table/files password=hunter2"


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (RuntimeError(SECRET), 500, "Internal server error"),
        (KeyError(SECRET), 500, "Internal server error"),
        (StoreError(SECRET), 500, "Internal server error"),
        (StoreUnavailableError(SECRET), 503, "Service temporarily unavailable, retry later"),
    ],
)
@pytest.mark.parametrize("path", ["/files", "/files/plain.txt"])
def test_store_failures_never_leak_their_text(
    error: Exception,
    status: int,
    message: str,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("POWERTOOLS_DEV", "1")  # debug mode must not expose tracebacks either
    app = build_app(ExplodingReader(error), SETTINGS)
    response = call(app, rest_event(path))
    assert_error(response, status, message)
    assert "hunter2" not in response["body"] and "Traceback" not in response["body"]
    if status == 503:
        assert header(response, "Retry-After") == "1"
    assert any("hunter2" in str(r.exc_info) for r in caplog.records if r.exc_info)


ODD_VALUES: list[Any] = [
    "not a number",
    1.5,
    -1,
    10**38,
    True,
    None,
    [1, 2],
    {"nested": {"deep": [1, "x", None]}},
]


@pytest.mark.parametrize("size", ODD_VALUES)
def test_a_row_with_an_impossible_size_is_served_without_it(
    reader: FakeFileReader, size: Any
) -> None:
    # Given a row whose size no S3 object can have (hand-written, or from older code)
    reader.put({"filename": "odd.txt", "size": size, "etag": 7, "bucket": ["b"], "x-note": size})
    app = build_app(reader, SETTINGS)
    # When it is read alone or listed
    got = call(app, file_event("odd.txt"))
    listed = call(app, rest_event("/files", query={"limit": "1000"}))
    # Then both answer 200 and leave out (only) the values the document cannot describe
    assert got["statusCode"] == 200 and listed["statusCode"] == 200
    item = body(got)
    assert item == {"filename": "odd.txt", "x-note": size}
    assert item in body(listed)["items"]


# --- CORS ----------------------------------------------------------------------------------


def test_no_cors_headers_unless_configured(app: APIGatewayRestResolver) -> None:
    event = rest_event("/files", headers={"Origin": "https://app.example.com"})
    assert header(call(app, event), "Access-Control-Allow-Origin") is None


@pytest.mark.parametrize(
    ("configured", "origin", "allowed"),
    [
        ("*", "https://app.example.com", "*"),
        ("https://app.example.com", "https://app.example.com", "https://app.example.com"),
        ("https://a.example, https://b.example", "https://b.example", "https://b.example"),
        ("https://app.example.com", "https://evil.example", None),
    ],
)
def test_cors_follows_the_setting(
    reader: FakeFileReader, configured: str, origin: str, allowed: str | None
) -> None:
    app = build_app(reader, Settings(table_name="files", cors_origin=configured))
    for event in (
        rest_event("/files", headers={"Origin": origin}),
        rest_event("/files", query={"limit": "0"}, headers={"Origin": origin}),
    ):
        response = call(app, event)
        got = header(response, "Access-Control-Allow-Origin")
        assert got == allowed or (allowed == "*" and got == origin)


def test_files_with_a_trailing_slash_is_the_empty_name_not_the_listing(
    app: APIGatewayRestResolver,
) -> None:
    # API Gateway routes GET /files/ to the /files resource, with the path as sent
    response = call(app, rest_event("/files/", resource="/files"))
    assert_error(response, 404)
