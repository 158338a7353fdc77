"""What analysts add to an event: tags and comments, validated before they reach a store.

Tags become filter values and dropdown entries, so they are short, trimmed, free of control
characters and de-duplicated; comments are plain text (the UI shows them as text, never as HTML).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_TAGS = 20
MAX_COMMENT_CHARS = 2000

Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class TagsRequest(BaseModel):
    """The event's complete new set of tags (an empty list removes them all)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"tags": ["triage"]}]}
    )

    tags: list[Tag] = Field(max_length=MAX_TAGS)

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_COMMENT_CHARS),
    ]

    @field_validator("text")
    @classmethod
    def _printable(cls, text: str) -> str:
        if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in text):
            raise ValueError("comment holds control characters")
        return text
