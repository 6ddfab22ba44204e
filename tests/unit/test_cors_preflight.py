"""CORS for signed browser clients: the unauthenticated preflight allows the SigV4 headers."""

from __future__ import annotations

from pipeline.core.settings import Settings
from pipeline.read.api import build_app
from tests.support.api import FakeFileReader, api_context, header, rest_event


def test_a_preflight_allows_the_signature_headers() -> None:
    # Given the API with CORS on (CORS_ALLOW_ORIGIN) and a browser's preflight for a signed GET
    app = build_app(
        FakeFileReader(), Settings(table_name="files", cors_origin="https://app.example")
    )
    event = rest_event(
        "/files",
        method="OPTIONS",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,x-amz-date,x-amz-security-token",
        },
    )
    # When the function answers it (API Gateway routes OPTIONS to it without authorization)
    response = app.resolve(event, api_context())
    # Then the browser may send the signed request from that origin
    assert response["statusCode"] == 204
    assert header(response, "Access-Control-Allow-Origin") == "https://app.example"
    allowed = {
        h.strip().lower()
        for h in (header(response, "Access-Control-Allow-Headers") or "").split(",")
    }
    assert {"authorization", "x-amz-date", "x-amz-security-token"} <= allowed
    assert "GET" in (header(response, "Access-Control-Allow-Methods") or "")
