"""Writer benchmark: the ingest path alone, against a DynamoDB sink with a set round-trip latency.

Side by side, at each latency, on Lambda-shaped SQS events (one S3 PUT record per message,
distinct keys, sequencers):

  (a) put_item      the original design: one boto3 PutItem per record, sequential (a sample)
  (b) batch_writer  boto3 `Table.batch_writer()`: sequential 25-item BatchWriteItem
  (c) powertools    Powertools `BatchProcessor` (SQS), one boto3 PutItem per record (a sample)
  (d) ingest        this project's `handlers.ingest.lambda_handler`, warm, default write mode
                    (conditional: BatchGetItem of 100 + PartiQL BatchExecuteStatement of 25)
  (d-) ingest, version reads skipped: how much of (d) the BatchGetItem reads cost
  (e) ingest_batch  the handler with INGEST_WRITE_MODE=batch (BatchGetItem + unconditional
                    BatchWriteItem: not race-free)
  (f) cond_put      conditional PutItem per record (`attribute_not_exists OR seq < :seq`),
                    `--concurrency` requests in flight on one aiobotocore client
  (g) transact      TransactWriteItems of 100 conditional Puts, `--concurrency` in flight

Every run also reports the request units the sink billed (WRU, RRU per record) and what a
million records cost: on-demand request prices plus Lambda GB-seconds at the template's
ingest memory size and requests at its batch size. Write units are counted per design element
(`load.sink`: the base table, each index of the schema: `by_name`, the change feed's
`by_change`; further elements add their own entry there), and the $ per million counts them
all. Once, at 0 ms, the design's write units per event are measured by kind of change
(create, overwrite, delete of the same keys) with and without the change feed
(`feed_costs`).

and, once, the CPU floor: aiobotocore building and sending the BatchWriteItem requests (d)
writes (25 items each) with no latency and no concurrency limit, measured as client CPU time.

The sink runs in its own process (`load.sink`); the client's CPU is `time.process_time()` of
this process, the sink's is reported separately. Peak RSS of one invocation is measured in a
fresh process (`load.rss_probe`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from rich.table import Table

import pipeline.adapters.runtime
from load import totals_cost
from load.events import sqs_event
from load.report import (
    Stopwatch,
    add_output_arguments,
    console,
    finish,
    fmt,
    machine,
    progress,
    target,
    targets_table,
)
from load.sink import SinkProcess
from pipeline.ingest.events import parse_body

TABLE = "bench-files"
REGION = "ap-south-1"
TOMBSTONE_TTL_S = 15 * 86_400
DEFAULT_CONCURRENCY = 32
LABELS = {
    "put_item": "(a) PutItem per record",
    "batch_writer": "(b) boto3 batch_writer",
    "powertools": "(c) Powertools BatchProcessor + PutItem",
    "ingest": "(d) ingest, conditional (default)",
    "ingest_no_reads": "(d-) ingest, version reads skipped",
    "ingest_no_feed": "(d0) ingest without the change feed",
    "ingest_batch": "(e) ingest, INGEST_WRITE_MODE=batch",
    "cond_put": "(f) conditional PutItem per record",
    "transact": "(g) TransactWriteItems of 100",
    "floor": "CPU floor: SDK builds+sends BatchWriteItem",
}
VARIANTS = tuple(name for name in LABELS if name != "floor")
"""Every measured way of writing, in the order of the tables and the plot."""
MODES_TABLE = [
    "put_item",
    "batch_writer",
    "powertools",
    "ingest",
    "ingest_no_feed",
    "ingest_batch",
    "cond_put",
    "transact",
]
TARGET_LATENCY_MS = 10.0
MIN_RECORDS = 2_000
"""Below this many records per event the throughput ratios measure start-up, not ingest."""
RSS_LIMIT_MB = 128.0
# On-demand prices (us-east-1) and Lambda's (x86), per unit
PRICE_WRU = 0.625 / 1e6
PRICE_RRU = 0.125 / 1e6
PRICE_GB_S = 0.0000166667
PRICE_REQUEST = 0.20 / 1e6


def template_defaults() -> dict[str, int]:
    """The ingest function's memory size and SQS batch size as deployed by default."""
    from pipeline.local.template import load_template

    parameters = load_template()["Parameters"]
    return {
        "memory_mb": int(parameters["IngestMemorySize"]["Default"]),
        "batch_size": int(parameters["IngestBatchSize"]["Default"]),
    }


