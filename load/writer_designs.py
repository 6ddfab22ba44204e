"""The designs the writer benchmark compares, each a handler of the same SQS event, and the
probes around them (CPU floor, peak RSS, SDK parameter validation)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aioboto3
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import pipeline.adapters.runtime
from load.report import (
    Stopwatch,
)
from load.writer_config import REGION, TABLE, TOMBSTONE_TTL_S
from pipeline.ingest.events import parse_body


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
        from pipeline.adapters.dynamo.statements import to_item

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
        from pipeline.adapters.dynamo.statements import to_item

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
    from pipeline.adapters.dynamo.statements import to_item
    from pipeline.adapters.dynamo.writer import WRITE_CHUNK

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
