"""The local API Gateway is as strict as API Gateway: each test sends a request today's
gateway got wrong (another file served, a valid signature refused, a thread held forever, a
MemoryError, a chunked body read as the next request)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.credentials import Credentials

from pipeline.local.api_client import Signer
from pipeline.local.gateway import MAX_BODY_BYTES, ApiGateway
from pipeline.local.sigv4 import SigV4Verifier

pytestmark = pytest.mark.e2e
REGION = "ap-south-1"
ROUTES = [("GET", "/files"), ("GET", "/files/{filename+}"), ("POST", "/upload")]
AUTHORIZATION = {("GET", "/files"): "AWS_IAM", ("GET", "/files/{filename+}"): "AWS_IAM"}
LOCAL = Signer(Credentials("testing", "testing"), REGION)


class Echo:
    """Records the events it is invoked with; answers 200 with the routed path and body."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {
            "statusCode": 200,
            "body": json.dumps({"path": event["path"], "body": event["body"]}),
        }


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def gateway(echo: Echo) -> Iterator[ApiGateway]:
    api = ApiGateway(
        handler=echo,
        routes=ROUTES,
        region=REGION,
        authorization=AUTHORIZATION,
        verifier=SigV4Verifier({"testing": "testing"}, region=REGION),
        idle_timeout_s=1,
    ).start()
    yield api
    api.stop()


