"""The sink's operations: enough of DynamoDB's JSON protocol for the writer, with its rules
(see `load.sink`)."""

from __future__ import annotations

import math
import re
from typing import Any

from load.sink_state import (
    KEY,
    MAX_BATCH_GET,
    MAX_BATCH_WRITE,
    MAX_STATEMENTS,
    MAX_TRANSACT,
    SinkError,
    SinkState,
    TransactionCanceled,
    item_bytes,
    key_of,
)

_TERM = re.compile(
    r"\s*(?:attribute_not_exists\((?P<missing>[#\w]+)\)|(?P<name>[#\w]+)\s*(?P<op><|=)\s*(?P<value>:\w+))\s*"
)


def _condition_holds(item: dict[str, Any] | None, request: dict[str, Any]) -> bool:
    """`attribute_not_exists(#k)`, `#a < :v` and `#a = :v` terms joined by OR."""
    expression = request.get("ConditionExpression")
    if not expression:
        return True
    names = request.get("ExpressionAttributeNames") or {}
    values = request.get("ExpressionAttributeValues") or {}
    for term in expression.split(" OR "):
        match = _TERM.fullmatch(term)
        if not match:
            raise SinkError("ValidationException", f"unsupported condition term {term!r}")
        if match["missing"]:
            if item is None or names.get(match["missing"], match["missing"]) not in item:
                return True
            continue
        stored = (item or {}).get(names.get(match["name"], match["name"]))
        given = values[match["value"]]
        if stored is None or set(stored) != set(given):
            continue
        ((kind, left),) = stored.items()
        right = given[kind]
        if kind == "N":
            left, right = float(left), float(right)
        if (left < right) if match["op"] == "<" else (left == right):
            return True
    return False


_INSERT_NAMES = re.compile(r"'(\w+)'\s*:\s*\?")
_SET_NAMES = re.compile(r'SET\s+"(\w+)"\s*=\s*\?')
_REMOVE_NAMES = re.compile(r'REMOVE\s+"(\w+)"')


