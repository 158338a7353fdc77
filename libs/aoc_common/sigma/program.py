"""A Sigma detection compiled for AOC: a small tree of tests on paths into a canonical event, and
its evaluation. Pure (no I/O), so the alerter runs it per event and the API can check it.

Semantics follow Sigma's: a field's values fan out (lists) and a test holds when any value passes;
strings compare case-insensitively unless the rule says `cased`; regular expressions are
case-sensitive unless flagged `i`; a value that is an object or a list (say `Parameters`) is tested
as its JSON text, as SIEMs test such columns; keywords search the record as Microsoft sent it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
import regex

from aoc_common.rules import resolve_path

MAX_INPUT = 10_000
REGEX_TIMEOUT_S = 0.05


class Counter(Protocol):
    regex_timeouts: int


class Node(Protocol):
    def holds(self, document: dict[str, Any], counter: Counter) -> bool: ...


def text_of(value: Any) -> str:
    """How a value reads to a string test: JSON for objects and lists, `true`/`false`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _search(pattern: regex.Pattern[str], text: str, counter: Counter) -> bool:
    try:
        return pattern.search(text[:MAX_INPUT], timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        counter.regex_timeouts += 1
        return False


# --- value tests ---------------------------------------------------------------------------------


class ValueTest(Protocol):
    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool: ...


@dataclass(frozen=True, slots=True)
class Text:
    """A plain string compared whole, or at the start / end / anywhere (Sigma's wildcards at the
    ends, i.e. the contains / startswith / endswith modifiers)."""

    kind: Literal["equals", "contains", "startswith", "endswith"]
    text: str
    cased: bool = False

    def matches(self, value: Any) -> bool:
        found = text_of(value)
        wanted = self.text
        if not self.cased:
            found, wanted = found.casefold(), wanted.casefold()
        if self.kind == "equals":
            return found == wanted
        if self.kind == "contains":
            return wanted in found
        if self.kind == "startswith":
            return found.startswith(wanted)
        return found.endswith(wanted)

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        return any(self.matches(value) for value in values)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression: Sigma's `re` modifier, or a string with inner wildcards."""

    pattern: regex.Pattern[str]

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        return any(_search(self.pattern, text_of(value), counter) for value in values)


@dataclass(frozen=True, slots=True)
class Number:
    number: int | float

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        return any(_as_number(value) == self.number for value in values)


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        wanted = "true" if self.value else "false"
        return any(text_of(value).casefold() == wanted for value in values)


@dataclass(frozen=True, slots=True)
class IsNull:
    """`field: null`: the field is absent or empty."""

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        return not values or all(value == "" for value in values)


@dataclass(frozen=True, slots=True)
class Exists:
    exists: bool

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        return bool(values) == self.exists


@dataclass(frozen=True, slots=True)
class Cidr:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        for value in values:
            try:
                address = ipaddress.ip_address(text_of(value).strip())
            except ValueError:
                continue
            if address.version == self.network.version and address in self.network:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Compare:
    op: Literal["lt", "lte", "gt", "gte", "neq"]
    number: int | float

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        for value in values:
            found = _as_number(value)
            if found is None:
                continue
            if (
                (self.op == "lt" and found < self.number)
                or (self.op == "lte" and found <= self.number)
                or (self.op == "gt" and found > self.number)
                or (self.op == "gte" and found >= self.number)
                or (self.op == "neq" and found != self.number)
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class SameAs:
    """`fieldref`: equal to (or starting / ending with) a value of another field."""

    path: str
    starts_with: bool = False
    ends_with: bool = False

    def test(self, values: list[Any], document: dict[str, Any], counter: Counter) -> bool:
        others = [text_of(other).casefold() for other in resolve_path(document, self.path)]
        for value in values:
            found = text_of(value).casefold()
            for other in others:
                if (
                    (self.starts_with and found.startswith(other))
                    or (self.ends_with and found.endswith(other))
                    or (not self.starts_with and not self.ends_with and found == other)
                ):
                    return True
        return False


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


# --- the condition tree --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldTest:
    path: str
    test: ValueTest

    def holds(self, document: dict[str, Any], counter: Counter) -> bool:
        return self.test.test(resolve_path(document, self.path), document, counter)


@dataclass(frozen=True, slots=True)
class Keyword:
    """A value anywhere in the record as Microsoft sent it (Sigma's keyword search)."""

    test: ValueTest

    def holds(self, document: dict[str, Any], counter: Counter) -> bool:
        raw_text = document.get("raw_text") or text_of(document.get("raw", {}))
        return self.test.test([raw_text], document, counter)


@dataclass(frozen=True, slots=True)
class AllOf:
    nodes: Sequence[Node]

    def holds(self, document: dict[str, Any], counter: Counter) -> bool:
        return all(node.holds(document, counter) for node in self.nodes)


@dataclass(frozen=True, slots=True)
class AnyOf:
    nodes: Sequence[Node]

    def holds(self, document: dict[str, Any], counter: Counter) -> bool:
        return any(node.holds(document, counter) for node in self.nodes)


@dataclass(frozen=True, slots=True)
class Not:
    node: Node

    def holds(self, document: dict[str, Any], counter: Counter) -> bool:
        return not self.node.holds(document, counter)
