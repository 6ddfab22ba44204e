"""A table with a DynamoDB stream, and counters with DynamoDB's UpdateItem semantics, in memory.

- `StreamTable`: rows keyed by `pk`; every change appends a stream record (NEW_AND_OLD_IMAGES,
  Lambda's event shape) to the item's shard, with increasing sequence numbers. Shards can be
  rotated (a parent closed, a child opened), as DynamoDB does every few hours on AWS.
- `CounterClient`: an async client answering exactly the UpdateItem/GetItem forms of
  `pipeline.adapters.dynamo.stream_totals` — ADD/SET, the watermark condition (string order),
  ReturnValues=ALL_NEW, ReturnValuesOnConditionCheckFailure=ALL_OLD, conditional REMOVE —
  with faults injected at chosen calls: a 500 not applied, applied with the answer lost,
  a timeout, or the process killed (before or after the write lands).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ReadTimeoutError

from pipeline.core.model import PARTITION_KEY
from pipeline.totals.deltas import Totals, counted
from pipeline.totals.folders import ancestors
from tests.support.faults import client_error


class Killed(BaseException):
    """The invocation's process died (SIGKILL at its timeout): nothing after it runs."""


def _image(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, bool):
            out[name] = {"BOOL": value}
        elif isinstance(value, int):
            out[name] = {"N": str(value)}
        else:
            out[name] = {"S": str(value)}
    return out


