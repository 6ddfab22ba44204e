"""A DynamoDB-compatible sink for benchmarks: enough of the JSON 1.0 protocol, with latency.

moto cannot add round-trip latency or return `UnprocessedItems`, and its own CPU cost caps a
writer near 3k items/s. This server stores items in a dict keyed by the partition key and
answers after an artificial delay (`asyncio.sleep`, so concurrent requests overlap like real
network round trips). It speaks `DynamoDB_20120810.` PutItem, GetItem, BatchWriteItem,
BatchGetItem, Scan, DescribeTable, TransactWriteItems and BatchExecuteStatement, and, like
DynamoDB (unlike moto), rejects a BatchWriteItem that names a key twice or has more than 25
requests.

It counts the request units DynamoDB would bill (on-demand), per design element
(`SinkState.units`, one entry per element; `wru` is the base table's): writes 1 WRU per
started KB of the larger of the old and new item (also when a condition fails), twice that
inside a transaction; each global secondary index of the table's schema
(`pipeline.adapters.dynamo.schema`: the listing index `by_name`, the change feed's
`by_change`) bills
its own writes for every applied write, as AWS documents (GSI.html#GSI.Writes): 1 unit per
started KB of the projected entry when an item enters or leaves the index or changes there
without changing its index keys, 2 writes (delete + put) when an index key changes, nothing
when the item is in neither state (sparse); strongly consistent reads 1 RRU per started 4 KB
per key asked for, found or not (0.5 eventually consistent). Conditions:
PutItem/TransactWriteItems evaluate `attribute_not_exists(#k)` and `#a < :v` / `#a = :v`
terms joined by OR; PartiQL `INSERT` refuses an existing key (DuplicateItem) and `UPDATE` a
missing one (ConditionalCheckFailed), but the UPDATE's non-key condition is not evaluated
(the benchmark's keys are fresh or overwritten by newer events, so its statements hold; the
local stack runs them on AWS's DynamoDB Local).

Control endpoints (JSON): `POST /_sink/config` `{"latency_ms": 10, "unprocessed_rate": 0.05}`,
`GET /_sink/stats`, `POST /_sink/reset`.

Run it in its own process so that its CPU is not charged to the client being measured:

    python -m load.sink --port 0      # prints {"url": "http://127.0.0.1:PORT"} on stdout
    with SinkProcess(latency_ms=10) as sink: ...   # from Python
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pipeline.core.model import PARTITION_KEY

KEY = PARTITION_KEY
JSON_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."
MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
MAX_STATEMENTS = 25
MAX_TRANSACT = 100


class SinkError(Exception):
    """A DynamoDB error response: HTTP 400 with `__type` and `message`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.extra: dict[str, Any] = {}


class TransactionCanceled(SinkError):
    """TransactWriteItems refused: one `CancellationReasons` entry per action."""

    def __init__(self, reasons: list[dict[str, str]]) -> None:
        super().__init__("TransactionCanceledException", "Transaction cancelled")
        self.extra = {"CancellationReasons": reasons}


