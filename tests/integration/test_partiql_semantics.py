"""PartiQL as DynamoDB documents it, on AWS's DynamoDB Local: the semantics the writer relies on.

These cases were written for the project's former moto PartiQL engine and now run on DynamoDB
Local (tests/conftest.py); they pin what the conditional writes depend on, so an engine upgrade
that changes any of it fails here first.

Sources, under https://docs.aws.amazon.com/amazondynamodb/latest/:
- developerguide/ql-reference.insert.html: INSERT on an existing key -> DuplicateItemException
- developerguide/ql-reference.update.html: WHERE true for no item -> ConditionalCheckFailed
- developerguide/ql-reference.delete.html: no item -> success; item but false -> ConditionalCheck...
- developerguide/ql-reference.multiplestatements.batching.html: all reads or all writes, ≤ 25
- developerguide/ql-operators.html, ql-functions.html, ql-functions.missing.html
- APIReference/API_BatchExecuteStatement.html, API_BatchStatementRequest.html,
  API_BatchStatementError.html (codes DuplicateItem, ConditionalCheckFailed, ...; Error.Item)
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.tables import create_filename_table

pytestmark = pytest.mark.integration

INSERT = "INSERT INTO \"{t}\" VALUE {{'filename': ?, 'seq': ?, 'size': ?}}"
UPDATE_IF_OLDER = (
    'UPDATE "{t}" SET "size"=? SET "seq"=? REMOVE "deleted" WHERE "filename"=? AND "seq" < ?'
)


@pytest.fixture
def table_name(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A `filename`-keyed table: the engine's semantics do not depend on the key's name."""
    name = f"files-{uuid.uuid4().hex[:12]}"
    create_filename_table(dynamodb, name)
    yield name
    dynamodb.delete_table(TableName=name)


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: str) -> dict[str, str]:
    return {"N": value}


def run(dynamodb: Any, table: str, statement: str, *parameters: dict[str, Any], **kw: Any) -> Any:
    request: dict[str, Any] = {"Statement": statement.format(t=table), **kw}
    if parameters:
        request["Parameters"] = list(parameters)
    return dynamodb.execute_statement(**request)


def error_of(dynamodb: Any, table: str, statement: str, *parameters: Any, **kw: Any) -> Any:
    with pytest.raises(ClientError) as caught:
        run(dynamodb, table, statement, *parameters, **kw)
    return caught.value.response


def stored(dynamodb: Any, table: str, key: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=table, Key={"filename": s(key)}, ConsistentRead=True
    ).get("Item")
    return item


def put(dynamodb: Any, table: str, **attributes: dict[str, Any]) -> None:
    dynamodb.put_item(TableName=table, Item=attributes)


# ---------------------------------------------------------------- INSERT


def test_insert_creates_the_item_seen_by_get_item_and_batch_get_item(
    dynamodb: Any, table_name: str
) -> None:
    run(dynamodb, table_name, INSERT, s("a.txt"), s("0001"), n("10"))
    expected = {"filename": s("a.txt"), "seq": s("0001"), "size": n("10")}
    assert stored(dynamodb, table_name, "a.txt") == expected
    batch = dynamodb.batch_get_item(RequestItems={table_name: {"Keys": [{"filename": s("a.txt")}]}})
    assert batch["Responses"][table_name] == [expected]


def test_insert_on_an_existing_key_fails_with_duplicate_item_and_changes_nothing(
    dynamodb: Any, table_name: str
) -> None:
    run(dynamodb, table_name, INSERT, s("a.txt"), s("0001"), n("10"))
    response = error_of(dynamodb, table_name, INSERT, s("a.txt"), s("0002"), n("20"))
    # AWS documents DuplicateItemException (API_ExecuteStatement.html); DynamoDB Local 3.3.1
    # answers DuplicateItem, the code BatchStatementError uses (the writer reads that one).
    assert response["Error"]["Code"] in {"DuplicateItemException", "DuplicateItem"}
    assert stored(dynamodb, table_name, "a.txt") == {
        "filename": s("a.txt"),
        "seq": s("0001"),
        "size": n("10"),
    }


def test_insert_takes_literals_maps_and_lists(dynamodb: Any, table_name: str) -> None:
    statement = (
        "INSERT INTO \"{t}\" VALUE {{'filename': 'it''s', 'n': -1.5, 'ok': TRUE, 'none': NULL,"
        " 'm': {{'k': [1, 'two']}}}}"
    )
    run(dynamodb, table_name, statement)
    assert stored(dynamodb, table_name, "it's") == {
        "filename": s("it's"),
        "n": n("-1.5"),
        "ok": {"BOOL": True},
        "none": {"NULL": True},
        "m": {"M": {"k": {"L": [n("1"), s("two")]}}},
    }


# ---------------------------------------------------------------- UPDATE


