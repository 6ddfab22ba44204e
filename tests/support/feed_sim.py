"""A simulated world for the change feed: one fake clock, writes that land late, an index
that shows them late, and consumers that follow the feed.

- `SimClock`: discrete-event time. `sleep(d)` parks the caller until the driver (`run`)
  moves the clock to its wake-up time; tasks run in between until all of them wait.
- `LandingTable`: the real writer's client (`InMemoryDynamo` underneath) whose requests can be
  held in flight (`delays`: landing late), answered late (`answer_delays`), throttled
  (`throttle`) or answered with a dropped connection after landing (`lose_answer`); it keeps
  every row's history with the time each version landed.
- `LaggyIndex`: the `ChangeIndex` over that history as a GSI shows it `lag_s` behind.
- `Consumer`: follows the feed with `read_changes`, checks exactly-once as it goes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ConnectionClosedError

from pipeline.adapters.dynamo.statements import from_attribute
from pipeline.core.model import CHANGED, DELETED, FEED_SHARD, FILENAME, PARTITION_KEY
from pipeline.feed.positions import time_position
from pipeline.feed.reader import ShardPage, ShardRange, read_changes
from tests.support.faults import InMemoryDynamo

TABLE = "files"


class SimClock:
    """Discrete-event time shared by every simulated party (epoch seconds)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        """The clock (as `time.time`)."""
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of simulated time."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    async def run(self, *coroutines: Awaitable[Any], limit_s: float = 3_600) -> list[Any]:
        """Run the coroutines to completion, moving the clock whenever all of them wait."""
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        end = self.now + limit_s
        while not all(t.done() for t in tasks):
            for _ in range(200):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            if all(t.done() for t in tasks):
                break
            if not self._timers:
                raise RuntimeError("simulation stuck: every task waits and no timer is set")
            at, _, future = heapq.heappop(self._timers)
            if at > end:
                raise RuntimeError("simulation ran past its time limit")
            self.now = max(self.now, at)
            if not future.done():
                future.set_result(None)
        return [t.result() for t in tasks]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: from_attribute(value) for name, value in item.items()}


