"""Every error the SDK can raise out of an S3 call, built as botocore/aiohttp build them.

`BOTOCORE_ERRORS` is every concrete class of botocore's `BotoCoreError` family (found, not
listed by hand, so a botocore upgrade adding one is covered too); `sdk_error` builds one with
its message fields filled in.
"""

from __future__ import annotations

import asyncio
import inspect
import string

import aiohttp
import botocore.exceptions
from botocore.exceptions import BotoCoreError, ClientError

BOTOCORE_ERRORS: tuple[type[BotoCoreError], ...] = tuple(
    sorted(
        (
            cls
            for cls in vars(botocore.exceptions).values()
            if inspect.isclass(cls) and issubclass(cls, BotoCoreError)
        ),
        key=lambda cls: cls.__name__,
    )
)
OTHER_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionResetError,
)
TRANSIENT_FAMILIES: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ChecksumError,
    botocore.exceptions.FlexibleChecksumError,
    botocore.exceptions.CapacityNotAvailableError,
    botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.MetadataRetrievalError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)
"""What another attempt may cure: connection errors and timeouts, a response cut short or
corrupted, the client's retry quota, credentials not fetched in time. The adapter must call
these transient (retried) and every other error permanent for the key."""


def sdk_error(cls: type[BaseException]) -> BaseException:
    """An instance of `cls` with every field its message format names set."""
    if issubclass(cls, BotoCoreError):
        fields = {name for _, name, _, _ in string.Formatter().parse(cls.fmt) if name}
        kwargs = {name.split(".")[0].split("[")[0]: "x" for name in fields}
        if issubclass(cls, botocore.exceptions.ParamValidationError):
            kwargs["report"] = 'Invalid bucket name "not a/valid bucket"'
        if issubclass(cls, botocore.exceptions.WaiterError):
            kwargs["last_response"] = {}
        return cls(**kwargs)
    if cls is aiohttp.ServerDisconnectedError:
        return cls()
    return cls("injected")


def client_error(status: int, code: str) -> ClientError:
    """A HeadObject ClientError as botocore raises it (a HEAD has no body: code = status)."""
    return ClientError(
        {
            "Error": {"Code": code or str(status), "Message": "ignored text"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        },
        "HeadObject",
    )
