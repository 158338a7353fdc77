"""What the reads of one connection keep about search words between answers: the indexed terms a
word starts (with their event counts) and the byte maps that walks test words with (`WordTest`).

Why: an analyst's search is asked several times over. The events view asks for a page, the count,
the facets and the histogram of the same words at once, then the next page, then the same words
with one more filter. Each answer read the words' terms (13 ms for a word in 99.6 % of a million
events: FTS5's vocabulary view counts a term's events by reading its whole list) and made its map
(25-50 ms for a word in 20-99.6 % of them; 0.3-0.4 s for a word starting 2,000 terms, whose lists
FTS5 merges in every statement). Made once, they serve every later answer.

When they stay true: the cache knows the snapshot it was made in by the connection's
`PRAGMA data_version` (changed by every other connection's commit) and `total_changes` (this
connection's own writes). A new snapshot in which events were only added (the store's
`words_generation` is unchanged: no event's words were replaced or removed, see
`sqlite_schema.words_changed`) is folded in by reading the words of the added events, at most
MAX_FOLDED_EVENTS of them: seqs only grow (AUTOINCREMENT, commits serialised by the write lock), so
the added events are exactly those past the newest seq the cache has seen. Anything else (words
replaced or removed, more events than that) empties it. Events removed since a map was made would
leave a stale byte for their seq, which no walk reads; removals empty the cache anyway, so the
counts kept with terms and maps stay exact.
"""

from __future__ import annotations

import re
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass

from aoc_common.event_store.sqlite_schema import stored_search_text, words_generation

# What one connection keeps, the least recently used going first: maps (a byte per event each: 1 MB
# at a million events) and the term lists of search words. Each kept entry is also tested against
# every added event when a snapshot is folded in (~0.3 µs an event), so the counts stay small.
MAX_MAP_BYTES = 64 * 1024**2
MAX_KEPT_MAPS = 16
MAX_KEPT_TERMS = 32
# Events added since the cache's snapshot that are folded in; beyond, the cache starts over (a
# sink's batch is a few hundred; reading an added event's words costs ~20 µs).
MAX_FOLDED_EVENTS = 5_000


@dataclass(frozen=True)
class WordMap:
    """A byte per seq, 1 for each event the words find (or, when `absent`, do not find), and how
    many events they find when known (`hits`) or at least (`at_least`)."""

    flags: bytes
    absent: bool
    hits: int | None
    at_least: int


@dataclass
class _Terms:
    """The terms a word starts with their event counts, or None once there are more than
    `most`."""

    counts: dict[str, int] | None
    most: int


class WordCache:
    """Terms and word maps of the current snapshot; `sync` first, inside the read transaction."""

    def __init__(self) -> None:
        self._version: tuple[int, int] | None = None
        self._generation = ""
        self.newest = 0
        self._terms: OrderedDict[str, _Terms] = OrderedDict()
        self._maps: OrderedDict[tuple[str, ...], WordMap] = OrderedDict()
        self._bytes = 0

    def sync(self, connection: sqlite3.Connection) -> None:
        """Bring the cache to the snapshot of the connection's read transaction."""
        # A read first: it starts the transaction's snapshot, which data_version then describes.
        (newest,) = connection.execute("SELECT max(seq) FROM events").fetchone()
        (data_version,) = connection.execute("PRAGMA data_version").fetchone()
        version = (int(data_version), connection.total_changes)
        if version == self._version:
            return
        newest = int(newest or 0)
        generation = words_generation(connection)
        kept = self._terms or self._maps
        if (
            generation != self._generation
            or newest < self.newest
            or newest - self.newest > MAX_FOLDED_EVENTS
        ):
            self.clear()
        elif newest > self.newest and kept:
            self._fold_in(connection, self.newest, newest)
        self._version, self._generation, self.newest = version, generation, newest

    def clear(self) -> None:
        self._terms.clear()
        self._maps.clear()
        self._bytes = 0

    def terms(self, prefix: str) -> tuple[bool, list[tuple[str, int]] | None]:
        """(known, the terms `prefix` starts with their counts in term order, or None when
        there are more than the most asked for when they were remembered)."""
        found = self._terms.get(prefix)
        if found is None:
            return False, None
        self._terms.move_to_end(prefix)
        if found.counts is None:
            return True, None
        return True, sorted(found.counts.items())

    def remember_terms(self, prefix: str, terms: list[tuple[str, int]] | None, most: int) -> None:
        self._terms[prefix] = _Terms(None if terms is None else dict(terms), most)
        self._terms.move_to_end(prefix)
        while len(self._terms) > MAX_KEPT_TERMS:
            self._terms.popitem(last=False)

    def word_map(self, tokens: tuple[str, ...]) -> WordMap | None:
        found = self._maps.get(tokens)
        if found is not None:
            self._maps.move_to_end(tokens)
        return found

    def remember_map(self, tokens: tuple[str, ...], word_map: WordMap) -> None:
        old = self._maps.pop(tokens, None)
        if old is not None:
            self._bytes -= len(old.flags)
        self._maps[tokens] = word_map
        self._bytes += len(word_map.flags)
        while len(self._maps) > 1 and (
            self._bytes > MAX_MAP_BYTES or len(self._maps) > MAX_KEPT_MAPS
        ):
            _, evicted = self._maps.popitem(last=False)
            self._bytes -= len(evicted.flags)

    def _fold_in(self, connection: sqlite3.Connection, after: int, through: int) -> None:
        """Count the words of the events with seqs in (after, through] into the kept terms and
        maps. `stored_search_text` is the text the search index was given for an event: words
        separated by single spaces, so an event holds a query token (one of its words starts
        with it) exactly when " " + token is in " " + its text, a test made in C (a generator of
        `startswith` per word took 5 ms per map for 500 events)."""
        added = [
            (seq, " " + stored_search_text(doc))
            for seq, doc in connection.execute(
                "SELECT seq, doc FROM event_docs WHERE seq > ? AND seq <= ?", (after, through)
            )
        ]
        for prefix, terms in self._terms.items():
            if terms.counts is None:
                continue
            starting = re.compile(" (" + re.escape(prefix) + "[^ ]*)")
            for _, text in added:
                if " " + prefix in text:
                    for word in set(starting.findall(text)):
                        terms.counts[word] = terms.counts.get(word, 0) + 1
            if len(terms.counts) > terms.most:
                terms.counts = None
        for tokens, old in list(self._maps.items()):
            needles = [" " + token for token in tokens]
            flags = bytearray(old.flags)
            found = 0
            for seq, text in added:
                holds = all(needle in text for needle in needles)
                found += holds
                if holds != old.absent:
                    if seq >= len(flags):
                        flags.extend(bytes(seq + 1 - len(flags)))
                    flags[seq] = 1
            hits = None if old.hits is None else old.hits + found
            self._maps[tokens] = WordMap(bytes(flags), old.absent, hits, old.at_least + found)
            self._bytes += len(flags) - len(old.flags)