def costs(result: dict[str, Any], deployed: dict[str, int]) -> dict[str, float]:
    """Dollars per million records: DynamoDB request units (every design element's write
    units: table and indexes), Lambda duration and requests."""
    records = result["records"]
    wru = sum((result.get("units") or {"table": result["wru"]}).values())
    dynamodb = (wru * PRICE_WRU + result["rru"] * PRICE_RRU) / records * 1e6
    gb_s = result["wall_s"] / records * 1e6 * deployed["memory_mb"] / 1024
    lambda_cost = gb_s * PRICE_GB_S + 1e6 / deployed["batch_size"] * PRICE_REQUEST
    return {
        "usd_per_m_dynamodb": dynamodb,
        "usd_per_m_lambda": lambda_cost,
        "usd_per_m_total": dynamodb + lambda_cost,
    }


def handler_environment(
    sink_url: str, concurrency: int, mode: str = "conditional", totals: bool = True
) -> dict[str, str | None]:
    """The function environment of the ingest handler, pointed at the sink."""
    return {
        "TABLE_NAME": TABLE,
        "AWS_ENDPOINT_URL": sink_url,
        "AWS_ENDPOINT_URL_DYNAMODB": None,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "POWERTOOLS_SERVICE_NAME": "ingest",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "INGEST_WRITE_CONCURRENCY": str(concurrency),
        "INGEST_WRITE_MODE": mode,
        "FOLDER_TOTALS": "on" if totals else "off",
    }


