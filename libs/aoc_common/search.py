"""Free-text search terms, computed the same way for every store so that both return the same
events.

An event is indexed as a bounded set of lowercase word tokens (letters and digits); a query matches
when every query token is a prefix of one of the event's tokens. Both stores answer that from an
index (a multikey index in MongoDB, FTS5 in SQLite), and user input never becomes a regular
expression or an FTS expression without passing through `query_tokens`, which keeps only letters
and digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"[^\W_]+")
MAX_EVENT_TOKENS = 1000
MAX_TOKEN_LENGTH = 64
MAX_QUERY_TOKENS = 8
RAW_TEXT_INDEXED_CHARS = 20_000


def tokens(text: str) -> list[str]:
    """Lowercase letter/digit runs, each cut to MAX_TOKEN_LENGTH."""
    return [token[:MAX_TOKEN_LENGTH] for token in _TOKEN.findall(text.lower())]


def event_terms(fields: Iterable[str], raw_text: str) -> list[str]:
    """The distinct tokens an event is found by: named fields first, then the start of its raw
    text."""
    seen: dict[str, None] = {}
    for text in (*fields, raw_text[:RAW_TEXT_INDEXED_CHARS]):
        for token in tokens(text):
            seen.setdefault(token, None)
            if len(seen) >= MAX_EVENT_TOKENS:
                return list(seen)
    return list(seen)


def query_tokens(search: str) -> list[str]:
    """Tokens of a user's search string; an input with no letters or digits yields no tokens."""
    return list(dict.fromkeys(tokens(search)))[:MAX_QUERY_TOKENS]
