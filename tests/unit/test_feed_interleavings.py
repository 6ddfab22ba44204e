"""The change feed never misses and never duplicates, under forced interleavings.

The real ingest and the real DynamoDB writer adapter write through a simulated table
(`tests/support/feed_sim.py`) on a fake clock; the real reader (`read_changes`) follows the
feed through an index that shows writes late. Each test forces the interleaving that would
lose or repeat a change: a write stamped, then held in flight while the reader's bound passes
its stamp; a retry after the bound passed; an answer that comes late or never; an index that
lags; two invocations overwriting one key while a reader runs in between.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from pipeline.adapters.dynamo.writer import DynamoFileStore
from pipeline.core.model import ConditionalWrite, WriteOutcome
from pipeline.core.retry import Backoff, Deadline, OpStats
from pipeline.feed.positions import Stamper
from pipeline.ingest.batch import ingest
from tests.support.feed_sim import TABLE, Consumer, LaggyIndex, LandingTable, SimClock
from tests.support.s3events import notification, s3_record, sqs_record


def simulated(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


BUCKET = "feed-bucket"
SETTLE_MS = 5_000
TTL_S = 15 * 86_400


def _store(table: LandingTable, clock: SimClock, settle_ms: int = SETTLE_MS) -> DynamoFileStore:
    return DynamoFileStore(
        table,
        TABLE,
        backoff=Backoff(base_s=0.05, cap_s=0.2, rng=random.Random(7)),
        sleep=clock.sleep,
        stamper=Stamper(settle_ms, clock.time),
        clock=clock.time,
    )


_sequencers = itertools.count(0x100)


def _event(key: str, *, delete: bool = False, etag: str = "e0") -> dict[str, Any]:
    record = s3_record(
        key,
        bucket=BUCKET,
        event="ObjectRemoved:Delete" if delete else "ObjectCreated:Put",
        etag=etag,
        sequencer=f"{next(_sequencers):016X}",
    )
    return sqs_record(notification(record))


async def _write(
    table: LandingTable, clock: SimClock, *events: dict[str, Any], settle_ms: int = SETTLE_MS
) -> Any:
    return await ingest(
        list(events),
        _store(table, clock, settle_ms),
        Deadline(60, clock=clock.time),
        tombstone_ttl_s=TTL_S,
        now=clock.time(),
    )


def _world(lag_s: float = 0.0) -> tuple[SimClock, LandingTable, Consumer]:
    clock = SimClock()
    table = LandingTable(clock)
    consumer = Consumer(LaggyIndex(table, lag_s), clock, SETTLE_MS, BUCKET)
    return clock, table, consumer


async def _then_follow(
    clock: SimClock, consumer: Consumer, writing: Any, *, every_s: float = 0.25
) -> None:
    state = {"done": False}

    async def writer() -> None:
        await writing
        state["done"] = True

    await clock.run(writer(), consumer.follow(every_s, lambda: state["done"]))


def _assert_exactly_once(consumer: Consumer, table: LandingTable) -> None:
    assert consumer.missed(table.final_rows()) == []
    assert consumer.duplicates == []
    assert consumer.regressions == []


# ---------------------------------------------------------------------- the writer's rule


@simulated
async def test_a_retry_after_the_bound_passed_is_stamped_again() -> None:
    # Given a write throttled on its first attempt, retried only after the reader's bound
    # (now - W) has passed the first attempt's stamp
    clock, table, consumer = _world()
    table.throttle["late.txt"] = 1
    store = _store(table, clock)
    # retry at ~7 s, after W
    store._calls._backoff = Backoff(base_s=7.0, cap_s=7.0, rng=random.Random(1))
    store._calls._backoff.delay = lambda attempt: 7.0  # type: ignore[method-assign]

    async def writing() -> None:
        await ingest(
            [_event("late.txt")],
            store,
            Deadline(60, clock=clock.time),
            tombstone_ttl_s=TTL_S,
            now=clock.time(),
        )

    # When a consumer polls every 250 ms throughout
    await _then_follow(clock, consumer, writing())
    # Then the retry carried a new stamp, after the reader's cursor at that time: delivered
    stamps = [p for k, p in table.sent_stamps if k == "late.txt"]
    assert len(stamps) == 2 and stamps[1] > stamps[0]
    _assert_exactly_once(consumer, table)
    assert set(consumer.state) == {"late.txt"}


@simulated
async def test_without_the_restamp_rule_the_retry_is_missed(monkeypatch: Any) -> None:
    # The same interleaving with the rule removed (every attempt sends the first stamp):
    # the reader's cursor has passed that stamp when the retry lands, so the change is lost.
    # This is what the rule is for; the test above fails the same way without it.
    from pipeline.adapters.dynamo import writer

    first: dict[str, int] = {}
    original = writer._Statement.stamped

    def stamp_once(self: Any, sent_ms: int) -> dict[str, Any]:
        return original(self, first.setdefault(self.key, sent_ms))

    monkeypatch.setattr(writer._Statement, "stamped", stamp_once)
    clock, table, consumer = _world()
    table.throttle["late.txt"] = 1
    store = _store(table, clock)
    store._calls._backoff.delay = lambda attempt: 7.0  # type: ignore[method-assign]

    async def writing() -> None:
        await ingest(
            [_event("late.txt")], store, Deadline(60, clock=clock.time), tombstone_ttl_s=TTL_S
        )

    await _then_follow(clock, consumer, writing())
    assert consumer.missed(table.final_rows()) == ["late.txt"]


@simulated
async def test_a_write_that_lands_after_the_bound_passed_is_stamped_again() -> None:
    # Given a write held in flight for 6 s (> W/2) after it was stamped: the reader's bound
    # passes its stamp at 5 s, it lands at 6 s and is answered then
    clock, table, consumer = _world()
    table.delays["slow.txt"] = [6.0]
    await _then_follow(clock, consumer, _write(table, clock, _event("slow.txt")))
    # Then the writer, answered later than W/2 after the stamp, stamped the row again
    _assert_exactly_once(consumer, table)
    assert set(consumer.state) == {"slow.txt"}


@simulated
async def test_an_answer_that_comes_late_is_followed_by_a_new_stamp() -> None:
    # Given a write that lands at once but whose answer takes 4 s (> W/2)
    clock, table, consumer = _world()
    table.answer_delays["quiet.txt"] = [4.0]
    result: dict[str, Any] = {}

    async def writing() -> None:
        result["r"] = await _write(table, clock, _event("quiet.txt"))

    await _then_follow(clock, consumer, writing())
    # Then it was stamped again (the writer cannot know when it landed); the consumer holds
    # the latest position, never the same one twice
    assert result["r"].restamps == 1
    _assert_exactly_once(consumer, table)


@simulated
async def test_a_write_whose_answer_is_lost_is_stamped_again_after_its_retry_conflicts() -> None:
    # Given a write that lands after 6 s in flight, then the connection drops (no answer):
    # the retry conflicts with the row that very attempt wrote
    clock, table, consumer = _world()
    table.delays["lost.txt"] = [6.0]
    table.lose_answer["lost.txt"] = 1
    result: dict[str, Any] = {}

    async def writing() -> None:
        result["r"] = await _write(table, clock, _event("lost.txt"))

    await _then_follow(clock, consumer, writing())
    # Then the writer re-stamped the row it found to be its own: written once, delivered once
    assert result["r"].written == 1 and result["r"].failed_message_ids == []
    _assert_exactly_once(consumer, table)
    assert set(consumer.state) == {"lost.txt"}


# ---------------------------------------------------------------------- the reader's rule


@simulated
async def test_an_index_that_shows_writes_late_loses_nothing_behind_the_settle_window() -> None:
    # Given an index that shows each write 2 s (< W/2) after it landed, and writes spread
    # over 20 s, some held in flight up to 2 s
    clock, table, consumer = _world(lag_s=2.0)
    rng = random.Random(5)
    for n in range(40):
        table.delays[f"k{n}"] = [rng.choice([0.0, 0.5, 1.5, 2.0])]

    async def writing() -> None:
        for n in range(40):
            await _write(table, clock, _event(f"k{n}", etag=f"e{n}"))
            await clock.sleep(rng.uniform(0, 0.5))

    await _then_follow(clock, consumer, writing(), every_s=0.1)
    _assert_exactly_once(consumer, table)
    assert len(consumer.state) == 40


@simulated
async def test_without_a_settle_window_a_lagging_index_loses_changes() -> None:
    # The same world read with W = 0: the reader's cursor passes stamps the index does not
    # show yet, so changes are lost. The settle window is what prevents it.
    clock = SimClock()
    table = LandingTable(clock)
    consumer = Consumer(LaggyIndex(table, 2.0), clock, 0, BUCKET)

    async def writing() -> None:
        for n in range(10):
            await _write(table, clock, _event(f"k{n}"), settle_ms=0)
            await clock.sleep(0.3)

    await _then_follow(clock, consumer, writing(), every_s=0.1)
    assert len(consumer.missed(table.final_rows())) > 0


@simulated
async def test_overwrites_by_two_invocations_with_a_reader_in_between() -> None:
    # Given one key written by invocation A (held in flight 2 s) and overwritten by B while
    # a reader polls every 100 ms, and the index lags 1 s
    clock, table, consumer = _world(lag_s=1.0)
    table.delays["hot.txt"] = [2.0, 0.0, 0.0, 0.0]
    first, second = _event("hot.txt", etag="a"), _event("hot.txt", etag="b")

    async def writing() -> None:
        async def later() -> None:
            await clock.sleep(1.0)
            await _write(table, clock, second)

        await clock_gather(clock, _write(table, clock, first), later())

    await _then_follow(clock, consumer, writing(), every_s=0.1)
    # Then the consumer ends with B's version, and never saw a (key, position) twice
    _assert_exactly_once(consumer, table)
    assert consumer.state["hot.txt"]["etag"] == "b"


async def clock_gather(clock: SimClock, *coroutines: Any) -> None:
    await asyncio.gather(*coroutines)


@pytest.mark.parametrize("seed", range(6))
@simulated
async def test_churn_of_creates_overwrites_and_deletes_with_faults(seed: int) -> None:
    # Given 4 concurrent writers applying creates, overwrites and deletes of 30 keys, with
    # requests held in flight, answers delayed or lost, throttling, an index lagging up to
    # 2 s, and a consumer reading small pages
    rng = random.Random(seed)
    clock, table, consumer = _world(lag_s=rng.choice([0.0, 1.0, 2.0]))
    consumer.limit = 7
    keys = [f"dir/{n:02d}" for n in range(30)]
    for key in keys:
        table.delays[key] = [rng.choice([0.0, 0.0, 0.5, 2.0, 3.0, 6.0]) for _ in range(20)]
        table.answer_delays[key] = [rng.choice([0.0, 0.0, 0.0, 3.0]) for _ in range(20)]
        table.throttle[key] = rng.choice([0, 0, 1])
        table.lose_answer[key] = rng.choice([0, 0, 0, 1])

    async def one_writer(w: int) -> None:
        for step in range(15):
            key = rng.choice(keys)
            delete = rng.random() < 0.3
            await _write(table, clock, _event(key, delete=delete, etag=f"w{w}s{step}"))
            await clock.sleep(rng.uniform(0, 1.5))

    async def writing() -> None:
        await clock_gather(clock, *(one_writer(w) for w in range(4)))

    await _then_follow(clock, consumer, writing(), every_s=rng.choice([0.1, 0.7, 3.0]))
    # Then every key's final version was delivered, no (key, position) twice, and each key's
    # positions increased
    _assert_exactly_once(consumer, table)
    assert {k: r.get("deleted", False) for k, r in consumer.state.items()} == {
        k: r.get("deleted", False) for k, r in table.final_rows().items()
    }


@simulated
async def test_a_position_never_confirmed_is_logged(caplog: Any) -> None:
    # Given a table whose every answer for one key comes 4 s (> W/2) late
    clock, table, _ = _world()
    table.answer_delays["never.txt"] = [4.0] * 10
    # When the writer writes it
    (result,) = await clock.run(_write(table, clock, _event("never.txt")))
    # Then it stamped the row again 5 times, then said it could not confirm the position
    assert result.restamps == 5
    assert "not confirmed after 5 re-stamps" in caplog.text


@simulated
async def test_a_row_that_is_not_a_files_is_written_without_a_position() -> None:
    # Given a system item (no bucket: e.g. an aggregate) among a file's rows
    clock, table, _ = _world()
    store = _store(table, clock)
    system = {"pk": "#totals/" + BUCKET, "count": 3}
    file_row = {"pk": f"{BUCKET}/a", "filename": "a", "bucket": BUCKET, "event_time": "t"}
    writes = [ConditionalWrite(system, None), ConditionalWrite(file_row, None)]
    # When both are written through the stamping writer
    (outcomes,) = await clock.run(
        store.write_conditional(writes, Deadline(5, clock.time), OpStats())
    )
    # Then both are written, and only the file's row carries a position
    assert set(outcomes.values()) == {WriteOutcome.WRITTEN}
    stored = table.inner.tables[TABLE]
    assert "changed" not in stored["#totals/" + BUCKET] and "changed" in stored[f"{BUCKET}/a"]
