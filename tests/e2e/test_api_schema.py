"""The read API against its OpenAPI document, through the local stack's gateway.

schemathesis generates requests from `openapi.json` (valid and invalid parameters) and checks
every answer: no 5xx, a documented status code, the documented content type and a body that
matches the documented schema. The table holds files with awkward names (seeded through the
bucket, so the real pipeline wrote them) and a tombstone. Page tokens get their own tests:
forged tokens cannot reach outside the table or the listing's rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.core.settings import Settings
from pipeline.core.tokens import TAG_BYTES, TokenCodec
from pipeline.feed.service import SINCE_MESSAGE, expired_message
from pipeline.local.api_client import get
from pipeline.local.stack import Stack
from pipeline.local.template import OPENAPI_PATH, read_stack_config
from pipeline.read.api import (
    BUCKET_MESSAGE,
    CURSOR_AND_SINCE_MESSAGE,
    CURSOR_MESSAGE,
    DELIMITER_MESSAGE,
    DEPTH_MESSAGE,
    FOLDER_MESSAGE,
    KEY_ALONE_MESSAGE,
    KEY_MESSAGE,
    LIMIT_MESSAGE,
    PREFIX_MESSAGE,
    REPEATED_MESSAGE,
    START_AFTER_MESSAGE,
    TOKEN_MESSAGE,
    build_app,
)
from tests.support.signing import SignedRequests

pytestmark = pytest.mark.e2e

API_GATEWAY_METHODS = ["DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"]
"""The methods a REST API can define; the others are tested apart (see the TRACE test)."""
SCHEMA = schemathesis.openapi.from_path(
    OPENAPI_PATH,
    config=schemathesis.Config.from_dict(
        {"phases": {"coverage": {"unexpected-methods": API_GATEWAY_METHODS}}}
    ),
)
UNTRACKED = re.compile(
    r"Bucket '[a-z0-9.\-]{3,63}' is not tracked by this API "
    r"\(the bucket parameter must name a tracked bucket\)"
)
PUBLIC_MESSAGES = frozenset(
    {
        LIMIT_MESSAGE,
        TOKEN_MESSAGE,
        PREFIX_MESSAGE,
        DELIMITER_MESSAGE,
        START_AFTER_MESSAGE,
        FOLDER_MESSAGE,
        DEPTH_MESSAGE,
        BUCKET_MESSAGE,
        KEY_MESSAGE,
        KEY_ALONE_MESSAGE,
        "next_token was issued for a different bucket",
        "next_token was issued for a different prefix",
        "next_token was issued for a different delimiter",
        "invalid request parameters",
        "File not found",
        "Not found",
        "Missing Authentication Token",
        "Internal server error",
        "Service temporarily unavailable, retry later",
        # GET /changes
        CURSOR_MESSAGE,
        SINCE_MESSAGE,
        CURSOR_AND_SINCE_MESSAGE,
        "cursor was issued for a different prefix",
        "cursor was issued for a different bucket",
        expired_message("cursor", 7),
        expired_message("since", 7),
    }
    | {
        REPEATED_MESSAGE.format(name=name, count=count)
        for name in (
            "limit",
            "next_token",
            "prefix",
            "delimiter",
            "start_after",
            "bucket",
            "cursor",
            "since",
            "key",
        )
        for count in range(2, 100)
    }
)
"""Every text an error answer may carry: nothing else (exception text, names) reaches a client."""


@schemathesis.check
def only_public_error_messages(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error answer is `{"message": <one of PUBLIC_MESSAGES>}` and nothing else."""
    if response.status_code < 400:
        return None
    body = response.json()
    message = body.get("message")
    if isinstance(message, str) and UNTRACKED.fullmatch(message):
        return True
    if body != {"message": message} or message not in PUBLIC_MESSAGES:
        raise AssertionError(f"error body is not one of the public messages: {body!r}")
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    only_public_error_messages,
]
SEEDED = [
    "plain.txt",
    "with space.txt",
    "plus+sign.txt",
    "100% done.csv",
    "percent%2541.txt",
    "räksmörgås.pdf",
    "日本語/ファイル.txt",
    "emoji 🎉.txt",
    "nested/deeper/still deeper/file.txt",
    "a+b=c&d?e#f.txt",
    "trailing space ",
    "~tilde/(parens)/[brackets]{braces}.txt",
    'quote"back\\slash.txt',
    "dot/../dot/./x.txt",
]
GONE = "deleted/gone.txt"


