"""DynamoDB error codes shared by the adapters."""

from __future__ import annotations

from botocore.exceptions import ClientError

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
