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
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from pipeline.adapters.dynamo.errors import (
    THROTTLE_CODES,
    error_code,
    is_transient,
    surely_not_applied,
)
from pipeline.core.model import (
    CHANGED,
    MAX_ITEM_BYTES,
    MAX_KEY_BYTES,
    PARTITION_KEY,
    ROW_ATTRIBUTES,
    SEQ,
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
SPLITTABLE_CODES = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})
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
COMPARED_ATTRIBUTES = tuple(name for name in STATE_ATTRIBUTES if name != PARTITION_KEY)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


T = TypeVar("T")


def _attr(value: Any) -> dict[str, Any]:
    if value.__class__ is str:
        return {"S": value}
    if value.__class__ is bool:
        return {"BOOL": value}
    return {"N": str(value)}


def to_item(row: dict[str, Any]) -> dict[str, Any]:
    """Serialize a row of str/int/bool values to DynamoDB's attribute-value JSON."""
    return {name: _attr(value) for name, value in row.items()}


def from_attribute(value: dict[str, Any]) -> Any:
    """Deserialize one attribute value of the shapes this table stores."""
    if "S" in value:
        return value["S"]
    if "N" in value:
        return int(value["N"]) if value["N"].lstrip("-").isdigit() else float(value["N"])
    if "BOOL" in value:
        return value["BOOL"]
    return None


