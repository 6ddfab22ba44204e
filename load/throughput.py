# ruff: noqa: E501  (the rules table is one row a line)
"""DynamoDB's throughput rules per partition-key value, as token buckets (the capacity front's
rules; `load.front` applies them to every request it serves).

| rule | value (1:1) | source |
|---|---|---|
| a write unit is 1 KB of the larger of the old and the new item, rounded up, at least 1 | 1 WCU / KB | [RCU/WCU] |
| a strongly consistent read unit is 4 KB of the item, rounded up (a missing item: 1) | 1 RCU / 4 KB | [RCU/WCU] |
| an eventually consistent read costs half | 0.5 | [RCU/WCU] |
| a failed condition still consumes the write's units (of the table, not the indexes) | | [Conditions] |
| each partition-key value of the table takes at most 1,000 WCU/s and 3,000 RCU/s, whatever the capacity mode (split-for-heat isolates a hot key in its own partition, whose limit stays) | 1,000 / 3,000 | [Partitions], [Burst], [KeyRange] |
| the same per key value of each GSI (its partition key: `name_shard`, `feed_shard`) | 1,000 / 3,000 | [KeyRange], [GSI-throttling] |
| a GSI write costs 1 unit per KB of the projected entry; an index-key change is a delete plus a put; an item in neither state costs nothing (sparse) | | [GSI-writes] |
| a write whose index update would exceed the index's key budget is refused on the base table (back-pressure), error naming the index | | [GSI-throttling] |
| burst: up to 300 s of unused *table* capacity, best effort; it "can't alleviate partition-level throttling": the per-key buckets hold `burst_s` (default 1 s) of their rate | 1 s | [Spiky], [Burst] |
| the table and each GSI (on-demand) take their per-table quota: 40,000 WRU/s and 40,000 RRU/s by default (throttle reasons `TableWriteAccountLimitExceeded`, `IndexWriteAccountLimitExceeded`) | 40,000 | [Quotas], [Reasons] |
| a throttled request consumes nothing and changes nothing | | [Throttling] |

[RCU/WCU]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/provisioned-capacity-mode.html
[Conditions]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
[Partitions]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.Partitions.html
[Burst]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html
[KeyRange]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/throttling-key-range-limit-exceeded-mitigation.html
[GSI-throttling]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/gsi-throttling.html
[GSI-writes]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes
[Spiky]: https://repost.aws/knowledge-center/dynamodb-spiky-workloads-short-intervals
[Quotas]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
[Reasons]: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ThrottlingReason.html
[Throttling]: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/throttling-diagnosing-workflow.html

Scaling 1:N: every rate here is divided by `scale` (the run's N), so that a run at 1/N of the
traffic meets the limits at the same utilisation. Writes to keys the runner names in
`per_invocation` (keys written once per invocation, not once per event: the folder counters)
are charged 1/N of their units, because an invocation of the scaled run stands for one
invocation, not N (see docs/performance.md, "Capacity model").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WRITE, READ = "write", "read"
KEY_WCU = 1_000.0
KEY_RCU = 3_000.0
TABLE_WRU = 40_000.0
TABLE_RRU = 40_000.0
TABLE = "table"


def write_units(old_bytes: int, new_bytes: int) -> int:
    """Write units of replacing an item of `old_bytes` by one of `new_bytes` (0: none)."""
    return max(1, math.ceil(max(old_bytes, new_bytes) / 1024))


def read_units(item_bytes: int, consistent: bool = True) -> float:
    """Read units of reading an item of `item_bytes` (a missing item costs the minimum)."""
    units = max(1, math.ceil(item_bytes / 4096))
    return float(units) if consistent else units / 2


@dataclass
class TokenBucket:
    """`rate` units a second, holding at most `capacity`; starts full."""

    rate: float
    capacity: float
    tokens: float = -1.0
    at: float = 0.0

    def level(self, now: float) -> float:
        """The units available at `now` (refilled since the last look)."""
        if self.tokens < 0:
            self.tokens, self.at = self.capacity, now
        elif now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def take(self, units: float, now: float) -> None:
        """Consume `units` (the caller checked `level` first)."""
        self.level(now)
        self.tokens -= units


@dataclass
class Limits:
    """The rules' numbers at scale 1:`scale`."""

    scale: float = 1.0
    key_wcu: float = KEY_WCU
    key_rcu: float = KEY_RCU
    table_wru: float = TABLE_WRU
    table_rru: float = TABLE_RRU
    burst_s: float = 1.0
    per_invocation: tuple[str, ...] = ()
    """Key prefixes written once per invocation: charged 1/scale of their units."""

    def rate(self, kind: str, element: str) -> float:
        """Units per second of one key value of `element` (scaled)."""
        return (self.key_wcu if kind == WRITE else self.key_rcu) / self.scale

    def table_rate(self, kind: str) -> float:
        """The table-wide quota per second (scaled)."""
        return (self.table_wru if kind == WRITE else self.table_rru) / self.scale

    def weight(self, key: str) -> float:
        """What a unit written to `key` costs against the (scaled) buckets."""
        if any(key.startswith(prefix) for prefix in self.per_invocation):
            return 1.0 / self.scale
        return 1.0


