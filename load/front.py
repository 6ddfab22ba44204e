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
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiohttp import web

from load.front_ops import Front
from load.front_state import ERROR_PREFIX, JSON_TYPE, TARGET_PREFIX, FrontError, FrontState, key_of
from load.report import serve_app
from load.throughput import Limits, Meter

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
            state.items[key_of(item)] = item
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
    await serve_app(make_app(state), "127.0.0.1", port)


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
