"""The browse server's calls to the read API: one allowlisted route per page call, signed
with SigV4 (service execute-api) from botocore's credential chain, answers mapped to states
the page words plainly.

The page calls `/api/<route>?<query>` on its own origin; `forward` turns that into one GET of
the API (`/buckets`, `/files`, `/files/{key}`, `/changes`, `/summary`) with only the
parameters that route takes, signs it here, and returns the API's JSON, or
`{"message", "state"}` for an error. Credentials, signatures and tokens stay in this process.
"""

from __future__ import annotations

import json
import logging
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote

from pipeline.local.api_client import ApiResponse, Signer, get

logger = logging.getLogger(__name__)

ROUTES: dict[str, tuple[str, frozenset[str]]] = {
    "buckets": ("/buckets", frozenset()),
    "files": (
        "/files",
        frozenset({"bucket", "prefix", "delimiter", "start_after", "next_token", "limit"}),
    ),
    "changes": ("/changes", frozenset({"bucket", "prefix", "cursor", "since", "limit"})),
    "summary": ("/summary", frozenset({"bucket", "prefix"})),
    "file": ("/files/{key}", frozenset({"bucket", "key"})),
}
"""Page route -> (API path, the query parameters passed on)."""
TIMEOUT_S = 15.0


class State:
    """Machine-readable names of the error states the page shows (`state` in the body)."""

    CREDENTIALS = "credentials"
    UNREACHABLE = "unreachable"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    UPSTREAM = "upstream_error"


@dataclass(frozen=True)
class Answer:
    """What the server sends the page: a status and a JSON body."""

    status: int
    body: dict[str, Any]


SignerSource = Callable[[], Signer | None]
"""Returns the signer for the next request (None: no credentials found, or auth off)."""
Fetch = Callable[[str, Signer | None], ApiResponse]


def chain_signer(region: str) -> SignerSource:
    """Signers from botocore's credential chain (environment, profile, SSO, instance role...),
    as the AWS CLI finds them; refreshable credentials are refreshed as botocore does."""
    import botocore.session
    from botocore.credentials import Credentials

    session = botocore.session.Session()
    found: list[Any] = []

    def source() -> Signer | None:
        if not found:
            credentials = session.get_credentials()
            if credentials is None:
                return None
            found.append(credentials)
        frozen = found[0].get_frozen_credentials()
        if not (frozen.access_key and frozen.secret_key):
            return None
        return Signer(Credentials(frozen.access_key, frozen.secret_key, frozen.token), region)

    return source


def _default_fetch(url: str, signer: Signer | None) -> ApiResponse:
    return get(url, TIMEOUT_S, signer, sign=signer is not None)


@dataclass
class Upstream:
    """The API the page reads, and how to sign for it."""

    api_url: str
    signers: SignerSource
    auth: bool = True
    """False when the API takes unsigned requests (the local stack with ApiAuth=NONE)."""
    fetch: Fetch = _default_fetch

    def forward(self, route: str, query: str) -> Answer:
        """One page call (`route` from `ROUTES`, `query` as the page sent it) as an Answer."""
        if route not in ROUTES:
            return _error(HTTPStatus.NOT_FOUND, State.NOT_FOUND, "No such API route")
        path, names = ROUTES[route]
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
        except (UnicodeError, ValueError):
            return _error(HTTPStatus.BAD_REQUEST, State.BAD_REQUEST, "The query is not UTF-8")
        params: dict[str, str] = {}
        for name, value in pairs:
            if name not in names:
                continue
            if name in params:
                return _error(HTTPStatus.BAD_REQUEST, State.BAD_REQUEST, f"{name} given twice")
            params[name] = value
        if route == "file":
            return self._file(params)
        return self._get(path, params)

    def _file(self, params: dict[str, str]) -> Answer:
        """One file by its key: `GET /files?key=`, the form that reaches every key (a path
        cannot carry `.`, `..` or empty segments through API Gateway's normalization)."""
        key = params.pop("key", "")
        if not key:
            return _error(HTTPStatus.BAD_REQUEST, State.BAD_REQUEST, "key is required")
        answer = self._get("/files", {**params, "key": key})
        if answer.status != HTTPStatus.OK:
            return answer
        items = answer.body.get("items") or []
        if items and items[0].get("filename") == key:
            return Answer(HTTPStatus.OK, items[0])
        return _error(HTTPStatus.NOT_FOUND, State.NOT_FOUND, "File not found")

    def _get(self, path: str, params: dict[str, str]) -> Answer:
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='-_.~')}" for k, v in params.items())
        url = self.api_url.rstrip("/") + path + (f"?{query}" if query else "")
        signer = self.signers() if self.auth else None
        if self.auth and signer is None:
            return _error(
                HTTPStatus.FORBIDDEN,
                State.CREDENTIALS,
                "No AWS credentials found: configure them (aws configure, aws sso login, or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) where browse runs, then reload.",
            )
        try:
            response = self.fetch(url, signer)
        except (urllib.error.URLError, OSError) as error:
            logger.info("API unreachable: %s", type(error).__name__)
            return _error(
                HTTPStatus.BAD_GATEWAY,
                State.UNREACHABLE,
                f"The API at {self.api_url} cannot be reached. Is the stack running "
                "(make up), or the network up? The page retries on reload.",
            )
        return _answer(response)


def _error(status: int, state: str, message: str) -> Answer:
    return Answer(status, {"message": message, "state": state})


def _answer(response: ApiResponse) -> Answer:
    """The API's response as an Answer: its JSON on 200, a worded state otherwise."""
    try:
        body = json.loads(response.body) if response.body else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = response.status
    message = str(body.get("message") or f"HTTP {status}")
    if status == HTTPStatus.OK:
        return Answer(status, body)
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return _error(
            status,
            State.CREDENTIALS,
            f"The API refused the credentials ({message}). They may have expired or lack "
            "execute-api:Invoke on this API: refresh them (aws sso login, or new keys) where "
            "browse runs, then reload the page.",
        )
    if status == HTTPStatus.BAD_REQUEST:
        return _error(status, State.BAD_REQUEST, message)
    if status == HTTPStatus.NOT_FOUND:
        return _error(status, State.NOT_FOUND, message)
    if status == HTTPStatus.GONE:
        return _error(status, State.EXPIRED, message)
    return _error(
        HTTPStatus.BAD_GATEWAY if status >= 500 else status,
        State.UPSTREAM,
        f"The API answered {status} ({message}); try again in a moment.",
    )