@dataclass(frozen=True)
class Charge:
    """Units one operation needs: (element, key value) -> units, plus the table quota."""

    kind: str
    units: dict[tuple[str, str], float]


@dataclass
class Meter:
    """The buckets of every key value seen, and what was consumed and refused."""

    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    buckets: dict[tuple[str, str, str], TokenBucket] = field(default_factory=dict)
    table_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    consumed: dict[str, float] = field(default_factory=dict)
    """(`write`|`read`) + element -> units billed (unscaled: what AWS would bill)."""
    throttled: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(kind, element, key value) -> requests (or statements, keys) refused."""

    def _bucket(self, kind: str, element: str, key: str) -> TokenBucket:
        bucket = self.buckets.get((kind, element, key))
        if bucket is None:
            rate = self.limits.rate(kind, element)
            bucket = TokenBucket(rate, rate * self.limits.burst_s)
            self.buckets[(kind, element, key)] = bucket
        return bucket

    def _quota_bucket(self, kind: str, element: str) -> TokenBucket:
        bucket = self.table_buckets.get(f"{kind}:{element}")
        if bucket is None:
            rate = self.limits.table_rate(kind)
            bucket = TokenBucket(rate, rate * self.limits.burst_s)
            self.table_buckets[f"{kind}:{element}"] = bucket
        return bucket

    def refusals(self, charge: Charge) -> list[tuple[str, str]]:
        """Every (element, key value) that cannot take `charge` now: the table's key, each
        index's key values (back-pressure), and the table's and each index's quota (key
        `*`: ThrottlingReason `...AccountLimitExceeded`, one quota per table and per GSI)."""
        now = self.clock()
        refused = []
        totals: dict[str, float] = {}
        for (element, key), units in sorted(charge.units.items(), key=_table_first):
            weighted = units * self.limits.weight(key)
            totals[element] = totals.get(element, 0.0) + weighted
            if self._bucket(charge.kind, element, key).level(now) < weighted - 1e-9:
                refused.append((element, key))
        for element, total in totals.items():
            if self._quota_bucket(charge.kind, element).level(now) < total - 1e-9:
                refused.append((element, "*"))
        return refused

    def refusal(self, charge: Charge) -> tuple[str, str] | None:
        """The first (element, key value) that cannot take `charge` now, or None."""
        refused = self.refusals(charge)
        return refused[0] if refused else None

    def consume(self, charge: Charge) -> None:
        """Take `charge` from its buckets and bill it."""
        now = self.clock()
        for (element, key), units in charge.units.items():
            weighted = units * self.limits.weight(key)
            self._bucket(charge.kind, element, key).take(weighted, now)
            self._quota_bucket(charge.kind, element).take(weighted, now)
            name = f"{charge.kind}:{element}" + (":per-invocation" if weighted != units else "")
            self.consumed[name] = self.consumed.get(name, 0.0) + units

    def admit(self, charge: Charge) -> tuple[str, str] | None:
        """Consume `charge` if every bucket can take it; else count every refusing bucket
        (a request refused by two indexes counts under both) and return the first."""
        refused = self.refusals(charge)
        if not refused:
            self.consume(charge)
            return None
        for element, key in refused:
            name = (charge.kind, element, key)
            self.throttled[name] = self.throttled.get(name, 0) + 1
        return refused[0]


def _table_first(entry: tuple[tuple[str, str], float]) -> tuple[int, str, str]:
    (element, key), _ = entry
    return (0 if element == TABLE else 1, element, key)