@dataclass(frozen=True)
class IndexElement:
    """A global secondary index and what a table write costs in it (AWS GSI.html#GSI.Writes)."""

    name: str
    keys: tuple[str, ...]
    projected: tuple[str, ...] | None
    """Non-key attributes copied (None: ALL)."""

    @classmethod
    def from_definition(cls, definition: dict[str, Any]) -> IndexElement:
        projection = definition["Projection"]
        projected = (
            None
            if projection["ProjectionType"] == "ALL"
            else tuple(projection.get("NonKeyAttributes", ()))
        )
        keys = tuple(k["AttributeName"] for k in definition["KeySchema"])
        return cls(definition["IndexName"], keys, projected)

    def entry(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        """The item's entry in this index, or None when it lacks an index key (sparse)."""
        if item is None or any(key not in item for key in self.keys):
            return None
        if self.projected is None:
            return item
        names = {KEY, *self.keys, *self.projected}
        return {name: value for name, value in item.items() if name in names}

    def units(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
        """Write units this index bills for a table write from `old` to `new`."""
        before, after = self.entry(old), self.entry(new)
        if before is None and after is None:
            return 0
        if before is None or after is None:
            return _kb_units(before if after is None else after)
        if any(before[key] != after[key] for key in self.keys):
            return _kb_units(before) + _kb_units(after)  # delete the old entry, put the new
        return max(_kb_units(before), _kb_units(after))


def _kb_units(item: dict[str, Any] | None) -> int:
    return max(1, math.ceil(_item_bytes(item or {}) / 1024))


def table_indexes() -> tuple[IndexElement, ...]:
    """The GSIs of the files table as the project defines it (`pipeline.adapters.dynamo.schema`)."""
    from pipeline.adapters.dynamo.schema import feed_index_definition, index_definition

    return tuple(
        IndexElement.from_definition(d) for d in (index_definition(), feed_index_definition())
    )


TABLE_ELEMENT = "table"
"""The base table's writes; each index bills under its own name (`IndexElement.name`)."""


@dataclass
class SinkState:
    """Items, behaviour and counters of one sink."""

    latency_s: float = 0.0
    unprocessed_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(42))
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    items_written: int = 0
    unprocessed_returned: int = 0
    max_in_flight: int = 0
    in_flight: int = 0
    wru: float = 0.0
    rru: float = 0.0
    condition_failures: int = 0
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Folder counter items (UpdateItem ADD), kept apart from the rows `items` counts."""
    counter_updates: int = 0
    indexes: tuple[IndexElement, ...] = field(default_factory=table_indexes)
    units: dict[str, float] = field(default_factory=dict)
    """Write units per design element: `table`, then one per index."""

    def bill(self, element: str, units: float) -> None:
        """Add write units to a design element (the table, an index, ...)."""
        if units:
            self.units[element] = self.units.get(element, 0.0) + units

    def put(self, item: dict[str, Any]) -> None:
        key = _key_of(item)
        old = self.items.get(key)
        for index in self.indexes:
            self.bill(index.name, index.units(old, item))
        if key not in self.items:
            self.position[key] = len(self.order)
            self.order.append(key)
        self.items[key] = item
        self.items_written += 1

    def reset(self) -> None:
        self.items.clear()
        self.order.clear()
        self.position.clear()
        self.calls.clear()
        self.items_written = self.unprocessed_returned = self.max_in_flight = 0
        self.wru = self.rru = 0.0
        self.condition_failures = 0
        self.counters.clear()
        self.counter_updates = 0
        self.units.clear()

    def write_units(self, key: str, new: dict[str, Any] | None, factor: int = 1) -> None:
        """Bill a write of `new` over whatever `key` holds (1 KB units, at least 1)."""
        old = self.items.get(key)
        size = max(_item_bytes(new or {}), _item_bytes(old or {}))
        units = factor * max(1, math.ceil(size / 1024))
        self.wru += units
        self.bill(TABLE_ELEMENT, units)

    def read_units(self, key: str, consistent: bool) -> None:
        """Bill a read of `key` (4 KB units; a missing item costs the minimum)."""
        item = self.items.get(key)
        units = max(1, math.ceil(_item_bytes(item or {}) / 4096))
        self.rru += units if consistent else units / 2

    def stats(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_s * 1000,
            "unprocessed_rate": self.unprocessed_rate,
            "items": len(self.items),
            "items_written": self.items_written,
            "unprocessed_returned": self.unprocessed_returned,
            "calls": dict(self.calls),
            "max_in_flight": self.max_in_flight,
            "wru": self.wru,
            "units": dict(self.units),
            "rru": self.rru,
            "condition_failures": self.condition_failures,
            "counter_updates": self.counter_updates,
            "cpu_s": time.process_time(),
        }


def _key_of(item_or_key: dict[str, Any]) -> str:
    value = item_or_key.get(KEY)
    if not isinstance(value, dict) or not isinstance(value.get("S"), str):
        raise SinkError(
            "ValidationException",
            "One of the required keys was not given a value",
        )
    return str(value["S"])


def _item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: names plus values in UTF-8 (close enough)."""
    total = 0
    for name, value in item.items():
        ((_, inner),) = value.items()
        total += len(name.encode()) + (1 if isinstance(inner, bool) else len(str(inner).encode()))
    return total


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
        key = _key_of(request["Item"])
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
        keys = [_key_of(put["Item"]) for put in puts]
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
                planned.append(("INSERT", _key_of(item), item, []))
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
        self.state.read_units(_key_of(request["Key"]), bool(request.get("ConsistentRead")))
        item = self.state.items.get(_key_of(request["Key"]))
        return {} if item is None else {"Item": _project(item, request)}

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """The folder counters' `ADD #a :v, ... SET #t = :v` (no condition): billed like any
        write (1 WRU per started KB of the item, at least 1)."""
        _table(request)
        key = _key_of(request["Key"])
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
        size = max(_item_bytes(item), _item_bytes(self.state.counters.get(key) or {}))
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
                keys.append(_key_of(write["PutRequest"]["Item"]))
            elif "DeleteRequest" in write:
                keys.append(_key_of(write["DeleteRequest"]["Key"]))
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
        names = [_key_of(key) for key in keys]
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
            start = self.state.position.get(_key_of(request["ExclusiveStartKey"]), -1) + 1
        limit = int(request.get("Limit") or 1_000_000)
        keys = self.state.order[start : start + limit]
        items = [_project(self.state.items[key], request) for key in keys]
        response: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        if start + limit < len(self.state.order) and keys:
            response["LastEvaluatedKey"] = {KEY: {"S": keys[-1]}}
        return response


OPERATIONS = {
    "PutItem": Sink.put_item,
    "GetItem": Sink.get_item,
    "DescribeTable": Sink.describe_table,
    "BatchWriteItem": Sink.batch_write_item,
    "BatchGetItem": Sink.batch_get_item,
    "Scan": Sink.scan,
    "TransactWriteItems": Sink.transact_write_items,
    "BatchExecuteStatement": Sink.batch_execute_statement,
    "UpdateItem": Sink.update_item,
}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type=JSON_TYPE)


