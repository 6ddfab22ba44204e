"""Composition root of a reconcile run: clients, adapters and the run, for the CLI and Lambda.

    summary = run(Target(bucket="b", table="files"), prefix="logs/", dry_run=False)

The bucket side is S3 ListObjectsV2 (`pipeline.adapters.s3_bucket`) or an S3 Inventory report
(`pipeline.adapters.s3_inventory`); the table side is the sorted listing index
(`pipeline.adapters.dynamo.reader.DynamoFileReader.iter_live`); repairs are conditional PutItems
(`pipeline.adapters.dynamo.reconcile_store`); checkpoints live in SSM Parameter Store
(`pipeline.adapters.ssm_checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from pipeline.adapters import s3_bucket as s3_adapter
from pipeline.adapters.dynamo import reconcile_store
from pipeline.adapters.dynamo.reader import DynamoFileReader
from pipeline.adapters.dynamo.reconcile_store import DynamoRowStore
from pipeline.adapters.dynamo.registry import register_bucket
from pipeline.adapters.dynamo.totals import DynamoTotalsStore
from pipeline.adapters.s3_inventory import InventoryObjects
from pipeline.adapters.ssm_checkpoints import DEFAULT_PATH, SsmCheckpoints
from pipeline.core.model import INDEX_SHARDS, ConditionalWrite
from pipeline.feed.positions import Stamper
from pipeline.reconcile.merge import reconcile
from pipeline.reconcile.ports import ObjectSource, Summary
from pipeline.reconcile.repair import Repairer
from pipeline.totals.audit import SETTLE_MARGIN_S, STAMP_MARGIN_S, TotalsAudit

DEFAULT_TOMBSTONE_TTL_S = 15 * 86_400
DEFAULT_TOTALS_SETTLE_S = 60
"""How far the folder totals may lag behind the rows (the totals function's stream lag; the
template alarms above 60 s): a counter repair waits that long (plus
`pipeline.totals.audit.SETTLE_MARGIN_S`) after its folder's walk
(`RECONCILE_TOTALS_SETTLE_S`)."""
DEFAULT_FEED_SETTLE_MS = 5_000
"""The change feed's settle window (`FEED_SETTLE_MS`): repairs follow the writer's rule."""


@dataclass(frozen=True)
class Target:
    """Where to reconcile: the bucket, the table, and how to reach them."""

    bucket: str
    table: str
    region: str | None = None
    endpoint_url: str | None = None
    """Any AWS-compatible endpoint (moto, LocalStack); None: AWS (or $AWS_ENDPOINT_URL)."""
    checkpoint_path: str = DEFAULT_PATH
    credentials: dict[str, str] | None = None
    """Explicit access key and secret (the embedded local stack); None: the default chain."""
    endpoints: dict[str, str] | None = None
    """Service -> endpoint, where services do not share `endpoint_url` (a local stack)."""

    def client_kwargs(self, service: str) -> dict[str, Any]:
        """Region, endpoint and credentials of a boto3 client for `service`."""
        kwargs: dict[str, Any] = {"region_name": self.region}
        endpoint = (self.endpoints or {}).get(service) or self.endpoint_url
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self.credentials:
            kwargs.update(self.credentials)
        return kwargs


@dataclass
class Clients:
    s3: Any
    dynamodb: Any
    ssm: Any


def make_clients(target: Target, concurrency: int = 16) -> Clients:
    """boto3 clients for `target`, sized for `concurrency` calls in flight."""
    factory: Any = boto3.client  # the stubs' overloads want a literal service name
    pool = concurrency + INDEX_SHARDS + 4
    return Clients(
        s3=factory("s3", config=s3_adapter.client_config(pool), **target.client_kwargs("s3")),
        dynamodb=factory(
            "dynamodb",
            config=reconcile_store.client_config(pool),
            **target.client_kwargs("dynamodb"),
        ),
        ssm=factory("ssm", **target.client_kwargs("ssm")),
    )


class IndexRows:
    """`LiveRows` over the listing index (`DynamoFileReader.iter_live`)."""

    def __init__(self, reader: DynamoFileReader) -> None:
        self._reader = reader

    def iter_live(self, prefix: str, start_after: str | None) -> Iterator[dict[str, Any]]:
        return self._reader.iter_live(prefix or None, start_after)


def run(
    target: Target,
    *,
    prefix: str = "",
    dry_run: bool = False,
    restart: bool = False,
    inventory: str | None = None,
    concurrency: int = 16,
    tombstone_ttl_s: int = DEFAULT_TOMBSTONE_TTL_S,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[Summary], None] | None = None,
    before_write: Callable[[Sequence[ConditionalWrite]], None] | None = None,
    clients: Clients | None = None,
    totals: bool = True,
    totals_settle_s: float = DEFAULT_TOTALS_SETTLE_S,
    feed_settle_ms: int = DEFAULT_FEED_SETTLE_MS,
    totals_margin_s: float = SETTLE_MARGIN_S,
    totals_stamp_margin_s: float = STAMP_MARGIN_S,
) -> Summary:
    """Reconcile `target` under `prefix` (see `pipeline.reconcile.merge.reconcile`); with `totals`,
    the folder counters too (`pipeline.totals.audit`)."""
    clients = clients or make_clients(target, concurrency)
    bucket = s3_adapter.BucketObjects(clients.s3, target.bucket, concurrency=concurrency)
    source: ObjectSource = bucket
    if inventory:
        source = InventoryObjects(clients.s3, inventory, bucket=target.bucket)
    rows = IndexRows(DynamoFileReader(clients.dynamodb, target.table, target.bucket))
    repairer = None
    if not dry_run:
        register_bucket(clients.dynamodb, target.table, target.bucket, by="reconcile")
        repairer = Repairer(
            bucket=target.bucket,
            store=DynamoRowStore(
                clients.dynamodb,
                target.table,
                target.bucket,
                concurrency=concurrency,
                stamper=Stamper(feed_settle_ms),
            ),
            heads=bucket,
            tombstone_ttl_s=tombstone_ttl_s,
            confirm_missing=inventory is not None,
            before_write=before_write,
        )
    checkpoints = SsmCheckpoints(clients.ssm, target.bucket, path=target.checkpoint_path)
    audit = None
    if totals:
        audit = TotalsAudit(
            DynamoTotalsStore(clients.dynamodb, target.table),
            target.bucket,
            prefix=prefix,
            dry_run=dry_run,
            settle_s=totals_settle_s,
            margin_s=totals_margin_s,
            stamp_margin_s=totals_stamp_margin_s,
        )
    return reconcile(
        source,
        rows,
        repairer,
        prefix=prefix,
        bucket=target.bucket,
        checkpoints=checkpoints,
        restart=restart,
        should_stop=should_stop,
        progress=progress,
        totals=audit,
    )


MAX_CONTINUATIONS = 200
"""Invocations one scheduled run may chain (15 min each: about two days of work)."""


@dataclass(frozen=True)
class Invocation:
    """What one Lambda invocation of a run did, and whether it handed over to a next one."""

    summary: Summary
    continuation: int
    continued: bool


def lambda_run(
    target: Target,
    event: Any,
    *,
    remaining_ms: Callable[[], int],
    invoke_next: Callable[[dict[str, Any]], None],
    clients: Clients,
    margin_ms: int = 30_000,
    tombstone_ttl_s: int = DEFAULT_TOMBSTONE_TTL_S,
    concurrency: int = 16,
    totals_settle_s: float = DEFAULT_TOTALS_SETTLE_S,
    feed_settle_ms: int = DEFAULT_FEED_SETTLE_MS,
    totals_margin_s: float = SETTLE_MARGIN_S,
    totals_stamp_margin_s: float = STAMP_MARGIN_S,
) -> Invocation:
    """One invocation of the scheduled reconcile: work until `margin_ms` before the deadline,
    then save the checkpoint and hand over to a new invocation (`invoke_next`).

    `event` is the schedule's event (a fresh run, resuming any checkpoint left by an earlier
    one) or a continuation `{"prefix": ..., "continuation": n}` this function sent itself.
    """
    prefix = ""
    continuation = 0
    if isinstance(event, dict) and "continuation" in event:
        prefix = str(event.get("prefix") or "")
        continuation = int(event["continuation"])
    elif isinstance(event, dict) and isinstance(event.get("prefix"), str):
        prefix = event["prefix"]  # a manual run: {"prefix": "logs/"}
    summary = run(
        target,
        prefix=prefix,
        concurrency=concurrency,
        tombstone_ttl_s=tombstone_ttl_s,
        should_stop=lambda: remaining_ms() < margin_ms,
        clients=clients,
        totals_settle_s=totals_settle_s,
        feed_settle_ms=feed_settle_ms,
        totals_margin_s=totals_margin_s,
        totals_stamp_margin_s=totals_stamp_margin_s,
    )
    continued = False
    if not summary.complete and continuation < MAX_CONTINUATIONS:
        invoke_next({"prefix": prefix, "continuation": continuation + 1})
        continued = True
    return Invocation(summary, continuation, continued)
