"""The canonical event is a published contract: its schema file must match the model of this version."""

from __future__ import annotations

import orjson

from aoc_common.events import SCHEMA_VERSION
from aoc_common.schema import canonical_event_schema, render, schema_path


def test_published_schema_matches_the_model_for_this_schema_version() -> None:
    published = schema_path(SCHEMA_VERSION)
    assert published.exists(), f"no published schema for version {SCHEMA_VERSION}"
    assert published.read_bytes() == render(canonical_event_schema()), (
        "CanonicalEvent changed: bump SCHEMA_VERSION for an incompatible change, then run "
        "`python -m aoc_common.schema` and commit the new file"
    )


def test_schema_requires_the_fields_consumers_rely_on() -> None:
    schema = orjson.loads(schema_path().read_bytes())
    assert {"id", "dedupe_key", "source", "timestamp", "operation", "result", "raw"} <= set(
        schema["required"]
    )
    assert schema["additionalProperties"] is False


# Changes beyond new optional fields, each announced in the README's schema history: a consumer that
# checks these enumerations must accept the new values.
WIDENED_ENUMS = {(3, "result"): {"partial"}, (3, "source"): {"signins"}}


def _without_enum(definition: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in definition.items() if key != "enum"}


def test_each_schema_version_is_kept_and_only_adds_optional_fields() -> None:
    """The compatibility promise of `aoc.events`: a consumer of version N-1 can read version N."""
    for version in range(2, SCHEMA_VERSION + 1):
        older = orjson.loads(schema_path(version - 1).read_bytes())
        newer = orjson.loads(schema_path(version).read_bytes())
        assert older["$id"].endswith(f":v{version - 1}") and newer["$id"].endswith(f":v{version}")
        for name, definition in older["properties"].items():
            if name == "schema_version":
                continue  # its default is the version itself
            changed = newer["properties"].get(name)
            widened = WIDENED_ENUMS.get((version, name))
            if widened is not None:
                assert _without_enum(changed) == _without_enum(definition), f"v{version}: {name}"
                assert set(changed["enum"]) == set(definition["enum"]) | widened, name
                continue
            assert changed == definition, f"v{version} changed {name}"
        assert set(newer["required"]) == set(older["required"]), f"v{version} requires more"
