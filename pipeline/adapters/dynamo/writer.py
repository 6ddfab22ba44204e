"""The ingest side's DynamoDB adapter: consistent reads and race-free conditional writes.

- `read_versions` / `read_rows`: BatchGetItem with ConsistentRead (100 keys a call).
- `write_conditional`: PartiQL BatchExecuteStatement (25 statements a call). A row is
  `INSERT`ed where the caller saw no item (DynamoDB refuses it with `DuplicateItem` if one
  appeared since) and `UPDATE`d where it saw one, with a WHERE condition that holds only
  while the stored version attributes and size are still those the caller saw
  (compare-and-swap: exactly one transition from the row read, whose delta the folder
  totals add),
  or, for an `ordered` write, while the stored `seq` is still lower than the row's. So a
  write can never replace a newer row, whatever other invocations do in between: a
  refused write comes back as a `conflict` for the caller to re-read and decide again.
- Change feed: with a `Stamper`, every row written carries its feed position (`changed`),
  shard and kind, stamped when each attempt is sent (a retry is stamped again). A row whose
  answer came later than the stamping rule allows, or whose attempt ended without an answer
  and which then turned out to hold the row written, is stamped again with a conditional
  `UPDATE ... SET "changed"` (`pipeline.feed.positions`).
- `write_rows`: unconditional BatchWriteItem (the opt-in `INGEST_WRITE_MODE=batch`; it
  can let an older event overwrite a newer one written between its read and its write).

Every call goes through one retry loop: unprocessed items/keys and retryable errors are
retried with capped exponential backoff and full jitter while the invocation's deadline
allows (connection errors and timeouts too: a network blip is "not now", and a retried
conditional write is idempotent: it conflicts with itself and is re-decided); a
ValidationException on a multi-item request is bisected until the item that
caused it stands alone, so one bad item never fails its neighbours. Whatever cannot be
done comes back as a set of failed keys, never as an exception.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.adapters.dynamo.retrying import RetryingCalls
from pipeline.adapters.dynamo.statements import (
    changed_index,
    check_row,
    from_attribute,
    restamp_of,
    to_item,
    write_statement,
)
from pipeline.core.model import (
    CHANGED,
    PARTITION_KEY,
    STATE_ATTRIBUTES,
    ConditionalWrite,
    WriteOutcome,
)
from pipeline.core.retry import Backoff, Deadline, OpStats, Sleep, real_sleep
from pipeline.feed.positions import MS_DIGITS, Stamper, position_tail

logger = logging.getLogger(__name__)

WRITE_CHUNK = 25
"""BatchWriteItem's limit on put/delete requests per call."""
GET_CHUNK = 100
"""BatchGetItem's limit on keys per call."""
STATEMENT_CHUNK = 25
"""BatchExecuteStatement's limit on statements per call."""
CONFLICT_CODES = frozenset({"ConditionalCheckFailed", "DuplicateItem"})
"""Per-statement errors meaning "the stored item is not what you expected": re-read."""
RETRYABLE_STATEMENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceeded",
        "ThrottlingError",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)
"""Per-statement errors meaning "not now": the statement is sent again after a backoff."""


MAX_RESTAMPS = 5
"""Re-stamps of one row in a row, each answered late, before the writer gives up on proving
its position (logged: the change may be missing from the feed; raise FEED_SETTLE_MS)."""


@dataclass(frozen=True, slots=True)
class _Statement:
    """A conditional write ready to send: `stamped(ms)` sets its feed position (when it has
    one: `stamp_at` is the index of `changed` among the parameters, else -1)."""

    key: str
    row: dict[str, Any]
    statement: dict[str, Any]
    stamp_at: int = -1
    tail: str = ""

    def stamped(self, sent_ms: int) -> dict[str, Any]:
        """The statement with its position stamped at `sent_ms` (as it is without one)."""
        if self.stamp_at < 0:
            return self.statement
        parameters = list(self.statement["Parameters"])
        parameters[self.stamp_at] = {"S": f"{sent_ms:0{MS_DIGITS}d}{self.tail}"}
        return {"Statement": self.statement["Statement"], "Parameters": parameters}


