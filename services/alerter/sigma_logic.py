"""How a stored Sigma rule meets an event: which of its parts match, in which group, and the
windows (AOC's own: threshold, sequence, temporal) its correlation runs on. Pure, like the core.

A Sigma detection behaves like an AOC rule without a window (every matching event alerts). A
correlation becomes the window AOC's own rules use — event_count and value_count a threshold
(value_count counting distinct values), the [event_count, rule] sequence a `preceded_by`,
temporal(_ordered) a window in which every part (in order) must occur — all on event time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aoc_common.rules import PrecededBy, Rule, Threshold, resolve_path
from aoc_common.sigma import Compiled, Correlation, Detection, Part, compiled_rule
from aoc_common.sigma.program import Counter, text_of

MAX_GROUP_VALUE = 500
MAX_OBSERVED = 200


@dataclass(frozen=True, slots=True)
class Temporal:
    parts: int
    window_seconds: int
    ordered: bool


@dataclass(frozen=True, slots=True)
class SigmaMatch:
    """One way an event meets a Sigma rule: `role` "match" (counts or alerts), "preceding" (the
    first rule of a sequence) or "part:<i>" (a temporal part); with its group and observed value."""

    role: str
    group_value: str | None
    observed: str | None = None


@dataclass(frozen=True)
class SigmaLogic:
    """A stored Sigma rule ready to evaluate: the compiled rule and the effective AOC rule whose
    window fields (threshold / preceded_by) the core's state machinery reads."""

    rule: Rule
    compiled: Compiled
    temporal: Temporal | None

    def matches(self, document: dict[str, Any], counter: Counter) -> list[SigmaMatch]:
        compiled = self.compiled
        if isinstance(compiled, Detection):
            return [SigmaMatch("match", None)] if compiled.node.holds(document, counter) else []
        found: list[SigmaMatch] = []
        for index, part in enumerate(compiled.parts):
            if not part.detection.node.holds(document, counter):
                continue
            group = _group(part, document)
            if compiled.kind == "sequence":
                found.append(SigmaMatch("preceding" if index == 0 else "match", group))
            elif compiled.kind in ("temporal", "temporal_ordered"):
                found.append(SigmaMatch(f"part:{index}", group, str(index)))
            else:
                observed = None
                if compiled.distinct_paths:
                    values = resolve_path(document, compiled.distinct_paths[index])
                    if not values:
                        continue  # no value to count
                    observed = text_of(values[0])[:MAX_OBSERVED]
                found.append(SigmaMatch("match", group, observed))
                break  # one event counts once, whichever rule it matched
        return found


def _group(part: Part, document: dict[str, Any]) -> str | None:
    if not part.group_paths:
        return None
    values = []
    for path in part.group_paths:
        found = resolve_path(document, path)
        values.append(text_of(found[0]) if found else "")
    return " | ".join(values)[:MAX_GROUP_VALUE]


def sigma_logic(rule: Rule, placeholders: Mapping[str, Sequence[str]] | None) -> SigmaLogic:
    """Raises `aoc_common.sigma.Refused` when the stored text no longer compiles."""
    assert rule.sigma is not None
    compiled = compiled_rule(rule.sigma, placeholders)
    fields: dict[str, Any] = {}
    temporal = None
    if isinstance(compiled, Correlation):
        fields = _windows(compiled)
        if compiled.kind in ("temporal", "temporal_ordered"):
            temporal = Temporal(
                len(compiled.parts), compiled.window_seconds, compiled.kind == "temporal_ordered"
            )
    effective = rule.model_copy(update=fields)
    return SigmaLogic(effective, compiled, temporal)


def _windows(correlation: Correlation) -> dict[str, Any]:
    """The AOC window fields a correlation runs on (built unvalidated: Sigma's bounds were checked
    by the compiler, and a Sigma rule's effective copy is never stored)."""
    if correlation.kind in ("event_count", "value_count"):
        threshold = Threshold.model_construct(
            count=correlation.count,
            window_seconds=correlation.window_seconds,
            distinct="sigma" if correlation.distinct_paths else None,
        )
        return {"threshold": threshold}
    if correlation.kind == "sequence":
        preceded = PrecededBy.model_construct(
            match=None,
            count=correlation.count,
            window_seconds=correlation.window_seconds,
            label=correlation.label,
        )
        return {"preceded_by": preceded}
    return {}