def send(
    gateway: ApiGateway, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request with exactly these headers: (status, JSON body, headers)."""
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=20)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if not any(name.lower() == "host" for name in headers):
            headers = {"Host": f"{gateway.host}:{gateway.port}", **headers}
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read()), dict(answer.getheaders())
    finally:
        connection.close()


def raw(gateway: ApiGateway, data: bytes, *, wait_s: float = 20) -> bytes:
    """Send `data` on a fresh connection; everything the gateway sends until it closes."""
    with socket.create_connection((gateway.host, gateway.port), timeout=wait_s) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


# --- the signature covers the path that is routed -------------------------------------------


@pytest.mark.parametrize(
    ("sent", "routed"),
    [
        ("/files//public.txt", "/files/public.txt"),
        ("/files/./public.txt", "/files/public.txt"),
        ("/files/x/../public.txt", "/files/public.txt"),
        ("/files/x/%2E%2E/public.txt", None),
        ("/files/x/..", None),
    ],
)
def test_a_signature_for_one_file_never_opens_another(
    gateway: ApiGateway, echo: Echo, sent: str, routed: str | None
) -> None:
    # Given headers signed for GET /files/public.txt
    _, headers = LOCAL.sign("GET", f"{gateway.url}/files/public.txt", {})
    # When they are sent with another spelling of a path
    status, _, _ = send(gateway, "GET", sent, headers)
    # Then the gateway routes what SigV4 signed (dot and empty segments removed, as botocore
    # and AWS canonicalize), so the request opens public.txt, or it is refused: never another
    if routed is None:
        assert status == 403 and echo.events == []
    else:
        assert status == 200
        (event,) = echo.events
        assert event["path"] == routed
        assert event["pathParameters"] == {"filename": "public.txt"}


def test_a_path_that_really_names_dot_segments_is_signed_and_routed_encoded(
    gateway: ApiGateway, echo: Echo
) -> None:
    # The file `x/../public.txt` (S3 allows such keys) is reached with its dots encoded
    url, headers = LOCAL.sign("GET", f"{gateway.url}/files/x/%2E%2E/public.txt", {})
    status, _, _ = send(gateway, "GET", url.removeprefix(gateway.url), headers)
    assert status == 200
    assert echo.events[0]["pathParameters"] == {"filename": "x/%2E%2E/public.txt"}


@pytest.mark.parametrize("key", ["..", ".", "a//b", "x/../y", "a/./b"])
def test_a_key_with_dot_or_empty_segments_is_signed_and_routed_by_the_query_form(
    gateway: ApiGateway, echo: Echo, key: str
) -> None:
    # Given a key whose path form is normalized away (GET /files/%2E%2E is refused)
    url, headers = LOCAL.sign("GET", f"{gateway.url}/files?{urlencode({'key': key})}", {})
    # When it is sent as GET /files?key=, signed by botocore
    status, _, _ = send(gateway, "GET", url.removeprefix(gateway.url), headers)
    # Then the signature holds and the handler gets the key exactly
    assert status == 200
    (event,) = echo.events
    assert event["path"] == "/files"
    assert event["queryStringParameters"] == {"key": key}


# --- SigV4 with the Date header ----------------------------------------------------------


def signed_with_date(gateway: ApiGateway, path: str, moment: datetime) -> dict[str, str]:
    """Headers of a GET signed with `Date` (HTTP-date) instead of `X-Amz-Date`, by hand."""
    host = f"{gateway.host}:{gateway.port}"
    date = format_datetime(moment, usegmt=True)
    amz = moment.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz[:8]}/{REGION}/execute-api/aws4_request"
    canonical = "\n".join(
        [
            *("GET", path, "", f"date:{date}", f"host:{host}", "", "date;host"),
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = b"AWS4testing"
    for part in (amz[:8], REGION, "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": host,
        "Date": date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/{scope}, "
        f"SignedHeaders=date;host, Signature={signature}",
    }


def test_a_request_signed_with_the_date_header_is_accepted(gateway: ApiGateway, echo: Echo) -> None:
    headers = signed_with_date(gateway, "/files", datetime.now(UTC).replace(microsecond=0))
    status, body, _ = send(gateway, "GET", "/files", headers)
    assert status == 200, body
    assert echo.events[0]["requestContext"]["identity"]["accessKey"] == "testing"


def test_a_date_header_ten_minutes_old_is_expired(gateway: ApiGateway, echo: Echo) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    status, body, headers = send(
        gateway, "GET", "/files", signed_with_date(gateway, "/files", moment)
    )
    assert status == 403 and headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert body["message"].startswith("Signature expired")
    assert echo.events == []


# --- connections and bodies --------------------------------------------------------------


def test_an_idle_connection_is_closed(gateway: ApiGateway) -> None:
    # Given a connection that sends nothing (or half a request line), When the gateway's idle
    # timeout (1 s here) passes, Then the gateway closes it (the test waits at most 20 s)
    started = time.monotonic()
    assert raw(gateway, b"") == b""
    assert raw(gateway, b"GET /files HTT") == b""
    assert time.monotonic() - started < 20


def test_a_body_over_10_mb_is_413_json_before_it_is_read(gateway: ApiGateway) -> None:
    for length in (99_999_999_999_999_999, MAX_BODY_BYTES + 1):
        answer = raw(
            gateway,
            f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode(),
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"Content-Type: application/json" in head
        assert json.loads(body) == {"message": "Request Too Long"}


def test_a_chunked_body_is_decoded_and_the_connection_stays_in_step(
    gateway: ApiGateway, echo: Echo
) -> None:
    answer = raw(
        gateway,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye",
    )
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer
    assert [event["body"] for event in echo.events] == ["hello world", "bye"]


def test_a_chunked_body_over_10_mb_is_413_and_other_codings_are_501(gateway: ApiGateway) -> None:
    too_big = raw(
        gateway,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{MAX_BODY_BYTES + 1:x}\r\n".encode(),
    )
    assert too_big.startswith(b"HTTP/1.1 413 ")
    assert json.loads(too_big.partition(b"\r\n\r\n")[2]) == {"message": "Request Too Long"}
    gzip = raw(gateway, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert gzip.startswith(b"HTTP/1.1 501 ")
    assert json.loads(gzip.partition(b"\r\n\r\n")[2]) == {
        "message": "Transfer-Encoding gzip is not supported"
    }