def make_app(state: SinkState) -> web.Application:
    """The aiohttp application serving the DynamoDB protocol and the control endpoints."""
    sink = Sink(state)

    async def dynamodb(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        operation = OPERATIONS.get(target.removeprefix(TARGET_PREFIX))
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.latency_s:
                await asyncio.sleep(state.latency_s)
            if operation is None:
                raise SinkError("UnknownOperationException", f"unsupported operation {target!r}")
            name = target.removeprefix(TARGET_PREFIX)
            state.calls[name] = state.calls.get(name, 0) + 1
            return _json(operation(sink, json.loads(await request.read())))
        except SinkError as error:
            prefix = "com.amazon.coral.validate#" if error.code == "ValidationException" else ""
            body = {"__type": prefix + error.code, "message": error.message, **error.extra}
            return _json(body, error.status)
        finally:
            state.in_flight -= 1

    async def configure(request: web.Request) -> web.Response:
        body = await request.json()
        if "latency_ms" in body:
            state.latency_s = float(body["latency_ms"]) / 1000
        if "unprocessed_rate" in body:
            state.unprocessed_rate = float(body["unprocessed_rate"])
        if "seed" in body:
            state.rng.seed(body["seed"])
        return _json(state.stats())

    async def stats(_: web.Request) -> web.Response:
        return _json(state.stats())

    async def reset(_: web.Request) -> web.Response:
        state.reset()
        return _json(state.stats())

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/", dynamodb)
    app.router.add_post("/_sink/config", configure)
    app.router.add_get("/_sink/stats", stats)
    app.router.add_post("/_sink/reset", reset)
    return app


async def serve(host: str, port: int, state: SinkState) -> None:
    """Serve until cancelled; print the URL as one JSON line once listening."""
    runner = web.AppRunner(make_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    server: Any = site._server
    bound = server.sockets[0].getsockname()[1] if server is not None else port
    print(json.dumps({"url": f"http://{host}:{bound}"}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class SinkProcess:
    """The sink in a child process (its CPU is not the client's); a context manager."""

    def __init__(self, latency_ms: float = 0, unprocessed_rate: float = 0) -> None:
        self.latency_ms = latency_ms
        self.unprocessed_rate = unprocessed_rate
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SinkProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "load.sink", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the sink process did not start")
        self.url = json.loads(line)["url"]
        self.configure(latency_ms=self.latency_ms, unprocessed_rate=self.unprocessed_rate)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change latency_ms / unprocessed_rate / seed; returns the stats."""
        return self._call("POST", "/_sink/config", settings)

    def stats(self) -> dict[str, Any]:
        """Counters: items stored, calls per operation, sink CPU seconds..."""
        return self._call("GET", "/_sink/stats")

    def reset(self) -> dict[str, Any]:
        """Forget every item and counter."""
        return self._call("POST", "/_sink/reset")


def main(argv: list[str] | None = None) -> None:
    """`python -m load.sink`: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m load.sink", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--unprocessed-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the sink serves 127.0.0.1 only")
    state = SinkState(latency_s=args.latency_ms / 1000, unprocessed_rate=args.unprocessed_rate)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, state))


if __name__ == "__main__":
    main()
