"""The capacity front: a DynamoDB endpoint (JSON 1.0 protocol on 127.0.0.1) that enforces
DynamoDB's throughput rules per partition-key value (`load.throughput`) on whatever writes
and reads arrive, over an in-memory table with the files table's indexes.

The real aiobotocore client of the real ingest code talks to it (`AWS_ENDPOINT_URL_DYNAMODB`).
Operations: BatchExecuteStatement and ExecuteStatement (the strict PartiQL subset of
`tests.support.partiql`: INSERT refuses an existing key with DuplicateItem, UPDATE's WHERE is
evaluated, else ConditionalCheckFailed), BatchGetItem, GetItem, PutItem, UpdateItem (SET/ADD,
the counters' forms), BatchWriteItem, DescribeTable. Query is not served (ingest does not
query; the read side is not what this front measures).

What a throttle looks like, as DynamoDB answers an on-demand table (the real client's retry
code runs on it):
- single-item operations and ExecuteStatement: HTTP 400 `ThrottlingException` with the
  on-demand message (a GSI's: "...for one or more global secondary indexes...") and
  `ThrottlingReasons` (`TableWriteKeyRangeThroughputExceeded`, `IndexWrite...`);
- BatchExecuteStatement: a per-statement `ThrottlingError` in the 200 response;
- BatchGetItem / BatchWriteItem: the refused keys in `UnprocessedKeys` / `UnprocessedItems`,
  or, when every key is refused, the `ThrottlingException` (API_BatchGetItem,
  API_BatchWriteItem: "If none of the items can be processed due to insufficient provisioned
  throughput on all of the tables in the request, then BatchGetItem returns a
  ProvisionedThroughputExceededException"; on-demand tables answer ThrottlingException).

Run it in its own process (its CPU is not the measured client's):

    python -m load.front --port 0 --scale 100      # prints {"url": ...}
    with FrontProcess(scale=100) as front: ...

Control endpoints: `GET /_front/stats`, `GET /_front/rows` (every file row, plain values, and
when each version landed), `POST /_front/reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from botocore.exceptions import ClientError

from load.sink_state import IndexElement, item_bytes, table_indexes
from load.throughput import READ, TABLE, WRITE, Charge, Limits, Meter, read_units, write_units
from pipeline.core.model import PARTITION_KEY, SEQ
from tests.support import partiql
from tests.support.faults import update_item as apply_update

TARGET_PREFIX = "DynamoDB_20120810."
JSON_TYPE = "application/x-amz-json-1.0"
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
TABLE_MESSAGE = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is "
    "automatically scaling your table or index so please try again shortly. If exceptions "
    "persist, check if you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
INDEX_MESSAGE = (
    "Throughput exceeds the current capacity for one or more global secondary indexes. "
    "DynamoDB is automatically scaling your index so please try again shortly."
)


class FrontError(Exception):
    """A DynamoDB error response."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def _reason(kind: str, element: str) -> str:
    resource = "Table" if element == TABLE else "Index"
    return f"{resource}{'Write' if kind == WRITE else 'Read'}KeyRangeThroughputExceeded"


def throttling(kind: str, refused: tuple[str, str], table: str) -> FrontError:
    """The on-demand throttle error for a refusal by `refused` = (element, key value)."""
    element, _ = refused
    arn = f"arn:aws:dynamodb:local:000000000000:table/{table}"
    if element != TABLE:
        arn += f"/index/{element}"
    return FrontError(
        "ThrottlingException",
        TABLE_MESSAGE if element == TABLE else INDEX_MESSAGE,
        ThrottlingReasons=[{"reason": _reason(kind, element), "resource": arn}],
    )


