"""A minimal HTTP client for the read API (demo, tests, load scripts): no dependencies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, timeout_s: float = 30) -> ApiResponse:
    """GET `url`; HTTP errors are returned as responses, not raised."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
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
    api_url: str, limit: int | None = None, max_pages: int = 10_000
) -> list[dict[str, Any]]:
    """Every file GET /files returns, following the page tokens to the end."""
    files: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(max_pages):
        query: dict[str, str] = {}
        if limit is not None:
            query["limit"] = str(limit)
        if token:
            query["next_token"] = token
        url = f"{api_url.rstrip('/')}/files" + (f"?{urlencode(query)}" if query else "")
        response = get(url)
        if response.status != 200:
            raise RuntimeError(f"GET {url} -> {response.status}: {response.body[:300]!r}")
        page = response.json()
        files.extend(_items(page))
        token = _next_token(page)
        if token is None:
            return files
    raise RuntimeError(f"GET /files did not end after {max_pages} pages")