def test_update_with_a_true_condition_applies_set_and_remove_exactly(
    dynamodb: Any, table_name: str
) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("1"), size=n("1"), deleted=n("1"), etag=s("x"))
    run(dynamodb, table_name, UPDATE_IF_OLDER, n("2"), s("2"), s("a"), s("2"))
    assert stored(dynamodb, table_name, "a") == {
        "filename": s("a"),
        "seq": s("2"),
        "size": n("2"),
        "etag": s("x"),
    }


def test_update_with_a_false_condition_fails_and_changes_nothing(
    dynamodb: Any, table_name: str
) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("5"), size=n("1"), deleted=n("1"))
    before = stored(dynamodb, table_name, "a")
    response = error_of(dynamodb, table_name, UPDATE_IF_OLDER, n("2"), s("3"), s("a"), s("3"))
    assert response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert "Item" not in response
    assert stored(dynamodb, table_name, "a") == before


def test_a_failed_update_returns_the_old_item_when_asked(dynamodb: Any, table_name: str) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("5"))
    response = error_of(
        dynamodb,
        table_name,
        UPDATE_IF_OLDER,
        n("2"),
        s("3"),
        s("a"),
        s("3"),
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    assert response["Item"] == {"filename": s("a"), "seq": s("5")}


@pytest.mark.parametrize(
    "statement",
    [
        'UPDATE "{t}" SET "size"=? WHERE "filename"=?',
        'UPDATE "{t}" SET "size"=? WHERE "filename"=? AND "seq" IS MISSING',
    ],
)
def test_update_never_creates_a_missing_item(
    dynamodb: Any, table_name: str, statement: str
) -> None:
    response = error_of(dynamodb, table_name, statement, n("1"), s("nothing"))
    assert response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert stored(dynamodb, table_name, "nothing") is None


def test_update_without_the_key_in_where_is_rejected(dynamodb: Any, table_name: str) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("1"))
    for statement in (
        'UPDATE "{t}" SET "size"=? WHERE "seq"=?',
        'UPDATE "{t}" SET "size"=? WHERE "filename"=? OR "seq"=?',
    ):
        parameters = [n("1"), s("a"), s("1")][: statement.count("?")]
        response = error_of(dynamodb, table_name, statement, *parameters)
        assert response["Error"]["Code"] == "ValidationException"
        assert "key" in response["Error"]["Message"]
    assert stored(dynamodb, table_name, "a") == {"filename": s("a"), "seq": s("1")}


# ---------------------------------------------------------------- conditions


def update_succeeds(dynamodb: Any, table: str, condition: str, *parameters: Any) -> bool:
    statement = f'UPDATE "{{t}}" SET "hit"=? WHERE "filename"=? AND ({condition})'
    try:
        run(dynamodb, table, statement, n("1"), s("a"), *parameters)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return False
    return True


@pytest.mark.parametrize(
    ("condition", "parameter", "expected"),
    [
        ('"seq" = ?', s("0005"), True),
        ('"seq" = ?', s("0006"), False),
        ('"seq" <> ?', s("0006"), True),
        ('"seq" <> ?', s("0005"), False),
        ('"seq" != ?', s("0006"), True),
        ('"seq" != ?', s("0005"), False),
        ('"seq" < ?', s("0006"), True),
        ('"seq" < ?', s("0005"), False),
        ('"seq" <= ?', s("0005"), True),
        ('"seq" <= ?', s("0004"), False),
        ('"seq" > ?', s("0004"), True),
        ('"seq" > ?', s("0005"), False),
        ('"seq" >= ?', s("0005"), True),
        ('"seq" >= ?', s("0006"), False),
        ('? > "seq"', s("0006"), True),
        ('"seq" < ?', n("6"), False),  # another type never compares
        ('"seq" BETWEEN ? AND 9', n("1"), False),
        ('"seq" = ?', n("5"), False),
        ('begins_with("seq", ?)', s("00"), True),
        ('begins_with("seq", ?)', s("5"), False),
        ("\"seq\" IN (?, '0005')", s("x"), True),
        ("\"seq\" BETWEEN ? AND '0009'", s("0001"), True),
        ('NOT "seq" = ?', s("0005"), False),
    ],
)
def test_each_comparison_is_evaluated_against_the_stored_item(
    dynamodb: Any, table_name: str, condition: str, parameter: Any, expected: bool
) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("0005"))
    assert update_succeeds(dynamodb, table_name, condition, parameter) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('"seq" IS MISSING', False),
        ('"seq" IS NOT MISSING', True),
        ('"sequencer" IS MISSING', True),
        ('"sequencer" IS NOT MISSING', False),
        ("\"sequencer\" < 'z'", False),  # a comparison with a missing attribute is false
    ],
)
def test_is_missing(dynamodb: Any, table_name: str, condition: str, expected: bool) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("0005"))
    assert update_succeeds(dynamodb, table_name, condition) is expected


