"""The API Gateway emulator over real HTTP, with fake handlers: event shape and responses."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.api_client import get
from pipeline.local.gateway import ApiGateway

pytestmark = pytest.mark.e2e
ROUTES = [("GET", "/files"), ("GET", "/files/{filename+}")]


class Echo:
    """Answers with the event it got (or with `result`, when set)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.result: Any = None
        self.error: Exception | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        if self.result is not None:
            return self.result
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"ok": True}),
        }


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "openapi.json"
    path.write_text(json.dumps({"openapi": "3.0.3", "paths": {"/files": {}}}))
    return path


@pytest.fixture(scope="module")
def echo() -> Echo:
    return Echo()


@pytest.fixture(scope="module")
def gateway(echo: Echo, openapi: Path) -> Iterator[ApiGateway]:
    api = ApiGateway(handler=echo, routes=ROUTES, openapi_path=openapi).start()
    yield api
    api.stop()


@pytest.fixture(autouse=True)
def _reset(echo: Echo) -> None:
    echo.events.clear()
    echo.result, echo.error = None, None


def request(
    gateway: ApiGateway,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_list_request_becomes_a_rest_proxy_event(gateway: ApiGateway, echo: Echo) -> None:
    status, _, _ = request(
        gateway,
        "GET",
        "/files?limit=2&tag=a&tag=b%20c&next_token=x%2By",
        headers={"X-Custom": "one", "User-Agent": "pytest"},
    )
    assert status == 200
    (event,) = echo.events
    assert event["resource"] == "/files"
    assert event["path"] == "/files"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] == {"limit": "2", "tag": "b c", "next_token": "x+y"}
    assert event["multiValueQueryStringParameters"] == {
        "limit": ["2"],
        "tag": ["a", "b c"],
        "next_token": ["x+y"],
    }
    assert event["headers"]["X-Custom"] == "one"
    assert event["multiValueHeaders"]["X-Custom"] == ["one"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["resourcePath"] == "/files"
    assert context["httpMethod"] == "GET"
    assert context["stage"] == "prod"
    assert context["path"] == "/prod/files"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "pytest"
    assert context["requestId"]


def test_no_query_string_means_null_parameters(gateway: ApiGateway, echo: Echo) -> None:
    request(gateway, "GET", "/files")
    assert echo.events[0]["queryStringParameters"] is None
    assert echo.events[0]["multiValueQueryStringParameters"] is None


@pytest.mark.parametrize(
    "raw",
    ["hello.txt", "dir/sub%20dir/a%2Bb%25c.txt", "r%C3%A4ksm%C3%B6rg%C3%A5s.txt", "a+b.txt"],
)
def test_greedy_path_parameter_keeps_the_client_encoding(
    gateway: ApiGateway, echo: Echo, raw: str
) -> None:
    # API Gateway (REST) passes path and pathParameters as the client sent them
    status, _, _ = request(gateway, "GET", f"/files/{raw}")
    assert status == 200
    (event,) = echo.events
    assert event["resource"] == "/files/{filename+}"
    assert event["path"] == f"/files/{raw}"
    assert event["pathParameters"] == {"filename": raw}


def test_the_stage_prefix_is_accepted(gateway: ApiGateway, echo: Echo) -> None:
    status, _, _ = request(gateway, "GET", "/prod/files/a.txt")
    assert status == 200
    assert echo.events[0]["path"] == "/files/a.txt"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/"),
        ("POST", "/files"),
        ("DELETE", "/files/a.txt"),
    ],
)
def test_unknown_resources_and_methods_are_403_like_api_gateway(
    gateway: ApiGateway, echo: Echo, method: str, path: str
) -> None:
    status, headers, body = request(gateway, method, path)
    assert status == 403
    assert json.loads(body) == {"message": "Missing Authentication Token"}
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert echo.events == []


def test_status_headers_and_body_are_written_back(gateway: ApiGateway, echo: Echo) -> None:
    echo.result = {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json", "X-One": "1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"message": "not found"}),
        "isBase64Encoded": False,
    }
    status, headers, body = request(gateway, "GET", "/files/missing")
    assert status == 404
    assert headers["X-One"] == "1"
    assert json.loads(body) == {"message": "not found"}
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    connection.request("GET", "/files/missing")
    assert connection.getresponse().headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    connection.close()


def test_base64_bodies_are_decoded(gateway: ApiGateway, echo: Echo) -> None:
    payload = bytes(range(256))
    echo.result = {
        "statusCode": 200,
        "headers": {"Content-Type": "application/octet-stream"},
        "body": base64.b64encode(payload).decode(),
        "isBase64Encoded": True,
    }
    status, headers, body = request(gateway, "GET", "/files")
    assert status == 200 and body == payload
    assert headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "result",
    [
        ["not", "a", "dict"],
        {"statusCode": "teapot"},
        {"statusCode": 200, "body": "!", "isBase64Encoded": True},
    ],
)
def test_a_malformed_integration_response_is_502(
    gateway: ApiGateway, echo: Echo, result: Any
) -> None:
    echo.result = result
    status, _, body = request(gateway, "GET", "/files")
    assert status == 502
    assert json.loads(body) == {"message": "Internal server error"}


def test_a_handler_exception_is_502(gateway: ApiGateway, echo: Echo) -> None:
    echo.error = RuntimeError("boom")
    status, _, body = request(gateway, "GET", "/files")
    assert status == 502
    assert json.loads(body) == {"message": "Internal server error"}


def test_openapi_document_is_served(gateway: ApiGateway, openapi: Path, echo: Echo) -> None:
    response = get(f"{gateway.url}/openapi.json")
    assert response.status == 200
    assert response.json() == json.loads(openapi.read_text())
    assert echo.events == []


def test_stop_releases_the_port(echo: Echo) -> None:
    api = ApiGateway(handler=echo, routes=ROUTES).start()
    port = api.port
    api.stop()
    again = ApiGateway(handler=echo, routes=ROUTES, port=port).start()
    assert again.port == port
    again.stop()


def test_one_trailing_slash_is_ignored_like_api_gateway(gateway: ApiGateway, echo: Echo) -> None:
    # API Gateway (REST) routes /files/ to the /files resource; the handler sees the path as sent
    status, _, _ = request(gateway, "GET", "/files/")
    assert status == 200
    (event,) = echo.events
    assert (event["resource"], event["path"]) == ("/files", "/files/")
