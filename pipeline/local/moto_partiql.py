"""A faithful local PartiQL for the write statements we use, executed by moto's own item API.

Written for moto 5.2 (py-partiql-parser 0.6). Re-check on every moto upgrade: run
`tests/integration/test_moto_partiql.py`; `test_stock_moto_overwrites_...` and
`test_without_the_lock_...` show what moto alone still gets wrong (when they start failing,
moto has fixed it and this module can shrink). Doc pages cited below are under
https://docs.aws.amazon.com/amazondynamodb/latest/ (developerguide/ and APIReference/).

What stock moto 5.2 gets wrong (`DynamoDBBackend.execute_statement` copies every table into
py-partiql-parser, which returns "before/after" rows that moto then `put_item`s blindly):
- `?` parameters inside an `INSERT` tuple or an `UPDATE ... WHERE` comparison: HTTP 500
  (py-partiql-parser cannot bind them there).
- `INSERT` on an existing key overwrites the item; DynamoDB answers `DuplicateItemException`
  (ql-reference.insert.html: "If the DynamoDB table already has an item with the same primary
  key ... DuplicateItemException is returned").
- `UPDATE ... WHERE <key> AND <condition>` ignores the non-key condition; DynamoDB answers
  `ConditionalCheckFailedException` when "the WHERE clause of the UPDATE statement does not
  evaluate to true for any item", which includes a missing item: PartiQL UPDATE never creates
  one (ql-reference.update.html).
- `DELETE ... WHERE <key> AND <condition>` likewise; DynamoDB deletes nothing and succeeds when
  no item has the key, and answers `ConditionalCheckFailedException` when one has it but the
  condition is false (ql-reference.delete.html).
- `BatchExecuteStatement` accepts more than 25 statements (API_BatchExecuteStatement.html:
  "Maximum number of 25 items"), mixes reads and writes ("The entire batch must consist of
  either read statements or write statements", ql-reference.multiplestatements.batching.html),
  ignores `ReturnValuesOnConditionCheckFailure` (API_BatchStatementRequest.html; the old item
  comes back in `Error.Item`, API_BatchStatementError.html), and reports errors with moto's
  exception names instead of the documented `BatchStatementError` codes
  (`ConditionalCheckFailed`, `DuplicateItem`, `ValidationError`, `ResourceNotFound`, ...).
- moto's condition evaluator raises (HTTP 500) when `<`, `<=`, `>`, `>=` or `BETWEEN` meet
  values of different types (`"seq" < ?` with a number); DynamoDB evaluates them as false
  ("If an item contains an AttributeValue element of a different type than the one provided
  in the request, the value does not match", APIReference/API_Condition.html). `apply()` makes
  moto's ordering operators false across types, for the item API's conditions as well.
- moto serves requests on threads and its item operations read, check and write without a
  lock, so two concurrent conditional writes can both pass their check. DynamoDB applies each
  single-item write atomically. `apply()` therefore runs every DynamoDB action of the server
  under one lock (moto is CPU-bound under the GIL anyway, so nothing is lost).

How: each statement of the subset below is parsed here and turned into the equivalent
`PutItem` / `UpdateItem` / `DeleteItem` / `GetItem` request, which is then run through moto's own
`DynamoHandler` method for that action. Key checks, type checks, item validation, condition
evaluation (moto implements `ConditionExpression` faithfully: numbers compare as decimals,
strings by code point = UTF-8 byte order, a comparison with a missing attribute is false) and
the update itself are therefore moto's one implementation, shared with the item API.

Supported (keywords case-insensitive; names `"double-quoted"` or bare; values `?` taken from
`Parameters` in order, or literals `'string'`, numbers, `TRUE`, `FALSE`, `NULL`, `{...}` maps
and `[...]` lists):
  INSERT INTO table VALUE {'attr': value, ...}
  UPDATE table (SET attr = value [, attr = value ...] | REMOVE attr [, attr ...])... WHERE cond
  DELETE FROM table WHERE cond
  SELECT * | attr [, attr ...] FROM table WHERE cond        (cond names the full primary key)
where `cond` must contain `key = value` for every key attribute as a top-level AND term
("This condition must resolve to a single primary key value"), and may contain
  operand (= | <> | != | < | <= | > | >=) operand,  attr IS [NOT] MISSING,
  operand BETWEEN operand AND operand,  operand IN (value, ...),
  begins_with(attr, value),  contains(attr, value),  attribute_type(attr, value),
  AND, OR, NOT, parentheses
(ql-operators.html, ql-functions.html). `IS MISSING` becomes `attribute_not_exists`.

Not supported, answered with a ValidationException naming the form instead of being run
wrongly: document paths (`a.b`, `a[0]`), arithmetic (`SET a = a + ?`), `SET a = b`, set
operations (`SET_ADD`, `list_append`, ...), `RETURNING`, `attribute_exists()` and
`attribute_not_exists()` (not PartiQL functions for DynamoDB: ql-functions.html lists SIZE,
EXISTS, ATTRIBUTE_TYPE, BEGINS_WITH, CONTAINS, MISSING; use `IS [NOT] MISSING`), `size()`.
`SELECT` statements outside the subset (no full key: a scan; an index) are left to moto, which
evaluates them itself, in `ExecuteStatement` only. `ExecuteTransaction` is left to moto when all
its statements are `SELECT`s; with a write it is refused (moto would run it as leniently as
`ExecuteStatement`; use `TransactWriteItems`, which moto implements faithfully).

Choices where AWS documents nothing (the strict reading, so code that passes here cannot
depend on the lenient one):
- Two statements on the same item in one `BatchExecuteStatement`: the whole request fails with
  `ValidationException: Provided list of item keys contains duplicates`, as `BatchWriteItem`
  and `BatchGetItem` do. Send one statement per item per batch.
- `NOT`, `<>` and `!=` over an attribute that may be MISSING are evaluated as in a
  `ConditionExpression` (a comparison with a missing attribute is false, so `NOT` makes it
  true, and `<>` is true). PartiQL's three-valued logic would differ; avoid the question by
  writing `"a" IS MISSING OR ...` explicitly.
- `Error.Item` is filled only for `ConditionalCheckFailed` (not for `DuplicateItem`).
- Error codes are the documented ones; message texts are DynamoDB's where known (moto's for
  errors raised by moto's item API) and otherwise ours.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from moto.core.exceptions import JsonRESTError
from moto.dynamodb import comparisons
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException, MockValidationException
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler, DynamoResult

MOTO_VERSION_WRITTEN_FOR = "5.2"
MAX_BATCH_STATEMENTS = 25
UNSUPPORTED = "not supported by the local PartiQL engine (pipeline/local/moto_partiql.py)"
KEY_EQUALITY_REQUIRED = "Where clause does not contain a mandatory equality on all key attributes"
DUPLICATE_KEYS = "Provided list of item keys contains duplicates"

_LOCK_INSTALLED = False
_SERIALIZE = False
"""Whether DynamoDB requests run one at a time (the installed lock is on)."""
_APPLIED = False
_ORIGINALS: dict[str, Any] = {}
_LOCK = threading.RLock()

AttributeValue = dict[str, Any]


class DuplicateItemException(DynamodbException):
    """DynamoDB's answer to an INSERT on an existing primary key."""

    error_type = ERROR_TYPE_PREFIX + "DuplicateItemException"

    def __init__(self) -> None:
        super().__init__(self.error_type, "Duplicate primary key exists in table")


