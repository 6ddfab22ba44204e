"""The S3 adapter translates HeadObject's answers by status and error code, never by text."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from pipeline.adapters.s3_objects import S3ObjectReader, head_from_error
from pipeline.core.settings import Settings
from pipeline.ingest.objects import LazyObjectReader, ObjectHead, ObjectLookupError
from tests.support.sdk_errors import BOTOCORE_ERRORS, OTHER_ERRORS, TRANSIENT_FAMILIES, sdk_error


def head_error(status: int, headers: dict[str, str] | None = None, code: str = "") -> ClientError:
    """A ClientError as botocore raises it for a HEAD (no body: the code is the status)."""
    return ClientError(
        {
            "Error": {"Code": code or str(status), "Message": "ignored text"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
        },
        "HeadObject",
    )


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def head_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return dict(self.answer)


def head(answer: Any) -> ObjectHead:
    return asyncio.run(S3ObjectReader(FakeClient(answer)).head("b", "k"))  # type: ignore[arg-type]


def test_a_current_version_is_read_from_the_response() -> None:
    # Given a 200 with quoted ETag / Then size, unquoted ETag and version id
    got = head({"ContentLength": 12, "ETag": '"abc-2"', "VersionId": "v1"})
    assert got == ObjectHead(exists=True, size=12, etag="abc-2", version_id="v1")


def test_a_current_delete_marker_is_a_404_with_the_markers_version() -> None:
    error = head_error(404, {"x-amz-delete-marker": "true", "x-amz-version-id": "m1"})
    assert head(error) == ObjectHead(exists=False, delete_marker=True, version_id="m1")


def test_no_version_at_all_is_a_plain_404() -> None:
    assert head(head_error(404)) == ObjectHead(exists=False)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (head_error(403), False),
        (head_error(400), False),
        (head_error(301), False),
        (head_error(500), True),
        (head_error(503, code="SlowDown"), True),
        (EndpointConnectionError(endpoint_url="https://s3"), True),
        (ReadTimeoutError(endpoint_url="https://s3"), True),
        (TimeoutError(), True),
    ],
)
def test_errors_are_translated_by_type_and_status(error: Exception, transient: bool) -> None:
    # Given HeadObject failing / When asked / Then an ObjectLookupError says whether to retry
    with pytest.raises(ObjectLookupError) as raised:
        head(error)
    assert raised.value.transient is transient
    assert "ignored text" not in raised.value.reason


def test_access_denied_names_the_permissions_needed() -> None:
    with pytest.raises(ObjectLookupError, match=r"s3:GetObject.*s3:ListBucket"):
        head_from_error(head_error(403))


def test_the_lazy_reader_opens_once_on_first_use() -> None:
    # Given a lazy reader / When asked twice concurrently / Then it was opened once
    opened: list[int] = []

    async def open_reader() -> S3ObjectReader:
        opened.append(1)
        await asyncio.sleep(0)
        return S3ObjectReader(FakeClient({"ContentLength": 1}))  # type: ignore[arg-type]

    async def twice() -> list[ObjectHead]:
        reader = LazyObjectReader(open_reader)
        return list(await asyncio.gather(reader.head("b", "k"), reader.head("b", "k")))

    assert [h.size for h in asyncio.run(twice())] == [1, 1] and opened == [1]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://all"}, "http://all"),
        ({"AWS_ENDPOINT_URL": "http://all", "AWS_ENDPOINT_URL_S3": "http://s3"}, "http://s3"),
        ({"AWS_ENDPOINT_URL_DYNAMODB": "http://ddb"}, None),
    ],
)
def test_the_s3_endpoint_follows_the_sdks_variables(
    env: dict[str, str], expected: str | None
) -> None:
    # Given the SDK's endpoint variables / Then the HeadObject client uses S3's
    settings = Settings.from_env({"TABLE_NAME": "files", **env})
    assert settings.s3_endpoint_url == expected


@pytest.mark.parametrize("cls", BOTOCORE_ERRORS + OTHER_ERRORS, ids=lambda cls: cls.__name__)
def test_every_sdk_error_becomes_a_lookup_error(cls: type[BaseException]) -> None:
    # Given HeadObject raising any error of botocore's family (ParamValidationError for a
    # bucket name the SDK refuses, endpoint errors...) or of the HTTP layer
    error = sdk_error(cls)

    # When asked / Then an ObjectLookupError, transient only for connection errors and timeouts
    with pytest.raises(ObjectLookupError) as raised:
        head(error)
    assert raised.value.transient is isinstance(error, TRANSIENT_FAMILIES)
    if isinstance(error, ParamValidationError):
        assert not raised.value.transient
        assert "not a/valid" not in raised.value.reason  # the type, never the content
