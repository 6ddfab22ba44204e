"""Just enough PartiQL for DynamoDB to run the statements the ingest writer emits, strictly.

Forms (parameters always `?`, names always double-quoted, like `pipeline.adapters.dynamo.writer`):

    INSERT INTO "t" VALUE {'a': ?, 'b': ?}
    UPDATE "t" SET "a"=? ... REMOVE "b" ... WHERE "k"=? AND <condition>

with conditions made of `"a"=?`, `"a"<?`, `"a" IS MISSING`, `"a" IS NOT MISSING`, AND, OR and
parentheses. DynamoDB's documented semantics (ql-reference.insert / .update): INSERT on an
existing key -> `DuplicateItem`; UPDATE whose WHERE is not true for an existing item (missing
item, failed condition) -> `ConditionalCheckFailed`. A comparison with a missing attribute or
a value of another type is not true. Anything else is a `PartiQLError` (ValidationError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r'\s*(?:(?P<name>"[^"]+")|(?P<string>\'[^\']*\')|(?P<op><=|>=|<>|[=<>?(){}:,])'
    r"|(?P<word>[A-Za-z_]+))"
)


class PartiQLError(ValueError):
    """A statement this engine (and DynamoDB) refuses: ValidationError."""


@dataclass
class Comparison:
    name: str
    op: str
    parameter: int | None = None


@dataclass
class Junction:
    op: str
    parts: list[Any] = field(default_factory=list)


@dataclass
class Statement:
    kind: str
    table: str
    names: list[str] = field(default_factory=list)
    """INSERT: the attribute of each parameter; UPDATE: the SET attributes."""
    removes: list[str] = field(default_factory=list)
    where: Any = None
    parameter_count: int = 0


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise PartiQLError(f"Statement wasn't well formed, can't be processed: {text[:60]}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append((kind, value.upper() if kind == "word" else value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.parameters = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (value is not None and got != value):
            raise PartiQLError(f"Unexpected token {got!r}, expected {value or kind}")
        self.at += 1
        return got

    def parameter(self) -> int:
        self.take("op", "?")
        self.parameters += 1
        return self.parameters - 1

    def name(self) -> str:
        return self.take("name")[1:-1]

    def condition(self) -> Any:
        parts = [self.conjunction()]
        while self.peek() == ("word", "OR"):
            self.take("word", "OR")
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Junction("OR", parts)

    def conjunction(self) -> Any:
        parts = [self.atom()]
        while self.peek() == ("word", "AND"):
            self.take("word", "AND")
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else Junction("AND", parts)

    def atom(self) -> Any:
        if self.peek() == ("op", "("):
            self.take("op", "(")
            inner = self.condition()
            self.take("op", ")")
            return inner
        name = self.name()
        kind, value = self.peek()
        if kind == "word" and value == "IS":
            self.take("word", "IS")
            negated = self.peek() == ("word", "NOT")
            if negated:
                self.take("word", "NOT")
            self.take("word", "MISSING")
            return Comparison(name, "IS NOT MISSING" if negated else "IS MISSING")
        if kind == "op" and value in {"=", "<", "<=", ">", ">=", "<>"}:
            self.at += 1
            return Comparison(name, value, self.parameter())
        raise PartiQLError(f"Unexpected token {value!r} after {name!r}")


def parse(text: str) -> Statement:
    """Parse one statement of the supported forms."""
    parser = _Parser(text)
    kind = parser.take("word")
    if kind == "INSERT":
        parser.take("word", "INTO")
        statement = Statement("INSERT", parser.name())
        parser.take("word", "VALUE")
        parser.take("op", "{")
        while True:
            statement.names.append(parser.take("string")[1:-1])
            parser.take("op", ":")
            parser.parameter()
            if parser.peek() == ("op", ","):
                parser.take("op", ",")
                continue
            break
        parser.take("op", "}")
    elif kind == "UPDATE":
        statement = Statement("UPDATE", parser.name())
        while parser.peek()[1] in ("SET", "REMOVE"):
            if parser.take("word") == "SET":
                statement.names.append(parser.name())
                parser.take("op", "=")
                parser.parameter()
            else:
                statement.removes.append(parser.name())
        if not statement.names and not statement.removes:
            raise PartiQLError("UPDATE needs at least one SET or REMOVE clause")
        parser.take("word", "WHERE")
        statement.where = parser.condition()
    else:
        raise PartiQLError(f"Unsupported statement {kind!r} (this engine runs INSERT and UPDATE)")
    if parser.peek()[0] != "end":
        raise PartiQLError(f"Unexpected token {parser.peek()[1]!r}")
    statement.parameter_count = parser.parameters
    return statement


def key_of(statement: Statement, parameters: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The key value a statement addresses: INSERT's key attribute, UPDATE's `"key"=?`."""
    if statement.kind == "INSERT":
        if key not in statement.names:
            raise PartiQLError(f"One or more parameter values were invalid: missing key {key}")
        return parameters[statement.names.index(key)]
    where = statement.where
    conjuncts = where.parts if isinstance(where, Junction) and where.op == "AND" else [where]
    for part in conjuncts:
        if isinstance(part, Comparison) and part.name == key and part.op == "=":
            assert part.parameter is not None
            return parameters[part.parameter]
    raise PartiQLError("Where clause does not contain a mandatory equality on all key attributes")


def _number(value: dict[str, Any]) -> float:
    return float(value["N"])


def _compare(stored: dict[str, Any] | None, op: str, given: dict[str, Any]) -> bool:
    if stored is None or set(stored) != set(given):
        return False  # missing, or another type: not true
    ((kind, left),) = stored.items()
    right = given[kind]
    if kind == "N":
        left, right = _number(stored), _number(given)
    elif kind not in ("S", "BOOL") or (kind == "BOOL" and op not in ("=", "<>")):
        return False
    return bool(
        {
            "=": left == right,
            "<>": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
    )


def holds(condition: Any, item: dict[str, Any], parameters: list[dict[str, Any]]) -> bool:
    """Whether `condition` is true for `item`."""
    if isinstance(condition, Junction):
        results = (holds(part, item, parameters) for part in condition.parts)
        return all(results) if condition.op == "AND" else any(results)
    if condition.op == "IS MISSING":
        return condition.name not in item
    if condition.op == "IS NOT MISSING":
        return condition.name in item
    return _compare(item.get(condition.name), condition.op, parameters[condition.parameter])
