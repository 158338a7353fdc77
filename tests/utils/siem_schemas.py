"""Judges of AOC's ECS and OCSF output: every field a defined one, of its type, with an allowed value.

ECS: against Elastic's field definitions (tests/schemas/ecs_fields_9.4.0.json, generated from the npm
package @elastic/ecs with
`node -e "const f=require('./build/commonjs/ecs_flat.js').EcsFlat; …"`: per field `type`, `allowed`
(+ `expected_event_types`) and `array` from `normalize`). OCSF: the OCSF 1.7.0 models of pydantic-ocsf
(required attributes, types, enums), plus no attribute the class or object does not define (the
models accept extras; any extra found anywhere in the validated tree is a problem).
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
_TYPES: dict[str, tuple[type, ...]] = {
    "keyword": (str,),
    "constant_keyword": (str,),
    "wildcard": (str,),
    "match_only_text": (str,),
    "text": (str,),
    "long": (int,),
    "integer": (int,),
    "float": (int, float),
    "double": (int, float),
    "scaled_float": (int, float),
    "boolean": (bool,),
    "date": (str,),
    "ip": (str,),
    "flattened": (dict,),
    "object": (dict,),
}


@cache
def ecs_fields() -> dict[str, dict[str, Any]]:
    return json.loads((SCHEMAS / "ecs_fields_9.4.0.json").read_text())["fields"]


def _leaves(document: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    fields = ecs_fields()
    found: list[tuple[str, Any]] = []
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and fields.get(name, {}).get("type") not in (
            "flattened",
            "object",
        ):
            found.extend(_leaves(value, f"{name}."))
        else:
            found.append((name, value))
    return found


def ecs_problems(document: dict[str, Any]) -> list[str]:
    fields = ecs_fields()
    problems: list[str] = []
    for name, value in _leaves(document):
        definition = fields.get(name)
        if definition is None:
            problems.append(f"{name}: not an ECS field")
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) != bool(definition.get("array")) and isinstance(value, list):
            problems.append(f"{name}: a list where ECS expects one value")
        if definition.get("array") and not isinstance(value, list):
            problems.append(f"{name}: ECS expects an array")
        kinds = _TYPES.get(definition["type"])
        for item in values:
            if kinds is not None and (
                not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds)
            ):
                problems.append(f"{name}: {item!r} is not a {definition['type']}")
            elif definition["type"] == "ip":
                try:
                    ipaddress.ip_address(item)
                except ValueError:
                    problems.append(f"{name}: {item!r} is not an IP address")
            elif definition["type"] == "date":
                try:
                    datetime.fromisoformat(item.replace("Z", "+00:00"))
                except ValueError:
                    problems.append(f"{name}: {item!r} is not a date")
            if "allowed" in definition and item not in definition["allowed"]:
                problems.append(f"{name}: {item!r} is not an allowed value")
    category = document.get("event", {}).get("category", [])
    expected = fields["event.category"]["expected_event_types"]
    for event_type in document.get("event", {}).get("type", []):
        if not any(event_type in expected.get(c, []) for c in category):
            problems.append(f"event.type {event_type!r} is not expected with category {category}")
    for required in ("@timestamp", "ecs.version"):
        if required not in dict(_leaves(document)):
            problems.append(f"{required}: missing")
    return problems


@cache
def _ocsf_classes() -> dict[int, type[BaseModel]]:
    from ocsf.v1_7_0 import events

    return {
        3001: events.AccountChange,
        3002: events.Authentication,
        3004: events.EntityManagement,
        3006: events.GroupManagement,
        4009: events.EmailActivity,
        6003: events.ApiActivity,
        6006: events.FileHosting,
    }


def ocsf_class_name(document: dict[str, Any]) -> str:
    return _ocsf_classes()[document["class_uid"]].__name__


def ocsf_problems(document: dict[str, Any]) -> list[str]:
    model = _ocsf_classes().get(document.get("class_uid"))  # type: ignore[arg-type]
    if model is None:
        return [f"class_uid {document.get('class_uid')!r} is not one AOC emits"]
    try:
        validated = model.model_validate(document)
    except ValidationError as error:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    problems = [f"{path}: not an attribute of OCSF 1.7.0" for path in _extras(validated, "")]
    if document.get("metadata", {}).get("version") != "1.7.0":
        problems.append("metadata.version is not 1.7.0")
    if document["type_uid"] != document["class_uid"] * 100 + document["activity_id"]:
        problems.append("type_uid is not class_uid * 100 + activity_id")
    return problems


def _extras(model: BaseModel, prefix: str) -> list[str]:
    found = [f"{prefix}{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        if name == "unmapped":
            continue  # free-form by definition (OCSF type `object`)
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                found.extend(_extras(item, f"{prefix}{name}."))
    return found
