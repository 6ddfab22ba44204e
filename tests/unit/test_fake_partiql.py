"""The in-memory DynamoDB's BatchExecuteStatement against DynamoDB's documented rules.

The conditional writer is proven on this fake (unit tier), so the fake must refuse what
DynamoDB refuses: docs ql-reference.insert ("If the item already exists ... DuplicateItem"),
ql-reference.update (WHERE not true -> ConditionalCheckFailed), API BatchExecuteStatement
(≤ 25 statements, per-statement errors in a 200 response), BatchStatementError codes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.faults import InMemoryDynamo, StrictFaultyClient

T = "files"
INSERT = f"INSERT INTO \"{T}\" VALUE {{'filename': ?, 'size': ?}}"


def run(db: Any, *statements: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    response = asyncio.run(
        db.batch_execute_statement(
            Statements=[{"Statement": text, "Parameters": params} for text, params in statements]
        )
    )
    answers: list[dict[str, Any]] = response["Responses"]
    return answers


def codes(answers: list[dict[str, Any]]) -> list[str | None]:
    return [answer.get("Error", {}).get("Code") for answer in answers]


def update(condition: str) -> str:
    return f'UPDATE "{T}" SET "size"=? REMOVE "etag" WHERE "filename"=? AND {condition}'


@pytest.fixture
def db() -> InMemoryDynamo:
    db = InMemoryDynamo(key="filename")
    db.tables[T] = {"a": {"filename": {"S": "a"}, "size": {"N": "1"}, "etag": {"S": "e"}}}
    return db


def test_insert_creates_a_new_item_and_refuses_an_existing_key(db: InMemoryDynamo) -> None:
    answers = run(db, (INSERT, [{"S": "b"}, {"N": "2"}]), (INSERT, [{"S": "a"}, {"N": "9"}]))
    assert codes(answers) == [None, "DuplicateItem"]
    assert db.tables[T]["b"] == {"filename": {"S": "b"}, "size": {"N": "2"}}
    assert db.tables[T]["a"]["size"] == {"N": "1"}  # untouched


def test_update_applies_set_and_remove_only_when_the_condition_holds(db: InMemoryDynamo) -> None:
    failed = run(db, (update('"size"=?'), [{"N": "5"}, {"S": "a"}, {"N": "2"}]))
    assert codes(failed) == ["ConditionalCheckFailed"]
    assert db.tables[T]["a"]["size"] == {"N": "1"}
    applied = run(db, (update('"size"=?'), [{"N": "5"}, {"S": "a"}, {"N": "1"}]))
    assert codes(applied) == [None]
    assert db.tables[T]["a"] == {"filename": {"S": "a"}, "size": {"N": "5"}}


def test_update_of_a_missing_key_fails_its_condition_check(db: InMemoryDynamo) -> None:
    answers = run(db, (update('"size" IS MISSING'), [{"N": "5"}, {"S": "nope"}]))
    assert codes(answers) == ["ConditionalCheckFailed"]
    assert "nope" not in db.tables[T]


@pytest.mark.parametrize(
    ("condition", "params", "holds"),
    [
        ('"etag" IS MISSING', [], False),
        ('"nothing" IS MISSING', [], True),
        ('"etag" IS NOT MISSING', [], True),
        ('"nothing"<?', [{"S": "z"}], False),  # a missing attribute compares to nothing
        ('"etag"<?', [{"S": "f"}], True),
        ('"etag"<?', [{"S": "e"}], False),
        ('"size"<?', [{"S": "9"}], False),  # another type: not true
        ('"size"<?', [{"N": "10"}], True),  # numbers compare as numbers, not text
        ('("nothing"<? OR "etag"=?)', [{"S": "z"}, {"S": "e"}], True),
        ('("etag"<? OR ("size"=? AND "etag"=?))', [{"S": "a"}, {"N": "1"}, {"S": "x"}], False),
    ],
)
def test_conditions(
    db: InMemoryDynamo, condition: str, params: list[dict[str, Any]], holds: bool
) -> None:
    answers = run(db, (update(condition), [{"N": "7"}, {"S": "a"}, *params]))
    assert codes(answers) == [None if holds else "ConditionalCheckFailed"]


def test_one_statement_failing_does_not_fail_the_others(db: InMemoryDynamo) -> None:
    answers = run(
        db,
        (INSERT, [{"S": "a"}, {"N": "1"}]),
        (INSERT, [{"S": "c"}, {"N": "3"}]),
        (update('"size"=?'), [{"N": "4"}, {"S": "zz"}, {"N": "1"}]),
    )
    assert codes(answers) == ["DuplicateItem", None, "ConditionalCheckFailed"]
    assert [answer["TableName"] for answer in answers] == [T, T, T]
    assert "c" in db.tables[T]


def test_whole_call_refusals(db: InMemoryDynamo) -> None:
    # More than 25 statements
    with pytest.raises(ClientError, match="less than or equal to 25"):
        run(db, *[(INSERT, [{"S": f"k{i}"}, {"N": "1"}]) for i in range(26)])
    # Two statements on one key (docs silent; refused like BatchWriteItem)
    with pytest.raises(ClientError, match="duplicates"):
        run(db, (INSERT, [{"S": "x"}, {"N": "1"}]), (INSERT, [{"S": "x"}, {"N": "2"}]))
    # Parameters that do not match the placeholders, and a read statement
    with pytest.raises(ClientError, match="Number of parameters"):
        run(db, (INSERT, [{"S": "y"}]))
    with pytest.raises(ClientError, match="Unsupported statement"):
        run(db, (f'SELECT "size" FROM "{T}" WHERE "filename"=?', [{"S": "a"}]))
    assert set(db.tables[T]) == {"a"}  # nothing of a refused call was applied


def test_an_oversized_item_fails_alone(db: InMemoryDynamo) -> None:
    big = f"INSERT INTO \"{T}\" VALUE {{'filename': ?, 'etag': ?}}"
    answers = run(
        db, (big, [{"S": "big"}, {"S": "e" * 410_000}]), (INSERT, [{"S": "ok"}, {"N": "1"}])
    )
    assert codes(answers) == ["ValidationError", None]


def test_the_faulty_wrapper_throttles_single_statements() -> None:
    client = StrictFaultyClient(InMemoryDynamo(key="filename"), never_succeed={"stuck"})
    answers = run(
        client, (INSERT, [{"S": "stuck"}, {"N": "1"}]), (INSERT, [{"S": "fine"}, {"N": "1"}])
    )
    assert codes(answers) == ["ProvisionedThroughputExceeded", None]
    assert set(client.inner.tables[T]) == {"fine"}
    assert client.write_requests == [["stuck", "fine"]]