@dataclass
class LandingTable:
    """The writer's async client, with faults in time (see the module docstring)."""

    clock: SimClock
    inner: InMemoryDynamo = field(default_factory=InMemoryDynamo)
    delays: dict[str, list[float]] = field(default_factory=dict)
    """Key -> seconds each next write request naming it stays in flight before it lands."""
    answer_delays: dict[str, list[float]] = field(default_factory=dict)
    """Key -> seconds between landing and the answer, per request."""
    throttle: dict[str, int] = field(default_factory=dict)
    """Key -> how many next statements naming it are refused as throttled."""
    lose_answer: dict[str, int] = field(default_factory=dict)
    """Key -> how many next requests naming it land but answer with a dropped connection."""
    history: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    """Partition key -> (time landed, row) of every version written."""
    sent_stamps: list[tuple[str, str]] = field(default_factory=list)
    """(key, position) of every statement sent that carries a position."""

    @staticmethod
    def _key(statement: dict[str, Any]) -> str:
        params = statement["Parameters"]
        text = statement["Statement"]
        if text.startswith("INSERT"):
            names = [part.split("'")[1] for part in text.split("{", 1)[1].split(",")]
            return str(params[names.index(PARTITION_KEY)]["S"])
        # UPDATE: the key is the parameter right after the SET values
        sets = text.split(" WHERE ")[0].count("=?")
        return str(params[sets]["S"])

    async def batch_execute_statement(self, Statements: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [self._key(s) for s in Statements]
        names = [key.split("/", 1)[-1] for key in keys]  # faults are set by object key
        for name, statement in zip(names, Statements, strict=True):
            for param in statement["Parameters"]:
                value = param.get("S", "")
                if len(value) == 30 and value[13:14] == ".":
                    self.sent_stamps.append((name, value))
        delay = max((self._next(self.delays, k) for k in names), default=0.0)
        if delay:
            await self.clock.sleep(delay)
        throttled = [self._take(self.throttle, k) for k in names]
        run = [s for s, t in zip(Statements, throttled, strict=True) if not t]
        answers = (
            iter((await self.inner.batch_execute_statement(Statements=run))["Responses"])
            if run
            else iter([])
        )
        responses = []
        for key, was_throttled in zip(keys, throttled, strict=True):
            if was_throttled:
                responses.append(
                    {"Error": {"Code": "ProvisionedThroughputExceeded", "Message": "slow down"}}
                )
                continue
            answer = next(answers)
            responses.append(answer)
            if "Error" not in answer:
                row = self.inner.tables[TABLE][key]
                self.history.setdefault(key, []).append((self.clock.now, _plain(row)))
        lost = any(self._take(self.lose_answer, k) for k in names)
        answer_delay = max((self._next(self.answer_delays, k) for k in names), default=0.0)
        if answer_delay:
            await self.clock.sleep(answer_delay)
        if lost:
            raise ConnectionClosedError(endpoint_url="http://dynamodb.sim")
        return {"Responses": responses}

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        return await self.inner.batch_get_item(RequestItems=RequestItems)

    @staticmethod
    def _next(table: dict[str, list[float]], key: str) -> float:
        queue = table.get(key)
        return queue.pop(0) if queue else 0.0

    @staticmethod
    def _take(table: dict[str, int], key: str) -> bool:
        if table.get(key, 0) > 0:
            table[key] -= 1
            return True
        return False

    def final_rows(self) -> dict[str, dict[str, Any]]:
        """Every file's row as it is now, by object key (the simulations use one bucket)."""
        rows = (versions[-1][1] for versions in self.history.values())
        return {row[FILENAME]: row for row in rows if FILENAME in row}


@dataclass
class LaggyIndex:
    """The `by_change` index of a `LandingTable`, showing each version `lag_s` after it landed."""

    table: LandingTable
    lag_s: float = 0.0

    def query_changes(self, ranges: Sequence[ShardRange]) -> list[ShardPage]:
        visible_at = self.table.clock.now - self.lag_s
        rows = []
        for versions in self.table.history.values():
            shown = [row for landed, row in versions if landed <= visible_at]
            if shown and CHANGED in shown[-1]:
                rows.append(shown[-1])
        pages = []
        for r in ranges:
            hits = sorted(
                (
                    row
                    for row in rows
                    if row.get(FEED_SHARD) == r.shard and r.after < row[CHANGED] <= r.upto
                ),
                key=lambda row: row[CHANGED],
            )
            examined = hits[: r.limit]
            covered = examined[-1][CHANGED] if len(hits) > r.limit else None
            kept = [row for row in examined if not r.prefix or row["filename"].startswith(r.prefix)]
            pages.append(ShardPage(kept, covered, len(examined)))
        return pages


@dataclass
class Consumer:
    """Follows the feed of one bucket; replays it into `state` and checks exactly-once."""

    index: LaggyIndex
    clock: SimClock
    settle_ms: int
    bucket: str
    limit: int = 100
    cursor: str = ""
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    last_position: dict[str, str] = field(default_factory=dict)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    regressions: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0

    def __post_init__(self) -> None:
        if not self.cursor:
            self.cursor = time_position(self.clock.ms() - 1)

    def poll(self) -> int:
        """Read one page and apply it; the number of changes applied."""
        page = read_changes(
            self.index,
            bucket=self.bucket,
            after=self.cursor,
            now_ms=self.clock.ms(),
            settle_ms=self.settle_ms,
            limit=self.limit,
        )
        assert page.next_position >= self.cursor, "the cursor went backwards"
        for row in page.rows:
            key, position = row["filename"], row[CHANGED]
            if (key, position) in self.seen:
                self.duplicates.append((key, position))
            if key in self.last_position and position <= self.last_position[key]:
                self.regressions.append((key, position))
            self.seen.add((key, position))
            self.last_position[key] = position
            self.state[key] = row
        self.cursor = page.next_position
        self.pages += 1
        return len(page.rows)

    async def follow(self, every_s: float, until: Callable[[], bool]) -> None:
        """Poll every `every_s` simulated seconds until `until()`, then on until the settle
        window (and the index's lag) after that has passed and a page came back empty."""
        stop_at: float | None = None
        while True:
            if stop_at is None and until():
                stop_at = self.clock.now + self.settle_ms / 1000 + self.index.lag_s + 0.01
            got = self.poll()
            if stop_at is not None and self.clock.now >= stop_at and got == 0:
                return
            await self.clock.sleep(every_s)

    def missed(self, rows: dict[str, dict[str, Any]]) -> list[str]:
        """Keys whose final row the consumer does not hold (latest version, same position)."""
        return sorted(
            key
            for key, row in rows.items()
            if CHANGED in row
            and (key not in self.state or self.state[key][CHANGED] != row[CHANGED])
        )


def live(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Key -> etag of the live rows."""
    return {k: r.get("etag") for k, r in rows.items() if not r.get(DELETED)}
