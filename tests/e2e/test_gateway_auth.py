"""The API Gateway emulator with AWS_IAM routes, over real HTTP: who gets through, and the 403s."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import pytest
from botocore.credentials import Credentials

from pipeline.local.api_client import Signer, get
from pipeline.local.gateway import ApiGateway
from pipeline.local.sigv4 import BAD_SIGNATURE, SigV4Verifier

pytestmark = pytest.mark.e2e
REGION = "ap-south-1"
ROUTES = [
    ("GET", "/files"),
    ("GET", "/files/{filename+}"),
    ("OPTIONS", "/files"),
    ("OPTIONS", "/files/{filename+}"),
]
AUTHORIZATION = {("GET", "/files"): "AWS_IAM", ("GET", "/files/{filename+}"): "AWS_IAM"}
LOCAL = Signer(Credentials("testing", "testing"), REGION)


class Echo:
    """Records the events it is invoked with; answers 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"ok": True})}


@pytest.fixture(scope="module")
def echo() -> Echo:
    return Echo()


@pytest.fixture(scope="module")
def gateway(echo: Echo) -> Iterator[ApiGateway]:
    api = ApiGateway(
        handler=echo,
        routes=ROUTES,
        region=REGION,
        authorization=AUTHORIZATION,
        verifier=SigV4Verifier({"testing": "testing"}, region=REGION),
    ).start()
    yield api
    api.stop()


@pytest.fixture(autouse=True)
def _reset(echo: Echo) -> None:
    echo.events.clear()


def refused(response: Any, error_type: str) -> str:
    """The message of an API Gateway 403 (asserting its shape)."""
    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == error_type
    body = response.json()
    assert set(body) == {"message"}
    return str(body["message"])


