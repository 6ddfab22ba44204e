"""The browse server's door (`pipeline.local.browse.guards`) and its API forwarding
(`pipeline.local.browse.upstream`), decided without a socket."""

from __future__ import annotations

import json
import urllib.error
from http import HTTPStatus

import pytest
from botocore.credentials import Credentials

from pipeline.local.api_client import ApiResponse, Signer
from pipeline.local.browse.guards import (
    COOKIE_NAME,
    Outcome,
    Secrets,
    check,
    session_cookie,
    without_token,
)
from pipeline.local.browse.upstream import State, Upstream

PORT = 8765
KEYS = Secrets(token="the-token", cookie="the-cookie")
HOST = {"Host": f"127.0.0.1:{PORT}"}
SESSION = {**HOST, "Cookie": f"{COOKIE_NAME}_{PORT}=the-cookie"}


def verdict(method: str, target: str, headers: dict[str, str]) -> tuple[Outcome, int]:
    decision = check(method, target, headers, PORT, KEYS)
    return decision.outcome, decision.status.value


@pytest.mark.parametrize(
    "host",
    [
        f"127.0.0.1:{PORT}",
        f"localhost:{PORT}",
        f"LOCALHOST:{PORT}",
    ],
)
def test_the_bound_host_names_are_served(host: str) -> None:
    assert verdict("GET", "/", {**SESSION, "Host": host}) == (Outcome.SERVE, 200)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # DNS rebinding: the attacker's name now resolves to 127.0.0.1
        f"evil.example:{PORT}",
        "127.0.0.1",  # no port
        f"127.0.0.1:{PORT + 1}",
        f"[::1]:{PORT}",
        f"127.0.0.1:{PORT}.evil.example",
        "",
    ],
)
def test_any_other_host_is_refused_even_with_a_session(host: str) -> None:
    assert verdict("GET", "/", {**SESSION, "Host": host}) == (Outcome.REFUSE, 403)
    headers = {"Cookie": SESSION["Cookie"]}  # no Host at all
    assert verdict("GET", "/", headers) == (Outcome.REFUSE, 403)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_only_get_and_head_are_served(method: str) -> None:
    assert verdict(method, "/api/files", SESSION) == (Outcome.REFUSE, 405)
    assert verdict("HEAD", "/api/files", SESSION) == (Outcome.SERVE, 200)


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", f"http://127.0.0.1:{PORT + 1}", f"https://127.0.0.1:{PORT}"],
)
def test_a_foreign_origin_is_refused(origin: str) -> None:
    assert verdict("GET", "/api/buckets", {**SESSION, "Origin": origin}) == (Outcome.REFUSE, 403)


def test_the_pages_own_origin_and_fetch_sites_are_served() -> None:
    for origin in (f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}"):
        assert verdict("GET", "/", {**SESSION, "Origin": origin})[0] is Outcome.SERVE
    for site in ("same-origin", "none"):
        assert verdict("GET", "/", {**SESSION, "Sec-Fetch-Site": site})[0] is Outcome.SERVE
    for site in ("cross-site", "same-site"):  # same-site: another port of localhost
        headers = {**SESSION, "Sec-Fetch-Site": site}
        assert verdict("GET", "/", headers) == (Outcome.REFUSE, 403)


def test_no_session_is_refused_and_the_message_says_what_to_open() -> None:
    decision = check("GET", "/", HOST, PORT, KEYS)
    assert (decision.outcome, decision.status) == (Outcome.REFUSE, HTTPStatus.FORBIDDEN)
    assert "printed" in decision.message and "the-token" not in decision.message
    for cookie in (
        f"{COOKIE_NAME}_{PORT}=wrong",
        f"{COOKIE_NAME}_{PORT}=",
        f"{COOKIE_NAME}_{PORT + 1}=the-cookie",  # another browse server's session
        "other=the-cookie",
        "garbage;;=",
    ):
        assert verdict("GET", "/", {**HOST, "Cookie": cookie}) == (Outcome.REFUSE, 403)
    assert verdict("GET", "/?token=wrong", HOST) == (Outcome.REFUSE, 403)
    assert verdict("GET", "/?token=", HOST) == (Outcome.REFUSE, 403)


def test_the_token_is_exchanged_for_a_cookie_and_a_token_less_url() -> None:
    decision = check("GET", "/?bucket=b&token=the-token&prefix=a%2F", HOST, PORT, KEYS)
    assert decision.outcome is Outcome.EXCHANGE and decision.status == HTTPStatus.SEE_OTHER
    assert decision.location == "/?bucket=b&prefix=a%2F"
    assert "token" not in decision.location
    cookie = session_cookie(KEYS, PORT)
    assert cookie.startswith(f"{COOKIE_NAME}_{PORT}=the-cookie;")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    assert "the-token" not in cookie  # the cookie is another secret than the printed token
    # a session that still carries a token in its URL is sent to the clean URL
    assert verdict("GET", "/?token=x", SESSION) == (Outcome.EXCHANGE, 303)
    assert without_token("/?token=a") == "/"