class PartiqlError(MockValidationException):
    """A statement that is malformed, or outside the supported subset."""


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><>|!=|<=|>=|[=<>(){}\[\],:?*.+\-])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string | quoted | number | word | op | end
    text: str

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


def _tokenize(statement: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    stripped = statement.rstrip().rstrip(";")
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            rest = stripped[position:].strip()
            if not rest:
                break
            raise PartiqlError(
                f"Statement wasn't well formed, can't be processed: unexpected {rest[:20]!r}"
            )
        kind = match.lastgroup or "op"
        tokens.append(Token(kind, match.group(kind)))
        position = match.end()
    tokens.append(Token("end", ""))
    return tokens


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Path:
    name: str


@dataclass(frozen=True)
class Value:
    av: AttributeValue


Operand = Path | Value


@dataclass(frozen=True)
class Compare:
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Missing:
    path: Path
    negated: bool


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True)
class In:
    operand: Operand
    values: tuple[Operand, ...]


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Operand, ...]


@dataclass(frozen=True)
class Logical:
    op: str  # AND | OR
    terms: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    term: Condition


Condition = Compare | Missing | Between | In | Call | Logical | Not


@dataclass(frozen=True)
class Insert:
    table: str
    item: dict[str, AttributeValue]


@dataclass(frozen=True)
class Update:
    table: str
    sets: tuple[tuple[str, AttributeValue], ...]
    removes: tuple[str, ...]
    where: Condition


