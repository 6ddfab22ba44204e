"""DynamoDB error codes shared by the adapters."""

from __future__ import annotations

import aiohttp
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        "TransactionInProgressException",
    }
)
"""Errors that say "not now" rather than "never": worth a retry, or a 503 to a client."""


def error_code(error: ClientError) -> str:
    """The error code DynamoDB returned (e.g. `ValidationException`)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def is_transient(error: ClientError) -> bool:
    """Throttling, a transient service error, or any 5xx."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in TRANSIENT_CODES or int(status or 0) >= 500


THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
"""DynamoDB throttled the request (refused it before applying anything)."""

SAFE_TO_RETRY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
    }
)
"""Errors DynamoDB answers *instead of* applying the request (throttled, or the item is in a
transaction). A 5xx is not here: DynamoDB does not say whether a request that failed with
InternalServerError was applied."""


def surely_not_applied(error: BaseException) -> bool:
    """Whether DynamoDB certainly did not apply a request that raised `error` (throttled,
    or the connection was never made); otherwise its outcome is unknown."""
    if isinstance(error, ClientError):
        return error_code(error) in SAFE_TO_RETRY_CODES
    return isinstance(
        error, EndpointConnectionError | ConnectTimeoutError | aiohttp.ClientConnectorError
    )