def test_secrets_are_random_per_run() -> None:
    first, second = Secrets.generate(), Secrets.generate()
    assert first.token != second.token and first.cookie != second.cookie
    assert len(first.token) >= 40 and first.token != first.cookie


# ------------------------------------------------------------------------- forwarding


class Recorder:
    def __init__(self, *responses: ApiResponse | Exception) -> None:
        self.responses = list(responses)
        self.calls: list[tuple[str, Signer | None]] = []

    def __call__(self, url: str, signer: Signer | None) -> ApiResponse:
        self.calls.append((url, signer))
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def response(status: int, body: object) -> ApiResponse:
    return ApiResponse(status, {}, json.dumps(body).encode())


SIGNER = Signer(Credentials("AKIDEXAMPLE", "secret"), "ap-south-1")


def upstream(fetch: Recorder, signer: Signer | None = SIGNER) -> Upstream:
    return Upstream("https://api.example/prod", lambda: signer, fetch=fetch)


def test_a_listing_passes_only_its_parameters_encoded_and_signed() -> None:
    fetch = Recorder(response(200, {"items": [], "next_token": None}))
    query = "bucket=b&prefix=a%20b%2F%2B&delimiter=%2F&token=t&cursor=c&limit=5"
    answer = upstream(fetch).forward("files", query)
    assert answer.status == 200
    url, signer = fetch.calls[0]
    assert url == "https://api.example/prod/files?bucket=b&prefix=a%20b%2F%2B&delimiter=%2F&limit=5"
    assert signer is SIGNER


@pytest.mark.parametrize(
    ("key", "query"),
    [
        ("a/b c.txt", "a%2Fb%20c.txt"),
        ("<img src=x onerror=alert(1)>", "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"),
        ("a/../b", "a%2F..%2Fb"),
        ("100%41", "100%2541"),
        (".", "."),
        ("..", ".."),
    ],
)
def test_a_file_is_one_get_of_its_encoded_key(key: str, query: str) -> None:
    # Every key, dot segments included, is read with GET /files?key= (no path can carry `..`)
    fetch = Recorder(response(200, {"items": [{"filename": key, "size": 1}], "next_token": None}))
    from urllib.parse import urlencode

    answer = upstream(fetch).forward("file", urlencode({"bucket": "b", "key": key}))
    assert answer == type(answer)(200, {"filename": key, "size": 1})
    assert fetch.calls[0][0] == f"https://api.example/prod/files?bucket=b&key={query}"


@pytest.mark.parametrize("items", [[], [{"filename": "other"}]])
def test_a_key_the_api_does_not_return_is_not_found(items: list[dict[str, str]]) -> None:
    fetch = Recorder(response(200, {"items": items, "next_token": None}))
    assert upstream(fetch).forward("file", "key=..").status == 404


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (403, State.CREDENTIALS),
        (400, State.BAD_REQUEST),
        (404, State.NOT_FOUND),
        (410, State.EXPIRED),
        (500, State.UPSTREAM),
        (503, State.UPSTREAM),
    ],
)
def test_api_errors_become_worded_states(status: int, state: str) -> None:
    fetch = Recorder(response(status, {"message": "the API's words"}))
    answer = upstream(fetch).forward("summary", "prefix=x")
    assert answer.body["state"] == state
    assert "the API's words" in answer.body["message"]
    assert answer.status == (502 if status >= 500 else status)


def test_no_credentials_and_no_api_are_worded_states() -> None:
    fetch = Recorder()
    answer = upstream(fetch, signer=None).forward("buckets", "")
    assert (answer.status, answer.body["state"]) == (403, State.CREDENTIALS)
    assert fetch.calls == []  # nothing unsigned was sent
    fetch = Recorder(urllib.error.URLError(ConnectionRefusedError()))
    answer = upstream(fetch).forward("buckets", "")
    assert (answer.status, answer.body["state"]) == (502, State.UNREACHABLE)


def test_bad_queries_and_routes_are_refused_here() -> None:
    fetch = Recorder()
    assert upstream(fetch).forward("files", "prefix=a&prefix=b").status == 400
    assert upstream(fetch).forward("files", "prefix=%FF").status == 400
    assert upstream(fetch).forward("admin", "").status == 404
    assert upstream(fetch).forward("file", "bucket=b").status == 400
    assert fetch.calls == []
