"""A minimal HTTP client for the read API (demo, tests, load scripts) that signs with SigV4.

    signer = Signer(Credentials(key, secret, token), region="ap-south-1")
    get(f"{api_url}/files", signer=signer)

Without `signer`, requests are signed with the standard AWS credentials of the environment
(`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else botocore's default
chain), for the region in an `execute-api` host name, else `$AWS_REGION`/`$AWS_DEFAULT_REGION`;
with no credentials at all, or `sign=False`, they go unsigned.
"""

from __future__ import annotations

import functools
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from botocore.credentials import Credentials

from pipeline.local.sigv4 import sign_request

DEFAULT_REGION = "ap-south-1"
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


@dataclass(frozen=True)
class Signer:
    """SigV4 credentials and region to sign read-API requests with (service execute-api)."""

    credentials: Credentials
    region: str

    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[str, dict[str, str]]:
        """The URL to send (query in canonical form: same values) and the headers with
        `Authorization` and `X-Amz-Date` added."""
        return sign_request(method, url, self.credentials, self.region, headers, body)


def region_for(url: str) -> str:
    """The region of an `execute-api` URL, else the SDK's region variables, else ap-south-1."""
    match = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    if match:
        return match.group(1)
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


@functools.cache
def _default_chain() -> Credentials | None:
    import botocore.session

    found = botocore.session.Session().get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    if not (frozen.access_key and frozen.secret_key):
        return None
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def environment_signer(url: str) -> Signer | None:
    """A signer from the environment's AWS credentials (see the module docstring), or None."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        credentials = Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)
    else:
        chained = _default_chain()
        if chained is None:
            return None
        credentials = chained
    return Signer(credentials, region_for(url))


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(
    url: str,
    timeout_s: float = 30,
    signer: Signer | None = None,
    *,
    sign: bool = True,
    headers: dict[str, str] | None = None,
) -> ApiResponse:
    """GET `url` (with `headers`), SigV4-signed (see the module docstring); HTTP errors are
    returned as responses, not raised."""
    headers = {"Accept": "application/json", **(headers or {})}
    signer = signer or (environment_signer(url) if sign else None)
    if sign and signer is not None:
        url, headers = signer.sign("GET", url, headers)
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return ApiResponse(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return ApiResponse(error.code, dict(error.headers.items()), error.read())


def file_url(api_url: str, filename: str) -> str:
    """URL of GET /files/{filename+}: the key percent-encoded, its slashes kept."""
    return f"{api_url.rstrip('/')}/files/{quote(filename, safe='/')}"


def _items(page: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("files", "items", "Items"):
        if isinstance(page.get(key), list):
            return list(page[key])
    raise ValueError(f"no list of files in the page: {sorted(page)}")


def _next_token(page: dict[str, Any]) -> str | None:
    for key in ("next_token", "nextToken"):
        if page.get(key):
            return str(page[key])
    return None


def list_files(
    api_url: str,
    limit: int | None = None,
    max_pages: int = 10_000,
    signer: Signer | None = None,
    bucket: str | None = None,
) -> list[dict[str, Any]]:
    """Every file GET /files returns (of `bucket`; None: the API's default), following the
    page tokens to the end."""
    files: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(max_pages):
        query: dict[str, str] = {"bucket": bucket} if bucket else {}
        if limit is not None:
            query["limit"] = str(limit)
        if token:
            query["next_token"] = token
        url = f"{api_url.rstrip('/')}/files" + (f"?{urlencode(query)}" if query else "")
        response = get(url, signer=signer)
        if response.status != 200:
            raise RuntimeError(f"GET {url} -> {response.status}: {response.body[:300]!r}")
        page = response.json()
        files.extend(_items(page))
        token = _next_token(page)
        if token is None:
            return files
    raise RuntimeError(f"GET /files did not end after {max_pages} pages")
