"""What analysts add to an event: tags and comments, validated before they reach a store.

Tags become filter values and dropdown entries, so they are short, trimmed, free of control
characters and de-duplicated; comments are plain text (the UI shows them as text, never as HTML).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from aoc_common.text_patterns import SPACES, WHITESPACE

MAX_TAGS = 20
MAX_COMMENT_CHARS = 2000

# Control characters (tabs and line breaks aside, in comments) are refused; so is a value with
# nothing but spaces. The patterns state both in the API's document; the validators enforce them.
# Each is unambiguous (linear to match): spaces, the first other character, then the rest.
_TAG_PATTERN = rf"^[{SPACES}]*[^{WHITESPACE}\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_COMMENT_PATTERN = rf"^[\t\n{SPACES}]*[^{WHITESPACE}\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$"


def _no_control_characters(text: str, allowed: str = "") -> str:
    if any((ord(ch) < 32 and ch not in allowed) or ord(ch) == 127 for ch in text):
        raise ValueError("holds control characters")
    if not text.strip():
        raise ValueError("is blank")
    return text.strip()


Tag = Annotated[
    str,
    Field(min_length=1, max_length=50, json_schema_extra={"pattern": _TAG_PATTERN}),
    AfterValidator(_no_control_characters),
]


class TagsRequest(BaseModel):
    """The event's complete new set of tags (an empty list removes them all)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"tags": ["triage"]}]}
    )

    tags: list[Tag] = Field(max_length=MAX_TAGS)

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(
        min_length=1, max_length=MAX_COMMENT_CHARS, json_schema_extra={"pattern": _COMMENT_PATTERN}
    )

    @field_validator("text")
    @classmethod
    def _printable(cls, text: str) -> str:
        return _no_control_characters(text, allowed="\n\t")
