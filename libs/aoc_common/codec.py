"""Wire encoding: orjson JSON, so that any Kafka tool (kcat, kafka-console-consumer) can read a topic."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel


def encode(value: BaseModel | dict[str, Any] | list[Any]) -> bytes:
    """JSON bytes; models are dumped in JSON mode so datetimes become ISO-8601 strings."""
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value)
    return orjson.dumps(value)


def decode(data: bytes | str) -> Any:
    """Parse JSON; raises `orjson.JSONDecodeError` (a ValueError) on malformed input."""
    return orjson.loads(data)


def encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8")
