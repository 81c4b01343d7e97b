"""Segments: who of a list a send goes to, as a condition over subscribers.

    city = 'Pueblo' and joined > 2025-01-01
    role in ('board', 'staff') or has topic 'events'
    not in list 'volunteers' and phone is not empty
    name contains 'smith'

A small grammar, never raw SQL: the parser accepts only what is below, and every
value reaches the database as a bound parameter. One condition compiles to the
same meaning on SQLite and PostgreSQL, and `matches` gives that meaning in Python
(the tests hold the databases to it).

    condition  := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" condition ")" | test
    test       := "in" "list" STRING | "has" "topic" STRING
                | FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=") VALUE
                | FIELD "in" "(" VALUE ("," VALUE)* ")"
                | FIELD "contains" STRING
                | FIELD "is" ["not"] "empty"

FIELD is email, name, first_name, last_name, status, joined (when the subscriber
was added), or any field of the audience (a column of the import). VALUE is a
'quoted string' ('' inside for a quote), a number or a date (2025-01-01).
Text compares without regard to ASCII case; a missing field is empty. `<`, `>`
and friends need a number or a date: numbers compare with fields that hold a
number, dates with `joined` (by UTC day) or with fields holding ISO dates.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Float, String, and_, case, cast, exists, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from campaign.audience.tables import list_members, lists, subscribers, topic_choices, topics
from campaign.errors import UserError

s = subscribers
# Own aliases: a send's query already joins list_members, and its rows must not correlate.
m, tc = list_members.alias("segment_members"), topic_choices.alias("segment_topics")

BUILTIN = ("email", "name", "first_name", "last_name", "status")
"""Text columns of the subscribers table a condition may name; `joined` is the date one."""

NUMBER = r"\A-?[0-9]+(\.[0-9]+)?\Z"
ISO_DATE = r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}"
"""Text fields compare with a date only where they start with one."""
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
"""A comparison's meaning, alike for SQL expressions and for Python values."""
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<date>\d{4}-\d{2}-\d{2})(?![\w.-])
    | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_FIELD = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_KEYWORDS = {"and", "or", "not", "in", "list", "has", "topic", "contains", "is", "empty"}


class SegmentError(UserError):
    """A condition that does not parse, at its column (1-based)."""

    def __init__(self, message: str, column: int, text: str) -> None:
        self.column = column
        super().__init__(f"{message} (column {column}):\n    {text}\n    {' ' * (column - 1)}^")


Value = str | float | date


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Value


@dataclass(frozen=True)
class OneOf:
    field: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Contains:
    field: str
    text: str


@dataclass(frozen=True)
class Empty:
    field: str


@dataclass(frozen=True)
class InList:
    name: str


@dataclass(frozen=True)
class HasTopic:
    name: str


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Node, ...]