def _rows(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    now = time.time()
    for record in event["Records"]:
        for file_event in parse_body(record["body"]).events:
            yield file_event.row(now=now, tombstone_ttl_s=TOMBSTONE_TTL_S)


def _boto3_client(sink_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=sink_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


class Baselines:
    """The designs (d) is compared with, each a handler of the same SQS event."""

    def __init__(self, sink_url: str) -> None:
        from pipeline.adapters.dynamo.writer import to_item

        self._to_item = to_item
        self.client = _boto3_client(sink_url)
        resource = boto3.resource(
            "dynamodb",
            region_name=REGION,
            endpoint_url=sink_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        self.table = resource.Table(TABLE)

    def put_item(self, event: dict[str, Any], _: Any = None) -> None:
        """(a) One PutItem per record, in order."""
        for row in _rows(event):
            self.client.put_item(TableName=TABLE, Item=self._to_item(row))

    def batch_writer(self, event: dict[str, Any], _: Any = None) -> None:
        """(b) boto3's batch_writer: buffers 25, sends sequentially, resends unprocessed."""
        with self.table.batch_writer(overwrite_by_pkeys=["pk"]) as batch:
            for row in _rows(event):
                batch.put_item(Item=row)

    def powertools(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """(c) Powertools BatchProcessor, one PutItem per record, partial failures."""
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )
        from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

        now = time.time()

        def record_handler(record: SQSRecord) -> None:
            for file_event in parse_body(record.body).events:
                row = file_event.row(now=now, tombstone_ttl_s=TOMBSTONE_TTL_S)
                self.client.put_item(TableName=TABLE, Item=self._to_item(row))

        processor = BatchProcessor(event_type=EventType.SQS)
        response = dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )
        if response.get("batchItemFailures"):
            raise RuntimeError(f"powertools baseline failed: {response}")
        return response


class IngestHandler:
    """`handlers.ingest`, cold-started in this process against the sink."""

    def __init__(
        self, sink_url: str, concurrency: int, mode: str = "conditional", totals: bool = True
    ) -> None:
        from pipeline.local.lambda_runtime import cold_start, patched_environ

        self._env = patched_environ(handler_environment(sink_url, concurrency, mode, totals))
        self._env.__enter__()
        self.handler, self.module = cold_start("handlers.ingest.lambda_handler", {})
        self.concurrency = concurrency

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        from pipeline.local.lambda_runtime import LambdaContext

        context = LambdaContext(function_name="ingest", timeout_s=60, region=REGION)
        with contextlib.redirect_stdout(io.StringIO()):  # the EMF metrics line
            response: dict[str, Any] = self.handler(event, context)
        if response.get("batchItemFailures"):
            raise RuntimeError(f"ingest reported {len(response['batchItemFailures'])} failures")
        return response

    def close(self) -> None:
        from pipeline.local.lambda_runtime import close_thread_resources

        close_thread_resources(self.module)
        self._env.__exit__(None, None, None)


class PerRecordWriters:
    """(f) and (g): conditional requests per record / per 100 records, many in flight, on one
    long-lived aiobotocore client with the ingest client's configuration (validation off).

    Cost candidates only: they order by `seq` alone (no eventTime fallback, no legacy rows)
    and, for (g), a cancelled transaction would need re-splitting (keys here are fresh)."""

    CONDITION = "attribute_not_exists(#k) OR #q < :q"

    def __init__(self, sink_url: str, concurrency: int) -> None:
        from pipeline.adapters.runtime import LoopRuntime

        self.sink_url, self.concurrency = sink_url, concurrency
        self.runtime: Any = LoopRuntime(self._open)

    async def _open(self, stack: contextlib.AsyncExitStack) -> Any:
        return await stack.enter_async_context(
            aioboto3.Session().client(
                "dynamodb",
                region_name=REGION,
                endpoint_url=self.sink_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=pipeline.adapters.runtime.client_config(self.concurrency + 4),
            )
        )

    def _put(self, row: dict[str, Any]) -> dict[str, Any]:
        from pipeline.adapters.dynamo.writer import to_item

        return {
            "TableName": TABLE,
            "Item": to_item(row),
            "ConditionExpression": self.CONDITION,
            "ExpressionAttributeNames": {"#k": "pk", "#q": "seq"},
            "ExpressionAttributeValues": {":q": {"S": row["seq"]}},
        }

    def cond_put(self, event: dict[str, Any]) -> None:
        """(f) One conditional PutItem per record; a failed condition = stale, skipped."""

        async def work(client: Any) -> None:
            slots = asyncio.Semaphore(self.concurrency)

            async def one(row: dict[str, Any]) -> None:
                async with slots:
                    try:
                        await client.put_item(**self._put(row))
                    except ClientError as error:
                        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise

            await asyncio.gather(*(one(row) for row in _rows(event)))

        self.runtime.run(work)

    def transact(self, event: dict[str, Any]) -> None:
        """(g) TransactWriteItems of up to 100 conditional Puts (2 WRU per write)."""

        async def work(client: Any) -> None:
            slots = asyncio.Semaphore(self.concurrency)
            rows = list(_rows(event))

            async def one(chunk: list[dict[str, Any]]) -> None:
                async with slots:
                    await client.transact_write_items(
                        TransactItems=[{"Put": self._put(row)} for row in chunk]
                    )

            await asyncio.gather(*(one(rows[i : i + 100]) for i in range(0, len(rows), 100)))

        self.runtime.run(work)

    def close(self) -> None:
        self.runtime.close()


@contextlib.contextmanager
def version_reads_skipped() -> Iterator[None]:
    """Make `DynamoFileStore.read_versions` find nothing without calling DynamoDB."""
    from pipeline.adapters.dynamo.writer import DynamoFileStore

    original = DynamoFileStore.read_versions

    async def nothing_stored(self: Any, keys: Any, deadline: Any, stats: Any) -> dict[str, Any]:
        return {}

    DynamoFileStore.read_versions = nothing_stored  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoFileStore.read_versions = original  # type: ignore[method-assign]


@contextlib.contextmanager
def sdk_parameter_validation(enabled: bool) -> Iterator[None]:
    """What-if: the ingest client with botocore's client-side parameter validation back on.

    The shipped ingest client has it off (`pipeline.adapters.runtime.client_config`)."""
    if not enabled:
        yield
        return
    original = pipeline.adapters.runtime.client_config

    def with_validation(max_pool_connections: int) -> Config:
        return original(max_pool_connections).merge(Config(parameter_validation=True))

    pipeline.adapters.runtime.client_config = with_validation
    try:
        yield
    finally:
        pipeline.adapters.runtime.client_config = original


async def _send_all(
    sink_url: str, chunks: list[list[dict[str, Any]]], *, sdk_defaults: bool
) -> tuple[float, float]:
    """Send every chunk at once (one client, pool as large as the request count).

    `sdk_defaults`: the SDK as anyone gets it (parameter validation on); otherwise the ingest
    client's own configuration (`pipeline.adapters.runtime.client_config`)."""
    pool = max(10, len(chunks))
    config = (
        Config(max_pool_connections=pool, retries={"max_attempts": 1})
        if sdk_defaults
        else pipeline.adapters.runtime.client_config(pool)
    )
    session = aioboto3.Session()
    async with session.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=sink_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    ) as client:
        await client.batch_write_item(RequestItems={TABLE: chunks[0]})  # warm: connect, load model
        with Stopwatch() as watch:
            responses = await asyncio.gather(
                *(client.batch_write_item(RequestItems={TABLE: chunk}) for chunk in chunks)
            )
        if any(r.get("UnprocessedItems") for r in responses):
            raise RuntimeError("the floor needs a sink without injected UnprocessedItems")
        return watch.wall_s, watch.cpu_s


def cpu_floor(
    sink_url: str, event: dict[str, Any], *, sdk_defaults: bool = True
) -> tuple[float, float]:
    """(wall s, client CPU s) to build and send (d)'s BatchWriteItem requests, no limits."""
    from pipeline.adapters.dynamo.writer import WRITE_CHUNK, to_item

    requests = [{"PutRequest": {"Item": to_item(row)}} for row in _rows(event)]
    chunks = [requests[i : i + WRITE_CHUNK] for i in range(0, len(requests), WRITE_CHUNK)]
    return asyncio.run(_send_all(sink_url, chunks, sdk_defaults=sdk_defaults))


def rss_probe(sink_url: str, records: int, concurrency: int) -> dict[str, Any]:
    """Peak RSS of one invocation of `records` records, in a fresh process."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "load.rss_probe",
            "--sink-url",
            sink_url,
            "--records",
            str(records),
            "--concurrency",
            str(concurrency),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


DEPLOYED = template_defaults()


def _units_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Write units per design element billed between two sink stats."""
    old, new = before.get("units") or {}, after.get("units") or {}
    return {k: new[k] - old.get(k, 0.0) for k in new if new[k] - old.get(k, 0.0)}


@contextlib.contextmanager
def feed_off() -> Iterator[None]:
    """Stores opened meanwhile write no change feed attributes: the design without the feed."""
    from pipeline.adapters.dynamo.writer import DynamoFileStore

    original = DynamoFileStore.__init__

    def without_feed(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["stamper"] = None
        original(self, *args, **kwargs)

    DynamoFileStore.__init__ = without_feed  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoFileStore.__init__ = original  # type: ignore[method-assign]


CHANGE_KINDS = ("create", "overwrite", "delete")
MIXES = {
    "uploads (creates only)": {"create": 1.0},
    "churn (1/3 each)": {kind: 1 / 3 for kind in CHANGE_KINDS},
}
"""Mixes of changes the per-event cost is averaged over."""


def churn_events(records: int, run: str) -> list[tuple[str, dict[str, Any]]]:
    """Three events over the same keys: their creates, then overwrites, then deletes (each
    with a newer sequencer, as S3 sends them)."""
    create = sqs_event(records, run=run)
    events = [("create", create)]
    for step, kind in enumerate(("overwrite", "delete"), start=1):
        records_out = []
        for record in create["Records"]:
            body = json.loads(record["body"])
            s3 = body["Records"][0]["s3"]["object"]
            s3["sequencer"] = f"{int(s3['sequencer'], 16) + step * 0x1000000:018X}"
            if kind == "overwrite":
                s3["eTag"] = uuid.uuid4().hex
                s3["size"] += 1
            else:
                body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
                s3.pop("size")
                s3.pop("eTag")
            records_out.append({**record, "body": json.dumps(body)})
        events.append((kind, {"Records": records_out}))
    return events


def feed_costs(sink: SinkProcess, records: int) -> dict[str, Any]:
    """Write and read units per event, per design element, for each kind of change, with and
    without the change feed (at 0 ms: units do not depend on latency)."""
    out: dict[str, Any] = {"records": records}
    for design in ("with_feed", "without_feed"):
        switch = feed_off() if design == "without_feed" else contextlib.nullcontext()
        with switch:
            handler = IngestHandler(sink.url, DEFAULT_CONCURRENCY)
            try:
                sink.configure(latency_ms=0, unprocessed_rate=0)
                handler(sqs_event(10, run=f"warmup-{design}"))
                kinds: dict[str, Any] = {}
                for kind, event in churn_events(records, run=f"{design}-{uuid.uuid4().hex[:6]}"):
                    before = sink.stats()
                    handler(event)
                    after = sink.stats()
                    units = {k: v / records for k, v in _units_delta(before, after).items()}
                    rru = (after["rru"] - before["rru"]) / records
                    kinds[kind] = {"units": units, "wru": sum(units.values()), "rru": rru}
            finally:
                handler.close()
        out[design] = kinds
    for mix, weights in MIXES.items():
        row: dict[str, Any] = {}
        for design in ("with_feed", "without_feed"):
            wru = sum(out[design][k]["wru"] * w for k, w in weights.items())
            rru = sum(out[design][k]["rru"] * w for k, w in weights.items())
            row[design] = {
                "wru": wru,
                "rru": rru,
                "usd_per_m": (wru * PRICE_WRU + rru * PRICE_RRU) * 1e6,
            }
        row["feed_added_wru"] = row["with_feed"]["wru"] - row["without_feed"]["wru"]
        out.setdefault("mixes", {})[mix] = row
    return out


def feed_costs_table(costs_doc: dict[str, Any]) -> Table:
    """Write units per event by design element and kind of change, with and without the feed."""
    elements = sorted(
        {
            e
            for d in ("with_feed", "without_feed")
            for k in costs_doc[d].values()
            for e in k["units"]
        },
        key=lambda e: (e != "table", e),
    )
    table = Table(
        title=f"Units per event by design element ({costs_doc['records']:,} keys per kind; "
        "on-demand $ per million events, DynamoDB requests only)"
    )
    for column in ("design", "change", *elements, "WRU total", "RRU", "$ / M events"):
        table.add_column(column, justify="left" if column in ("design", "change") else "right")
    for design in ("with_feed", "without_feed"):
        for kind in CHANGE_KINDS:
            r = costs_doc[design][kind]
            usd = (r["wru"] * PRICE_WRU + r["rru"] * PRICE_RRU) * 1e6
            table.add_row(
                design.replace("_", " "),
                kind,
                *(fmt(r["units"].get(e, 0.0), 2) for e in elements),
                fmt(r["wru"], 2),
                fmt(r["rru"], 2),
                fmt(usd, 3),
            )
    for mix, row in costs_doc["mixes"].items():
        for design in ("with_feed", "without_feed"):
            table.add_row(
                design.replace("_", " "),
                mix,
                *("" for _ in elements),
                fmt(row[design]["wru"], 2),
                fmt(row[design]["rru"], 2),
                fmt(row[design]["usd_per_m"], 3),
            )
    return table


def _measure(
    sink: SinkProcess,
    variant: str,
    latency_ms: float,
    records: int,
    call: Callable[[dict[str, Any]], Any],
    repeat: int,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """Run `call` on fresh events `repeat` times; the median run by wall time."""
    runs = []
    for _ in range(repeat):
        event = sqs_event(records, run=uuid.uuid4().hex[:8])
        sink.reset()
        before = sink.stats()
        with Stopwatch() as watch:
            call(event)
        after = sink.stats()
        runs.append(
            {
                "wall_s": watch.wall_s,
                "cpu_s": watch.cpu_s,
                "sink_cpu_s": after["cpu_s"] - before["cpu_s"],
                "stored": after["items"],
                "calls": after["calls"],
                "unprocessed_returned": after["unprocessed_returned"],
                "max_in_flight": after["max_in_flight"],
                "wru": after["wru"] - before["wru"],
                "units": _units_delta(before, after),
                "rru": after["rru"] - before["rru"],
                "condition_failures": after["condition_failures"],
                "counter_updates": after.get("counter_updates", 0)
                - before.get("counter_updates", 0),
            }
        )
    best = sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]
    return {
        "variant": variant,
        "label": LABELS[variant],
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "records": records,
        "repeat": repeat,
        **best,
        "records_per_s": records / best["wall_s"],
        "cpu_us_per_record": best["cpu_s"] / records * 1e6,
        "wru_per_record": best["wru"] / records,
        "units_per_record": {k: v / records for k, v in best["units"].items()},
        "wru_all_per_record": sum(best["units"].values()) / records,
        "rru_per_record": best["rru"] / records,
        **costs({**best, "records": records}, DEPLOYED),
        "complete": all(run["stored"] == records for run in runs),
        "wall_s_all": [round(run["wall_s"], 4) for run in runs],
    }


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print the tables, write JSON and the plot."""
    latencies = [float(x) for x in args.latencies.split(",")]
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    sample = min(args.sample, args.records)
    results: list[dict[str, Any]] = []
    steps = len(latencies) * (3 + 2 + 2 + 2 * len(concurrencies)) + 3
    with (
        SinkProcess(unprocessed_rate=args.unprocessed_rate) as sink,
        sdk_parameter_validation(args.param_validation == "on"),
        progress() as bar,
    ):
        task = bar.add_task("writer benchmark", total=steps)
        sink.configure(latency_ms=0, unprocessed_rate=0)
        floors = []
        for _ in range(args.repeat):
            sink.reset()
            floors.append(cpu_floor(sink.url, sqs_event(args.records, run="floor")))
        wall, cpu = sorted(floors, key=lambda f: f[1])[len(floors) // 2]
        same_config = []
        for _ in range(args.repeat):
            sink.reset()
            event = sqs_event(args.records, run="floor")
            same_config.append(cpu_floor(sink.url, event, sdk_defaults=False))
        _, cpu_same = sorted(same_config, key=lambda f: f[1])[len(same_config) // 2]
        floor = {
            "variant": "floor",
            "label": LABELS["floor"],
            "latency_ms": 0.0,
            "records": args.records,
            "wall_s": wall,
            "cpu_s": cpu,
            "records_per_s": args.records / cpu,
            "records_per_s_wall": args.records / wall,
            "requests": -(-args.records // 25),
            "cpu_s_ingest_client_config": cpu_same,
            "records_per_s_ingest_client_config": args.records / cpu_same,
        }
        bar.advance(task)
        rss = rss_probe(sink.url, args.records, DEFAULT_CONCURRENCY) if not args.no_rss else {}
        bar.advance(task)
        baselines = Baselines(sink.url)
        for concurrency in concurrencies:
            for mode, variants, design in (
                ("conditional", ("ingest", "ingest_no_reads"), contextlib.nullcontext),
                ("conditional", ("ingest_no_feed",), feed_off),
                ("batch", ("ingest_batch",), contextlib.nullcontext),
            ):
                if variants[0] != "ingest" and concurrency != _chosen(concurrencies):
                    continue  # the other designs are measured at the default concurrency only
                with design():  # the store is opened (with or without the feed) by the warmup
                    handler = IngestHandler(sink.url, concurrency, mode)
                    sink.configure(latency_ms=0, unprocessed_rate=0)
                    handler(sqs_event(100, run="warmup"))
                try:
                    for latency in latencies:
                        sink.configure(latency_ms=latency, unprocessed_rate=args.unprocessed_rate)
                        for variant in variants:
                            bar.update(
                                task, description=f"{variant} c={concurrency} {latency:g} ms"
                            )
                            skip = (
                                version_reads_skipped()
                                if variant == "ingest_no_reads"
                                else contextlib.nullcontext()
                            )
                            with skip:
                                results.append(
                                    _measure(
                                        sink,
                                        variant,
                                        latency,
                                        args.records,
                                        handler,
                                        args.repeat,
                                        concurrency,
                                    )
                                )
                            bar.advance(task)
                finally:
                    handler.close()
        writers = PerRecordWriters(sink.url, DEFAULT_CONCURRENCY)
        try:
            sink.configure(latency_ms=0, unprocessed_rate=0)
            writers.cond_put(sqs_event(50, run="warmup"))
            writers.transact(sqs_event(50, run="warmup2"))
            for latency in latencies:
                sink.configure(latency_ms=latency, unprocessed_rate=args.unprocessed_rate)
                for variant in ("cond_put", "transact"):
                    bar.update(task, description=f"{variant} {latency:g} ms")
                    results.append(
                        _measure(
                            sink,
                            variant,
                            latency,
                            args.records,
                            getattr(writers, variant),
                            1,
                            DEFAULT_CONCURRENCY,
                        )
                    )
                    bar.advance(task)
        finally:
            writers.close()
        for latency in latencies:
            sink.configure(latency_ms=latency, unprocessed_rate=args.unprocessed_rate)
            baselines.put_item(sqs_event(5, run="warmup"))  # connect, load the service models
            baselines.batch_writer(sqs_event(5, run="warmup"))
            for variant, count in (
                ("put_item", sample),
                ("batch_writer", args.records if not args.sample_b else sample),
                ("powertools", sample),
            ):
                bar.update(task, description=f"{variant} {latency:g} ms")
                results.append(
                    _measure(sink, variant, latency, count, getattr(baselines, variant), 1)
                )
                bar.advance(task)
        folder_totals = (
            totals_cost.measure(
                sink,
                lambda on: IngestHandler(sink.url, DEFAULT_CONCURRENCY, totals=on),
                costs,
                DEPLOYED,
                min(args.records, DEPLOYED["batch_size"]),
                args.repeat,
            )
            if not args.no_totals_cost
            else []
        )
        bar.update(task, description="units per event, with and without the feed")
        unit_costs = feed_costs(sink, min(args.records, 2_000))
        bar.advance(task)
        sink.configure(latency_ms=0)
        sink_stats = sink.stats()
    document = {
        "benchmark": "writer",
        "machine": machine(),
        "settings": {
            "records": args.records,
            "sample": sample,
            "latencies_ms": latencies,
            "concurrency": concurrencies,
            "unprocessed_rate": args.unprocessed_rate,
            "repeat": args.repeat,
            "sdk_parameter_validation": args.param_validation,
            "sink": "load.sink in its own process; client CPU = this process's process_time()",
        },
        "deployed": DEPLOYED,
        "floor": floor,
        "rss": rss,
        "results": results,
        "folder_totals": folder_totals,
        "feed_costs": unit_costs,
        "sink_cpu_total_s": sink_stats["cpu_s"],
    }
    document["targets"] = evaluate(document)
    return finish(args, document, summary=print_summary, draw=plot)


def _chosen(concurrencies: list[int]) -> int:
    return DEFAULT_CONCURRENCY if DEFAULT_CONCURRENCY in concurrencies else concurrencies[0]


def _pick(document: dict[str, Any], variant: str, latency: float) -> dict[str, Any] | None:
    chosen = _chosen(document["settings"]["concurrency"])
    for result in document["results"]:
        if result["variant"] != variant or result["latency_ms"] != latency:
            continue
        if result.get("concurrency") in (None, chosen):
            return result
    return None


def evaluate(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets: measured value, goal, met or by how much missed."""
    targets: list[dict[str, Any]] = []
    latency = TARGET_LATENCY_MS
    d, a, b = (_pick(document, v, latency) for v in ("ingest", "put_item", "batch_writer"))
    floor = document["floor"]
    small: dict[str, Any] = {
        "size": document["settings"]["records"],
        "min_size": MIN_RECORDS,
        "unit": "records",
    }
    if d and a:
        ratio = d["records_per_s"] / a["records_per_s"]
        targets.append(target(f"(d)/(a) at {latency:g} ms", ratio, ">=", 100, **small))
    if d and b:
        ratio = d["records_per_s"] / b["records_per_s"]
        targets.append(target(f"(d)/(b) at {latency:g} ms", ratio, ">=", 5, **small))
    if d:
        ratio = d["wall_s"] / floor["cpu_s"] * floor["records"] / d["records"]
        targets.append(target(f"(d) time / CPU floor at {latency:g} ms", ratio, "<=", 1.5, **small))
    ingest = [r for r in document["results"] if r["variant"] == "ingest"]
    if ingest:  # units do not depend on latency: the worst run counts
        # the rows' units; folder counters (1 WRU per counter update) are counted apart
        wru = max((r["wru"] - r.get("counter_updates", 0)) / r["records"] for r in ingest)
        rru = max(r["rru_per_record"] for r in ingest)
        targets.append(target("(d) table WRU per record (indexes apart)", wru, "<=", 1))
        targets.append(target("(d) RRU per record", rru, "<=", 1))
    targets.extend(totals_cost.targets(document.get("folder_totals") or []))
    for mix, row in (document.get("feed_costs") or {}).get("mixes", {}).items():
        targets.append(
            target(
                f"change feed: write units added per event, {mix}", row["feed_added_wru"], "<=", 1
            )
        )
    rss = document.get("rss") or {}
    if rss:
        targets.append(
            target("peak RSS of one invocation (MB)", rss["peak_mb"], "<=", RSS_LIMIT_MB)
        )
    return targets


def write_modes_table(document: dict[str, Any], latency: float) -> Table:
    """Each write mode at one latency: speed, client CPU, request units, dollars."""
    deployed = document.get("deployed", DEPLOYED)
    table = Table(
        title=f"Write modes at {latency:g} ms ({document['settings']['records']:,} records; "
        f"$ per million records: on-demand units + Lambda {deployed['memory_mb']} MB, "
        f"batch {deployed['batch_size']})"
    )
    for column in (
        "mode",
        "records/s",
        "x(a)",
        "x(b)",
        "CPU µs/rec",
        "WRU/rec",
        "+index WRU",
        "RRU/rec",
        "$ DynamoDB",
        "$ Lambda",
        "$ total",
        "race-free",
    ):
        table.add_column(column, justify="left" if column == "mode" else "right")
    a, b = _pick(document, "put_item", latency), _pick(document, "batch_writer", latency)
    race_free = {"ingest": "yes", "cond_put": "yes", "transact": "yes"}
    for variant in MODES_TABLE:
        r = _pick(document, variant, latency)
        if not r:
            continue
        table.add_row(
            LABELS[variant],
            fmt(r["records_per_s"]),
            fmt(r["records_per_s"] / a["records_per_s"], 1) if a else "-",
            fmt(r["records_per_s"] / b["records_per_s"], 1) if b else "-",
            fmt(r["cpu_us_per_record"]),
            fmt(r["wru_per_record"], 2),
            fmt(r.get("wru_all_per_record", r["wru_per_record"]) - r["wru_per_record"], 2),
            fmt(r["rru_per_record"], 2),
            fmt(r["usd_per_m_dynamodb"], 3),
            fmt(r["usd_per_m_lambda"], 3),
            fmt(r["usd_per_m_total"], 3),
            race_free.get(variant, "no"),
        )
    return table


def print_summary(document: dict[str, Any]) -> None:
    """Rates per variant and latency, ratios, the floor, RSS and the targets."""
    settings = document["settings"]
    table = Table(title=f"Writer benchmark: records/s ({settings['records']:,} records/event)")
    table.add_column("latency")
    variants = ["put_item", "batch_writer", "powertools", "ingest", "ingest_no_reads"]
    for variant in variants:
        table.add_column(LABELS[variant].split(" ", 1)[0] + " " + variant, justify="right")
    table.add_column("d/a", justify="right")
    table.add_column("d/b", justify="right")
    table.add_column("reads share of d", justify="right")
    for latency in settings["latencies_ms"]:
        picked = {v: _pick(document, v, latency) for v in variants}
        rates = {v: (r["records_per_s"] if r else None) for v, r in picked.items()}
        d, a, b = rates["ingest"], rates["put_item"], rates["batch_writer"]
        share = None
        if picked["ingest"] and picked["ingest_no_reads"]:
            share = 100 * (1 - picked["ingest_no_reads"]["wall_s"] / picked["ingest"]["wall_s"])
        table.add_row(
            f"{latency:g} ms",
            *(fmt(rates[v]) for v in variants),
            fmt(d / a if d and a else None, 1),
            fmt(d / b if d and b else None, 1),
            (fmt(share, 0) + " %") if share is not None else "-",
        )
    console.print(table)
    console.print(write_modes_table(document, TARGET_LATENCY_MS))
    floor = document["floor"]
    console.print(
        f"CPU floor: {floor['requests']} BatchWriteItem requests of 25 built and sent by "
        f"aiobotocore in {floor['cpu_s']:.3f} s client CPU ({fmt(floor['records_per_s'])} "
        f"records/s; wall {floor['wall_s']:.3f} s at 0 ms, no concurrency limit; SDK "
        f"defaults). With the ingest client's config (no parameter validation): "
        f"{floor.get('cpu_s_ingest_client_config', float('nan')):.3f} s CPU. "
        f"(a) and (c) measured on {settings['sample']:,}-record samples."
    )
    if len(settings["concurrency"]) > 1:
        sweep = Table(title="INGEST_WRITE_CONCURRENCY sweep: (d) records/s")
        sweep.add_column("latency")
        for c in settings["concurrency"]:
            sweep.add_column(f"c={c}", justify="right")
        for latency in settings["latencies_ms"]:
            cells = []
            for c in settings["concurrency"]:
                rate = next(
                    (
                        r["records_per_s"]
                        for r in document["results"]
                        if r["variant"] == "ingest"
                        and r["latency_ms"] == latency
                        and r["concurrency"] == c
                    ),
                    None,
                )
                cells.append(fmt(rate))
            sweep.add_row(f"{latency:g} ms", *cells)
        console.print(sweep)
    rss = document.get("rss") or {}
    if rss:
        console.print(
            f"Peak RSS, one invocation of {rss['records']:,} records (fresh process): "
            f"{rss['peak_mb']:.1f} MB; before the event was built {rss['baseline_mb']:.1f} MB, "
            f"with the event {rss['before_mb']:.1f} MB, invocation added {rss['delta_mb']:.1f} MB."
        )
    if document.get("folder_totals"):
        console.print(totals_cost.table(document["folder_totals"]))
    if document.get("feed_costs"):
        console.print(feed_costs_table(document["feed_costs"]))
    targets = targets_table(document["targets"])
    console.print(targets)


def plot(document: dict[str, Any], path: str) -> None:
    """records/s against latency per variant (log scale), the CPU floor as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latencies = document["settings"]["latencies_ms"]
    figure, axis = plt.subplots(figsize=(8, 5))
    styles = {
        "put_item": "o-",
        "batch_writer": "s-",
        "powertools": "x--",
        "ingest": "D-",
        "ingest_batch": "d:",
        "cond_put": "v-.",
        "transact": "P-.",
    }
    for variant in VARIANTS:
        points = [(x, _pick(document, variant, x)) for x in latencies]
        xs = [x for x, r in points if r]
        ys = [r["records_per_s"] for _, r in points if r]
        if xs:
            axis.plot(xs, ys, styles.get(variant, "^:"), label=LABELS[variant])
    axis.axhline(
        document["floor"]["records_per_s"], linestyle="--", color="grey", label="CPU floor"
    )
    axis.set_yscale("log")
    axis.set_xlabel("round-trip latency (ms)")
    axis.set_ylabel("records/s")
    axis.set_title(f"Ingest writer, {document['settings']['records']:,} records per event")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"plot: {path}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `writer` command's options."""
    parser.add_argument("--records", type=int, default=10_000, help="records per event")
    parser.add_argument("--latencies", default="0,5,10,25", help="sink round trips, ms")
    parser.add_argument(
        "--sample",
        type=int,
        default=500,
        help="records for (a) and (c), which send one request per record (default 500)",
    )
    parser.add_argument(
        "--sample-b", action="store_true", help="measure (b) on the sample too (faster)"
    )
    parser.add_argument(
        "--concurrency",
        default=str(DEFAULT_CONCURRENCY),
        help="INGEST_WRITE_CONCURRENCY values for (d), e.g. 8,16,32,64 (a sweep)",
    )
    parser.add_argument("--unprocessed-rate", type=float, default=0.0, help="e.g. 0.05")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (d) and the floor (median)")
    parser.add_argument(
        "--param-validation",
        choices=("on", "off"),
        default="off",
        help="what-if: botocore parameter validation of the ingest client (shipped: off)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS probe")
    parser.add_argument(
        "--no-totals-cost",
        action="store_true",
        help="skip the folder totals' cost (bulk and scattered workloads, totals off and on)",
    )
    add_output_arguments(parser, "writer")


def main(argv: list[str] | None = None) -> int:
    """`python -m load.writer`, the same as `python -m load writer`."""
    from load.cli import run_commands

    arguments = sys.argv[1:] if argv is None else argv
    return run_commands({"writer": sys.modules[__name__]}, ["writer", *arguments])


if __name__ == "__main__":
    sys.exit(main())
