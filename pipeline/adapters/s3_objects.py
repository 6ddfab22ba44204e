"""The ingest side's S3 adapter: what HeadObject says about the current version of a key.

Every error the SDK can raise becomes an `ObjectLookupError`: S3's answers (`ClientError`) by
status and code; connection errors and timeouts are transient; the rest of botocore's
`BotoCoreError` family (a bucket name or key the SDK refuses to send, `ParamValidationError`;
endpoint or configuration errors) cannot succeed on another attempt and fail that key alone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    CapacityNotAvailableError,
    ChecksumError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    MetadataRetrievalError,
)

from pipeline.ingest.objects import ObjectHead, ObjectLookupError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

NETWORK_ERRORS = (
    HTTPClientError,
    ConnectionError,
    IncompleteReadError,
    ChecksumError,
    FlexibleChecksumError,
    CapacityNotAvailableError,
    CredentialRetrievalError,
    MetadataRetrievalError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)
"""Connection refused or reset, connect/read timeouts, a response cut short or corrupted,
credentials not fetched in time: worth another attempt."""
THROTTLING_CODES = frozenset({"SlowDown", "ThrottlingException", "RequestTimeout", "503", "429"})


def _header(response: Any, name: str) -> str | None:
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    value = headers.get(name)
    return str(value) if value is not None else None


def _version(value: Any) -> str | None:
    return str(value) if value else None


def head_from_error(error: ClientError) -> ObjectHead:
    """Translate a HeadObject `ClientError`: 404 -> no current version, else raise."""
    response: dict[str, Any] = dict(error.response)
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    code = str((response.get("Error") or {}).get("Code") or status)
    if status == 404 or code in {"404", "NoSuchKey", "NotFound"}:
        marker = (_header(response, "x-amz-delete-marker") or "").lower() == "true"
        return ObjectHead(
            exists=False,
            delete_marker=marker,
            version_id=_version(_header(response, "x-amz-version-id")) if marker else None,
        )
    if status == 403 or code in {"403", "AccessDenied", "Forbidden"}:
        raise ObjectLookupError(
            "HeadObject was denied (403): the function needs s3:GetObject on the bucket's "
            "objects and s3:ListBucket on the bucket",
            transient=False,
        )
    if status >= 500 or code in THROTTLING_CODES:
        raise ObjectLookupError(f"HeadObject failed: {code} ({status})", transient=True)
    raise ObjectLookupError(f"HeadObject failed: {code} ({status})", transient=False)


class S3ObjectReader:
    """`ObjectReader` over an aiobotocore S3 client (opened by `pipeline.adapters.runtime`)."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    async def head(self, bucket: str, key: str) -> ObjectHead:
        """HeadObject(bucket, key) without versionId, translated by status and error code."""
        try:
            response = await self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            return head_from_error(error)
        except NETWORK_ERRORS as error:
            raise ObjectLookupError(
                f"HeadObject failed: {type(error).__name__}", transient=True
            ) from None
        except BotoCoreError as error:  # e.g. ParamValidationError: never sent, never will be
            raise ObjectLookupError(
                f"HeadObject refused by the SDK: {type(error).__name__} "
                "(a bucket name or key S3 cannot have sent)",
                transient=False,
            ) from None
        etag = response.get("ETag")
        return ObjectHead(
            exists=True,
            size=int(response.get("ContentLength") or 0),
            etag=etag.strip('"') if etag else None,
            version_id=_version(response.get("VersionId")),
        )
