"""The browse server's door over a real socket (raw `http.client` requests, no browser): a
wrong Host, a missing or wrong token, a POST and a foreign Origin are refused; the token is
exchanged for an HttpOnly SameSite=Strict cookie and a token-less URL; every answer carries
the security headers; neither the token nor the cookie reaches the log.

The API behind it is a closed port: what the page gets then is the "unreachable" state.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials

from pipeline.local.api_client import Signer
from pipeline.local.browse.guards import COOKIE_NAME
from pipeline.local.browse.server import CONTENT_SECURITY_POLICY, BrowseServer
from pipeline.local.browse.upstream import Upstream

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[BrowseServer]:
    signer = Signer(Credentials("AKIDEXAMPLE", "not-a-real-secret"), "ap-south-1")
    upstream = Upstream(f"http://127.0.0.1:{closed_port()}", lambda: signer)
    with BrowseServer(upstream) as running:
        yield running


def request(
    server: BrowseServer,
    path: str,
    *,
    method: str = "GET",
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host if host is not None else f"127.0.0.1:{server.port}")
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def session(server: BrowseServer) -> dict[str, str]:
    answer = request(server, f"/?token={server.secrets.token}")
    cookie = answer.getheader("Set-Cookie") or ""
    return {"Cookie": cookie.split(";")[0]}


def test_the_token_becomes_an_httponly_strict_cookie_and_a_clean_url(
    server: BrowseServer,
) -> None:
    # When the printed URL is opened (with a deep link's query)
    answer = request(server, f"/?bucket=b&token={server.secrets.token}&prefix=x%2F")
    # Then the answer sets the session cookie and redirects without the token
    assert answer.status == 303
    assert answer.getheader("Location") == "/?bucket=b&prefix=x%2F"
    cookie = answer.getheader("Set-Cookie") or ""
    attributes = {part.strip() for part in cookie.split(";")}
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= attributes
    assert cookie.startswith(f"{COOKIE_NAME}_{server.port}=") and server.secrets.token not in cookie
    # And the cookie opens the page
    page = request(server, "/", headers=session(server))
    assert page.status == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1:1", "0.0.0.0:{port}", "[::1]:{port}", ""],
)
def test_a_wrong_host_is_refused_even_with_the_token(server: BrowseServer, host: str) -> None:
    host = host.format(port=server.port)
    assert request(server, f"/?token={server.secrets.token}", host=host).status == 403
    assert request(server, "/api/buckets", host=host, headers=session(server)).status == 403


def test_a_missing_or_wrong_token_is_refused(server: BrowseServer) -> None:
    for path in ("/", "/app.js", "/api/buckets", "/api/files?prefix=a", "/?token=guess"):
        answer = request(server, path)
        assert answer.status == 403, path
        assert answer.getheader("Set-Cookie") is None
    wrong = {"Cookie": f"{COOKIE_NAME}_{server.port}=guess"}
    assert request(server, "/api/buckets", headers=wrong).status == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"])
def test_methods_other_than_get_and_head_are_refused(server: BrowseServer, method: str) -> None:
    answer = request(
        server, "/api/buckets", method=method, headers=session(server), body=b'{"a": 1}'
    )
    assert answer.status == 405
    assert answer.getheader("Allow") == "GET, HEAD"
    head = request(server, "/", method="HEAD", headers=session(server))
    assert head.status == 200


def test_a_foreign_origin_or_cross_site_fetch_is_refused(server: BrowseServer) -> None:
    cookie = session(server)
    for extra in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        assert request(server, "/api/buckets", headers={**cookie, **extra}).status == 403
    own = {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "same-origin"}
    assert request(server, "/", headers={**cookie, **own}).status == 200


def test_every_answer_carries_the_security_headers(server: BrowseServer) -> None:
    cookie = session(server)
    for path, headers in (("/", cookie), ("/app.js", cookie), ("/api/buckets", cookie), ("/", {})):
        answer = request(server, path, headers=headers)
        assert answer.getheader("Content-Security-Policy") == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert answer.getheader("X-Content-Type-Options") == "nosniff"
        assert answer.getheader("Referrer-Policy") == "no-referrer"
        assert answer.getheader("Cache-Control") == "no-store"
        assert answer.getheader("X-Frame-Options") == "DENY"


def test_the_page_has_no_inline_script_or_style(server: BrowseServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/", headers={"Host": f"127.0.0.1:{server.port}", **session(server)})
    html = connection.getresponse().read().decode()
    connection.close()
    assert html.count("<script") == 1 and '<script type="module" src="/app.js"></script>' in html
    assert "style=" not in html and "<style" not in html and "on" + "click" not in html


def test_an_unreachable_api_is_a_worded_state(server: BrowseServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(
        "GET", "/api/buckets", headers={"Host": f"localhost:{server.port}", **session(server)}
    )
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()
    assert answer.status == 502
    assert body["state"] == "unreachable" and "cannot be reached" in body["message"]
    assert "not-a-real-secret" not in json.dumps(body) and "AKIDEXAMPLE" not in json.dumps(body)


def test_no_token_cookie_or_credential_reaches_the_log(
    server: BrowseServer, caplog: pytest.LogCaptureFixture
) -> None:
    # the server's own logger at DEBUG, whatever an earlier test of this process set it to
    with (
        caplog.at_level(logging.DEBUG),
        caplog.at_level(logging.DEBUG, logger="pipeline.local.browse.server"),
    ):
        cookie = session(server)
        request(server, "/api/files?prefix=a", headers=cookie)
        request(server, f"/?token={server.secrets.token}", host="evil.example")
    text = caplog.text
    assert "GET /api/files 502" in text and "GET / 303" in text  # requests are logged...
    for secret in (server.secrets.token, server.secrets.cookie, "not-a-real-secret"):
        assert secret not in text  # ...without their secrets