@dataclass
class StreamTable:
    """File rows and their stream (see the module docstring)."""

    bucket: str = "b"
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    shards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    open_shard: dict[int, str] = field(default_factory=dict)
    partitions: int = 1
    seq: int = 100_000_000_000_000_000_000

    def __post_init__(self) -> None:
        for p in range(self.partitions):
            self._open(p, None)

    def _open(self, partition: int, parent: str | None) -> None:
        shard = f"shardId-{partition:03d}-{len(self.shards):05d}"
        self.shards[shard] = []
        self.parents[shard] = parent
        self.open_shard[partition] = shard

    def rotate(self) -> None:
        """Close every open shard; each gets a child that receives the next changes."""
        for partition, shard in list(self.open_shard.items()):
            self._open(partition, shard)

    def _record(self, pk: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        self.seq += random.randint(1, 5)
        partition = sum(pk.encode()) % self.partitions
        name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        data: dict[str, Any] = {
            "Keys": {PARTITION_KEY: {"S": pk}},
            "SequenceNumber": str(self.seq),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old is not None:
            data["OldImage"] = _image(old)
        if new is not None:
            data["NewImage"] = _image(new)
        self.shards[self.open_shard[partition]].append(
            {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": data}
        )

    def put(self, key: str, size: int) -> None:
        pk = f"{self.bucket}/{key}"
        row = {PARTITION_KEY: pk, "bucket": self.bucket, "filename": key, "size": size}
        old = self.rows.get(pk)
        self.rows[pk] = row
        self._record(pk, old, row)

    def delete(self, key: str) -> None:
        """A tombstone (as ingest writes a delete)."""
        pk = f"{self.bucket}/{key}"
        row = {PARTITION_KEY: pk, "bucket": self.bucket, "filename": key, "deleted": True}
        old = self.rows.get(pk)
        self.rows[pk] = row
        self._record(pk, old, row)

    def expire(self, key: str) -> None:
        """TTL removes a tombstone."""
        pk = f"{self.bucket}/{key}"
        old = self.rows.pop(pk, None)
        if old is not None:
            self._record(pk, old, None)

    def system_write(self, pk: str) -> None:
        """A system item changes (a counter, the registry): not a file."""
        self._record(pk, None, {PARTITION_KEY: pk, "files": 3})

    def churn(self, rng: random.Random, steps: int, keys: list[str]) -> None:
        for _ in range(steps):
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.55:
                self.put(key, rng.randint(0, 5000))
            elif roll < 0.9:
                self.delete(key)
            else:
                self.expire(key)

    def truth(self) -> dict[str, Totals]:
        """Totals recounted from the rows, per folder (only non-zero ones)."""
        sums: dict[str, Totals] = {}
        for row in self.rows.values():
            for folder in ancestors(row["filename"]):
                sums[folder] = sums.get(folder, Totals()) + counted(row)
        return {f: t for f, t in sums.items() if t}


_ADD = re.compile(r"ADD (.+?) SET (.+)$")


@dataclass
class CounterClient:
    """UpdateItem/GetItem on counter items, with injected faults (see the module docstring).

    `faults[n]` is applied to the n-th UpdateItem (0-based, counting every call):
    "500" (not applied), "lost" (applied, answer lost: a read timeout), "timeout" (not
    applied, read timeout), "kill-before" / "kill-after" (the process dies before / after the
    write lands: every later call raises `Killed` too, until `revive()`)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[int, str] = field(default_factory=dict)
    refusal_carries_item: bool = True
    calls: int = 0
    dead: bool = False
    negative_seen: list[str] = field(default_factory=list)

    def revive(self) -> None:
        self.dead = False

    async def update_item(self, **request: Any) -> dict[str, Any]:
        if self.dead:
            raise Killed()
        n = self.calls
        self.calls += 1
        fault = self.faults.get(n)
        if fault == "kill-before":
            self.dead = True
            raise Killed()
        if fault in ("500", "timeout"):
            if fault == "500":
                raise client_error("InternalServerError", "Internal server error", 500)
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        answer = self._apply(request)
        if fault == "kill-after":
            self.dead = True
            raise Killed()
        if fault == "lost":
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return answer

    async def get_item(self, **request: Any) -> dict[str, Any]:
        if self.dead:
            raise Killed()
        item = self.items.get(request["Key"][PARTITION_KEY]["S"])
        return {"Item": dict(item)} if item is not None else {}

    def _apply(self, request: dict[str, Any]) -> dict[str, Any]:
        key = request["Key"][PARTITION_KEY]["S"]
        names = request.get("ExpressionAttributeNames") or {}
        values = request.get("ExpressionAttributeValues") or {}
        current = self.items.get(key)
        condition = request.get("ConditionExpression")
        if condition is not None and not self._holds(condition, current, names, values):
            error = client_error(
                "ConditionalCheckFailedException",
                "The conditional request failed",
                400,
                "UpdateItem",
            )
            wants_item = request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            if wants_item and current and self.refusal_carries_item:
                error.response["Item"] = dict(current)  # type: ignore[typeddict-unknown-key]
            raise error
        new = dict(current or {PARTITION_KEY: {"S": key}})
        expression = request["UpdateExpression"]
        if expression.startswith("REMOVE "):
            for alias in expression[len("REMOVE ") :].split(","):
                new.pop(names[alias.strip()], None)
        else:
            match = _ADD.match(expression)
            assert match, expression
            for action in match.group(1).split(","):
                name, value = action.split()
                before = int(new.get(names[name], {"N": "0"})["N"])
                new[names[name]] = {"N": str(before + int(values[value]["N"]))}
            for action in match.group(2).split(","):
                name, value = (side.strip() for side in action.split("="))
                new[names[name]] = values[value]
        for counter in ("files", "bytes"):
            if int(new.get(counter, {"N": "0"})["N"]) < 0:
                self.negative_seen.append(key)
        self.items[key] = new
        return {"Attributes": dict(new)} if request.get("ReturnValues") == "ALL_NEW" else {}

    @staticmethod
    def _holds(
        condition: str,
        current: dict[str, Any] | None,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        if condition == "attribute_not_exists(#w) OR #w < :first":
            stored = (current or {}).get(names["#w"])
            return stored is None or stored["S"] < values[":first"]["S"]
        clauses = condition.split(" AND ")
        for clause in clauses:
            name, value = (side.strip() for side in clause.split("="))
            if (current or {}).get(names[name]) != values[value]:
                return False
        return True

    def totals(self, bucket: str = "b") -> dict[str, Totals]:
        """Non-zero counters of `bucket`, per folder."""
        prefix = f"#totals/{bucket}/"
        found = {}
        for key, item in self.items.items():
            if key.startswith(prefix):
                value = Totals(int(item["files"]["N"]), int(item["bytes"]["N"]))
                if value:
                    found[key[len(prefix) :]] = value
        return found
