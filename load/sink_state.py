"""The sink's table and its bill: items by key, request units per design element as DynamoDB
bills them on demand (see `load.sink`)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

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


def key_of(item_or_key: dict[str, Any]) -> str:
    """The partition key value of an item (or a key), as a string."""
    value = item_or_key.get(KEY)
    if not isinstance(value, dict) or not isinstance(value.get("S"), str):
        raise SinkError(
            "ValidationException",
            "One of the required keys was not given a value",
        )
    return str(value["S"])


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: names plus values in UTF-8 (close enough)."""
    total = 0
    for name, value in item.items():
        ((_, inner),) = value.items()
        total += len(name.encode()) + (1 if isinstance(inner, bool) else len(str(inner).encode()))
    return total


def _kb_units(item: dict[str, Any] | None) -> int:
    return max(1, math.ceil(item_bytes(item or {}) / 1024))


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
        key = key_of(item)
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
        size = max(item_bytes(new or {}), item_bytes(old or {}))
        units = factor * max(1, math.ceil(size / 1024))
        self.wru += units
        self.bill(TABLE_ELEMENT, units)

    def read_units(self, key: str, consistent: bool) -> None:
        """Bill a read of `key` (4 KB units; a missing item costs the minimum)."""
        item = self.items.get(key)
        units = max(1, math.ceil(item_bytes(item or {}) / 4096))
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