def send(
    gateway: ApiGateway, target: str, headers: dict[str, str]
) -> tuple[int, str | None, bytes]:
    """GET `target` with exactly these headers: (status, x-amzn-ErrorType, body)."""
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        connection.request("GET", target, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("x-amzn-ErrorType"), answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/files", "/files/a.txt", "/prod/files?limit=2"])
def test_unsigned_requests_never_reach_the_handler(
    gateway: ApiGateway, echo: Echo, path: str
) -> None:
    response = get(f"{gateway.url}{path}", sign=False)
    assert refused(response, "MissingAuthenticationTokenException") == (
        "Missing Authentication Token"
    )
    assert echo.events == []


@pytest.mark.parametrize(
    "path", ["/files", "/files?limit=2&next_token=a%2Bb%3D", "/prod/files/dir/a%20b.txt"]
)
def test_a_correct_signature_reaches_the_handler_with_the_callers_identity(
    gateway: ApiGateway, echo: Echo, path: str
) -> None:
    response = get(f"{gateway.url}{path}", signer=LOCAL)
    assert response.status == 200, response.body
    (event,) = echo.events
    identity = event["requestContext"]["identity"]
    assert identity["accessKey"] == "testing"
    assert identity["accountId"] == "123456789012"
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/testing"


def test_a_wrong_secret_is_refused(gateway: ApiGateway, echo: Echo) -> None:
    wrong = Signer(Credentials("testing", "not-the-secret"), REGION)
    message = refused(get(f"{gateway.url}/files", signer=wrong), "InvalidSignatureException")
    assert message.startswith(BAD_SIGNATURE + "\n\nThe Canonical String for this request")
    assert echo.events == []


def test_an_unknown_access_key_is_refused(gateway: ApiGateway) -> None:
    stranger = Signer(Credentials("AKIDEXAMPLE", "testing"), REGION)
    message = refused(get(f"{gateway.url}/files", signer=stranger), "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


@pytest.mark.parametrize(
    ("signed_url", "sent_url"),
    [
        ("/files/a.txt", "/files/b.txt"),
        ("/files?limit=2", "/files?limit=3"),
        ("/files?limit=2", "/files?limit=2&next_token=x"),
    ],
)
def test_an_altered_path_or_query_is_refused(
    gateway: ApiGateway, echo: Echo, signed_url: str, sent_url: str
) -> None:
    _, headers = LOCAL.sign("GET", f"{gateway.url}{signed_url}", {})
    status, error_type, body = send(gateway, sent_url, headers)
    assert (status, error_type) == (403, "InvalidSignatureException")
    assert json.loads(body)["message"].startswith(BAD_SIGNATURE)
    assert echo.events == []


@pytest.mark.parametrize(
    ("offset", "pattern"),
    [
        (
            timedelta(minutes=-10),
            r"Signature expired: (\d{8}T\d{6}Z) is now earlier than (\d{8}T\d{6}Z) "
            r"\((\d{8}T\d{6}Z) - 5 min\.\)",
        ),
        (
            timedelta(minutes=10),
            r"Signature not yet current: (\d{8}T\d{6}Z) is still later than (\d{8}T\d{6}Z) "
            r"\((\d{8}T\d{6}Z) \+ 5 min\.\)",
        ),
    ],
    ids=["expired", "not-yet-current"],
)
def test_a_date_more_than_five_minutes_off_is_refused(
    gateway: ApiGateway,
    echo: Echo,
    monkeypatch: pytest.MonkeyPatch,
    offset: timedelta,
    pattern: str,
) -> None:
    # Given a request signed with a clock 10 minutes off
    signed_at = datetime.now(UTC).replace(microsecond=0, tzinfo=None) + offset
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    _, headers = LOCAL.sign("GET", f"{gateway.url}/files", {})
    monkeypatch.undo()
    # When it is sent, Then API Gateway's message names the signature's date and the window
    status, error_type, body = send(gateway, "/files", headers)
    assert (status, error_type) == (403, "InvalidSignatureException")
    match = re.fullmatch(pattern, json.loads(body)["message"])
    assert match, body
    stamp = "%Y%m%dT%H%M%SZ"
    assert match.group(1) == signed_at.strftime(stamp)
    server_now = datetime.strptime(match.group(3), stamp)
    limit = datetime.strptime(match.group(2), stamp)
    assert abs(limit - server_now) == timedelta(minutes=5)
    assert echo.events == []


def test_cors_preflight_is_not_authenticated(gateway: ApiGateway, echo: Echo) -> None:
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        connection.request(
            "OPTIONS",
            "/files/a.txt",
            headers={
                "Origin": "https://example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization,x-amz-date",
            },
        )
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert [event["httpMethod"] for event in echo.events] == ["OPTIONS"]


def test_a_signed_request_for_an_undefined_resource_is_still_missing_token(
    gateway: ApiGateway,
) -> None:
    response = get(f"{gateway.url}/nope", signer=LOCAL)
    assert refused(response, "MissingAuthenticationTokenException") == (
        "Missing Authentication Token"
    )


def _curl_signs() -> bool:
    curl = shutil.which("curl")
    if curl is None:
        return False
    found = subprocess.run([curl, "--help", "all"], capture_output=True, text=True, check=False)
    return "--aws-sigv4" in found.stdout


@pytest.mark.skipif(not _curl_signs(), reason="no curl with --aws-sigv4 (curl >= 7.75)")
@pytest.mark.parametrize(
    ("user", "status"), [("testing:testing", 200), ("testing:wrong", 403)], ids=["ok", "wrong"]
)
def test_the_documented_curl_command(
    gateway: ApiGateway, echo: Echo, user: str, status: int
) -> None:
    # The command README.md and `up` print
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--aws-sigv4",
            f"aws:amz:{REGION}:execute-api",
            "--user",
            user,
            f"{gateway.url}/files?limit=2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == str(status)
    assert len(echo.events) == (1 if status == 200 else 0)


def test_auth_off_lets_unsigned_requests_through(echo: Echo) -> None:
    # ApiAuth=NONE: no route needs a signature (the local stack passes no AWS_IAM routes)
    api = ApiGateway(handler=echo, routes=ROUTES).start()
    try:
        assert get(f"{api.url}/files", sign=False).status == 200
    finally:
        api.stop()
    assert len(echo.events) == 1


def test_aws_iam_routes_need_a_verifier(echo: Echo) -> None:
    with pytest.raises(ValueError, match="verifier"):
        ApiGateway(handler=echo, routes=ROUTES, authorization=AUTHORIZATION)


def test_a_url_over_the_servers_limit_is_a_json_414(gateway: ApiGateway) -> None:
    response = get(f"{gateway.url}/files/{'a' * 70_000}", sign=False)
    assert response.status == 414
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"message": "Request-URI Too Long"}


def test_a_malformed_request_is_a_json_400(gateway: ApiGateway) -> None:
    status, _, body = send(gateway, "/files", {"Content-Length": "nope"})
    assert status == 400
    assert json.loads(body) == {"message": "Bad Request"}
