"""The published JSON Schema of `aoc.events`, so downstream teams can validate what they consume.

The file `schemas/canonical_event.v<N>.json` is generated from `CanonicalEvent`; a test fails when the model
changes but the committed schema (and so SCHEMA_VERSION) does not. Regenerate with
`python -m aoc_common.schema` after bumping SCHEMA_VERSION for an incompatible change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from aoc_common.events import SCHEMA_VERSION, CanonicalEvent

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def canonical_event_schema() -> dict[str, Any]:
    schema = CanonicalEvent.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:aoc:schema:canonical-event:v{SCHEMA_VERSION}"
    return schema


def schema_path(version: int = SCHEMA_VERSION) -> Path:
    return SCHEMA_DIR / f"canonical_event.v{version}.json"


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    SCHEMA_DIR.mkdir(exist_ok=True)
    schema_path().write_bytes(render(canonical_event_schema()))
    print(f"wrote {schema_path()}")
