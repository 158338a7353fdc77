"""Free-text search terms, computed the same way for every store so that both return the same
events.

An event is indexed as a bounded set of lowercase word tokens (letters and digits); a query matches
when every query token is a prefix of one of the event's tokens. Both stores answer that from an
index (a multikey index in MongoDB, FTS5 in SQLite), and user input never becomes a regular
expression or an FTS expression without passing through `query_tokens`, which keeps only letters
and digits.

Tokenising is on the store sink's hot path (about 100 words per event), so the words are cut out
with one `bytes.translate` when the text is ASCII (nearly every audit record) and with one regular
expression otherwise; both give exactly the tokens of `[^\\W_]+` on the lowercased text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_TOKEN = re.compile(r"[^\W_]+")
_SEPARATORS = re.compile(r"[\W_]+")
# Every ASCII byte that is not a letter or digit becomes a space (for ASCII text, `[^\W_]` is
# exactly [A-Za-z0-9]); the text is lowercased first, like the regular expression path.
_ASCII_SEPARATORS = bytes(
    byte if chr(byte).isascii() and chr(byte).isalnum() else 0x20 for byte in range(256)
)
MAX_EVENT_TOKENS = 1000
MAX_TOKEN_LENGTH = 64
MAX_QUERY_TOKENS = 8
RAW_TEXT_INDEXED_CHARS = 20_000


def tokens(text: str) -> list[str]:
    """Lowercase letter/digit runs, each cut to MAX_TOKEN_LENGTH."""
    return [token[:MAX_TOKEN_LENGTH] for token in _words(text.lower())]


def _words(lowered: str) -> list[str]:
    """Letter/digit runs of already lowercased text, uncut."""
    if lowered.isascii():
        return lowered.encode().translate(_ASCII_SEPARATORS).decode().split()
    return _TOKEN.findall(lowered)


def _indexed_text(fields: Iterable[str], raw_text: str) -> str:
    """The text an event is found by, lowercased: named fields first, then the start of its raw
    text. Joined by spaces, which lowercasing and tokenising both treat as a boundary, so this
    tokenises exactly as the parts do one by one."""
    return " ".join((*fields, raw_text[:RAW_TEXT_INDEXED_CHARS])).lower()


def event_terms(fields: Iterable[str], raw_text: str) -> list[str]:
    """The distinct tokens an event is found by (at most MAX_EVENT_TOKENS, the first ones in
    field order), each cut to MAX_TOKEN_LENGTH."""
    words = _words(_indexed_text(fields, raw_text))
    if any(len(word) > MAX_TOKEN_LENGTH for word in words):
        words = [word[:MAX_TOKEN_LENGTH] for word in words]
    return list(dict.fromkeys(words))[:MAX_EVENT_TOKENS]


def event_search_text(fields: Sequence[str], raw_text: str) -> str:
    """The event's tokens as one space-separated string, for a full-text index to split on spaces.

    Finds an event by exactly the query tokens `event_terms` does: tokens are not cut here, but a
    query token is at most MAX_TOKEN_LENGTH long, so it starts a long word exactly when it starts
    the word's cut. Repeated words are left in (the index stores each once). Only an event with
    more than MAX_EVENT_TOKENS words could index a word `event_terms` leaves out: that one gets
    `event_terms` itself.
    """
    lowered = _indexed_text(fields, raw_text)
    if lowered.isascii():
        text = lowered.encode().translate(_ASCII_SEPARATORS).decode()
    else:
        text = _SEPARATORS.sub(" ", lowered)
    # n characters hold at most n / 2 + 1 words: only a long text needs counting.
    if len(text) > 2 * MAX_EVENT_TOKENS and len(text.split()) > MAX_EVENT_TOKENS:
        return " ".join(event_terms(fields, raw_text))
    return text


def query_tokens(search: str) -> list[str]:
    """Tokens of a user's search string; an input with no letters or digits yields no tokens."""
    return list(dict.fromkeys(tokens(search)))[:MAX_QUERY_TOKENS]
