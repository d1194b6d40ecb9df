"""A parser for the small part of SOQL and SOSL the integration sends.

SOQL: `SELECT f, Rel.f FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n]` where a condition is `f = 'x'`, `f != 'x'`, `f IN ('x', ...)`, `f NOT IN (...)`,
joined by AND / OR with parentheses. As in Salesforce, AND and OR may not be mixed at one
level without parentheses. SOSL: `FIND {term} [IN <scope> FIELDS] RETURNING Obj(fields
[WHERE ...] [ORDER BY ...] [LIMIT n]), ... [LIMIT n]`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

# SOQL string literals accept these backslash escapes (Salesforce SOQL reference,
# "Quoted String Escape Sequences"); \_ and \% keep their backslash for LIKE.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
            '"': '"', "'": "'", "\\": "\\", "_": "\\_", "%": "\\%"}
# SOSL reserved characters must be backslash-escaped inside FIND {...}; * and ? are wildcards.
SOSL_RESERVED = set("&|!{}[]()^~:\\\"'+-")
_TOKEN = re.compile(r"\s*(?:(?P<number>\d+)(?![A-Za-z_])|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
                    r"|(?P<op>!=|<>|[=(),])|(?P<quote>')|(?P<bad>\S))")
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "ASC", "DESC",
             "NULLS", "FIRST", "LAST", "LIMIT", "NULL", "RETURNING", "FIELDS"}


class QueryError(Exception):
    """A query Salesforce would refuse; `error_code` is its errorCode (MALFORMED_QUERY...)."""

    def __init__(self, message: str, error_code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # "=", "!=", "IN", "NOT IN"
    values: tuple[str | None, ...]


@dataclass(frozen=True)
class Junction:
    operator: str  # "AND" or "OR"
    parts: tuple["Where", ...]


Where = Union[Condition, Junction]


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool
    nulls_last: bool


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Where | None = None
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None


@dataclass(frozen=True)
class Search:
    term: str       # unescaped search text
    scope: str      # ALL, NAME, EMAIL, PHONE
    returning: tuple[Query, ...]
    limit: int | None = None


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "keyword", "number", "op", "string", "end"
    text: str
    value: str | None
    position: int


def _read_string(text: str, start: int, error_code: str) -> tuple[str, int]:
    """The value of the quoted literal opening at `start` and the index just past it."""
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "'":
            return "".join(chars), index + 1
        if char == "\\":
            escaped = text[index + 1:index + 2]
            if escaped not in _ESCAPES:
                raise QueryError(f"Invalid string literal escape sequence at position {index}",
                                 error_code)
            chars.append(_ESCAPES[escaped])
            index += 2
            continue
        chars.append(char)
        index += 1
    raise QueryError(f"unterminated string literal at position {start}", error_code)


def tokenize(text: str, error_code: str = "MALFORMED_QUERY") -> list[_Token]:
    """Split SOQL text into tokens; keywords are recognised case-insensitively."""
    tokens: list[_Token] = []
    index = 0
    while True:
        match = _TOKEN.match(text, index)
        if match is None:
            tokens.append(_Token("end", "", None, len(text)))
            return tokens
        position = match.start(match.lastgroup)
        if match.lastgroup == "quote":
            value, index = _read_string(text, position, error_code)
            tokens.append(_Token("string", text[position:index], value, position))
            continue
        if match.lastgroup == "bad":
            raise QueryError(f"unexpected token: '{match.group('bad')}'", error_code)
        word = match.group(match.lastgroup)
        kind = match.lastgroup
        if kind == "name" and word.upper() in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, word, word, position))
        index = match.end()


class _Parser:
    """Recursive descent over tokens; one method per grammar rule."""

    def __init__(self, tokens: list[_Token], error_code: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.error_code = error_code

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, expected: str) -> QueryError:
        token = self.peek()
        shown = token.text or "<EOF>"
        return QueryError(f"unexpected token: '{shown}' (expecting {expected}) "
                          f"at position {token.position}", self.error_code)

    def accept(self, *words: str) -> bool:
        """Consume `words` (keywords or operators) if they come next, else consume nothing."""
        for offset, word in enumerate(words):
            token = self.tokens[min(self.index + offset, len(self.tokens) - 1)]
            if token.kind not in ("keyword", "op") or token.text.upper() != word:
                return False
        self.index += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise self.fail(" ".join(words))

    def name(self) -> str:
        token = self.peek()
        if token.kind != "name":
            raise self.fail("a field or object name")
        self.index += 1
        return token.text

    def field_list(self) -> tuple[str, ...]:
        fields = [self.name()]
        while self.accept(","):
            fields.append(self.name())
        return tuple(fields)

    def value(self) -> str | None:
        token = self.peek()
        if token.kind == "string":
            self.index += 1
            return token.value
        if self.accept("NULL"):
            return None
        raise self.fail("a quoted string or null")

    def value_list(self) -> tuple[str | None, ...]:
        self.expect("(")
        values = [self.value()]
        while self.accept(","):
            values.append(self.value())
        self.expect(")")
        return tuple(values)

    def condition(self) -> Where:
        if self.accept("("):
            inner = self.where()
            self.expect(")")
            return inner
        field = self.name()
        if self.accept("NOT", "IN"):
            return Condition(field, "NOT IN", self.value_list())
        if self.accept("IN"):
            return Condition(field, "IN", self.value_list())
        for operator in ("=", "!=", "<>"):
            if self.accept(operator):
                return Condition(field, "!=" if operator == "<>" else operator, (self.value(),))
        raise self.fail("=, !=, IN or NOT IN")

    def where(self) -> Where:
        parts = [self.condition()]
        joiner = None
        while self.peek().kind == "keyword" and self.peek().text.upper() in ("AND", "OR"):
            word = self.peek().text.upper()
            if joiner is not None and word != joiner:
                # Salesforce refuses `a AND b OR c`: mixing needs parentheses.
                raise self.fail("parentheses around mixed AND/OR")
            joiner = word
            self.index += 1
            parts.append(self.condition())
        return parts[0] if joiner is None else Junction(joiner, tuple(parts))

    def order_by(self) -> tuple[OrderKey, ...]:
        keys = []
        while True:
            field = self.name()
            descending = self.accept("DESC")
            if not descending:
                self.accept("ASC")
            nulls_last = descending
            if self.accept("NULLS"):
                if self.accept("LAST"):
                    nulls_last = True
                else:
                    self.expect("FIRST")
                    nulls_last = False
            keys.append(OrderKey(field, descending, nulls_last))
            if not self.accept(","):
                return tuple(keys)

    def limit(self) -> int:
        token = self.peek()
        if token.kind != "number":
            raise self.fail("a number")
        self.index += 1
        return int(token.text)

    def clauses(self, fields: tuple[str, ...], sobject: str) -> Query:
        where = self.where() if self.accept("WHERE") else None
        order = self.order_by() if self.accept("ORDER", "BY") else ()
        limit = self.limit() if self.accept("LIMIT") else None
        return Query(fields, sobject, where, order, limit)

    def end(self) -> None:
        if self.peek().kind != "end":
            raise self.fail("end of query")


def parse_query(text: str) -> Query:
    """Parse one SOQL SELECT statement, or raise QueryError(MALFORMED_QUERY)."""
    parser = _Parser(tokenize(text), "MALFORMED_QUERY")
    parser.expect("SELECT")
    fields = parser.field_list()
    parser.expect("FROM")
    query = parser.clauses(fields, parser.name())
    parser.end()
    return query


def _read_search_term(text: str) -> tuple[str, int]:
    """The unescaped text inside FIND {...} and the index just past the closing brace."""
    match = re.match(r"\s*FIND\s*\{", text, re.IGNORECASE)
    if match is None:
        raise QueryError("Search query must start with FIND {", "MALFORMED_SEARCH")
    chars: list[str] = []
    index = match.end()
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
            continue
        if char == "}":
            return "".join(chars), index + 1
        if char in SOSL_RESERVED:
            raise QueryError(f"Unescaped reserved character '{char}' in search term",
                             "MALFORMED_SEARCH")
        chars.append(char)
        index += 1
    raise QueryError("Missing closing brace in FIND clause", "MALFORMED_SEARCH")


def parse_search(text: str) -> Search:
    """Parse one SOSL FIND statement, or raise QueryError(MALFORMED_SEARCH)."""
    term, index = _read_search_term(text)
    if len(term.strip()) < 2:
        raise QueryError("search term must be longer than one character", "MALFORMED_SEARCH")
    parser = _Parser(tokenize(text[index:], "MALFORMED_SEARCH"), "MALFORMED_SEARCH")
    scope = "ALL"
    if parser.accept("IN"):
        scope = parser.name().upper()
        if scope not in ("ALL", "NAME", "EMAIL", "PHONE"):
            raise QueryError(f"unsupported search scope: {scope}", "MALFORMED_SEARCH")
        parser.expect("FIELDS")
    returning: list[Query] = []
    if parser.accept("RETURNING"):
        while True:
            sobject = parser.name()
            if parser.accept("("):
                returning.append(parser.clauses(parser.field_list(), sobject))
                parser.expect(")")
            else:
                returning.append(Query(("Id",), sobject))
            if not parser.accept(","):
                break
    limit = parser.limit() if parser.accept("LIMIT") else None
    parser.end()
    return Search(term, scope, tuple(returning), limit)
