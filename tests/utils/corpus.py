"""The real-format record corpus: loading it, mapping every record through the normalizer core, and the
figures issue 9 asks for (how many records became readable, correct events).

Each `*.json` file here holds `entries`: one real-format Microsoft record each, with the source it arrives
from, a provenance line (the Microsoft schema page or public example whose shape it follows) and what an
analyst should read once AOC has mapped it (`expect`). The expectations are the specification; the
mapping code is judged against them, never the other way round.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aoc_common.dead_letter import DeadLetter
from aoc_common.events import CanonicalEvent, Source
from aoc_normalizer.core import normalize_message
from aoc_normalizer.mappings import Mappings
from tests.utils.records import NOW, raw_record

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
KNOWN_GAPS_FILE = CORPUS_DIR / "known_gaps.txt"
COMPARED = ("operation", "result", "actor", "actor_type", "service", "category", "summary")

# A summary with a hole where a value should have been: brackets or quotes left empty, doubled or
# dangling spaces, punctuation after a space, a placeholder never filled, "None", or a sentence
# ending on a word that needs an object ("to", "on", "of"… but not "in": "signed in" is whole).
_EMPTY_SLOT = re.compile(
    r'\(\s*\)|""|\s{2,}|^\s|\s$|\s[,.:;)]|\{[a-z_]+\}|\bNone\b'
    r"|\s(to|on|of|from|with|for|by|as|at|and|the|a)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CorpusEntry:
    file: str
    name: str
    provenance: str
    source: Source
    record: Any
    expect: dict[str, Any]

    @property
    def expects_dead_letter(self) -> bool:
        return "dead_letter" in self.expect

    @property
    def workload(self) -> str:
        """What the record counts as for 'records across N workloads'."""
        if self.source == "directory":
            return f"Entra ID: {self.record.get('loggedByService')}"
        if self.source == "unified":
            return str(self.record.get("Workload") or "unknown")
        return self.source


@dataclass
class Outcome:
    entry: CorpusEntry
    event: CanonicalEvent | None = None
    dead_letter: DeadLetter | None = None
    crash: str | None = None

    def mismatches(self) -> list[str]:
        """How the outcome differs from what the entry expects; empty when it is right."""
        expect = self.entry.expect
        if self.crash is not None:
            return [f"crashed: {self.crash}"]
        if self.entry.expects_dead_letter:
            if self.dead_letter is None:
                return ["expected a dead letter, got an event"]
            wanted = expect["dead_letter"]
            return (
                []
                if wanted in self.dead_letter.reason
                else [f"dead-letter reason {self.dead_letter.reason!r}"]
            )
        if self.event is None:
            assert self.dead_letter is not None
            return [f"dead-lettered: {self.dead_letter.reason}"]
        actual = observed(self.event)
        problems = [
            f"{name}: expected {expect[name]!r}, got {actual[name]!r}"
            for name in COMPARED
            if actual[name] != expect[name]
        ]
        if "result_detail" in expect and self.event.result_detail != expect["result_detail"]:
            problems.append(
                f"result_detail: expected {expect['result_detail']!r}, got {self.event.result_detail!r}"
            )
        for key, value in expect.get("details", {}).items():
            if self.event.details.get(key) != value:
                problems.append(
                    f"details.{key}: expected {value!r}, got {self.event.details.get(key)!r}"
                )
        return problems


def observed(event: CanonicalEvent) -> dict[str, Any]:
    return {
        "operation": event.operation,
        "result": event.result,
        "actor": event.actor_display,
        "actor_type": event.actor.type,
        "service": event.service,
        "category": event.category,
        "summary": event.display_summary,
    }


def load_entries(directory: Path = CORPUS_DIR) -> list[CorpusEntry]:
    entries: list[CorpusEntry] = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for raw in document["entries"]:
            entries.append(
                CorpusEntry(
                    file=path.name,
                    name=raw["name"],
                    provenance=raw["provenance"],
                    source=raw["source"],
                    record=raw["record"],
                    expect=raw["expect"],
                )
            )
    return entries


def known_gaps(path: Path = KNOWN_GAPS_FILE) -> set[str]:
    """Entries the current mapping is known to get wrong (one name a line, `#` comments)."""
    if not path.exists():
        return set()
    lines = (
        line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()
    )
    return {line for line in lines if line}


def map_entry(entry: CorpusEntry, mappings: Mappings, offset: int = 0) -> Outcome:
    """Through the real normalizer core, exactly as a record read from `aoc.raw.<source>`."""
    try:
        result = normalize_message(
            raw_record(entry.source, entry.record, offset=offset), mappings, now=NOW
        )
    except Exception as error:  # a crash is a figure to report, not an error of this test
        return Outcome(entry, crash=f"{type(error).__name__}: {error}")
    if isinstance(result, DeadLetter):
        return Outcome(entry, dead_letter=result)
    return Outcome(entry, event=result)


def is_generic(event: CanonicalEvent) -> bool:
    """The summary only restates the operation name ("X performed Op on Y"): it names no object."""
    return f" performed {event.operation}" in event.display_summary


def has_empty_slot(summary: str) -> bool:
    return bool(_EMPTY_SLOT.search(summary))


@dataclass
class Figures:
    records: int = 0
    events: int = 0
    crashes: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    unexpected_dead_letters: int = 0
    result_unknown: int = 0
    numeric_categories: int = 0
    generic_summaries: int = 0
    empty_slots: int = 0
    workloads: Counter[str] = field(default_factory=Counter)

    @property
    def silent_losses(self) -> int:
        return self.records - self.events - sum(self.dead_letters.values()) - self.crashes

    def share(self, count: int) -> float:
        return count / self.events if self.events else 0.0

    def lines(self) -> list[str]:
        dead = sum(self.dead_letters.values())
        return [
            f"records in: {self.records} from {len(self.workloads)} workloads",
            f"events: {self.events}; crashes: {self.crashes}; silent losses: {self.silent_losses}",
            f"dead letters: {dead}, of records that should have become events: "
            f"{self.unexpected_dead_letters}",
            *(f"  {n} × {reason}" for reason, n in self.dead_letters.most_common()),
            f"result unknown: {self.result_unknown} ({self.share(self.result_unknown):.1%})",
            f"bare numeric categories: {self.numeric_categories}",
            f"generic summaries: {self.generic_summaries} ({self.share(self.generic_summaries):.1%})",
            f"summaries with an empty slot: {self.empty_slots}",
        ]


def dead_letter_kind(reason: str) -> str:
    """Reasons without the values in them, so that the same problem counts once."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "…", reason.split(";")[0])[:80]


def figures(outcomes: list[Outcome]) -> Figures:
    result = Figures(records=len(outcomes))
    for outcome in outcomes:
        result.workloads[outcome.entry.workload] += 1
        if outcome.crash is not None:
            result.crashes += 1
        elif outcome.dead_letter is not None:
            result.dead_letters[dead_letter_kind(outcome.dead_letter.reason)] += 1
            if not outcome.entry.expects_dead_letter:
                result.unexpected_dead_letters += 1
        elif outcome.event is not None:
            event = outcome.event
            result.events += 1
            result.result_unknown += event.result == "unknown"
            result.numeric_categories += event.category.strip().isdigit()
            result.generic_summaries += is_generic(event)
            result.empty_slots += has_empty_slot(event.display_summary)
    return result


# The figures of the last run that mapped the whole corpus, for the end-of-run report (conftest.py).
LAST_FIGURES: list[Figures] = []


def remember_figures(result: Figures) -> None:
    LAST_FIGURES[:] = [result]
