"""What a language model may be given of an event, and how much of it.

An event goes to a model only as `event_for_model`: its own fields (never another event's, never
the analysts' comments, never a vocabulary of other actors), secrets masked (aoc_api.redaction),
long strings cut, long lists shortened, and the whole within a character budget — the raw record
shrinks first, then goes, while the canonical fields (who, what, when, result) always stay.

The model cites what it uses by the field's path in that view (`actor.user_principal_name`,
`raw.Parameters[1].Value`); `resolve_path` says whether a path names a field the model was
actually given, so a citation of anything else can be dropped. Token counts are estimated from
characters, on the safe side (three characters a token; OpenAI's tokenizers average about four
on English and JSON). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from aoc_api.redaction import mask_secrets
from aoc_common.events import CanonicalEvent

CHARS_PER_TOKEN = 3
TRUNCATED = "…[cut]"
OMITTED_RAW = "[omitted: the raw record does not fit the size sent to the model]"
# Steps the raw record is shrunk through to fit a budget: (longest string, most list items).
RAW_SHRINK_STEPS = ((400, 25), (160, 10), (60, 4))
MAX_DEPTH = 8


def estimated_tokens(value: Any) -> int:
    """Tokens a JSON value (or a text) will cost at most, roughly: characters / 3."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return len(text) // CHARS_PER_TOKEN + 1


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _bounded(value: Any, max_string: int, max_items: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_string else value[:max_string] + TRUNCATED
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        return TRUNCATED
    if isinstance(value, list):
        kept = [_bounded(item, max_string, max_items, depth + 1) for item in value[:max_items]]
        if len(value) > max_items:
            kept.append(f"…[{len(value) - max_items} more]")
        return kept
    if isinstance(value, dict):
        items = list(value.items())
        kept_items = {
            str(key)[:max_string]: _bounded(item, max_string, max_items, depth + 1)
            for key, item in items[: max_items * 4]
        }
        if len(items) > max_items * 4:
            kept_items["…"] = f"[{len(items) - max_items * 4} more fields]"
        return kept_items
    return value


def canonical_fields(event: CanonicalEvent) -> dict[str, Any]:
    """The normalized fields of an event, as an analyst reads them (no raw record, no comments)."""
    view = event.model_dump(
        mode="json",
        include={
            "id",
            "timestamp",
            "source",
            "service",
            "category",
            "operation",
            "result",
            "result_detail",
            "actor",
            "targets",
            "details",
            "tags",
        },
        exclude_none=True,
    )
    view["summary"] = event.display_summary
    return view


def event_for_model(
    event: CanonicalEvent, max_chars: int, *, with_raw: bool = True
) -> dict[str, Any]:
    """The event as a model may see it: masked, every string and list bounded, the whole at most
    `max_chars` of JSON when it can be (the canonical fields alone are kept whatever their size,
    cut to fit)."""
    view = _bounded(mask_secrets(canonical_fields(event)), 400, 25)
    if not with_raw:
        return _fit(view, max_chars)
    raw = mask_secrets(event.raw)
    for max_string, max_items in RAW_SHRINK_STEPS:
        candidate = {**view, "raw": _bounded(raw, max_string, max_items)}
        if len(json_text(candidate)) <= max_chars:
            return candidate
    return _fit({**view, "raw": OMITTED_RAW}, max_chars)


def _fit(view: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """Cut strings harder until the view fits (a pathological event: thousands of targets)."""
    for max_string, max_items in ((400, 25), (120, 8), (40, 3)):
        bounded: dict[str, Any] = _bounded(view, max_string, max_items)
        if len(json_text(bounded)) <= max_chars:
            return bounded
    return {key: bounded[key] for key in ("id", "timestamp", "service", "operation", "result")}


def resolve_path(document: Any, path: str) -> tuple[bool, Any]:
    """(True, value) when `path` names a field of `document`, else (False, None). Dotted keys
    (`@odata.type`) are matched as whole keys, the longest first."""
    if not path or len(path) > 500:
        return False, None
    return _resolve(document, path)


def _resolve(node: Any, rest: str) -> tuple[bool, Any]:
    if rest == "":
        return True, node
    if isinstance(node, list):
        match = re.match(r"\[(\d+)\]\.?", rest)
        if match is None:
            return False, None
        index = int(match.group(1))
        if index >= len(node):
            return False, None
        return _resolve(node[index], rest[match.end() :])
    if isinstance(node, dict):
        keys = sorted((k for k in node if isinstance(k, str)), key=len, reverse=True)
        for key in keys:
            if rest == key:
                return True, node[key]
            if rest.startswith(key + "."):
                found, value = _resolve(node[key], rest[len(key) + 1 :])
                if found:
                    return found, value
            elif rest.startswith(key + "["):
                found, value = _resolve(node[key], rest[len(key) :])
                if found:
                    return found, value
    return False, None


def cited_paths(paths: Sequence[str], document: Any) -> tuple[list[str], list[str]]:
    """Split citations into those naming a field of `document` and the rest, each once, in order."""
    known: list[str] = []
    unknown: list[str] = []
    for path in dict.fromkeys(paths):
        (known if resolve_path(document, path)[0] else unknown).append(path)
    return known, unknown