Node = Compare | OneOf | Contains | Empty | InList | HasTopic | Not | All | Any_


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            column = at + len(text[at:]) - len(text[at:].lstrip()) + 1
            raise SegmentError("unexpected character", column, text)
        kind = match.lastgroup
        found.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        at = match.end()
    found.append(_Token("end", "", len(text) + 1))
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > 2000:
            raise SegmentError("a condition may be at most 2,000 characters", 2001, text[:60])
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    @property
    def next(self) -> _Token:
        return self.tokens[self.at]

    def fail(self, message: str, token: _Token | None = None) -> SegmentError:
        token = token or self.next
        shown = (
            f"{message}, found {token.text!r}"
            if token.kind != "end"
            else f"{message}, found the end"
        )
        return SegmentError(shown, token.column, self.text)

    def take(self) -> _Token:
        token = self.next
        self.at += 1
        return token

    def expect_word(self, word: str) -> None:
        if self.next.word != word:
            raise self.fail(f"expected {word!r}")
        self.take()

    def parse(self) -> Node:
        if self.next.kind == "end":
            raise self.fail("expected a condition")
        node = self.condition()
        if self.next.kind != "end":
            raise self.fail("expected 'and', 'or' or the end")
        return node

    def condition(self) -> Node:
        return self.chain("or", self.term, Any_)

    def term(self) -> Node:
        return self.chain("and", self.factor, All)

    def chain(
        self, word: str, part: Callable[[], Node], joined: Callable[[tuple[Node, ...]], Node]
    ) -> Node:
        """`part (word part)*`: the one part, or all of them `joined`."""
        items = [part()]
        while self.next.word == word:
            self.take()
            items.append(part())
        return items[0] if len(items) == 1 else joined(tuple(items))

    def factor(self) -> Node:
        self.depth += 1
        if self.depth > 50:
            raise self.fail("conditions may nest at most 50 deep")
        try:
            if self.next.word == "not":
                self.take()
                return Not(self.factor())
            if self.next.text == "(":
                self.take()
                node = self.condition()
                if self.next.text != ")":
                    raise self.fail("expected ')'")
                self.take()
                return node
            return self.test()
        finally:
            self.depth -= 1

    def test(self) -> Node:
        token = self.next
        if token.word == "in":
            self.take()
            self.expect_word("list")
            return InList(self.string())
        if token.word == "has":
            self.take()
            self.expect_word("topic")
            return HasTopic(self.string())
        if token.kind != "word" or token.word in _KEYWORDS - {"list", "topic", "empty"}:
            raise self.fail("expected a field, 'in list', 'has topic', 'not' or '('")
        field = token.text.lower()
        if not _FIELD.fullmatch(field):
            raise self.fail("a field name is at most 63 letters, digits and '_'", token)
        self.take()
        op = self.next
        if field == "joined" and op.kind != "op":
            raise self.fail("joined takes =, !=, <, <=, > or >= and a date")
        if op.kind == "op":
            self.take()
            symbol = "!=" if op.text == "<>" else op.text
            value = self.value()
            if field == "joined" and not isinstance(value, date):
                raise SegmentError(
                    "joined compares with a date such as 2025-01-01", op.column, self.text
                )
            if symbol not in ("=", "!=") and isinstance(value, str):
                raise SegmentError(
                    f"{symbol!r} needs a number or a date (text has no order here)",
                    op.column,
                    self.text,
                )
            return Compare(field, symbol, value)
        if op.word == "in":
            self.take()
            if self.next.text != "(":
                raise self.fail("expected '(' and a list of values")
            self.take()
            values = [self.value()]
            while self.next.text == ",":
                self.take()
                values.append(self.value())
            if self.next.text != ")":
                raise self.fail("expected ',' or ')'")
            self.take()
            return OneOf(field, tuple(values))
        if op.word == "contains":
            self.take()
            return Contains(field, self.string())
        if op.word == "is":
            self.take()
            negated = self.next.word == "not"
            if negated:
                self.take()
            self.expect_word("empty")
            return Not(Empty(field)) if negated else Empty(field)
        raise self.fail("expected =, !=, <, <=, >, >=, 'in', 'contains' or 'is'")

    def string(self) -> str:
        token = self.next
        if token.kind != "string":
            raise self.fail("expected a 'quoted' value")
        self.take()
        return token.text[1:-1].replace("''", "'")

    def value(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            return float(token.text)
        if token.kind == "date":
            try:
                return date.fromisoformat(token.text)
            except ValueError:
                raise SegmentError("not a date", token.column, self.text) from None
        self.at -= 1
        raise self.fail("expected a 'quoted' value, a number or a date")


def parse(text: str) -> Node:
    """The condition `text` as a tree; SegmentError at the column of the first problem."""
    return _Parser(text).parse()


# ------------------------------------------------------------------------------ SQL


def to_sql(node: Node, dialect: str) -> ColumnElement[bool]:
    """A WHERE clause over `subscribers` meaning `node` on `dialect` (sqlite or postgresql)."""
    return _Sql(dialect).node(node)


class _Sql:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def node(self, node: Node) -> ColumnElement[bool]:
        match node:
            case All(items):
                return and_(*(self.node(i) for i in items))
            case Any_(items):
                return or_(*(self.node(i) for i in items))
            case Not(item):
                return not_(self.node(item))
            case InList(name):
                return exists().where(
                    m.c.subscriber_id == s.c.id,
                    m.c.status == "active",
                    m.c.list_id.in_(
                        lists.select().with_only_columns(lists.c.id).where(lists.c.name == name)
                    ),
                )
            case HasTopic(name):
                return exists().where(
                    tc.c.subscriber_id == s.c.id,
                    tc.c.topic_id.in_(
                        topics.select().with_only_columns(topics.c.id).where(topics.c.name == name)
                    ),
                )
            case Empty(field):
                return self.text(field) == ""
            case Contains(field, text):
                pattern = "%" + _escape_like(_ascii_lower(text)) + "%"
                return self.lower(self.text(field)).like(pattern, escape="\\")
            case OneOf(field, values):
                return or_(*(self.compare(field, "=", v) for v in values))
            case Compare(field, op, value):
                return self.compare(field, op, value)
        raise AssertionError(node)

    def text(self, field: str) -> ColumnElement[str]:
        """The field as text, '' when missing."""
        if field in BUILTIN:
            return func.coalesce(s.c[field], "")
        if field == "joined":
            return func.coalesce(cast(s.c.created_at, String), "")
        return func.coalesce(cast(s.c.fields[field].as_string(), String), "")

    def ordered(self, column: ColumnElement[str]) -> ColumnElement[str]:
        """Byte order on both backends (PostgreSQL's default collation may ignore '-')."""
        return column.collate("C") if self.dialect == "postgresql" else column

    def compare(self, field: str, op: str, value: Value) -> ColumnElement[bool]:
        if field == "joined":
            assert isinstance(value, date)
            return _day_compare(s.c.created_at, op, value)
        column = self.text(field)
        if isinstance(value, str):
            matched = self.lower(column) == _ascii_lower(value)
            return matched if op == "=" else not_(matched)
        if isinstance(value, float):
            number = case((column.regexp_match(NUMBER), cast(column, Float)), else_=None)
            return _apply(number, op, literal(value))
        iso = case((column.regexp_match(ISO_DATE), self.ordered(column)), else_=None)
        return _apply(iso, op, literal(value.isoformat()))

    def lower(self, column: ColumnElement[str]) -> ColumnElement[str]:
        """ASCII letters lowered, as SQLite's lower() does; PostgreSQL's would lower all."""
        if self.dialect == "postgresql":
            return func.translate(column, _UPPER, _UPPER.lower())
        return func.lower(column)


def _apply(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    """`left op right`, where a missing left side (NULL) matches nothing, even for !=."""
    compared: ColumnElement[bool] = _OPERATORS[op](left, right)
    return and_(left.is_not(None), compared)


def _day_compare(column: Any, op: str, day: date) -> ColumnElement[bool]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    if op == "=":
        return and_(column >= start, column < end)
    if op == "!=":
        return or_(column < start, column >= end)
    bounds: dict[str, ColumnElement[bool]] = {
        "<": column < start,
        "<=": column < end,
        ">": column >= end,
        ">=": column >= start,
    }
    return bounds[op]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ------------------------------------------------------------------------------ Python


@dataclass(frozen=True)
class Row:
    """What `matches` needs of a subscriber: the reference meaning of a condition."""

    values: Mapping[str, str]
    """email, name, first_name, last_name, status and the audience fields, as text."""
    joined: datetime
    lists: frozenset[str]
    topics: frozenset[str]


def matches(node: Node, row: Row) -> bool:
    """Whether `row` meets `node`: the meaning the SQL must have on every backend."""
    check: Callable[[Node], bool] = lambda n: matches(n, row)  # noqa: E731
    match node:
        case All(items):
            return all(map(check, items))
        case Any_(items):
            return any(map(check, items))
        case Not(item):
            return not check(item)
        case InList(name):
            return name in row.lists
        case HasTopic(name):
            return name in row.topics
        case Empty(field):
            return row.values.get(field, "") == ""
        case Contains(field, text):
            return _ascii_lower(text) in _ascii_lower(row.values.get(field, ""))
        case OneOf(field, values):
            return any(matches(Compare(field, "=", v), row) for v in values)
        case Compare(field, op, value):
            return _compare(row, field, op, value)
    raise AssertionError(node)


def _compare(row: Row, field: str, op: str, value: Value) -> bool:
    if field == "joined":
        assert isinstance(value, date)
        day = row.joined.astimezone(UTC).date()
        return bool(_OPERATORS[op](day, value))
    text = row.values.get(field, "")
    if isinstance(value, str):
        return (_ascii_lower(text) == _ascii_lower(value)) == (op == "=")
    if isinstance(value, float):
        if not re.search(NUMBER, text):
            return False
        return bool(_OPERATORS[op](float(text), value))
    if not re.search(ISO_DATE, text):
        return False
    return bool(_OPERATORS[op](text.encode(), value.isoformat().encode()))


def _ascii_lower(text: str) -> str:
    """SQLite's lower() changes only ASCII letters; so does this, so both agree."""
    return text.translate(_LOWER)


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = str.maketrans(_UPPER, _UPPER.lower())


__all__: Sequence[str] = ["Node", "Row", "SegmentError", "matches", "parse", "to_sql"]
