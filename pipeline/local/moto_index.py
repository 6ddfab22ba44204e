"""O(log n + page) Query on moto's global secondary indexes, with moto's own results (moto 5.2).

moto answers every Query on an index by listing the whole table, sorting it and testing each
item against the key condition: at 100,000 items one shard query of the listing index took
~1 s, and a page queries every shard. This module keeps, per table and index, each partition's
items sorted by sort key, and answers a Query by bisecting to the key range. The sorted lists
are rebuilt lazily after any DynamoDB request that may write (everything but reads and
describes), counted before and after the write so that a list built while a write was in
flight is never reused.

Writes are counted by wrapping the DynamoDB handler installed when `apply` runs (after
`moto_partiql`'s, which it keeps); if another patch later replaces or removes that wrapper,
the next query notices, goes to moto's own code once, wraps the new handler and drops every
sorted list: stale lists are never used.

Only the case the listing uses takes the fast path: a GSI with one partition and one String
sort key, an equality on the partition key, an optional sort key condition, forward order,
no ExclusiveStartKey and no legacy filters. Everything else, and any partition holding a sort
key that is not a String, goes to moto's own `Table.query`. The fast path reproduces moto's
loop exactly (Limit, the 1 MB cut, when LastEvaluatedKey is set, index projection, filter and
projection expressions): `tests/integration/test_moto_index.py` compares the two on random
tables and queries.
"""

from __future__ import annotations

import bisect
import copy
import threading
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, GlobalSecondaryIndex, Table
from moto.dynamodb.responses import DynamoHandler

_APPLIED = False
_lock = threading.Lock()
_generation = 0
READ_ONLY_ACTIONS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "DescribeTable",
        "DescribeTimeToLive",
        "DescribeContinuousBackups",
        "DescribeEndpoints",
        "DescribeLimits",
        "ListTables",
        "ListTagsOfResource",
    }
)
_ORIGINAL_QUERY = Table.query
"""The `Table.query` this module falls back to (the one installed before `apply`)."""
_ORIGINAL_CALL_ACTION = DynamoHandler.call_action
"""The handler this module's wraps (the one installed before `apply`: other patches kept)."""
_MAX_ITEM_BYTES = 400 * 1_024


def _bump() -> None:
    global _generation
    with _lock:
        _generation += 1


def _call_action(self: DynamoHandler) -> Any:
    """The installed handler, counting every request that may write (before and after it)."""
    try:
        action = self._get_action()
    except Exception:  # an unknown action: assume it writes
        action = ""
    if action in READ_ONLY_ACTIONS:
        return _ORIGINAL_CALL_ACTION(self)
    _bump()
    try:
        return _ORIGINAL_CALL_ACTION(self)
    finally:
        _bump()


class _Partition:
    __slots__ = ("items", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.items: list[Item] = []


def _counting_writes() -> bool:
    """Whether every request still goes through `_call_action` (another patch may have
    replaced or removed the handler since `apply`: then the sorted lists cannot be trusted)."""
    handler: Any = DynamoHandler.call_action
    while handler is not None:
        if handler is _call_action:
            return True
        handler = getattr(handler, "__wrapped__", None)
    return False


def _partitions(table: Table, index: GlobalSecondaryIndex, hash_attr: str, range_attr: str) -> Any:
    """{(type, value): _Partition} of `index`, rebuilt when the table may have changed.

    Returns None when a sort key is not a String (moto then sorts it its own way).
    """
    with _lock:
        generation = _generation
    caches: dict[str, tuple[int, Any]] = table.__dict__.setdefault("_listing_index_cache", {})
    cached = caches.get(index.name)
    if cached is not None and cached[0] == generation:
        return cached[1]
    entries: dict[Any, list[tuple[str, Any, Item]]] = {}
    sortable = True
    items: list[Item] = list(table.items.values())  # type: ignore[arg-type]  # hash-only table
    for item in items:
        hash_value = item.attrs.get(hash_attr)
        range_value = item.attrs.get(range_attr)
        if not hash_value or not range_value:
            continue  # moto: an item without both key attributes is not in the index
        if range_value.type != "S":
            sortable = False
            break
        key = (hash_value.type, hash_value.cast_value)
        entries.setdefault(key, []).append((range_value.value, item.hash_key.cast_value, item))
    partitions: dict[Any, _Partition] | None = None
    if sortable:
        partitions = {}
        for key, rows in entries.items():
            rows.sort(key=lambda row: (row[0], row[1]))
            partition = _Partition()
            partition.keys = [row[0] for row in rows]
            partition.items = [row[2] for row in rows]
            partitions[key] = partition
    caches[index.name] = (generation, partitions)
    return partitions


def _window(keys: list[str], comparison: str | None, values: list[DynamoType]) -> tuple[int, int]:
    """Positions in `keys` that can satisfy the sort key condition (a superset, then checked)."""
    if comparison is None:
        return 0, len(keys)
    op = comparison.upper()
    texts = [v.value for v in values]
    if op in ("=", "EQ"):
        return bisect.bisect_left(keys, texts[0]), bisect.bisect_right(keys, texts[0])
    if op in ("<", "LT", "<=", "LE"):
        return 0, bisect.bisect_right(keys, texts[0])
    if op in (">", "GT", ">=", "GE"):
        return bisect.bisect_left(keys, texts[0]), len(keys)
    if op == "BETWEEN":
        return bisect.bisect_left(keys, texts[0]), bisect.bisect_right(keys, texts[1])
    if op == "BEGINS_WITH":
        start = bisect.bisect_left(keys, texts[0])
        stop = start
        while stop < len(keys) and keys[stop].startswith(texts[0]):
            stop += 1
        return start, stop
    raise LookupError(op)


def _query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    consistent_read: bool = False,
    filter_expression: Any = None,
    hash_key_conditions: list[tuple[str, DynamoType]] | None = None,
    range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None = None,
    **filter_kwargs: Any,
) -> tuple[list[Item], int, dict[str, Any] | None]:
    args: tuple[Any, ...] = (hash_key, range_comparison, range_objs, limit, exclusive_start_key)
    args += (scan_index_forward, projection_expressions, index_name, consistent_read)
    kwargs = {
        "filter_expression": filter_expression,
        "hash_key_conditions": hash_key_conditions,
        "range_key_conditions": range_key_conditions,
        **filter_kwargs,
    }
    fast = _fast_query(self, *args, filter_expression, hash_key_conditions, range_key_conditions)  # type: ignore[call-arg]
    if fast is None or filter_kwargs:
        return _ORIGINAL_QUERY(self, *args, **kwargs)
    return fast


