"""The local gateway's SigV4 check against requests signed by botocore: API Gateway's answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.credentials import Credentials

from pipeline.local.sigv4 import (
    BAD_SIGNATURE,
    AuthError,
    SigV4Verifier,
    canonical_query,
    sign_request,
)
from pipeline.local.template import read_stack_config

REGION = "ap-south-1"
HOST = "127.0.0.1:3000"
SIGNED_AT = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
VERIFIER = SigV4Verifier({"testing": "testing"}, region=REGION, account_id="123456789012")
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def signed(
    url: str,
    *,
    key: str = "testing",
    secret: str = "testing",
    token: str | None = None,
    region: str = REGION,
    at: datetime = SIGNED_AT,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str, list[tuple[str, str]]]:
    """(path, query, headers) of a GET signed by botocore's SigV4Auth at time `at`."""
    with monkeypatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda: at.replace(tzinfo=None))
        sent, headers = sign_request(
            "GET", f"http://{HOST}{url}", Credentials(key, secret, token), region
        )
    parts = urlsplit(sent)
    return parts.path, parts.query, [("Host", HOST), *headers.items()]


def verify(path: str, query: str, headers: list[tuple[str, str]], now: datetime = SIGNED_AT):
    return VERIFIER.verify("GET", path, query, headers, b"", now=now)


def refusal(path: str, query: str, headers: list[tuple[str, str]], **kwargs) -> AuthError:
    with pytest.raises(AuthError) as raised:
        verify(path, query, headers, **kwargs)
    return raised.value


@pytest.mark.parametrize(
    "url",
    [
        "/files",
        "/prod/files?limit=2&next_token=abc-_%3D",
        "/files?prefix=a b+c&limit=5",
        "/files/dir/sub%20dir/a%2Bb%25c.txt",
        "/files/r%C3%A4ksm%C3%B6rg%C3%A5s.txt",
    ],
)
def test_a_correct_signature_is_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    # Given a request botocore signed with the local credentials
    path, query, headers = signed(url, monkeypatch=monkeypatch)
    # When the gateway checks it, Then the caller is the signing key's
    caller = verify(path, query, headers)
    assert caller.access_key == "testing"
    assert caller.account_id == "123456789012"


def test_no_authorization_is_missing_authentication_token() -> None:
    error = refusal("/files", "", [("Host", HOST)])
    assert (error.message, error.error_type) == (
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    )


def test_a_wrong_secret_is_a_signature_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    path, query, headers = signed(
        "/files?limit=2", secret="not-the-secret", monkeypatch=monkeypatch
    )
    error = refusal(path, query, headers)
    assert error.error_type == "InvalidSignatureException"
    assert error.message.startswith(
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.\n\nThe Canonical String for this request should have been\n'GET\n/files\n"
        "limit=2\nhost:127.0.0.1:3000\nx-amz-date:20261125T100000Z\n\nhost;x-amz-date\n"
    )
    assert "\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20261125T100000Z\n" in (
        error.message
    )
    assert "20261125/ap-south-1/execute-api/aws4_request\n" in error.message


@pytest.mark.parametrize(
    ("signed_url", "sent_path", "sent_query"),
    [
        ("/files/a.txt", "/files/b.txt", ""),
        ("/files/a.txt", "/prod/files/a.txt", ""),
        ("/files?limit=2", "/files", "limit=3"),
        ("/files?limit=2", "/files", "limit=2&next_token=x"),
        ("/files?limit=2", "/files", ""),
    ],
)
def test_an_altered_path_or_query_is_a_signature_mismatch(
    monkeypatch: pytest.MonkeyPatch, signed_url: str, sent_path: str, sent_query: str
) -> None:
    _, _, headers = signed(signed_url, monkeypatch=monkeypatch)
    error = refusal(sent_path, sent_query, headers)
    assert error.error_type == "InvalidSignatureException"
    assert error.message.startswith(BAD_SIGNATURE)


