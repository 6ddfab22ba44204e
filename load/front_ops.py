"""The capacity front's operations: the DynamoDB calls ingest makes, each metered and throttled
per partition-key value (see `load.front`)."""

from __future__ import annotations

import copy
from typing import Any

from botocore.exceptions import ClientError

from load.front_state import (
    INDEX_MESSAGE,
    TABLE_MESSAGE,
    FrontError,
    FrontState,
    _parse,
    _project,
    _reason,
    key_of,
    throttling,
)
from load.throughput import READ, TABLE, WRITE
from pipeline.core.model import PARTITION_KEY
from tests.support import partiql
from tests.support.faults import update_item as apply_update


class Front:
    """The operations over one `FrontState`."""

    def __init__(self, state: FrontState) -> None:
        self.state = state

    def _statement(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Evaluate, meter and apply one PartiQL write: its BatchStatementResponse."""
        parameters = list(entry.get("Parameters") or [])
        try:
            statement = _parse(entry["Statement"])
            key = str(partiql.key_of(statement, parameters, PARTITION_KEY)["S"])
        except (partiql.PartiQLError, KeyError, IndexError) as bad:
            raise FrontError("ValidationException", str(bad)) from None
        table = statement.table
        current = self.state.items.get(key)
        new: dict[str, Any] | None
        refusal: dict[str, str] | None = None
        if statement.kind == "INSERT":
            new = dict(zip(statement.names, parameters, strict=True))
            if current is not None:
                refusal = {
                    "Code": "DuplicateItem",
                    "Message": "Duplicate primary key exists in table",
                }
        elif current is None or not partiql.holds(statement.where, current, parameters):
            new, refusal = (
                None,
                {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
            )
        else:
            new = dict(current)
            for name, value in zip(statement.names, parameters, strict=False):
                new[name] = value
            for name in statement.removes:
                new.pop(name, None)
        refused = self.state.admit(self.state.write_charge(key, current, new, refusal is None))
        if refused is not None:
            message = TABLE_MESSAGE if refused[0] == TABLE else INDEX_MESSAGE
            return {"TableName": table, "Error": {"Code": "ThrottlingError", "Message": message}}
        if refusal is not None:
            return {"TableName": table, "Error": refusal}
        self.state.store(key, new)
        return {"TableName": table}

    def batch_execute_statement(self, request: dict[str, Any]) -> dict[str, Any]:
        statements = request.get("Statements") or []
        if not statements or len(statements) > 25:
            raise FrontError(
                "ValidationException", "Member must have length less than or equal to 25"
            )
        keys = []
        for entry in statements:
            params = list(entry.get("Parameters") or [])
            try:
                keys.append(partiql.key_of(_parse(entry["Statement"]), params, PARTITION_KEY)["S"])
            except (partiql.PartiQLError, KeyError, IndexError) as error:
                raise FrontError("ValidationException", str(error)) from None
        if len(set(keys)) != len(keys):
            raise FrontError(
                "ValidationException", "Provided list of item keys contains duplicates"
            )
        return {"Responses": [self._statement(entry) for entry in statements]}

    def execute_statement(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self._statement(request)
        error = answer.get("Error")
        if error is None:
            return {"Items": []}
        if error["Code"] == "ThrottlingError":
            index = error["Message"] == INDEX_MESSAGE
            raise FrontError(
                "ThrottlingException",
                error["Message"],
                ThrottlingReasons=[
                    {
                        "reason": _reason(WRITE, "index" if index else TABLE),
                        "resource": answer["TableName"],
                    }
                ],
            )
        code = (
            "DuplicateItemException"
            if error["Code"] == "DuplicateItem"
            else "ConditionalCheckFailedException"
        )
        raise FrontError(code, error["Message"])

    def batch_get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        requests = request.get("RequestItems") or {}
        if len(requests) != 1:
            raise FrontError("ValidationException", "exactly one table is supported")
        ((table, spec),) = requests.items()
        keys = spec.get("Keys") or []
        if not keys or len(keys) > 100:
            raise FrontError(
                "ValidationException", "Too many items requested for the BatchGetItem call"
            )
        names = [key_of(key) for key in keys]
        if len(set(names)) != len(names):
            raise FrontError(
                "ValidationException", "Provided list of item keys contains duplicates"
            )
        consistent = bool(spec.get("ConsistentRead"))
        found, unprocessed = [], []
        for key, name in zip(keys, names, strict=True):
            if self.state.admit(self.state.read_charge(name, consistent)) is not None:
                unprocessed.append(key)
            elif (item := self.state.items.get(name)) is not None:
                found.append(_project(item, spec))
        if unprocessed and len(unprocessed) == len(keys):
            raise throttling(READ, (TABLE, names[0]), table)
        response: dict[str, Any] = {"Responses": {table: found}, "UnprocessedKeys": {}}
        if unprocessed:
            response["UnprocessedKeys"] = {table: {**spec, "Keys": unprocessed}}
        return response

    def get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        key = key_of(request["Key"])
        if refused := self.state.admit(
            self.state.read_charge(key, bool(request.get("ConsistentRead")))
        ):
            raise throttling(READ, refused, request["TableName"])
        item = self.state.items.get(key)
        return {} if item is None else {"Item": _project(item, request)}

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("ConditionExpression"):
            raise FrontError("ValidationException", "conditional PutItem is not served")
        key = key_of(request["Item"])
        current = self.state.items.get(key)
        if refused := self.state.admit(
            self.state.write_charge(key, current, request["Item"], True)
        ):
            raise throttling(WRITE, refused, request["TableName"])
        self.state.store(key, request["Item"])
        return {}

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        key = key_of(request["Key"])
        current = self.state.items.get(key)
        scratch = {key: copy.deepcopy(current)} if current is not None else {}
        try:
            apply_update(
                scratch,
                key,
                request["UpdateExpression"],
                request.get("ExpressionAttributeNames") or {},
                request.get("ExpressionAttributeValues") or {},
                request.get("ConditionExpression"),
                PARTITION_KEY,
            )
            applies, new = True, scratch[key]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise FrontError("ValidationException", str(error)) from None
            applies, new = False, None
        if refused := self.state.admit(self.state.write_charge(key, current, new, applies)):
            raise throttling(WRITE, refused, request["TableName"])
        if not applies:
            raise FrontError("ConditionalCheckFailedException", "The conditional request failed")
        self.state.store(key, new)
        return {}

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        requests = request.get("RequestItems") or {}
        if len(requests) != 1:
            raise FrontError("ValidationException", "exactly one table is supported")
        ((table, writes),) = requests.items()
        if not writes or len(writes) > 25:
            raise FrontError(
                "ValidationException", "Member must have length less than or equal to 25"
            )
        keys = [
            key_of(w["PutRequest"]["Item"] if "PutRequest" in w else w["DeleteRequest"]["Key"])
            for w in writes
        ]
        if len(set(keys)) != len(keys):
            raise FrontError(
                "ValidationException", "Provided list of item keys contains duplicates"
            )
        unprocessed = []
        for write, key in zip(writes, keys, strict=True):
            new = write["PutRequest"]["Item"] if "PutRequest" in write else None
            if self.state.admit(self.state.write_charge(key, self.state.items.get(key), new, True)):
                unprocessed.append(write)
                continue
            self.state.store(key, new)
        if unprocessed and len(unprocessed) == len(writes):
            raise throttling(WRITE, (TABLE, keys[0]), table)
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}

    def describe_table(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "Table": {
                "TableName": request["TableName"],
                "TableStatus": "ACTIVE",
                "ItemCount": len(self.state.items),
            }
        }