def _fast_query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None,
    consistent_read: bool,
    filter_expression: Any,
    hash_key_conditions: list[tuple[str, DynamoType]] | None,
    range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None,
) -> tuple[list[Item], int, dict[str, Any] | None] | None:
    """The fast path, or None when the query is not of the shape it handles."""
    if not index_name or exclusive_start_key is not None or scan_index_forward is False:
        return None
    if not _counting_writes():
        _rehook()
        return None  # writes since the hook was lost were not counted: moto's own, this once
    index = {i.name: i for i in self.all_indexes()}.get(index_name)
    if not isinstance(index, GlobalSecondaryIndex) or consistent_read:
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(ranges) != 1 or self.range_key_attr is not None:
        return None
    if not hash_key_conditions or len(hash_key_conditions) != 1:
        return None
    if hash_key_conditions[0][0] != hashes[0] or len(range_key_conditions or []) > 1:
        return None
    if range_key_conditions and range_key_conditions[0][0] != ranges[0]:
        return None
    if any(v.type != "S" for v in range_objs):
        return None
    partitions = _partitions(self, index, hashes[0], ranges[0])
    if partitions is None:
        return None
    expected = hash_key_conditions[0][1]
    partition = partitions.get((expected.type, expected.cast_value))
    if partition is None:
        candidates: list[Item] = []
        start = stop = 0
    else:
        candidates = partition.items
        try:
            start, stop = _window(partition.keys, range_comparison, range_objs)
        except LookupError:
            return None
    results: list[Item] = []
    result_size = 0
    last_evaluated_key = None
    for result in candidates[start:stop]:
        if len(results) == limit or result_size + result.size() > RESULT_SIZE_LIMIT:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
            break
        if range_comparison and not result.attrs[ranges[0]].compare(range_comparison, range_objs):
            continue  # never happens for a correct window; kept to match moto's test
        results.append(result)
        result_size += result.size()
    else:
        # moto keeps looping over the partition's later items (which fail the condition):
        # the first one to reach the limit, or to cross 1 MB, sets LastEvaluatedKey
        rest = candidates[stop:]
        near_1mb = result_size > RESULT_SIZE_LIMIT - _MAX_ITEM_BYTES
        if (
            rest
            and results
            and (
                len(results) == limit
                or (near_1mb and any(result_size + i.size() > RESULT_SIZE_LIMIT for i in rest))
            )
        ):
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
    scanned_count = len(results)
    results = copy.deepcopy(results)
    results = [index.project(r) for r in results]
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expressions:
        results = [r.project(projection_expressions) for r in results]
    return results, scanned_count, last_evaluated_key


def _rehook() -> None:
    """Wrap the handler installed now (another patch replaced ours) and drop every list."""
    global _ORIGINAL_CALL_ACTION
    with _lock:
        if _counting_writes():
            return
        _ORIGINAL_CALL_ACTION = DynamoHandler.call_action
        _call_action.__wrapped__ = _ORIGINAL_CALL_ACTION  # type: ignore[attr-defined]
        DynamoHandler.call_action = _call_action  # type: ignore[method-assign]
    _bump()


def original_query(table: Table, *args: Any, **kwargs: Any) -> Any:
    """moto's own `Table.query` (for equivalence tests)."""
    return _ORIGINAL_QUERY(table, *args, **kwargs)


def apply() -> None:
    """Install the fast index Query into moto (idempotent)."""
    global _APPLIED, _ORIGINAL_QUERY, _ORIGINAL_CALL_ACTION
    if _APPLIED:
        return
    # wrap what is installed now (e.g. moto_partiql's serializing handler), not moto's own
    _ORIGINAL_QUERY = Table.query
    _ORIGINAL_CALL_ACTION = DynamoHandler.call_action
    Table.query = _query  # type: ignore[method-assign]
    _call_action.__wrapped__ = _ORIGINAL_CALL_ACTION  # type: ignore[attr-defined]
    DynamoHandler.call_action = _call_action  # type: ignore[method-assign]
    _APPLIED = True