def test_an_old_signature_is_expired_with_api_gateways_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, query, headers = signed("/files", monkeypatch=monkeypatch)
    now = SIGNED_AT + timedelta(minutes=5, seconds=1)
    error = refusal(path, query, headers, now=now)
    assert error.error_type == "InvalidSignatureException"
    assert error.message == (
        "Signature expired: 20261125T100000Z is now earlier than 20261125T100001Z "
        "(20261125T100501Z - 5 min.)"
    )


def test_a_signature_from_the_future_is_not_yet_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, query, headers = signed("/files", monkeypatch=monkeypatch)
    now = SIGNED_AT - timedelta(minutes=5, seconds=1)
    error = refusal(path, query, headers, now=now)
    assert error.message == (
        "Signature not yet current: 20261125T100000Z is still later than 20261125T095959Z "
        "(20261125T095459Z + 5 min.)"
    )


@pytest.mark.parametrize("skew", [timedelta(minutes=5), timedelta(minutes=-5)])
def test_five_minutes_of_clock_skew_are_accepted(
    monkeypatch: pytest.MonkeyPatch, skew: timedelta
) -> None:
    path, query, headers = signed("/files", monkeypatch=monkeypatch)
    assert verify(path, query, headers, now=SIGNED_AT + skew).access_key == "testing"


def test_an_unknown_access_key_is_an_invalid_security_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, query, headers = signed("/files", key="AKIDEXAMPLE", monkeypatch=monkeypatch)
    error = refusal(path, query, headers)
    assert (error.message, error.error_type) == (
        "The security token included in the request is invalid.",
        "UnrecognizedClientException",
    )


def test_a_session_token_the_local_key_does_not_have_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, query, headers = signed("/files", token="session", monkeypatch=monkeypatch)
    assert refusal(path, query, headers).error_type == "UnrecognizedClientException"


def test_a_signature_for_another_region_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    path, query, headers = signed("/files", region="us-east-1", monkeypatch=monkeypatch)
    error = refusal(path, query, headers)
    assert error.message == "Credential should be scoped to a valid region, not 'us-east-1'. "


def test_a_signature_for_another_service_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    path, query, headers = signed("/files", monkeypatch=monkeypatch)
    headers = [
        (k, v.replace("/execute-api/", "/s3/") if k == "Authorization" else v) for k, v in headers
    ]
    assert refusal(path, query, headers).message == (
        "Credential should be scoped to correct service: 'execute-api'. "
    )


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=testing/20261125/ap-south-1/execute-api/aws4_request",
        "Bearer abc",
        "AWS4-HMAC-SHA256 nonsense",
    ],
)
def test_a_malformed_authorization_header_is_an_incomplete_signature(authorization: str) -> None:
    headers = [("Host", HOST), ("X-Amz-Date", "20261125T100000Z"), ("Authorization", authorization)]
    error = refusal("/files", "", headers)
    assert error.error_type == "IncompleteSignatureException"


def test_the_host_header_must_be_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    path, query, headers = signed("/files", monkeypatch=monkeypatch)
    headers = [
        (
            k,
            v.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date")
            if k == "Authorization"
            else v,
        )
        for k, v in headers
    ]
    assert (
        "'Host' or ':authority' must be a 'SignedHeader'" in refusal(path, query, headers).message
    )


def test_the_canonical_query_decodes_then_encodes_rfc3986() -> None:
    assert canonical_query("b=2&a=x+y&a=%7E~/&c") == "a=x%20y&a=~~%2F&b=2&c="
    assert canonical_query("") == ""


@pytest.mark.parametrize(("parameter", "expected"), [(None, "AWS_IAM"), ("NONE", "NONE")])
def test_the_template_parameter_decides_the_local_routes_authorization(
    parameter: str | None, expected: str
) -> None:
    # Given template.yaml with ApiAuth at its default (AWS_IAM) or overridden to NONE
    parameters = {"ApiAuth": parameter} if parameter else None
    config = read_stack_config(TEMPLATE, parameters=parameters)
    # Then both GET routes use it, and CORS preflights are never authenticated
    assert config.api_authorization[("GET", "/files")] == expected
    assert config.api_authorization[("GET", "/files/{filename+}")] == expected
    assert config.api_authorization[("OPTIONS", "/files")] == "NONE"
    assert config.api_authorization[("OPTIONS", "/files/{filename+}")] == "NONE"