def _key(entry: _Statement) -> str:
    return entry.key


class DynamoFileStore:
    """Reads and writes rows of the files table through an aiobotocore client."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        concurrency: int = 16,
        backoff: Backoff | None = None,
        sleep: Sleep = real_sleep,
        stamper: Stamper | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stamper = stamper
        self._clock = clock
        self._client = client
        self._table = table_name
        self._calls = RetryingCalls(asyncio.Semaphore(concurrency), backoff or Backoff(), sleep)

    @property
    def client(self) -> Any:
        """The aiobotocore client (shared with the folder counters' writer)."""
        return self._client

    async def read_versions(
        self, keys: Sequence[str], deadline: Deadline, stats: OpStats
    ) -> dict[str, dict[str, Any]]:
        """Stored version and size (`STATE_ATTRIBUTES`) of each key that has a row,
        read consistently; keys that could not be read land in `stats.failures`."""
        return await self._batch_get(keys, STATE_ATTRIBUTES, deadline, stats)

    async def read_rows(
        self, keys: Sequence[str], deadline: Deadline, stats: OpStats
    ) -> dict[str, dict[str, Any]]:
        """The full stored row of each key that has one (consistent read); keys that could
        not be read land in `stats.failures`."""
        return await self._batch_get(keys, None, deadline, stats)

    async def _batch_get(
        self,
        keys: Sequence[str],
        attributes: Sequence[str] | None,
        deadline: Deadline,
        stats: OpStats,
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        spec: dict[str, Any] = {"ConsistentRead": True}
        if attributes is not None:
            aliases = {f"#a{i}": name for i, name in enumerate(attributes)}
            spec["ProjectionExpression"] = ", ".join(aliases)
            spec["ExpressionAttributeNames"] = aliases

        async def call(chunk: list[str]) -> list[str]:
            response = await self._client.batch_get_item(
                RequestItems={
                    self._table: {"Keys": [{PARTITION_KEY: {"S": key}} for key in chunk], **spec}
                }
            )
            for item in response.get("Responses", {}).get(self._table, []):
                row = {name: from_attribute(value) for name, value in item.items()}
                found[row[PARTITION_KEY]] = row
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table, {})
            return [key[PARTITION_KEY]["S"] for key in unprocessed.get("Keys", [])]

        await asyncio.gather(
            *(
                self._calls.run(
                    list(keys[i : i + GET_CHUNK]), call, lambda key: key, deadline, stats
                )
                for i in range(0, len(keys), GET_CHUNK)
            )
        )
        return found

    async def write_conditional(
        self, writes: Sequence[ConditionalWrite], deadline: Deadline, stats: OpStats
    ) -> dict[str, WriteOutcome]:
        """Apply each write only if the stored item is still what it expects (see
        `ConditionalWrite`); one outcome per key (keys must be unique). Never raises for
        DynamoDB's answers: failures' reasons land in `stats.failures`."""
        outcomes: dict[str, WriteOutcome] = {}
        statements = self._prepare(writes, outcomes, stats)
        late: set[str] = set()
        unanswered: set[str] = set()

        async def call(chunk: list[_Statement]) -> list[_Statement]:
            sent_ms = self._stamper.now_ms() if self._stamper is not None else 0
            try:
                response = await self._client.batch_execute_statement(
                    Statements=[entry.stamped(sent_ms) for entry in chunk]
                )
            except Exception:  # no answer: the attempt may still land, with its old stamp
                unanswered.update(entry.key for entry in chunk)
                raise
            answers = response.get("Responses", [])
            if len(answers) != len(chunk):
                raise RuntimeError(
                    f"BatchExecuteStatement answered {len(answers)} of {len(chunk)} statements"
                )
            overdue = self._stamper is not None and self._stamper.late(sent_ms)
            landed = self._clock()
            left = []
            for entry, answer in zip(chunk, answers, strict=True):
                key = entry.key
                error = answer.get("Error")
                if not error:
                    outcomes[key] = WriteOutcome.WRITTEN
                    stats.landed_at[key] = landed
                    if overdue:
                        late.add(key)
                    continue
                code = str(error.get("Code", ""))
                if code in CONFLICT_CODES:
                    stats.conflicts += 1
                    outcomes[key] = WriteOutcome.CONFLICT
                elif code in RETRYABLE_STATEMENT_CODES:
                    if code == "InternalServerError":  # it may have been applied
                        stats.uncertain.add(key)
                    left.append(entry)
                else:
                    message = str(error.get("Message", ""))[:200]
                    stats.failures[key] = f"{code}: {message}"
                    outcomes[key] = WriteOutcome.FAILED
            return left

        await asyncio.gather(
            *(
                self._calls.run(
                    statements[i : i + STATEMENT_CHUNK],
                    call,
                    lambda entry: entry.key,
                    deadline,
                    stats,
                    unknown=stats.uncertain,
                )
                for i in range(0, len(statements), STATEMENT_CHUNK)
            )
        )
        if self._stamper is not None:
            await self._confirm(statements, outcomes, late, unanswered, deadline, stats)
        return outcomes

    def _prepare(
        self,
        writes: Sequence[ConditionalWrite],
        outcomes: dict[str, WriteOutcome],
        stats: OpStats,
    ) -> list[_Statement]:
        """The statements to send, stamped for the feed; a write that cannot be sent is
        FAILED in `outcomes` with its reason, every other one FAILED until answered."""
        statements: list[_Statement] = []
        for write in writes:
            key = str(write.row[PARTITION_KEY])
            if key in outcomes:
                raise ValueError(f"two conditional writes for one key: {key[:100]!r}")
            if self._stamper is not None:
                row = self._stamper.stamp(write.row, write.expected, 0)
                write = ConditionalWrite(row, write.expected, write.ordered)
            problem = check_row(write.row)
            if problem:
                stats.failures[key] = problem
                outcomes[key] = WriteOutcome.FAILED
                continue
            outcomes[key] = WriteOutcome.FAILED  # until DynamoDB says otherwise
            try:
                statement = write_statement(self._table, write)
                stamp_at = changed_index(write) if CHANGED in write.row else -1
            except (TypeError, ValueError) as error:  # e.g. a stored value of another type
                stats.failures[key] = f"cannot build the conditional write: {error}"[:300]
                continue
            tail = position_tail(str(write.row[CHANGED])) if stamp_at >= 0 else ""
            statements.append(_Statement(key, write.row, statement, stamp_at, tail))
        return statements

    async def _confirm(
        self,
        statements: Sequence[_Statement],
        outcomes: dict[str, WriteOutcome],
        late: set[str],
        unanswered: set[str],
        deadline: Deadline,
        stats: OpStats,
    ) -> None:
        """Re-stamp the rows whose position is not proven, turning a conflict that was the
        writer's own unanswered attempt into WRITTEN."""
        # Written with an answer too late to prove when it landed; or sent without an
        # answer and then refused: perhaps by the very row that attempt wrote.
        suspects = [
            entry
            for entry in statements
            if entry.stamp_at >= 0
            and (
                entry.key in late
                or (entry.key in unanswered and outcomes[entry.key] is WriteOutcome.CONFLICT)
            )
        ]
        if suspects:
            for key in await self._restamp(suspects, deadline, stats):
                if outcomes[key] is WriteOutcome.CONFLICT:
                    stats.conflicts -= 1
                    stats.landed_at[key] = self._clock()
                    stats.confirmed_by_restamp.add(key)
                outcomes[key] = WriteOutcome.WRITTEN

    async def _restamp(
        self, entries: Sequence[_Statement], deadline: Deadline, stats: OpStats
    ) -> set[str]:
        """Give `entries`' rows a new position while they hold the version written, until
        an answer comes within the stamping rule; the keys whose row was stamped again."""
        assert self._stamper is not None
        stamper = self._stamper
        pending = list(entries)
        restamped: set[str] = set()
        again: list[_Statement] = []
        unconfirmed: list[_Statement] = []

        async def call(chunk: list[_Statement]) -> list[_Statement]:
            sent_ms = stamper.now_ms()
            response = await self._client.batch_execute_statement(
                Statements=[
                    restamp_of(self._table, e.row, f"{sent_ms:0{MS_DIGITS}d}{e.tail}")
                    for e in chunk
                ]
            )
            overdue = stamper.late(sent_ms)
            left = []
            for entry, answer in zip(chunk, response.get("Responses", []), strict=True):
                error = answer.get("Error")
                code = str(error.get("Code", "")) if error else ""
                if not error:
                    stats.restamps += 1
                    restamped.add(entry.key)
                    if overdue:
                        again.append(entry)
                elif code in RETRYABLE_STATEMENT_CODES:
                    left.append(entry)
                elif code not in CONFLICT_CODES:  # a conflict: a newer version, stamped anew
                    stats.failures[entry.key] = f"feed re-stamp failed: {code}"
            return left

        for _ in range(MAX_RESTAMPS):
            await asyncio.gather(
                *(
                    self._calls.run(pending[i : i + STATEMENT_CHUNK], call, _key, deadline, stats)
                    for i in range(0, len(pending), STATEMENT_CHUNK)
                )
            )
            if not again:
                break
            pending = list(again)
            again.clear()
        else:
            unconfirmed = pending
        for entry in unconfirmed:
            logger.warning(
                "Feed position of a row not confirmed after %d re-stamps answered late: "
                "the change may be missing from GET /changes (FEED_SETTLE_MS too short?)",
                MAX_RESTAMPS,
                extra={"object_key": entry.key[:256]},
            )
        return restamped

    async def write_rows(
        self, rows: Sequence[dict[str, Any]], deadline: Deadline, stats: OpStats
    ) -> None:
        """Put every row (unique keys); keys that could not be written land in `stats.failures`.

        With a `Stamper`, rows are stamped when each attempt is sent; this opt-in mode knows
        no stored row, so it calls every live write `created`, and it does not re-stamp."""
        requests: list[dict[str, Any]] = []
        for row in rows:
            if self._stamper is not None:
                row = self._stamper.stamp(row, None, 0)
            problem = check_row(row)
            if problem:
                stats.failures[row[PARTITION_KEY]] = problem
            else:
                requests.append({"PutRequest": {"Item": to_item(row)}})

        async def call(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if self._stamper is not None:
                sent_ms = self._stamper.now_ms()
                for request in chunk:
                    item = request["PutRequest"]["Item"]
                    if CHANGED not in item:  # not a file's row
                        continue
                    tail = position_tail(item[CHANGED]["S"])
                    item[CHANGED] = {"S": f"{sent_ms:0{MS_DIGITS}d}{tail}"}
            response = await self._client.batch_write_item(RequestItems={self._table: chunk})
            left = list(response.get("UnprocessedItems", {}).get(self._table, []))
            landed = self._clock()
            unprocessed = {key_of(request) for request in left}
            for request in chunk:
                if (key := key_of(request)) not in unprocessed:
                    stats.landed_at[key] = landed
            return left

        def key_of(request: dict[str, Any]) -> str:
            return str(request["PutRequest"]["Item"][PARTITION_KEY]["S"])

        await asyncio.gather(
            *(
                self._calls.run(requests[i : i + WRITE_CHUNK], call, key_of, deadline, stats)
                for i in range(0, len(requests), WRITE_CHUNK)
            )
        )
