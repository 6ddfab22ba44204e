"""SigV4 for HTTP clients the tests drive (schemathesis' `requests`)."""

from __future__ import annotations

from requests import PreparedRequest
from requests.auth import AuthBase

from pipeline.local.api_client import Signer


class SignedRequests(AuthBase):
    """`requests` auth (e.g. schemathesis' `case.call(..., auth=SignedRequests(stack.signer))`)
    that SigV4-signs each request like the API's clients do (query sent in canonical form)."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body or b""
        url, headers = self.signer.sign(
            str(request.method),
            str(request.url),
            {},
            body.encode() if isinstance(body, str) else body,
        )
        request.url = url
        request.headers.update(headers)
        return request
