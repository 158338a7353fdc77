"""How an exported event reads: one CSV row (the columns an analyst sorts and filters on in a
spreadsheet) or one NDJSON line (the whole canonical event, as `/api/events/{id}` answers it).

Pure functions, no I/O. A CSV cell that a spreadsheet would read as a formula (starting with `=`, `+`,
`-`, `@`, a tab or a carriage return) is prefixed with `'`: audit data is attacker-controlled text
(display names, mailbox rules), and an export must never run it (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import orjson

from aoc_common.events import CanonicalEvent

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _place(event: CanonicalEvent) -> str:
    location = event.actor.location
    if location is None:
        return ""
    return ", ".join(p for p in (location.city, location.state, location.country_or_region) if p)


CSV_COLUMNS: tuple[tuple[str, Callable[[CanonicalEvent], str]], ...] = (
    ("timestamp", lambda e: e.timestamp.isoformat().replace("+00:00", "Z")),
    ("service", lambda e: e.service),
    ("source", lambda e: e.source),
    ("category", lambda e: e.category),
    ("operation", lambda e: e.operation),
    ("result", lambda e: e.result),
    ("result_detail", lambda e: e.result_detail or ""),
    ("actor", lambda e: e.actor_display),
    ("actor_type", lambda e: e.actor.type),
    ("actor_upn", lambda e: e.actor.user_principal_name or ""),
    ("client_ip", lambda e: e.actor.ip_address or ""),
    ("user_agent", lambda e: e.actor.user_agent or ""),
    ("location", _place),
    ("targets", lambda e: "; ".join(e.target_displays)),
    ("summary", lambda e: e.display_summary),
    ("tags", lambda e: "; ".join(e.tags)),
    ("id", lambda e: e.id),
    ("dedupe_key", lambda e: e.dedupe_key),
)


def _safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


def csv_header() -> str:
    return _csv_line([name for name, _ in CSV_COLUMNS])


def csv_row(event: CanonicalEvent) -> str:
    return _csv_line([_safe(value(event)) for _, value in CSV_COLUMNS])


def ndjson_line(event: CanonicalEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json")) + b"\n"