def _project(item: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    expression = request.get("ProjectionExpression")
    if not expression:
        return item
    names = request.get("ExpressionAttributeNames") or {}
    wanted = [names.get(part.strip(), part.strip()) for part in expression.split(",")]
    return {name: item[name] for name in wanted if name in item}


def _table(request: dict[str, Any]) -> str:
    name = request.get("TableName")
    if not isinstance(name, str) or not name:
        raise SinkError("ValidationException", "TableName is required")
    return name


def _only_table(request_items: Any, what: str) -> tuple[str, Any]:
    if not isinstance(request_items, dict) or len(request_items) != 1:
        raise SinkError("ValidationException", f"{what}: exactly one table is supported")
    return next(iter(request_items.items()))


class Sink:
    """The protocol handlers over one `SinkState`."""

    def __init__(self, state: SinkState) -> None:
        self.state = state

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        _table(request)
        key = key_of(request["Item"])
        self.state.write_units(key, request["Item"])
        if not _condition_holds(self.state.items.get(key), request):
            self.state.condition_failures += 1
            raise SinkError("ConditionalCheckFailedException", "The conditional request failed")
        self.state.put(request["Item"])
        return {}

    def transact_write_items(self, request: dict[str, Any]) -> dict[str, Any]:
        actions = request.get("TransactItems") or []
        if not actions or len(actions) > MAX_TRANSACT:
            raise SinkError("ValidationException", "TransactItems must have 1-100 actions")
        puts = []
        for action in actions:
            if set(action) != {"Put"}:
                raise SinkError("ValidationException", "only Put actions are supported")
            puts.append(action["Put"])
        keys = [key_of(put["Item"]) for put in puts]
        if len(set(keys)) != len(keys):
            raise SinkError(
                "ValidationException",
                "Transaction request cannot include multiple operations on one item",
            )
        reasons = []
        for put, key in zip(puts, keys, strict=True):
            self.state.write_units(key, put["Item"], factor=2)
            ok = _condition_holds(self.state.items.get(key), put)
            reasons.append({"Code": "None"} if ok else {"Code": "ConditionalCheckFailed"})
        if any(reason["Code"] != "None" for reason in reasons):
            self.state.condition_failures += 1
            raise TransactionCanceled(reasons)
        for put in puts:
            self.state.put(put["Item"])
        return {}

    def batch_execute_statement(self, request: dict[str, Any]) -> dict[str, Any]:
        statements = request.get("Statements") or []
        if not statements or len(statements) > MAX_STATEMENTS:
            raise SinkError(
                "ValidationException",
                "Member must have length less than or equal to 25 (Statements)",
            )
        planned = []
        for entry in statements:
            text, parameters = entry["Statement"], entry.get("Parameters") or []
            if text.startswith("INSERT"):
                item = dict(zip(_INSERT_NAMES.findall(text), parameters, strict=True))
                planned.append(("INSERT", key_of(item), item, []))
            elif text.startswith("UPDATE"):
                sets = _SET_NAMES.findall(text)
                changes = dict(zip(sets, parameters, strict=False))
                key = parameters[len(sets)]["S"]
                planned.append(("UPDATE", key, changes, _REMOVE_NAMES.findall(text)))
            else:
                raise SinkError("ValidationException", "only INSERT and UPDATE are supported")
        keys = [key for _, key, _, _ in planned]
        if len(set(keys)) != len(keys):
            raise SinkError("ValidationException", "Provided list of item keys contains duplicates")
        responses = []
        table = statements[0]["Statement"].split('"')[1]
        for kind, key, values, removes in planned:
            if (
                self.state.unprocessed_rate
                and self.state.rng.random() < self.state.unprocessed_rate
            ):
                self.state.unprocessed_returned += 1
                error = {"Code": "ProvisionedThroughputExceeded", "Message": "throttled"}
                responses.append({"TableName": table, "Error": error})
                continue
            current = self.state.items.get(key)
            if kind == "INSERT":
                self.state.write_units(key, values)
                if current is not None:
                    self.state.condition_failures += 1
                    responses.append({"TableName": table, "Error": {"Code": "DuplicateItem"}})
                    continue
                self.state.put(values)
            else:
                if current is None:
                    self.state.write_units(key, None)
                    self.state.condition_failures += 1
                    responses.append(
                        {"TableName": table, "Error": {"Code": "ConditionalCheckFailed"}}
                    )
                    continue
                new = {**current, **values}
                for name in removes:
                    new.pop(name, None)
                self.state.write_units(key, new)
                self.state.put(new)
            responses.append({"TableName": table})
        return {"Responses": responses}

    def get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        _table(request)
        self.state.read_units(key_of(request["Key"]), bool(request.get("ConsistentRead")))
        item = self.state.items.get(key_of(request["Key"]))
        return {} if item is None else {"Item": _project(item, request)}

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """The folder counters' `ADD #a :v, ... SET #t = :v` (no condition): billed like any
        write (1 WRU per started KB of the item, at least 1)."""
        _table(request)
        key = key_of(request["Key"])
        names = request.get("ExpressionAttributeNames") or {}
        values = request.get("ExpressionAttributeValues") or {}
        item = dict(self.state.counters.get(key) or request["Key"])
        for verb, body in re.findall(
            r"(ADD|SET)\s+(.*?)(?=\s+(?:ADD|SET)\s|$)", request["UpdateExpression"]
        ):
            for action in (part.strip() for part in body.split(",")):
                if verb == "ADD":
                    name, value = action.split()
                    total = int(item.get(names[name], {"N": "0"})["N"]) + int(values[value]["N"])
                    item[names[name]] = {"N": str(total)}
                else:
                    name, value = (side.strip() for side in action.split("="))
                    item[names[name]] = values[value]
        size = max(item_bytes(item), item_bytes(self.state.counters.get(key) or {}))
        self.state.wru += max(1, math.ceil(size / 1024))
        self.state.counters[key] = item
        self.state.counter_updates += 1
        return {}

    def describe_table(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _table(request)
        return {
            "Table": {
                "TableName": name,
                "TableStatus": "ACTIVE",
                "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": KEY, "AttributeType": "S"}],
                "ItemCount": len(self.state.items),
            }
        }

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        table, writes = _only_table(request.get("RequestItems"), "BatchWriteItem")
        if not isinstance(writes, list) or not writes:
            raise SinkError("ValidationException", "RequestItems must not be empty")
        if len(writes) > MAX_BATCH_WRITE:
            raise SinkError(
                "ValidationException",
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Member must have length less than or equal to 25",
            )
        keys = []
        for write in writes:
            if "PutRequest" in write:
                keys.append(key_of(write["PutRequest"]["Item"]))
            elif "DeleteRequest" in write:
                keys.append(key_of(write["DeleteRequest"]["Key"]))
            else:
                raise SinkError("ValidationException", "unsupported write request")
        if len(set(keys)) != len(keys):
            raise SinkError("ValidationException", "Provided list of item keys contains duplicates")
        unprocessed = []
        for write, key in zip(writes, keys, strict=True):
            if (
                self.state.unprocessed_rate
                and self.state.rng.random() < self.state.unprocessed_rate
            ):
                unprocessed.append(write)
                continue
            self.state.write_units(key, write.get("PutRequest", {}).get("Item"))
            if "PutRequest" in write:
                self.state.put(write["PutRequest"]["Item"])
            elif (gone := self.state.items.pop(key, None)) is not None:
                for index in self.state.indexes:
                    self.state.bill(index.name, index.units(gone, None))
                self.state.order.remove(key)  # rare in benchmarks: O(n) is fine
                self.state.position = {k: i for i, k in enumerate(self.state.order)}
        self.state.unprocessed_returned += len(unprocessed)
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}

    def batch_get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        table, spec = _only_table(request.get("RequestItems"), "BatchGetItem")
        keys = spec.get("Keys") or []
        if len(keys) > MAX_BATCH_GET:
            raise SinkError("ValidationException", "Too many items requested for the BatchGetItem")
        names = [key_of(key) for key in keys]
        if len(set(names)) != len(names):
            raise SinkError("ValidationException", "Provided list of item keys contains duplicates")
        found, unprocessed = [], []
        for key, name in zip(keys, names, strict=True):
            if (
                self.state.unprocessed_rate
                and self.state.rng.random() < self.state.unprocessed_rate
            ):
                unprocessed.append(key)
                continue
            self.state.read_units(name, bool(spec.get("ConsistentRead")))
            item = self.state.items.get(name)
            if item is not None:
                found.append(_project(item, spec))
        self.state.unprocessed_returned += len(unprocessed)
        response: dict[str, Any] = {"Responses": {table: found}, "UnprocessedKeys": {}}
        if unprocessed:
            response["UnprocessedKeys"] = {table: {**spec, "Keys": unprocessed}}
        return response

    def scan(self, request: dict[str, Any]) -> dict[str, Any]:
        _table(request)
        start = 0
        if request.get("ExclusiveStartKey"):
            start = self.state.position.get(key_of(request["ExclusiveStartKey"]), -1) + 1
        limit = int(request.get("Limit") or 1_000_000)
        keys = self.state.order[start : start + limit]
        items = [_project(self.state.items[key], request) for key in keys]
        response: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        if start + limit < len(self.state.order) and keys:
            response["LastEvaluatedKey"] = {KEY: {"S": keys[-1]}}
        return response