def signed(stack: Stack) -> SignedRequests:
    """schemathesis' requests, SigV4-signed with the credentials the local gateway accepts."""
    return SignedRequests(stack.signer)


@pytest.fixture(scope="module")
def stack(engines: dict[str, Any]) -> Iterator[Stack]:
    """The real handlers on a stack of their own, its table seeded through the bucket."""
    config = (
        read_stack_config()
        .with_suffix(f"api{uuid.uuid4().hex[:8]}")
        .with_overrides(visibility_timeout_s=2, function_timeout_s=10, batching_window_s=0)
    )
    with Stack(config, pollers=1, **engines) as running:
        s3 = running.client("s3")
        for name in [*SEEDED, GONE]:
            s3.put_object(Bucket=running.bucket, Key=name, Body=name.encode())
        running.wait_until_idle(30)
        s3.delete_object(Bucket=running.bucket, Key=GONE)
        running.wait_until_idle(30)
        yield running


@SCHEMA.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_generated_request_gets_a_documented_answer(stack: Stack, case: Any) -> None:
    # Given any request schemathesis derives from the document (valid and invalid parameters)
    # When it is sent through the gateway
    # Then no 5xx, and status, content type and body are what the document says
    case.call_and_validate(base_url=stack.api_url, checks=CHECKS, auth=signed(stack))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([*SEEDED, GONE]) | st.text(min_size=1, max_size=40))
def test_existing_and_missing_files_are_answered_as_documented(stack: Stack, name: str) -> None:
    # Given a seeded name, the deleted one, or any other text, percent-encoded (an explicit
    # schemathesis case is sent as given)
    encoded = quote(name, safe="")
    case = SCHEMA["/files/{filename}"]["GET"].Case(path_parameters={"filename": encoded})
    # When it is requested
    response = case.call_and_validate(base_url=stack.api_url, checks=CHECKS, auth=signed(stack))
    # Then the seeded files are found under their own names, everything else is a 404
    if name in SEEDED:
        assert response.status_code == 200, name
        assert response.json()["filename"] == name
    else:
        assert response.status_code == 404, name


def test_a_walk_of_all_pages_matches_the_document_and_the_bucket(stack: Stack) -> None:
    # Given the seeded table; When every page of GET /files is walked at limit 3
    operation = SCHEMA["/files"]["GET"]
    names: list[str] = []
    token: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 3}
        if token is not None:
            query["next_token"] = token
        response = operation.Case(query=query).call_and_validate(
            base_url=stack.api_url, checks=CHECKS, auth=signed(stack)
        )
        page = response.json()
        names += [item["filename"] for item in page["items"]]
        token = page["next_token"]
        if token is None:
            break
    # Then every page conforms and the pages hold each live file once, the tombstone never
    assert sorted(names) == sorted(SEEDED)


