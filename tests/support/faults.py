"""DynamoDB as strict as the real service, and faults the real service produces.

moto accepts duplicate keys in one BatchWriteItem and never returns UnprocessedItems or
throttles. `StrictFaultyClient` wraps any async DynamoDB client (a real aiobotocore client on
moto, or `InMemoryDynamo`) and adds: DynamoDB's request validation (≤ 25 writes, no duplicate
keys), injected UnprocessedItems/UnprocessedKeys, throttling errors (whole calls and single
PartiQL statements), item-specific ValidationExceptions, and a record of every request.

`InMemoryDynamo.batch_execute_statement` runs the writer's PartiQL statements with DynamoDB's
documented semantics (`tests.support.partiql`): ≤ 25 statements, writes only, per-statement
`Error {Code, Message}` in a 200 response, INSERT on an existing key -> DuplicateItem,
UPDATE on a missing key or a false condition -> ConditionalCheckFailed. Two statements on
one key in one call: DynamoDB's docs are silent; this fake refuses the whole call like
BatchWriteItem does (ValidationException), so code that relies on either answer fails here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from pipeline.core.model import PARTITION_KEY
from tests.support import partiql

MAX_STATEMENTS = 25
MAX_ITEM_BYTES = 400 * 1024


def client_error(
    code: str, message: str, status: int = 400, operation: str = "BatchWriteItem"
) -> ClientError:
    """A ClientError shaped like botocore raises it for a DynamoDB error response."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def _write_key(request: dict[str, Any]) -> str:
    return str(request["PutRequest"]["Item"][PARTITION_KEY]["S"])


def _item_bytes(item: dict[str, Any]) -> int:
    total = 0
    for name, value in item.items():
        ((_, inner),) = value.items()
        total += len(name.encode()) + (1 if isinstance(inner, bool) else len(str(inner).encode()))
    return total


