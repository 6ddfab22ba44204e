"""The door of the browse server: which requests it answers, decided from the request alone.

A web server on 127.0.0.1 is reachable from every page the user opens, so each request
passes, in this order:
1. Host allowlist: exactly `127.0.0.1:PORT` or `localhost:PORT` (a rebound DNS name that
   points at 127.0.0.1 carries its own name: refused, 403);
2. GET or HEAD only (405 otherwise: the server changes nothing);
3. no foreign Origin, and no cross-site or same-site (another local port) `Sec-Fetch-Site`
   (403);
4. a session: the cookie the token was exchanged for, or the token itself in `?token=`
   (then the answer sets the cookie and redirects to the same URL without the token).

`check` is a pure function of method, path, headers and the two secrets, tested without a
socket (tests/unit/test_browse_guards.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

COOKIE_NAME = "s3ft_browse"
"""The session cookie's name is this plus `_<port>`: cookies are per host, not per port, so
two browse servers on 127.0.0.1 (say `make up`'s and a `browse --stack-name`) keep a cookie
each instead of overwriting one another's."""
TOKEN_PARAMETER = "token"
ALLOWED_METHODS = ("GET", "HEAD")
SAFE_FETCH_SITES = {"same-origin", "none"}
"""`Sec-Fetch-Site` values a request may carry: the page itself, or a typed/pasted URL."""


@dataclass(frozen=True)
class Secrets:
    """The run's token (printed in the URL) and the session cookie's value it is exchanged
    for; both random per run."""

    token: str
    cookie: str

    @classmethod
    def generate(cls) -> Secrets:
        """Fresh random secrets (`secrets.token_urlsafe`, 256 bits each)."""
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32))


class Outcome(Enum):
    """What the server does with a request."""

    SERVE = "serve"
    EXCHANGE = "exchange"
    """The token is right: set the cookie, redirect to the URL without the token."""
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    """A guard's verdict; for REFUSE, the status and a plain message (no secret in it)."""

    outcome: Outcome
    status: HTTPStatus = HTTPStatus.OK
    message: str = ""
    location: str = ""
    """For EXCHANGE: where to redirect (the same path and query, token removed)."""


def allowed_hosts(port: int) -> frozenset[str]:
    """The Host header values the server answers to on `port`."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})


def allowed_origins(port: int) -> frozenset[str]:
    """The Origin header values of the server's own page."""
    return frozenset(f"http://{host}" for host in allowed_hosts(port))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def cookie_name(port: int) -> str:
    """The session cookie's name for the server on `port`."""
    return f"{COOKIE_NAME}_{port}"


def _cookie(headers: Mapping[str, str], port: int) -> str | None:
    raw = _header(headers, "cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(cookie_name(port))
    return morsel.value if morsel is not None else None


def _refuse(status: HTTPStatus, message: str) -> Decision:
    return Decision(Outcome.REFUSE, status, message)


def without_token(target: str) -> str:
    """`target` (path and query) with every `token` parameter removed."""
    parts = urlsplit(target)
    kept = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name != TOKEN_PARAMETER
    ]
    path = parts.path or "/"
    return f"{path}?{urlencode(kept)}" if kept else path


def check(
    method: str, target: str, headers: Mapping[str, str], port: int, keys: Secrets
) -> Decision:
    """The verdict on one request (`target` is the request line's path and query)."""
    host = _header(headers, "host")
    if host is None or host.lower() not in allowed_hosts(port):
        return _refuse(
            HTTPStatus.FORBIDDEN,
            f"Host not allowed: open http://127.0.0.1:{port}/ (the URL browse printed)",
        )
    if method not in ALLOWED_METHODS:
        return _refuse(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET and HEAD are served")
    origin = _header(headers, "origin")
    if origin is not None and origin.lower() not in allowed_origins(port):
        return _refuse(HTTPStatus.FORBIDDEN, "Requests from other sites are refused")
    site = _header(headers, "sec-fetch-site")
    if site is not None and site.lower() not in SAFE_FETCH_SITES:
        return _refuse(HTTPStatus.FORBIDDEN, "Requests from other sites are refused")
    cookie = _cookie(headers, port)
    if cookie is not None and secrets.compare_digest(cookie.encode(), keys.cookie.encode()):
        if TOKEN_PARAMETER in dict(parse_qsl(urlsplit(target).query)):
            return Decision(Outcome.EXCHANGE, HTTPStatus.SEE_OTHER, location=without_token(target))
        return Decision(Outcome.SERVE)
    offered = [
        value
        for name, value in parse_qsl(urlsplit(target).query, keep_blank_values=True)
        if name == TOKEN_PARAMETER
    ]
    if offered and secrets.compare_digest(offered[-1].encode(), keys.token.encode()):
        return Decision(Outcome.EXCHANGE, HTTPStatus.SEE_OTHER, location=without_token(target))
    return _refuse(
        HTTPStatus.FORBIDDEN,
        "No session: open the URL that `s3-file-tracker browse` (or `make up`) printed; "
        "it carries this run's token",
    )


def session_cookie(keys: Secrets, port: int) -> str:
    """The Set-Cookie value that opens a session (HttpOnly, SameSite=Strict, whole site)."""
    return f"{cookie_name(port)}={keys.cookie}; HttpOnly; SameSite=Strict; Path=/"
