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
import subprocess
import sys
import urllib.request
from typing import Any

from aiohttp import web

from load.report import serve_app
from load.sink_ops import Sink
from load.sink_state import JSON_TYPE, TARGET_PREFIX, SinkError, SinkState

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
    await serve_app(make_app(state), host, port)


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