def _project(item: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    expression = spec.get("ProjectionExpression")
    if not expression:
        return item
    names = spec.get("ExpressionAttributeNames") or {}
    wanted = [names.get(part.strip(), part.strip()) for part in expression.split(",")]
    return {name: item[name] for name in wanted if name in item}


class InMemoryDynamo:
    """An async stand-in for the DynamoDB calls ingest makes (no network)."""

    def __init__(self, key: str = PARTITION_KEY) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.key = key

    async def batch_execute_statement(
        self, Statements: list[dict[str, Any]], **_: Any
    ) -> dict[str, Any]:
        """PartiQL writes with DynamoDB's per-statement answers (see the module docstring)."""
        if not Statements or len(Statements) > MAX_STATEMENTS:
            raise client_error(
                "ValidationException",
                "1 validation error detected: Value at 'statements' failed to satisfy "
                "constraint: Member must have length less than or equal to 25",
                operation="BatchExecuteStatement",
            )
        parsed = []
        for entry in Statements:
            parameters = list(entry.get("Parameters") or [])
            try:
                statement = partiql.parse(entry["Statement"])
                key = partiql.key_of(statement, parameters, self.key)
            except (partiql.PartiQLError, IndexError) as error:
                raise client_error(
                    "ValidationException", str(error), operation="BatchExecuteStatement"
                ) from None
            if statement.parameter_count != len(parameters):
                raise client_error(
                    "ValidationException",
                    "Number of parameters in request and statement differ",
                    operation="BatchExecuteStatement",
                )
            parsed.append((statement, parameters, key.get("S")))
        keys = [key for _, _, key in parsed]
        if len(set(keys)) != len(keys):
            raise client_error(
                "ValidationException",
                "Provided list of item keys contains duplicates",
                operation="BatchExecuteStatement",
            )
        return {"Responses": [self._execute(*entry) for entry in parsed]}

    def _execute(
        self, statement: partiql.Statement, parameters: list[dict[str, Any]], key: str
    ) -> dict[str, Any]:
        rows = self.tables.setdefault(statement.table, {})
        answer: dict[str, Any] = {"TableName": statement.table}
        current = rows.get(key)
        if statement.kind == "INSERT":
            if current is not None:
                answer["Error"] = {
                    "Code": "DuplicateItem",
                    "Message": "Duplicate primary key exists in table",
                }
                return answer
            new = dict(zip(statement.names, parameters, strict=True))
        else:
            if current is None or not partiql.holds(statement.where, current, parameters):
                answer["Error"] = {
                    "Code": "ConditionalCheckFailed",
                    "Message": "The conditional request failed",
                }
                return answer
            if self.key in statement.names or self.key in statement.removes:
                answer["Error"] = {
                    "Code": "ValidationError",
                    "Message": f"Cannot update attribute {self.key}: part of the key",
                }
                return answer
            new = dict(current)
            for name, value in zip(statement.names, parameters, strict=False):
                new[name] = value
            for name in statement.removes:
                new.pop(name, None)
        if _item_bytes(new) > MAX_ITEM_BYTES:
            answer["Error"] = {
                "Code": "ValidationError",
                "Message": "Item size has exceeded the maximum allowed size",
            }
            return answer
        rows[key] = new
        return answer

    async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        for table, requests in RequestItems.items():
            rows = self.tables.setdefault(table, {})
            for request in requests:
                rows[_write_key(request)] = request["PutRequest"]["Item"]
        return {"UnprocessedItems": {}}

    async def update_item(
        self,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ExpressionAttributeNames: dict[str, str] | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        ConditionExpression: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """The UpdateItem forms the folder counters use: `SET #a = :v` and `ADD #a :v`
        clauses (ADD of a number to a missing attribute starts from 0), and the conditions
        `attribute_not_exists(#a)` and `#a = :v`."""
        return update_item(
            self.tables.setdefault(TableName, {}),
            Key[self.key]["S"],
            UpdateExpression,
            ExpressionAttributeNames or {},
            ExpressionAttributeValues or {},
            ConditionExpression,
            self.key,
        )

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        responses: dict[str, list[dict[str, Any]]] = {}
        for table, spec in RequestItems.items():
            rows = self.tables.get(table, {})
            found = [
                _project(rows[k[self.key]["S"]], spec)
                for k in spec["Keys"]
                if k[self.key]["S"] in rows
            ]
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
    """Keys of each BatchWriteItem and BatchExecuteStatement call."""
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

    async def batch_execute_statement(
        self, Statements: list[dict[str, Any]], **kwargs: Any
    ) -> dict[str, Any]:
        """Whole-call throttling and ValidationException for `invalid` keys; per-statement
        ProvisionedThroughputExceeded at `unprocessed_rate` and always for `never_succeed`."""
        keys = []
        for entry in Statements:
            statement = partiql.parse(entry["Statement"])
            key = partiql.key_of(
                statement,
                list(entry.get("Parameters") or []),
                getattr(self.inner, "key", PARTITION_KEY),
            )
            keys.append(str(key.get("S")))
        self.write_requests.append(keys)
        if self.rng.random() < self.throttle_rate:
            self.throttled += 1
            raise client_error("ThrottlingException", "Rate of requests exceeds the allowed rate")
        if self.invalid.intersection(keys):
            raise client_error("ValidationException", "Item size has exceeded the maximum")
        send, held = [], set()
        for index, (entry, key) in enumerate(zip(Statements, keys, strict=True)):
            if key in self.never_succeed or self.rng.random() < self.unprocessed_rate:
                held.add(index)
            else:
                send.append(entry)
        self.unprocessed += len(held)
        answers = iter([])
        if send:
            response = await self.inner.batch_execute_statement(Statements=send, **kwargs)
            answers = iter(response["Responses"])
        throttled = {
            "TableName": "files",
            "Error": {
                "Code": "ProvisionedThroughputExceeded",
                "Message": "The level of configured provisioned throughput for the table was "
                "exceeded",
            },
        }
        return {
            "Responses": [
                throttled if index in held else next(answers) for index in range(len(keys))
            ]
        }

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, spec),) = RequestItems.items()
        keys = [k[getattr(self.inner, "key", PARTITION_KEY)]["S"] for k in spec["Keys"]]
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


_CLAUSE = re.compile(r"\b(SET|ADD)\b")


def update_item(
    rows: dict[str, dict[str, Any]],
    key: str,
    expression: str,
    names: dict[str, str],
    values: dict[str, Any],
    condition: str | None,
    key_name: str = "filename",
) -> dict[str, Any]:
    """Apply an UpdateItem of the counters' forms to `rows` (see `InMemoryDynamo.update_item`)."""
    current = rows.get(key)
    if condition is not None:
        match = re.fullmatch(r"attribute_not_exists\((#\w+)\)|(#\w+) = (:\w+)", condition.strip())
        if match is None:
            raise client_error("ValidationException", f"unsupported condition {condition!r}")
        if match.group(1):
            holds = current is None or names[match.group(1)] not in current
        else:
            stored = (current or {}).get(names[match.group(2)])
            holds = stored is not None and stored == values[match.group(3)]
        if not holds:
            message = "The conditional request failed"
            raise client_error("ConditionalCheckFailedException", message, 400, "UpdateItem")
    new = dict(current or {key_name: {"S": key}})
    parts = _CLAUSE.split(expression)
    for verb, body in zip(parts[1::2], parts[2::2], strict=True):
        for action in (part.strip() for part in body.split(",") if part.strip()):
            if verb == "SET":
                name, value = (side.strip() for side in action.split("="))
                new[names[name]] = values[value]
            else:
                name, value = action.split()
                before = new.get(names[name], {"N": "0"})
                total = int(before["N"]) + int(values[value]["N"])
                new[names[name]] = {"N": str(total)}
    rows[key] = new
    return {}
