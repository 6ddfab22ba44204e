"""The capacity front's rules and table: DynamoDB's throttling errors, index charges, the
stored items and the meters (see `load.front`)."""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from load.sink_state import IndexElement, item_bytes, table_indexes
from load.throughput import READ, TABLE, WRITE, Charge, Meter, read_units, write_units
from pipeline.core.model import PARTITION_KEY, SEQ
from tests.support import partiql

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


def key_of(item: dict[str, Any]) -> str:
    """The partition key value of an item or a key, as a string."""
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
