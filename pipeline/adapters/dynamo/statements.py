"""Rows as DynamoDB items, and the PartiQL statements of ingest's conditional writes: `INSERT`
where no item was seen, `UPDATE ... WHERE` (compare-and-swap on the version attributes and
size seen, or `seq` lower for an ordered write), and the feed's re-stamp."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from pipeline.core.model import (
    CHANGED,
    MAX_ITEM_BYTES,
    MAX_KEY_BYTES,
    PARTITION_KEY,
    ROW_ATTRIBUTES,
    SEQ,
    STATE_ATTRIBUTES,
    ConditionalWrite,
)

COMPARED_ATTRIBUTES = tuple(name for name in STATE_ATTRIBUTES if name != PARTITION_KEY)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


def restamp_of(table: str, row: dict[str, Any], position: str) -> dict[str, Any]:
    """The re-stamp statement of `row` (as last written) at feed `position`."""
    compared = tuple((name, name in row) for name in COMPARED_ATTRIBUTES)
    parameters = [{"S": position}, {"S": row[PARTITION_KEY]}]
    parameters.extend(_parameter(row[name]) for name, present in compared if present)
    return {"Statement": restamp_statement(table, compared), "Parameters": parameters}


def changed_index(write: ConditionalWrite) -> int:
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
