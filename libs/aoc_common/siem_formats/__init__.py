"""Canonical events in the schemas SIEMs and data lakes expect: AOC's own JSON, ECS or OCSF.

`SiemSchema` is the choice (`SIEM_SCHEMA`); `encode_as(schema, event, original)` gives the bytes a
forwarder sends: the event's own JSON untouched for `aoc`, the ECS or OCSF document otherwise.
"""

from __future__ import annotations

from typing import Literal

import orjson

from aoc_common.events import CanonicalEvent
from aoc_common.siem_formats.ecs import ECS_VERSION, to_ecs
from aoc_common.siem_formats.ocsf import OCSF_VERSION, to_ocsf

SiemSchema = Literal["aoc", "ecs", "ocsf"]
SCHEMAS: tuple[SiemSchema, ...] = ("aoc", "ecs", "ocsf")

__all__ = ["ECS_VERSION", "OCSF_VERSION", "SCHEMAS", "SiemSchema", "encode_as", "to_ecs", "to_ocsf"]


def encode_as(schema: SiemSchema, event: CanonicalEvent, original: bytes) -> bytes:
    if schema == "ecs":
        return orjson.dumps(to_ecs(event))
    if schema == "ocsf":
        return orjson.dumps(to_ocsf(event))
    return original
