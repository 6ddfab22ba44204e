"""Reconcile's DynamoDB adapter: consistent reads and compare-and-swap writes of whole rows.

One store serves one bucket: it is addressed by object keys and reads and writes only the
items `item_key(bucket, key)`, so a bucket's reconcile can never touch another bucket's rows.

`DynamoRowStore` reads whole rows with BatchGetItem (ConsistentRead) and writes each repair
with one PutItem whose condition is the version of the row read (`expected=None`: only if no
item exists) — a compare-and-swap: any write to the key in between (an event) changes those
attributes and the put fails with ConditionalCheckFailed, which is a `conflict`, not an error.

With a `Stamper`, each repair carries its change feed position, stamped just before the put
is sent; botocore's own retries resend that stamp, so a put answered later than the
stamping rule allows is followed by an UpdateItem giving the row a new position while it
still has the one written (`pipeline.feed.positions`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.adapters.dynamo.errors import error_code
from pipeline.adapters.dynamo.reader import from_item
from pipeline.adapters.dynamo.statements import to_item
from pipeline.core.model import (
    BUCKET,
    CHANGED,
    FILENAME,
    PARTITION_KEY,
    VERSION_ATTRIBUTES,
    ConditionalWrite,
    WriteOutcome,
    item_key,
)
from pipeline.feed.positions import MS_DIGITS, Stamper, position_tail

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

GET_CHUNK = 100
"""BatchGetItem's limit on keys per call."""
CAS_ATTRIBUTES = tuple(name for name in VERSION_ATTRIBUTES if name != PARTITION_KEY)
"""The version of a row, as ingest's conditional writes compare it (`pipeline.core.model`)."""


def client_config(max_pool_connections: int = 20) -> Config:
    """Botocore config for reconcile's DynamoDB client (standard retries of throttling/5xx)."""
    return Config(
        max_pool_connections=max_pool_connections,
        retries={"max_attempts": 8, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,  # a batch job: a slow answer beats a retry storm on a busy table
        tcp_keepalive=True,
    )


def condition_for(expected: dict[str, Any] | None) -> dict[str, Any]:
    """PutItem parameters making the put a compare-and-swap on `expected`'s version."""
    if expected is None:
        return {
            "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": PARTITION_KEY},
        }
    clauses = ["attribute_exists(#k)"]
    names = {"#k": PARTITION_KEY}
    values: dict[str, Any] = {}
    for index, name in enumerate(CAS_ATTRIBUTES):
        names[f"#a{index}"] = name
        if name in expected:
            clauses.append(f"#a{index} = :v{index}")
            values[f":v{index}"] = to_item({"v": expected[name]})["v"]
        else:
            clauses.append(f"attribute_not_exists(#a{index})")
    params: dict[str, Any] = {
        "ConditionExpression": " AND ".join(clauses),
        "ExpressionAttributeNames": names,
    }
    if values:
        params["ExpressionAttributeValues"] = values
    return params


class DynamoRowStore:
    """`RowStore` of one bucket's rows in the files table, with an injected boto3 client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        bucket: str,
        *,
        concurrency: int = 16,
        stamper: Stamper | None = None,
    ) -> None:
        self._stamper = stamper
        self._client = client
        self._table = table_name
        self.bucket = bucket
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self.calls = 0

    def read_rows(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Whole rows of the bucket's object `keys` that exist, read consistently."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), GET_CHUNK):
            pending: list[dict[str, Any]] = [
                {PARTITION_KEY: {"S": item_key(self.bucket, key)}}
                for key in keys[start : start + GET_CHUNK]
            ]
            attempt = 0
            while pending:
                self.calls += 1
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    row = from_item(item)
                    found[row[FILENAME]] = row
                unprocessed: Any = response.get("UnprocessedKeys", {}).get(self._table, {})
                pending = list(unprocessed.get("Keys", []))
                if pending:
                    attempt += 1
                    time.sleep(min(2.0, 0.05 * 2**attempt))
        return found

    def _put(self, write: ConditionalWrite) -> WriteOutcome:
        row = write.row
        if row.get(BUCKET) != self.bucket or row.get(PARTITION_KEY) != item_key(
            self.bucket, row[FILENAME]
        ):
            raise ValueError(f"a repair for another bucket's row: {row.get(PARTITION_KEY)!r:.200}")
        sent_ms = 0
        if self._stamper is not None:
            sent_ms = self._stamper.now_ms()
            row = self._stamper.stamp(row, write.expected, sent_ms)
        try:
            self.calls += 1
            self._client.put_item(
                TableName=self._table, Item=to_item(row), **condition_for(write.expected)
            )
            if self._stamper is not None and self._stamper.late(sent_ms):
                self._restamp(row)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return WriteOutcome.CONFLICT
            logger.warning("Repair of %r failed: %s", write.row[PARTITION_KEY][:200], error)
            return WriteOutcome.FAILED
        except BotoCoreError as error:
            logger.warning("Repair of %r failed: %s", write.row[PARTITION_KEY][:200], error)
            return WriteOutcome.FAILED
        return WriteOutcome.WRITTEN

    def _restamp(self, row: dict[str, Any]) -> None:
        """New positions for `row` while it holds the one written, until one is answered in
        time; a failed condition means a newer write, stamped by its own writer."""
        assert self._stamper is not None
        stamped = str(row[CHANGED])
        for _ in range(5):
            sent_ms = self._stamper.now_ms()
            fresh = f"{sent_ms:0{MS_DIGITS}d}{position_tail(stamped)}"
            try:
                self.calls += 1
                self._client.update_item(
                    TableName=self._table,
                    Key={PARTITION_KEY: {"S": row[PARTITION_KEY]}},
                    UpdateExpression="SET #c = :new",
                    ConditionExpression="#c = :old",
                    ExpressionAttributeNames={"#c": CHANGED},
                    ExpressionAttributeValues={":new": {"S": fresh}, ":old": {"S": stamped}},
                )
            except ClientError as error:
                if error_code(error) == "ConditionalCheckFailedException":
                    return
                raise
            stamped = fresh
            if not self._stamper.late(sent_ms):
                return

    def write_conditional(self, writes: Sequence[ConditionalWrite]) -> dict[str, WriteOutcome]:
        """One conditional PutItem per write, `concurrency` at a time; outcomes by object key."""
        if not writes:
            return {}
        if len(writes) == 1:
            return {writes[0].row[FILENAME]: self._put(writes[0])}
        if self._pool is None:  # kept for the run: starting threads per batch costs CPU
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="repair")
        outcomes = list(self._pool.map(self._put, writes))
        return {write.row[FILENAME]: out for write, out in zip(writes, outcomes, strict=True)}