def item_size(row: dict[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values, UTF-8 bytes (an upper bound)."""
    total = 0
    for name, value in row.items():
        total += len(name.encode("utf-8"))
        total += 1 if isinstance(value, bool) else len(str(value).encode("utf-8"))
    return total


def check_row(row: dict[str, Any]) -> str | None:
    """Why DynamoDB would refuse this row, or None if it fits its limits."""
    key = str(row[PARTITION_KEY])
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"partition key is {len(key.encode())} bytes, DynamoDB allows {MAX_KEY_BYTES}"
    characters = sum(len(name) + len(str(value)) for name, value in row.items())
    if characters * 4 <= MAX_ITEM_BYTES:  # UTF-8 takes at most 4 bytes a character
        return None
    size = item_size(row)
    if size > MAX_ITEM_BYTES:
        return f"item is {size} bytes, DynamoDB allows {MAX_ITEM_BYTES}"
    return None


def is_retryable(error: BaseException) -> bool:
    """Throttling, 5xx, and the network failing: connection refused/reset, connect and read
    timeouts (botocore's ConnectionError is not an HTTPClientError), aiohttp errors."""
    if isinstance(error, ClientError):
        return is_transient(error)
    return isinstance(
        error,
        HTTPClientError
        | BotocoreConnectionError
        | aiohttp.ClientError
        | asyncio.TimeoutError
        | ConnectionError,
    )


def _parameter(value: Any) -> dict[str, Any]:
    """A stored value as a statement parameter; TypeError for shapes this table never holds."""
    if value.__class__ is str:
        return {"S": value}
    if value.__class__ is bool:
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    raise TypeError(f"unsupported attribute value {value!r}")


def _parameters(row: dict[str, Any], names: Sequence[str]) -> list[dict[str, Any]]:
    """The row's values of `names` as parameters (a row holds only str, bool and numbers)."""
    return [
        {"S": value}
        if (kind := (value := row[name]).__class__) is str
        else {"BOOL": value}
        if kind is bool
        else {"N": str(value)}
        for name in names
    ]


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"attribute name {name!r} cannot be written by this adapter")


@functools.lru_cache(maxsize=256)
def insert_statement(table: str, names: tuple[str, ...]) -> str:
    """`INSERT INTO "table" VALUE {'a': ?, ...}`: fails with DuplicateItem if the key exists."""
    _check_names(names)
    values = ", ".join(f"'{name}': ?" for name in names)
    return f'INSERT INTO "{table}" VALUE {{{values}}}'


@functools.lru_cache(maxsize=1024)
def update_statement(
    table: str,
    names: tuple[str, ...],
    compared: tuple[tuple[str, bool], ...],
    ordered: bool,
) -> str:
    """`UPDATE ... SET ... REMOVE ... WHERE "filename"=? AND <condition>`.

    Parameters, in order: the values of `names` (without the key), the key, then (when
    `ordered`) the row's `seq`, then the value of each `compared` attribute that is present.
    The condition: every compared attribute equals its expected value or, when it was absent,
    is still MISSING; or, `ordered`, the stored `seq` is lower than the row's.
    """
    _check_names(names)
    sets = [name for name in names if name != PARTITION_KEY]
    removes = [name for name in ROW_ATTRIBUTES if name not in names]
    clauses = [f'SET "{name}"=?' for name in sets] + [f'REMOVE "{name}"' for name in removes]
    same = " AND ".join(
        f'"{name}"=?' if present else f'"{name}" IS MISSING' for name, present in compared
    )
    condition = f'("{SEQ}"<? OR ({same}))' if ordered else f"({same})"
    return f'UPDATE "{table}" {" ".join(clauses)} WHERE "{PARTITION_KEY}"=? AND {condition}'


@functools.lru_cache(maxsize=256)
def restamp_statement(table: str, compared: tuple[tuple[str, bool], ...]) -> str:
    """`UPDATE ... SET "changed"=? WHERE <key>=? AND <the row's version>`: a new feed
    position for a row only while it still holds the version written. Parameters: the new
    position, the key, then the value of each `compared` attribute that is present."""
    same = " AND ".join(
        f'"{name}"=?' if present else f'"{name}" IS MISSING' for name, present in compared
    )
    return f'UPDATE "{table}" SET "{CHANGED}"=? WHERE "{PARTITION_KEY}"=? AND {same}'


def _restamp(table: str, row: dict[str, Any], position: str) -> dict[str, Any]:
    compared = tuple((name, name in row) for name in COMPARED_ATTRIBUTES)
    parameters = [{"S": position}, {"S": row[PARTITION_KEY]}]
    parameters.extend(_parameter(row[name]) for name, present in compared if present)
    return {"Statement": restamp_statement(table, compared), "Parameters": parameters}


def _changed_index(write: ConditionalWrite) -> int:
    """Where the `changed` value sits in the statement's parameters (`write_statement`)."""
    names = [name for name in write.row if write.expected is None or name != PARTITION_KEY]
    return names.index(CHANGED)


def write_statement(table: str, write: ConditionalWrite) -> dict[str, Any]:
    """The PartiQL statement (with Parameters) of one conditional write."""
    row = write.row
    names = tuple(row)
    if write.expected is None:
        return {
            "Statement": insert_statement(table, names),
            "Parameters": _parameters(row, names),
        }
    ordered = write.ordered and isinstance(row.get(SEQ), str)
    compared = tuple((name, name in write.expected) for name in COMPARED_ATTRIBUTES)
    parameters = _parameters(row, [name for name in names if name != PARTITION_KEY])
    parameters.append({"S": row[PARTITION_KEY]})
    if ordered:
        parameters.append({"S": row[SEQ]})
    parameters.extend(_parameter(write.expected[name]) for name, present in compared if present)
    return {
        "Statement": update_statement(table, names, compared, ordered),
        "Parameters": parameters,
    }


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
        self._slots = asyncio.Semaphore(concurrency)
        self._backoff = backoff or Backoff()
        self._sleep = sleep

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
                self._run(list(keys[i : i + GET_CHUNK]), call, lambda key: key, deadline, stats)
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
                stamp_at = _changed_index(write) if CHANGED in write.row else -1
            except (TypeError, ValueError) as error:  # e.g. a stored value of another type
                stats.failures[key] = f"cannot build the conditional write: {error}"[:300]
                continue
            tail = position_tail(str(write.row[CHANGED])) if stamp_at >= 0 else ""
            statements.append(_Statement(key, write.row, statement, stamp_at, tail))
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
                self._run(
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
        return outcomes

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
                    _restamp(self._table, e.row, f"{sent_ms:0{MS_DIGITS}d}{e.tail}") for e in chunk
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
                    self._run(pending[i : i + STATEMENT_CHUNK], call, _key, deadline, stats)
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
                self._run(requests[i : i + WRITE_CHUNK], call, key_of, deadline, stats)
                for i in range(0, len(requests), WRITE_CHUNK)
            )
        )

    async def _run(
        self,
        pending: list[T],
        call: Callable[[list[T]], Awaitable[list[T]]],
        key_of: Callable[[T], str],
        deadline: Deadline,
        stats: OpStats,
        unknown: set[str] | None = None,
    ) -> None:
        """Call until nothing is pending, retrying and isolating failures; never raises.

        `unknown` collects the keys of a call retried after an error that does not say
        whether DynamoDB applied it (writes only: a retried write may conflict with itself)."""
        attempt = 0
        while pending:
            if deadline.remaining() <= 0:
                self._fail(pending, key_of, stats, "out of time before DynamoDB accepted it")
                return
            try:
                async with self._slots:
                    stats.calls += 1
                    left = await call(pending)
            except Exception as error:
                if is_retryable(error):
                    left = pending
                    reason = _describe(error)
                    if isinstance(error, ClientError) and error_code(error) in THROTTLE_CODES:
                        stats.throttles += 1
                    if unknown is not None and not surely_not_applied(error):
                        unknown.update(key_of(entry) for entry in pending)
                elif isinstance(error, ClientError) and error_code(error) in SPLITTABLE_CODES:
                    if len(pending) == 1:
                        self._fail(pending, key_of, stats, _describe(error))
                        return
                    middle = len(pending) // 2
                    await asyncio.gather(
                        self._run(pending[:middle], call, key_of, deadline, stats, unknown),
                        self._run(pending[middle:], call, key_of, deadline, stats, unknown),
                    )
                    return
                else:
                    self._fail(pending, key_of, stats, _describe(error))
                    return
            else:
                reason = "unprocessed (throttled)"
                if left:
                    stats.throttles += 1
            if not left:
                return
            pending = left
            attempt += 1
            delay = self._backoff.delay(attempt)
            if delay >= deadline.remaining():
                self._fail(pending, key_of, stats, f"{reason}; no time left to retry")
                return
            stats.retries += 1
            await self._sleep(delay)

    @staticmethod
    def _fail(pending: Sequence[T], key_of: Callable[[T], str], stats: OpStats, why: str) -> None:
        for entry in pending:
            stats.failures[key_of(entry)] = why


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        message = str(error.response.get("Error", {}).get("Message", ""))[:200]
        return f"{error_code(error)}: {message}"
    return type(error).__name__