def test_and_binds_tighter_than_or(dynamodb: Any, table_name: str) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("5"))
    # "seq" = '9' OR ("seq" = '5' AND "x" IS NOT MISSING): false; grouped the other way: true
    condition = '"seq" = \'9\' OR "seq" = \'5\' AND "x" IS NOT MISSING'
    assert update_succeeds(dynamodb, table_name, condition) is False
    grouped = '("seq" = \'9\' OR "seq" = \'5\') AND "x" IS MISSING'
    assert update_succeeds(dynamodb, table_name, grouped) is True


def test_the_writers_statement_shape(dynamodb: Any, table_name: str) -> None:
    statement = (
        'UPDATE "{t}" SET "size"=? REMOVE "deleted" WHERE "filename"=? AND ("seq" < ? OR'
        ' ("seq" IS MISSING AND "event_time" = ? AND "sequencer" IS MISSING))'
    )
    put(dynamodb, table_name, filename=s("old"), event_time=s("t1"))
    put(dynamodb, table_name, filename=s("seq"), seq=s("0009"))
    run(dynamodb, table_name, statement, n("1"), s("old"), s("0001"), s("t1"))
    assert stored(dynamodb, table_name, "old") == {
        "filename": s("old"),
        "event_time": s("t1"),
        "size": n("1"),
    }
    response = error_of(dynamodb, table_name, statement, n("1"), s("seq"), s("0001"), s("t1"))
    assert response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_strings_compare_by_utf8_bytes(dynamodb: Any, table_name: str) -> None:
    # UTF-8: U+FFFF = EF BF BF < U+1F600 = F0 9F 98 80 (UTF-16 would order them the other way)
    put(dynamodb, table_name, filename=s("a"), seq=s("\U0001f600"))
    assert update_succeeds(dynamodb, table_name, '"seq" > ?', s("\uffff")) is True
    assert update_succeeds(dynamodb, table_name, '"seq" < ?', s("\uffff")) is False


def test_numbers_compare_numerically(dynamodb: Any, table_name: str) -> None:
    big = "1234567890123456789012345678901234567"
    put(dynamodb, table_name, filename=s("a"), size=n("10"), ratio=n("1.50"), big=n(big + "8"))
    assert update_succeeds(dynamodb, table_name, '"size" > ?', n("9")) is True  # "10" < "9" as text
    assert update_succeeds(dynamodb, table_name, '"ratio" = ?', n("1.5")) is True
    assert update_succeeds(dynamodb, table_name, '"big" > ?', n(big + "7")) is True  # 38 digits
    assert update_succeeds(dynamodb, table_name, '"big" > ?', n(big + "9")) is False


# ---------------------------------------------------------------- DELETE and SELECT


def test_delete_by_key_and_condition(dynamodb: Any, table_name: str) -> None:
    statement = 'DELETE FROM "{t}" WHERE "filename"=? AND "seq" < ?'
    # No item with the key: success, nothing deleted (with or without a condition)
    run(dynamodb, table_name, statement, s("none"), s("5"))
    run(dynamodb, table_name, 'DELETE FROM "{t}" WHERE "filename"=?', s("none"))
    # An item whose condition is false: ConditionalCheckFailed, item kept
    put(dynamodb, table_name, filename=s("a"), seq=s("7"))
    response = error_of(dynamodb, table_name, statement, s("a"), s("5"))
    assert response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert stored(dynamodb, table_name, "a") is not None
    # A true condition deletes it
    run(dynamodb, table_name, statement, s("a"), s("9"))
    assert stored(dynamodb, table_name, "a") is None


def test_select_by_key(dynamodb: Any, table_name: str) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("1"), size=n("3"))
    items = run(dynamodb, table_name, 'SELECT "size" FROM "{t}" WHERE "filename"=?', s("a"))
    assert items["Items"] == [{"size": n("3")}]
    where = 'SELECT * FROM "{t}" WHERE "filename"=? AND "seq" = ?'
    assert run(dynamodb, table_name, where, s("a"), s("2"))["Items"] == []
    assert run(dynamodb, table_name, where, s("b"), s("1"))["Items"] == []


# ---------------------------------------------------------------- BatchExecuteStatement