def index_charges(
    index: IndexElement, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[tuple[str, str], float]:
    """Units a table write from `old` to `new` costs in `index`, per index key value
    (GSI.html#GSI.Writes): an entry put, deleted or updated in place; a key change is a
    delete under the old key value plus a put under the new one."""
    before, after = index.entry(old), index.entry(new)
    charges: dict[tuple[str, str], float] = defaultdict(float)

    def key(entry: dict[str, Any]) -> str:
        ((_, value),) = entry[index.keys[0]].items()
        return str(value)

    def kb(entry: dict[str, Any]) -> int:
        return write_units(0, item_bytes(entry))

    same_keys = (
        before is not None
        and after is not None
        and all(before[name] == after[name] for name in index.keys)
    )
    if before is not None and after is not None and same_keys:
        charges[(index.name, key(after))] += max(kb(before), kb(after))
        return charges
    if before is not None:
        charges[(index.name, key(before))] += kb(before)
    if after is not None:
        charges[(index.name, key(after))] += kb(after)
    return charges


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> partiql.Statement:
    return partiql.parse(text)


@dataclass
class FrontState:
    """The table, its indexes, the rules' meter and the counters."""

    meter: Meter
    indexes: tuple[IndexElement, ...] = field(default_factory=table_indexes)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    landed: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """File row key -> (epoch seconds, seq) of each version written."""
    calls: dict[str, int] = field(default_factory=dict)
    timeline: dict[int, dict[str, float]] = field(default_factory=dict)
    """Epoch second -> write units consumed, throttles."""
    started: float = field(default_factory=time.time)

    def tick(self, name: str, amount: float = 1.0) -> None:
        second = int(time.time())
        row = self.timeline.setdefault(second, {})
        row[name] = row.get(name, 0.0) + amount

    def write_charge(
        self, key: str, old: dict[str, Any] | None, new: dict[str, Any] | None, applies: bool
    ) -> Charge:
        """Units of a write of `key` from `old` to `new` (`applies`: the condition held)."""
        sizes = (item_bytes(old or {}), item_bytes(new or {}) if applies else 0)
        units: dict[tuple[str, str], float] = {(TABLE, key): float(write_units(*sizes))}
        if applies:
            for index in self.indexes:
                for target, value in index_charges(index, old, new).items():
                    units[target] = units.get(target, 0.0) + value
        return Charge(WRITE, units)

    def read_charge(self, key: str, consistent: bool) -> Charge:
        size = item_bytes(self.items.get(key) or {})
        return Charge(READ, {(TABLE, key): read_units(size, consistent)})

    def admit(self, charge: Charge) -> tuple[str, str] | None:
        refused = self.meter.admit(charge)
        if refused is None:
            self.tick(f"{charge.kind}_units", sum(charge.units.values()))
        else:
            self.tick(f"throttled_{refused[0]}")
        return refused

    def store(self, key: str, item: dict[str, Any] | None) -> None:
        if item is None:
            self.items.pop(key, None)
            return
        self.items[key] = item
        if not key.startswith("#"):
            seq = item.get(SEQ, {}).get("S", "")
            self.landed.setdefault(key, []).append((time.time(), seq))


def _key_of(item: dict[str, Any]) -> str:
    value = item.get(PARTITION_KEY)
    if not isinstance(value, dict) or not isinstance(value.get("S"), str):
        raise FrontError("ValidationException", "One of the required keys was not given a value")
    return str(value["S"])


def _project(item: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    expression = spec.get("ProjectionExpression")
    if not expression:
        return item
    names = spec.get("ExpressionAttributeNames") or {}
    wanted = [names.get(part.strip(), part.strip()) for part in expression.split(",")]
    return {name: item[name] for name in wanted if name in item}


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
        names = [_key_of(key) for key in keys]
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
        key = _key_of(request["Key"])
        if refused := self.state.admit(
            self.state.read_charge(key, bool(request.get("ConsistentRead")))
        ):
            raise throttling(READ, refused, request["TableName"])
        item = self.state.items.get(key)
        return {} if item is None else {"Item": _project(item, request)}

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("ConditionExpression"):
            raise FrontError("ValidationException", "conditional PutItem is not served")
        key = _key_of(request["Item"])
        current = self.state.items.get(key)
        if refused := self.state.admit(
            self.state.write_charge(key, current, request["Item"], True)
        ):
            raise throttling(WRITE, refused, request["TableName"])
        self.state.store(key, request["Item"])
        return {}

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        key = _key_of(request["Key"])
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
            _key_of(w["PutRequest"]["Item"] if "PutRequest" in w else w["DeleteRequest"]["Key"])
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


OPERATIONS = {
    "BatchExecuteStatement": Front.batch_execute_statement,
    "ExecuteStatement": Front.execute_statement,
    "BatchGetItem": Front.batch_get_item,
    "GetItem": Front.get_item,
    "PutItem": Front.put_item,
    "UpdateItem": Front.update_item,
    "BatchWriteItem": Front.batch_write_item,
    "DescribeTable": Front.describe_table,
}


def stats(state: FrontState) -> dict[str, Any]:
    """Units billed, throttles by (kind, element, key value), calls, the per-second timeline."""
    throttled = [
        {"kind": kind, "element": element, "key": key, "count": count}
        for (kind, element, key), count in sorted(
            state.meter.throttled.items(), key=lambda e: -e[1]
        )
    ]
    return {
        "scale": state.meter.limits.scale,
        "consumed": state.meter.consumed,
        "throttled": throttled,
        "calls": state.calls,
        "items": len(state.items),
        "timeline": {str(k): v for k, v in sorted(state.timeline.items())},
        "cpu_s": time.process_time(),
    }


def rows(state: FrontState) -> dict[str, Any]:
    """Every file row (attribute-value JSON) and when each of its versions landed."""
    files = {k: v for k, v in state.items.items() if not k.startswith("#")}
    system = {k: v for k, v in state.items.items() if k.startswith("#")}
    return {"rows": files, "system": system, "landed": state.landed}


def make_app(state: FrontState) -> web.Application:
    """The aiohttp application: the DynamoDB protocol and the control endpoints."""
    front = Front(state)

    async def dynamodb(request: web.Request) -> web.Response:
        name = request.headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
        operation = OPERATIONS.get(name)
        state.calls[name] = state.calls.get(name, 0) + 1
        try:
            if operation is None:
                raise FrontError("UnknownOperationException", f"unsupported operation {name!r}")
            body = operation(front, json.loads(await request.read()))
            return web.Response(body=json.dumps(body).encode(), content_type=JSON_TYPE)
        except FrontError as error:
            payload = {"__type": ERROR_PREFIX + error.code, "message": error.message, **error.extra}
            return web.Response(
                body=json.dumps(payload).encode(), status=400, content_type=JSON_TYPE
            )

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(stats(state))

    async def get_rows(_: web.Request) -> web.Response:
        return web.json_response(rows(state))

    async def seed(request: web.Request) -> web.Response:
        """Items stored as they are, unmetered: a table's state before a run."""
        for item in await request.json():
            state.items[_key_of(item)] = item
        return web.json_response({"items": len(state.items)})

    async def reset(_: web.Request) -> web.Response:
        state.items.clear()
        state.landed.clear()
        state.calls.clear()
        state.timeline.clear()
        state.meter = Meter(state.meter.limits)
        return web.json_response(stats(state))

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/", dynamodb)
    app.router.add_get("/_front/stats", get_stats)
    app.router.add_get("/_front/rows", get_rows)
    app.router.add_post("/_front/reset", reset)
    app.router.add_post("/_front/seed", seed)
    return app


async def serve(port: int, state: FrontState) -> None:
    """Serve on 127.0.0.1 until cancelled; print the URL as one JSON line once listening."""
    runner = web.AppRunner(make_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    server: Any = site._server
    bound = server.sockets[0].getsockname()[1] if server is not None else port
    print(json.dumps({"url": f"http://127.0.0.1:{bound}"}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class FrontProcess:
    """The front in a child process; a context manager with the control calls."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> FrontProcess:
        limits = self.limits
        command = [
            sys.executable,
            "-m",
            "load.front",
            "--port",
            "0",
            "--scale",
            str(limits.scale),
            "--burst-s",
            str(limits.burst_s),
            "--key-wcu",
            str(limits.key_wcu),
            "--key-rcu",
            str(limits.key_rcu),
            "--table-wru",
            str(limits.table_wru),
            "--table-rru",
            str(limits.table_rru),
        ]
        for prefix in limits.per_invocation:
            command += ["--per-invocation", prefix]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the capacity front did not start")
        self.url = json.loads(line)["url"]
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

    def seed(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Store `items` (attribute-value JSON) unmetered."""
        return self._call("POST", "/_front/seed", json.dumps(items).encode())

    def _call(self, method: str, path: str, data: bytes | None = None) -> dict[str, Any]:
        if method == "POST" and data is None:
            data = b"{}"
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def stats(self) -> dict[str, Any]:
        """Units, throttles, calls, timeline (`stats`)."""
        return self._call("GET", "/_front/stats")

    def rows(self) -> dict[str, Any]:
        """File rows, system items and landing times (`rows`)."""
        return self._call("GET", "/_front/rows")

    def reset(self) -> dict[str, Any]:
        """Forget every item, bucket and counter."""
        return self._call("POST", "/_front/reset")


def main(argv: list[str] | None = None) -> None:
    """`python -m load.front`: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m load.front", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="N of the 1:N model")
    parser.add_argument("--burst-s", type=float, default=1.0)
    parser.add_argument("--key-wcu", type=float, default=1000.0)
    parser.add_argument("--key-rcu", type=float, default=3000.0)
    parser.add_argument("--table-wru", type=float, default=40000.0)
    parser.add_argument("--table-rru", type=float, default=40000.0)
    parser.add_argument("--per-invocation", action="append", default=[])
    args = parser.parse_args(argv)
    limits = Limits(
        scale=args.scale,
        key_wcu=args.key_wcu,
        key_rcu=args.key_rcu,
        table_wru=args.table_wru,
        table_rru=args.table_rru,
        burst_s=args.burst_s,
        per_invocation=tuple(args.per_invocation),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, FrontState(Meter(limits))))


if __name__ == "__main__":
    main()