@dataclass(frozen=True)
class Delete:
    table: str
    where: Condition


@dataclass(frozen=True)
class Select:
    table: str
    projection: tuple[str, ...] | None  # None = *
    where: Condition | None


Statement = Insert | Update | Delete | Select

_FUNCTIONS = {
    "BEGINS_WITH": "begins_with",
    "CONTAINS": "contains",
    "ATTRIBUTE_TYPE": "attribute_type",
}
_COMPARISONS = {"=", "<>", "!=", "<", "<=", ">", ">="}
_KEYWORDS = {"AND", "OR", "NOT", "IS", "MISSING", "BETWEEN", "IN", "WHERE", "SET", "REMOVE"}


class _Parser:
    """Recursive descent over the supported subset; `?` parameters are consumed in order."""

    def __init__(self, statement: str, parameters: list[AttributeValue]) -> None:
        self.tokens = _tokenize(statement)
        self.index = 0
        self.parameters = parameters
        self.used = 0

    # -- helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def accept_op(self, text: str) -> bool:
        if self.token.kind == "op" and self.token.text == text:
            self.index += 1
            return True
        return False

    def expect_op(self, text: str) -> None:
        if not self.accept_op(text):
            self.fail(f"expected {text!r}")

    def accept_word(self, *words: str) -> bool:
        if self.token.is_word(*words):
            self.index += 1
            return True
        return False

    def expect_word(self, word: str) -> None:
        if not self.accept_word(word):
            self.fail(f"expected {word}")

    def fail(self, what: str) -> NoReturn:
        found = self.token.text or "end of statement"
        raise PartiqlError(
            f"Statement wasn't well formed, can't be processed: {what}, found {found!r}"
        )

    def unsupported(self, form: str, hint: str = "") -> NoReturn:
        raise PartiqlError(f"{form} is {UNSUPPORTED}{hint}")

    # -- statements
    def statement(self) -> Statement:
        parsed: Statement
        if self.accept_word("INSERT"):
            parsed = self.insert()
        elif self.accept_word("UPDATE"):
            parsed = self.update()
        elif self.accept_word("DELETE"):
            self.expect_word("FROM")
            table = self.table()
            self.expect_word("WHERE")
            parsed = Delete(table, self.condition())
        elif self.accept_word("SELECT"):
            parsed = self.select()
        else:
            self.fail("expected INSERT, UPDATE, DELETE or SELECT")
        if self.token.is_word("RETURNING"):
            self.unsupported("RETURNING")
        if self.token.kind != "end":
            self.fail("unexpected token")
        if self.used != len(self.parameters):
            raise PartiqlError("Number of parameters in request and statement don't match.")
        return parsed

    def insert(self) -> Insert:
        self.expect_word("INTO")
        table = self.table()
        self.expect_word("VALUE")
        if not (self.token.kind == "op" and self.token.text == "{"):
            self.fail("expected a tuple {...}")
        item = self.literal()
        return Insert(table, item["M"])

    def update(self) -> Update:
        table = self.table()
        sets: list[tuple[str, AttributeValue]] = []
        removes: list[str] = []
        while self.token.is_word("SET", "REMOVE"):
            if self.advance().text.upper() == "SET":
                while True:
                    name = self.name()
                    self.expect_op("=")
                    value = self.operand()
                    if self.token.kind == "op" and self.token.text in "+-":
                        self.unsupported("Arithmetic in SET")
                    if isinstance(value, Path):
                        self.unsupported(f"SET {name} = <attribute>")
                    sets.append((name, value.av))
                    if not self.accept_op(","):
                        break
            else:
                while True:
                    removes.append(self.name())
                    if not self.accept_op(","):
                        break
        if not sets and not removes:
            self.fail("expected SET or REMOVE")
        self.expect_word("WHERE")
        return Update(table, tuple(sets), tuple(removes), self.condition())

    def select(self) -> Select:
        projection: tuple[str, ...] | None = None
        if not self.accept_op("*"):
            names = [self.name()]
            while self.accept_op(","):
                names.append(self.name())
            projection = tuple(names)
        self.expect_word("FROM")
        table = self.table()
        where = self.condition() if self.accept_word("WHERE") else None
        return Select(table, projection, where)

    def table(self) -> str:
        name = self.identifier("a table name")
        if self.token.kind == "op" and self.token.text == ".":
            self.unsupported("A secondary index in FROM")
        return name

    def identifier(self, what: str) -> str:
        token = self.token
        if token.kind == "quoted":
            self.index += 1
            return token.text[1:-1].replace('""', '"')
        if token.kind == "word" and token.text.upper() not in _KEYWORDS:
            self.index += 1
            return token.text
        self.fail(f"expected {what}")

    def name(self) -> str:
        name = self.identifier("an attribute name")
        if self.token.kind == "op" and self.token.text in (".", "["):
            self.unsupported(f"The document path {name}{self.token.text}...")
        return name

    # -- conditions
    def condition(self) -> Condition:
        terms = [self.conjunction()]
        while self.accept_word("OR"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else Logical("OR", tuple(terms))

    def conjunction(self) -> Condition:
        terms = [self.negation()]
        while self.accept_word("AND"):
            terms.append(self.negation())
        return terms[0] if len(terms) == 1 else Logical("AND", tuple(terms))

    def negation(self) -> Condition:
        if self.accept_word("NOT"):
            return Not(self.negation())
        return self.predicate()

    def predicate(self) -> Condition:
        if self.accept_op("("):
            inner = self.condition()
            self.expect_op(")")
            return inner
        token = self.token
        next_token = self.tokens[self.index + 1]
        if token.kind == "word" and next_token.kind == "op" and next_token.text == "(":
            return self.call()
        left = self.operand()
        if self.accept_word("IS"):
            negated = self.accept_word("NOT")
            if not self.accept_word("MISSING"):
                self.unsupported("IS other than IS [NOT] MISSING")
            if not isinstance(left, Path):
                self.fail("expected an attribute before IS")
            return Missing(left, negated)
        if self.accept_word("BETWEEN"):
            low = self.operand()
            self.expect_word("AND")
            return Between(left, low, self.operand())
        if self.accept_word("IN"):
            self.expect_op("(")
            values = [self.operand()]
            while self.accept_op(","):
                values.append(self.operand())
            self.expect_op(")")
            return In(left, tuple(values))
        if self.token.kind == "op" and self.token.text in _COMPARISONS:
            op = self.advance().text
            return Compare("<>" if op == "!=" else op, left, self.operand())
        self.fail("expected a comparison")

    def call(self) -> Call:
        function = self.advance().text
        canonical = _FUNCTIONS.get(function.upper())
        if canonical is None:
            hint = "; use IS [NOT] MISSING" if function.lower().startswith("attribute_") else ""
            self.unsupported(f"The function {function}()", hint)
        self.expect_op("(")
        args = [self.operand()]
        while self.accept_op(","):
            args.append(self.operand())
        self.expect_op(")")
        if len(args) != 2 or not isinstance(args[0], Path):
            self.fail(f"{canonical} takes (attribute, value)")
        return Call(canonical, tuple(args))

    def operand(self) -> Operand:
        token = self.token
        if token.kind == "op" and token.text == "?":
            self.index += 1
            if self.used >= len(self.parameters):
                raise PartiqlError("Number of parameters in request and statement don't match.")
            self.used += 1
            return Value(self.parameters[self.used - 1])
        if token.kind in ("string", "number") or (token.kind == "op" and token.text in "{["):
            return Value(self.literal())
        if token.is_word("TRUE", "FALSE", "NULL"):
            return Value(self.literal())
        return Path(self.name())

    def literal(self) -> AttributeValue:
        token = self.advance()
        if token.kind == "string":
            return {"S": token.text[1:-1].replace("''", "'")}
        if token.kind == "number":
            return {"N": token.text}
        if token.is_word("TRUE", "FALSE"):
            return {"BOOL": token.text.upper() == "TRUE"}
        if token.is_word("NULL"):
            return {"NULL": True}
        if token.kind == "op" and token.text == "?":
            self.index -= 1
            value = self.operand()
            assert isinstance(value, Value)
            return value.av
        if token.kind == "op" and token.text == "[":
            items: list[AttributeValue] = []
            if not self.accept_op("]"):
                items.append(self.literal())
                while self.accept_op(","):
                    items.append(self.literal())
                self.expect_op("]")
            return {"L": items}
        if token.kind == "op" and token.text == "{":
            members: dict[str, AttributeValue] = {}
            if not self.accept_op("}"):
                while True:
                    key = self.advance()
                    if key.kind not in ("string", "quoted"):
                        self.index -= 1
                        self.fail("expected a quoted attribute name")
                    self.expect_op(":")
                    members[key.text[1:-1].replace(key.text[0] * 2, key.text[0])] = self.literal()
                    if not self.accept_op(","):
                        break
                self.expect_op("}")
            return {"M": members}
        self.index -= 1
        self.fail("expected a value")


def parse(statement: str, parameters: list[AttributeValue] | None = None) -> Statement:
    """Parse one statement of the supported subset (PartiqlError if it is not in it)."""
    return _Parser(statement, list(parameters or [])).statement()


# ---------------------------------------------------------------- expressions


class _Expression:
    """Renders conditions as a DynamoDB expression with #n / :v placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValue] = {}

    def name(self, name: str) -> str:
        for placeholder, known in self.names.items():
            if known == name:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = name
        return placeholder

    def value(self, av: AttributeValue) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = av
        return placeholder

    def operand(self, operand: Operand) -> str:
        return self.name(operand.name) if isinstance(operand, Path) else self.value(operand.av)

    def condition(self, node: Condition) -> str:
        if isinstance(node, Compare):
            return f"{self.operand(node.left)} {node.op} {self.operand(node.right)}"
        if isinstance(node, Missing):
            function = "attribute_exists" if node.negated else "attribute_not_exists"
            return f"{function}({self.name(node.path.name)})"
        if isinstance(node, Between):
            return (
                f"{self.operand(node.operand)} BETWEEN {self.operand(node.low)}"
                f" AND {self.operand(node.high)}"
            )
        if isinstance(node, In):
            listed = ", ".join(self.operand(value) for value in node.values)
            return f"{self.operand(node.operand)} IN ({listed})"
        if isinstance(node, Call):
            return f"{node.function}({', '.join(self.operand(arg) for arg in node.args)})"
        if isinstance(node, Not):
            return f"NOT ({self.condition(node.term)})"
        joiner = f" {node.op} "
        return joiner.join(f"({self.condition(term)})" for term in node.terms)

    def add_to(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


def _split_key(
    where: Condition | None, key_names: list[str]
) -> tuple[dict[str, AttributeValue], Condition | None] | None:
    """The key from the top-level `key = value` terms, the rest of the condition (None: no key)."""
    terms = list(where.terms) if isinstance(where, Logical) and where.op == "AND" else [where]
    key: dict[str, AttributeValue] = {}
    rest: list[Condition] = []
    for term in terms:
        if term is None:
            continue
        if isinstance(term, Compare) and term.op == "=":
            sides = (term.left, term.right)
            path = next((s for s in sides if isinstance(s, Path) and s.name in key_names), None)
            value = next((s for s in sides if isinstance(s, Value)), None)
            if path is not None and value is not None and path.name not in key:
                key[path.name] = value.av
                continue
        rest.append(term)
    if set(key) != set(key_names):
        return None
    if not rest:
        return key, None
    return key, rest[0] if len(rest) == 1 else Logical("AND", tuple(rest))


# ---------------------------------------------------------------- execution


@dataclass(frozen=True)
class _Planned:
    """A parsed statement bound to its table's key."""

    statement: Statement
    key: dict[str, AttributeValue]
    condition: Condition | None

    @property
    def is_read(self) -> bool:
        return isinstance(self.statement, Select)


def _key_names(handler: DynamoHandler, table_name: str) -> list[str]:
    table = handler.dynamodb_backend.get_table(table_name)
    names = [table.hash_key_attr]
    if table.range_key_attr:
        names.append(table.range_key_attr)
    return names


def _plan(handler: DynamoHandler, statement: Statement) -> _Planned:
    key_names = _key_names(handler, statement.table)
    if isinstance(statement, Insert):
        key = {name: statement.item[name] for name in key_names if name in statement.item}
        return _Planned(statement, key, None)
    split = _split_key(statement.where, key_names)
    if split is None:
        raise PartiqlError(KEY_EQUALITY_REQUIRED)
    return _Planned(statement, *split)


def _call(handler: DynamoHandler, action: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run one item API action of moto's handler on `request` as if it had been sent."""
    saved = handler.body
    handler.body = request
    try:
        result: dict[str, Any] = getattr(handler, action)().result
        return result
    finally:
        handler.body = saved


def _run(handler: DynamoHandler, planned: _Planned, return_old: str | None) -> dict[str, Any]:
    """Execute one planned statement; returns the `Item` for a SELECT ({} otherwise)."""
    statement = planned.statement
    failure = {"ReturnValuesOnConditionCheckFailure": return_old} if return_old else {}
    if isinstance(statement, Insert):
        table = handler.dynamodb_backend.get_table(statement.table)
        expression = _Expression()
        condition = f"attribute_not_exists({expression.name(table.hash_key_attr)})"
        request = {"TableName": statement.table, "Item": statement.item}
        request["ConditionExpression"] = condition
        try:
            _call(handler, "put_item", expression.add_to(request))
        except DynamodbException as error:
            if error.error_type.endswith("#ConditionalCheckFailedException"):
                raise DuplicateItemException() from error
            raise
        return {}
    expression = _Expression()
    key_name = expression.name(next(iter(planned.key)))
    rest = f" AND ({expression.condition(planned.condition)})" if planned.condition else ""
    if isinstance(statement, Update):
        clauses = []
        if statement.sets:
            assignments = [
                f"{expression.name(n)} = {expression.value(v)}" for n, v in statement.sets
            ]
            clauses.append("SET " + ", ".join(assignments))
        if statement.removes:
            clauses.append("REMOVE " + ", ".join(expression.name(n) for n in statement.removes))
        request = {
            "TableName": statement.table,
            "Key": planned.key,
            "UpdateExpression": " ".join(clauses),
            # PartiQL UPDATE never creates an item: the WHERE clause must match a stored one.
            "ConditionExpression": f"attribute_exists({key_name}){rest}",
            **failure,
        }
        _call(handler, "update_item", expression.add_to(request))
        return {}
    if isinstance(statement, Delete):
        request = {"TableName": statement.table, "Key": planned.key, **failure}
        if planned.condition is not None:
            # No item with the key: success, nothing deleted. An item: the condition must hold.
            condition = expression.condition(planned.condition)
            request["ConditionExpression"] = f"attribute_not_exists({key_name}) OR ({condition})"
            expression.add_to(request)
        _call(handler, "delete_item", request)
        return {}
    item = _call(handler, "get_item", {"TableName": statement.table, "Key": planned.key})
    stored = item.get("Item")
    if stored is None:
        return {}
    if planned.condition is not None:
        check = _Expression()
        rendered = check.condition(planned.condition)
        moto_item = handler.dynamodb_backend.get_item(statement.table, planned.key)
        if not get_filter_expression(rendered, check.names, check.values).expr(moto_item):
            return {}
    if statement.projection is not None:
        stored = {name: stored[name] for name in statement.projection if name in stored}
    return {"Item": stored}


def _error_code(error: JsonRESTError) -> str:
    """The `BatchStatementError.Code` for one of moto's exceptions."""
    name = str(getattr(error, "error_type", "InternalServerError")).split("#")[-1]
    if name == "ValidationException":
        return "ValidationError"
    return name.removesuffix("Exception")


def _message(error: JsonRESTError) -> str:
    return str(getattr(error, "message", "") or getattr(error, "exception_msg", "") or error)


def execute_statement(handler: DynamoHandler) -> Any:
    """`ExecuteStatement`: the subset runs here, other SELECTs go to moto, other forms fail."""
    body = handler.body
    text = body.get("Statement", "")
    try:
        statement = parse(text, body.get("Parameters"))
    except PartiqlError:
        if re.match(r"\s*select\b", text, re.IGNORECASE):
            return _ORIGINALS["execute_statement"](handler)
        raise
    if isinstance(statement, Select):
        table_key = _key_names(handler, statement.table)
        if _split_key(statement.where, table_key) is None:
            return _ORIGINALS["execute_statement"](handler)  # a scan: moto's own path
    planned = _plan(handler, statement)
    result = _run(handler, planned, body.get("ReturnValuesOnConditionCheckFailure"))
    return _result({"Items": [result["Item"]] if "Item" in result else []})


def execute_transaction(handler: DynamoHandler) -> Any:
    """`ExecuteTransaction`: reads go to moto; writes are refused (see the module docstring)."""
    for request in handler.body.get("TransactStatements", []):
        if not re.match(r"\s*select\b", request.get("Statement", ""), re.IGNORECASE):
            raise PartiqlError(f"ExecuteTransaction with write statements is {UNSUPPORTED}")
    return _ORIGINALS["execute_transaction"](handler)


def batch_execute_statement(handler: DynamoHandler) -> Any:
    """`BatchExecuteStatement`: ≤ 25 statements, all reads or all writes, errors per statement."""
    requests = handler.body.get("Statements", [])
    if len(requests) > MAX_BATCH_STATEMENTS:
        raise MockValidationException(
            "1 validation error detected: Value at 'statements' failed to satisfy constraint:"
            f" Member must have length less than or equal to {MAX_BATCH_STATEMENTS}"
        )
    plans: list[_Planned | JsonRESTError] = []
    for request in requests:
        try:
            plans.append(_plan(handler, parse(request["Statement"], request.get("Parameters"))))
        except JsonRESTError as error:
            plans.append(error)
    planned = [plan for plan in plans if isinstance(plan, _Planned)]
    if len({plan.is_read for plan in planned}) > 1:
        raise MockValidationException(
            "BatchExecuteStatement must consist of either read statements or write statements"
        )
    keys = [_item_key(plan) for plan in planned]
    if len(set(keys)) != len(keys):
        raise MockValidationException(DUPLICATE_KEYS)
    responses: list[dict[str, Any]] = []
    for request, plan in zip(requests, plans, strict=True):
        if not isinstance(plan, _Planned):
            if _error_code(plan) == "ValidationError" and KEY_EQUALITY_REQUIRED in _message(plan):
                message = (
                    "Select statements within BatchExecuteStatement must specify the primary"
                    " key in the where clause."
                    if re.match(r"\s*select\b", request["Statement"], re.IGNORECASE)
                    else _message(plan)
                )
                responses.append({"Error": {"Code": "ValidationError", "Message": message}})
            else:
                responses.append({"Error": {"Code": _error_code(plan), "Message": _message(plan)}})
            continue
        table_name = plan.statement.table
        return_old = request.get("ReturnValuesOnConditionCheckFailure")
        try:
            responses.append({"TableName": table_name, **_run(handler, plan, return_old)})
        except JsonRESTError as error:
            entry: dict[str, Any] = {"Code": _error_code(error), "Message": _message(error)}
            old = _failed_item(error)
            if old is not None and return_old == "ALL_OLD":
                entry["Item"] = old
            responses.append({"TableName": table_name, "Error": entry})
    return _result({"Responses": responses})


def _item_key(plan: _Planned) -> tuple[str, str]:
    return plan.statement.table, dynamo_json_dump(plan.key)


def _failed_item(error: JsonRESTError) -> dict[str, Any] | None:
    """The old item moto attached to a ConditionalCheckFailedException, if any."""
    description = getattr(error, "description", None)
    if not description:
        return None
    try:
        item = json.loads(description).get("Item")
    except (TypeError, ValueError):
        return None
    return item if isinstance(item, dict) else None


def _result(result: dict[str, Any]) -> Any:
    return DynamoResult(result)


# ---------------------------------------------------------------- install


def _serialized(action: Callable[..., Any]) -> Callable[..., Any]:
    def call_action(self: DynamoHandler) -> Any:
        if not _SERIALIZE:  # tests only: `unserialized()` / `stock_moto()`
            return action(self)
        with _LOCK:
            return action(self)

    call_action.__wrapped__ = action  # type: ignore[attr-defined]
    return call_action


def _same_type_only(evaluate: Callable[[Any, Any], bool]) -> Any:
    def expr(self: Any, item: Any) -> bool:
        operands = [getattr(self, name, None) for name in ("lhs", "rhs", "attr", "start", "end")]
        types = {o.get_type(item) for o in operands if isinstance(o, comparisons.Operand)}
        if len(types - {None}) > 1:
            return False  # DynamoDB: values of different types never match
        return evaluate(self, item)

    expr.__wrapped__ = evaluate  # type: ignore[attr-defined]
    return expr


_ORDERINGS = (
    comparisons.OpLessThan,
    comparisons.OpLessThanOrEqual,
    comparisons.OpGreaterThan,
    comparisons.OpGreaterThanOrEqual,
    comparisons.FuncBetween,
)


def apply() -> None:
    """Install the engine into moto's DynamoDB handler (idempotent)."""
    global _APPLIED, _LOCK_INSTALLED, _SERIALIZE
    if _APPLIED:
        return
    for ordering in _ORDERINGS:
        _ORIGINALS[ordering.__name__] = ordering.expr
        ordering.expr = _same_type_only(ordering.expr)  # type: ignore[method-assign]
    _ORIGINALS["execute_statement"] = DynamoHandler.execute_statement
    _ORIGINALS["batch_execute_statement"] = DynamoHandler.batch_execute_statement
    _ORIGINALS["execute_transaction"] = DynamoHandler.execute_transaction
    DynamoHandler.execute_statement = execute_statement  # type: ignore[assignment,method-assign]
    DynamoHandler.batch_execute_statement = batch_execute_statement  # type: ignore[assignment,method-assign]
    DynamoHandler.execute_transaction = execute_transaction  # type: ignore[assignment,method-assign]
    if not _LOCK_INSTALLED:  # the lock stays installed (other patches wrap call_action too)
        DynamoHandler.call_action = _serialized(DynamoHandler.call_action)  # type: ignore[method-assign]
        _LOCK_INSTALLED = True
    _SERIALIZE = True
    _APPLIED = True


def _revert() -> None:
    global _APPLIED, _SERIALIZE
    if not _APPLIED:
        return
    _SERIALIZE = False
    orderings = {ordering.__name__: ordering for ordering in _ORDERINGS}
    for name, original in _ORIGINALS.items():
        if name in orderings:
            orderings[name].expr = original  # type: ignore[method-assign]
        else:
            setattr(DynamoHandler, name, original)
    _APPLIED = False


@contextmanager
def stock_moto() -> Iterator[None]:
    """Tests only: run with moto's own PartiQL and without the lock, to show what this fixes."""
    was_applied = _APPLIED
    _revert()
    try:
        yield
    finally:
        if was_applied:
            apply()


@contextmanager
def unserialized() -> Iterator[None]:
    """Tests only: run without the lock, to show the race it prevents."""
    global _SERIALIZE
    was = _SERIALIZE
    _SERIALIZE = False
    try:
        yield
    finally:
        _SERIALIZE = was
