"""AOC's pySigma processing pipeline: Sigma field names → paths into AOC's events, per log source.

Built from `logsources.SERVED`: for each served (product, service), a field mapping conditioned on
that log source, then the condition that narrows the rule to the AOC source (and workload) its
events come from. Placeholders (`%internal_domains%`…) take their values from settings. A field the
mapping does not know comes out marked as unmapped, so the compiler refuses the rule naming it
rather than matching on a field no AOC event has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldFunctionTransformation,
    ValueListPlaceholderTransformation,
)

from aoc_common.sigma.logsources import SERVED, ServedLogsource

UNMAPPED = "\x00unmapped:"


def _mapper(served: ServedLogsource):  # type: ignore[no-untyped-def]
    def map_field(name: str | None) -> str | list[str]:
        if name is None:
            return name  # type: ignore[return-value]
        mapped = served.map_field_all(name)
        if not mapped:
            return f"{UNMAPPED}{name}"
        return mapped[0] if len(mapped) == 1 else mapped

    return map_field


def aoc_pipeline(placeholders: Mapping[str, Sequence[str]] | None = None) -> ProcessingPipeline:
    items: list[ProcessingItem] = []
    for served in SERVED:
        items.append(
            ProcessingItem(
                identifier=f"aoc_fields_{served.product}_{served.service}",
                transformation=FieldFunctionTransformation(
                    mapping={}, transform_func=_mapper(served)
                ),
                rule_conditions=[
                    LogsourceCondition(product=served.product, service=served.service)
                ],
            )
        )
        items.append(
            ProcessingItem(
                identifier=f"aoc_source_{served.product}_{served.service}",
                transformation=AddConditionTransformation(
                    {"source": served.source, **served.conditions}
                ),
                rule_conditions=[
                    LogsourceCondition(product=served.product, service=served.service)
                ],
            )
        )
    items.append(
        ProcessingItem(
            identifier="aoc_placeholders",
            transformation=ValueListPlaceholderTransformation(),
        )
    )
    return ProcessingPipeline(
        name="AOC (Microsoft 365 and Entra ID records as AOC stores them)",
        priority=20,
        items=items,
        vars={name: list(values) for name, values in (placeholders or {}).items()},
    )