def forge(table: str, payload: dict[str, Any]) -> str:
    """A token with a valid tag around any payload: what anyone who knows the table name can
    make while PAGE_TOKEN_SECRET is unset (the local stack's default, and the template's)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    text = b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    tag = hmac.new(TokenCodec.for_table(table).key, text.encode(), hashlib.sha256).digest()
    return f"{text}.{b64(tag[:TAG_BYTES])}"


def walk_from(stack: Stack, token: str) -> tuple[int, list[dict[str, Any]]]:
    """Follow `token` to the end of the listing: (first status, every item served)."""
    items: list[dict[str, Any]] = []
    first: int | None = None
    next_token: str | None = token
    while next_token is not None:
        response = get(f"{stack.api_url}/files?{urlencode({'limit': 2, 'next_token': next_token})}")
        first = response.status if first is None else first
        if response.status != 200:
            assert response.json() == {"message": TOKEN_MESSAGE}
            break
        page = response.json()
        items += page["items"]
        next_token = page["next_token"]
    assert first is not None
    return first, items


@pytest.mark.parametrize(
    "key",
    [
        'x" OR attribute_exists(deleted) OR "',
        "#deleted",
        ":prefix",
        "deleted",
        "expires_at",
        "attribute_not_exists(#deleted)",
        GONE,
        "no such file",
        "files/../../other-table",
        "arn:aws:dynamodb:ap-south-1:123456789012:table/other",
        "\u0000",
    ],
)
def test_a_forged_token_only_ever_resumes_inside_this_tables_live_rows(
    stack: Stack, key: str
) -> None:
    # Given a token forged with a valid checksum whose key is expression syntax, an
    # attribute name, a tombstone, another table's name, or a key that does not exist
    token = forge(stack.table_name, {"v": 1, "k": key, "p": ""})
    # When the listing is resumed from it and followed to the end
    status, items = walk_from(stack, token)
    # Then it is a 400 or a walk over this table's live files only, without internal attributes
    assert status in (200, 400)
    assert {item["filename"] for item in items} <= set(SEEDED)
    assert all(item["bucket"] == stack.bucket for item in items)
    assert not any({"deleted", "expires_at"} & set(item) for item in items)


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 1, "k": "a", "p": "", "t": "other-table"},
        {"v": 1, "k": {"S": "a"}, "p": ""},
        {"v": 1, "k": {"filename": {"S": "a"}, "deleted": {"BOOL": True}}, "p": ""},
        {"v": 1, "k": ["a", "b"], "p": ""},
        {"v": 1, "k": "a", "p": "", "FilterExpression": "attribute_exists(deleted)"},
        {"v": 1, "k": "a", "p": {"S": "a"}},
        {"v": 1, "k": "a"},
    ],
)
def test_a_forged_token_with_anything_but_a_key_string_is_400(
    stack: Stack, payload: dict[str, Any]
) -> None:
    response = get(
        f"{stack.api_url}/files?{urlencode({'next_token': forge(stack.table_name, payload)})}"
    )
    assert response.status == 400
    assert response.json() == {"message": TOKEN_MESSAGE}


def test_a_genuine_token_of_another_table_is_400(stack: Stack) -> None:
    # Given a real token issued by the same API over another table
    token = TokenCodec.for_table(f"{stack.table_name}-other").encode(SEEDED[0], None)
    # Then this table's API refuses it
    response = get(f"{stack.api_url}/files?{urlencode({'next_token': token})}")
    assert response.status == 400
    assert response.json() == {"message": TOKEN_MESSAGE}


def test_no_internal_error_text_reaches_a_client_when_the_table_is_gone(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the gateway invoking the read API over a table that does not exist (the app built
    # in-process over a reader of a missing table: the stack's own function runs in worker
    # processes, out of the test's reach)
    missing = f"{stack.table_name}-missing"
    reader = DynamoFileReader(stack.client("dynamodb"), missing)
    app = build_app(reader, Settings(table_name=missing))
    assert stack.gateway is not None
    monkeypatch.setattr(stack.gateway, "handler", app.resolve)
    # When both routes are called through the gateway
    answers = [get(f"{stack.api_url}/files"), get(f"{stack.api_url}/files/plain.txt")]
    # Then each is the generic 500, without exception text, error codes or the table's name
    for answer in answers:
        assert answer.status == 500
        assert answer.json() == {"message": "Internal server error"}
        assert missing.encode() not in answer.body


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_an_undefined_method_is_403_like_api_gateway(stack: Stack, method: str) -> None:
    request = urllib.request.Request(f"{stack.api_url}/files", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    assert status == 403
    assert json.loads(body) == {"message": "Missing Authentication Token"}