def test_batch_reports_each_failure_and_applies_the_other_statements(
    dynamodb: Any, table_name: str
) -> None:
    put(dynamodb, table_name, filename=s("dup"), seq=s("1"), size=n("1"))
    put(dynamodb, table_name, filename=s("newer"), seq=s("9"), size=n("9"))
    put(dynamodb, table_name, filename=s("older"), seq=s("1"), size=n("1"))
    insert = INSERT.format(t=table_name)
    update = UPDATE_IF_OLDER.format(t=table_name)
    response = dynamodb.batch_execute_statement(
        Statements=[
            {"Statement": insert, "Parameters": [s("new"), s("1"), n("1")]},
            {"Statement": insert, "Parameters": [s("dup"), s("2"), n("2")]},
            {
                "Statement": update,
                "Parameters": [n("5"), s("5"), s("newer"), s("5")],
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
            {"Statement": update, "Parameters": [n("5"), s("5"), s("older"), s("5")]},
            {"Statement": update, "Parameters": [n("5"), s("5"), s("missing"), s("5")]},
        ]
    )["Responses"]
    assert [r.get("Error", {}).get("Code") for r in response] == [
        None,
        "DuplicateItem",
        "ConditionalCheckFailed",
        None,
        "ConditionalCheckFailed",
    ]
    assert response[2]["Error"]["Item"] == {
        "filename": s("newer"),
        "seq": s("9"),
        "size": n("9"),
    }
    assert "Item" not in response[4]["Error"]
    assert stored(dynamodb, table_name, "new") is not None
    assert stored(dynamodb, table_name, "dup") == {
        "filename": s("dup"),
        "seq": s("1"),
        "size": n("1"),
    }
    assert stored(dynamodb, table_name, "newer") == {
        "filename": s("newer"),
        "seq": s("9"),
        "size": n("9"),
    }
    assert stored(dynamodb, table_name, "older") == {
        "filename": s("older"),
        "seq": s("5"),
        "size": n("5"),
    }
    assert stored(dynamodb, table_name, "missing") is None


def inserts(table: str, count: int) -> list[dict[str, Any]]:
    return [
        {"Statement": INSERT.format(t=table), "Parameters": [s(f"k{i}"), s("1"), n("1")]}
        for i in range(count)
    ]


def test_batch_takes_25_statements_and_rejects_26(dynamodb: Any, table_name: str) -> None:
    with pytest.raises(ClientError) as caught:
        dynamodb.batch_execute_statement(Statements=inserts(table_name, 26))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert dynamodb.scan(TableName=table_name)["Count"] == 0
    responses = dynamodb.batch_execute_statement(Statements=inserts(table_name, 25))["Responses"]
    assert all("Error" not in r for r in responses)
    assert dynamodb.scan(TableName=table_name)["Count"] == 25


def test_batch_cannot_mix_reads_and_writes(dynamodb: Any, table_name: str) -> None:
    select = {
        "Statement": f'SELECT * FROM "{table_name}" WHERE "filename"=?',
        "Parameters": [s("k9")],
    }
    with pytest.raises(ClientError) as caught:
        dynamodb.batch_execute_statement(Statements=[*inserts(table_name, 1), select])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert dynamodb.scan(TableName=table_name)["Count"] == 0


def test_batch_reads_need_the_full_key(dynamodb: Any, table_name: str) -> None:
    put(dynamodb, table_name, filename=s("a"), seq=s("1"))
    responses = dynamodb.batch_execute_statement(
        Statements=[
            {
                "Statement": f'SELECT * FROM "{table_name}" WHERE "filename"=?',
                "Parameters": [s("a")],
            },
            {
                "Statement": f'SELECT * FROM "{table_name}" WHERE "filename"=?',
                "Parameters": [s("b")],
            },
            {"Statement": f'SELECT * FROM "{table_name}" WHERE "seq"=?', "Parameters": [s("1")]},
        ]
    )["Responses"]
    assert responses[0]["Item"] == {"filename": s("a"), "seq": s("1")}
    assert "Item" not in responses[1] and "Error" not in responses[1]
    assert responses[2]["Error"]["Code"] == "ValidationError"


def test_batch_reports_a_missing_table_per_statement(dynamodb: Any, table_name: str) -> None:
    responses = dynamodb.batch_execute_statement(
        Statements=[
            {"Statement": INSERT.format(t="no-such-table"), "Parameters": [s("a"), s("1"), n("1")]},
            *inserts(table_name, 1),
        ]
    )["Responses"]
    assert responses[0]["Error"]["Code"] == "ResourceNotFound"
    assert "Error" not in responses[1]


# ---------------------------------------------------------------- unsupported forms


def test_too_few_parameters_are_rejected(dynamodb: Any, table_name: str) -> None:
    # (DynamoDB Local 3.3.1 ignores a surplus parameter; AWS documents neither case.)
    response = error_of(dynamodb, table_name, INSERT, s("a"), s("1"))
    assert response["Error"]["Code"] == "ValidationException"
    assert stored(dynamodb, table_name, "a") is None


def test_malformed_statements_are_rejected(dynamodb: Any, table_name: str) -> None:
    response = error_of(dynamodb, table_name, 'UPDATE "{t}" WHERE "filename"=?', s("a"))
    assert response["Error"]["Code"] == "ValidationException"
