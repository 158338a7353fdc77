"""The default rules shipped with AOC (default_rules.yml beside this module)."""

from __future__ import annotations

from importlib.resources import files

import yaml
from pydantic import TypeAdapter

from aoc_common.rules import Rule

_RULES = TypeAdapter(list[Rule])


def default_rules() -> list[Rule]:
    """Parsed and validated like any rule an analyst writes: a broken default fails loudly here."""
    text = files("aoc_alerter").joinpath("default_rules.yml").read_text(encoding="utf-8")
    return _RULES.validate_python(yaml.safe_load(text))
