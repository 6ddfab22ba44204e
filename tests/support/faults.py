"""DynamoDB as strict as the real service, and faults the real service produces.

moto accepts duplicate keys in one BatchWriteItem and never returns UnprocessedItems or
throttles. `StrictFaultyClient` wraps any async DynamoDB client (a real aiobotocore client on
moto, or `InMemoryDynamo`) and adds: DynamoDB's request validation (≤ 25 writes, no duplicate
keys), injected UnprocessedItems/UnprocessedKeys, throttling errors, item-specific
ValidationExceptions, and a record of every request for assertions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


def client_error(code: str, message: str, status: int = 400) -> ClientError:
    """A ClientError shaped like botocore raises it for a DynamoDB error response."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "BatchWriteItem",
    )


def _write_key(request: dict[str, Any]) -> str:
    return str(request["PutRequest"]["Item"]["filename"]["S"])


class InMemoryDynamo:
    """An async stand-in for the two DynamoDB calls ingest makes (no network)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}

    async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        for table, requests in RequestItems.items():
            rows = self.tables.setdefault(table, {})
            for request in requests:
                rows[_write_key(request)] = request["PutRequest"]["Item"]
        return {"UnprocessedItems": {}}

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        responses: dict[str, list[dict[str, Any]]] = {}
        for table, spec in RequestItems.items():
            rows = self.tables.get(table, {})
            found = [rows[k["filename"]["S"]] for k in spec["Keys"] if k["filename"]["S"] in rows]
            responses[table] = found
        return {"Responses": responses, "UnprocessedKeys": {}}


@dataclass
class StrictFaultyClient:
    """Wraps an async DynamoDB client with DynamoDB's strictness and injected faults."""

    inner: Any
    unprocessed_rate: float = 0.0
    throttle_rate: float = 0.0
    never_succeed: set[str] = field(default_factory=set)
    """Keys always returned as unprocessed (a hot partition that never drains)."""
    invalid: set[str] = field(default_factory=set)
    """Keys whose presence makes BatchWriteItem fail with ValidationException."""
    seed: int = 0
    write_requests: list[list[str]] = field(default_factory=list)
    get_requests: list[list[str]] = field(default_factory=list)
    throttled: int = 0
    unprocessed: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        keys = [_write_key(r) for r in requests]
        self.write_requests.append(keys)
        if len(requests) > 25:
            raise client_error("ValidationException", "Too many items requested")
        if len(set(keys)) != len(keys):
            raise client_error(
                "ValidationException", "Provided list of item keys contains duplicates"
            )
        if self.rng.random() < self.throttle_rate:
            self.throttled += 1
            raise client_error("ProvisionedThroughputExceededException", "Rate of requests exceeds")
        if self.invalid.intersection(keys):
            raise client_error("ValidationException", "Item size has exceeded the maximum")
        send, hold = [], []
        for request, key in zip(requests, keys, strict=True):
            if key in self.never_succeed or self.rng.random() < self.unprocessed_rate:
                hold.append(request)
            else:
                send.append(request)
        self.unprocessed += len(hold)
        if send:
            await self.inner.batch_write_item(RequestItems={table: send})
        return {"UnprocessedItems": {table: hold} if hold else {}}

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, spec),) = RequestItems.items()
        keys = [k["filename"]["S"] for k in spec["Keys"]]
        self.get_requests.append(keys)
        if len(keys) > 100 or len(set(keys)) != len(keys):
            raise client_error(
                "ValidationException", "Provided list of item keys contains duplicates"
            )
        if self.rng.random() < self.throttle_rate:
            self.throttled += 1
            raise client_error("ProvisionedThroughputExceededException", "Rate exceeded")
        send = [k for k in spec["Keys"] if self.rng.random() >= self.unprocessed_rate]
        hold = [k for k in spec["Keys"] if k not in send]
        response: dict[str, Any] = {"Responses": {table: []}, "UnprocessedKeys": {}}
        if send:
            response = await self.inner.batch_get_item(RequestItems={table: {**spec, "Keys": send}})
        if hold:
            response["UnprocessedKeys"] = {table: {**spec, "Keys": hold}}
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
